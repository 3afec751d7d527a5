// Design note — the x87/MMX/SSE state forms: FNSTCW, FNSTSW, MMX MOVQ, FXSAVE and FXRSTOR (issue 14).
//
// The state lives in the state store (VcpuStateStore.X87.cs, ST(n) in stack order); this unit is the SDM's rules over
// it, pure apart from the store's charged accessors, so the exit path, the replay tests and the CPU oracle call the same
// code. Sources: Intel SDM vol. 1 §8.1.3-8.1.7 (FSW.TOP, the tag word), §9.5.1 (MMX and the x87 state: an MMX
// instruction sets TOP to 0 and every tag to valid; writing MMn sets physical register n's exponent to all ones),
// vol. 2 FXSAVE (tables 3-43/3-44: the two layouts), FXRSTOR (the abridged tag word rebuilt from the registers, #GP(0)
// on reserved MXCSR bits), vol. 3 table 9-1 (reset values), and the "Protected Mode Exceptions" of each instruction (#UD/#NM by CR0.EM/TS).
//
// FXSAVE's image: the bytes the processor stores are 0..415 in 64-bit mode (XMM0-15) and 0..287 outside it (XMM0-7);
// 416..463 are reserved and 464..511 belong to software, so neither is written (the host processor, an AMD EPYC here,
// leaves 416..511 untouched, which the CPU oracle checks). FXRSTOR reads the same bytes. Reserved bytes inside the
// stored range (the ST padding, bytes 5, 14-15, 22-23 of the 32-bit-pointer layout) are stored as zero.

using System.Buffers.Binary;
using Copra.Abi;
using Copra.Hot.State;

namespace Copra.Hot.Emulate;

/// <summary>The x87/MMX/FXSAVE state update over the state store.</summary>
public static class X87
{
    public const ulong Cr0Mp = 1UL << 1, Cr0Em = 1UL << 2, Cr0Ts = 1UL << 3;
    public const byte VectorUd = 6, VectorNm = 7, VectorMf = 16, VectorGp = 13;
    /// <summary>FSW.ES: an unmasked x87 exception is pending (an MMX instruction then raises #MF).</summary>
    public const ushort FswEs = 1 << 7;
    public const int TopShift = 11;
    public const ushort TopMask = 7 << TopShift;
    /// <summary>FXSAVE/FXRSTOR's operand: 512 bytes, 16-byte aligned.</summary>
    public const int ImageSize = 512, ImageAlign = 16;
    /// <summary>One piece of the image as the exit path moves it (the event payload's size).</summary>
    public const int PieceSize = 64;

    public static int Top(ushort fsw) => (fsw >> TopShift) & 7;

    /// <summary>FCW as the processor keeps it: reserved bit 6 reads 1 and bits 7, 13-15 read 0 whatever was loaded (the host
    /// CPU's answer in the oracle; SDM vol. 1 figure 8-6 marks them reserved). <see cref="FcwKept"/> are the bits loaded as given.</summary>
    public const ushort FcwOnes = 0x0040, FcwKept = 0x1F3F;

    public static ushort NormaliseFcw(ushort fcw) => (ushort)((fcw & FcwKept) | FcwOnes);

    /// <summary>Bytes of the image FXSAVE stores and FXRSTOR reads: 416 in 64-bit mode (XMM0-15), 288 outside it (XMM0-7).</summary>
    public static int ImageBytes(bool mode64) => mode64 ? 416 : 288;

    /// <summary>Number of pieces (64 bytes each, the last one shorter) the image moves in.</summary>
    public static int Pieces(bool mode64) => (ImageBytes(mode64) + PieceSize - 1) / PieceSize;

    /// <summary>Size of piece <paramref name="i"/>: 64 bytes, the last one what is left (32).</summary>
    public static int PieceBytes(bool mode64, int i) => Math.Min(PieceSize, ImageBytes(mode64) - i * PieceSize);

    /// <summary>
    /// The fault CR0 makes an x87/MMX form raise before it touches anything, or 0: MMX (<paramref name="mmx"/>) is #UD
    /// with CR0.EM, #NM with CR0.TS, then #MF with an x87 exception pending (FSW.ES); FNSTCW/FNSTSW and FXSAVE/FXRSTOR
    /// are #NM with CR0.EM or CR0.TS (SDM vol. 2, the "Protected Mode Exceptions" of each).
    /// </summary>
    public static byte Precheck(bool mmx, ulong cr0, ushort fsw)
    {
        if (mmx)
        {
            if ((cr0 & Cr0Em) != 0) return VectorUd;
            if ((cr0 & Cr0Ts) != 0) return VectorNm;
            return (fsw & FswEs) != 0 ? VectorMf : (byte)0;
        }
        return (cr0 & (Cr0Em | Cr0Ts)) != 0 ? VectorNm : (byte)0;
    }

    /// <summary>
    /// The MMX transition (SDM vol. 1 §9.5.1): TOP becomes 0 and every tag valid. The store keeps ST(n) in stack order,
    /// so a TOP that was not 0 renames the registers: new ST(i) = physical R(i) = old ST((i - TOP) mod 8).
    /// </summary>
    public static void MmxTransition(VcpuStateStore s, int v)
    {
        ushort fsw = s.Fsw(v);
        int top = Top(fsw);
        if (top != 0)
        {
            Span<ulong> m = stackalloc ulong[8];
            Span<ushort> e = stackalloc ushort[8];
            for (int i = 0; i < 8; i++) (m[i], e[i]) = s.St(v, i);
            for (int i = 0; i < 8; i++) s.SetSt(v, i, m[(i - top) & 7], e[(i - top) & 7]);
            s.SetFsw(v, (ushort)(fsw & ~TopMask));
        }
        s.SetFtw(v, 0);
    }

    /// <summary>MOVQ mm, m64: after the transition, MMn = <paramref name="value"/> and its exponent all ones.</summary>
    public static void MmxLoad(VcpuStateStore s, int v, int n, ulong value)
    {
        MmxTransition(s, v);
        s.SetSt(v, n, value, 0xFFFF);
    }

    /// <summary>MOVQ m64, mm: the transition, then the value to store (MMn, the mantissa of physical register n).</summary>
    public static ulong MmxStore(VcpuStateStore s, int v, int n)
    {
        MmxTransition(s, v);
        return s.St(v, n).Mantissa;
    }

    /// <summary>The abridged tag byte FXSAVE stores: bit i set when physical register i is not empty (tag != 11).</summary>
    public static byte Abridge(ushort ftw)
    {
        int r = 0;
        for (int i = 0; i < 8; i++) if (((ftw >> (2 * i)) & 3) != 3) r |= 1 << i;
        return (byte)r;
    }

    /// <summary>The tag an FXRSTOR gives a non-empty register from its contents: 00 valid, 01 zero, 10 special.</summary>
    public static int Classify(ulong mantissa, ushort exponent)
    {
        int exp = exponent & 0x7FFF;
        if (exp == 0x7FFF) return 2;                  // infinity, NaN
        if (exp == 0) return mantissa == 0 ? 1 : 2;   // zero; denormal or pseudo-denormal
        return (mantissa >> 63) != 0 ? 0 : 2;         // normal; unnormal
    }

    /// <summary>FXSAVE's image of vCPU <paramref name="v"/> into <paramref name="image"/> (<see cref="ImageBytes"/> bytes).</summary>
    public static void Save(VcpuStateStore s, int v, bool mode64, bool rexW, Span<byte> image)
    {
        image = image[..ImageBytes(mode64)];
        image.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(image, s.Fcw(v));
        BinaryPrimitives.WriteUInt16LittleEndian(image[2..], s.Fsw(v));
        image[4] = Abridge(s.Ftw(v));
        BinaryPrimitives.WriteUInt16LittleEndian(image[6..], s.Fop(v));
        if (rexW)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(image[8..], s.Fip(v));
            BinaryPrimitives.WriteUInt64LittleEndian(image[16..], s.Fdp(v));
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(image[8..], (uint)s.Fip(v));
            BinaryPrimitives.WriteUInt16LittleEndian(image[12..], s.Fcs(v));
            BinaryPrimitives.WriteUInt32LittleEndian(image[16..], (uint)s.Fdp(v));
            BinaryPrimitives.WriteUInt16LittleEndian(image[20..], s.Fds(v));
        }
        BinaryPrimitives.WriteUInt32LittleEndian(image[24..], s.Mxcsr(v));
        BinaryPrimitives.WriteUInt32LittleEndian(image[28..], StateField.MxcsrMask);
        for (int n = 0; n < 8; n++)
        {
            var (m, e) = s.St(v, n);
            BinaryPrimitives.WriteUInt64LittleEndian(image[(32 + n * 16)..], m);
            BinaryPrimitives.WriteUInt16LittleEndian(image[(40 + n * 16)..], e);
        }
        int xmms = mode64 ? 16 : 8;
        for (int n = 0; n < xmms; n++) BinaryPrimitives.WriteUInt128LittleEndian(image[(160 + n * 16)..], s.Xmm(v, n));
    }

    /// <summary>MXCSR as an FXRSTOR image holds it; false when a bit outside <see cref="StateField.MxcsrMask"/> is set (#GP(0)).</summary>
    public static bool MxcsrValid(ReadOnlySpan<byte> image) =>
        (BinaryPrimitives.ReadUInt32LittleEndian(image[24..]) & ~StateField.MxcsrMask) == 0;

    /// <summary>
    /// FXRSTOR: loads vCPU <paramref name="v"/>'s x87, MXCSR and XMM state from the image (all of it read before this is
    /// called). False, with nothing changed, when MXCSR has a reserved bit set: the caller raises #GP(0).
    /// </summary>
    public static bool Restore(VcpuStateStore s, int v, bool mode64, bool rexW, ReadOnlySpan<byte> image)
    {
        if (!MxcsrValid(image)) return false;
        ushort fsw = BinaryPrimitives.ReadUInt16LittleEndian(image[2..]);
        s.SetFcw(v, NormaliseFcw(BinaryPrimitives.ReadUInt16LittleEndian(image)));
        s.SetFsw(v, fsw);
        s.SetFop(v, BinaryPrimitives.ReadUInt16LittleEndian(image[6..]));
        if (rexW)
        {
            s.SetFip(v, BinaryPrimitives.ReadUInt64LittleEndian(image[8..]));
            s.SetFdp(v, BinaryPrimitives.ReadUInt64LittleEndian(image[16..]));
        }
        else
        {
            s.SetFip(v, BinaryPrimitives.ReadUInt32LittleEndian(image[8..]));
            s.SetFcs(v, BinaryPrimitives.ReadUInt16LittleEndian(image[12..]));
            s.SetFdp(v, BinaryPrimitives.ReadUInt32LittleEndian(image[16..]));
            s.SetFds(v, BinaryPrimitives.ReadUInt16LittleEndian(image[20..]));
        }
        s.SetMxcsr(v, BinaryPrimitives.ReadUInt32LittleEndian(image[24..]));
        int top = Top(fsw);
        byte abridged = image[4];
        ushort ftw = 0;
        for (int n = 0; n < 8; n++)
        {
            ulong m = BinaryPrimitives.ReadUInt64LittleEndian(image[(32 + n * 16)..]);
            ushort e = BinaryPrimitives.ReadUInt16LittleEndian(image[(40 + n * 16)..]);
            s.SetSt(v, n, m, e);
            int phys = (top + n) & 7;   // ST(n) is physical register (TOP + n) mod 8; the abridged bits are physical
            int tag = ((abridged >> phys) & 1) == 0 ? 3 : Classify(m, e);
            ftw |= (ushort)(tag << (2 * phys));
        }
        s.SetFtw(v, ftw);
        int xmms = mode64 ? 16 : 8;
        for (int n = 0; n < xmms; n++) s.SetXmm(v, n, BinaryPrimitives.ReadUInt128LittleEndian(image[(160 + n * 16)..]));
        return true;
    }
}

// Design note — architectural write-back of an emulated access.
//
// The device model answers with the raw bytes of a read; the kernel, not the model, updates vCPU state. These
// functions are that update, as the SDM defines it:
//   * a 32-bit register write zeroes bits 63:32; 8- and 16-bit writes keep the rest; AH/CH/DH/BH are bits 15:8;
//   * MOVZX zero-extends and MOVSX/MOVSXD sign-extend the loaded value to the destination width first;
//   * ALU forms compute CF, PF, AF, ZF, SF and OF for the operation and width and leave other RFLAGS bits alone.
//     AND/OR/XOR/TEST leave AF undefined in the SDM; we clear it (what current Intel and AMD parts do);
//   * string forms advance rSI/rDI by the element size per DF and count rCX down, all at the address size.
// Callers pass the 16 GPRs in x86 order; nothing here allocates or keeps state. A mismatch between the function
// and d.Kind is a caller bug: the functions do nothing sensible for it, but never write outside gprs.

using System.Numerics;
using System.Runtime.CompilerServices;

namespace Copra.Hot.Decode;

/// <summary>Register, flag and memory results of an emulated access.</summary>
public static class WriteBack
{
    public const ulong CF = 1UL << 0, PF = 1UL << 2, AF = 1UL << 4, ZF = 1UL << 6, SF = 1UL << 7, DF = 1UL << 10, OF = 1UL << 11;
    const ulong StatusFlags = CF | PF | AF | ZF | SF | OF;

    /// <summary>
    /// Writes a value read from memory or a port into the destination register of a Read, ReadZx, ReadSx or In
    /// access (and the register side of XCHG). Does nothing when the access has no register operand.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]   // into the common read's completion (AfterRead): one frame fewer per exit
    public static void ApplyRead(in DecodedAccess d, Span<ulong> gprs, ulong value)
    {
        if (d.Reg < 0) return;
        value &= X86Decoder.SizeMask(d.Size);
        if (d.Kind == AccessKind.ReadSx) value = SignExtend(value, d.Size);
        WriteReg(gprs, d.Reg, d.RegHigh8, d.RegSize, value);
    }

    /// <summary>The value a Write, WriteImm, Stos or Out access stores: the register or the immediate, masked to Size.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]   // every store and OUT exit computes it once: no call for ~15 instructions
    public static ulong StoreValue(in DecodedAccess d, ReadOnlySpan<ulong> gprs)
    {
        ulong v = d.HasImm ? (ulong)d.Imm : d.Reg >= 0 ? ReadReg(gprs, d.Reg, d.RegHigh8, d.RegSize) : 0;
        return v & X86Decoder.SizeMask(d.Size);
    }

    /// <summary>
    /// ALU forms: computes <c>dest op src</c> from the memory value and the register or immediate, updates the six
    /// status flags in <paramref name="rflags"/>, writes a register destination, and returns true with
    /// <paramref name="memWrite"/> when memory must be written back (never for CMP and TEST).
    /// </summary>
    public static bool Alu(in DecodedAccess d, Span<ulong> gprs, ref ulong rflags, ulong memValue, out ulong memWrite)
    {
        int size = d.Size;
        ulong mask = X86Decoder.SizeMask(size);
        ulong mem = memValue & mask;
        ulong other = d.HasImm ? (ulong)d.Imm & mask : ReadReg(gprs, d.Reg, d.RegHigh8, d.RegSize) & mask;
        ulong a = d.MemIsDest ? mem : other;
        ulong b = d.MemIsDest ? other : mem;

        ulong r, flags;
        switch (d.Op)
        {
            case AluOp.Add:
                r = (a + b) & mask;
                flags = (r < a ? CF : 0) | (((/* Stryker disable once Bitwise,Logical: ulongs, so >> is already logical (and ^ is no bool xor: its Logical mutants never compile) */ ((a ^ r) & (b ^ r)) >> (size * 8 - 1)) & 1) != 0 ? OF : 0) | ((a ^ b ^ r) & 0x10);
                break;
            case AluOp.Sub:
            case AluOp.Cmp:
                r = (a - b) & mask;
                flags = (a < b ? CF : 0) | (((/* Stryker disable once Bitwise,Logical: ulongs, so >> is already logical (and ^ is no bool xor: its Logical mutants never compile) */ ((a ^ b) & (a ^ r)) >> (size * 8 - 1)) & 1) != 0 ? OF : 0) | ((a ^ b ^ r) & 0x10);
                break;
            case AluOp.And:
            case AluOp.Test:
                r = a & b;
                flags = 0;
                break;
            case AluOp.Or:
                r = a | b;
                flags = 0;
                break;
            case AluOp.Xor:
                r = a ^ b;
                flags = 0;
                break;
            default:
                memWrite = 0;
                return false;
        }
        rflags = (rflags & ~StatusFlags) | flags | ResultFlags(r, size);

        memWrite = 0;
        if (d.Op is AluOp.Cmp or AluOp.Test) return false;
        if (d.MemIsDest)
        {
            memWrite = r;
            return true;
        }
        WriteReg(gprs, d.Reg, d.RegHigh8, d.RegSize, r);
        return false;
    }

    /// <summary>XCHG: loads the register with the memory value and returns the register's old value for memory.</summary>
    public static ulong Xchg(in DecodedAccess d, Span<ulong> gprs, ulong memValue)
    {
        ulong old = ReadReg(gprs, d.Reg, d.RegHigh8, d.RegSize) & X86Decoder.SizeMask(d.Size);
        WriteReg(gprs, d.Reg, d.RegHigh8, d.RegSize, memValue & X86Decoder.SizeMask(d.Size));
        return old;
    }

    /// <summary>
    /// BT with a register bit offset: the signed byte offset, a multiple of Size, from the encoded operand to the
    /// unit that holds the bit (floor division, so -1 selects the top bit of the unit below). 0 for the imm8 form,
    /// whose bit number is taken modulo the operand width.
    /// </summary>
    public static long BtByteOffset(in DecodedAccess d, ReadOnlySpan<ulong> gprs)
    {
        if (d.Reg < 0) return 0;
        long bitOffset = (long)SignExtend(ReadReg(gprs, d.Reg, false, d.RegSize), d.RegSize);
        int shift = BitOperations.Log2((uint)d.Size * 8);
        return (bitOffset >> shift) * d.Size;
    }

    /// <summary>BT: sets CF to the selected bit of the (already offset-adjusted) memory unit; other flags are kept.</summary>
    public static void Bt(in DecodedAccess d, ReadOnlySpan<ulong> gprs, ref ulong rflags, ulong memValue)
    {
        int bits = d.Size * 8;
        ulong bitNumber = d.HasImm ? (ulong)d.Imm : ReadReg(gprs, d.Reg, false, d.RegSize);
        int bit = (int)(bitNumber & (ulong)(bits - 1));
        rflags = ((memValue >> bit) & 1) != 0 ? rflags | CF : rflags & ~CF;
    }

    /// <summary>True when a REP string form has rCX = 0 at the address size: no access happens, RIP just advances.</summary>
    public static bool RepSkips(in DecodedAccess d, ReadOnlySpan<ulong> gprs) =>
        d.Rep && (gprs[Gpr.Rcx] & X86Decoder.SizeMask(d.AddressSize)) == 0;

    /// <summary>
    /// After one element of MOVS/STOS/INS/OUTS: moves rSI and/or rDI by Size (down when DF is set) and, with REP,
    /// counts rCX down, each at the address size. Returns true when the instruction is complete (RIP may advance);
    /// false when a REP count remains and the instruction must run again.
    /// </summary>
    public static bool StringStep(in DecodedAccess d, Span<ulong> gprs, ulong rflags)
    {
        ulong delta = (rflags & DF) != 0 ? (ulong)-(long)d.Size : d.Size;
        if (d.Kind is AccessKind.Movs or AccessKind.Outs) AddAtWidth(gprs, Gpr.Rsi, d.AddressSize, delta);
        if (d.Kind is AccessKind.Movs or AccessKind.Stos or AccessKind.Ins) AddAtWidth(gprs, Gpr.Rdi, d.AddressSize, delta);
        if (!d.Rep) return true;
        AddAtWidth(gprs, Gpr.Rcx, d.AddressSize, ulong.MaxValue);
        return (gprs[Gpr.Rcx] & X86Decoder.SizeMask(d.AddressSize)) == 0;
    }

    /// <summary>Reads a register at a width, AH..BH as bits 15:8 of registers 0..3.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong ReadReg(ReadOnlySpan<ulong> gprs, int reg, bool high8, int size) =>
        high8 ? (gprs[reg] >> 8) & 0xFF : gprs[reg] & X86Decoder.SizeMask(size);

    /// <summary>Writes a register at a width with the x86 partial-write rules.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteReg(Span<ulong> gprs, int reg, bool high8, int size, ulong value)
    {
        ref ulong r = ref gprs[reg];
        if (high8) r = (r & ~0xFF00UL) | ((value & 0xFF) << 8);
        else if (size == 4) r = value & 0xFFFF_FFFFUL; // 32-bit writes zero the upper half
        else
        {
            ulong mask = X86Decoder.SizeMask(size);
            r = (r & ~mask) | (value & mask);
        }
    }

    static void AddAtWidth(Span<ulong> gprs, int reg, int addressSize, ulong delta) =>
        WriteReg(gprs, reg, false, addressSize, gprs[reg] + delta);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong SignExtend(ulong v, int size) => (ulong)(((long)v << (64 - size * 8)) >> (64 - size * 8)); // size 8: shifts by 0

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong ResultFlags(ulong r, int size) =>
        (r == 0 ? ZF : 0)
        | ((r >> (size * 8 - 1) & 1) != 0 ? SF : 0)
        | ((BitOperations.PopCount(r & 0xFF) & 1) == 0 ? PF : 0);
}

// Design note — the host CPU as the oracle for the x87/MMX/FXSAVE forms (issue 14).
//
// Each case is one of FNSTCW m16, FNSTSW m16, MOVQ mm, m64, MOVQ m64, mm, FXSAVE/FXSAVE64 and FXRSTOR/FXRSTOR64 with
// random prefixes (67, REX), ModRM/SIB/displacement and MMX register, and a random x87/MMX/SSE state (an FXSAVE64
// image: FCW, FSW with any TOP, the abridged tag byte, the eight registers, MXCSR, XMM0-15). Both sides start from that
// image: Copra loads it into a state store with X87.Restore, the CPU with FXRSTOR64 (NativeCpu.RunX87). The instruction
// then runs through X87 (hot/Emulate/X87.cs) over a model copy of the buffer, and natively over the buffer; the state
// each left is compared as an FXSAVE64 image (X87.Save against the CPU's own FXSAVE64), with every GPR and every byte
// of the buffer.
//
// Not compared, each for a stated reason: bytes 6..23 of an image (FOP, FIP, FDP; the AMD host stores them only when
// FSW.ES is set, and the cases keep ES clear so the MMX forms cannot raise #MF natively) and 28..31 (MXCSR_MASK: the
// host's is its own, 0x2FFFF on this AMD EPYC, the model's StateField.MxcsrMask). The FIP/FDP layouts are pinned by the
// replay test (tests/Kernel/X87FamiliesTests.cs) instead. The faults (#UD/#NM/#MF, a misaligned image, a reserved MXCSR
// bit) cannot run natively: X87RuleTests and the replay test check them.
using System.Buffers.Binary;
using Copra.Fuzz.Core;
using Copra.Hot.Decode;
using Copra.Hot.Emulate;
using Copra.Hot.State;

namespace Copra.Fuzz.Targets;

public sealed record X87Case(byte[] Bytes, ulong[] Gprs, ulong StateSeed, ulong MemSeed, int Offset);

/// <summary>The x87 state update under test (X87's forms, or a planted bug).</summary>
public delegate void X87ExecFn(in DecodedAccess d, VcpuStateStore s, Span<byte> mem);

public sealed class X87OracleTarget(X87ExecFn? exec = null, string? name = null) : FuzzTarget<X87Case>
{
    public const int DataSize = 8192, Centre = 4096;
    readonly X87ExecFn _exec = exec ?? Execute;

    [ThreadStatic] static NativeCpu? t_cpu;

    public override string Name => name ?? "cpu-oracle-x87";
    public override string Description => "x87/MMX/FXSAVE forms vs the host CPU (64-bit mode, state loaded by FXRSTOR64)";
    public override long? CampaignCases => 1_000_000;

    /// <summary>Copra's side of one form over the state store and the operand's bytes (<paramref name="mem"/> starts at it).</summary>
    public static void Execute(in DecodedAccess d, VcpuStateStore s, Span<byte> mem)
    {
        bool w = d.Imm != 0;
        switch (d.Kind)
        {
            case AccessKind.Fnstcw: BinaryPrimitives.WriteUInt16LittleEndian(mem, s.Fcw(0)); break;
            case AccessKind.Fnstsw: BinaryPrimitives.WriteUInt16LittleEndian(mem, s.Fsw(0)); break;
            case AccessKind.MmxRead: X87.MmxLoad(s, 0, d.Reg, BinaryPrimitives.ReadUInt64LittleEndian(mem)); break;
            case AccessKind.MmxWrite: BinaryPrimitives.WriteUInt64LittleEndian(mem, X87.MmxStore(s, 0, d.Reg)); break;
            case AccessKind.Fxsave: X87.Save(s, 0, mode64: true, w, mem); break;
            case AccessKind.Fxrstor: if (!X87.Restore(s, 0, mode64: true, w, mem)) throw new InvalidOperationException("reserved MXCSR bit generated"); break;
        }
    }

    // ---- generation ------------------------------------------------------------------------------------------

    public override X87Case Generate(Rng r)
    {
        while (true)
        {
            byte[] bytes = Instruction(r);
            if (!X86Decoder.TryDecode(bytes, CpuMode.Bits64, out DecodedAccess d)) continue;
            if (d.Base < 0 || d.Base == Gpr.Rip || d.Base == Gpr.Rsp || d.Index == Gpr.Rsp || (d.Index >= 0 && d.Index == d.Base)) continue;
            var g = new ulong[16];
            for (int i = 0; i < 16; i++) g[i] = r.Next64();
            int offset = d.Align == 16 ? 16 * r.Next(4) : r.Next(64);
            return new X87Case(bytes[..d.Length], g, r.Next64(), r.Next64(), offset);
        }
    }

    static byte[] Instruction(Rng r)
    {
        var b = new List<byte>(16);
        if (r.Chance(10)) b.Add(0x67);
        if (r.Chance(60)) b.Add((byte)(0x40 | r.Next(16)));
        int reg;
        switch (r.Next(6))
        {
            case 0: b.Add(0xD9); reg = 7; break;                       // FNSTCW
            case 1: b.Add(0xDD); reg = 7; break;                       // FNSTSW
            case 2: b.Add(0x0F); b.Add(0x6F); reg = r.Next(8); break;  // MOVQ mm, m64
            case 3: b.Add(0x0F); b.Add(0x7F); reg = r.Next(8); break;  // MOVQ m64, mm
            case 4: b.Add(0x0F); b.Add(0xAE); reg = 0; break;          // FXSAVE(64)
            default: b.Add(0x0F); b.Add(0xAE); reg = 1; break;         // FXRSTOR(64)
        }
        int mod = r.Next(3), rm = r.Next(8);
        if (mod == 0 && rm == 5) rm = 3;
        b.Add((byte)(mod << 6 | reg << 3 | rm));
        if (rm == 4) b.Add((byte)(r.Next(4) << 6 | r.Next(8) << 3 | r.Next(8)));
        for (int i = 0; i < 4; i++) b.Add(r.Chance(30) ? r.Pick(new byte[] { 0, 0x10, 0x40, 0x7F, 0x80, 0xF0 }) : r.Byte());
        return [.. b];
    }

    static readonly ushort[] Exponents = [0, 0x7FFF, 0xFFFF, 0x3FFF, 0x8000, 0x4000, 1];

    /// <summary>
    /// A random FXSAVE64 image the CPU can load and run an MMX form on without faulting: FSW.ES and B clear and the
    /// exception flags all masked in FCW (so nothing is pending), MXCSR within 0xFFFF; everything else random.
    /// </summary>
    public static void RandomImage(Rng r, Span<byte> image)
    {
        for (int i = 0; i + 8 <= 512; i += 8) BinaryPrimitives.WriteUInt64LittleEndian(image[i..], r.Next64());
        BinaryPrimitives.WriteUInt16LittleEndian(image, (ushort)(0x003F | (r.Next64() & 0xFFC0)));
        BinaryPrimitives.WriteUInt16LittleEndian(image[2..], (ushort)(r.Next64() & 0x7F7F));
        image[5] = 0;
        BinaryPrimitives.WriteUInt32LittleEndian(image[24..], (uint)(r.Next64() & 0xFFFF));
        for (int n = 0; n < 8; n++)
        {
            Span<byte> st = image[(32 + n * 16)..];
            if (r.Chance(30)) BinaryPrimitives.WriteUInt16LittleEndian(st[8..], r.Pick(Exponents));
            if (r.Chance(15)) BinaryPrimitives.WriteUInt64LittleEndian(st, 0);
            st[10..16].Clear();
        }
    }

    // ---- checking --------------------------------------------------------------------------------------------

    public override string? Check(X87Case c)
    {
        if (!NativeCpu.IsSupported) return null;
        if (!X86Decoder.TryDecode(c.Bytes, CpuMode.Bits64, out DecodedAccess d)) return "generator produced a refused form";
        var cpu = t_cpu ??= new NativeCpu(DataSize);
        Span<byte> native = cpu.Data;
        var mr = new Rng(c.MemSeed);
        for (int i = 0; i + 8 <= DataSize; i += 8) BinaryPrimitives.WriteUInt64LittleEndian(native[i..], mr.Next64());
        int at = Centre + c.Offset;
        if (d.Kind == AccessKind.Fxrstor) RandomImage(new Rng(c.MemSeed ^ 0xF0), native.Slice(at, 512));
        var g = (ulong[])c.Gprs.Clone();
        g[Gpr.Rsp] = 0;
        ulong amask = d.AddressSize == 8 ? ulong.MaxValue : 0xFFFF_FFFF;
        ulong index = 0;
        if (d.Index >= 0) { index = g[d.Index] & 15; g[d.Index] = index; }
        ulong baseValue = cpu.DataAddress + (ulong)at - (ulong)d.Disp - index * d.Scale;
        g[d.Base] = (g[d.Base] & ~amask) | (baseValue & amask);
        if (EffectiveAddress.Compute(in d, g, 0, 0) != cpu.DataAddress + (ulong)at) return "the harness misplaced the operand";

        var start = new byte[512];
        RandomImage(new Rng(c.StateSeed), start);
        byte[] model = native.ToArray();

        var store = new VcpuStateStore(1, StateAccessCost.Snp);
        if (!X87.Restore(store, 0, mode64: true, rexW: true, start)) return "the harness generated a reserved MXCSR bit";
        _exec(in d, store, model.AsSpan(at));
        var modelImage = new byte[512];
        X87.Save(store, 0, mode64: true, rexW: true, modelImage);

        var ng = (ulong[])g.Clone();
        ulong nf = 2;
        var nativeImage = (byte[])start.Clone();
        cpu.RunX87(c.Bytes, ng, ref nf, nativeImage);

        for (int i = 0; i < 16; i++)
            if (i != Gpr.Rsp && ng[i] != g[i]) return $"register {i}: Copra 0x{g[i]:x} (unchanged), CPU 0x{ng[i]:x}";
        for (int i = 0; i < X87.ImageBytes(true); i++)
            if (Compared(i) && modelImage[i] != nativeImage[i]) return $"state image byte {i} ({Field(i)}): Copra 0x{modelImage[i]:x2}, CPU 0x{nativeImage[i]:x2}";
        for (int i = 0; i < DataSize; i++)
        {
            int rel = i - at;
            if (d.Kind == AccessKind.Fxsave && rel >= 0 && rel < 512 && !Compared(rel)) continue;
            if (model[i] != native[i]) return $"memory byte {rel:+0;-0} from the operand: Copra 0x{model[i]:x2}, CPU 0x{native[i]:x2}";
        }
        return null;
    }

    /// <summary>Image bytes compared (see the design note: FOP/FIP/FDP and MXCSR_MASK are the host's own).</summary>
    public static bool Compared(int offset) => offset is not (>= 6 and < 24) and not (>= 28 and < 32);

    static string Field(int i) => i switch
    {
        < 2 => "FCW",
        < 4 => "FSW",
        4 => "abridged FTW",
        < 32 => "MXCSR",
        < 160 => $"ST{(i - 32) / 16}",
        _ => $"XMM{(i - 160) / 16}",
    };

    public override string Show(X87Case c) =>
        $"{Modes.Hex(c.Bytes)} ({IcedOracle.Format(IcedOracle.Decode(c.Bytes, CpuMode.Bits64, out _))}) offset {c.Offset} " +
        $"stateseed {c.StateSeed} memseed {c.MemSeed}";

    public override int SizeOf(X87Case c) => c.Gprs.Count(x => x != 0);

    public override IEnumerable<X87Case> Shrink(X87Case c)
    {
        for (int i = 0; i < 16; i++)
            if (c.Gprs[i] != 0) { var g = (ulong[])c.Gprs.Clone(); g[i] = 0; yield return c with { Gprs = g }; }
    }
}

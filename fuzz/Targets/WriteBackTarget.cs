// Write-back against an independent reference: for every covered read form (MOV r,m / moffs, MOVZX, MOVSX, MOVSXD,
// IN), the destination register after WriteBack.ApplyRead equals what the SDM specifies for that width and extension.
// The reference learns the destination register, source width and mnemonic from Iced, never from Copra's tables, and
// spells the architecture out case by case.
using Copra.Fuzz.Core;
using Copra.Hot.Decode;
using Iced.Intel;

namespace Copra.Fuzz.Targets;

public sealed record WriteBackCase(CpuMode Mode, byte[] Bytes, ulong[] Gprs, ulong Value);

/// <summary>The write-back under test.</summary>
public delegate void ApplyReadFn(in DecodedAccess d, Span<ulong> gprs, ulong value);

public sealed class WriteBackTarget(ApplyReadFn? apply = null, string? name = null) : FuzzTarget<WriteBackCase>
{
    readonly ApplyReadFn _apply = apply ?? WriteBack.ApplyRead;
    static readonly byte[] ReadOps = [0x8A, 0x8B, 0xA0, 0xA1, 0x63, 0xE4, 0xE5, 0xEC, 0xED];
    static readonly byte[] ReadOps0F = [0xB6, 0xB7, 0xBE, 0xBF];

    public override string Name => name ?? "writeback";
    public override string Description => "WriteBack.ApplyRead vs an SDM reference, every read form";

    public override WriteBackCase Generate(Rng r)
    {
        var mode = r.Pick(Modes.All);
        byte[] bytes;
        do bytes = ReadForm(r, mode);
        while (!X86Decoder.TryDecode(bytes, mode, out DecodedAccess d) || d.Kind is not (AccessKind.Read or AccessKind.ReadZx or AccessKind.ReadSx or AccessKind.In));
        var gprs = new ulong[16];
        for (int i = 0; i < 16; i++) gprs[i] = r.Chance(20) ? 0 : r.Chance(20) ? ulong.MaxValue : r.Next64();
        ulong[] edges = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, long.MaxValue, 1UL << 63, ulong.MaxValue];
        ulong value = r.Chance(50) ? r.Pick(edges) : r.Next64();
        return new WriteBackCase(mode, bytes, gprs, value);
    }

    static byte[] ReadForm(Rng r, CpuMode mode)
    {
        var b = new List<byte>();
        int np = r.Next(3);
        for (int i = 0; i < np; i++) b.Add(r.Pick(new byte[] { 0x66, 0x67, 0x2E, 0x64, 0xF3 }));
        if (mode == CpuMode.Bits64 && r.Chance(60)) b.Add((byte)(0x40 + r.Next(16)));
        if (r.Chance(40)) { b.Add(0x0F); b.Add(r.Pick(ReadOps0F)); }
        else b.Add(r.Pick(ReadOps));
        b.Add((byte)(r.Next(3) << 6 | r.Next(8) << 3 | r.Next(8)));
        while (b.Count < 15) b.Add(r.Byte());
        return [.. b];
    }

    public override string Show(WriteBackCase c) =>
        $"mode {Modes.Bits(c.Mode)} bytes {Modes.Hex(c.Bytes)} value 0x{c.Value:x} gprs [{string.Join(' ', c.Gprs.Select(g => g.ToString("x")))}]";

    public override int SizeOf(WriteBackCase c) => c.Gprs.Count(g => g != 0) + (c.Value != 0 ? 1 : 0);

    public override IEnumerable<WriteBackCase> Shrink(WriteBackCase c)
    {
        for (int i = 0; i < 16; i++)
            if (c.Gprs[i] != 0) { var g = (ulong[])c.Gprs.Clone(); g[i] = 0; yield return c with { Gprs = g }; }
        foreach (ulong v in new ulong[] { 0, 0x80, 0xFF, 0x8000, c.Value & 0xFF, c.Value & 0xFFFF })
            if (v < c.Value) yield return c with { Value = v };
    }

    public override string? Check(WriteBackCase c)
    {
        if (!X86Decoder.TryDecode(c.Bytes, c.Mode, out DecodedAccess d)) return "generator produced a refused form";
        var ours = (ulong[])c.Gprs.Clone();
        _apply(in d, ours, c.Value);
        ulong[] want = Reference(c);
        for (int i = 0; i < 16; i++)
            if (ours[i] != want[i])
                return $"register {i}: Copra 0x{ours[i]:x}, SDM 0x{want[i]:x} ({IcedOracle.Format(IcedOracle.Decode(c.Bytes, c.Mode, out _))})";
        return null;
    }

    /// <summary>The SDM, spelled out: load width, extension, then the partial-register write rule.</summary>
    public static ulong[] Reference(WriteBackCase c)
    {
        var regs = (ulong[])c.Gprs.Clone();
        Instruction ins = IcedOracle.Decode(c.Bytes, c.Mode, out _);
        Register dst = ins.Op0Register;
        int dstBytes = dst.GetSize();
        bool hasMem = ins.Op1Kind is OpKind.Memory;
        int srcBytes = hasMem ? ins.MemorySize.GetSize() : dstBytes;
        ulong v = srcBytes switch
        {
            1 => c.Value & 0xFF,
            2 => c.Value & 0xFFFF,
            4 => c.Value & 0xFFFF_FFFF,
            _ => c.Value,
        };
        if (ins.Mnemonic is Mnemonic.Movsx or Mnemonic.Movsxd)
        {
            v = srcBytes switch
            {
                1 => (ulong)(long)(sbyte)(byte)v,
                2 => (ulong)(long)(short)(ushort)v,
                4 => (ulong)(long)(int)(uint)v,
                _ => v,
            };
        }
        // Movzx: already zero-extended by the load mask; Mov and In: same width.
        if (dst is >= Register.AH and <= Register.BH)
        {
            int n = dst - Register.AH;
            regs[n] = (regs[n] & 0xFFFF_FFFF_FFFF_00FFUL) | ((v & 0xFF) << 8);
            return regs;
        }
        int r = dst.GetFullRegister() - Register.RAX;
        regs[r] = dstBytes switch
        {
            1 => (regs[r] & 0xFFFF_FFFF_FFFF_FF00UL) | (v & 0xFF),
            2 => (regs[r] & 0xFFFF_FFFF_FFFF_0000UL) | (v & 0xFFFF),
            4 => v & 0xFFFF_FFFFUL,                // a 32-bit destination zeroes bits 63:32
            _ => v,
        };
        return regs;
    }
}

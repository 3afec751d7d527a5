// Decoder differential: X86Decoder.TryDecode against Iced, in one CPU mode.
// Properties, per case: the decoder never throws; when it accepts, Iced decodes the same bytes to the same access
// (length, kind, direction, size, register, immediate, REP, port, memory operand); when Iced decodes an emulated
// form with a memory operand (other than the documented gaps left to the fallback), the decoder accepts it; and a
// refusal's reason agrees with Iced's verdict (RegisterOperand: Iced decodes a valid instruction; LockInvalid and
// TooLong: Iced says invalid; Truncated: Iced ran out of bytes).
using Copra.Fuzz.Core;
using Copra.Hot.Decode;

namespace Copra.Fuzz.Targets;

/// <summary>The decoder under test (X86Decoder.TryDecode, or a broken variant).</summary>
public delegate bool DecodeFn(ReadOnlySpan<byte> bytes, CpuMode mode, out DecodedAccess d);

/// <summary>Which generator feeds the target.</summary>
public enum DecoderGen { Mixed, RandomBytes, Structured }

public sealed record DecoderCase(CpuMode Mode, byte[] Bytes);

public sealed class DecoderTarget(CpuMode mode, DecoderGen gen = DecoderGen.Mixed, DecodeFn? decoder = null, string? name = null)
    : FuzzTarget<DecoderCase>
{
    readonly DecodeFn _decode = decoder ?? X86Decoder.TryDecode;

    public CpuMode Mode => mode;
    public override string Name => name ?? "decoder";
    public override string Description => $"X86Decoder vs Iced, {Modes.Bits(mode)}-bit, {gen} generator";

    public override DecoderCase Generate(Rng rng) => new(mode, gen switch
    {
        DecoderGen.RandomBytes => InstructionGen.RandomBytes(rng, mode),
        DecoderGen.Structured => InstructionGen.Structured(rng, mode),
        _ => rng.Chance(30) ? InstructionGen.RandomBytes(rng, mode) : InstructionGen.Structured(rng, mode),
    });

    public override string ReplayArgs => $" --mode {Modes.Bits(mode)}";
    public override string Show(DecoderCase c) => $"mode {Modes.Bits(c.Mode)} bytes {Modes.Hex(c.Bytes)}";
    public override int SizeOf(DecoderCase c) => c.Bytes.Length;

    public override IEnumerable<DecoderCase> Shrink(DecoderCase c)
    {
        byte[] b = c.Bytes;
        for (int n = 1; n < b.Length; n++) yield return c with { Bytes = b[..n] };          // shorter tails first
        for (int i = 0; i < b.Length; i++) yield return c with { Bytes = [.. b[..i], .. b[(i + 1)..]] }; // drop one byte
        for (int i = 0; i < b.Length; i++)
            foreach (byte s in new byte[] { 0x00, 0x01, 0x08 })
                if (b[i] > s) { var x = (byte[])b.Clone(); x[i] = s; yield return c with { Bytes = x }; }
    }

    public override string? Check(DecoderCase c)
    {
        bool ours;
        DecodedAccess d;
        try { ours = _decode(c.Bytes, c.Mode, out d); }
        catch (Exception ex) { return $"Copra threw {ex.GetType().Name}: {ex.Message}"; }
        Expected e = IcedOracle.Expect(c.Bytes, c.Mode);
        if (!ours)
        {
            if (e.Covered && (e.HasMemory || e.Kind is AccessKind.In or AccessKind.Out) && !e.DeliberateGap)
                return $"Copra refused ({d.Error}); Iced decoded an emulated form: {e.Text}";
            // The refusal reason must be consistent with Iced's verdict on the bytes.
            return d.Error switch
            {
                RefuseReason.RegisterOperand when !e.Valid => $"Copra refused as a register form, but Iced says the bytes are invalid ({e.Text})",
                RefuseReason.LockInvalid or RefuseReason.TooLong when e.Valid => $"Copra refused ({d.Error}), but Iced decodes {e.Text}",
                RefuseReason.Truncated when e.Valid || !e.NoMoreBytes => $"Copra refused as truncated, but Iced says {e.Text}",
                RefuseReason.None => "Copra refused without a reason",
                _ => null,
            };
        }
        if (!e.Covered) return $"Copra accepted {Describe(d)}; Iced: {e.Text} (not an emulated form)";
        string diff = Diff(d, e);
        return diff.Length == 0 ? null : $"Copra {Describe(d)}\n  Iced  {e.Text}\n  differs in {diff}";
    }

    public static string Describe(in DecodedAccess d) =>
        $"len={d.Length} kind={d.Kind} op={d.Op} size={d.Size} reg={d.Reg}{(d.RegHigh8 ? "h" : "")}/{d.RegSize} " +
        $"imm={(d.HasImm ? $"0x{d.Imm:x}" : "-")} rep={d.Rep} port={(d.PortIsDx ? "dx" : d.Port.ToString())} " +
        (d.HasMemory ? $"mem=seg{d.Segment}/{d.SrcSegment}:[{d.Base}+{d.Index}*{d.Scale}+0x{d.Disp:x}] asz={d.AddressSize} memdest={d.MemIsDest}" : "");

    static string Diff(in DecodedAccess d, in Expected e)
    {
        var s = new List<string>();
        void Cmp<T>(string what, T ours, T iced)
        {
            if (!EqualityComparer<T>.Default.Equals(ours, iced)) s.Add($"{what} (Copra {ours}, Iced {iced})");
        }
        Cmp("length", (int)d.Length, e.Length);
        Cmp("kind", d.Kind, e.Kind);
        Cmp("op", d.Op, e.Op);
        Cmp("size", d.OperandBytes, e.Size);
        Cmp("reg", (int)d.Reg, e.Reg);
        if (d.Reg >= 0) { Cmp("high8", d.RegHigh8, e.RegHigh8); Cmp("regsize", (int)d.RegSize, e.RegSize); }
        Cmp("hasimm", d.HasImm, e.HasImm);
        if (e.HasImm) Cmp("imm", d.Imm, e.Imm);
        Cmp("rep", d.Rep, e.Rep);
        Cmp("repne", d.RepNe, e.RepNe);
        Cmp("cond", (int)d.Cond, (int)e.Cond);
        if (IcedForms.IsSystem(e.Kind))
        {
            Cmp("sysreg", (int)d.SysReg, e.SysReg);
            // The operand size sizes a far pointer's offset and an LGDT/LIDT base; the m16 forms ignore it.
            if (e.Kind is AccessKind.FarJmp or AccessKind.FarCall or AccessKind.LoadFarPtr || e.SysReg is SysReg.Gdtr or SysReg.Idtr)
                Cmp("opsize", (int)d.RegSize, e.SysOperandSize);
        }
        if (d.Kind is AccessKind.In or AccessKind.Out or AccessKind.Ins or AccessKind.Outs)
        {
            Cmp("portIsDx", d.PortIsDx, e.PortIsDx);
            if (!e.PortIsDx) Cmp("port", (int)d.Port, e.Port);
        }
        if (e.HasMemory)
        {
            Cmp("direction(memdest)", d.MemIsDest, e.MemIsDest);
            Cmp("base", (int)d.Base, e.Base);
            Cmp("index", (int)d.Index, e.Index);
            Cmp("scale", (int)d.Scale, e.Scale);
            Cmp("disp", d.Disp, e.Disp);
            Cmp("segment", (int)d.Segment, e.Segment);
            Cmp("srcsegment", (int)d.SrcSegment, e.SrcSegment);
            Cmp("addrsize", (int)d.AddressSize, e.AddressSize);
        }
        return string.Join(", ", s);
    }
}

/// <summary>Instruction generators: prefix-weighted random bytes, and structured covered forms.</summary>
public static class InstructionGen
{
    public static readonly byte[] Legacy = [0x66, 0x67, 0xF2, 0xF3, 0xF0, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65];

    /// <summary>Every opcode the decoder covers, plus neighbours it must refuse (ADC/SBB, 82, LEA, MOV Sreg, CMPS, ...).</summary>
    public static readonly byte[] OneByte =
    [
        0x00, 0x01, 0x02, 0x03, 0x08, 0x09, 0x0A, 0x0B, 0x10, 0x11, 0x12, 0x13, 0x18, 0x19, 0x1A, 0x1B, 0x20, 0x21, 0x22, 0x23,
        0x28, 0x29, 0x2A, 0x2B, 0x30, 0x31, 0x32, 0x33, 0x38, 0x39, 0x3A, 0x3B, 0x63, 0x69, 0x6B, 0x6C, 0x6D, 0x6E, 0x6F,
        0x80, 0x81, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8B, 0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
        0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF, 0xC0, 0xC1, 0xC6, 0xC7, 0xD0, 0xD1, 0xD2, 0xD3,
        0xE4, 0xE5, 0xE6, 0xE7, 0xEC, 0xED, 0xEE, 0xEF, 0xF6, 0xF7, 0xFE, 0xFF, 0xD9, 0xDD, 0xC4, 0xC5,
    ];
    public static readonly byte[] Neighbours = [0x04, 0x05, 0x3C, 0x3D, 0x82, 0x8C, 0x8D, 0x8E, 0x8F, 0xA8, 0xA9, 0x90, 0x62, 0xD4, 0xD6, 0xD7, 0xC8, 0x68, 0x6A];
    public static readonly byte[] TwoByte =
    [
        0xA3, 0xAB, 0xB3, 0xBB, 0xBA, 0xB6, 0xB7, 0xBE, 0xBF, 0xA4, 0xA5, 0xAC, 0xAD, 0xAF, 0xB0, 0xB1, 0xC0, 0xC1, 0xC3, 0xC7,
        0x40, 0x43, 0x44, 0x47, 0x4A, 0x4F, 0x90, 0x92, 0x94, 0x97, 0x9C, 0x9F,
        0x10, 0x11, 0x28, 0x29, 0x2B, 0x6F, 0x7F, 0xE7, 0x38, 0xAE,
    ];
    public static readonly byte[] TwoByteNeighbours = [0xBC, 0xBD, 0xB8, 0xA2, 0xA0, 0xA8, 0xB2, 0xB4, 0xB5, 0x00, 0x01, 0xC2, 0xC8, 0x3A, 0x12, 0x13, 0x2A, 0x6E, 0x7E, 0xD6, 0xE6];
    /// <summary>0F 38 opcodes: MOVDIRI, MOVDIR64B (and ENQCMD(S) with F2/F3), and neighbours.</summary>
    public static readonly byte[] ThreeByte38 = [0xF8, 0xF9, 0xF8, 0xF9, 0xF0, 0xF1, 0xF6, 0x00];

    /// <summary>Little-endian edge values for displacements and immediates.</summary>
    static readonly byte[][] EdgeChunks =
    [
        [0x00], [0x01], [0x7F], [0x80], [0xFF], [0x00, 0x00], [0xFF, 0x7F], [0x00, 0x80], [0xFF, 0xFF],
        [0x00, 0x00, 0x00, 0x00], [0xFF, 0xFF, 0xFF, 0x7F], [0x00, 0x00, 0x00, 0x80], [0xFF, 0xFF, 0xFF, 0xFF],
        [0xF0, 0xFF, 0xFF, 0xFF], [0x01, 0x00, 0x00, 0x80], [0x00, 0x00, 0xFE, 0xFF],
    ];

    /// <summary>1..15 random bytes, a third of them prefix bytes (legacy or REX) and some opcode bytes.</summary>
    public static byte[] RandomBytes(Rng r, CpuMode mode)
    {
        int n = 1 + r.Next(15);
        var b = new byte[n];
        for (int i = 0; i < n; i++)
        {
            int k = r.Next(100);
            b[i] = k < 25 ? r.Pick(Legacy) : k < 35 ? (byte)(0x40 + r.Next(16)) : k < 45 ? r.Pick(OneByte) : k < 48 ? (byte)0x0F : r.Byte();
        }
        return b;
    }

    /// <summary>A covered form (sometimes a neighbour) with random prefixes, REX, ModRM, SIB, edge displacements and immediates.</summary>
    public static byte[] Structured(Rng r, CpuMode mode)
    {
        var b = new List<byte>(24);
        int np = r.Next(100) switch { < 40 => 0, < 65 => 1, < 80 => 2, < 90 => 3, < 96 => 5, _ => 8 };
        byte repeat = r.Pick(Legacy);
        for (int i = 0; i < np; i++) b.Add(r.Chance(30) ? repeat : r.Pick(Legacy)); // repeated and conflicting prefixes
        if (r.Chance(mode == CpuMode.Bits64 ? 55 : 10))
        {
            b.Add((byte)(0x40 + r.Next(16)));
            if (r.Chance(10)) b.Add((byte)(0x40 + r.Next(16)));  // two REX: the first is ignored
            if (r.Chance(12)) b.Add(r.Pick(Legacy));              // a legacy prefix after REX: REX ignored
        }
        int k = r.Next(100);
        byte op;
        bool twoByte = false;
        if (k < 78) op = r.Pick(OneByte);
        else if (k < 84) op = r.Pick(Neighbours);
        else { twoByte = true; op = k < 97 ? r.Pick(TwoByte) : r.Pick(TwoByteNeighbours); }
        if (twoByte) b.Add(0x0F);
        b.Add(op);
        if (twoByte && op == 0x38) b.Add(r.Pick(ThreeByte38));
        // ModRM: memory forms dominate; group opcodes mostly get a /digit the decoder emulates.
        int mod = r.Next(100) switch { < 35 => 0, < 65 => 1, < 93 => 2, _ => 3 };
        int reg = r.Next(8);
        if (!twoByte && op is 0xF6 or 0xF7 && r.Chance(70)) reg = r.Chance(85) ? 0 : 1;
        if (!twoByte && op is 0xC6 or 0xC7 && r.Chance(80)) reg = 0;
        if (twoByte && op == 0xBA && r.Chance(70)) reg = 4 + r.Next(4);
        if (twoByte && op == 0xC7 && r.Chance(70)) reg = 1;
        int rm = r.Next(100) switch { < 25 => 4, < 40 => 5, _ => r.Next(8) };
        b.Add((byte)(mod << 6 | reg << 3 | rm));
        if (r.Chance(70))
        {
            int scale = r.Next(4), index = r.Chance(20) ? 4 : r.Next(8), sbase = r.Chance(25) ? 5 : r.Next(8);
            b.Add((byte)(scale << 6 | index << 3 | sbase));
        }
        else b.Add(r.Byte());
        while (b.Count < 15) b.AddRange(r.Chance(80) ? r.Pick(EdgeChunks) : [r.Byte()]);
        int len = r.Chance(8) ? 1 + r.Next(15) : 15; // sometimes cut short: Truncated must agree
        return [.. b.Take(Math.Min(len, b.Count))];
    }
}

using System.Globalization;
using System.Text;
using Copra.Hot.Decode;
using Xunit;

namespace Copra.Tests.Decode;

/// <summary>
/// Reads the decoder vector files (Iced-style: <c>hex bytes | key=value ...</c>, # comments) and renders a
/// DecodedAccess into the same keys. Keys: len kind size reg imm rep (0, 1, or ne for REPNE CMPS/SCAS) seg srcseg mem asz port op dest cond, or error
/// for a refusal, plus <c>iced=accept</c> on a refusal the Iced fallback is expected to accept. A key left out
/// must have its neutral value ("none", rep=0, srcseg=seg), so a vector pins every field of the access.
/// </summary>
public static class DecoderVectors
{
    public sealed record Vector(string File, int Line, string Hex, byte[] Bytes, Dictionary<string, string> Expected)
    {
        public override string ToString() => $"{File}:{Line} {Hex}";
    }

    public static string VectorPath(string file) => Path.Combine(AppContext.BaseDirectory, "Vectors", "Decoder", file);

    public static IReadOnlyList<Vector> Load(string file)
    {
        var list = new List<Vector>();
        string[] lines = File.ReadAllLines(VectorPath(file));
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i];
            int hash = line.IndexOf('#');
            if (hash >= 0) line = line[..hash];
            if (string.IsNullOrWhiteSpace(line)) continue;
            int bar = line.IndexOf('|');
            if (bar < 0) throw new InvalidDataException($"{file}:{i + 1}: no '|'");
            string hex = line[..bar].Trim();
            var expected = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (string tok in line[(bar + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                int eq = tok.IndexOf('=');
                if (eq <= 0) throw new InvalidDataException($"{file}:{i + 1}: bad token '{tok}'");
                expected.Add(tok[..eq], tok[(eq + 1)..]);
            }
            list.Add(new Vector(file, i + 1, hex, Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal)), expected));
        }
        return list;
    }

    public static TheoryData<string, int> Theory(string file)
    {
        var data = new TheoryData<string, int>();
        foreach (var v in Load(file)) data.Add(file, v.Line);
        return data;
    }

    public static Vector Get(string file, int line) => Load(file).Single(v => v.Line == line);

    public static readonly string[] Keys = ["len", "kind", "size", "reg", "imm", "rep", "seg", "srcseg", "mem", "asz", "port", "op", "dest", "cond", "align"];

    static readonly string[] CondNames = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"];

    /// <summary>Asserts the decoder's answer matches the vector, key by key.</summary>
    public static void Check(Vector v, CpuMode mode)
    {
        bool ok = X86Decoder.TryDecode(v.Bytes, mode, out DecodedAccess d);
        if (v.Expected.TryGetValue("error", out string? error))
        {
            Assert.False(ok, $"{v}: decoded, expected refusal {error}");
            Assert.Equal(AccessKind.Unsupported, d.Kind);
            Assert.Equal(0, d.Length);
            Assert.Equal(error, ErrorName(d.Error));
            return;
        }
        Assert.True(ok, $"{v}: refused with {d.Error}");
        Assert.Equal(RefuseReason.None, d.Error);
        foreach (string req in new[] { "len", "kind", "size" })
            Assert.True(v.Expected.ContainsKey(req), $"{v}: vector lacks '{req}'");
        foreach (string key in v.Expected.Keys)
            Assert.True(Array.IndexOf(Keys, key) >= 0, $"{v}: unknown key '{key}'");
        var actual = Render(in d);
        foreach (string key in Keys)
        {
            string want = v.Expected.TryGetValue(key, out string? e) ? e : Neutral(key, v.Expected);
            Assert.True(want == actual[key], $"{v}: {key} expected '{want}', got '{actual[key]}'");
        }
        if (d.Index < 0) Assert.Equal(1, d.Scale);
    }

    static string Neutral(string key, Dictionary<string, string> expected) => key switch
    {
        "rep" => "0",
        "srcseg" => expected.TryGetValue("seg", out string? s) ? s : "none",
        _ => "none",
    };

    /// <summary>The vector keys of an accepted access.</summary>
    public static Dictionary<string, string> Render(in DecodedAccess d)
    {
        var r = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["len"] = d.Length.ToString(CultureInfo.InvariantCulture),
            ["kind"] = KindName(d.Kind),
            ["size"] = d.Size.ToString(CultureInfo.InvariantCulture),
            ["reg"] = d.Reg < 0 ? "none" : d.Kind is AccessKind.ReadVec or AccessKind.WriteVec ? "xmm" + d.Reg
                : d.Kind is AccessKind.MmxRead or AccessKind.MmxWrite ? "mm" + d.Reg : RegName(d.Reg, d.RegHigh8, d.RegSize),
            ["imm"] = d.HasImm ? "0x" + ((ulong)d.Imm).ToString("x", CultureInfo.InvariantCulture) : "none",
            ["rep"] = d.RepNe ? "ne" : d.Rep ? "1" : "0",
            ["port"] = d.Kind is AccessKind.In or AccessKind.Out or AccessKind.Ins or AccessKind.Outs
                ? (d.PortIsDx ? "dx" : "0x" + d.Port.ToString("x", CultureInfo.InvariantCulture)) : "none",
            ["op"] = d.Op != AluOp.None ? d.Op.ToString().ToLowerInvariant() : "none",
            ["dest"] = d.Kind == AccessKind.Alu ? (d.MemIsDest ? "mem" : "reg") : "none",
            ["cond"] = d.Kind is AccessKind.Setcc or AccessKind.Cmov ? CondNames[d.Cond] : "none",
            ["align"] = d.Align == 0 ? "none" : d.Align.ToString(CultureInfo.InvariantCulture),
        };
        bool mem = d.Kind is not (AccessKind.In or AccessKind.Out);
        r["seg"] = mem ? SegName(d.Segment) : "none";
        r["srcseg"] = mem ? SegName(d.SrcSegment) : "none";
        r["asz"] = mem ? d.AddressSize.ToString(CultureInfo.InvariantCulture) : "none";
        r["mem"] = mem ? MemText(in d) : "none";
        return r;
    }

    static string MemText(in DecodedAccess d)
    {
        var sb = new StringBuilder("[");
        if (d.Base == Gpr.Rip) sb.Append(d.AddressSize == 8 ? "rip" : "eip");
        else if (d.Base >= 0) sb.Append(RegName(d.Base, false, d.AddressSize));
        if (d.Index >= 0)
        {
            if (sb.Length > 1) sb.Append('+');
            sb.Append(RegName(d.Index, false, d.AddressSize));
            if (d.Scale != 1) sb.Append('*').Append(d.Scale);
        }
        ulong mask = d.AddressSize == 8 ? ulong.MaxValue : (1UL << (d.AddressSize * 8)) - 1;
        if (sb.Length == 1) sb.Append("0x").Append(((ulong)d.Disp & mask).ToString("x", CultureInfo.InvariantCulture));
        else if (d.Disp > 0) sb.Append("+0x").Append(d.Disp.ToString("x", CultureInfo.InvariantCulture));
        else if (d.Disp < 0) sb.Append("-0x").Append(((ulong)-d.Disp).ToString("x", CultureInfo.InvariantCulture));
        return sb.Append(']').ToString();
    }

    public static string KindName(AccessKind k) => k switch
    {
        AccessKind.WriteImm => "write_imm",
        AccessKind.ReadZx => "read_zx",
        AccessKind.ReadSx => "read_sx",
        AccessKind.ReadVec => "read_vec",
        AccessKind.WriteVec => "write_vec",
        AccessKind.MmxRead => "mmx_read",
        AccessKind.MmxWrite => "mmx_write",
        _ => k.ToString().ToLowerInvariant(),
    };

    public static string ErrorName(RefuseReason r) => r switch
    {
        RefuseReason.TooLong => "too_long",
        RefuseReason.UnknownOpcode => "unknown_opcode",
        RefuseReason.RegisterOperand => "register_operand",
        RefuseReason.InvalidInMode => "invalid_in_mode",
        RefuseReason.LockInvalid => "lock_invalid",
        RefuseReason.UnsupportedOp => "unsupported_op",
        _ => r.ToString().ToLowerInvariant(),
    };

    static readonly string[] Seg = ["es", "cs", "ss", "ds", "fs", "gs"];
    static string SegName(byte s) => Seg[s];

    static readonly string[] R64 = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"];
    static readonly string[] R32 = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];
    static readonly string[] R16 = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"];
    static readonly string[] R8 = ["al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil"];
    static readonly string[] H8 = ["ah", "ch", "dh", "bh"];

    public static string RegName(int reg, bool high8, int size)
    {
        if (high8) return H8[reg];
        if (reg >= 8) return "r" + reg + size switch { 1 => "b", 2 => "w", 4 => "d", _ => "" };
        return (size switch { 1 => R8, 2 => R16, 4 => R32, _ => R64 })[reg];
    }
}

using System.Globalization;
using Copra.Hot.Decode;
using Xunit;

namespace Copra.Tests.Decode;

/// <summary>
/// Vectors/Decoder/WriteBack.txt: decode the bytes, run the write-back function for the kind on the given
/// registers/flags/value, and compare every named result; registers not named must be unchanged.
/// </summary>
public class WriteBackTests
{
    const string File = "WriteBack.txt";
    static readonly string[] RegNames = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];

    public sealed record Vector(int Line, CpuMode Mode, byte[] Bytes, Dictionary<string, long> Inputs, Dictionary<string, string> Expected);

    static IReadOnlyList<Vector> Load()
    {
        var list = new List<Vector>();
        string[] lines = System.IO.File.ReadAllLines(DecoderVectors.VectorPath(File));
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i];
            int hash = line.IndexOf('#');
            if (hash >= 0) line = line[..hash];
            if (string.IsNullOrWhiteSpace(line)) continue;
            string[] parts = line.Split('|');
            if (parts.Length != 3) throw new InvalidDataException($"{File}:{i + 1}: expected 'mode hex | inputs | expected'");
            string[] head = parts[0].Split(' ', 2, StringSplitOptions.RemoveEmptyEntries);
            CpuMode mode = head[0] switch { "16" => CpuMode.Bits16, "32" => CpuMode.Bits32, "64" => CpuMode.Bits64, _ => throw new InvalidDataException($"{File}:{i + 1}: mode") };
            byte[] bytes = Convert.FromHexString(head[1].Replace(" ", "", StringComparison.Ordinal));
            var inputs = Pairs(parts[1]).ToDictionary(kv => kv.Key, kv => (long)ParseHex(kv.Value), StringComparer.Ordinal);
            var expected = Pairs(parts[2]).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
            if (expected.Count == 0) throw new InvalidDataException($"{File}:{i + 1}: nothing expected");
            list.Add(new Vector(i + 1, mode, bytes, inputs, expected));
        }
        return list;
    }

    static IEnumerable<KeyValuePair<string, string>> Pairs(string s) =>
        s.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(t =>
        {
            int eq = t.IndexOf('=');
            if (eq <= 0) throw new InvalidDataException($"bad token '{t}'");
            return new KeyValuePair<string, string>(t[..eq], t[(eq + 1)..]);
        });

    static ulong ParseHex(string s) => s.StartsWith('-')
        ? (ulong)-(long)ulong.Parse(s[1..], NumberStyles.HexNumber, CultureInfo.InvariantCulture)
        : ulong.Parse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    public static TheoryData<int> Vectors
    {
        get
        {
            var data = new TheoryData<int>();
            foreach (var v in Load()) data.Add(v.Line);
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public void AppliesArchitecturalRules(int line)
    {
        var v = Load().Single(x => x.Line == line);
        string where = $"{File}:{line}";
        Assert.True(X86Decoder.TryDecode(v.Bytes, v.Mode, out DecodedAccess d), $"{where}: refused {d.Error}");

        var gprs = new ulong[16];
        for (int r = 0; r < 16; r++) gprs[r] = v.Inputs.TryGetValue(RegNames[r], out long x) ? (ulong)x : 0;
        ulong[] before = (ulong[])gprs.Clone();
        ulong flags = v.Inputs.TryGetValue("flags", out long f) ? (ulong)f : 0x2;
        ulong val = v.Inputs.TryGetValue("val", out long m) ? (ulong)m : 0;
        ulong rip = v.Inputs.TryGetValue("rip", out long ip) ? (ulong)ip : 0;
        ulong segBase = v.Inputs.TryGetValue("segbase", out long sb) ? (ulong)sb : 0;
        ulong srcBase = v.Inputs.TryGetValue("srcbase", out long ss) ? (ulong)ss : 0;

        var actual = new Dictionary<string, string>(StringComparer.Ordinal);
        // Addresses are taken before the registers move, as the exit path does.
        actual["ea"] = Hex(EffectiveAddress.Compute(in d, before, rip + d.Length, segBase));
        if (d.Kind == AccessKind.Movs) actual["src"] = Hex(EffectiveAddress.ComputeMovsSource(in d, before, srcBase));

        switch (d.Kind)
        {
            case AccessKind.Read or AccessKind.ReadZx or AccessKind.ReadSx or AccessKind.In:
                WriteBack.ApplyRead(in d, gprs, val);
                break;
            case AccessKind.Write or AccessKind.WriteImm or AccessKind.Out:
                actual["store"] = Hex(WriteBack.StoreValue(in d, gprs));
                break;
            case AccessKind.Alu:
                actual["mem"] = WriteBack.Alu(in d, gprs, ref flags, val, out ulong w) ? Hex(w) : "none";
                break;
            case AccessKind.Xchg:
                actual["mem"] = Hex(WriteBack.Xchg(in d, gprs, val));
                break;
            case AccessKind.Bt:
                long off = WriteBack.BtByteOffset(in d, gprs);
                actual["btoff"] = off < 0 ? "-" + Hex((ulong)-off) : Hex((ulong)off);
                WriteBack.Bt(in d, gprs, ref flags, val);
                break;
            default: // string forms
                if (d.Kind == AccessKind.Stos) actual["store"] = Hex(WriteBack.StoreValue(in d, gprs));
                bool skip = WriteBack.RepSkips(in d, gprs);
                actual["skip"] = skip ? "1" : "0";
                if (!skip) actual["done"] = WriteBack.StringStep(in d, gprs, flags) ? "1" : "0";
                break;
        }
        actual["flags"] = Hex(flags);
        for (int r = 0; r < 16; r++) actual[RegNames[r]] = Hex(gprs[r]);

        foreach (var (key, want) in v.Expected)
        {
            Assert.True(actual.ContainsKey(key), $"{where}: '{key}' is not produced for {d.Kind}");
            Assert.True(Hex(ParseOrNone(want)) == actual[key] || want == actual[key], $"{where}: {key} expected {want}, got {actual[key]}");
        }
        for (int r = 0; r < 16; r++)
        {
            if (!v.Expected.ContainsKey(RegNames[r])) Assert.True(before[r] == gprs[r], $"{where}: {RegNames[r]} changed to {gprs[r]:x}");
        }
        if (!v.Expected.ContainsKey("flags") && d.Kind is not (AccessKind.Alu or AccessKind.Bt))
            Assert.True(flags == (v.Inputs.TryGetValue("flags", out long f0) ? (ulong)f0 : 0x2), $"{where}: flags changed");
    }

    static ulong ParseOrNone(string s) => s is "none" ? ulong.MaxValue : ParseHex(s);

    static string Hex(ulong x) => x.ToString("x", CultureInfo.InvariantCulture);
}

/// <summary>SDM rules for the faults the CPU oracle cannot run natively: #DE is decided without dividing past Int128.</summary>
public class ExecutorFaultTests
{
    [Theory]
    [InlineData("48 f7 3e", 0x0UL, 0x8000_0000_0000_0000UL, ulong.MaxValue)]     // idiv qword: -2^127 / -1 (found by the campaign)
    [InlineData("48 f7 3e", 0x0UL, 0x0UL, 0x0UL)]                                 // idiv by zero
    [InlineData("48 f7 36", 0x0UL, 0x1UL, 0x1UL)]                                 // div: 2^64 / 1 does not fit
    [InlineData("f7 3e", 0x8000_0000UL, 0xFFFF_FFFFUL, 0xFFFF_FFFFUL)]            // idiv dword: -2^31 / -1
    public void DivideErrorsChangeNothing(string hex, ulong rax, ulong rdx, ulong divisor)
    {
        Assert.True(X86Decoder.TryDecode(Convert.FromHexString(hex.Replace(" ", "")), CpuMode.Bits64, out DecodedAccess d));
        var g = new ulong[16];
        g[0] = rax; g[2] = rdx;
        ulong f = 0x2;
        var res = Copra.Hot.Emulate.Executor.Execute(in d, g, ref f, divisor, out _);
        Assert.Equal(Copra.Hot.Emulate.ExecResult.DivideError, res);
        Assert.Equal(rax, g[0]);
        Assert.Equal(rdx, g[2]);
        Assert.Equal(0x2UL, f);
    }
}

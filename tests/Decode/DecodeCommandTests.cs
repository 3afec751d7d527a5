using System.Text.Json;
using Copra.Hot.Decode;
using Copra.Kernel;
using Xunit;

namespace Copra.Tests.Decode;

/// <summary>`copra decode`: lines of hex in, one JSON object per instruction out.</summary>
public class DecodeCommandTests
{
    static readonly string[] AlwaysKeys = ["len", "mnemonic", "mem_dir", "mem_size", "kind", "size", "reg", "imm", "rep", "seg", "base", "index", "scale", "disp", "port", "op", "decoder"];

    static List<JsonElement> Run(string input, CpuMode mode = CpuMode.Bits64)
    {
        var output = new StringWriter();
        Assert.Equal(0, DecodeCommand.Run(new StringReader(input), output, mode));
        var list = new List<JsonElement>();
        foreach (string line in output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            using var doc = JsonDocument.Parse(line);
            JsonElement e = doc.RootElement.Clone();
            foreach (string k in AlwaysKeys) Assert.True(e.TryGetProperty(k, out _), $"missing '{k}' in {line}");
            list.Add(e);
        }
        return list;
    }

    static JsonElement One(string input, CpuMode mode = CpuMode.Bits64) => Assert.Single(Run(input, mode));

    static string? Str(JsonElement e, string key) => e.GetProperty(key).ValueKind == JsonValueKind.Null ? null : e.GetProperty(key).GetString();

    [Fact]
    public void SibLoadWithStackSegment()
    {
        var e = One("89 04 24");
        Assert.Equal(3, e.GetProperty("len").GetInt32());
        Assert.Equal("write", Str(e, "kind"));
        Assert.Equal(4, e.GetProperty("size").GetInt32());
        Assert.Equal("eax", Str(e, "reg"));
        Assert.Equal(JsonValueKind.Null, e.GetProperty("imm").ValueKind);
        Assert.False(e.GetProperty("rep").GetBoolean());
        Assert.Equal("ss", Str(e, "seg"));
        Assert.Equal("rsp", Str(e, "base"));
        Assert.Null(Str(e, "index"));
        Assert.Equal(1, e.GetProperty("scale").GetInt32());
        Assert.Equal(0, e.GetProperty("disp").GetInt64());
        Assert.Equal(JsonValueKind.Null, e.GetProperty("port").ValueKind);
        Assert.Equal(JsonValueKind.Null, e.GetProperty("op").ValueKind);
        Assert.False(e.TryGetProperty("error", out _));
        Assert.Equal("copra", Str(e, "decoder"));
    }

    [Fact]
    public void RegisterNamesCarryTheirWidth()
    {
        var rows = Run("66 45 8b 4b 04\n88 20\n40 88 20\n44 88 08\n48 0f be 00\n4a 8b 44 c8 f8");
        Assert.Equal(["r9w", "ah", "spl", "r9b", "rax", "rax"], rows.Select(r => Str(r, "reg")!).ToArray());
        Assert.Equal("r11", Str(rows[0], "base"));
        Assert.Equal(4, rows[0].GetProperty("disp").GetInt64());
        Assert.Equal("read_sx", Str(rows[4], "kind"));
        Assert.Equal("r9", Str(rows[5], "index"));
        Assert.Equal(8, rows[5].GetProperty("scale").GetInt32());
        Assert.Equal(-8, rows[5].GetProperty("disp").GetInt64());
    }

    [Fact]
    public void ImmediatesAreOperandSizeValues()
    {
        var rows = Run("48 c7 00 ff ff ff ff\nc7 00 ff ff ff ff\n83 00 ff");
        Assert.Equal("write_imm", Str(rows[0], "kind"));
        Assert.Equal(-1, rows[0].GetProperty("imm").GetInt64());
        Assert.Equal(0xFFFF_FFFFL, rows[1].GetProperty("imm").GetInt64());
        Assert.Equal("alu", Str(rows[2], "kind"));
        Assert.Equal("add", Str(rows[2], "op"));
        Assert.Equal(0xFFFF_FFFFL, rows[2].GetProperty("imm").GetInt64());
    }

    [Fact]
    public void StringAndPortForms()
    {
        var rows = Run("f3 64 a4\nec\ne4 60\n66 6f\n67 f3 aa");
        Assert.Equal("movs", Str(rows[0], "kind"));
        Assert.True(rows[0].GetProperty("rep").GetBoolean());
        Assert.Equal("es", Str(rows[0], "seg"));
        Assert.Equal("fs", Str(rows[0], "src_seg"));
        Assert.Equal("rdi", Str(rows[0], "base"));
        Assert.Equal("in", Str(rows[1], "kind"));
        Assert.Equal("al", Str(rows[1], "reg"));
        Assert.Equal("dx", Str(rows[1], "port"));
        Assert.Equal(JsonValueKind.Null, rows[1].GetProperty("seg").ValueKind);
        Assert.Equal(JsonValueKind.Null, rows[1].GetProperty("base").ValueKind);
        Assert.Equal(0x60, rows[2].GetProperty("port").GetInt32());
        Assert.Equal("outs", Str(rows[3], "kind"));
        Assert.Equal(2, rows[3].GetProperty("size").GetInt32());
        Assert.Equal("rsi", Str(rows[3], "base"));
        Assert.Equal("dx", Str(rows[3], "port"));
        Assert.Equal("stos", Str(rows[4], "kind"));
        Assert.Equal("edi", Str(rows[4], "base"));
    }

    [Fact]
    public void RipRelativeAndAbsoluteAddresses()
    {
        var rows = Run("8b 05 10 00 00 00\n67 8b 05 f0 ff ff ff\na1 00 00 00 00 00 00 00 80\n8b 04 25 00 00 00 80");
        Assert.Equal("rip", Str(rows[0], "base"));
        Assert.Equal(16, rows[0].GetProperty("disp").GetInt64());
        Assert.Equal("eip", Str(rows[1], "base"));
        Assert.Equal(-16, rows[1].GetProperty("disp").GetInt64());
        Assert.Null(Str(rows[2], "base"));
        Assert.Equal(0x8000_0000_0000_0000UL, rows[2].GetProperty("disp").GetUInt64());
        // An absolute [disp32] is an address: sign-extended to 64 bits as the CPU does, printed unsigned.
        Assert.Equal(0xFFFF_FFFF_8000_0000UL, rows[3].GetProperty("disp").GetUInt64());
    }

    [Fact]
    public void SixteenBitAddressing()
    {
        var e = One("89 42 01", CpuMode.Bits16);
        Assert.Equal("ax", Str(e, "reg"));
        Assert.Equal("bp", Str(e, "base"));
        Assert.Equal("si", Str(e, "index"));
        Assert.Equal("ss", Str(e, "seg"));
        Assert.Equal(1, e.GetProperty("disp").GetInt64());
    }

    [Fact]
    public void FallbackIsNamed()
    {
        var e = One("f6 08 01");
        Assert.Equal("iced", Str(e, "decoder"));
        Assert.Equal("alu", Str(e, "kind"));
        Assert.Equal("test", Str(e, "op"));
        Assert.False(e.TryGetProperty("error", out _));
        var alias = One("82 00 01", CpuMode.Bits32);
        Assert.Equal("iced", Str(alias, "decoder"));
        Assert.Equal("add", Str(alias, "op"));
    }

    [Fact]
    public void RefusalsCarryTheReason()
    {
        var rows = Run("90\n8b c1\nf0 8b 00\n89 44");
        Assert.Equal(["unknown_opcode", "register_operand", "lock_invalid", "truncated"], rows.Select(r => Str(r, "error")!).ToArray());
        foreach (var r in rows)
        {
            Assert.Equal("unsupported", Str(r, "kind"));
            Assert.Equal(0, r.GetProperty("len").GetInt32());
            Assert.Equal(JsonValueKind.Null, r.GetProperty("reg").ValueKind);
            Assert.Equal(JsonValueKind.Null, r.GetProperty("base").ValueKind);
        }
        Assert.Equal("read_sx", Str(Run("63 00")[0], "kind"));
        Assert.Equal("invalid_in_mode", Str(One("63 00", CpuMode.Bits32), "error"));
    }

    [Fact]
    public void BadHexIsALineNotACrash()
    {
        var rows = Run("zz\n8\n89 0\n" + string.Concat(Enumerable.Repeat("90 ", 80)) + "\n89 00");
        Assert.Equal(5, rows.Count);
        Assert.All(rows.Take(4), r => Assert.Equal("bad_hex", Str(r, "error")));
        Assert.Equal("write", Str(rows[4], "kind"));
    }

    [Fact]
    public void BlankLinesCommentsAndSpellings()
    {
        var rows = Run("\n# a comment\n   \n8900 # mov [rax],eax\n0x89, 0x00\n  89   00  \n");
        Assert.Equal(3, rows.Count);
        Assert.All(rows, r => Assert.Equal(2, r.GetProperty("len").GetInt32()));
    }

    [Fact]
    public void ParseModeAcceptsTheThreeModes()
    {
        Assert.Equal(CpuMode.Bits64, DecodeCommand.ParseMode(null));
        Assert.Equal(CpuMode.Bits64, DecodeCommand.ParseMode("64"));
        Assert.Equal(CpuMode.Bits32, DecodeCommand.ParseMode("32"));
        Assert.Equal(CpuMode.Bits16, DecodeCommand.ParseMode("16"));
        Assert.Throws<CliException>(() => DecodeCommand.ParseMode("8"));
    }

    /// <summary>Issue 14's fields: Iced's mnemonic, the memory direction and size, on every family.</summary>
    [Theory]
    [InlineData("f0 0f c1 08", "xadd", "rmw", 4)]
    [InlineData("0f ab 08", "bts", "rmw", 4)]
    [InlineData("0f a3 08", "bt", "read", 4)]
    [InlineData("0f 94 00", "sete", "write", 1)]
    [InlineData("48 0f 4f 08", "cmovg", "read", 8)]
    [InlineData("f3 a6", "cmpsb", "read", 1)]
    [InlineData("f7 30", "div", "read", 4)]
    [InlineData("66 ff 08", "dec", "rmw", 2)]
    [InlineData("48 3b 08", "cmp", "read", 8)]
    [InlineData("01 08", "add", "rmw", 4)]
    [InlineData("03 08", "add", "read", 4)]
    [InlineData("f0 48 0f c7 0e", "cmpxchg16b", "rmw", 16)]
    [InlineData("0f c3 08", "movnti", "write", 4)]
    [InlineData("a5", "movsd", "rmw", 4)]
    [InlineData("88 00", "mov", "write", 1)]
    [InlineData("d3 28", "shr", "rmw", 4)]
    public void MnemonicDirectionAndSize(string hex, string mnemonic, string dir, int size)
    {
        var e = One(hex);
        Assert.Equal(mnemonic, Str(e, "mnemonic"));
        Assert.Equal(dir, Str(e, "mem_dir"));
        Assert.Equal(size, e.GetProperty("mem_size").GetInt32());
    }

    [Fact]
    public void PortFormsAndRefusalsHaveNoMemoryDirection()
    {
        var rows = Run("ec\n0f 0b\nzz");
        Assert.Equal("in", Str(rows[0], "mnemonic"));
        Assert.Equal("ud2", Str(rows[1], "mnemonic"));
        Assert.Null(Str(rows[2], "mnemonic"));
        foreach (var r in rows)
        {
            Assert.Equal("none", Str(r, "mem_dir"));
            Assert.Equal(JsonValueKind.Null, r.GetProperty("mem_size").ValueKind);
        }
    }
}

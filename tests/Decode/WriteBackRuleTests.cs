// Write-back rules that the vector file left open (mutation survivors): each test names its rule.
using Copra.Hot.Decode;
using Xunit;

namespace Copra.Tests.Decode;

public class WriteBackRuleTests
{
    static DecodedAccess Decode(params byte[] bytes)
    {
        Assert.True(X86Decoder.TryDecode(bytes, CpuMode.Bits64, out var d), d.Error.ToString());
        return d;
    }

    [Fact]
    public void An_ALU_with_a_register_destination_writes_the_register_and_never_memory()
    {
        var d = Decode(0x03, 0x08);                  // add ecx, [rax]
        var gprs = new ulong[16];
        gprs[1] = 0xFFFF_FFFF_0000_0005;             // a 32-bit destination: bits 63:32 are cleared
        ulong fl = 0x2;
        Assert.False(WriteBack.Alu(d, gprs, ref fl, 7, out ulong mem), "a device write after add ecx,[mmio]");
        Assert.Equal(0ul, mem);
        Assert.Equal(12ul, gprs[1]);
    }

    [Fact]
    public void A_memory_destination_ALU_writes_memory_and_leaves_the_register()
    {
        var d = Decode(0x01, 0x08);                  // add [rax], ecx
        var gprs = new ulong[16];
        gprs[1] = 5;
        ulong fl = 0x2;
        Assert.True(WriteBack.Alu(d, gprs, ref fl, 7, out ulong mem));
        Assert.Equal(12ul, mem);
        Assert.Equal(5ul, gprs[1]);
    }

    [Fact]
    public void Adding_zero_clears_CF_even_when_it_was_set()
    {
        var d = Decode(0x83, 0x00, 0x00);            // add dword [rax], 0
        ulong fl = 0x2 | WriteBack.CF | WriteBack.OF;
        Assert.True(WriteBack.Alu(d, new ulong[16], ref fl, 0x1234, out ulong mem));
        Assert.Equal(0x1234ul, mem);
        Assert.Equal(0ul, fl & WriteBack.CF);
        Assert.Equal(0ul, fl & WriteBack.OF);
        // And the carry-out case sets it: 0xFFFFFFFF + 1 wraps to 0 with CF and ZF.
        var one = Decode(0x83, 0x00, 0x01);
        fl = 0x2;
        WriteBack.Alu(one, new ulong[16], ref fl, 0xFFFF_FFFF, out mem);
        Assert.Equal(0ul, mem);
        Assert.Equal(WriteBack.CF | WriteBack.ZF, fl & (WriteBack.CF | WriteBack.ZF));
    }

    [Fact]
    public void CMP_and_TEST_set_flags_and_write_nothing()
    {
        var cmp = Decode(0x39, 0x08);                // cmp [rax], ecx
        var gprs = new ulong[16];
        gprs[1] = 9;
        ulong fl = 0x2;
        Assert.False(WriteBack.Alu(cmp, gprs, ref fl, 9, out ulong mem));
        Assert.Equal(0ul, mem);
        Assert.Equal(WriteBack.ZF, fl & WriteBack.ZF);
        Assert.Equal(9ul, gprs[1]);
        var test = Decode(0x85, 0x08);               // test [rax], ecx
        fl = 0x2 | WriteBack.CF;
        Assert.False(WriteBack.Alu(test, gprs, ref fl, 6, out mem));
        Assert.Equal(0ul, fl & WriteBack.CF);
        Assert.Equal(9ul, gprs[1]);
    }
}

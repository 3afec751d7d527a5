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

    /// <summary>Runs <see cref="WriteBack.Alu"/> for <paramref name="bytes"/> with RCX and RFLAGS given and the device's value.</summary>
    static (bool WritesMemory, ulong Mem, ulong Flags, ulong Rcx) Alu(byte[] bytes, ulong rcx, ulong flags, ulong memValue)
    {
        var gprs = new ulong[16];
        gprs[Gpr.Rcx] = rcx;
        bool writes = WriteBack.Alu(Decode(bytes), gprs, ref flags, memValue, out ulong mem);
        return (writes, mem, flags, gprs[Gpr.Rcx]);
    }

    [Fact]
    public void An_ALU_with_a_register_destination_writes_the_register_and_never_memory()
    {
        // add ecx, [rax]: a 32-bit destination, so bits 63:32 are cleared.
        var r = Alu([0x03, 0x08], rcx: 0xFFFF_FFFF_0000_0005, flags: 0x2, memValue: 7);
        Assert.False(r.WritesMemory, "a device write after add ecx,[mmio]");
        Assert.Equal(0ul, r.Mem);
        Assert.Equal(12ul, r.Rcx);
    }

    [Fact]
    public void A_memory_destination_ALU_writes_memory_and_leaves_the_register()
    {
        var r = Alu([0x01, 0x08], rcx: 5, flags: 0x2, memValue: 7);   // add [rax], ecx
        Assert.True(r.WritesMemory);
        Assert.Equal(12ul, r.Mem);
        Assert.Equal(5ul, r.Rcx);
    }

    [Fact]
    public void Adding_zero_clears_CF_even_when_it_was_set()
    {
        var r = Alu([0x83, 0x00, 0x00], rcx: 0, flags: 0x2 | WriteBack.CF | WriteBack.OF, memValue: 0x1234);   // add dword [rax], 0
        Assert.True(r.WritesMemory);
        Assert.Equal(0x1234ul, r.Mem);
        Assert.Equal(0ul, r.Flags & WriteBack.CF);
        Assert.Equal(0ul, r.Flags & WriteBack.OF);
        // And the carry-out case sets it: 0xFFFFFFFF + 1 wraps to 0 with CF and ZF.
        r = Alu([0x83, 0x00, 0x01], rcx: 0, flags: 0x2, memValue: 0xFFFF_FFFF);
        Assert.Equal(0ul, r.Mem);
        Assert.Equal(WriteBack.CF | WriteBack.ZF, r.Flags & (WriteBack.CF | WriteBack.ZF));
    }

    [Fact]
    public void CMP_and_TEST_set_flags_and_write_nothing()
    {
        var cmp = Alu([0x39, 0x08], rcx: 9, flags: 0x2, memValue: 9);                 // cmp [rax], ecx
        Assert.False(cmp.WritesMemory);
        Assert.Equal(0ul, cmp.Mem);
        Assert.Equal(WriteBack.ZF, cmp.Flags & WriteBack.ZF);
        Assert.Equal(9ul, cmp.Rcx);
        var test = Alu([0x85, 0x08], rcx: 9, flags: 0x2 | WriteBack.CF, memValue: 6);  // test [rax], ecx
        Assert.False(test.WritesMemory);
        Assert.Equal(0ul, test.Flags & WriteBack.CF);
        Assert.Equal(9ul, test.Rcx);
    }
}

using Copra.Hot.Decode;
using Copra.Hot.Emulate;
using Xunit;
using A = Copra.Hot.State.SegmentAttributes;

namespace Copra.Tests.Emulate;

/// <summary>
/// hot/Emulate/StackOps.cs against the SDM (vol. 2: PUSH, POP, CALL, JMP): a near CALL/JMP m cannot run natively as it is
/// (it would leave the oracle's code), and the 16- and 32-bit stacks cannot be made on a 64-bit host, so each rule is a
/// case here. The exit path's use of them is tests/Kernel/StackFamiliesTests.cs.
/// </summary>
public class StackRuleTests
{
    static DecodedAccess Decode(CpuMode mode, params byte[] bytes)
    {
        Assert.True(X86Decoder.TryDecode(bytes, mode, out var d), d.Error.ToString());
        return d;
    }

    [Fact]
    public void The_stack_pointer_width_is_8_in_64_bit_mode_else_SS_B()
    {
        Assert.Equal(8, StackOps.StackWidth(CpuMode.Bits64, 0));
        Assert.Equal(4, StackOps.StackWidth(CpuMode.Bits32, A.Db));
        Assert.Equal(2, StackOps.StackWidth(CpuMode.Bits32, 0));          // a 32-bit code segment with a 16-bit stack
        Assert.Equal(4, StackOps.StackWidth(CpuMode.Bits16, A.Db));       // and the other way round
    }

    [Fact]
    public void A_16_bit_stack_wraps_within_SP_and_keeps_the_upper_bits()
    {
        Assert.Equal(0xABCD_0000_0001_FFFEUL, StackOps.Moved(0xABCD_0000_0001_0000, -2, 2));
        Assert.Equal(0xFFFCUL, StackOps.SlotOffset(0x1_0000, 4, 2, push: true));
        Assert.Equal(0x1234_5678_FFFF_FFF8UL, StackOps.Moved(0x1234_5678_0000_0000, -8, 4));
        Assert.Equal(0xFFFF_FFFF_FFFF_FFF8UL, StackOps.Moved(0, -8, 8));
    }

    [Fact]
    public void Push_and_call_move_rsp_down_pop_up_jmp_not_at_all()
    {
        var push = Decode(CpuMode.Bits64, 0xFF, 0x30);          // push qword [rax]
        var push16 = Decode(CpuMode.Bits64, 0x66, 0xFF, 0x30);  // push word [rax]
        var pop = Decode(CpuMode.Bits64, 0x8F, 0x00);
        var call = Decode(CpuMode.Bits64, 0xFF, 0x10);
        var jmp = Decode(CpuMode.Bits64, 0xFF, 0x20);
        Assert.Equal(0x7FF8UL, StackOps.RspAfter(in push, 0x8000, 8));
        Assert.Equal(0x7FFEUL, StackOps.RspAfter(in push16, 0x8000, 8));
        Assert.Equal(0x8008UL, StackOps.RspAfter(in pop, 0x8000, 8));
        Assert.Equal(0x7FF8UL, StackOps.RspAfter(in call, 0x8000, 8));
        Assert.Equal(0x8000UL, StackOps.RspAfter(in jmp, 0x8000, 8));
        Assert.Equal(0x7FF8UL, StackOps.SlotOffset(0x8000, 8, 8, push: true));
        Assert.Equal(0x8000UL, StackOps.SlotOffset(0x8000, 8, 8, push: false));
    }

    [Fact]
    public void A_pop_destination_based_on_rsp_is_computed_after_the_increment()
    {
        var popRsp = Decode(CpuMode.Bits64, 0x8F, 0x44, 0x24, 0x08);   // pop qword [rsp+8]
        var popRax = Decode(CpuMode.Bits64, 0x8F, 0x40, 0x08);         // pop qword [rax+8]
        Assert.Equal(0x1010UL, StackOps.PopDestinationOffset(in popRsp, 0x1008));
        Assert.Equal(0x1008UL, StackOps.PopDestinationOffset(in popRax, 0x1008));
        var pop16 = Decode(CpuMode.Bits16, 0x67, 0x8F, 0x04, 0x24);    // pop word [esp] (32-bit address in 16-bit code)
        Assert.Equal(0x2UL, StackOps.PopDestinationOffset(in pop16, 0));
        var popWrap = Decode(CpuMode.Bits32, 0x8F, 0x04, 0x24);        // pop dword [esp]: wraps at the 32-bit address size
        Assert.Equal(0x2UL, StackOps.PopDestinationOffset(in popWrap, 0xFFFF_FFFE));
    }

    [Fact]
    public void Call_pushes_the_next_rip_at_the_operand_size_and_loads_the_target_at_it()
    {
        var call64 = Decode(CpuMode.Bits64, 0xFF, 0x10);
        var call16 = Decode(CpuMode.Bits32, 0x66, 0xFF, 0x10);          // call word [eax]: IP, upper bits cleared
        Assert.Equal(0x1234_5678_9ABCUL + 2, StackOps.ReturnAddress(in call64, 0x1234_5678_9ABC));
        Assert.Equal(0x567CUL, StackOps.ReturnAddress(in call16, 0x1234_5679));
        Assert.Equal(0xBEEFUL, StackOps.Target(in call16, 0xDEAD_BEEF));
        Assert.Equal(0xDEAD_BEEFUL, StackOps.Target(in call64, 0xDEAD_BEEF));
    }

    [Fact]
    public void A_target_outside_cs_or_not_canonical_is_GP()
    {
        const ushort Code = A.TypeCodeExecReadAccessed | A.S | A.P | A.Db;
        Assert.False(StackOps.TargetFaults(CpuMode.Bits64, 0x0000_7FFF_FFFF_F000, la57: false, 0, 0));
        Assert.True(StackOps.TargetFaults(CpuMode.Bits64, 0x0000_8000_0000_0000, la57: false, 0, 0));
        Assert.False(StackOps.TargetFaults(CpuMode.Bits64, 0x0000_8000_0000_0000, la57: true, 0, 0));
        Assert.True(StackOps.TargetFaults(CpuMode.Bits64, 0x8000_0000_0000_0000, la57: true, 0, 0));
        Assert.False(StackOps.TargetFaults(CpuMode.Bits32, 0xFFFF, la57: false, Code, 0xFFFF));
        Assert.True(StackOps.TargetFaults(CpuMode.Bits32, 0x1_0000, la57: false, Code, 0xFFFF));
        Assert.True(StackOps.TargetFaults(CpuMode.Bits16, 0x8000, la57: false, Code, 0x7FFF));
    }
}

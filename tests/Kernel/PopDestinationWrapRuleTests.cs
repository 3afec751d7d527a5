using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Hot.State;
using Copra.Kernel.Backends;
using Copra.User.Programs;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// POP m's destination (hot/Exit/ExitPipeline.cs LinearOf, the Pop case): outside 64-bit mode the segment base plus the
/// offset wraps at 4 GiB, as every 32-bit linear address does; in 64-bit mode it does not. In compatibility mode (long
/// mode's tables, a 32-bit CS) a DS based at 0xFF00_0000 with EBX 0xFFB0_0010 names the device's Scratch64 (0x1_FEB0_0010
/// wrapped; without paging or with 32-bit paging the walk itself drops the high bits, so only long mode's tables show
/// the wrap); in 64-bit mode a page at 512 GiB mapped to the device is reached there, not at its address's low 32 bits.
/// </summary>
public class PopDestinationWrapRuleTests
{
    const ulong Dev = 0xFEB0_0000;

    [Fact]
    public void A_compatibility_mode_pop_destination_past_4_GiB_wraps_to_the_low_addresses()
    {
        const ulong Value = 0x77;
        ulong cs = StateField.Seg(StateField.Cs, StateField.Attributes), dsBase = StateField.Seg(StateField.Ds, StateField.Base);
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            // pop dword [ebx+0x10] (8F 43 10) with CS a 32-bit code segment under long mode's 4-level tables: DS base
            // 0xFF000000 plus 0xFFB00010 is 0x1_FEB00010, which wraps to the device's Scratch64 (the tables do not
            // map 0x1_FEB00010: unwrapped, it would be a #PF).
            r.Add("pop dword [ebx+0x10] (compatibility mode, wraps to Scratch64)", a => a.db([0x8F, 0x43, 0x10]), ExitReason.Mmio, Dev + TestDeviceRegs.Scratch64, 4, true,
                [(3, 0xFFB0_0000), (4, l.StackTop(0) - 0x100)], [(cs, SegmentAttributes.Code32), (dsBase, 0xFF00_0000)]);
            r.Add("mov eax, [rbx+0x10] (64-bit again: 0x77 back)", a => a.mov(eax, __dword_ptr[rbx + 0x10]), ExitReason.Mmio, Dev + TestDeviceRegs.Scratch64, 4, false,
                [(3, Dev), (0, 0)], [(cs, SegmentAttributes.Code64), (dsBase, 0)], expect: Value);
        }, longMode: true, paging: (pt, mem, l) => mem.WriteU64(l.StackTop(0) - 0x100, Value));
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(0, sys.Replay!.ExceptionsSeen);
        Assert.Equal(2, sys.Kernel.Stats.DeviceRoundTrips);
        Assert.Equal(Value, sys.Kernel.State.Gpr(0, 0) & 0xFFFF_FFFF);
    }

    [Fact]
    public void A_64_bit_pop_destination_above_4_GiB_is_not_wrapped()
    {
        const ulong High = 0x80_0000_0000, Value = 0x0123_4567_89AB_CDEF;
        ulong slot = 0;
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            slot = l.StackTop(0) - 0x100;
            r.Add("pop qword [rbx+0x10] (512 GiB: the device's Scratch64)", a => a.pop(__qword_ptr[rbx + 0x10]), ExitReason.Mmio, Dev + TestDeviceRegs.Scratch64, 8, true,
                [(3, High), (4, slot)], []);
            r.Add("mov rax, [rbx+0x10] (the value back)", a => a.mov(rax, __qword_ptr[rbx + 0x10]), ExitReason.Mmio, Dev + TestDeviceRegs.Scratch64, 8, false,
                [(3, High), (0, 0)], [], expect: Value & 0xFFFF_FFFF);
        }, longMode: true, paging: (pt, mem, l) =>
        {
            pt.Map(High, Dev, 0x1000, PageSize.Size4K, writable: true, executable: false, user: true);
            mem.WriteU64(l.StackTop(0) - 0x100, Value);
        });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(0, sys.Replay!.ExceptionsSeen);
        Assert.Equal(2, sys.Kernel.Stats.DeviceRoundTrips);
        Assert.Equal(Value, sys.Kernel.State.Gpr(0, 0));
        Assert.Equal(slot + 8, sys.Kernel.State.Gpr(0, 4));
    }
}

using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Hot.State;
using Copra.Kernel.Backends;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// The CPU's checks on the stack slot of PUSH m, POP m and CALL m (hot/Exit/ExitPipeline.Stack.cs, StackTranslate and
/// StackAfterRead), through the real pipeline with the test device on the operand's side: in 64-bit mode a non-canonical
/// slot is #SS(0), outside it SS's type is checked for the slot's direction (#SS(0)), a slot whose first byte is the last
/// of RAM and whose rest is on another page is RAM, and a refused CALL target pushes nothing.
/// </summary>
public class StackCheckRuleTests
{
    const ulong Dev = 0xFEB0_0000, Scratch = Dev + 0x08, Scratch64 = Dev + 0x10;
    const ulong Rsp = 4;
    const byte VectorSs = 12, VectorGp = 13;

    /// <summary>
    /// 64-bit mode: a PUSH whose slot is not canonical (rSP just above the lower half's end) is #SS(0), not #GP(0), before
    /// the device is asked for the operand; rSP is unchanged, as the next PUSH from an ordinary rSP shows.
    /// </summary>
    [Fact]
    public void A_non_canonical_stack_slot_in_64_bit_mode_is_SS_and_reaches_no_device()
    {
        Step? push = null;
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            push = r.Add("push qword [rbx+0x10] (rSP 0x800000001000)", a => a.push(__qword_ptr[rbx + 0x10]), ExitReason.Mmio, Scratch64, 8, false, [(3, Dev), (4, 0x8000_0000_1000)], []);
        }, longMode: true);
        var k = sys.Kernel;
        ulong rspAtHalt = 0;
        k.OnExitTaken = _ => rspAtHalt = k.State.Gpr(0, 4);
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        var e = Assert.Single(sys.Replay!.Exceptions);
        Assert.Equal(push!.Text, e.Step);
        Assert.Equal(VectorSs, (byte)e.Event);
        Assert.Equal(0UL, e.Event >> 32);
        Assert.Equal(0x8000_0000_1000UL, rspAtHalt);   // the HLT's exit: rSP as the PUSH found it
        Assert.Equal(0, k.Stats.DeviceRoundTrips);
        Assert.Equal(1, k.Stats.SegmentFaults);
    }

    /// <summary>
    /// Outside 64-bit mode the slot is checked against SS before the device is asked for the operand: a slot past SS's
    /// limit is #SS(0), and a read-only SS (a VMM may load any state) is #GP(selector) for PUSH and POP alike, since every
    /// SS reference needs a writable data segment (so the slot's direction never changes the outcome). ESP is unchanged.
    /// </summary>
    [Fact]
    public void A_stack_slot_past_SS_limit_is_SS_and_a_read_only_SS_is_GP_for_push_and_pop_alike()
    {
        const ushort ReadOnlyData = 0x1 | SegmentAttributes.S | SegmentAttributes.P | SegmentAttributes.Db | SegmentAttributes.G;
        ulong ssAttr = StateField.Seg(StateField.Ss, StateField.Attributes), ssLimit = StateField.Seg(StateField.Ss, StateField.Limit);
        Step? limit = null, push = null, pop = null;
        ulong top = 0;
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            top = l.StackTop(0);
            limit = r.Add("push dword [ebx+8] (slot past SS's limit)", a => a.push(__dword_ptr[ebx + 8]), ExitReason.Mmio, Scratch, 4, false, [(3, Dev), (4, top)], [(ssLimit, 0x000F_FFFF)]);
            push = r.Add("push dword [ebx+8] (SS read-only)", a => a.push(__dword_ptr[ebx + 8]), ExitReason.Mmio, Scratch, 4, false, [(3, Dev), (4, top)], [(ssAttr, ReadOnlyData), (ssLimit, 0xFFFF_FFFF)]);
            pop = r.Add("pop dword [ebx+8] (SS read-only)", a => a.pop(__dword_ptr[ebx + 8]), ExitReason.Mmio, Scratch, 4, true, [(3, Dev), (4, top - 4)], [(ssAttr, ReadOnlyData)]);
        });
        var k = sys.Kernel;
        ulong espAtHalt = 0;
        k.OnExitTaken = _ => espAtHalt = k.State.Gpr(0, 4);
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        var ex = sys.Replay!.Exceptions;
        Assert.Equal([limit!.Text, push!.Text, pop!.Text], ex.Select(e => e.Step));
        Assert.Equal(VectorSs, (byte)ex[0].Event);
        Assert.Equal(0UL, ex[0].Event >> 32);
        foreach (var e in ex.Skip(1))
        {
            Assert.Equal(VectorGp, (byte)e.Event);
            Assert.Equal((ulong)Gdt.Data, e.Event >> 32);
        }
        Assert.Equal(top - 4, espAtHalt & 0xFFFF_FFFF);   // as the POP found it
        Assert.Equal(0, k.Stats.DeviceRoundTrips);
        Assert.Equal(3, k.Stats.SegmentFaults);
    }

    /// <summary>
    /// A PUSH slot whose first byte is the last byte of the VM's RAM and whose other seven are on another RAM page (the
    /// guest's page tables put them together) is RAM: each part is checked for its own bytes only, so the first part's
    /// check does not run past the end of RAM. The qword lands split over the two pages.
    /// </summary>
    [Fact]
    public void A_stack_slot_starting_at_the_last_byte_of_ram_and_continuing_on_another_page_is_ram()
    {
        const ulong Slot = 0x60_0000_0000;   // linear: the last page of RAM, then Data's first page
        ulong memEnd = 0, data = 0;
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            r.Add("mov [rbx+0x10], rcx", a => a.mov(__qword_ptr[rbx + 0x10], rcx), ExitReason.Mmio, Scratch64, 8, true, [(3, Dev), (1, 0x1122_3344_5566_7788)], []);
            r.Add("push qword [rbx+0x10] (slot: 1 byte at RAM's end, 7 on another page)", a => a.push(__qword_ptr[rbx + 0x10]), ExitReason.Mmio, Scratch64, 8, false,
                [(3, Dev), (4, Slot + 0x1007)], []).ExpectFields = [(Rsp, Slot + 0xFFF, ulong.MaxValue)];
        }, longMode: true, paging: (pt, mem, l) =>
        {
            memEnd = l.MemBase + l.MemLength;
            data = l.Data;
            pt.Map(Slot, memEnd - 0x1000, 0x1000, PageSize.Size4K, writable: true, executable: false);
            pt.Map(Slot + 0x1000, l.Data, 0x1000, PageSize.Size4K, writable: true, executable: false);
        });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(0, sys.Replay!.ExceptionsSeen);
        var k = sys.Kernel;
        Assert.Equal(0x88, k.Memory.ReadU8(memEnd - 1));
        Assert.Equal(0x0011_2233_4455_6677UL, k.Memory.ReadU64(data) & 0x00FF_FFFF_FFFF_FFFF);
    }

    /// <summary>
    /// CALL m whose target (read from the device) is past CS's limit is #GP(0) with nothing pushed: ESP and the slot
    /// below it are as they were.
    /// </summary>
    [Fact]
    public void A_call_whose_target_is_refused_pushes_nothing_and_leaves_esp()
    {
        ulong csLimit = StateField.Seg(StateField.Cs, StateField.Limit);
        Step? call = null;
        ulong top = 0;
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            top = l.StackTop(0);
            r.Add("mov dword [ebx+8], 0x01000000", a => a.mov(__dword_ptr[ebx + 8], 0x0100_0000), ExitReason.Mmio, Scratch, 4, true, [(3, Dev)], []);
            call = r.Add("call dword [ebx+8] (past CS's limit)", a => a.call(__dword_ptr[ebx + 8]), ExitReason.Mmio, Scratch, 4, false, [(3, Dev), (4, top)], [(csLimit, 0x00FF_FFFF)]);
        });
        var k = sys.Kernel;
        k.Memory.WriteU32(top - 4, 0xDEAD_BEEF);
        ulong espAtHalt = 0;
        k.OnExitTaken = _ => espAtHalt = k.State.Gpr(0, 4);
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        var e = Assert.Single(sys.Replay!.Exceptions);
        Assert.Equal(call!.Text, e.Step);
        Assert.Equal(VectorGp, (byte)e.Event);
        Assert.Equal(top, espAtHalt & 0xFFFF_FFFF);
        Assert.Equal(0xDEAD_BEEFu, k.Memory.ReadU32(top - 4));
        Assert.Equal(1, k.Stats.Faulted);
    }
}

using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Hot.State;
using Copra.Kernel.Backends;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// A far CALL's two stack slots are not alignment-checked as one 16-byte item (hot/Exit/ExitPipeline.Stack.cs, the slot's
/// #AC check: sizes 2, 4 and 8 are checked, the far frame's 16 in 64-bit mode is not): at CPL 3 with CR0.AM and
/// RFLAGS.AC, <c>call far qword [rbx]</c> with RSP 8- but not 16-aligned is not #AC. Its target here is the DPL-0 code
/// segment, so it ends in #GP(0x08) after reading the pointer (the 10-byte m16:64 from the device's window, through a
/// user alias of its page); code and stack pages are made user-accessible.
/// </summary>
public class FarCallAlignmentRuleTests
{
    const ulong Dev = 0xFEB0_0000, Window = Dev + 0x1000, High = 0x80_0000_0000;
    const ulong Am = 1UL << 18, Ac = 1UL << 18;

    [Fact]
    public void A_64_bit_far_call_with_rsp_8_but_not_16_aligned_is_not_AC()
    {
        Step? call = null;
        ulong rsp = 0;
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            rsp = l.Code + 0x8008;
            r.Add("mov [rbx], rax (the pointer's offset)", a => a.mov(__qword_ptr[rbx], rax), ExitReason.Mmio, Window, 8, true, [(3, High), (0, 0x1000)], []);
            r.Add("mov [rbx+8], ax (the pointer's selector: DPL-0 code)", a => a.mov(__word_ptr[rbx + 8], ax), ExitReason.Mmio, Window + 8, 2, true, [(3, High), (0, Gdt.Code64)], []);
            call = r.Add("call far qword [rbx] (CPL 3, AC, AM, RSP 8 mod 16)", a => a.db(0x48, 0xFF, 0x1B), ExitReason.Mmio, Window, 10, false, [(3, High), (4, rsp)], []);
        }, longMode: true, paging: (pt, mem, l) =>
        {
            pt.Map(High, Window, 0x1000, PageSize.Size4K, writable: true, executable: false, user: true);
            for (int i = 0; i < 16; i++)
            {
                ulong e = pt.EntryAddress(l.Code + (ulong)i * 0x1000, 1);
                mem.WriteU64(e, mem.ReadU64(e) | 4);   // code and stack pages user-accessible
            }
        });
        var k = sys.Kernel;
        int n = 0;
        k.OnExitTaken = _ =>
        {
            if (++n != 3) return;
            k.State.TryWrite(0, StateField.Cr0, k.State.Cr0(0) | Am);
            k.State.Rflags(0) |= Ac;
            Support.Ring3.Enter(k.State, 0);
        };
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        var e = Assert.Single(sys.Replay!.Exceptions);
        Assert.Equal(call!.Text, e.Step);
        Assert.Equal(13, (byte)e.Event);
        Assert.Equal((uint)Gdt.Code64, (uint)(e.Event >> 32));
        Assert.Equal(0, k.Stats.AlignmentFaults);
        Assert.Equal(rsp, k.State.Gpr(0, 4));   // nothing pushed
    }
}

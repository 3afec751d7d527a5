using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Hot.State;
using Copra.Kernel.Backends;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// An element the alignment check refuses (#AC(0): CPL 3, CR0.AM, RFLAGS.AC) is walked first, because a #PF outranks an
/// #AC on the CPU (hot/Exit/ExitPipeline.Faults.cs, ElementFaults): a misaligned load from a not-present user page is #PF
/// with the user bit (a store to a read-only one is walked as a write), from a present one #AC(0); neither reaches the device, and an aligned load does.
/// </summary>
public class AlignmentWalkOrderRuleTests
{
    const ulong Dev = 0xFEB0_0000, Present = 0x50_0000_0000, Absent = 0x50_0000_1000, ReadOnly = 0x50_0000_2000;
    const ulong Am = 1UL << 18, Ac = 1UL << 18;
    const ushort Dpl3 = 3 << SegmentAttributes.DplShift;
    const ulong Cr0Long = GuestCpuState.Cr0Pe | GuestCpuState.Cr0Mp | GuestCpuState.Cr0Et | GuestCpuState.Cr0Ne | GuestCpuState.Cr0Wp | GuestCpuState.Cr0Pg;

    static (ulong, ulong)[] Ring3Ac =>
    [
        (StateField.Seg(StateField.Cs, StateField.Selector), Gdt.Code64 | 3), (StateField.Seg(StateField.Cs, StateField.Attributes), SegmentAttributes.Code64 | Dpl3),
        (StateField.Seg(StateField.Ss, StateField.Selector), Gdt.Data | 3), (StateField.Seg(StateField.Ss, StateField.Attributes), SegmentAttributes.Data | Dpl3),
        (StateField.Cr0, Cr0Long | Am), (StateField.Rflags, 0x2 | Ac),
    ];

    [Fact]
    public void A_misaligned_access_to_a_not_present_page_is_PF_before_AC()
    {
        Step? absent = null, present = null, readOnly = null;
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            readOnly = r.Add("mov [rbx+1], eax (misaligned store, page read-only)", a => a.mov(__dword_ptr[rbx + 1], eax), ExitReason.Mmio, Dev + 1, 4, true, [(3, ReadOnly)], Ring3Ac);
            absent = r.Add("mov eax, [rbx+1] (misaligned, page not present)", a => a.mov(eax, __dword_ptr[rbx + 1]), ExitReason.Mmio, Dev + 1, 4, false, [(3, Absent)], Ring3Ac);
            present = r.Add("mov eax, [rbx+9] (misaligned, page present)", a => a.mov(eax, __dword_ptr[rbx + 9]), ExitReason.Mmio, Dev + 9, 4, false, [(3, Present)], Ring3Ac);
            r.Add("mov eax, [rbx] (aligned: the device's ID)", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Present)], Ring3Ac,
                expect: Copra.User.Programs.TestDeviceRegs.IdValue);
        }, longMode: true, paging: (pt, mem, l) =>
        {
            for (int i = 0; i < 16; i++)   // the code is user-accessible: the data side is what refuses
            {
                ulong e = pt.EntryAddress(l.Code + (ulong)i * 0x1000, 1);
                mem.WriteU64(e, mem.ReadU64(e) | 4);
            }
            pt.Map(Present, Dev, 0x1000, PageSize.Size4K, writable: true, executable: false, user: true);
            pt.Map(Absent, Dev, 0x1000, PageSize.Size4K, writable: true, executable: false, user: true);
            pt.Map(ReadOnly, Dev, 0x1000, PageSize.Size4K, writable: false, executable: false, user: true);
            ulong pte = pt.EntryAddress(Absent, 1);
            mem.WriteU64(pte, mem.ReadU64(pte) & ~1UL);
        });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        var pf = Assert.Single(sys.Replay!.Exceptions, e => e.Step == absent!.Text);
        Assert.Equal(14UL, pf.Event & 0xFF);
        Assert.Equal(0x4UL, pf.Event >> 32);          // not present, read, user
        Assert.True(sys.Kernel.State.TryPeek(0, StateField.Cr2, out ulong cr2));
        Assert.Equal(Absent + 1, cr2);
        var ro = Assert.Single(sys.Replay.Exceptions, e => e.Step == readOnly!.Text);
        Assert.Equal(14UL, ro.Event & 0xFF);
        Assert.Equal(0x7UL, ro.Event >> 32);          // present, write, user: the store was walked as a write
        var ac = Assert.Single(sys.Replay.Exceptions, e => e.Step == present!.Text);
        Assert.Equal(17UL, ac.Event & 0xFF);
        Assert.Equal(0UL, ac.Event >> 32);
        Assert.Equal(3, sys.Replay.ExceptionsSeen);
        Assert.Equal(1, sys.Kernel.Stats.AlignmentFaults);
        Assert.Equal(1, sys.Kernel.Stats.DeviceRoundTrips);
    }
}

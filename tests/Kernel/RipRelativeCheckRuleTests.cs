using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Hot.State;
using Copra.Kernel.Backends;
using Copra.User.Programs;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// The element checks see the operand where the access goes (hot/Exit/ExitPipeline.Faults.cs, ElementFaults): a
/// RIP-relative operand is relative to the next instruction, in the checks as in the access. At CPL 3 with CR0.AM and
/// RFLAGS.AC, <c>mov rax, [rip+disp32]</c> (48 8B 05, 7 bytes) names a qword at the start of a device page the guest maps
/// near its code: aligned, so no #AC, and the load gets the device's ID register.
/// </summary>
public class RipRelativeCheckRuleTests
{
    const ulong Dev = 0xFEB0_0000;
    const ulong Am = 1UL << 18, Ac = 1UL << 18;

    [Fact]
    public void An_aligned_rip_relative_qword_at_cpl3_with_alignment_checks_on_is_not_AC()
    {
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            ulong near = l.MemBase + l.MemLength + 0x100_0000;   // 16 MiB past RAM, page-aligned: mapped to the device below
            long disp = (long)(near - (l.Code + 7));
            Assert.InRange(disp, int.MinValue, int.MaxValue);
            r.Add("mov rax, [rip+disp32] (CPL 3, AC, AM)", a => a.db([0x48, 0x8B, 0x05, .. BitConverter.GetBytes((int)disp)]), ExitReason.Mmio, Dev, 8, false, [(0, 0)], [],
                expect: TestDeviceRegs.IdValue);
        }, longMode: true, paging: (pt, mem, l) =>
        {
            pt.Map(l.MemBase + l.MemLength + 0x100_0000, Dev, 0x1000, PageSize.Size4K, writable: true, executable: false, user: true);
            for (int i = 0; i < 16; i++)
            {
                ulong e = pt.EntryAddress(l.Code + (ulong)i * 0x1000, 1);
                mem.WriteU64(e, mem.ReadU64(e) | 4);   // the code pages user-accessible
            }
        });
        var k = sys.Kernel;
        int n = 0;
        k.OnExitTaken = _ =>
        {
            if (++n != 1) return;
            k.State.TryWrite(0, StateField.Cr0, k.State.Cr0(0) | Am);
            k.State.Rflags(0) |= Ac;
            Support.Ring3.Enter(k.State, 0);
        };
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(0, sys.Replay!.ExceptionsSeen);
        Assert.Equal(0, k.Stats.AlignmentFaults);
        Assert.Equal(1, k.Stats.DeviceRoundTrips);
        Assert.Equal(TestDeviceRegs.IdValue, k.State.Gpr(0, 0) & 0xFFFF_FFFF);
    }
}

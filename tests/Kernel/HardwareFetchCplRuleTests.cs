using Copra.Abi;
using Copra.Hot.Guest;
using Copra.Hot.State;
using Copra.User.Programs;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// A hardware-completed exit fetches its instruction at the guest's CPL, taken from CS.DPL (hot/Exit/ExitPipeline.cs: the
/// fault context is not derived for these exits, so the fetch's CPL is read from CS's attributes): U/S applies at CPL 3
/// and CR4.SMEP below it. Through <see cref="HardwareRig"/> with CR4.SMEP on: at CPL 3 on user code pages the fetch is
/// allowed (a fetch checked at any other CPL is refused by SMEP). The load reaches the device through a user alias of its page.
/// </summary>
public class HardwareFetchCplRuleTests
{
    const ulong Alias = 0x80_0000_0000, Smep = 1UL << 20;

    static HardwareRig Run()
    {
        PageTableBuilder? tables = null;
        var rig = new HardwareRig(b => b.Add("mov eax, [rbx] (the ID register through the alias)", a => a.mov(eax, __dword_ptr[rbx]), [(3, Alias), (0, 0)],
            [HwSide.Read(HardwareRig.Dev, 4)]),
            map: pt => (tables = pt).Map(Alias, HardwareRig.Dev, 0x1000, PageSize.Size4K, writable: true, executable: false, user: true));
        var k = rig.Sys.Kernel;
        for (int i = 0; i < 16; i++)
        {
            ulong e = tables!.EntryAddress(rig.Layout.Code + (ulong)i * 0x1000, 1);
            rig.Memory.WriteU64(e, rig.Memory.ReadU64(e) | 4);   // the code pages user-accessible
        }
        int n = 0;
        k.OnExitTaken = _ =>
        {
            if (++n != 1) return;
            k.State.TryWrite(0, StateField.Cr4, k.State.Cr4(0) | Smep);
            Support.Ring3.Enter(k.State, 0);
        };
        rig.Run();
        return rig;
    }

    [Fact]
    public void A_hardware_exit_at_cpl3_fetches_its_user_code_page_under_smep()
    {
        using var rig = Run();
        Assert.Equal(0, rig.Replay.ExceptionsSeen);
        Assert.Equal(0, rig.Sys.Kernel.InternalErrors);
        var o = Assert.Single(rig.Outcomes);
        Assert.Equal((ulong)TestDeviceRegs.IdValue, o.HandedBack);
        Assert.Equal(0, o.Mismatches);
    }
}

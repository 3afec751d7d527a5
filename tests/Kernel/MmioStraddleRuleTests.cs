using Copra.Hot.Exit;
using Copra.Kernel.Backends;
using Copra.User.Programs;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// An MMIO access that runs past the end of the range it starts in is #GP(0) and reaches no device
/// (hot/Exit/ExitPipeline.cs MmioSide, the table's <c>straddles</c>). A range whose end is not page-aligned makes such an
/// access possible within one page: the test adds [Dev+0x2000, Dev+0x2800) for the test device at the first exit, and a
/// dword at Dev+0x27FE (two bytes in it, two past it) is refused. 32-bit protected mode without paging (linear = physical).
/// </summary>
public class MmioStraddleRuleTests
{
    const ulong Dev = 0xFEB0_0000;

    [Fact]
    public void An_mmio_access_past_the_end_of_its_range_within_one_page_is_GP0_and_reaches_no_device()
    {
        Step? over = null;
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            r.Add("mov eax, [ebx] (the ID register)", a => a.mov(eax, __dword_ptr[ebx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], [], expect: TestDeviceRegs.IdValue);
            over = r.Add("mov eax, [ebx+0x27FE] (over the added range's end)", a => a.mov(eax, __dword_ptr[ebx + 0x27FE]), ExitReason.Mmio, Dev + 0x27FE, 4, false, [(3, Dev)], []);
        });
        var k = sys.Kernel;
        int n = 0;
        bool added = false;
        k.OnExitTaken = _ =>
        {
            if (++n != 1) return;
            var mmio = k.Vms[0].Mmio;
            int owner = mmio.Lookup(0, Dev, 4, out ulong _, out bool _);   // the test device, registered by now
            added = owner > 0 && mmio.TryAdd(Dev + 0x2000, 0x800, owner);
        };
        Assert.True(sys.Run().Quiescent);
        Assert.True(added);
        FaultSemanticsTests.AssertClean(sys);
        var e = Assert.Single(sys.Replay!.Exceptions, x => x.Step == over!.Text);
        Assert.Equal(13, (byte)e.Event);
        Assert.True((e.Event & (1 << 11)) != 0);   // an error code, and it is 0
        Assert.Equal(0U, (uint)(e.Event >> 32));
        Assert.Equal(over!.Rip, e.Rip);
        Assert.Equal(1, k.Stats.DeviceRoundTrips);   // the first load only
    }
}

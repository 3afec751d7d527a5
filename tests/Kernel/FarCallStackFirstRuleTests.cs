using Copra.Hot.Exit;
using Copra.Kernel.Backends;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// A far CALL m translates its two stack slots before the device is asked for the far pointer (hot/Exit/ExitPipeline.cs
/// StartElement, as PUSH's slot is checked first): with ESP on the device, whose slots are not RAM, the CALL is #GP(0) and
/// no device sees the pointer's read. Through the replay guest in 32-bit protected mode (no paging).
/// </summary>
public class FarCallStackFirstRuleTests
{
    const ulong Dev = 0xFEB0_0000;

    [Fact]
    public void A_far_call_whose_stack_is_not_ram_faults_before_the_device_is_read()
    {
        Step? call = null;
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            call = r.Add("call far [ebx] (ESP on the device)", a => a.db(0xFF, 0x1B), ExitReason.Mmio, Dev + 8, 6, false, [(3, Dev + 8), (4, Dev + 0x100)], []);
            call.ExpectFields = [(4, Dev + 0x100, 0xFFFF_FFFF)];
        });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        var e = Assert.Single(sys.Replay!.Exceptions);
        Assert.Equal(call!.Text, e.Step);
        Assert.Equal(13, (byte)e.Event);
        Assert.Equal(0, sys.Kernel.Stats.DeviceRoundTrips);
    }
}

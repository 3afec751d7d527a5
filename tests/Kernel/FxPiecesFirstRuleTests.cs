using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Kernel.Backends;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// FXSAVE's 512-byte image is checked piece by piece before the first piece moves (hot/Exit/ExitPipeline.X87.cs FxBegin,
/// and its refusal ending the exit in ExitPipeline.cs): an image whose first 256 bytes lie on a page mapped to the test
/// device's window and whose rest lies on a page not mapped is #PF at that page, and no piece reaches the device.
/// </summary>
public class FxPiecesFirstRuleTests
{
    const ulong Dev = 0xFEB0_0000, High = 0x80_0000_0000;

    [Fact]
    public void An_fxsave_whose_later_piece_faults_writes_no_piece()
    {
        Step? fx = null;
        using var sys = FaultSemanticsTests.Boot((r, l) =>
            fx = r.Add("fxsave [rbx] (the second half on a page not mapped)", a => a.fxsave(__[rbx]), ExitReason.Mmio, Dev + 0x1F00, 16, true, [(3, High + 0xF00)], []),
            longMode: true, paging: (pt, mem, l) => pt.Map(High, Dev + 0x1000, 0x1000, PageSize.Size4K, writable: true, executable: false));
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        var e = Assert.Single(sys.Replay!.Exceptions);
        Assert.Equal(fx!.Text, e.Step);
        Assert.Equal(14, (byte)e.Event);
        Assert.True(sys.Kernel.State.TryPeek(0, Copra.Abi.StateField.Cr2, out ulong cr2));
        Assert.Equal(High + 0x1000, cr2);
        Assert.Equal(0, sys.Kernel.Stats.DeviceRoundTrips);
    }
}

using Copra.Kernel.Run;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// The IPC fast path (issue 13): a device model already waiting takes the vCPU's next access inside its own
/// WAIT_FOR_EVENT, with no scheduler step per exit, and the results are the same as without it.
/// </summary>
public sealed class DirectSwitchTests
{
    [Theory]
    [InlineData(ExitFlavor.MmioRead)]
    [InlineData(ExitFlavor.MmioWrite)]
    [InlineData(ExitFlavor.MmioAlu)]
    [InlineData(ExitFlavor.PortOut)]
    public void A_slice_of_exits_takes_two_steps_not_two_per_exit(ExitFlavor flavor)
    {
        using var rig = new ExitRig(flavor, warmExits: 256);
        long before = rig.Done;
        // The vCPU's run (its exit wakes the model), then the model's slice: it answers and its WAIT enters the guest again.
        Assert.Equal(2, rig.StepExits(ExitRig.Batch));
        Assert.Equal(before + ExitRig.Batch, rig.Done);
        rig.Check();   // every access answered with the value the replay guest expects, no desync
    }

    [Theory]
    [InlineData(ExitFlavor.MmioRead)]
    [InlineData(ExitFlavor.PortOut)]
    public void Every_exit_fetches_its_instruction_once_through_the_code_page_entry_and_counts_the_hit(ExitFlavor flavor)
    {
        // Warm: the memo replays every exit, and a replay counts its fetch's hit as the full front end does.
        using var rig = new ExitRig(flavor, warmExits: 256);
        long hits = rig.Kernel.Fetcher.Hits[0], done = rig.Done;
        rig.StepExits(ExitRig.Batch);
        Assert.Equal(rig.Done - done, rig.Kernel.Fetcher.Hits[0] - hits);
        rig.Check();
    }

    [Fact]
    public void With_no_budget_every_exit_goes_through_the_scheduler()
    {
        using var rig = new ExitRig(ExitFlavor.MmioRead, warmExits: 256);
        for (int i = 0; i < 8; i++) Assert.Equal(2, rig.StepOneExit());
        rig.Check();
    }
}

using Copra.Abi;
using Copra.User;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// A CPU's polled rings (kernel/Core/Cpu.cs RunPollers): each ring RING_POLL put on a CPU is drained in every step of
/// that CPU until its last handle closes; a closed ring leaves the CPU's list at its next step, and the others stay.
/// </summary>
public sealed class PollerRuleTests
{
    [Fact]
    public void A_closed_polled_ring_leaves_its_cpus_list_and_an_open_one_is_still_drained()
    {
        using var k = KernelHarness.Boot(cpus: 2);
        int both = -1, afterClose = -1, onOtherCpu = -1;
        long result = 0;
        ulong userData = 0;
        KernelHarness.Run(k, async ctx =>
        {
            var a = PolledRing.Create(ctx, 4, cpu: 1);
            var b = PolledRing.Create(ctx, 4, cpu: 1);
            both = k.Cpus[1].PollerCount;
            onOtherCpu = k.Cpus[0].PollerCount;
            Sys.Close(ctx, a.Handle);
            b.TryPush(SysNr.Capabilities, Cap.Count, userData: 7);
            b.Publish();
            SysCallOut c;
            while (!b.TryReap(out c)) await b.WaitAsync();
            (result, userData) = (c.Result, c.UserData);
            afterClose = k.Cpus[1].PollerCount;   // CPU 1 has stepped since the close: it drained b
            Sys.Close(ctx, b.Handle);
        });
        Assert.Equal((2, 0), (both, onOtherCpu));
        Assert.Equal((2L, 7UL), (result, userData));
        Assert.Equal(1, afterClose);
        Assert.Equal(0, k.Cpus[1].PollerCount);
    }
    [Fact]
    public void An_idle_polled_ring_is_no_work_so_a_run_that_keeps_one_open_still_goes_quiet()
    {
        // The ring stays open on CPU 1 with nothing in it: its thread waits on it for completions that never come.
        using var k = KernelHarness.Boot(cpus: 2);
        long result = 0;
        KernelHarness.Start(k, async ctx =>
        {
            var r = PolledRing.Create(ctx, 4, cpu: 1);
            r.TryPush(SysNr.Capabilities, Cap.Count, userData: 1);
            r.Publish();
            SysCallOut c;
            while (!r.TryReap(out c)) await r.WaitAsync();
            result = c.Result;
            await r.WaitAsync();   // nothing more was pushed: it waits for ever
        }, "/t");
        var run = k.RunDeterministic(200_000);
        Assert.True(run.Quiescent, "a CPU with an idle poller kept the run from going quiet");
        Assert.Equal(2L, result);
        Assert.Equal(1, k.Cpus[1].PollerCount);
    }
}

using Copra.Kernel.Run;
using Xunit;
using Copra.Hot.Exit;

namespace Copra.Tests.Kernel;

/// <summary>
/// The parallel driver (one host thread per CPU, rings really crossing cores) runs the system to the same
/// end: quiescent (not stopped early with work queued), every vCPU at its final HLT, the guest's data right.
/// </summary>
public class ParallelSystemTests
{
    [Theory]
    [InlineData("snp", 2, 2)]
    [InlineData("tdx", 4, 4)]
    public void The_parallel_driver_ends_quiescent_with_every_access_answered(string platform, int cpus, int vcpus)
    {
        var sc = Scenario.Default() with
        {
            Platform = platform, Cpus = cpus, Driver = "parallel",
            Vms = [Scenario.Default().Vms[0] with { Vcpus = vcpus }],
            Workload = Scenario.Default().Workload with { Iterations = 2000 },
        };
        using var sys = new CopraSystem(sc);
        var r = sys.Run(parallelLimit: TimeSpan.FromMinutes(2));
        var k = sys.Kernel;
        Assert.True(r.Quiescent, "the parallel run did not become quiescent: " + string.Join("; ", k.Cpus.Select(c =>
            $"cpu {c.Index} inbox {c.InboxDepth} runq {c.RunQueueLength} work {c.HasWork}")) + $"; taken {k.Stats.Taken}, hlt {k.Stats.Hlt}, in flight {k.Stats.InFlight}");
        Assert.True(k.InternalErrors == 0, $"internal error: {k.LastInternalError}");
        // ExitStats' counters are updated atomically, so the accounting identity holds under this driver too.
        Assert.Equal(0, k.Stats.InFlight);
        Assert.Equal(k.Stats.AccessesTaken, k.Stats.Completed + k.Stats.Forwarded);
        Assert.True(k.Stats.Faulted == 0, $"faulted {k.Stats.Faulted}");
        Assert.True(sys.Replay!.Desyncs == 0 && sys.Replay.DataMismatches == 0, string.Join("\n", sys.Replay.Problems));
        Assert.Contains("Hello from the Copra guest!", sys.GuestConsole);
        int stopped = k.ConsoleText.Split("stopped: Hlt").Length - 1;
        Assert.True(stopped == vcpus, $"{stopped} of {vcpus} vCPUs reached their final HLT\n{k.ConsoleText}");
        foreach (var p in k.Processes)
            Assert.False(p.ExitReason?.StartsWith("crash", StringComparison.Ordinal) ?? false, $"{p}: {p.ExitReason}");
    }
}

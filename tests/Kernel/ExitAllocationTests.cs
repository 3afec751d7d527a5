using Copra.Kernel.Run;
using Copra.User.Programs;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// The exit path allocates nothing in steady state (DESIGN.md, "The exit path"). A long replay run is
/// driven past boot and its first loop iterations (device models and VMM threads have made their first
/// awaits, every cache is warm), then a further chunk is measured: bytes allocated on this thread (the
/// deterministic driver runs every CPU here) per exit taken must be zero.
/// </summary>
public class ExitAllocationTests
{
    [Theory]
    [InlineData("snp")]
    [InlineData("tdx")]
    public void Steady_state_exits_allocate_nothing(string platform)
    {
        var sc = Scenario.Default() with
        {
            Platform = platform,
            Workload = Scenario.Default().Workload with { Iterations = 1_000_000 },
        };
        using var sys = new CopraSystem(sc);
        var k = sys.Kernel;
        k.Spawn(Paths.Init, null, 0);
        var warm = k.RunDeterministic(200_000);
        Assert.False(warm.Quiescent, "the warm-up chunk should not finish the workload");
        k.RunDeterministic(200_000);   // a second chunk: the driver's own first-call costs are paid too

        long exits0 = k.Stats.Taken, rounds0 = k.Stats.DeviceRoundTrips;
        // Steady state: some chunk allocates nothing. A per-exit allocation shows in every chunk; the
        // runtime's occasional work under a parallel test run (a pool trimmed after another test's GC)
        // does not repeat chunk after chunk.
        long bytes = long.MaxValue;
        for (int chunk = 0; chunk < 4 && bytes != 0; chunk++)
        {
            long bytes0 = GC.GetAllocatedBytesForCurrentThread();
            k.RunDeterministic(50_000);
            bytes = Math.Min(bytes, GC.GetAllocatedBytesForCurrentThread() - bytes0);
        }
        long exits = k.Stats.Taken - exits0;

        Assert.True(exits > 10_000, $"only {exits} exits in the measured chunk");
        Assert.True(k.Stats.DeviceRoundTrips - rounds0 > 1_000, "the measured chunk should go through the device models");
        Assert.True(bytes == 0, $"{bytes} bytes over {exits} exits ({(double)bytes / exits:F2} per exit)");
        Assert.Equal(0, k.InternalErrors);
        Assert.Equal(0, sys.Replay!.Desyncs);
    }
}

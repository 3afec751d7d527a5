using Copra.Hot.Timing;
using Copra.Kernel.Kvm;
using Xunit;
using Xunit.Abstractions;

namespace Copra.Tests.Kvm;

public class KvmBareLoopTests(ITestOutputHelper output)
{
    [KvmTheory]
    [InlineData(KvmBareAccess.PortOut)]
    [InlineData(KvmBareAccess.PortIn)]
    [InlineData(KvmBareAccess.MmioWrite)]
    [InlineData(KvmBareAccess.MmioRead)]
    public void Bare_loop_sees_one_exit_per_access_and_times_each(KvmBareAccess access)
    {
        const int n = 2000;
        var r = KvmBareLoop.Run(n, access);
        Assert.Equal(n, r.Accesses);
        Assert.Equal(n, r.Samples.Length);
        Assert.All(r.Samples, s => Assert.True(s > 0));
        Assert.True(r.MedianNs > 0);
        output.WriteLine($"{access}: median {r.MedianTicks:F0} {(r.SamplesAreTsc ? "cycles" : "ticks")} = {r.MedianNs:F0} ns, " +
                         $"p10 {r.Percentile(0.1) / r.TicksPerNanosecond:F0} ns, p90 {r.Percentile(0.9) / r.TicksPerNanosecond:F0} ns, " +
                         $"wall mean {r.MeanWallNs:F0} ns, EINTR {r.InterruptedRuns}");
    }

    [Fact]
    public void Raw_tsc_advances()
    {
        ulong a = Tsc.Read();
        ulong b = Tsc.Read();
        Assert.True(b >= a, Tsc.UnavailableReason ?? "tsc went backwards");
    }
}

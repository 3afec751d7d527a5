using Copra.Kernel.Run;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// Two vCPUs on two CPUs run LOCK XADD on the same device register (the test device's ticker, which advances by itself on
/// every read) at the same time, under the deterministic and the parallel driver, through public entry points only.
/// The held compare-and-write (docs/emulation.md, "LOCK") must give each locked XADD exactly one retry: its own read moves
/// the ticker, the device answers the write Mismatch once, the kernel recomputes and writes again. A second vCPU's access
/// delivered between another's locked read and write would move the ticker a second time: that XADD returns an even value
/// where a held one always returns an odd one (the replay checks bit 0 of RAX after every step), or costs more retries
/// (past Kernel.MaxLockRetries RIP stays put: a desync here). Every XADD completing (RIP advanced, no desync) with the
/// right parity and exactly one retry each is the evidence that neither instruction was half done nor interleaved.
/// </summary>
public class LockContentionTests
{
    [Theory]
    [InlineData("deterministic")]
    [InlineData("parallel")]
    public void Two_vcpus_locking_one_device_register_each_retry_once_and_never_interleave(string driver)
    {
        const int Iterations = 300, Vcpus = 2;
        var sc = Scenario.Default() with
        {
            Cpus = 2, Driver = driver,
            Vms = [Scenario.Default().Vms[0] with { Vcpus = Vcpus }],
            Workload = Scenario.Default().Workload with { Iterations = Iterations, Mix = ["lock_xadd"], DeviceDriver = false },
        };
        using var sys = new CopraSystem(sc);
        var r = sys.Run(parallelLimit: TimeSpan.FromMinutes(2));
        var k = sys.Kernel;
        Assert.True(r.Quiescent);
        Assert.True(k.InternalErrors == 0, $"internal error: {k.LastInternalError}");
        Assert.True(sys.Replay!.Desyncs == 0 && sys.Replay.DataMismatches == 0, string.Join("\n", sys.Replay.Problems));
        Assert.Equal(0, k.Stats.InFlight);
        Assert.Equal(Vcpus * Iterations, k.Stats.LockRetries);
    }
}

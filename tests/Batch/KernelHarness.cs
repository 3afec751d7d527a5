using Copra.Abi;
using Copra.Kernel.Backends;
using Copra.Kernel.Run;
using Xunit;

namespace Copra.Tests.Batch;

/// <summary>
/// A booted system (one VM, one vCPU whose replay guest makes CPUID exits) with no /init: a test
/// runs its own program as the only user process, through the real gate, and the deterministic
/// driver runs until the system is quiescent. An exception in the program (a failed Assert) is
/// rethrown on the test thread.
/// </summary>
public sealed class KernelHarness : IDisposable
{
    public KernelHarness(string platform = "snp", int cpus = 2, long iterations = 2)
    {
        var sc = Scenario.Default() with
        {
            Platform = platform, Cpus = cpus,
            Vms = [new VmScenario(Vcpus: 1, MemoryMb: 4)],
            Workload = new WorkloadSpec { Greeting = "", DeviceDriver = false, Unregistered = false, Mix = ["cpuid"], Iterations = iterations },
        };
        System = new CopraSystem(sc, sampleCapacity: 64);
    }

    public CopraSystem System { get; }
    public Copra.Kernel.Core.Kernel K => System.Kernel;

    /// <summary>Runs <paramref name="main"/> as process /test on CPU 0 until quiescent; returns after it finished.</summary>
    public void Run(Func<IUserContext, Task> main)
    {
        Exception? failure = null;
        bool finished = false;
        K.Install("/test", () => new Program(async ctx =>
        {
            try { await main(ctx); finished = true; }
            catch (Exception e) { failure = e; }
        }));
        K.Spawn("/test", null, 0);
        var r = K.RunDeterministic();
        if (failure is not null) throw new Xunit.Sdk.XunitException($"test program failed: {failure}");
        Assert.True(r.Quiescent, "the system did not become quiescent");
        Assert.True(finished, "the test program did not run to its end");
        Assert.Equal(0, K.InternalErrors);
    }

    public void Dispose() => System.Dispose();

    sealed class Program(Func<IUserContext, Task> main) : IUserProgram
    {
        public Task Main(IUserContext ctx) => main(ctx);
    }
}

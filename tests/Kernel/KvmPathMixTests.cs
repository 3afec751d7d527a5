using Copra.Kernel.Backends;
using Copra.Kernel.Run;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// The mix entries the KVM guest runs for the forms issue 14 added (sse, movdiri, movdir64b, cmps, cmpxchg16b,
/// call_jmp, bsf_bsr; tests/Kvm/KvmBackendTests runs them under /dev/kvm) through the replay exit path: every step's
/// address, width, result and RIP checked, over iterations that move the operand through the window.
/// </summary>
public class KvmPathMixTests
{
    public static readonly string[] Entries = ["sse", "movdiri", "movdir64b", "cmps", "cmpxchg16b", "call_jmp", "bsf_bsr"];

    [Fact]
    public void The_kvm_path_entries_run_through_the_replay_exit_path()
    {
        using var sys = new CopraSystem(Scenario.Default() with
        {
            Workload = Scenario.Default().Workload with { Iterations = 20, Mix = Entries },
            // One vCPU: the entries check values read back from the window, which a second vCPU's loop would write too.
            Vms = [Scenario.Default().Vms[0] with { Vcpus = 1 }],
        });
        var r = sys.Run();
        var k = sys.Kernel;
        Assert.True(r.Quiescent);
        Assert.True(sys.Replay!.DataMismatches == 0 && sys.Replay.Desyncs == 0, string.Join("\n", sys.Replay.Problems));
        Assert.Equal(0, sys.Replay.ExceptionsSeen);
        Assert.Equal(0, k.Stats.IcedFallbacks);
        Assert.Equal(0, k.InternalErrors);
        Assert.Equal(0, k.Stats.InFlight);
    }
}

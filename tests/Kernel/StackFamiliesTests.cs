using Copra.Kernel.Backends;
using Copra.Kernel.Run;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// PUSH m, POP m, CALL m and JMP m through the real exit path (replay backend, the test device on the memory side, the
/// guest's RAM stack on the other): WorkloadBuilder.StackFamilies reads every pushed value back through a POP to the
/// device, checks rSP after each step and RIP after each branch, and that a faulting CALL or PUSH leaves rSP as it was
/// and reaches no device (the ticker register, which advances on every read, is unchanged after the faulted PUSH).
/// </summary>
public class StackFamiliesTests
{
    [Fact]
    public void Push_pop_call_and_jmp_through_the_exit_path_commit_whole_or_not_at_all()
    {
        using var sys = new CopraSystem(Scenario.Default() with
        {
            Workload = new WorkloadSpec { Iterations = 1, StackFamilies = true },
        });
        var r = sys.Run();
        var k = sys.Kernel;
        Assert.True(r.Quiescent);
        Assert.True(sys.Replay!.DataMismatches == 0 && sys.Replay.Desyncs == 0, string.Join("\n", sys.Replay.Problems));
        Assert.Equal(1, sys.Replay.ExceptionsByVector[13]);   // #GP(0): CALL to a non-canonical target
        Assert.Equal(1, sys.Replay.ExceptionsByVector[14]);   // #PF: PUSH with rSP on an unmapped page
        var pf = Assert.Single(sys.Replay.Exceptions, e => (e.Event & 0xFF) == 14);
        Assert.Equal(0x2u | 0x0u, (uint)(pf.Event >> 32) & 0x3);   // write, not present (the stack slot)
        Assert.Equal(0, sys.Replay.ExceptionsByVector[6]);    // no #UD: every form came from the tables
        Assert.Equal(0, k.Stats.IcedFallbacks);
        Assert.Equal(0, k.InternalErrors);
    }
}

/// <summary>The push_pop mix entry (the loop body the KVM guest runs too) through the replay exit path, many iterations.</summary>
public class PushPopMixTests
{
    [Fact]
    public void Push_pop_loop_keeps_rsp_balanced_and_every_access_answered()
    {
        using var sys = new CopraSystem(Scenario.Default() with
        {
            Workload = Scenario.Default().Workload with { Iterations = 50, Mix = ["push_pop", "read"] },
        });
        var r = sys.Run();
        Assert.True(r.Quiescent);
        Assert.True(sys.Replay!.DataMismatches == 0 && sys.Replay.Desyncs == 0, string.Join("\n", sys.Replay.Problems));
        Assert.Equal(0, sys.Kernel.Stats.Faulted);
        Assert.Equal(0, sys.Kernel.InternalErrors);
        Assert.Equal(0, sys.Kernel.Stats.InFlight);
    }
}

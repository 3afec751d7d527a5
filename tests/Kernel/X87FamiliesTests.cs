using Copra.Kernel.Backends;
using Copra.Kernel.Run;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// FNSTCW, FNSTSW, MMX MOVQ and FXSAVE/FXRSTOR(64) through the real exit path (replay backend, the test device on the
/// memory side; WorkloadBuilder.X87Families): every stored byte read back through the device, every loaded field checked
/// in the state store, and the faults each followed by a check that nothing was written or loaded.
/// </summary>
public class X87FamiliesTests
{
    [Fact]
    public void X87_mmx_and_fxsave_forms_run_through_the_exit_path_whole_or_not_at_all()
    {
        using var sys = new CopraSystem(Scenario.Default() with
        {
            Workload = new WorkloadSpec { Iterations = 1, X87Families = true },
        });
        var r = sys.Run();
        var k = sys.Kernel;
        Assert.True(r.Quiescent);
        Assert.True(sys.Replay!.DataMismatches == 0 && sys.Replay.Desyncs == 0, string.Join("\n", sys.Replay.Problems));
        Assert.Equal(1, sys.Replay.ExceptionsByVector[6]);    // #UD: MMX with CR0.EM
        Assert.Equal(1, sys.Replay.ExceptionsByVector[7]);    // #NM: FNSTCW with CR0.TS
        Assert.Equal(1, sys.Replay.ExceptionsByVector[16]);   // #MF: MMX with FSW.ES
        Assert.Equal(2, sys.Replay.ExceptionsByVector[13]);   // #GP(0): reserved MXCSR bit, misaligned image
        Assert.Equal(5, sys.Replay.ExceptionsSeen);
        Assert.Equal(0, k.Stats.IcedFallbacks);               // every form came from the tables
        Assert.Equal(0, k.InternalErrors);
        Assert.Equal(0, k.Stats.InFlight);
    }
}

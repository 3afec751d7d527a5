using Copra.Kernel.Backends;
using Copra.Kernel.Run;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// Every emulated family through the real exit path (replay backend, the test-device model on the other side):
/// decode, execute, write back, RIP advance. The replay checks each step's RAX against the architectural result
/// (Workload.EmulatedFamilies), so a wrong register, flag (through ADC/SBB/SETcc/CMOVcc) or memory value shows
/// as a data mismatch.
/// </summary>
public class EmulatedFamiliesTests
{
    [Fact]
    public void Every_family_decodes_executes_and_writes_back_through_the_exit_path()
    {
        using var sys = new CopraSystem(Scenario.Default() with
        {
            Workload = new WorkloadSpec { Iterations = 2, EmulatedFamilies = true },
        });
        var r = sys.Run();
        var k = sys.Kernel;
        Assert.True(r.Quiescent);
        Assert.True(sys.Replay!.DataMismatches == 0 && sys.Replay.Desyncs == 0, string.Join("\n", sys.Replay.Problems));
        Assert.Equal(1, sys.Replay.ExceptionsByVector[0]);   // #DE: DIV by zero
        Assert.Equal(0, sys.Replay.ExceptionsByVector[6]);   // no #UD: CMPS and CMPXCHG16B run through the exit path
        Assert.Equal(5, sys.Replay.ExceptionsByVector[13]);  // #GP(0): MOVAPS, MOVDQA, MOVNTDQ, CMPXCHG16B, MOVDIR64B misaligned
        Assert.Equal(1, k.Stats.LockRetries);                // the device's ticker moved between the locked read and write
        Assert.Equal(1, sys.Replay.RepResumes);              // REP LODSB of 300: one re-entry after 256 elements
        Assert.Equal(1, k.Stats.RepResumed);
        Assert.Equal(0, k.Stats.IcedFallbacks);              // every family came from the tables
        Assert.Equal(0, k.InternalErrors);
        Assert.Equal(0, k.Stats.InFlight);
    }
}

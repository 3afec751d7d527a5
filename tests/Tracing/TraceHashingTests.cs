using Copra.Kernel.Core;
using Copra.Kernel.Run;
using Xunit;

namespace Copra.Tests.Tracing;

/// <summary>Trace.Hashed: a run hashes its trace; a harness that never reads the hash (the exit-path rigs) does not.</summary>
public sealed class TraceHashingTests
{
    [Fact]
    public void An_exit_rig_does_not_hash_its_trace_and_has_no_hash_to_read()
    {
        using var rig = new ExitRig(ExitFlavor.MmioRead, warmExits: 64);
        var t = rig.Kernel.Trace;
        Assert.False(t.Hashed);
        rig.StepExits(10);
        Assert.Equal(0, t.Count);   // nothing was mixed in
        Assert.Throws<InvalidOperationException>(() => t.Hash);
    }

    [Fact]
    public void A_run_hashes_every_exit_and_the_hash_follows_the_records()
    {
        using var sys = new CopraSystem(Scenario.Default() with { Workload = Scenario.Default().Workload with { Iterations = 20 } });
        Assert.True(sys.Run().Quiescent);
        var t = sys.Kernel.Trace;
        Assert.True(t.Hashed);
        // One Complete record per finished MMIO/IOIO exit at least (scheduling events add more).
        Assert.True(t.Count >= sys.Kernel.Stats.Completed + sys.Kernel.Stats.Forwarded, $"{t.Count} records");
        Assert.NotEqual(new Trace(2).Hash, t.Hash);
    }

    [Fact]
    public void An_unhashed_trace_still_keeps_records_for_display()
    {
        using var sys = new CopraSystem(Scenario.Default() with { Cpus = 1 });
        var t = new Trace(1) { Keep = true, Hashed = false };
        t.AddOn(sys.Kernel.Cpus[0], TraceKind.Complete, 3, 4);
        Assert.Equal(0, t.Count);
        var r = Assert.Single(t.RecordsOf(0).ToArray());
        Assert.Equal((TraceKind.Complete, 3L, 4L), (r.Kind, r.A, r.B));
    }
}

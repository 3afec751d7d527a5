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
    public void An_unhashed_trace_still_keeps_records_for_display_and_one_not_kept_keeps_none()
    {
        using var sys = new CopraSystem(Scenario.Default() with { Cpus = 1 });
        var cpu = sys.Kernel.Cpus[0];
        var t = new Trace(1) { Keep = true, Hashed = false };
        t.AddOn(cpu, TraceKind.Complete, 3, 4);
        t.AddSmallOn(cpu, TraceKind.Complete, 5, 6);   // the exit's own record
        Assert.Equal(0, t.Count);
        Assert.Equal([(TraceKind.Complete, 3L, 4L), (TraceKind.Complete, 5L, 6L)], t.RecordsOf(0).ToArray().Select(r => (r.Kind, r.A, r.B)));
        var quiet = new Trace(1) { Keep = false, Hashed = false };
        quiet.AddOn(cpu, TraceKind.Complete, 3, 4);
        quiet.AddSmallOn(cpu, TraceKind.Complete, 5, 6);
        Assert.Equal((0, 0L), (quiet.KeptCount, quiet.Count));
    }

    [Fact]
    public void A_small_record_is_kept_as_given_and_its_hash_follows_each_of_its_fields()
    {
        using var sys = new CopraSystem(Scenario.Default());   // two CPUs
        var cpus = sys.Kernel.Cpus;
        ulong HashOf(int cpu, long clock, TraceKind kind, int a, byte b)
        {
            var t = new Trace(2) { Keep = true };
            long was = cpus[cpu].Clock;
            cpus[cpu].Clock = clock;
            t.AddSmallOn(cpus[cpu], kind, a, b);
            cpus[cpu].Clock = was;
            Assert.Equal(1, t.Count);
            var r = Assert.Single(t.RecordsOf(cpu).ToArray());
            Assert.Equal((clock, cpu, kind, (long)a, (long)b, 0L), (r.Clock, r.Cpu, r.Kind, r.A, r.B, r.MeasuredTicks));
            return t.Hash;
        }
        ulong h = HashOf(0, 100, TraceKind.Complete, 3, 4);
        Assert.Equal(h, HashOf(0, 100, TraceKind.Complete, 3, 4));
        var others = new[]
        {
            HashOf(0, 101, TraceKind.Complete, 3, 4), HashOf(0, 100, TraceKind.Forward, 3, 4),
            HashOf(0, 100, TraceKind.Complete, 2, 4), HashOf(0, 100, TraceKind.Complete, 3, 5),
            HashOf(0, 100, TraceKind.Complete, 3 + (1 << 20), 4),   // a vCPU index past the byte the others fit in
            HashOf(0, 100, TraceKind.Complete, 4, 3),               // the two values swapped
        };
        Assert.All(others, o => Assert.NotEqual(h, o));
        Assert.Equal(others.Length, others.Distinct().Count());
        // The lane is the CPU's; a record on the other CPU's lane folds into the run's hash elsewhere.
        Assert.NotEqual(h, HashOf(1, 100, TraceKind.Complete, 3, 4));
    }
}

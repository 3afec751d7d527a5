using Copra.Hot.Exit;
using Copra.Kernel.Run;
using Xunit;

namespace Copra.Tests.Accounting;

/// <summary>
/// Timing one exit in N (ExitStats.TimeThis, docs/design.md "Timing one exit in N"): which exits are timed, what an
/// untimed one leaves behind, and that the choice changes nothing but the samples.
/// </summary>
public sealed class TimedExitTests
{
    [Fact]
    public void Time_every_one_times_every_exit_on_every_cpu_and_outside_them()
    {
        var st = new ExitStats(capacity: 0, cpus: 2);
        Assert.Equal(1, st.TimeEvery);
        for (int i = 0; i < 1000; i++) Assert.True(st.TimeThis(i % 2));
        Assert.True(st.TimeThis(-1));
    }

    [Fact]
    public void A_cpus_draws_are_its_own_whatever_the_other_cpus_draw_between_them()
    {
        var alone = new ExitStats(capacity: 0, cpus: 2, timeEvery: 2);
        var mixed = new ExitStats(capacity: 0, cpus: 2, timeEvery: 2);
        for (int i = 0; i < 256; i++)
        {
            bool want = alone.TimeThis(1);
            for (int j = 0; j <= i % 3; j++) mixed.TimeThis(0);   // CPU 0 takes 1 to 3 exits between CPU 1's
            Assert.True(want == mixed.TimeThis(1), $"CPU 1's draw {i} changed with CPU 0's exits");
        }
    }

    [Fact]
    public void One_in_sixteen_is_timed_at_random_per_cpu_and_the_same_sequence_every_run()
    {
        var a = new ExitStats(capacity: 0, cpus: 2, timeEvery: 16);
        var b = new ExitStats(capacity: 0, cpus: 2, timeEvery: 16);
        const int n = 32_000;
        int timed = 0, sameAcrossCpus = 0;
        var gaps = new HashSet<int>();
        int last = -1;
        for (int i = 0; i < n; i++)
        {
            bool t0 = a.TimeThis(0), t1 = a.TimeThis(1);
            Assert.Equal(t0, b.TimeThis(0));   // deterministic: a run with the same CPUs picks the same exits
            Assert.Equal(t1, b.TimeThis(1));
            if (t0 == t1) sameAcrossCpus++;
            if (!t0) continue;
            timed++;
            if (last >= 0) gaps.Add(i - last);
            last = i;
        }
        // Binomial(32000, 1/16): mean 2000, sd ~43; the bounds are ~7 sd wide.
        Assert.InRange(timed, 1700, 2300);
        // Not a fixed stride, which a workload's loop of 16 instructions would alias with: the gaps vary widely.
        Assert.True(gaps.Count > 20, $"only {gaps.Count} distinct gaps between timed exits");
        // Each CPU has its own sequence (two in step would agree on every exit).
        Assert.True(sameAcrossCpus < n - 500, $"the two CPUs agreed on {sameAcrossCpus} of {n} exits");
        // A caller outside the CPUs (tests, no driver) is always timed.
        Assert.True(a.TimeThis(-1));
        Assert.True(a.TimeThis(2));
    }

    /// <summary>The exit path's one call per exit (ExitStats.TakeExit): the two counts and TimeThis's draw, in one lane.</summary>
    [Fact]
    public void Taking_an_exit_counts_it_and_its_reason_and_draws_as_time_this_does()
    {
        var taker = new ExitStats(capacity: 0, cpus: 2, timeEvery: 4);
        var drawer = new ExitStats(capacity: 0, cpus: 2, timeEvery: 4);
        for (int i = 0; i < 400; i++)
            Assert.True(drawer.TimeThis(1) == taker.TakeExit(1, i % 3 == 0 ? Counter.Io : Counter.Mmio, timeAll: false), $"draw {i}");
        Assert.Equal(400, taker.GetOn(1, Counter.Taken));
        Assert.Equal(134, taker.GetOn(1, Counter.Io));
        Assert.Equal(266, taker.GetOn(1, Counter.Mmio));
        Assert.Equal(0, taker.GetOn(0, Counter.Taken));   // CPU 1's lane only

        // A tracer on: every exit timed, and the countdown untouched (the draws after it are the ones TimeThis makes next).
        for (int i = 0; i < 50; i++) Assert.True(taker.TakeExit(1, Counter.Hlt, timeAll: true));
        Assert.Equal(50, taker.GetOn(1, Counter.Hlt));
        for (int i = 0; i < 100; i++) Assert.True(drawer.TimeThis(1) == taker.TakeExit(1, Counter.Mmio, timeAll: false), $"draw {400 + i}");

        // Outside the CPUs (no CPU, or an index past the last): the shared lane, and timed.
        Assert.True(taker.TakeExit(-1, Counter.Cpuid, timeAll: false));
        Assert.True(taker.TakeExit(2, Counter.Cpuid, timeAll: false));
        Assert.Equal(2, taker.GetOn(2, Counter.Cpuid));
        Assert.Equal(552, taker.Taken);
    }

    [Fact]
    public void An_untimed_exit_is_counted_with_its_modelled_sample_and_keeps_no_measured_one()
    {
        var st = new ExitStats(capacity: 8, cpus: 2, timeEvery: 4);
        st.Record(0, ExitKind.MmioRead, timed: false, 99, 100);
        st.Record(1, ExitKind.MmioRead, timed: false, 99, 200);
        st.Record(-1, ExitKind.PortOut, timed: false, 99, 300);   // outside the CPUs: the shared lane, no sample
        st.Record(1, ExitKind.MmioRead, timed: true, 40, 400);
        Assert.Equal(3, st.Count[(int)ExitKind.MmioRead]);
        Assert.Equal(1, st.Count[(int)ExitKind.PortOut]);
        Assert.Equal(3, st.Samples(ExitKind.MmioRead));
        Assert.Equal(1, st.TimedSamples(ExitKind.MmioRead));
        Assert.Equal(0, st.Samples(ExitKind.PortOut));
        Assert.Equal([40L], st.MeasuredSamples(ExitKind.MmioRead).ToArray());
        Assert.Equal([100L, 200L, 400L], st.ModelledSamples(ExitKind.MmioRead).ToArray());
        // The report's per-CPU parts of the measured array follow the timed counts, the modelled ones every exit.
        Assert.Equal([0, 1], st.Parts(st.Measured[(int)ExitKind.MmioRead], ExitKind.MmioRead).Select(p => p.Length));
        Assert.Equal([1, 2], st.Parts(st.Modelled[(int)ExitKind.MmioRead], ExitKind.MmioRead).Select(p => p.Length));
        st.ResetSamples();
        Assert.Equal(0, st.TimedSamples(ExitKind.MmioRead));
        Assert.Equal(0, st.Samples(ExitKind.MmioRead));
    }

    [Fact]
    public void Timed_samples_past_the_stripe_are_counted_but_not_kept()
    {
        var st = new ExitStats(capacity: 4, cpus: 2);   // stripes of 2
        for (int i = 0; i < 5; i++) st.Record(0, ExitKind.Hlt, timed: true, i + 1, 10 * (i + 1));
        Assert.Equal(5, st.Count[(int)ExitKind.Hlt]);
        Assert.Equal([1L, 2L], st.MeasuredSamples(ExitKind.Hlt).ToArray());
        Assert.Equal([10L, 20L], st.ModelledSamples(ExitKind.Hlt).ToArray());
    }

    [Theory]
    [InlineData(0), InlineData(3), InlineData(24), InlineData(-16), InlineData(1 << 17)]
    public void Time_every_must_be_a_power_of_two_up_to_the_limit(int n)
    {
        Assert.False(ExitStats.IsValidTimeEvery(n));
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new ExitStats(capacity: 0, cpus: 1, timeEvery: n));
        Assert.Contains("a power of two from 1 to 65536", ex.Message);
        var e = Assert.Throws<Copra.Kernel.CliException>(() => (Scenario.Default() with { TimeEvery = n }).Validate());
        Assert.Contains("$.time_every", e.Message);
    }

    [Theory]
    [InlineData(1), InlineData(2), InlineData(1 << 16)]
    public void Powers_of_two_up_to_the_limit_are_accepted(int n)
    {
        Assert.True(ExitStats.IsValidTimeEvery(n));
        Assert.Equal(n, new ExitStats(capacity: 0, cpus: 1, timeEvery: n).TimeEvery);
    }

    static (ulong Hash, long[] Counts, Copra.Kernel.Core.Kernel Kernel, CopraSystem Sys) RunWith(int timeEvery)
    {
        var sc = Scenario.Default() with { TimeEvery = timeEvery, Workload = Scenario.Default().Workload with { Iterations = 300 } };
        var sys = new CopraSystem(sc);
        var r = sys.Run();
        Assert.True(r.Quiescent);
        Assert.Equal(0, sys.Kernel.InternalErrors);
        return (sys.Kernel.Trace.Hash, sys.Kernel.Stats.Count, sys.Kernel, sys);
    }

    /// <summary>An exit hook (copra tune's) is not a tracer: with one installed, exits are still timed one in N, not all
    /// (the exit's header asks the hooks one question, then the tracers only when something is hooked).</summary>
    [Fact]
    public void An_exit_hook_alone_does_not_time_every_exit()
    {
        var sc = Scenario.Default() with { TimeEvery = 16, Workload = Scenario.Default().Workload with { Iterations = 300 } };
        using var sys = new CopraSystem(sc);
        long hooked = 0;
        sys.Kernel.OnExitTaken = _ => hooked++;
        Assert.True(sys.Run().Quiescent);
        long exits = 0, timed = 0;
        for (int k = 0; k < ExitStats.KindCount; k++) { exits += sys.Kernel.Stats.Count[k]; timed += sys.Kernel.Stats.TimedSamples((ExitKind)k); }
        Assert.Equal(sys.Kernel.Stats.Taken, hooked);   // the hook saw every exit
        Assert.True(exits > 1000, $"{exits} exits");
        Assert.InRange(timed, 1, exits / 4);   // one in 16 on average, not every one
    }

    [Fact]
    public void Sampling_changes_only_the_samples_not_the_run_its_trace_or_its_counts()
    {
        var (h1, c1, k1, s1) = RunWith(1);
        var (h16, c16, k16, s16) = RunWith(16);
        using (s1)
        using (s16)
        {
            Assert.Equal(h1, h16);
            Assert.Equal(c1, c16);
            Assert.Equal(k1.Stats.Taken, k16.Stats.Taken);
            long exits = 0, samples1 = 0, samples16 = 0;
            for (int k = 0; k < ExitStats.KindCount; k++)
            {
                var kind = (ExitKind)k;
                exits += c1[k];
                samples1 += k1.Stats.TimedSamples(kind);
                samples16 += k16.Stats.TimedSamples(kind);
                // Every exit timed: one measured sample per exit (far below the capacity here); modelled: every exit either way.
                Assert.Equal(c1[k], k1.Stats.TimedSamples(kind));
                Assert.Equal(c16[k], k16.Stats.Samples(kind));
                Assert.Equal(k1.Stats.ModelledSamples(kind).ToArray(), k16.Stats.ModelledSamples(kind).ToArray());
                // A timed exit read the clock in every segment it ran: no kept sample is an untimed exit's 0.
                if (kind is ExitKind.MmioRead or ExitKind.MmioWrite or ExitKind.PortOut)
                    foreach (long m in k16.Stats.MeasuredSamples(kind)) Assert.True(m > 0, $"{kind}: a kept sample measured 0");
            }
            Assert.Equal(exits, samples1);
            // One in 16 at random: about exits / 16 (binomial; the bounds are wide).
            Assert.InRange(samples16, exits / 32, exits / 8);
        }
    }
}

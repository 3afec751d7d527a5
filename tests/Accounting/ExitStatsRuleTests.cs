using Copra.Hot.Exit;
using Xunit;

namespace Copra.Tests.Accounting;

/// <summary>ExitStats' rules (hot/Exit/ExitStats.cs): per-CPU lanes and a shared one, the accounting identity, hardware samples, arguments.</summary>
public sealed class ExitStatsRuleTests
{
    [Fact]
    public void Each_cpu_adds_to_its_own_lane_a_caller_outside_them_to_the_shared_one_and_a_read_sums_all()
    {
        var st = new ExitStats(capacity: 4, cpus: 2);
        st.Add(0, Counter.Mmio, 2);
        st.Add(1, Counter.Mmio, 3);
        st.Add(-1, Counter.Mmio, 5);
        st.Add(2, Counter.Mmio, 7);    // no such CPU: the shared lane
        st.Add(1, Counter.Io);
        Assert.Equal(2, st.GetOn(0, Counter.Mmio));
        Assert.Equal(3, st.GetOn(1, Counter.Mmio));
        Assert.Equal(12, st.GetOn(2, Counter.Mmio));   // the shared lane is the last
        Assert.Equal(17, st.Mmio);
        Assert.Equal(1, st.Io);
        Assert.Equal(0, st.GetOn(0, Counter.Io));
    }

    [Fact]
    public void In_flight_is_the_accesses_taken_less_every_way_an_access_ends()
    {
        var st = new ExitStats(capacity: 0, cpus: 1);
        st.Add(0, Counter.Mmio, 100);
        st.Add(0, Counter.Io, 50);
        st.Add(0, Counter.Completed, 70);
        st.Add(0, Counter.Forwarded, 20);
        st.Add(0, Counter.Reinjected, 10);
        st.Add(0, Counter.Faulted, 5);
        st.Add(0, Counter.Aborted, 3);
        Assert.Equal(150, st.AccessesTaken);
        Assert.Equal(150 - 70 - 20 - 10 - 5 - 3, st.InFlight);
    }

    [Fact]
    public void Every_counter_reads_back_under_its_own_name()
    {
        var st = new ExitStats(capacity: 0, cpus: 1);
        var all = Enum.GetValues<Counter>();
        for (int i = 0; i < all.Length; i++) st.Add(0, all[i], i + 1);
        var named = new Dictionary<Counter, long>
        {
            [Counter.Taken] = st.Taken, [Counter.Mmio] = st.Mmio, [Counter.Io] = st.Io, [Counter.Completed] = st.Completed,
            [Counter.Forwarded] = st.Forwarded, [Counter.Reinjected] = st.Reinjected, [Counter.Faulted] = st.Faulted,
            [Counter.Aborted] = st.Aborted, [Counter.ToVmm] = st.ToVmm, [Counter.Hlt] = st.Hlt, [Counter.Cpuid] = st.Cpuid,
            [Counter.Msr] = st.Msr, [Counter.Shutdown] = st.Shutdown, [Counter.DecodeMismatch] = st.DecodeMismatch,
            [Counter.IcedFallbacks] = st.IcedFallbacks, [Counter.RepResumed] = st.RepResumed, [Counter.DeviceRoundTrips] = st.DeviceRoundTrips,
            [Counter.DevicesLost] = st.DevicesLost, [Counter.ForwardFailures] = st.ForwardFailures, [Counter.TdReads] = st.TdReads,
            [Counter.TdWrites] = st.TdWrites, [Counter.Transitions] = st.Transitions, [Counter.CrossCpuWakes] = st.CrossCpuWakes,
            [Counter.HardwareChecked] = st.HardwareChecked, [Counter.MismatchAddress] = st.MismatchAddress, [Counter.MismatchSize] = st.MismatchSize,
            [Counter.MismatchDirection] = st.MismatchDirection, [Counter.MismatchData] = st.MismatchData, [Counter.LockRetries] = st.LockRetries,
            [Counter.SegmentFaults] = st.SegmentFaults, [Counter.AlignmentFaults] = st.AlignmentFaults, [Counter.IoPrivilegeFaults] = st.IoPrivilegeFaults,
            [Counter.SingleStepTraps] = st.SingleStepTraps,
        };
        Assert.Equal(all.Length, named.Count);
        foreach (var c in all) Assert.True(named[c] == (int)c + 1, $"{c}: {named[c]}");
    }

    [Fact]
    public void Hardware_samples_are_kept_only_once_enabled_and_read_per_kind_and_over_all_kinds()
    {
        var st = new ExitStats(capacity: 4, cpus: 2);
        Assert.False(st.HasHardware);
        st.Record(0, ExitKind.MmioRead, 1, 1, hardwareTicks: 500);
        Assert.True(st.HardwareSamples(ExitKind.MmioRead).IsEmpty);
        Assert.Equal(0, st.HardwareMedian(ExitKind.MmioRead));
        Assert.Equal(0, st.HardwareMedianAll());

        st.EnableHardware();
        Assert.True(st.HasHardware);
        var arrays = st.Hardware.ToArray();
        st.ResetSamples();
        st.Record(0, ExitKind.MmioRead, 1, 1, hardwareTicks: 7);
        st.EnableHardware();   // again: the arrays (and what they hold) stay
        for (int k = 0; k < arrays.Length; k++) Assert.Same(arrays[k], st.Hardware[k]);
        Assert.Equal([7L], st.HardwareSamples(ExitKind.MmioRead).ToArray());
        st.ResetSamples();
        st.Record(0, ExitKind.MmioRead, 1, 1, hardwareTicks: 10);
        st.Record(1, ExitKind.MmioRead, 2, 2, hardwareTicks: 30);
        st.Record(1, ExitKind.PortOut, 3, 3, hardwareTicks: 100);
        Assert.Equal([10L, 30], st.HardwareSamples(ExitKind.MmioRead).ToArray());
        Assert.Equal(20, st.HardwareMedian(ExitKind.MmioRead));
        Assert.Equal(30, st.HardwareMedianAll());
        Assert.Equal(2, st.ModelledMedianAll());
    }

    [Fact]
    public void A_cpu_number_past_the_last_is_counted_in_the_shared_lane_and_keeps_no_sample()
    {
        var st = new ExitStats(capacity: 4, cpus: 2);
        st.Record(2, ExitKind.Msr, 9, 9);
        Assert.Equal(1, st.Count[(int)ExitKind.Msr]);
        Assert.Equal(0, st.Samples(ExitKind.Msr));
    }

    /// <summary>The exit's end counts a completed access with its record (one lane computation): only when it completed,
    /// in the recording CPU's lane, or the shared lane outside the CPUs.</summary>
    [Fact]
    public void A_completed_exit_is_counted_with_its_record_in_its_own_lane()
    {
        var st = new ExitStats(capacity: 4, cpus: 2);
        st.Record(1, ExitKind.MmioRead, timed: false, 0, 10, completed: true);
        st.Record(1, ExitKind.Faulted, timed: false, 0, 10);
        st.Record(0, ExitKind.PortIn, timed: true, 3, 10, completed: true);
        st.Record(-1, ExitKind.MmioWrite, timed: false, 0, 10, completed: true);
        st.Record(2, ExitKind.MmioWrite, timed: false, 0, 10, completed: true);
        st.Record(-1, ExitKind.Forwarded, timed: false, 0, 10, completed: false);
        Assert.Equal(1, st.GetOn(1, Counter.Completed));
        Assert.Equal(1, st.GetOn(0, Counter.Completed));
        Assert.Equal(2, st.GetOn(2, Counter.Completed));   // the shared lane
        Assert.Equal(4, st.Completed);
        Assert.Equal(2, st.Count[(int)ExitKind.MmioWrite]);
        Assert.Equal(1, st.Count[(int)ExitKind.Faulted]);
    }

    [Fact]
    public void Parts_are_each_cpus_kept_samples_without_a_copy()
    {
        var st = new ExitStats(capacity: 6, cpus: 2);   // stripes of 3
        st.Record(1, ExitKind.Hlt, 7, 70);
        st.Record(0, ExitKind.Hlt, 5, 50);
        st.Record(1, ExitKind.Hlt, 8, 80);
        var parts = st.Parts(st.Measured[(int)ExitKind.Hlt], ExitKind.Hlt);
        Assert.Equal(2, parts.Length);
        Assert.Equal([5L], parts[0].ToArray());
        Assert.Equal([7L, 8], parts[1].ToArray());
        Assert.Single(st.Parts(null, ExitKind.Hlt));
        Assert.True(st.Parts(null, ExitKind.Hlt)[0].IsEmpty);
        Assert.Equal(7, st.MeasuredMedian(ExitKind.Hlt));
        Assert.Equal(70, st.ModelledMedian(ExitKind.Hlt));
    }

    [Fact]
    public void One_cpus_part_is_read_for_a_cpu_or_the_shared_lane_and_refused_past_it()
    {
        var st = new ExitStats(capacity: 0, cpus: 2);
        st.Add(-1, Counter.Taken, 4);
        Assert.Equal(4, st.GetOn(2, Counter.Taken));   // the shared lane
        Assert.Throws<ArgumentOutOfRangeException>(() => st.GetOn(3, Counter.Taken));
    }

    [Fact]
    public void The_capacity_and_cpu_count_are_checked()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ExitStats(capacity: -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ExitStats(capacity: 4, cpus: 0));
        var st = new ExitStats(capacity: 0, cpus: 1);
        Assert.Equal(0, st.Capacity);
        st.Record(0, ExitKind.Cpuid, 1, 1);
        Assert.Equal(0, st.Samples(ExitKind.Cpuid));
        Assert.Equal(0, st.MeasuredMedianAll());
    }

    [Fact]
    public void The_median_of_every_ordering_of_small_inputs_is_the_sorted_median()
    {
        // Every permutation of 1..7 and of a multiset with repeats, odd and even lengths: each partition step's branch is taken.
        foreach (long[] values in new long[][] { [1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6], [2, 2, 1, 3, 3, 1, 2], [5, 1, 3, 2, 4] })
            foreach (var p in Permutations(values))
            {
                var sorted = p.Order().ToArray();
                int m = p.Length / 2;
                double want = p.Length % 2 == 1 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2.0;
                Assert.True(want == ExitStats.Median(p), $"[{string.Join(", ", p)}]: {ExitStats.Median(p)}, want {want}");
            }
    }

    static IEnumerable<long[]> Permutations(long[] a)
    {
        if (a.Length <= 1) { yield return a; yield break; }
        for (int i = 0; i < a.Length; i++)
        {
            var rest = a.Take(i).Concat(a.Skip(i + 1)).ToArray();
            foreach (var p in Permutations(rest)) yield return [a[i], .. p];
        }
    }
}

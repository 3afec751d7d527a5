using Copra.Kernel.Report;
using Xunit;

namespace Copra.Tests.Reporting;

/// <summary>
/// <see cref="LogHistogram.RecordAll"/> (the report's one tight pass over the kept samples) must give exactly what a
/// loop of <see cref="LogHistogram.Record"/> and min/max/sum gives: every bucket, the count, and the same double sum.
/// </summary>
public class LogHistogramRecordAllTests
{
    static (long[] Buckets, long Count, long Min, long Max, double Sum) Reference(long highest, long[][] parts)
    {
        var h = new LogHistogram(highest);
        long min = long.MaxValue, max = long.MinValue;
        double sum = 0;
        foreach (var p in parts)
            foreach (long v in p) { h.Record(v); if (v < min) min = v; if (v > max) max = v; sum += v; }
        return (Every(h), h.Count, min, max, sum);
    }

    static (long[] Buckets, long Count, long Min, long Max, double Sum) Tight(long highest, long[][] parts)
    {
        var h = new LogHistogram(highest);
        long min = long.MaxValue, max = long.MinValue;
        double sum = 0;
        foreach (var p in parts) h.RecordAll(p, ref min, ref max, ref sum);
        return (Every(h), h.Count, min, max, sum);
    }

    /// <summary>The value at the rank of every sample: the whole bucketed distribution, as ValuesAt reads it.</summary>
    static long[] Every(LogHistogram h)
    {
        if (h.Count == 0) return [];
        var qs = new double[h.Count];
        for (int k = 0; k < qs.Length; k++) qs[k] = 100.0 * (k + 1) / h.Count;
        var at = new long[qs.Length];
        h.ValuesAt(qs, at);
        return at;
    }

    public static TheoryData<string> Cases => ["small", "edges", "wide", "negative", "above-highest", "huge", "empty-part", "runs", "runs-negative", "alternating", "three-cycle"];

    static (long Highest, long[][] Parts) Make(string name)
    {
        var rng = new Random(name.Length * 131 + name[0]);   // string hashes are randomised per process: a fixed seed
        long[] R(int n, long lo, long hi) { var a = new long[n]; for (int i = 0; i < n; i++) a[i] = rng.NextInt64(lo, hi); return a; }
        const long H = long.MaxValue >> 1;
        return name switch
        {
            "small" => (H, [R(500, 0, 2048)]),
            "edges" => (H, [[0, 1, 1023, 1024, 2046, 2047, 2048, 2049, 4095, 4096, 4097, 8191, 8192, (1L << 40) - 1, 1L << 40, H - 1, H]]),
            "wide" => (H, [R(300, 100, 5_000), R(200, 2_000, 90_000_000), R(50, 1L << 30, 1L << 50)]),
            "negative" => (H, [R(100, 0, 3_000), [-1, -5_000, long.MinValue], R(100, 0, 3_000)]),
            "above-highest" => (10_000, [R(200, 0, 30_000)]),
            "huge" => (H, [R(50, 0, 1_000), [long.MaxValue, H + 1]]),
            "empty-part" => (H, [[], R(100, 0, 100_000), []]),
            // Runs of equal samples (a kind's modelled cycles): at the start, in the middle, at the end, across parts.
            "runs" => (H, [[2190, 2190, 2190, 2191, 7, 7, 90_000, 90_000], [90_000, 2190, 2190], [1L << 41, 1L << 41]]),
            "runs-negative" => (H, [[-1, -1, 4, 4, 4, -1], [4, 4]]),
            // Two values alternating (an exit charged a cross-CPU wake and one not), a third breaking in, across parts.
            "alternating" => (H, [[2191, 2341, 2191, 2191, 2341, 5, 2191, 2341, 2341, 5, 5], [2341, 2191, 1L << 41, 2191], [9]]),
            "three-cycle" => (H, [[1, 2, 3, 1, 2, 3, 3, 2, 1, 1, 70_000, 2], [-3, 2, -3, 2]]),
            _ => throw new ArgumentException(name),
        };
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void The_tight_pass_counts_exactly_what_Record_counts(string name)
    {
        var (highest, parts) = Make(name);
        var want = Reference(highest, parts);
        var got = Tight(highest, parts);
        Assert.Equal(want.Count, got.Count);
        Assert.Equal(want.Buckets, got.Buckets);
        Assert.Equal(want.Min, got.Min);
        Assert.Equal(want.Max, got.Max);
        Assert.Equal(want.Sum, got.Sum);   // same order of additions: bit-identical
    }

    [Fact]
    public void A_cleared_histogram_after_a_tight_pass_is_empty()
    {
        var h = new LogHistogram(long.MaxValue >> 1);
        long min = long.MaxValue, max = long.MinValue;
        double sum = 0;
        h.RecordAll([5, 70_000, 3L << 40], ref min, ref max, ref sum);
        h.Clear();
        h.RecordAll([7], ref min, ref max, ref sum);
        var at = new long[1];
        h.ValuesAt([100], at);
        Assert.Equal(1, h.Count);
        Assert.Equal(7, at[0]);   // Clear reached the top bucket the tight pass used (3 << 40 would read back here)
    }
}

namespace Copra.Kernel.Report;

/// <summary>
/// The bucketing of an HdrHistogram at three significant digits, counted into one preallocated array: values below
/// 2,048 have a bucket each; above, every power of two is split into 1,024 equal buckets, so a bucket's width is at
/// most 1/1,024 of its values (a percentile is within 0.1 % of the sample it stands for). Recording a sample is a
/// leading-zero count, a shift and an increment, about a tenth of the library's RecordValue: a report over a long
/// run costs a few instructions per exit (issue 13: asking for output should cost nothing per exit). Report time
/// only; not thread-safe.
/// <code>
///  value:  0 ........ 2047 | 2048 ... 4095 | 4096 ... 8191 | ...
///  bucket: one per value   | 1,024 of 2    | 1,024 of 4    | ...   (index = 2048 + (e - 1) * 1024 + (v >> e) - 1024)
/// </code>
/// </summary>
public sealed class LogHistogram
{
    const int SubBits = 11, Sub = 1 << SubBits, Half = Sub / 2;
    readonly long[] _counts;
    readonly long _highest;

    /// <summary>Values are clamped into [0, <paramref name="highest"/>].</summary>
    public LogHistogram(long highest)
    {
        _highest = highest;
        _counts = new long[IndexOf(highest) + 1];
    }

    public long Count { get; private set; }

    static int IndexOf(long v)
    {
        if (v < Sub) return (int)v;
        int e = 63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)v) - (SubBits - 1);   // v >> e is in [1024, 2047]
        return Sub + (e - 1) * Half + (int)(v >> e) - Half;
    }

    /// <summary>The largest value that lands in bucket <paramref name="i"/>.</summary>
    static long HighestIn(int i)
    {
        if (i < Sub) return i;
        int e = (i - Sub) / Half + 1, j = (i - Sub) % Half;
        return ((long)(Half + j + 1) << e) - 1;
    }

    int _top;   // highest bucket used since the last Clear: clearing and reading stop there

    public void Record(long v)
    {
        int i = IndexOf(Math.Clamp(v, 0, _highest));
        _counts[i]++;
        if (i > _top) _top = i;
        Count++;
    }

    /// <summary>Adds every count of <paramref name="other"/> (same bucketing): histograms of disjoint samples sum to the histogram of their union.</summary>
    public void Add(LogHistogram other)
    {
        int top = Math.Min(other._top, _counts.Length - 1);
        for (int i = 0; i <= top; i++) _counts[i] += other._counts[i];
        if (top > _top) _top = top;
        Count += other.Count;
    }

    public void Clear()
    {
        Array.Clear(_counts, 0, _top + 1);
        _top = 0;
        Count = 0;
    }

    /// <summary>
    /// The values at the percentiles <paramref name="qs"/> (ascending, 0..100), in one pass: the largest value of the
    /// bucket holding the ceil(q% of the count)-th sample (at least the first), as HdrHistogram's GetValueAtPercentile.
    /// </summary>
    public void ValuesAt(ReadOnlySpan<double> qs, Span<long> into)
    {
        long seen = 0;
        int k = 0;
        for (int i = 0; i <= _top && k < qs.Length; i++)
        {
            seen += _counts[i];
            while (k < qs.Length && seen >= Math.Max(1, (long)Math.Ceiling(qs[k] / 100.0 * Count)))
                into[k++] = HighestIn(i);
        }
        for (; k < qs.Length; k++) into[k] = HighestIn(_top);
    }
}

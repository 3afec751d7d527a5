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
        _top = IndexOf(highest);
        // Room for the index of any 64-bit pattern (RecordAll indexes before it checks the range; see there).
        _counts = new long[Math.Max(_top, AnyIndex) + 1];
        _top = 0;
    }

    /// <summary>The largest index <see cref="UncheckedIndex"/> gives for any 64-bit pattern (e = 53: 53 × 1,024 + 2,047).</summary>
    const int AnyIndex = (64 - SubBits) * Half + Sub - 1;

    public long Count { get; private set; }

    static int IndexOf(long v)
    {
        if (v < Sub) return (int)v;
        int e = 63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)v) - (SubBits - 1);   // v >> e is in [1024, 2047]
        return Sub + (e - 1) * Half + (int)(v >> e) - Half;
    }

    /// <summary>
    /// <see cref="IndexOf"/> without the branch, for values in [0, 2^62): with e = max(0, bit length − 11), the index is
    /// e × 1,024 + (v &gt;&gt; e) (for e = 0 that is v itself; for e ≥ 1 it is IndexOf's formula rearranged). Any other
    /// pattern still gives an index ≤ <see cref="AnyIndex"/>, so a caller may count first and check the range after.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    static int UncheckedIndex(ulong v)
    {
        int e = System.Numerics.BitOperations.Log2(v | 1) - (SubBits - 1);
        e &= ~(e >> 31);   // max(0, e) without a branch
        return (e << (SubBits - 1)) + (int)(v >> e);
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

    /// <summary>
    /// Counts every sample of <paramref name="samples"/> (as <see cref="Record"/> each would) and folds them into
    /// <paramref name="min"/>, <paramref name="max"/> and <paramref name="sum"/> (in order, as a loop of
    /// <c>sum += sample</c> would). One tight pass by runs of the two values seen last (~15 instructions a sample over the default run's kept samples, callgrind), against Record's sixty: a report
    /// reads every kept sample, so this loop is what asking for output costs per exit (issue 13). A sample outside
    /// [0, highest] (never seen from the exit path: cycles are non-negative and far below 2^62) sends the whole span
    /// back through Record's clamp.
    /// </summary>
    public void RecordAll(ReadOnlySpan<long> samples, ref long min, ref long max, ref double sum)
    {
        if (samples.IsEmpty) return;
        ref long counts = ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(_counts);
        CountRuns(ref counts, samples, 1, out long lo, out long hi, out long total);
        if (lo < 0 || hi > _highest)
        {
            // Undo the unchecked counts and record through the clamp (Record's path, one sample at a time).
            CountRuns(ref counts, samples, -1, out _, out _, out _);
            foreach (long v in samples) Record(v);
        }
        else
        {
            int top = UncheckedIndex((ulong)hi);   // the index is monotonic in the value
            if (top > _top) _top = top;
            Count += samples.Length;
        }
        min = Math.Min(min, lo);
        max = Math.Max(max, hi);
        // A double sum of non-negative integers whose running total stays below 2^53 is exact at every step, so it equals
        // the integer sum; below 2^40 per sample and 2^23 samples the long cannot overflow. Otherwise add as doubles, in order.
        const double Exact = 1L << 53;
        double s = sum;
        if (lo >= 0 && hi < 1L << 40 && samples.Length < 1 << 23 && s >= 0 && s < Exact && s == Math.Floor(s) && s + total < Exact)
            sum = (double)((long)s + total);
        else
        {
            foreach (long v in samples) s += v;
            sum = s;
        }
    }

    /// <summary>
    /// Adds <paramref name="sign"/> × each sample's count into its bucket (unchecked index: in bounds for any value), by
    /// runs of the two values seen last (a kind's modelled cycles repeat, or alternate between a few: an exit charged a
    /// cross-CPU wake and one not; so most samples cost two compares), with the samples' min, max and (unchecked)
    /// integer sum. A third value sends the older pending one to its bucket.
    /// </summary>
    static void CountRuns(ref long counts, ReadOnlySpan<long> samples, long sign, out long min, out long max, out long total)
    {
        long lo = long.MaxValue, hi = long.MinValue, t = 0;
        // b starts as a copy of a with no count: flushing it adds nothing, and its value is a sample's (min and max hold).
        long a = samples[0], na = 0, b = a, nb = 0;
        foreach (long v in samples)
        {
            if (v == a) { na++; continue; }
            if (v == b) { nb++; continue; }
            Flush(ref counts, sign, b, nb, ref lo, ref hi, ref t);
            b = a; nb = na;
            a = v; na = 1;
        }
        Flush(ref counts, sign, b, nb, ref lo, ref hi, ref t);
        Flush(ref counts, sign, a, na, ref lo, ref hi, ref t);
        min = lo;
        max = hi;
        total = t;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    static void Flush(ref long counts, long sign, long value, long n, ref long lo, ref long hi, ref long t)
    {
        System.Runtime.CompilerServices.Unsafe.Add(ref counts, UncheckedIndex((ulong)value)) += sign * n;
        lo = Math.Min(lo, value);
        hi = Math.Max(hi, value);
        t += value * n;
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

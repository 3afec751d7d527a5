using System.Text.Json;
using Copra.Hot.Timing;
using Copra.Kernel.Exit;
using Copra.Hot.Exit;

namespace Copra.Kernel.Report;

/// <summary>
/// One distribution of cycles: count, exact min and max, and percentiles read from a histogram with HdrHistogram's
/// bucketing at three significant digits (<see cref="LogHistogram"/>: a percentile is within 0.1% of the sample it
/// stands for; fixed memory whatever the count).
/// </summary>
public sealed record Distribution(long Count, long Min, long P25, long P50, long P75, long P90, long P99, long P999, long Max, double Mean)
{
    /// <summary>Cycles above this are clamped into the top bucket (2^36 cycles is ~25 s at 2.6 GHz).</summary>
    public const long Highest = 1L << 36;

    public static readonly Distribution Empty = new(0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

    static readonly double[] Percentiles = [25, 50, 75, 90, 99, 99.9];
    [ThreadStatic] static LogHistogram? t_histogram;

    /// <summary>
    /// The distribution of <paramref name="samples"/>, each through <paramref name="convert"/> (monotonic: applied to
    /// the bucket values read, not to every sample). One pass that counts into a <see cref="LogHistogram"/>.
    /// </summary>
    public static Distribution Of(ReadOnlySpan<long> samples, Func<long, long>? convert = null) => Of([samples.ToArray()], convert);

    /// <summary>
    /// The distribution of several sample spans together, without copying them; with <paramref name="union"/>, the
    /// samples are also added to it (a report's "all" row is the union of the kinds': each sample is read once).
    /// </summary>
    public static Distribution Of(ReadOnlyMemory<long>[] parts, Func<long, long>? convert = null, Union? union = null)
    {
        long n = 0;
        foreach (var p in parts) n += p.Length;
        if (n == 0) return Empty;
        var h = t_histogram ??= new LogHistogram(long.MaxValue >> 1);
        h.Clear();
        long min = long.MaxValue, max = long.MinValue;
        double sum = 0;
        foreach (var part in parts) h.RecordAll(part.Span, ref min, ref max, ref sum);
        union?.Add(h, min, max, sum);
        return From(h, min, max, sum, convert);
    }

    static Distribution From(LogHistogram h, long min, long max, double sum, Func<long, long>? convert)
    {
        long n = h.Count;
        var at = new long[Percentiles.Length];
        h.ValuesAt(Percentiles, at);
        long C(long v) => Math.Clamp(convert is null ? v : convert(v), 0, Highest);
        long lo = C(min), hi = C(max);
        // Percentiles are clamped into [min, max]: a bucket's upper edge can pass the largest sample by < 0.1%.
        long P(int i) => Math.Clamp(C(at[i]), lo, hi);
        double mean = sum / n;
        return new Distribution(n, lo, P(0), P(1), P(2), P(3), P(4), P(5), hi, convert is null ? Math.Min(mean, Highest) : Math.Min(convert((long)Math.Round(mean)), Highest));
    }

    /// <summary>Samples gathered from several distributions' histograms (bucket counts add; min, max and sum combine).</summary>
    public sealed class Union
    {
        readonly LogHistogram _h = new(long.MaxValue >> 1);
        long _min = long.MaxValue, _max = long.MinValue;
        double _sum;

        internal void Add(LogHistogram h, long min, long max, double sum)
        {
            _h.Add(h);
            _min = Math.Min(_min, min);
            _max = Math.Max(_max, max);
            _sum += sum;
        }

        /// <summary>The distribution of every sample added so far.</summary>
        public Distribution ToDistribution(Func<long, long>? convert = null) => _h.Count == 0 ? Empty : From(_h, _min, _max, _sum, convert);
    }

    /// <summary>Writes the fields with <paramref name="unit"/> in every name: count, min_cycles, p50_cycles, ...</summary>
    public void WriteJson(Utf8JsonWriter w, string name, string unit)
    {
        w.WriteStartObject(name);
        w.WriteNumber("samples_count", Count);
        w.WriteNumber($"min_{unit}", Min);
        w.WriteNumber($"p50_{unit}", P50);
        w.WriteNumber($"p90_{unit}", P90);
        w.WriteNumber($"p99_{unit}", P99);
        w.WriteNumber($"p99_9_{unit}", P999);
        w.WriteNumber($"max_{unit}", Max);
        w.WriteNumber($"mean_{unit}", Math.Round(Mean, 1));
        w.WriteEndObject();
    }
}

/// <summary>Per exit kind: how many, and the distributions of measured kernel cycles and modelled platform cycles.</summary>
public sealed record KindReport(ExitKind Kind, string Name, long Count, Distribution Measured, Distribution Modelled, Distribution? Hardware);

/// <summary>The reporting layer over <see cref="ExitStats"/>'s read surface (samples per kind); nothing here runs on the exit path.</summary>
public static class ExitReport
{
    /// <summary>Clock ticks to the report's unit (<see cref="Tsc.Unit"/>): cycles of an invariant hardware TSC, else
    /// nanoseconds; nanoseconds are never relabelled as cycles.</summary>
    public static long ToReportUnits(long ticks) => (long)Tsc.ToReportUnits(ticks);

    public static string MeasuredIs => Tsc.CountsCycles
        ? "TSC cycles of the kernel's own code (measured)"
        : "nanoseconds of the kernel's own code (measured; no invariant hardware TSC, so not cycles)";

    /// <summary>snake_case of a kind's name: MmioRead becomes mmio_read.</summary>
    public static string Snake(string pascal)
    {
        var sb = new System.Text.StringBuilder();
        for (int i = 0; i < pascal.Length; i++)
        {
            char c = pascal[i];
            if (char.IsUpper(c) && i > 0) sb.Append('_');
            sb.Append(char.ToLowerInvariant(c));
        }
        return sb.ToString();
    }

    public static IReadOnlyList<KindReport> ByKind(ExitStats st) => Full(st).Kinds;

    /// <summary>
    /// Every kind's row and the "all" row in one pass over the samples: each sample is counted once per dimension, and
    /// "all" is the sum of the kinds' histograms (identical buckets, so identical percentiles), not a second pass.
    /// </summary>
    public static (IReadOnlyList<KindReport> Kinds, KindReport All) Full(ExitStats st)
    {
        var list = new List<KindReport>();
        Distribution.Union m = new(), d = new();
        Distribution.Union? hw = st.HasHardware ? new() : null;
        var count = st.Count;
        for (int i = 0; i < ExitStats.KindCount; i++)
        {
            var kind = (ExitKind)i;
            if (count[i] == 0) continue;
            list.Add(new KindReport(kind, Snake(kind.ToString()), count[i],
                Distribution.Of(st.Parts(st.Measured[i], kind), ToReportUnits, m),
                Distribution.Of(st.Parts(st.Modelled[i], kind), null, d),
                st.Hardware[i] is { } h ? Distribution.Of(st.Parts(h, kind), ToReportUnits, hw) : null));
        }
        return (list, new KindReport(ExitKind.Other, "all", st.Taken, m.ToDistribution(ToReportUnits), d.ToDistribution(), hw?.ToDistribution(ToReportUnits)));
    }

    /// <summary>Every kind's samples together.</summary>
    public static KindReport All(ExitStats st) => Full(st).All;
}

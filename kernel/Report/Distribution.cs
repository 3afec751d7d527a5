using System.Text.Json;
using Copra.Hot.Timing;
using Copra.Kernel.Exit;
using HdrHistogram;

namespace Copra.Kernel.Report;

/// <summary>
/// One distribution of cycles: count, exact min and max, and percentiles read from an HdrHistogram at three
/// significant digits (a percentile is within 0.1% of the sample it stands for; fixed memory whatever the count).
/// </summary>
public sealed record Distribution(long Count, long Min, long P25, long P50, long P75, long P90, long P99, long P999, long Max, double Mean)
{
    /// <summary>Cycles above this are clamped into the top bucket (2^36 cycles is ~25 s at 2.6 GHz).</summary>
    public const long Highest = 1L << 36;

    public static readonly Distribution Empty = new(0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

    public static Distribution Of(ReadOnlySpan<long> samples, Func<long, long>? convert = null)
    {
        if (samples.Length == 0) return Empty;
        var h = new LongHistogram(Highest, 3);
        long min = long.MaxValue, max = long.MinValue;
        double sum = 0;
        foreach (long raw in samples)
        {
            long v = Math.Clamp(convert is null ? raw : convert(raw), 0, Highest);
            h.RecordValue(v);
            if (v < min) min = v;
            if (v > max) max = v;
            sum += v;
        }
        // Percentiles are clamped into [min, max]: a bucket's upper edge can pass the largest sample by < 0.1%.
        long P(double q) => Math.Clamp(h.GetValueAtPercentile(q), min, max);
        return new Distribution(samples.Length, min, P(25), P(50), P(75), P(90), P(99), P(99.9), max, sum / samples.Length);
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

    public static IReadOnlyList<KindReport> ByKind(ExitStats st)
    {
        var list = new List<KindReport>();
        for (int i = 0; i < ExitStats.KindCount; i++)
        {
            var kind = (ExitKind)i;
            if (st.Count[i] == 0) continue;
            list.Add(new KindReport(kind, Snake(kind.ToString()), st.Count[i],
                Distribution.Of(st.MeasuredSamples(kind), ToReportUnits),
                Distribution.Of(st.ModelledSamples(kind)),
                st.HasHardware ? Distribution.Of(st.HardwareSamples(kind), ToReportUnits) : null));
        }
        return list;
    }

    /// <summary>Every kind's samples together.</summary>
    public static KindReport All(ExitStats st)
    {
        var m = new List<long>();
        var d = new List<long>();
        var hw = new List<long>();
        for (int i = 0; i < ExitStats.KindCount; i++)
        {
            m.AddRange(st.MeasuredSamples((ExitKind)i));
            d.AddRange(st.ModelledSamples((ExitKind)i));
            if (st.HasHardware) hw.AddRange(st.HardwareSamples((ExitKind)i));
        }
        return new KindReport(ExitKind.Other, "all", st.Taken, Distribution.Of(m.ToArray(), ToReportUnits), Distribution.Of(d.ToArray()),
            st.HasHardware ? Distribution.Of(hw.ToArray(), ToReportUnits) : null);
    }
}

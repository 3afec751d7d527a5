using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Exporters.Json;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Copra.Hot.Timing;

namespace Copra.Bench;

/// <summary>The one configuration every suite runs under (in code, so a fresh clone needs no flags).</summary>
public static class BenchConfig
{
    /// <summary>
    /// Short jobs for a shared 2-core machine: one launch, 3 warm-ups, 7 measured iterations. Timing is
    /// reported, never asserted.
    /// </summary>
    public static IConfig Short(bool inProcess = false) => Common()
        .AddJob(inProcess
            ? Job.Default.WithLaunchCount(1).WithWarmupCount(3).WithIterationCount(7).WithToolchain(InProcessEmitToolchain.Instance).WithId("ShortInProcess").AsDefault()
            : Job.Default.WithLaunchCount(1).WithWarmupCount(3).WithIterationCount(7).WithId("Short").AsDefault());

    /// <summary>Every benchmark once, in this process (BenchmarkDotNet's Dry job): a smoke test, no figures.</summary>
    public static IConfig Dry() => Common()
        .AddJob(Job.Dry.WithToolchain(InProcessEmitToolchain.Instance).WithId("Dry").AsDefault());

    static ManualConfig Common()
    {
        var c = ManualConfig.CreateEmpty()
            .AddLogger(ConsoleLogger.Default)
            .AddColumnProvider(DefaultColumnProviders.Instance)
            .AddColumn(StatisticColumn.Median, StatisticColumn.Min, StatisticColumn.Max)
            .AddColumn(new CyclesColumn())
            .AddDiagnoser(MemoryDiagnoser.Default)
            .AddExporter(MarkdownExporter.GitHub, JsonExporter.Full)
            .WithOptions(ConfigOptions.DisableLogFile);
        return c;
    }
}

/// <summary>The median time per operation in TSC cycles, at the TSC rate measured at start-up (<see cref="Tsc.Hz"/>).</summary>
public sealed class CyclesColumn : IColumn
{
    public string Id => nameof(CyclesColumn);
    public string ColumnName => "Median cycles";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Statistics;
    public int PriorityInCategory => 10;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => $"Median time per operation in TSC cycles at the measured {Tsc.Hz / 1e9:F3} GHz ({(Tsc.IsHardware ? "RDTSC" : "Stopwatch ticks")})";
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public bool IsAvailable(Summary summary) => true;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase)
    {
        var stats = summary[benchmarkCase]?.ResultStatistics;
        if (stats is null) return "NA";
        return (stats.Median * Tsc.Hz / 1e9).ToString("N1", System.Globalization.CultureInfo.InvariantCulture);
    }

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) => GetValue(summary, benchmarkCase);
    public override string ToString() => ColumnName;
}

using Copra.Kernel.Exit;
using Copra.Kernel.Report;
using Xunit;
using Copra.Hot.Exit;

namespace Copra.Tests.Reporting;

/// <summary>The report's "all" row is the union of the kinds' histograms (one pass over the samples), so it must equal a
/// distribution taken over every sample at once.</summary>
public class ReportUnionTests
{
    [Fact]
    public void The_all_row_equals_one_distribution_over_every_sample()
    {
        var st = new ExitStats(4096, 1);
        var rng = new Random(13);
        var measured = new List<long>();
        var modelled = new List<long>();
        // Three kinds in different ranges (the union must interleave their buckets), one past the exact-bucket range.
        foreach (var (kind, lo, hi, n) in new[] { (ExitKind.MmioRead, 300, 900, 700), (ExitKind.PortOut, 50, 400, 300), (ExitKind.Forwarded, 2_000, 90_000, 120) })
            for (int i = 0; i < n; i++)
            {
                long m = rng.Next(lo, hi), d = rng.Next(lo * 10, hi * 10);
                st.Record(0, kind, m, d, 0);
                measured.Add(m);
                modelled.Add(d);
            }
        var (kinds, all) = ExitReport.Full(st);
        Assert.Equal(3, kinds.Count);
        var wantM = Distribution.Of(measured.ToArray(), ExitReport.ToReportUnits);
        var wantD = Distribution.Of(modelled.ToArray());
        foreach (var (got, want) in new[] { (all.Measured, wantM), (all.Modelled, wantD) })
        {
            Assert.Equal(want with { Mean = 0 }, got with { Mean = 0 });
            Assert.Equal(want.Mean, got.Mean, 6);
        }
        Assert.Equal(1120, all.Measured.Count);
        Assert.Equal(ExitReport.All(st), all);
    }
}

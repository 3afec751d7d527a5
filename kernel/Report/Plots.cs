using ScottPlot;

namespace Copra.Kernel.Report;

/// <summary>
/// Figures for papers: ScottPlot on SkiaSharp. SVG when the file name ends in .svg, PNG otherwise. Plotting needs
/// SkiaSharp's native library (libSkiaSharp beside the executable); <see cref="Unavailable"/> says so before any run.
/// </summary>
public static class Plots
{
    public const int Width = 1200, Height = 720;

    /// <summary>Why plotting cannot work here (the native library is missing), or null when it can.</summary>
    public static string? Unavailable()
    {
        try
        {
            using var s = SkiaSharp.SKSurface.Create(new SkiaSharp.SKImageInfo(4, 4));
            return s is null ? "SkiaSharp could not create a surface" : null;
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or EntryPointNotFoundException or BadImageFormatException)
        {
            return $"plotting needs SkiaSharp's native library (libSkiaSharp), which was not found beside copra ({e.GetType().Name})";
        }
    }

    public static void Save(Plot plt, string path, int width = Width, int height = Height)
    {
        if (path.EndsWith(".svg", StringComparison.OrdinalIgnoreCase)) plt.SaveSvg(path, width, height);
        else plt.SavePng(path, width, height);
    }

    /// <summary>Paper style: white background, dark axes, readable fonts.</summary>
    public static void Style(Plot plt)
    {
        plt.FigureBackground.Color = Colors.White;
        plt.DataBackground.Color = Colors.White;
        plt.Axes.Title.Label.FontSize = 18;
        plt.Axes.Bottom.Label.FontSize = 17;
        plt.Axes.Left.Label.FontSize = 17;
        plt.Axes.Bottom.TickLabelStyle.FontSize = 14;
        plt.Axes.Left.TickLabelStyle.FontSize = 14;
        plt.Grid.MajorLineColor = Colors.Black.WithAlpha(0.12);
        plt.Legend.FontSize = 15;
    }

    static readonly Color MeasuredColor = new(0x1f, 0x77, 0xb4), ModelledColor = new(0xd6, 0x27, 0x28);

    /// <summary>
    /// Per exit kind, two horizontal box plots on a log10 cycle axis: measured kernel cycles (blue, above) and modelled
    /// platform cycles (red, below). Box = p25..p75, white tick = median, whiskers = min..p99, dot = max.
    /// </summary>
    public static void ExitDistributions(string path, IReadOnlyList<KindReport> kinds, string subtitle)
    {
        var plt = new Plot();
        Style(plt);
        var yticks = new ScottPlot.TickGenerators.NumericManual();
        double lo = double.MaxValue, hi = 0;
        for (int i = 0; i < kinds.Count; i++)
        {
            var k = kinds[i];
            double y = kinds.Count - 1 - i;   // first kind at the top
            yticks.AddMajor(y, $"{k.Name}\nn = {k.Count:N0}");
            Box(plt, k.Measured, y + 0.17, MeasuredColor, i == 0 ? "measured: kernel software (TSC)" : null);
            Box(plt, k.Modelled, y - 0.17, ModelledColor, i == 0 ? "modelled: platform (cost model)" : null);
            foreach (var d in new[] { k.Measured, k.Modelled })
                if (d.Count > 0) { lo = Math.Min(lo, Math.Max(1, d.Min)); hi = Math.Max(hi, Math.Max(1, d.Max)); }
        }
        if (hi == 0) { lo = 1; hi = 10; }
        int e0 = (int)Math.Floor(Math.Log10(lo)), e1 = (int)Math.Ceiling(Math.Log10(hi));
        if (e1 == e0) e1++;
        var xticks = new ScottPlot.TickGenerators.NumericManual();
        for (int e = e0; e <= e1; e++)
        {
            xticks.AddMajor(e, Math.Pow(10, e).ToString("N0"));
            if (e < e1) for (int m = 2; m <= 9; m++) xticks.AddMinor(e + Math.Log10(m));
        }
        plt.Axes.Bottom.TickGenerator = xticks;
        plt.Axes.Left.TickGenerator = yticks;
        plt.Axes.SetLimits(e0 - 0.05, e1 + 0.15, -0.6, kinds.Count - 0.4);   // room for the last tick label
        plt.Title($"Cycles per exit by kind: measured vs modelled\n{subtitle}");
        plt.XLabel("cycles per exit (log scale)   box: p25-p75, bar: median, whiskers: min-p99, dot: max");
        plt.ShowLegend(Alignment.LowerRight);
        Save(plt, path, Width, Math.Max(420, 110 + 78 * kinds.Count));
    }

    static double L(long v) => Math.Log10(Math.Max(1, v));

    static void Box(Plot plt, Distribution d, double y, Color color, string? legend)
    {
        if (d.Count == 0) return;
        var whisker = plt.Add.Scatter(new[] { L(d.Min), L(d.P99) }, new[] { y, y });
        whisker.Color = color; whisker.LineWidth = 2; whisker.MarkerSize = 0;
        var box = plt.Add.Scatter(new[] { L(d.P25), L(d.P75) }, new[] { y, y });
        box.Color = color; box.LineWidth = 16; box.MarkerSize = 0;
        if (legend is not null) box.LegendText = legend;
        // A box of zero width (every sample in one bucket, typical of the cost model) still shows, as a square.
        plt.Add.Marker(L(d.P50), y, MarkerShape.FilledSquare, 12, color);
        var median = plt.Add.Scatter(new[] { L(d.P50), L(d.P50) }, new[] { y - 0.11, y + 0.11 });
        median.Color = Colors.Black; median.LineWidth = 2.5f; median.MarkerSize = 0;
        plt.Add.Marker(L(d.Max), y, MarkerShape.FilledCircle, 6, color);
    }
}

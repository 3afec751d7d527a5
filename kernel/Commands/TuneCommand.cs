using System.CommandLine;
using System.Text.Json;
using Copra.Kernel.Run;
using Copra.User.Programs;
using Spectre.Console;

namespace Copra.Kernel;

/// <summary>One point of a sweep: counts measured by running the kernel, cycles from the cost model.</summary>
public sealed record TunePoint(int Batch, long TdcallCycles, int Fields, long Exits,
    double TdcallsPerExit, double TdReadsPerExit, double TdWritesPerExit, double TransitionsPerExit,
    long ExitCycles, long SyscallCycles)
{
    /// <summary>cycles_per_exit = exit + tdcalls_per_exit x tdcall + transitions_per_exit x syscall.</summary>
    public double CyclesPerExit => ExitCycles + TdcallsPerExit * TdcallCycles + TransitionsPerExit * SyscallCycles;
}

/// <summary>
/// <c>copra tune</c>: sweeps BATCH size, TDCALL cost and the number of state fields the VMM touches per
/// exit. Each (batch, fields) point boots a TDX system whose guest makes CPUID exits the VMM must answer; on each one the
/// VMM reads <c>fields</c> state fields (one GET_STATE each) and writes every fourth back (one SET_STATE
/// each), submitting those calls <c>batch</c> at a time. TDCALLs (TDG.VP.RD/WR, from the state store's
/// accounting) and user/kernel transitions (the gate's counter) are counted between the first and the
/// last exit and divided by the exits in between; cycles come from the cost model:
/// <code>cycles_per_exit = exit + tdcalls_per_exit * tdcall + transitions_per_exit * syscall</code>
/// with exit = 2 x tdcall by default (an L2 exit to the paravisor and its TDG.VP.ENTER back are two
/// TDCALL-class transitions, DESIGN.md) unless <c>--exit</c> fixes it.
/// </summary>
public static class TuneCommand
{
    public static Command Build(Cli.Io io)
    {
        var cmd = new Command("tune", "Sweep BATCH size, TDCALL cost and state fields per exit on TDX: counts measured by running the kernel, cycles modelled (docs/tuning.md).");
        var batch = Cli.List("--batch", "BATCH sizes (calls per kernel entry)", 1, Core.Kernel.MaxBatch, "1,2,4,8,16,32,64");
        var tdcall = Cli.List("--tdcall", "TDCALL costs in cycles", 0, 1_000_000, "400,800,1500,3000");
        var fields = Cli.List("--fields", "State fields the VMM touches per exit", 1, StateWork.Fields.Length, $"1..{StateWork.Fields.Length}");
        var exits = Cli.Int("--exits", "Exits per kernel run (one run per batch and fields)", 2, 1_000_000, 200);
        var syscall = Cli.Int("--syscall", "Cycles of one user/kernel transition", 0, 1_000_000, Machine.CostModel.Tdx.SyscallCycles);
        var exit = Cli.Int("--exit", "Cycles of one exit and re-entry (default: 2 x the TDCALL cost)", 0, 1_000_000_000);
        var json = Cli.Output("--json", "Write the sweep as JSON (docs/json.md) to FILE, or stdout with '-'");
        var plot = Cli.Output("--plot", "Plot cycles per exit against BATCH size, one curve per TDCALL cost, best batch marked: SVG if FILE ends in .svg, PNG otherwise", allowStdout: false);
        var plotFields = Cli.Int("--plot-fields", "Which --fields value the plot shows (default: the largest)", 1, StateWork.Fields.Length);
        var quiet = Cli.Flag("--quiet", "Print no tables and no progress");
        foreach (var o in new Option[] { batch, tdcall, fields, exits, syscall, exit, json, plot, plotFields, quiet }) cmd.Options.Add(o);
        cmd.SetAction(pr => Execute(io,
            Cli.ParseList("batch", pr.GetValue(batch)!, 1, Core.Kernel.MaxBatch), Cli.ParseList("tdcall", pr.GetValue(tdcall)!, 0, 1_000_000),
            Cli.ParseList("fields", pr.GetValue(fields)!, 1, StateWork.Fields.Length), pr.GetValue(exits), pr.GetValue(syscall), Cli.Given(pr, exit),
            pr.GetValue(json), pr.GetValue(plot), Cli.Given(pr, plotFields), pr.GetValue(quiet)));
        return cmd;
    }

    public static int Execute(Cli.Io io, long[] batches, long[] tdcalls, long[] fields, long exits, long syscall, long? exitFixed,
        string? json, string? plot, long? plotFieldsGiven, bool quiet)
    {
        long plotFields = plotFieldsGiven ?? fields.Max();
        if (!fields.Contains(plotFields)) throw new CliException($"--plot-fields: {plotFields} is not one of --fields");
        if (plot is not null && Report.Plots.Unavailable() is { } noPlot) throw new CliException($"--plot: {noPlot}");
        Report.Human.Init();
        bool human = !quiet && json != "-";

        // One run of the kernel per (batch, fields): the TDCALLs and transitions it counts do not depend on what
        // a TDCALL costs (the model prices them; a test pins this), so each TDCALL cost prices the same counts.
        var grid = (from f in fields from b in batches select (b: (int)b, f: (int)f)).ToArray();
        var measured = new TunePoint[grid.Length];
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        int done = 0;
        Report.Human.WithProgress(!quiet, io.Err, "copra tune", $"{grid.Length} kernel runs", grid.Length, tick =>
        {
            Parallel.For(0, grid.Length, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
            {
                var (b, f) = grid[i];
                try { measured[i] = Measure(b, tdcalls[0], f, exits, syscall, exitFixed ?? 2 * tdcalls[0]); }
                catch (Exception e) { failures.Add($"batch {b}, fields {f}: {e.Message}"); }
                int now = Interlocked.Increment(ref done);
                lock (grid) tick(now);
            });
            return 0;
        });
        if (!failures.IsEmpty)
        {
            foreach (var f in failures) io.Err.WriteLine($"copra tune: {f}");
            return ExitCodes.NotClean;
        }

        var points = (from m in measured from c in tdcalls
                      select m with { TdcallCycles = c, ExitCycles = exitFixed ?? 2 * c }).ToArray();
        if (human) Print(points, tdcalls, fields, syscall, exitFixed);
        if (json is not null) Cli.WriteOutput(io, json, Json(points, exits, syscall, exitFixed));
        if (plot is not null)
        {
            try { Plot(plot, points, (int)plotFields); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new OutputException($"could not write '{plot}': {e.Message}"); }
        }
        return ExitCodes.Ok;
    }

    /// <summary>Runs one point through the real kernel and returns its counts.</summary>
    public static TunePoint Measure(int batch, long tdcall, int fields, long exits, long syscall, long exitCycles)
    {
        var sc = Scenario.Default() with
        {
            Platform = "tdx", Cpus = 1, Seed = 1,
            Vms = [new VmScenario(Vcpus: 1, MemoryMb: 4)],
            Workload = new Backends.WorkloadSpec { Greeting = "", DeviceDriver = false, Unregistered = false, Mix = ["cpuid"], Iterations = exits },
            Costs = new Dictionary<string, long> { ["tdcall"] = tdcall, ["exit"] = exitCycles, ["syscall"] = syscall },
            VmmStateFields = fields, VmmBatch = batch,
        };
        using var sys = new CopraSystem(sc, sampleCapacity: 1024);
        var k = sys.Kernel;
        (long Taken, long Transitions, long Reads, long Writes) first = default, last = default;
        k.OnExitTaken = _ =>
        {
            var now = (k.Stats.Taken + 1, k.Gate.Transitions, k.State.TotalTdReads, k.State.TotalTdWrites);
            if (first.Taken == 0) first = now;
            last = now;
        };
        var r = sys.Run();
        if (!r.Quiescent || k.InternalErrors != 0 || sys.Replay is { Desyncs: > 0 })
            throw new InvalidOperationException($"run did not finish cleanly (quiescent {r.Quiescent}, internal errors {k.InternalErrors}, desyncs {sys.Replay?.Desyncs})");
        if (k.Processes.FirstOrDefault(p => p.Path == Paths.Vmm) is { ExitCode: not 0 } vmm)
            throw new InvalidOperationException($"the VMM failed: {vmm.ExitReason}");
        double n = last.Taken - first.Taken;
        if (n < 1) throw new InvalidOperationException("fewer than two exits");
        double rd = (last.Reads - first.Reads) / n, wr = (last.Writes - first.Writes) / n;
        return new TunePoint(batch, tdcall, fields, (long)n, rd + wr, rd, wr, (last.Transitions - first.Transitions) / n, exitCycles, syscall);
    }

    /// <summary>"1,2,4" or "1..16" or a mix ("1..4,8,16"), any values.</summary>
    public static long[] ParseList(string name, string text) => Cli.ParseList(name, text, long.MinValue, long.MaxValue);

    /// <summary>The smallest batch within 1% of the lowest cycles per exit for (tdcall, fields).</summary>
    public static TunePoint Best(IEnumerable<TunePoint> curve)
    {
        var pts = curve.OrderBy(p => p.Batch).ToList();
        double min = pts.Min(p => p.CyclesPerExit);
        return pts.First(p => p.CyclesPerExit <= min * 1.01);
    }

    static void Print(TunePoint[] points, long[] tdcalls, long[] fields, long syscall, long? exitFixed)
    {
        AnsiConsole.MarkupLine($"[bold]copra tune[/]: TDX, counts measured by running the kernel ({points[0].Exits:N0} exits per point), cycles modelled:");
        AnsiConsole.MarkupLine($"  cycles_per_exit = exit + tdcalls_per_exit x tdcall + transitions_per_exit x syscall;  exit = {(exitFixed is { } e ? e.ToString("N0") : "2 x tdcall")}, syscall = {syscall:N0}");

        AnsiConsole.MarkupLine("[bold]best batch size per TDCALL cost[/] (smallest within 1% of the minimum), as batch / cycles per exit:");
        var best = new Table();
        best.AddColumn("fields");
        foreach (var c in tdcalls) best.AddColumn(new TableColumn($"tdcall {c:N0}").RightAligned());
        foreach (var f in fields)
        {
            var row = new List<string> { f.ToString() };
            foreach (var c in tdcalls)
            {
                var b = Best(points.Where(p => p.TdcallCycles == c && p.Fields == f));
                row.Add($"{b.Batch} / {b.CyclesPerExit:N0}");
            }
            best.AddRow(row.ToArray());
        }
        AnsiConsole.Write(best);

        AnsiConsole.MarkupLine("[bold]cycles per exit at each point[/] (the counts per exit do not depend on the TDCALL cost):");
        var all = new Table();
        all.AddColumns("fields", "batch", "TDCALLs/exit (rd+wr)", "transitions/exit");
        foreach (var c in tdcalls) all.AddColumn(new TableColumn($"tdcall {c:N0}").RightAligned());
        foreach (var g in points.GroupBy(p => (p.Fields, p.Batch)).OrderBy(g => g.Key.Fields).ThenBy(g => g.Key.Batch))
        {
            var p0 = g.First();
            var row = new List<string> { g.Key.Fields.ToString(), g.Key.Batch.ToString(), $"{p0.TdcallsPerExit:0.##} ({p0.TdReadsPerExit:0.##}+{p0.TdWritesPerExit:0.##})", p0.TransitionsPerExit.ToString("0.##") };
            foreach (var c in tdcalls) row.Add(g.First(p => p.TdcallCycles == c).CyclesPerExit.ToString("N0"));
            all.AddRow(row.ToArray());
        }
        AnsiConsole.Write(all);
    }

    /// <summary>The sweep as JSON (docs/json.md, "copra tune"): constants once under parameters, one record per point, the best batch per curve.</summary>
    public static string Json(IReadOnlyList<TunePoint> points, long exits, long syscall, long? exitFixed) => Report.JsonOut.Document("tune", w =>
    {
        w.WriteStartObject("parameters");
        w.WriteString("platform", "tdx");
        w.WriteNumber("exits_per_point_count", exits);
        w.WriteNumber("syscall_cycles", syscall);
        if (exitFixed is { } e) w.WriteNumber("exit_cycles", e); else w.WriteNull("exit_cycles");
        w.WriteString("exit_cycles_rule", exitFixed is null ? "2 x tdcall_cycles" : "fixed by --exit");
        w.WriteString("formula", "modelled_cycles_per_exit = exit_cycles + tdcalls_per_exit_count x tdcall_cycles + transitions_per_exit_count x syscall_cycles");
        w.WriteString("counts_are", "measured by running the kernel: means per exit between the first and the last exit");
        w.WriteString("cycles_are", "modelled from the counts");
        w.WriteEndObject();
        w.WriteStartArray("points");
        foreach (var p in points)
        {
            w.WriteStartObject();
            w.WriteNumber("batch_size_count", p.Batch);
            w.WriteNumber("tdcall_cycles", p.TdcallCycles);
            w.WriteNumber("state_fields_count", p.Fields);
            w.WriteNumber("exit_cycles", p.ExitCycles);
            w.WriteNumber("measured_exits_count", p.Exits);
            w.WriteNumber("tdcalls_per_exit_count", Math.Round(p.TdcallsPerExit, 4));
            w.WriteNumber("tdreads_per_exit_count", Math.Round(p.TdReadsPerExit, 4));
            w.WriteNumber("tdwrites_per_exit_count", Math.Round(p.TdWritesPerExit, 4));
            w.WriteNumber("transitions_per_exit_count", Math.Round(p.TransitionsPerExit, 4));
            w.WriteNumber("modelled_cycles_per_exit", Math.Round(p.CyclesPerExit, 2));
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("best");
        foreach (var g in points.GroupBy(p => (p.TdcallCycles, p.Fields)).OrderBy(g => g.Key.Fields).ThenBy(g => g.Key.TdcallCycles))
        {
            var b = Best(g);
            w.WriteStartObject();
            w.WriteNumber("tdcall_cycles", g.Key.TdcallCycles);
            w.WriteNumber("state_fields_count", g.Key.Fields);
            w.WriteNumber("best_batch_size_count", b.Batch);
            w.WriteNumber("modelled_cycles_per_exit", Math.Round(b.CyclesPerExit, 2));
            w.WriteEndObject();
        }
        w.WriteEndArray();
    });

    static readonly ScottPlot.MarkerShape[] Shapes =
        [ScottPlot.MarkerShape.FilledCircle, ScottPlot.MarkerShape.FilledSquare, ScottPlot.MarkerShape.FilledTriangleUp, ScottPlot.MarkerShape.FilledDiamond,
         ScottPlot.MarkerShape.OpenCircle, ScottPlot.MarkerShape.OpenSquare, ScottPlot.MarkerShape.OpenDiamond];

    /// <summary>Cycles per exit against batch size (log2 axis), one curve (own marker) per TDCALL cost at <paramref name="fields"/> fields; the best batch of each curve circled.</summary>
    public static void Plot(string path, IEnumerable<TunePoint> points, int fields)
    {
        var plt = new ScottPlot.Plot();
        Report.Plots.Style(plt);
        var sel = points.Where(p => p.Fields == fields).ToList();
        var batches = sel.Select(p => p.Batch).Distinct().Order().ToArray();
        int i = 0;
        foreach (var g in sel.GroupBy(p => p.TdcallCycles).OrderByDescending(g => g.Key))
        {
            var curve = g.OrderBy(p => p.Batch).ToArray();
            var s = plt.Add.Scatter(curve.Select(p => Math.Log2(p.Batch)).ToArray(), curve.Select(p => p.CyclesPerExit).ToArray());
            s.LegendText = $"TDCALL = {g.Key:N0} cycles";
            s.LineWidth = 2;
            s.MarkerSize = 10;
            s.MarkerShape = Shapes[i++ % Shapes.Length];
            var best = Best(curve);
            var ring = plt.Add.Marker(Math.Log2(best.Batch), best.CyclesPerExit, ScottPlot.MarkerShape.OpenCircle, 26, s.Color);
            ring.MarkerLineWidth = 2.5f;
            var label = plt.Add.Text($"best: {best.Batch}", Math.Log2(best.Batch), best.CyclesPerExit);
            label.LabelFontSize = 13;
            label.LabelFontColor = s.Color;
            label.LabelAlignment = ScottPlot.Alignment.LowerLeft;
            label.OffsetX = 10;
            label.OffsetY = -10;
        }
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        foreach (var b in batches) ticks.AddMajor(Math.Log2(b), b.ToString());
        plt.Axes.Bottom.TickGenerator = ticks;
        plt.Title($"copra tune (TDX): modelled cycles per exit vs BATCH size\n{fields} state field{(fields == 1 ? "" : "s")} per exit; circled: best batch (smallest within 1% of the minimum)");
        plt.XLabel("BATCH size (calls per kernel entry, log scale)");
        plt.YLabel("modelled cycles per exit");
        double lo = Math.Log2(batches.Min()), hi = Math.Log2(batches.Max());
        plt.Axes.SetLimits(lo - 0.3, hi + 0.3, 0, sel.Max(p => p.CyclesPerExit) * 1.3);   // head room for the legend
        plt.ShowLegend(ScottPlot.Alignment.UpperRight);
        Report.Plots.Save(plt, path, 1100, 680);
    }
}

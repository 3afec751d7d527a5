using System.Text;
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
    public static readonly string[] Options = ["batch", "tdcall", "fields", "exits", "syscall", "exit", "json", "plot", "plot-fields", "quiet"];

    public static int Run(string[] args)
    {
        var a = new CliArgs(args, "quiet");
        a.RejectUnknown(Options);
        var batches = ParseList("batch", a.Get("batch", "1,2,4,8,16,32,64"));
        var tdcalls = ParseList("tdcall", a.Get("tdcall", "400,800,1500,3000"));
        var fields = ParseList("fields", a.Get("fields", "1..16"));
        long exits = a.GetLong("exits", 200);
        long syscall = a.GetLong("syscall", Machine.CostModel.Tdx.SyscallCycles);
        long? exitFixed = a.Has("exit") ? a.GetLong("exit", 0) : null;
        if (batches.Any(b => b < 1 || b > Core.Kernel.MaxBatch)) throw new CliException($"--batch sizes must be 1..{Core.Kernel.MaxBatch}");
        if (tdcalls.Any(c => c < 0)) throw new CliException("--tdcall costs must not be negative");
        if (fields.Any(f => f < 1 || f > StateWork.Fields.Length)) throw new CliException($"--fields must be 1..{StateWork.Fields.Length}");
        if (exits < 2 || exits > 1_000_000) throw new CliException("--exits must be 2..1000000");
        if (syscall < 0 || exitFixed < 0) throw new CliException("costs must not be negative");
        long plotFields = a.GetLong("plot-fields", fields.Max());
        if (!fields.Contains(plotFields)) throw new CliException("--plot-fields must be one of --fields");
        bool quiet = a.Has("quiet");

        // One run of the kernel per (batch, fields): the TDCALLs and transitions it counts do not depend on what
        // a TDCALL costs (the model prices them; a test pins this), so each TDCALL cost prices the same counts.
        var grid = (from f in fields from b in batches select (b: (int)b, f: (int)f)).ToArray();
        var measured = new TunePoint[grid.Length];
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        int done = 0;
        void RunAll(Action? tick) =>
            Parallel.For(0, grid.Length, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
            {
                var (b, f) = grid[i];
                try { measured[i] = Measure(b, tdcalls[0], f, exits, syscall, exitFixed ?? 2 * tdcalls[0]); }
                catch (Exception e) { failures.Add($"batch {b}, fields {f}: {e.Message}"); }
                Interlocked.Increment(ref done);
                tick?.Invoke();
            });
        if (quiet || Console.IsOutputRedirected) RunAll(null);
        else
            AnsiConsole.Progress().AutoClear(true).Start(ctx =>
            {
                var task = ctx.AddTask($"{grid.Length} kernel runs", maxValue: grid.Length);
                RunAll(() => task.Value = Volatile.Read(ref done));
            });
        if (!failures.IsEmpty)
        {
            foreach (var f in failures) Console.Error.WriteLine($"copra tune: {f}");
            return 1;
        }

        var points = (from m in measured from c in tdcalls
                      select m with { TdcallCycles = c, ExitCycles = exitFixed ?? 2 * c }).ToArray();
        if (!quiet) Print(points, tdcalls, fields, syscall, exitFixed);
        if (a.Get("json") is { } json) File.WriteAllText(json, Json(points));
        if (a.Get("plot") is { } plot) Plot(plot, points, (int)plotFields);
        return 0;
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

    /// <summary>"1,2,4" or "1..16" or a mix ("1..4,8,16").</summary>
    public static long[] ParseList(string name, string text)
    {
        var list = new List<long>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int dots = part.IndexOf("..", StringComparison.Ordinal);
            if (dots < 0) { list.Add(CliArgs.ParseNumber(name, part)); continue; }
            long lo = CliArgs.ParseNumber(name, part[..dots]), hi = CliArgs.ParseNumber(name, part[(dots + 2)..]);
            if (hi < lo || hi - lo > 10_000) throw new CliException($"--{name}: bad range '{part}'");
            for (long x = lo; x <= hi; x++) list.Add(x);
        }
        if (list.Count == 0) throw new CliException($"--{name} is empty");
        return list.Distinct().Order().ToArray();
    }

    /// <summary>The smallest batch within 1% of the lowest cycles per exit for (tdcall, fields).</summary>
    public static TunePoint Best(IEnumerable<TunePoint> curve)
    {
        var pts = curve.OrderBy(p => p.Batch).ToList();
        double min = pts.Min(p => p.CyclesPerExit);
        return pts.First(p => p.CyclesPerExit <= min * 1.01);
    }

    static void Print(TunePoint[] points, long[] tdcalls, long[] fields, long syscall, long? exitFixed)
    {
        if (Console.IsOutputRedirected) AnsiConsole.Console.Profile.Width = Math.Max(AnsiConsole.Console.Profile.Width, 132);
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

    public static string Json(IEnumerable<TunePoint> points)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartArray();
            foreach (var p in points)
            {
                w.WriteStartObject();
                w.WriteNumber("batch", p.Batch);
                w.WriteNumber("tdcall_cycles", p.TdcallCycles);
                w.WriteNumber("fields", p.Fields);
                w.WriteNumber("cycles_per_exit", Math.Round(p.CyclesPerExit, 2));
                w.WriteNumber("tdcalls_per_exit", Math.Round(p.TdcallsPerExit, 4));
                w.WriteNumber("transitions_per_exit", Math.Round(p.TransitionsPerExit, 4));
                w.WriteNumber("tdreads_per_exit", Math.Round(p.TdReadsPerExit, 4));
                w.WriteNumber("tdwrites_per_exit", Math.Round(p.TdWritesPerExit, 4));
                w.WriteNumber("exit_cycles", p.ExitCycles);
                w.WriteNumber("syscall_cycles", p.SyscallCycles);
                w.WriteNumber("exits", p.Exits);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>Cycles per exit against batch size (log2 axis), one curve per TDCALL cost, at <paramref name="fields"/> fields.</summary>
    public static void Plot(string path, IEnumerable<TunePoint> points, int fields)
    {
        var plt = new ScottPlot.Plot();
        var sel = points.Where(p => p.Fields == fields).ToList();
        var batches = sel.Select(p => p.Batch).Distinct().Order().ToArray();
        foreach (var g in sel.GroupBy(p => p.TdcallCycles).OrderByDescending(g => g.Key))
        {
            var curve = g.OrderBy(p => p.Batch).ToArray();
            var s = plt.Add.Scatter(curve.Select(p => Math.Log2(p.Batch)).ToArray(), curve.Select(p => p.CyclesPerExit).ToArray());
            s.LegendText = $"TDCALL = {g.Key:N0} cycles";
            s.LineWidth = 2;
            s.MarkerSize = 8;
        }
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        foreach (var b in batches) ticks.AddMajor(Math.Log2(b), b.ToString());
        plt.Axes.Bottom.TickGenerator = ticks;
        plt.Title($"copra tune (TDX): cycles per exit vs BATCH size, VMM touching {fields} state field{(fields == 1 ? "" : "s")} per exit");
        plt.XLabel("BATCH size (calls per kernel entry, log scale)");
        plt.YLabel("modelled cycles per exit");
        plt.Axes.SetLimitsY(0, sel.Max(p => p.CyclesPerExit) * 1.3);   // head room for the legend
        plt.ShowLegend(ScottPlot.Alignment.UpperRight);
        plt.SavePng(path, 1000, 620);
    }
}

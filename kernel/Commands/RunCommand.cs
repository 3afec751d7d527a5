using System.CommandLine;
using System.Text.Json;
using Copra.Hot.Timing;
using Copra.Kernel.Core;
using Copra.Kernel.Exit;
using Copra.Kernel.Run;
using Spectre.Console;

namespace Copra.Kernel;

/// <summary>
/// <c>copra run</c>: boots the scenario, shows progress, then prints the process tree at boot, a
/// table per exit kind (count, measured kernel cycles, modelled platform cycles) and the guest's
/// console. Measured = the kernel's own code timed with the TSC; modelled = the platform's costs
/// from the cost model. The two are never added together in one column.
/// </summary>
public static class RunCommand
{
    /// <summary>The most exits one run may ask for with --exits (about 10 s of the deterministic driver per million here; progress shows on stderr).</summary>
    public const long MaxExits = 10_000_000;

    public static Command Build(Cli.Io io)
    {
        var cmd = new Command("run", "Boot the kernel and run a scenario end to end: process tree, exit distributions per kind (measured and modelled), guest console.");
        var scenario = Cli.Input("--scenario", "Scenario JSON file (format: docs/scenario.md). Default: the built-in scenario");
        var platform = Cli.Choice("--platform", "Platform cost model; overrides the scenario's (default snp)", null, "snp", "tdx", "native");
        var cpus = Cli.Int("--cpus", "Simulated CPUs; overrides the scenario's (default 2)", 1, 64);
        var exits = Cli.Int("--exits", $"About this many exits: sets the workload's iterations per vCPU (default: the scenario's, 200 iterations)", 1, MaxExits);
        var seed = Cli.U64("--seed", "Seed of the deterministic driver and the random pattern; overrides the scenario's (default 1)");
        var driver = Cli.Choice("--driver", "deterministic (one host thread, reproducible trace hash) or parallel (one host thread per CPU)", null, "deterministic", "parallel");
        var unhandled = Cli.Choice("--unhandled", "What happens to an access no device model owns: forward to the VMM or reinject #GP", null, "forward", "reinject");
        var backend = Cli.Choice("--backend", "Guest backend: replay (modelled guests) or kvm (real guests, needs /dev/kvm)", null, "replay", "kvm");
        var tdcall = Cli.Int("--tdcall", "TDCALL cost in cycles (cost-model override; default: the platform's)", 0, 1_000_000);
        var faults = new Option<string>("--faults") { Description = "Faults to inject: all, or a comma list of device-crash[=N], device-silence[=N], host-fail[=rate], hostile-pt, undecodable, rogue[=calls]", HelpName = "SPEC" };
        faults.Validators.Add(r =>
        {
            if (r.Tokens.Count == 0) return;
            try { FaultSpec.Parse(r.Tokens[0].Value); } catch (CliException e) { r.AddError($"--faults: {e.Message}"); }
        });
        var json = Cli.Output("--json", "Write the run as JSON (docs/json.md) to FILE, or to stdout with '-' (the human report is then not printed)");
        var trace = Cli.Output("--trace", "Write a Chrome trace-event file (open it in Perfetto)", allowStdout: false);
        var plot = Cli.Output("--plot", "Draw per-kind cycle distributions, measured beside modelled: SVG if FILE ends in .svg, PNG otherwise", allowStdout: false);
        var quiet = Cli.Flag("--quiet", "Print no human report and no progress");
        var timeEvery = Cli.Int("--time-every", "Exits timed with the TSC: one in N per CPU, a power of two (1: every exit); overrides the scenario's (default 16)", 1, Hot.Exit.ExitStats.MaxTimeEvery);
        timeEvery.Validators.Add(r =>
        {
            if (r.Tokens.Count == 1 && long.TryParse(r.Tokens[0].Value, out long n) && n is >= 1 and <= Hot.Exit.ExitStats.MaxTimeEvery && !Hot.Exit.ExitStats.IsValidTimeEvery((int)n))
                r.AddError($"--time-every: {n} is not a power of two (1, 2, 4, ... {Hot.Exit.ExitStats.MaxTimeEvery})");
        });
        foreach (var o in new Option[] { scenario, platform, cpus, exits, seed, driver, unhandled, backend, tdcall, faults, json, trace, plot, quiet, timeEvery }) cmd.Options.Add(o);
        cmd.SetAction(pr =>
        {
            var sc = Scenario.Load(pr.GetValue(scenario));
            if (pr.GetValue(platform) is { } p) sc = sc with { Platform = p };
            if (Cli.Given(pr, cpus) is long c) sc = sc with { Cpus = (int)c };
            if (Cli.Given(pr, seed) is ulong s) sc = sc with { Seed = s };
            if (pr.GetValue(driver) is { } d) sc = sc with { Driver = d };
            if (pr.GetValue(unhandled) is { } u) sc = sc with { Unhandled = u };
            if (pr.GetValue(backend) is { } b) sc = sc with { Backend = b };
            if (Cli.Given(pr, tdcall) is long t) sc = sc with { Costs = new Dictionary<string, long>(sc.Costs) { ["tdcall"] = t } };
            if (Cli.Given(pr, exits) is long target) sc = WithExits(sc, target);
            if (Cli.Given(pr, timeEvery) is long te) sc = sc with { TimeEvery = (int)te };
            sc.Validate();
            return Execute(io, sc, new Outputs(pr.GetValue(json), pr.GetValue(trace), pr.GetValue(plot)),
                pr.GetValue(faults) is { } fs ? FaultSpec.Parse(fs) : new FaultSpec(), pr.GetValue(quiet));
        });
        return cmd;
    }

    /// <summary>Iterations per vCPU for about <paramref name="target"/> exits.</summary>
    public static Scenario WithExits(Scenario sc, long target)
    {
        int vcpus = sc.Vms.Sum(v => v.Vcpus);
        long perIter = Math.Max(1, sc.Workload.Mix.Count) * vcpus;
        return sc with { Workload = sc.Workload with { Iterations = Math.Max(1, target / perIter) } };
    }

    public sealed record Outputs(string? Json, string? Trace, string? Plot);

    public static int Execute(Cli.Io io, Scenario sc, Outputs outs, FaultSpec faults, bool quiet, CancellationToken stop = default)
    {
        if (outs.Plot is not null && Report.Plots.Unavailable() is { } noPlot) throw new CliException($"--plot: {noPlot}");
        if (sc.Backend == "kvm" && !Kvm.KvmSystem.IsAvailable(out string why))
        {
            io.Err.WriteLine($"copra run: the kvm backend needs /dev/kvm: {why}");
            return ExitCodes.NoKvm;
        }
        bool human = !quiet && outs.Json != "-";
        Report.Human.Init();
        using var sys = new CopraSystem(sc, keepTrace: outs.Trace is not null, backend: sc.Backend == "kvm" ? KvmFactory(sc) : null, faults: faults);
        var k = sys.Kernel;
        Prejit.ExitPath();
        if (human)
            AnsiConsole.MarkupLine($"[bold]copra[/]: platform [green]{sc.Platform}[/], {sc.Cpus} CPU(s), {sc.Vms.Count} VM(s), backend {k.Backend!.Name}, driver {sc.Driver}, seed {sc.Seed}, unhandled {sc.Unhandled}");

        long expected = sc.Vms.Sum(v => v.Vcpus) * sc.Workload.Iterations * Math.Max(1, sc.Workload.Mix.Count) + 200;
        using var ctrlC = new Report.CtrlC();
        using var either = CancellationTokenSource.CreateLinkedTokenSource(ctrlC.Token, stop);
        var result = Report.Human.WithProgress(!quiet, io.Err, "copra run", "exits", expected,
            tick => sys.Run(progress: kk => tick(kk.Stats.Taken), stop: either.Token));
        bool interrupted = either.IsCancellationRequested;
        if (interrupted) io.Err.WriteLine($"copra run: interrupted after {k.Stats.Taken:N0} exits; writing what was asked for from the part that ran");

        var st = k.Stats;
        if (human) Print(sys, result);
        if (outs.Json is { } json) Cli.WriteOutput(io, json, Json(sys, result, interrupted));
        if (outs.Trace is { } trace) Write(trace, () => ChromeTrace.Write(trace, k));
        if (outs.Plot is { } plot)
            Write(plot, () => Report.Plots.ExitDistributions(plot, Report.ExitReport.ByKind(st),
                $"{sc.Platform}, {sc.Cpus} CPU(s), {st.Taken:N0} exits, backend {k.Backend!.Name}, seed {sc.Seed}"));
        if (interrupted) return ExitCodes.Interrupted;
        return Clean(sys, result) ? ExitCodes.Ok : ExitCodes.NotClean;
    }

    static void Write(string path, Action write)
    {
        try { write(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OutputException($"could not write '{path}': {e.Message}");
        }
    }

    public static bool Clean(CopraSystem sys, DriverResult result)
    {
        var k = sys.Kernel;
        var st = k.Stats;
        return result.Quiescent && st.InFlight == 0 && k.InternalErrors == 0 && (sys.Replay is null || sys.Replay.Desyncs == 0)
               && sys.FaultReport().All(f => f.Contained)
               && (sys.Kvm is null || (st.DecodeMismatch == 0 && sys.Kvm.ShutdownExits == 0));
    }

    /// <summary>The KVM backend for a scenario: real guests built from its workload, one KVM VM per scenario VM.</summary>
    public static Func<Core.Kernel, IReadOnlyList<Backends.VmLayout>, IGuestBackend> KvmFactory(Scenario sc) =>
        (k, layouts) => Backends.KvmBackend.Create(k, layouts, sc.Workload, sc.Vms.Select(v => (byte)v.IrqVector).ToList());

    static void Print(CopraSystem sys, DriverResult result)
    {
        var k = sys.Kernel;
        var st = k.Stats;
        if (sys.BootTree is { } tree)
        {
            var root = new Tree("[bold]process tree at the first exit[/]");
            var nodes = new Dictionary<int, TreeNode>();
            foreach (var p in tree)
            {
                var label = $"[yellow]{p.Pid}[/] {Markup.Escape(p.Path)}  [grey]{Markup.Escape(p.State)}[/]";
                var node = p.Parent is int par && nodes.TryGetValue(par, out var pn) ? pn.AddNode(label) : root.AddNode(label);
                foreach (var (h, o) in p.Handles)
                {
                    // A handle is generation << 16 | slot: show the slot, and the generation when a reused slot has one.
                    uint gen = h >> Cold.HandleTable.IndexBits;
                    string name = gen == 0 ? $"handle {h}" : $"handle {h & Cold.HandleTable.IndexMask} (gen {gen}, value {h})";
                    node.AddNode($"[grey]{name}:[/] {Markup.Escape(o)}");
                }
                nodes[p.Pid] = node;
            }
            AnsiConsole.Write(root);
        }
        AnsiConsole.MarkupLine($"[bold]per exit by kind[/]: measured = the kernel's own software ({Tsc.Unit}, {Tsc.Describe()}), modelled = platform cycles (cost model); never added together; measured over the timed exits ({(st.TimeEvery == 1 ? "every exit" : $"one in {st.TimeEvery}, at random: --time-every")}), modelled over every exit");
        var table = new Table();
        bool hw = st.HasHardware;
        table.AddColumn("kind");
        table.AddColumn(new TableColumn("count").RightAligned());
        table.AddColumn(new TableColumn("timed").RightAligned());
        foreach (var h in new[] { "measured p50", "p90", "p99", "max" }) table.AddColumn(new TableColumn(h).RightAligned());
        foreach (var h in new[] { "modelled p50", "p99" }) table.AddColumn(new TableColumn(h).RightAligned());
        if (hw) { table.AddColumn(new TableColumn("real KVM_RUN p50").RightAligned()); table.AddColumn(new TableColumn("kernel share").RightAligned()); }
        // A kind none of whose exits was timed (--time-every) has no measured figure: "-", not 0.
        static string Fig(Report.Distribution m, long x) => m.Count == 0 ? "-" : x.ToString("N0");
        void Row(Report.KindReport r, bool bold)
        {
            var m = r.Measured; var d = r.Modelled;
            var row = new List<string> { bold ? $"[bold]{r.Name}[/]" : r.Name, r.Count.ToString("N0"), m.Count.ToString("N0"),
                Fig(m, m.P50), Fig(m, m.P90), Fig(m, m.P99), Fig(m, m.Max), d.P50.ToString("N0"), d.P99.ToString("N0") };
            if (hw) row.AddRange([r.Hardware!.P50.ToString("N0"), r.Hardware.P50 > 0 ? $"{(double)m.P50 / r.Hardware.P50:P0}" : "-"]);
            table.AddRow(row.ToArray());
        }
        var (kinds, all) = Report.ExitReport.Full(st);   // one pass over the samples for both
        foreach (var r in kinds) Row(r, false);
        Row(all, true);
        AnsiConsole.Write(table);
        if (sys.Kvm is { } kv)
        {
            AnsiConsole.MarkupLine($"kvm: {kv.Exits:N0} real exits, decode checked {st.HardwareChecked:N0}, [bold]decode disagreements {st.DecodeMismatch}[/] (address {st.MismatchAddress}, size {st.MismatchSize}, direction {st.MismatchDirection}, data {st.MismatchData}), interrupts injected {kv.InterruptsInjected}, KVM could not emulate and the kernel completed {kv.KernelCompleted}, shutdowns {kv.ShutdownExits}");
            foreach (var pr in kv.Problems) AnsiConsole.MarkupLine($"[red]kvm: {Markup.Escape(pr)}[/]");
        }
        AnsiConsole.MarkupLine($"accesses: {st.AccessesTaken:N0} taken = {st.Completed:N0} completed + {st.Forwarded:N0} forwarded + {st.Reinjected:N0} re-injected + {st.Faulted:N0} faulted + {st.Aborted:N0} aborted; in flight {st.InFlight}");
        AnsiConsole.MarkupLine($"device round trips {st.DeviceRoundTrips:N0}, to VMM {st.ToVmm:N0}, TDCALLs {st.TdReads:N0} reads / {st.TdWrites:N0} writes, decode mismatches {st.DecodeMismatch}, internal errors {k.InternalErrors}");
        if (sys.Replay is { } rep && (rep.Desyncs > 0 || rep.DataMismatches > 0))
            foreach (var pr in rep.Problems) AnsiConsole.MarkupLine($"[red]replay: {Markup.Escape(pr)}[/]");
        AnsiConsole.MarkupLine($"trace hash [blue]{k.Trace.Hash:x16}[/], {result.Steps:N0} steps, {(result.Quiescent ? "quiescent" : "[red]did not finish[/]")}");
        AnsiConsole.Write(new Panel(Markup.Escape(sys.GuestConsole.TrimEnd())).Header("guest console (UART)"));
        var report = sys.FaultReport();
        if (report.Count > 0)
        {
            AnsiConsole.MarkupLine("[bold]injected faults[/]");
            var ft = new Table();
            ft.AddColumns("fault", "injected", "what the system did", "contained");
            foreach (var f in report) ft.AddRow(f.Fault, f.Injected.ToString("N0"), Markup.Escape(f.Outcome), f.Contained ? "[green]yes[/]" : "[red]no[/]");
            AnsiConsole.Write(ft);
        }
        foreach (var p in k.Processes)
            if (k.ConsoleOf(p.Pid) is { Length: > 0 } text && p.Path != User.Programs.Paths.Uart)
                AnsiConsole.MarkupLine($"[grey]{p.Pid} {Markup.Escape(p.Path)}: {Markup.Escape(text.TrimEnd().Replace("\n", " | "))}[/]");
    }

    /// <summary>The run as JSON (docs/json.md, "copra run").</summary>
    public static string Json(CopraSystem sys, DriverResult result, bool interrupted = false) => Report.JsonOut.Document("run", w =>
    {
        var k = sys.Kernel;
        var st = k.Stats;
        var sc = sys.Scenario;
        w.WriteStartObject("parameters");
        w.WriteString("platform", sc.Platform);
        w.WriteNumber("cpu_count", sc.Cpus);
        w.WriteNumber("vm_count", sc.Vms.Count);
        w.WriteNumber("vcpu_count", sc.Vms.Sum(v => v.Vcpus));
        w.WriteNumber("seed", sc.Seed);
        w.WriteString("driver", sc.Driver);
        w.WriteString("unhandled", sc.Unhandled);
        w.WriteString("backend", k.Backend!.Name);
        w.WriteString("cost_model", k.Cost.Name);
        w.WriteNumber("iterations_per_vcpu_count", sc.Workload.Iterations);
        Report.JsonOut.StringArray(w, "mix", sc.Workload.Mix);
        w.WriteNumber("sample_capacity_per_kind_count", st.Capacity);
        w.WriteEndObject();

        w.WriteStartObject("result");
        w.WriteBoolean("clean", !interrupted && Clean(sys, result));
        w.WriteBoolean("quiescent", result.Quiescent);
        w.WriteBoolean("interrupted", interrupted);
        w.WriteNumber("driver_steps_count", result.Steps);
        w.WriteString("trace_hash", k.Trace.Hash.ToString("x16"));
        w.WriteNumber("watchdog_stops_count", sys.WatchdogStops);
        w.WriteNumber("internal_errors_count", k.InternalErrors);
        w.WriteEndObject();

        w.WriteStartObject("exits");
        w.WriteNumber("total_count", st.Taken);
        w.WriteNumber("mmio_count", st.Mmio);
        w.WriteNumber("ioio_count", st.Io);
        w.WriteNumber("completed_count", st.Completed);
        w.WriteNumber("forwarded_count", st.Forwarded);
        w.WriteNumber("reinjected_count", st.Reinjected);
        w.WriteNumber("faulted_count", st.Faulted);
        w.WriteNumber("aborted_count", st.Aborted);
        w.WriteNumber("in_flight_count", st.InFlight);
        w.WriteNumber("to_vmm_count", st.ToVmm);
        w.WriteNumber("hlt_count", st.Hlt);
        w.WriteNumber("cpuid_count", st.Cpuid);
        w.WriteNumber("device_round_trips_count", st.DeviceRoundTrips);
        w.WriteNumber("decode_mismatches_count", st.DecodeMismatch);
        w.WriteNumber("hardware_checked_count", st.HardwareChecked);
        w.WriteNumber("tdcall_reads_count", st.TdReads);
        w.WriteNumber("tdcall_writes_count", st.TdWrites);
        w.WriteEndObject();

        w.WriteStartObject("cycles");
        w.WriteString("measured_is", Report.ExitReport.MeasuredIs);
        w.WriteString("measured_unit", Tsc.Unit);
        w.WriteNumber("time_every", st.TimeEvery);
        w.WriteString("modelled_is", $"platform cycles from the cost model '{k.Cost.Name}' (modelled)");
        w.WriteString("percentiles_are", "from a histogram with HdrHistogram's bucketing at 3 significant digits; min and max are exact");
        var (kinds, all) = Report.ExitReport.Full(st);   // one pass over the samples for both
        Kind(w, "all", all);
        w.WriteStartObject("by_kind");
        foreach (var r in kinds) Kind(w, r.Name, r);
        w.WriteEndObject();
        w.WriteEndObject();

        if (sys.Replay is { } rp)
        {
            w.WriteStartObject("replay");
            w.WriteNumber("desyncs_count", rp.Desyncs);
            w.WriteNumber("data_mismatches_count", rp.DataMismatches);
            w.WriteNumber("exceptions_count", rp.ExceptionsSeen);
            w.WriteNumber("interrupts_count", rp.InterruptsSeen);
            w.WriteEndObject();
        }
        w.WriteStartArray("faults");
        foreach (var f in sys.FaultReport())
        {
            w.WriteStartObject();
            w.WriteString("fault", f.Fault);
            w.WriteNumber("injected_count", f.Injected);
            w.WriteString("outcome", f.Outcome);
            w.WriteBoolean("contained", f.Contained);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("processes");
        foreach (var p in sys.ProcessTree())
        {
            w.WriteStartObject();
            w.WriteNumber("pid", p.Pid);
            w.WriteString("path", p.Path);
            w.WriteString("state", p.State);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteString("console_text", sys.GuestConsole);
    });

    static void Kind(Utf8JsonWriter w, string name, Report.KindReport r)
    {
        w.WriteStartObject(name);
        w.WriteNumber("exits_count", r.Count);
        r.Measured.WriteJson(w, "measured", Tsc.Unit);
        r.Modelled.WriteJson(w, "modelled", "cycles");
        r.Hardware?.WriteJson(w, "hardware_round_trip", Tsc.Unit);
        w.WriteEndObject();
    }
}

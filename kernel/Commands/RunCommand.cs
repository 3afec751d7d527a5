using System.Text;
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
    public static readonly string[] Options =
        ["platform", "cpus", "exits", "seed", "driver", "unhandled", "scenario", "json", "trace", "backend", "quiet", "tdcall", "faults"];

    public static int Run(string[] args)
    {
        var a = new CliArgs(args, "quiet");
        a.RejectUnknown(Options);
        var sc = a.Get("scenario") is { } path ? Scenario.Parse(File.ReadAllText(path)) : Scenario.Default();
        if (a.Get("platform") is { } p) sc = sc with { Platform = p };
        if (a.Has("cpus")) sc = sc with { Cpus = (int)a.GetLong("cpus", 2) };
        if (a.Has("seed")) sc = sc with { Seed = (ulong)a.GetLong("seed", 1) };
        if (a.Get("driver") is { } d) sc = sc with { Driver = d };
        if (a.Get("unhandled") is { } u) sc = sc with { Unhandled = u };
        if (a.Get("backend") is { } b) sc = sc with { Backend = b };
        if (a.Has("tdcall")) sc = sc with { Costs = new Dictionary<string, long>(sc.Costs) { ["tdcall"] = a.GetLong("tdcall", 2080) } };
        if (a.Has("exits"))
        {
            long target = a.GetLong("exits", 1000);
            if (target < 1) throw new CliException("--exits must be positive");
            int vcpus = sc.Vms.Sum(v => v.Vcpus);
            long perIter = Math.Max(1, sc.Workload.Mix.Count) * vcpus;
            sc = sc with { Workload = sc.Workload with { Iterations = Math.Max(1, target / perIter) } };
        }
        sc.Validate();
        if (sc.Backend is not ("replay" or "kvm")) throw new CliException($"backend '{sc.Backend}' is not available (replay, kvm)");
        if (sc.Backend == "kvm" && !Kvm.KvmSystem.IsAvailable(out string why))
        {
            Console.Error.WriteLine($"copra: the kvm backend needs /dev/kvm: {why}");
            return 3;
        }
        bool quiet = a.Has("quiet");

        var faults = a.Get("faults") is { } fs ? FaultSpec.Parse(fs) : new FaultSpec();
        using var sys = new CopraSystem(sc, keepTrace: a.Has("trace"), backend: sc.Backend == "kvm" ? KvmFactory(sc) : null, faults: faults);
        var k = sys.Kernel;
        Prejit.ExitPath();
        if (!quiet)
            AnsiConsole.MarkupLine($"[bold]copra[/]: platform [green]{sc.Platform}[/], {sc.Cpus} CPU(s), {sc.Vms.Count} VM(s), backend {k.Backend!.Name}, driver {sc.Driver}, seed {sc.Seed}, unhandled {sc.Unhandled}");

        long expected = sc.Vms.Sum(v => v.Vcpus) * sc.Workload.Iterations * Math.Max(1, sc.Workload.Mix.Count) + 200;
        DriverResult result = default;
        if (quiet || Console.IsOutputRedirected) result = sys.Run();
        else
            AnsiConsole.Progress().AutoClear(true).Start(ctx =>
            {
                var task = ctx.AddTask("exits", maxValue: expected);
                result = sys.Run(progress: kk => task.Value = Math.Min(expected, kk.Stats.Taken));
            });

        var st = k.Stats;
        if (!quiet) Print(sys, result);
        if (a.Get("json") is { } json) File.WriteAllText(json, Json(sys, result));
        if (a.Get("trace") is { } trace) ChromeTrace.Write(trace, k);
        bool ok = result.Quiescent && st.InFlight == 0 && k.InternalErrors == 0 && (sys.Replay is null || sys.Replay.Desyncs == 0)
                  && sys.FaultReport().All(f => f.Contained)
                  && (sys.Kvm is null || (st.DecodeMismatch == 0 && sys.Kvm.ShutdownExits == 0));
        return ok ? 0 : 1;
    }

    /// <summary>The KVM backend for a scenario: real guests built from its workload, one KVM VM per scenario VM.</summary>
    public static Func<Core.Kernel, IReadOnlyList<Backends.VmLayout>, IGuestBackend> KvmFactory(Scenario sc) =>
        (k, layouts) => Backends.KvmBackend.Create(k, layouts, sc.Workload, sc.Vms.Select(v => (byte)v.IrqVector).ToList());

    // Measured figures: cycles of an invariant hardware TSC, else nanoseconds (Tsc.Unit says which; never ns called cycles).
    static double Cycles(double ticks) => Tsc.ToReportUnits(ticks);

    static string[] HardwareColumns(double measuredTicks, double hardwareTicks) =>
        [Cycles(hardwareTicks).ToString("N0"), hardwareTicks > 0 ? $"{measuredTicks / hardwareTicks:P0}" : "-"];

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
        var table = new Table().Title("exits by kind (measured = kernel software, TSC; modelled = platform, cost model)");
        bool hw = st.HasHardware;
        table.AddColumns("kind", "count", $"measured {Tsc.Unit} (median)", "modelled platform cycles (median)");
        if (hw) table.AddColumns($"real KVM_RUN round trip, {Tsc.Unit} (median)", "kernel share of real");
        for (int i = 0; i < ExitStats.KindCount; i++)
        {
            var kind = (ExitKind)i;
            if (st.Count[i] == 0) continue;
            var row = new List<string> { kind.ToString(), st.Count[i].ToString("N0"), Cycles(st.MeasuredMedian(kind)).ToString("N0"), st.ModelledMedian(kind).ToString("N0") };
            if (hw) row.AddRange(HardwareColumns(st.MeasuredMedian(kind), st.HardwareMedian(kind)));
            table.AddRow(row.ToArray());
        }
        var all = new List<string> { "[bold]all[/]", st.Taken.ToString("N0"), Cycles(st.MeasuredMedianAll()).ToString("N0"), st.ModelledMedianAll().ToString("N0") };
        if (hw) all.AddRange(HardwareColumns(st.MeasuredMedianAll(), st.HardwareMedianAll()));
        table.AddRow(all.ToArray());
        AnsiConsole.Write(table);
        if (sys.Kvm is { } kv)
        {
            AnsiConsole.MarkupLine($"kvm: {kv.Exits:N0} real exits, decode checked {st.HardwareChecked:N0}, [bold]decode disagreements {st.DecodeMismatch}[/] (address {st.MismatchAddress}, size {st.MismatchSize}, direction {st.MismatchDirection}, data {st.MismatchData}), interrupts injected {kv.InterruptsInjected}, shutdowns {kv.ShutdownExits}");
            foreach (var pr in kv.Problems) AnsiConsole.MarkupLine($"[red]kvm: {Markup.Escape(pr)}[/]");
        }
        AnsiConsole.MarkupLine($"accesses: {st.AccessesTaken:N0} taken = {st.Completed:N0} completed + {st.Forwarded:N0} forwarded + {st.Reinjected:N0} re-injected + {st.Faulted:N0} faulted + {st.Aborted:N0} aborted; in flight {st.InFlight}");
        AnsiConsole.MarkupLine($"device round trips {st.DeviceRoundTrips:N0}, to VMM {st.ToVmm:N0}, TDCALLs {st.TdReads:N0} reads / {st.TdWrites:N0} writes, decode mismatches {st.DecodeMismatch}, internal errors {k.InternalErrors}");
        if (sys.Replay is { } r && (r.Desyncs > 0 || r.DataMismatches > 0))
            foreach (var pr in r.Problems) AnsiConsole.MarkupLine($"[red]replay: {Markup.Escape(pr)}[/]");
        AnsiConsole.MarkupLine($"trace hash [blue]{k.Trace.Hash:x16}[/], {result.Steps:N0} steps, {(result.Quiescent ? "quiescent" : "[red]did not finish[/]")}");
        AnsiConsole.Write(new Panel(Markup.Escape(sys.GuestConsole.TrimEnd())).Header("guest console (UART)"));
        var report = sys.FaultReport();
        if (report.Count > 0)
        {
            var ft = new Table().Title("injected faults");
            ft.AddColumns("fault", "injected", "what the system did", "contained");
            foreach (var f in report) ft.AddRow(f.Fault, f.Injected.ToString("N0"), Markup.Escape(f.Outcome), f.Contained ? "[green]yes[/]" : "[red]no[/]");
            AnsiConsole.Write(ft);
        }
        foreach (var p in k.Processes)
            if (k.ConsoleOf(p.Pid) is { Length: > 0 } text && p.Path != User.Programs.Paths.Uart)
                AnsiConsole.MarkupLine($"[grey]{p.Pid} {Markup.Escape(p.Path)}: {Markup.Escape(text.TrimEnd().Replace("\n", " | "))}[/]");
    }

    public static string Json(CopraSystem sys, DriverResult result)
    {
        var k = sys.Kernel;
        var st = k.Stats;
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("platform", sys.Scenario.Platform);
            w.WriteNumber("seed", sys.Scenario.Seed);
            w.WriteString("driver", sys.Scenario.Driver);
            w.WriteString("backend", k.Backend!.Name);
            w.WriteString("trace_hash", k.Trace.Hash.ToString("x16"));
            w.WriteBoolean("quiescent", result.Quiescent);
            w.WriteString("console", sys.GuestConsole);
            w.WriteStartObject("exits");
            w.WriteNumber("total", st.Taken);
            w.WriteNumber("mmio", st.Mmio);
            w.WriteNumber("ioio", st.Io);
            w.WriteNumber("completed", st.Completed);
            w.WriteNumber("forwarded", st.Forwarded);
            w.WriteNumber("reinjected", st.Reinjected);
            w.WriteNumber("faulted", st.Faulted);
            w.WriteNumber("aborted", st.Aborted);
            w.WriteNumber("in_flight", st.InFlight);
            w.WriteNumber("to_vmm", st.ToVmm);
            w.WriteNumber("hlt", st.Hlt);
            w.WriteNumber("cpuid", st.Cpuid);
            w.WriteNumber("device_round_trips", st.DeviceRoundTrips);
            w.WriteNumber("decode_mismatches", st.DecodeMismatch);
            w.WriteNumber("hardware_checked", st.HardwareChecked);
            w.WriteNumber("tdcall_reads", st.TdReads);
            w.WriteNumber("tdcall_writes", st.TdWrites);
            w.WriteNumber("internal_errors", k.InternalErrors);
            w.WriteEndObject();
            w.WriteStartObject("cycles");
            w.WriteString("measured_is", Tsc.CountsCycles ? "TSC cycles of the kernel's own code" : "nanoseconds of the kernel's own code (no invariant TSC)");
            w.WriteString("measured_unit", Tsc.Unit);
            w.WriteString("modelled_is", $"platform cost model '{k.Cost.Name}'");
            w.WriteNumber("measured_median", Cycles(st.MeasuredMedianAll()));
            w.WriteNumber("modelled_median", st.ModelledMedianAll());
            w.WriteStartObject("by_kind");
            for (int i = 0; i < ExitStats.KindCount; i++)
            {
                if (st.Count[i] == 0) continue;
                var kind = (ExitKind)i;
                w.WriteStartObject(kind.ToString());
                w.WriteNumber("count", st.Count[i]);
                w.WriteNumber("measured_median", Cycles(st.MeasuredMedian(kind)));
                w.WriteNumber("modelled_median", st.ModelledMedian(kind));
                if (st.HasHardware) w.WriteNumber("hardware_round_trip_median", Cycles(st.HardwareMedian(kind)));
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteEndObject();
            if (sys.Replay is { } r)
            {
                w.WriteStartObject("replay");
                w.WriteNumber("desyncs", r.Desyncs);
                w.WriteNumber("data_mismatches", r.DataMismatches);
                w.WriteNumber("exceptions", r.ExceptionsSeen);
                w.WriteNumber("interrupts", r.InterruptsSeen);
                w.WriteEndObject();
            }
            w.WriteStartArray("faults");
            foreach (var f in sys.FaultReport())
            {
                w.WriteStartObject();
                w.WriteString("fault", f.Fault);
                w.WriteNumber("injected", f.Injected);
                w.WriteString("outcome", f.Outcome);
                w.WriteBoolean("contained", f.Contained);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteNumber("watchdog_stops", sys.WatchdogStops);
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
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }
}

using System.CommandLine;
using Copra.Hot.Timing;
using Copra.Kernel.Backends;
using Copra.Kernel.Exit;
using Copra.Kernel.Kvm;
using Copra.Kernel.Run;
using Spectre.Console;

namespace Copra.Kernel;

/// <summary>
/// <c>copra kvmbench</c>: what Copra adds to a real exit. In one process, for an MMIO read and a port
/// OUT: the KVM backend running a one-vCPU guest that does nothing but that access in a loop (every exit
/// through the whole kernel path: decode, check against KVM, device model, completion), then
/// <see cref="KvmBareLoop"/> on the same kind of guest (raw ioctls: KVM_RUN, complete, KVM_RUN). Per
/// access: the median of one full cycle (KVM_RUN start to the next KVM_RUN start) for the backend, the
/// median KVM_RUN round trip for the bare loop, and their ratio.
/// </summary>
public static class KvmBenchCommand
{
    public sealed record Row(string Kind, long Exits, double BackendCycleNs, double BackendKvmRunNs, double KernelNs, double BareNs)
    {
        public double Ratio => BackendCycleNs / BareNs;
    }

    public static Command Build(Cli.Io io)
    {
        var cmd = new Command("kvmbench", "What Copra adds to a real exit: the KVM backend against a bare KVM exit loop, MMIO read and port OUT (docs/kvm.md). Needs /dev/kvm (exit code 3 without).");
        var exits = Cli.Int("--exits", "Accesses per measurement", 100, 10_000_000, 20_000);
        var json = Cli.Output("--json", "Write the results as JSON (docs/json.md) to FILE, or stdout with '-'");
        cmd.Options.Add(exits);
        cmd.Options.Add(json);
        cmd.SetAction(pr => Execute(io, (int)pr.GetValue(exits), pr.GetValue(json)));
        return cmd;
    }

    static int Execute(Cli.Io io, int n, string? json)
    {
        if (!KvmSystem.IsAvailable(out string why)) { io.Err.WriteLine($"copra kvmbench: needs /dev/kvm: {why}"); return ExitCodes.NoKvm; }
        var rows = Measure(n);
        Report.Human.Init();
        if (json != "-")
        {
            AnsiConsole.MarkupLine(Markup.Escape($"copra kvmbench: {n:N0} accesses each, medians in ns (TSC {(Tsc.IsHardware ? "hardware" : "emulated")}, {Tsc.Hz / 1e9:F2} GHz), measured"));
            var t = new Table();
            t.AddColumn("access");
            foreach (var h in new[] { "backend cycle (ns)", "of it KVM_RUN (ns)", "kernel code (ns)", "bare loop (ns)", "ratio" }) t.AddColumn(new TableColumn(h).RightAligned());
            foreach (var r in rows) t.AddRow(r.Kind, r.BackendCycleNs.ToString("N0"), r.BackendKvmRunNs.ToString("N0"), r.KernelNs.ToString("N0"), r.BareNs.ToString("N0"), r.Ratio.ToString("F2"));
            AnsiConsole.Write(t);
        }
        if (json is not null) Cli.WriteOutput(io, json, Json(n, rows));
        return ExitCodes.Ok;
    }

    /// <summary>The results as JSON (docs/json.md, "kvmbench").</summary>
    public static string Json(int n, IReadOnlyList<Row> rows) => Report.JsonOut.Document("kvmbench", w =>
        {
            w.WriteStartObject("parameters");
            w.WriteNumber("accesses_per_measurement_count", n);
            w.WriteEndObject();
            w.WriteStartArray("accesses");
            foreach (var r in rows)
            {
                w.WriteStartObject();
                w.WriteString("access", r.Kind);
                w.WriteNumber("exits_count", r.Exits);
                w.WriteNumber("backend_cycle_median_ns", Math.Round(r.BackendCycleNs, 1));
                w.WriteNumber("backend_kvm_run_median_ns", Math.Round(r.BackendKvmRunNs, 1));
                w.WriteNumber("kernel_code_median_ns", Math.Round(r.KernelNs, 1));
                w.WriteNumber("bare_loop_median_ns", Math.Round(r.BareNs, 1));
                w.WriteNumber("backend_to_bare_ratio", Math.Round(r.Ratio, 3));
                w.WriteEndObject();
            }
            w.WriteEndArray();
        });

    public static IReadOnlyList<Row> Measure(int exits)
    {
        var rows = new List<Row>();
        foreach (var (mix, bare, cycle, kind) in new[]
        {
            ("read", KvmBareAccess.MmioRead, KvmBackend.CycleKind.MmioRead, ExitKind.MmioRead),
            ("port_out", KvmBareAccess.PortOut, KvmBackend.CycleKind.PortOut, ExitKind.PortOut),
        })
        {
            var d = Scenario.Default();
            var sc = d with
            {
                Backend = "kvm",
                Vms = [d.Vms[0] with { Vcpus = 1 }],
                Workload = d.Workload with { Greeting = "", DeviceDriver = false, Unregistered = false, Mix = [mix], Iterations = exits },
            };
            double cycleNs, runNs, kernelNs;
            long count;
            using (var sys = new CopraSystem(sc, backend: RunCommand.KvmFactory(sc)))
            {
                var r = sys.Run();
                if (!r.Quiescent || sys.Kernel.Stats.DecodeMismatch != 0) throw new InvalidOperationException($"kvmbench: the {mix} run did not finish cleanly");
                var st = sys.Kernel.Stats;
                cycleNs = Tsc.ToNanoseconds(ExitStats.Median(sys.Kvm!.Cycles(cycle).ToArray()));
                runNs = Tsc.ToNanoseconds(st.HardwareMedian(kind));
                kernelNs = Tsc.ToNanoseconds(st.MeasuredMedian(kind));
                count = st.Count[(int)kind];
            }
            var b = KvmBareLoop.Run(exits, bare);
            rows.Add(new Row(mix, count, cycleNs, runNs, kernelNs, b.MedianNs));
        }
        return rows;
    }
}

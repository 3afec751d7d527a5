using System.CommandLine;
using Copra.Hot.Timing;
using Copra.Kernel.Backends;
using Copra.Kernel.Exit;
using Copra.Kernel.Kvm;
using Copra.Kernel.Run;
using Spectre.Console;
using Copra.Hot.Exit;

namespace Copra.Kernel;

/// <summary>
/// <c>copra kvmbench</c>: what Copra adds to a real exit, like for like. For an MMIO read and a port OUT, in
/// interleaved rounds (bare, Copra, bare, Copra ...): <see cref="KvmBareLoop"/> (raw ioctls: KVM_RUN, complete,
/// KVM_RUN) and the KVM backend (every exit through the whole kernel path: decode, check against KVM, device
/// model, completion) run the same guest access loop (<see cref="KvmGuestBuilder.EmitAccessLoop"/>), and both are
/// timed the same way: one full cycle per access, KVM_RUN start to the next KVM_RUN start, on the one clock
/// (<see cref="Tsc"/>). Per round the medians and their ratio; over rounds the median ratio and its spread.
/// The host's kind of KVM is detected and printed first: on kvm_pvm, ring-0 guest instructions are emulated.
/// </summary>
public static class KvmBenchCommand
{
    /// <summary>Rounds per access kind; the summary is the median over them (at least 3, so a median has a spread).</summary>
    public const int Rounds = 5;

    public sealed record Round(double BareNs, double CopraNs, double KernelNs)
    {
        public double Ratio => CopraNs / BareNs;
    }

    public sealed record Row(string Kind, IReadOnlyList<Round> Rounds)
    {
        public double Bare => Median(Rounds.Select(r => r.BareNs));
        public double Copra => Median(Rounds.Select(r => r.CopraNs));
        public double Kernel => Median(Rounds.Select(r => r.KernelNs));
        public double Ratio => Median(Rounds.Select(r => r.Ratio));
        public double RatioMin => Rounds.Min(r => r.Ratio);
        public double RatioMax => Rounds.Max(r => r.Ratio);
    }

    public static Command Build(Cli.Io io)
    {
        var cmd = new Command("kvmbench", "What Copra adds to a real exit, like for like: the KVM backend against a bare KVM exit loop on the same guest code, MMIO read and port OUT, interleaved rounds (docs/kvm.md). Needs /dev/kvm (exit code 3 without).");
        var exits = Cli.Int("--exits", "Accesses per side per round", 100, 10_000_000, 20_000);
        var json = Cli.Output("--json", "Write the results as JSON (docs/json.md) to FILE, or stdout with '-'");
        cmd.Options.Add(exits);
        cmd.Options.Add(json);
        cmd.SetAction(pr => Execute(io, (int)pr.GetValue(exits), pr.GetValue(json)));
        return cmd;
    }

    static int Execute(Cli.Io io, int n, string? json)
    {
        var host = HostVirtualization.Probe();
        if (!KvmSystem.IsAvailable(out string why)) { io.Err.WriteLine($"copra kvmbench: needs /dev/kvm: {why} ({host.Describe()})"); return ExitCodes.NoKvm; }
        bool human = json != "-";
        Report.Human.Init();
        if (human)
        {
            AnsiConsole.MarkupLine(Markup.Escape($"copra kvmbench: {n:N0} accesses per side per round, {Rounds} interleaved rounds (bare, Copra, ...), the same guest loop on both sides (measured)"));
            AnsiConsole.MarkupLine(Markup.Escape(host.Describe()));
            AnsiConsole.MarkupLine(Markup.Escape(Tsc.Describe() + "; figures are full cycles per access (KVM_RUN start to the next KVM_RUN start), in ns"));
        }
        var rows = Measure(n, human ? (kind, i, r) => AnsiConsole.MarkupLine(Markup.Escape(
            $"  {kind,-9} round {i + 1}: bare {r.BareNs,9:N0} ns  Copra {r.CopraNs,9:N0} ns  (kernel code {r.KernelNs,7:N0} ns)  ratio {r.Ratio,5:F2}")) : null);
        if (human)
        {
            var t = new Table();
            t.AddColumn("access");
            foreach (var h in new[] { "bare median (ns)", "Copra median (ns)", "kernel code (ns)", "Copra/bare (median)", "spread" }) t.AddColumn(new TableColumn(h).RightAligned());
            foreach (var r in rows) t.AddRow(r.Kind, r.Bare.ToString("N0"), r.Copra.ToString("N0"), r.Kernel.ToString("N0"), r.Ratio.ToString("F2"), $"{r.RatioMin:F2}-{r.RatioMax:F2}");
            AnsiConsole.Write(t);
        }
        if (json is not null) Cli.WriteOutput(io, json, Json(n, host, rows));
        return ExitCodes.Ok;
    }

    /// <summary>The results as JSON (docs/json.md, "kvmbench").</summary>
    public static string Json(int n, HostVirtualization host, IReadOnlyList<Row> rows) => Report.JsonOut.Document("kvmbench", w =>
        {
            w.WriteStartObject("parameters");
            w.WriteNumber("accesses_per_side_per_round_count", n);
            w.WriteNumber("rounds_count", Rounds);
            w.WriteEndObject();
            w.WriteString("host_virtualization", host.Kind.ToString());
            w.WriteString("host_virtualization_is", host.Describe());
            w.WriteStartArray("accesses");
            foreach (var r in rows)
            {
                w.WriteStartObject();
                w.WriteString("access", r.Kind);
                w.WriteNumber("bare_median_ns", Math.Round(r.Bare, 1));
                w.WriteNumber("copra_median_ns", Math.Round(r.Copra, 1));
                w.WriteNumber("kernel_code_median_ns", Math.Round(r.Kernel, 1));
                w.WriteNumber("copra_to_bare_ratio", Math.Round(r.Ratio, 3));
                w.WriteNumber("copra_to_bare_ratio_min", Math.Round(r.RatioMin, 3));
                w.WriteNumber("copra_to_bare_ratio_max", Math.Round(r.RatioMax, 3));
                w.WriteStartArray("rounds");
                foreach (var x in r.Rounds)
                {
                    w.WriteStartObject();
                    w.WriteNumber("bare_ns", Math.Round(x.BareNs, 1));
                    w.WriteNumber("copra_ns", Math.Round(x.CopraNs, 1));
                    w.WriteNumber("kernel_code_ns", Math.Round(x.KernelNs, 1));
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
        });

    public static IReadOnlyList<Row> Measure(int exits, Action<string, int, Round>? onRound = null)
    {
        var rows = new List<Row>();
        foreach (var (bare, cycle, kind) in new[]
        {
            (KvmBareAccess.MmioRead, KvmBackend.CycleKind.MmioRead, ExitKind.MmioRead),
            (KvmBareAccess.PortOut, KvmBackend.CycleKind.PortOut, ExitKind.PortOut),
        })
        {
            string mix = KvmBareLoop.MixOf(bare);
            var rounds = new List<Round>();
            for (int i = 0; i < Rounds; i++)
            {
                var b = KvmBareLoop.Run(exits, bare);
                var (copraNs, kernelNs) = Backend(mix, cycle, kind, exits);
                var round = new Round(b.MedianNs, copraNs, kernelNs);
                rounds.Add(round);
                onRound?.Invoke(mix, i, round);
            }
            rows.Add(new Row(mix, rounds));
        }
        return rows;
    }

    static (double CycleNs, double KernelNs) Backend(string mix, KvmBackend.CycleKind cycle, ExitKind kind, int exits)
    {
        var d = Scenario.Default();
        var sc = d with
        {
            Backend = "kvm",
            Vms = [d.Vms[0] with { Vcpus = 1 }],
            Workload = d.Workload with { Greeting = "", DeviceDriver = false, Unregistered = false, Mix = [mix], Iterations = exits },
        };
        using var sys = new CopraSystem(sc, backend: RunCommand.KvmFactory(sc));
        var r = sys.Run();
        if (!r.Quiescent || sys.Kernel.Stats.DecodeMismatch != 0 || sys.Kvm!.IndependentMismatches != 0)
            throw new InvalidOperationException($"kvmbench: the {mix} run did not finish cleanly");
        var st = sys.Kernel.Stats;
        return (Tsc.ToNanoseconds(ExitStats.Median(sys.Kvm.Cycles(cycle).ToArray())), Tsc.ToNanoseconds(st.MeasuredMedian(kind)));
    }

    static double Median(IEnumerable<double> xs)
    {
        var s = xs.Order().ToArray();
        return s.Length == 0 ? double.NaN : s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}

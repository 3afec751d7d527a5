using System.CommandLine;
using Copra.Hot.Timing;
using Copra.Kernel.Exit;
using Copra.Kernel.Run;
using Spectre.Console;
using Copra.Hot.Exit;

namespace Copra.Kernel;

/// <summary>
/// <c>copra exitbench [--exits N] [--warm-ms M] [--json FILE|-] [--rig NAME] [--count]</c>: the exit-path suite's rigs (MMIO read, MMIO
/// write, MMIO read-modify-write, port, forwarded) timed inside the <c>copra</c> binary itself, so the same code can be
/// measured as shipped (NativeAOT) and under the JIT. Per exit: the whole cycle (TSC around a slice of
/// <see cref="ExitRig.Batch"/> exits, divided by it: the model's WAIT enters the guest directly inside a slice) and the kernel-only segments (ExitStats). Measured only; nothing modelled.
/// The command is a thin wrapper: <see cref="Measure"/> times, the rest prints.
/// </summary>
public static class ExitBenchCommand
{
    /// <summary>One rig's medians: nanoseconds always; cycles only of an invariant hardware TSC (NaN otherwise).</summary>
    public sealed record Row(string Rig, double WholeNs, double KernelNs, double WholeCycles, double KernelCycles);

    public static Command Build(Cli.Io io)
    {
        var cmd = new Command("exitbench", "Time the exit-path rigs (MMIO read, MMIO write, MMIO read-modify-write, port, forwarded) inside copra itself: whole cycle and kernel-only medians. Measured only.");
        var exits = Cli.Int("--exits", "Timed exits per rig", 1, 10_000_000, 20_000);
        var warm = Cli.Int("--warm-ms", "Warm-up per rig, in milliseconds", 0, 600_000, 1500);
        var json = Cli.Output("--json", "Write the results as JSON (docs/json.md) to FILE, or stdout with '-'");
        // --rig and --count are what ./build.sh bench --instructions uses: one rig per run, its exits untimed
        // (so the harness's own TSC reads and median sort are not in the instruction count).
        var rig = Cli.Choice("--rig", "Run only this rig", null, [.. Enum.GetNames<ExitFlavor>().Select(n => n.ToLowerInvariant())]);
        var count = Cli.Flag("--count", "Run the exits untimed and report only their number (for instruction counts)");
        foreach (var o in new Option[] { exits, warm, json, rig, count }) cmd.Options.Add(o);
        cmd.SetAction(pr => pr.GetValue(count)
            ? Count(io, (int)pr.GetValue(exits), (int)pr.GetValue(warm), pr.GetValue(rig))
            : Execute(io, (int)pr.GetValue(exits), (int)pr.GetValue(warm), pr.GetValue(json), pr.GetValue(rig)));
        return cmd;
    }

    static ExitFlavor[] Flavors(string? rig) =>
        rig is null ? Enum.GetValues<ExitFlavor>() : [Enum.Parse<ExitFlavor>(rig, ignoreCase: true)];

    /// <summary>--count: steps each rig's exits without timing them; prints how many ran.</summary>
    static int Count(Cli.Io io, int exits, int warmMs, string? rig)
    {
        Prejit.ExitPath();
        foreach (var flavor in Flavors(rig))
        {
            using var r = new ExitRig(flavor);
            var warm = System.Diagnostics.Stopwatch.StartNew();
            while (warm.ElapsedMilliseconds < warmMs) r.StepExits(ExitRig.Batch);
            for (int done = 0; done < exits; done += ExitRig.Batch) r.StepExits(Math.Min(ExitRig.Batch, exits - done));
            r.Check();
            io.Out.WriteLine($"{flavor}: {exits:N0} exits (untimed)");
        }
        return ExitCodes.Ok;
    }

    static int Execute(Cli.Io io, int exits, int warmMs, string? json, string? rig)
    {
        Prejit.ExitPath();
        bool aot = !System.Runtime.CompilerServices.RuntimeFeature.IsDynamicCodeSupported;
        bool human = json != "-";
        Report.Human.Init();
        if (human) AnsiConsole.MarkupLine(Markup.Escape($"copra exitbench: {(aot ? "NativeAOT" : "JIT")}, {Tsc.Describe()}, {exits:N0} exits per rig after {warmMs} ms of warm-up (measured)"));
        var rows = Measure(exits, warmMs, Flavors(rig));
        if (human)
        {
            var t = new Table();
            t.AddColumn("exit");
            var heads = Tsc.CountsCycles
                ? new[] { "whole cycle median (ns)", "whole cycle median (cycles)", "kernel-only median (cycles)" }
                : new[] { "whole cycle median (ns)", "kernel-only median (ns)" };
            foreach (var h in heads) t.AddColumn(new TableColumn(h).RightAligned());
            foreach (var r in rows)
                if (Tsc.CountsCycles) t.AddRow(r.Rig, r.WholeNs.ToString("N0"), r.WholeCycles.ToString("N0"), r.KernelCycles.ToString("N0"));
                else t.AddRow(r.Rig, r.WholeNs.ToString("N0"), r.KernelNs.ToString("N0"));
            AnsiConsole.Write(t);
        }
        if (json is not null)
            Cli.WriteOutput(io, json, Report.JsonOut.Document("exitbench", w =>
            {
                w.WriteStartObject("parameters");
                w.WriteNumber("exits_per_rig_count", exits);
                w.WriteNumber("warm_up_ms", warmMs);
                w.WriteEndObject();
                w.WriteString("cycles_are", Tsc.CountsCycles ? "invariant TSC cycles at the measured rate (measured)" : "absent: no invariant hardware TSC, figures in ns only (measured)");
                w.WriteStartArray("rigs");
                foreach (var r in rows)
                {
                    w.WriteStartObject();
                    w.WriteString("rig", Report.ExitReport.Snake(r.Rig));
                    w.WriteNumber("whole_cycle_median_ns", Math.Round(r.WholeNs, 1));
                    w.WriteNumber("kernel_only_median_ns", Math.Round(r.KernelNs, 1));
                    if (Tsc.CountsCycles)
                    {
                        w.WriteNumber("whole_cycle_median_cycles", Math.Round(r.WholeCycles, 1));
                        w.WriteNumber("kernel_only_median_cycles", Math.Round(r.KernelCycles, 1));
                    }
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }));
        return ExitCodes.Ok;
    }

    /// <summary>Times every rig: <paramref name="exits"/> exits each after <paramref name="warmMs"/> of warm-up.</summary>
    public static IReadOnlyList<Row> Measure(int exits, int warmMs, IReadOnlyList<ExitFlavor>? flavors = null)
    {
        var rows = new List<Row>();
        // Timed per slice of ExitRig.Batch exits (one direct-switch slice: the model's WAIT enters the guest
        // directly for all but the first), each slice's ticks divided by its exits.
        var whole = new long[Math.Max(1, exits / ExitRig.Batch)];
        foreach (var flavor in flavors ?? Enum.GetValues<ExitFlavor>())
        {
            using var rig = new ExitRig(flavor);
            var warm = System.Diagnostics.Stopwatch.StartNew();
            while (warm.ElapsedMilliseconds < warmMs) rig.StepExits(ExitRig.Batch);
            var stats = rig.Kernel.Stats;
            stats.ResetSamples();
            for (int i = 0; i < whole.Length; i++)
            {
                ulong t0 = Tsc.Read();
                rig.StepExits(ExitRig.Batch);
                whole[i] = (long)(Tsc.Read() - t0) / ExitRig.Batch;
            }
            rig.Check();
            var kind = rig.Kind;
            double wholeTicks = ExitStats.Median(whole);
            double kernelTicks = stats.MeasuredMedian(kind);
            // Cycles only of an invariant hardware TSC (its rate measured at start-up); never nanoseconds relabelled.
            rows.Add(new Row(flavor.ToString(), Tsc.ToNanoseconds(wholeTicks), Tsc.ToNanoseconds(kernelTicks),
                Tsc.CountsCycles ? wholeTicks : double.NaN, Tsc.CountsCycles ? kernelTicks : double.NaN));
        }
        return rows;
    }
}

using Copra.Kernel.Run;
using Copra.Hot.Timing;
using Copra.Kernel.Exit;
using Copra.Hot.Exit;

namespace Copra.Bench;

/// <summary>
/// `--segments`: the kernel's own per-exit measurement (ExitStats: TSC ticks spent in kernel code for
/// each exit, summed over its segments, without the scheduler, the guest backend or the device model)
/// for each exit-path rig, next to the modelled platform cycles the cost model charged for the same
/// exits. Complements the BenchmarkDotNet table, which times the whole cycle.
/// </summary>
public static class ExitSegments
{
    public static int Run(int exits = 20_000)
    {
        Console.WriteLine($"{Tsc.Describe()}; {exits} exits per rig after warm-up");
        Console.WriteLine($"| exit | kind | kernel-measured median ({Tsc.Unit}) | modelled platform median (cycles) | driver steps per exit |");
        Console.WriteLine("|---|---|---:|---:|---:|");
        foreach (var flavor in Enum.GetValues<ExitFlavor>())
        {
            using var rig = new ExitRig(flavor);
            var stats = rig.Kernel.Stats;
            var kind = rig.Kind;
            // Warm by time, not count: tiered JIT promotes hot methods only after a call-counting delay
            // (100 ms by default), and 20,000 exits take less than that. Measuring tier-0 code would
            // report several times the steady-state cost.
            var warm = System.Diagnostics.Stopwatch.StartNew();
            while (warm.ElapsedMilliseconds < 1500) rig.StepOneExit();
            stats.ResetSamples();
            int before = stats.Samples(kind), beforeTimed = stats.TimedSamples(kind);
            long steps = 0;
            for (int i = 0; i < exits; i++) steps += rig.StepOneExit();
            rig.Check();
            var measured = stats.Measured[(int)kind].AsSpan(beforeTimed, stats.TimedSamples(kind) - beforeTimed);
            var modelled = stats.Modelled[(int)kind].AsSpan(before, stats.Samples(kind) - before);
            double ticks = ExitStats.Median(measured);
            double cycles = Tsc.ToReportUnits(ticks);
            Console.WriteLine($"| {flavor} | {kind} | {cycles:N0} | {ExitStats.Median(modelled):N0} | {steps / (double)exits:F1} |");
        }
        return 0;
    }
}

using Copra.Hot.Timing;
using Copra.Kernel.Exit;
using Copra.Kernel.Run;

namespace Copra.Kernel;

/// <summary>
/// <c>copra exitbench [--exits N] [--warm-ms M] [--rig NAME]</c>: the exit-path suite's four rigs (MMIO read, MMIO
/// write, port, forwarded) timed inside the <c>copra</c> binary itself, so the same code can be
/// measured as shipped (NativeAOT) and under the JIT. Per exit: the whole cycle (TSC around one
/// driver step sequence) and the kernel-only segments (ExitStats). Measured only; nothing modelled.
/// </summary>
public static class ExitBenchCommand
{
    public static int Run(string[] args)
    {
        var a = new CliArgs(args, "count");
        a.RejectUnknown("exits", "warm-ms", "rig", "count");
        int exits = (int)a.GetLong("exits", 20_000);
        int warmMs = (int)a.GetLong("warm-ms", 1500);
        if (exits < 1 || warmMs < 0) throw new CliException("--exits must be positive, --warm-ms not negative");
        // --rig NAME runs one rig (the instruction counter runs each rig on its own).
        var flavors = Enum.GetValues<ExitFlavor>();
        if (a.Get("rig") is { } only)
            flavors = Enum.TryParse<ExitFlavor>(only, ignoreCase: true, out var f) && Enum.IsDefined(f)
                ? [f] : throw new CliException($"--rig must be one of {string.Join(", ", Enum.GetNames<ExitFlavor>())}");
        // --count: run the exits untimed and print only their number. bench/instructions.sh counts
        // instructions this way, so the harness's own timing and median sort are not in the figure.
        bool count = a.Has("count");
        Prejit.ExitPath();
        bool aot = !System.Runtime.CompilerServices.RuntimeFeature.IsDynamicCodeSupported;
        Console.WriteLine($"copra exitbench: {(aot ? "NativeAOT" : "JIT")}, TSC {Tsc.Hz / 1e9:F3} GHz{(Tsc.IsHardware ? "" : " (Stopwatch)")}, {exits:N0} exits per rig after {warmMs} ms of warm-up");
        Console.WriteLine("| exit | whole cycle median (ns) | whole cycle median (cycles) | kernel-only median (cycles) |");
        Console.WriteLine("|---|---:|---:|---:|");
        var whole = new long[exits];
        foreach (var flavor in flavors)
        {
            using var rig = new ExitRig(flavor);
            var warm = System.Diagnostics.Stopwatch.StartNew();
            while (warm.ElapsedMilliseconds < warmMs) rig.StepOneExit();
            var stats = rig.Kernel.Stats;
            stats.ResetSamples();
            if (count)
            {
                for (int i = 0; i < exits; i++) rig.StepOneExit();
                rig.Check();
                Console.WriteLine($"| {flavor} | {exits:N0} exits (untimed) | | |");
                continue;
            }
            for (int i = 0; i < exits; i++)
            {
                ulong t0 = Tsc.Read();
                rig.StepOneExit();
                whole[i] = (long)(Tsc.Read() - t0);
            }
            rig.Check();
            var kind = flavor switch
            {
                ExitFlavor.MmioRead => ExitKind.MmioRead, ExitFlavor.MmioWrite => ExitKind.MmioWrite,
                ExitFlavor.PortOut => ExitKind.PortOut, _ => ExitKind.Forwarded,
            };
            double wholeTicks = ExitStats.Median(whole);
            double cycles = Tsc.IsHardware ? wholeTicks : wholeTicks * 2.6e9 / Tsc.Hz;
            double kernelCycles = Tsc.IsHardware ? stats.MeasuredMedian(kind) : stats.MeasuredMedian(kind) * 2.6e9 / Tsc.Hz;
            Console.WriteLine($"| {flavor} | {Tsc.ToNanoseconds(wholeTicks):N0} | {cycles:N0} | {kernelCycles:N0} |");
        }
        return 0;
    }
}

using Copra.Hot.Timing;
using Copra.Kernel.Exit;
using Copra.Kernel.Run;

namespace Copra.Kernel;

/// <summary>
/// <c>copra exitbench [--exits N] [--warm-ms M]</c>: the exit-path suite's four rigs (MMIO read, MMIO
/// write, port, forwarded) timed inside the <c>copra</c> binary itself, so the same code can be
/// measured as shipped (NativeAOT) and under the JIT. Per exit: the whole cycle (TSC around one
/// driver step sequence) and the kernel-only segments (ExitStats). Measured only; nothing modelled.
/// </summary>
public static class ExitBenchCommand
{
    public static int Run(string[] args)
    {
        var a = new CliArgs(args);
        a.RejectUnknown("exits", "warm-ms");
        int exits = (int)a.GetLong("exits", 20_000);
        int warmMs = (int)a.GetLong("warm-ms", 1500);
        if (exits < 1 || warmMs < 0) throw new CliException("--exits must be positive, --warm-ms not negative");
        Prejit.ExitPath();
        bool aot = !System.Runtime.CompilerServices.RuntimeFeature.IsDynamicCodeSupported;
        Console.WriteLine($"copra exitbench: {(aot ? "NativeAOT" : "JIT")}, {Tsc.Describe()}, {exits:N0} exits per rig after {warmMs} ms of warm-up");
        // Cycles only of an invariant hardware TSC (rate measured at start-up); otherwise nanoseconds throughout.
        Console.WriteLine($"| exit | whole cycle median (ns) | whole cycle median ({Tsc.Unit}) | kernel-only median ({Tsc.Unit}) |");
        Console.WriteLine("|---|---:|---:|---:|");
        var whole = new long[exits];
        foreach (var flavor in Enum.GetValues<ExitFlavor>())
        {
            using var rig = new ExitRig(flavor);
            var warm = System.Diagnostics.Stopwatch.StartNew();
            while (warm.ElapsedMilliseconds < warmMs) rig.StepOneExit();
            var stats = rig.Kernel.Stats;
            stats.ResetSamples();
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
            double cycles = Tsc.ToReportUnits(wholeTicks);
            double kernelCycles = Tsc.ToReportUnits(stats.MeasuredMedian(kind));
            Console.WriteLine($"| {flavor} | {Tsc.ToNanoseconds(wholeTicks):N0} | {cycles:N0} | {kernelCycles:N0} |");
        }
        return 0;
    }
}

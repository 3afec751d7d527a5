using Copra.Hot.Timing;
using Copra.Kernel.Backends;
using Copra.Kernel.Exit;
using Copra.Kernel.Kvm;
using Copra.Kernel.Run;

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

    public static int Run(string[] args)
    {
        var a = new CliArgs(args);
        a.RejectUnknown("exits");
        int n = (int)a.GetLong("exits", 20000);
        if (n < 100) throw new CliException("--exits must be at least 100");
        if (!KvmSystem.IsAvailable(out string why)) { Console.Error.WriteLine($"copra: kvmbench needs /dev/kvm: {why}"); return 3; }
        var rows = Measure(n);
        Console.WriteLine($"copra kvmbench: {n} accesses each, medians in ns (TSC {(Tsc.IsHardware ? "hardware" : "emulated")}, {Tsc.Hz / 1e9:F2} GHz)");
        Console.WriteLine($"{"access",-10} {"backend cycle",14} {"of it KVM_RUN",14} {"kernel code",12} {"bare loop",10} {"ratio",7}");
        foreach (var r in rows)
            Console.WriteLine($"{r.Kind,-10} {r.BackendCycleNs,14:N0} {r.BackendKvmRunNs,14:N0} {r.KernelNs,12:N0} {r.BareNs,10:N0} {r.Ratio,7:F2}");
        return 0;
    }

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

using Copra.Hot.Timing;
using Copra.Kernel.Backends;
using Copra.Kernel.Exit;
using Copra.Kernel.Kvm;
using Copra.Kernel.Run;

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

    public static int Run(string[] args)
    {
        var a = new CliArgs(args);
        a.RejectUnknown("exits");
        int n = (int)a.GetLong("exits", 20000);
        if (n < 100) throw new CliException("--exits must be at least 100");
        var host = HostVirtualization.Probe();
        if (!KvmSystem.IsAvailable(out string why)) { Console.Error.WriteLine($"copra: kvmbench needs /dev/kvm: {why} ({host.Describe()})"); return 3; }
        Console.WriteLine($"copra kvmbench: {n} accesses per side per round, {Rounds} interleaved rounds (bare, Copra, ...), same guest loop on both sides");
        Console.WriteLine(host.Describe());
        Console.WriteLine(Tsc.Describe() + "; figures are full cycles per access (KVM_RUN start to next KVM_RUN start), ns");
        var rows = Measure(n, (kind, i, r) =>
            Console.WriteLine($"  {kind,-9} round {i + 1}: bare {r.BareNs,9:N0}  Copra {r.CopraNs,9:N0}  (kernel code {r.KernelNs,7:N0})  ratio {r.Ratio,5:F2}"));
        Console.WriteLine($"{"access",-10} {"bare median",12} {"Copra median",13} {"kernel code",12} {"Copra/bare",11} {"spread",13}");
        foreach (var r in rows)
            Console.WriteLine($"{r.Kind,-10} {r.Bare,12:N0} {r.Copra,13:N0} {r.Kernel,12:N0} {r.Ratio,11:F2} {$"{r.RatioMin:F2}-{r.RatioMax:F2}",13}");
        return 0;
    }

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

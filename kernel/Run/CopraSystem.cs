using Copra.Abi;
using Copra.Cold;
using Copra.Hot.Guest;
using Copra.Kernel.Backends;
using Copra.Kernel.Core;
using Copra.Kernel.Machine;
using Copra.User.Programs;

namespace Copra.Kernel.Run;

/// <summary>A process as the process-tree printout shows it.</summary>
public sealed record ProcessView(int Pid, int? Parent, string Path, string State, IReadOnlyList<(uint Handle, string Object)> Handles);

/// <summary>
/// The whole system for one scenario: a kernel with its VMs, the replay guests built into memory,
/// the standard programs installed, /init started. <see cref="Run"/> drives it to the end.
/// </summary>
public sealed class CopraSystem : IDisposable
{
    public const ulong FirstVmBase = 8UL << 20;

    public CopraSystem(Scenario sc, bool keepTrace = false, Func<Core.Kernel, IReadOnlyList<VmLayout>, Exit.IGuestBackend>? backend = null)
    {
        Scenario = sc;
        var specs = new List<VmSpec>();
        ulong at = FirstVmBase;
        foreach (var v in sc.Vms) { specs.Add(new VmSpec(v.Vcpus, at, (ulong)v.MemoryMb << 20)); at += (ulong)v.MemoryMb << 20; }
        var cost = CostModel.Parse(sc.Platform);
        cost = ApplyOverrides(cost, sc.Costs);
        Kernel = new Core.Kernel(new KernelConfig
        {
            Cpus = sc.Cpus, Platform = cost.Platform, Seed = sc.Seed, MemoryBytes = at + (2UL << 20),
            Vms = specs, Cost = cost, KeepTrace = keepTrace,
        });
        Layouts = specs.Select((s, i) => new VmLayout(s.MemoryBase, s.MemoryLength, sc.Vms[i].Uart, sc.Vms[i].TestDevice)).ToList();
        Kernel.Backend = backend is not null ? backend(Kernel, Layouts) : BuildReplay();
        Kernel.Install(Paths.Init, () => new Init());
        Kernel.Install(Paths.Vmm, () => new Vmm());
        Kernel.Install(Paths.Uart, () => new Uart16550());
        Kernel.Install(Paths.TestDevice, () => new TestDevice());
        for (int i = 0; i < sc.Vms.Count; i++)
        {
            var conf = new VmmConfig(sc.Vms[i].Uart, sc.Vms[i].TestDevice, sc.Vms[i].IrqVector, sc.Unhandled == "reinject");
            Kernel.Fs.MkDirIfMissing("/etc");
            new FileObject(Kernel.Fs, Kernel.Fs.OpenFile($"/etc/vm{i + 1}.conf", true, true), OpenMode.Write).Write(System.Text.Encoding.UTF8.GetBytes(conf.Serialize()));
        }
        Kernel.OnFirstExit = () => BootTree = ProcessTree();
    }

    static CostModel ApplyOverrides(CostModel c, IReadOnlyDictionary<string, long> o)
    {
        foreach (var (k, v) in o)
        {
            if (v < 0) throw new CliException($"cost '{k}' must not be negative");
            c = k switch
            {
                "exit" => c with { ExitCycles = v },
                "tdcall" => c with { TdcallCycles = v },
                "forward" => c with { ForwardCycles = v },
                "syscall" => c with { SyscallCycles = v },
                "wake" => c with { CrossCpuWakeCycles = v },
                _ => throw new CliException($"unknown cost '{k}' (exit, tdcall, forward, syscall, wake)"),
            };
        }
        return c;
    }

    public Scenario Scenario { get; }
    public Core.Kernel Kernel { get; }
    public IReadOnlyList<VmLayout> Layouts { get; }
    public ReplayBackend? Replay => Kernel.Backend as ReplayBackend;
    public KvmBackend? Kvm => Kernel.Backend as KvmBackend;
    public IReadOnlyList<ProcessView>? BootTree { get; private set; }

    ReplayBackend BuildReplay()
    {
        var programs = new List<ReplayProgram>();
        for (int i = 0; i < Scenario.Vms.Count; i++)
        {
            var vm = Kernel.Vms[i];
            var wb = new WorkloadBuilder(Kernel.Memory, Layouts[i]);
            for (int v = 0; v < vm.VcpuCount; v++)
            {
                var prog = wb.Build(Scenario.Workload, v);
                programs.Add(prog);
                int g = vm.VcpuBase + v;
                wb.InitialState(prog.EntryRip, v).ApplyTo(Kernel.State, g);
                Kernel.State.OnEntry(g);   // the platform loaded this state; it is not the kernel's to pay for
            }
        }
        var totals = (Kernel.State.TotalTdReads, Kernel.State.TotalTdWrites);
        Kernel.StateBaseline = totals;
        return new ReplayBackend(Kernel.State, programs);
    }

    /// <summary>Boots /init and runs the driver until the system is quiescent (or the limit).</summary>
    public DriverResult Run(long maxSteps = 200_000_000, TimeSpan? parallelLimit = null, Action<Core.Kernel>? progress = null)
    {
        Kernel.Spawn(Paths.Init, null, 0);
        if (Scenario.Driver == "parallel") return Kernel.RunParallel(parallelLimit ?? TimeSpan.FromMinutes(5));
        long steps = 0;
        while (true)
        {
            var r = Kernel.RunDeterministic(Math.Min(1_000_000, maxSteps - steps));
            steps += r.Steps;
            progress?.Invoke(Kernel);
            if (r.Quiescent || steps >= maxSteps) return new DriverResult(steps, r.Quiescent);
        }
    }

    /// <summary>The guest's console: what the UART models printed.</summary>
    public string GuestConsole => string.Concat(Kernel.Processes.Where(p => p.Path == Paths.Uart).Select(p => Kernel.ConsoleOf(p.Pid)));

    public IReadOnlyList<ProcessView> ProcessTree() =>
        Kernel.Processes.Select(p => new ProcessView(p.Pid, p.Parent?.Pid, p.Path, p.Exited ? $"exited ({p.ExitReason})" : "running",
            p.Handles.Snapshot().Select(h => (h.Handle, h.Obj.Describe())).ToList())).ToList();

    public void Dispose() => Kernel.Dispose();
}

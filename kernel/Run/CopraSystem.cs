using Copra.Abi;
using Copra.Cold;
using Copra.Hot.Guest;
using Copra.Kernel.Backends;
using Copra.Kernel.Core;
using Copra.Kernel.Machine;
using Copra.User.Programs;
using Copra.Hot.Exit;

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

    public CopraSystem(Scenario sc, bool keepTrace = false, Func<Core.Kernel, IReadOnlyList<VmLayout>, Exit.IGuestBackend>? backend = null, FaultSpec? faults = null, int sampleCapacity = ExitStats.SampleCapacity, bool hashTrace = true)
    {
        Scenario = sc;
        Faults = faults ?? new FaultSpec();
        var specs = new List<VmSpec>();
        ulong at = FirstVmBase;
        foreach (var v in sc.Vms) { specs.Add(new VmSpec(v.Vcpus, at, (ulong)v.MemoryMb << 20)); at += (ulong)v.MemoryMb << 20; }
        var cost = CostModel.Parse(sc.Platform);
        cost = ApplyOverrides(cost, sc.Costs);
        Kernel = new Core.Kernel(new KernelConfig
        {
            Cpus = sc.Cpus, Platform = cost.Platform, Seed = sc.Seed, MemoryBytes = at + (2UL << 20),
            Vms = specs, Cost = cost, KeepTrace = keepTrace, SampleCapacity = sampleCapacity, TimeEvery = sc.TimeEvery, HashTrace = hashTrace,
        });
        Layouts = specs.Select((s, i) => new VmLayout(s.MemoryBase, s.MemoryLength, sc.Vms[i].Uart, sc.Vms[i].TestDevice)).ToList();
        Kernel.Backend = backend is not null ? backend(Kernel, Layouts) : BuildReplay();
        Kernel.Install(Paths.Init, () => new Init());
        Kernel.Install(Paths.Vmm, () => new Vmm());
        var f = Faults;
        // Device faults hit the first VM's models only, so the other VMs show what "untouched" means.
        int uarts = 0, devices = 0;
        Kernel.Install(Paths.Uart, () => new Uart16550 { SilentFrom = f.DeviceSilentFrom > 0 && uarts++ == 0 ? f.DeviceSilentFrom : -1 });
        Kernel.Install(Paths.TestDevice, () => new TestDevice { CrashAt = f.DeviceCrashAt > 0 && devices++ == 0 ? f.DeviceCrashAt : -1 });
        Kernel.Host.FailRate = f.HostFailRate;
        if (f.RogueCalls > 0) Kernel.Install(RoguePath, () => new Rogue(f.RogueCalls, sc.Seed));
        for (int i = 0; i < sc.Vms.Count; i++)
        {
            var conf = new VmmConfig(sc.Vms[i].Uart, sc.Vms[i].TestDevice, sc.Vms[i].IrqVector, sc.Unhandled == "reinject", sc.VmmStateFields, sc.VmmBatch);
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

    public const string RoguePath = "/bin/rogue";
    public Scenario Scenario { get; }
    public FaultSpec Faults { get; }
    /// <summary>Times the harness, as the VMM's watchdog, stopped a VM whose vCPU waited on a silent device.</summary>
    public int WatchdogStops { get; private set; }
    public long InjectedPageFaultPages, InjectedUndecodable;
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
            var spec = Faults.HostilePageTables && i == 0 ? Scenario.Workload with { HostileForms = true } : Scenario.Workload;
            for (int v = 0; v < vm.VcpuCount; v++)
            {
                var prog = wb.Build(spec, v);
                programs.Add(prog);
                InjectGuestFaults(wb, prog, v, vm.VcpuCount);
                int g = vm.VcpuBase + v;
                wb.InitialState(prog.EntryRip, v).ApplyTo(Kernel.State, g);
                Kernel.State.OnEntry(g);   // the platform loaded this state; it is not the kernel's to pay for
            }
        }
        var totals = (Kernel.State.TotalTdReads, Kernel.State.TotalTdWrites);
        Kernel.StateBaseline = totals;
        return new ReplayBackend(Kernel.State, programs);
    }

    /// <summary>Hostile page tables and undecodable bytes, planted in the guest before it runs.</summary>
    void InjectGuestFaults(WorkloadBuilder wb, ReplayProgram prog, int vcpu, int vcpus)
    {
        if (Faults.HostilePageTables && vcpu == vcpus - 1 && prog.LoopEnd > prog.LoopStart)
        {
            // The page holding the loop body becomes not-present: every fetch from it must become a #PF.
            ulong rip = prog.Steps[prog.LoopStart].Rip;
            ulong pte = wb.Tables.EntryAddress(rip, 1);
            wb.Memory.WriteU64(pte, wb.Memory.ReadU64(pte) & ~1UL);
            InjectedPageFaultPages++;
        }
        if (Faults.Undecodable && vcpu == 0)
        {
            var step = prog.Steps.FirstOrDefault(s => s.Text.Contains("host scratch")) ?? prog.Steps[prog.LoopStart];
            wb.Memory.WriteU8(step.Rip, 0x0F);
            wb.Memory.WriteU8(step.Rip + 1, 0x0B);   // UD2
            InjectedUndecodable++;
        }
    }

    /// <summary>Boots /init and runs the driver until the system is quiescent (or the limit).</summary>
    public DriverResult Run(long maxSteps = 200_000_000, TimeSpan? parallelLimit = null, Action<Core.Kernel>? progress = null, CancellationToken stop = default)
    {
        Kernel.Spawn(Paths.Init, null, 0);
        if (Faults.RogueCalls > 0) Kernel.Spawn(RoguePath, null, Kernel.Cpus.Length - 1);
        long steps = 0;
        // A chunk of 250,000 steps, about 600,000 exits of the default run (~0.5 s): a stop request and the progress
        // display are answered between chunks.
        const long ChunkSteps = 250_000;
        while (true)
        {
            var r = Scenario.Driver == "parallel"
                ? Kernel.RunParallel(parallelLimit ?? TimeSpan.FromMinutes(5))
                : Kernel.RunDeterministic(Math.Min(ChunkSteps, maxSteps - steps));
            steps += r.Steps;
            progress?.Invoke(Kernel);
            if (stop.IsCancellationRequested) return new DriverResult(steps, false);   // Ctrl-C: stop between chunks, state intact
            // Idle with a vCPU stuck on a silent device: the VMM's watchdog would fire now.
            if (r.Quiescent && Kernel.StopStuckVms() > 0) { WatchdogStops++; continue; }
            if (r.Quiescent || steps >= maxSteps || Scenario.Driver == "parallel") return new DriverResult(steps, r.Quiescent);
        }
    }

    /// <summary>The guest's console: what the UART models printed.</summary>
    public string GuestConsole => string.Concat(Kernel.Processes.Where(p => p.Path == Paths.Uart).Select(p => Kernel.ConsoleOf(p.Pid)));

    public IReadOnlyList<ProcessView> ProcessTree() =>
        Kernel.Processes.Select(p => new ProcessView(p.Pid, p.Parent?.Pid, p.Path, p.Exited ? $"exited ({p.ExitReason})" : "running",
            p.Handles.Snapshot().Select(h => (h.Handle, h.Obj.Describe())).ToList())).ToList();

    /// <summary>What was injected and what the system did about each fault.</summary>
    public IReadOnlyList<FaultOutcome> FaultReport()
    {
        var k = Kernel;
        var st = k.Stats;
        var list = new List<FaultOutcome>();
        var procs = k.Processes;
        if (Faults.DeviceCrashAt > 0)
        {
            var dev = procs.FirstOrDefault(p => p.Path == Paths.TestDevice);
            bool crashed = dev?.ExitReason?.StartsWith("crash") == true;
            list.Add(new("device-crash", crashed ? 1 : 0,
                $"test device {(crashed ? dev!.ExitReason : "did not reach the crash point")}; {st.DevicesLost} access(es) answered all-ones, vCPUs went on, later accesses to its range forwarded to the host",
                !crashed || st.DevicesLost > 0 || st.Forwarded > 0));
        }
        if (Faults.DeviceSilentFrom > 0)
            list.Add(new("device-silence", WatchdogStops, $"UART silent from access {Faults.DeviceSilentFrom}; watchdog stopped {WatchdogStops} VM(s); {st.Aborted} access(es) aborted; other CPUs kept running", true));
        if (Faults.HostFailRate > 0)
            list.Add(new("host-fail", k.Host.Failures, $"{k.Host.Failures} of {k.Host.Requests} forwards failed; the guest saw all-ones for reads, writes dropped; counted {st.ForwardFailures}", st.ForwardFailures == k.Host.Failures));
        if (Faults.HostilePageTables)
        {
            long pf = Replay?.ExceptionsByVector[14] ?? 0;
            list.Add(new("hostile-pt", InjectedPageFaultPages, $"{pf} #PF injected into the guest (fetch from a not-present page), kernel kept running", pf > 0 || InjectedPageFaultPages == 0));
        }
        if (Faults.Undecodable)
        {
            long ud = Replay?.ExceptionsByVector[6] ?? 0;
            list.Add(new("undecodable", InjectedUndecodable, $"{ud} #UD injected for UD2 at an exiting RIP", ud > 0));
        }
        if (Faults.RogueCalls > 0)
        {
            var rogue = procs.FirstOrDefault(p => p.Path == RoguePath);
            string said = rogue is null ? "" : k.ConsoleOf(rogue.Pid).Trim();
            list.Add(new("rogue", Faults.RogueCalls, $"{said}; kernel internal errors {k.InternalErrors}", k.InternalErrors == 0 && said.Contains(" 0 undefined")));
        }
        return list;
    }

    public void Dispose() => Kernel.Dispose();
}

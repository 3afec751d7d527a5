using System.Runtime.CompilerServices;
using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Hot.State;
using Copra.Kernel.Backends;
using Copra.Kernel.Exit;
using Copra.Kernel.Machine;

namespace Copra.Kernel.Core;

/// <summary>
/// The kernel's side of the exit path. The stages themselves, in exit order, are hot/Exit/ExitPipeline.cs (take the
/// record, read the mode, fetch, decode, resolve the address, find the owner, deliver, complete, write back, re-enter),
/// specialised over <see cref="KernelExitHost"/>, the struct through which they reach what only the kernel has. Here:
/// entering the guest (<see cref="RunGuest"/>), the tracers' decision once per exit, the run page of the exits the
/// VMM handles, and putting a vCPU back on its CPU. Delivery to a device model and its answer are Kernel.Devices.cs.
/// </summary>
public sealed partial class Kernel
{
    public IGuestBackend? Backend
    {
        get => _backend;
        set { _backend = value; _timedBackend = value as IHardwareTimedBackend; _replay = value as ReplayBackend; UpdateHooks(); }
    }
    IGuestBackend? _backend;
    ReplayBackend? _replay;   // the replay backend called directly (a sealed class): no interface dispatch per exit
    IHardwareTimedBackend? _timedBackend;   // asked once when the backend is set, not by a type test per exit
    public InstructionFetcher Fetcher => _pipe.Fetcher;
    /// <summary>The exit path's per-vCPU instruction state (read by tests and tools; the vCPU's CPU owns each row).</summary>
    public ref readonly InFlight ExitInFlight => ref _pipe.InFlight;
    public ExitStats Stats { get; private set; } = null!;
    /// <summary>The modelled host behind forwarded exits.</summary>
    public ModelledHost Host { get; } = new();

    /// <summary>
    /// Follows exits from outside the stages (<c>copra trace</c> narrates one): asked once per exit whether to follow
    /// it (<see cref="IExitTracer.Follow"/>); the stages of a followed exit report to it, and their text is built only
    /// then. Null on every normal run.
    /// </summary>
    public IExitTracer? Tracer { get => _tracer; set { _tracer = value; UpdateHooks(); } }
    IExitTracer? _tracer;
    /// <summary>The display records' tracer (<see cref="DisplayMarks"/>) when the run keeps its trace (--trace), else null.</summary>
    IExitTracer? _marks;

    /// <summary>
    /// Something beyond the exit itself asks to see each exit: an <see cref="OnExitTaken"/> hook, a tracer or the display
    /// marks, or a backend that times its runs. Kept by their setters, so the exit's header tests this one field and,
    /// when it is false (every normal run), skips the three questions it stands for (~20 instructions per exit).
    /// </summary>
    internal bool ExitHooked { get; private set; }
    void UpdateHooks() => ExitHooked = _onExitTaken is not null || _tracer is not null || _marks is not null || _timedBackend is not null;
    /// <summary>The lane of the CPU this host thread steps (the statistics are per CPU), or -1 outside the drivers.</summary>
    static int Here => CurrentCpu?.Index ?? -1;
    /// <summary>The narrating tracer when vCPU <paramref name="v"/>'s exit is followed, else null (a stage's one test).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    IExitTracer? Followed(int v) => (_f.Row[v].Follow & ExitRules.FollowNarrate) != 0 ? Tracer : null;

    /// <summary>A stage boundary of vCPU <paramref name="v"/>'s exit, for the display tracer if it follows the exit (a stage's one test).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void Mark(Cpu cpu, int v, TraceKind kind, long a = 0)
    {
        if ((_f.Row[v].Follow & ExitRules.FollowMark) != 0) _marks!.Mark(cpu, cpu.Clock, kind, v, a);
    }

    /// <summary>Called once, at the first exit (the run command snapshots the process tree there).</summary>
    public Action? OnFirstExit { get; set; }
    /// <summary>Called at the start of every exit, before the kernel touches any state (<c>copra tune</c> takes its snapshots here).</summary>
    public Action<int>? OnExitTaken { get => _onExitTaken; set { _onExitTaken = value; UpdateHooks(); } }
    Action<int>? _onExitTaken;
    /// <summary>TDCALL counters after boot (the platform's loading of initial state is not the kernel's cost).</summary>
    public (long Reads, long Writes) StateBaseline { get; set; }

    /// <summary>The exit path (hot/Exit/ExitPipeline.cs), specialised over the kernel's host struct.</summary>
    ExitPipeline<KernelExitHost> _pipe = null!;
    /// <summary>The pipeline's instruction in flight, per vCPU (the device seam reads and writes its request columns).</summary>
    InFlight _f;

    /// <inheritdoc cref="ExitRules.MaxRepPerExit"/>
    public const int MaxRepPerExit = ExitRules.MaxRepPerExit;
    /// <inheritdoc cref="ExitRules.MaxLockRetries"/>
    public const int MaxLockRetries = ExitRules.MaxLockRetries;

    void InitExitPath(int vcpus)
    {
        int n = Math.Max(1, vcpus);
        Stats = new ExitStats(Config.SampleCapacity, Cpus.Length, Config.TimeEvery);
        _pipe = new ExitPipeline<KernelExitHost>(new KernelExitHost(this), n, Stats, State, _memory, Config.Platform == PlatformType.Tdp,
            Cost.ExitCycles, Cost.TdcallCycles, Cost.ForwardCycles);
        _f = _pipe.InFlight;
        _marks = Trace.Keep ? new DisplayMarks(Trace) : null;
        UpdateHooks();
        InitWide(n);
    }

    /// <summary>Drops vCPU <paramref name="v"/>'s cached translations and decodes (its CR3, mode or state was written).</summary>
    /// <summary>Drops vCPU <paramref name="v"/>'s cached translations, decodes and memo (SET_STATE and VMSA import do;
    /// a tool or test that rewrites guest state or page tables behind the kernel does too).</summary>
    public void InvalidateCaches(int v) => _pipe.InvalidateCaches(v);

    // ---- entering the guest ------------------------------------------------------------------

    internal void RunGuest(Cpu cpu, int v)
    {
        var vc = _vcpus[v];
        // The common case needs no lock: a state read as "go" is as good as one read a moment
        // earlier under the lock (a stop or a death after the check is seen at the next entry).
        if (vc.Run != VcpuRun.Runnable || vc.Waiter is null || vc.Vm.Stopped)
            lock (vc)
            {
                if (vc.Run != VcpuRun.Runnable) return;   // a stale queue entry: stopped, halted, dead
                if (vc.Waiter is null) { vc.Run = VcpuRun.Idle; return; }
                if (vc.Vm.Stopped) { ReportRunExitLocked(cpu, vc, RunExit.Stopped); return; }
            }
        var backend = _backend ?? throw new InvalidOperationException("no guest backend");
        InjectPendingIrq(vc);
        long entryTd = State.OnEntry(v);   // TDG.VP.WRs of the fields the exit dirtied (always 0 on SNP)
        if (entryTd != 0) Stats.Add(cpu.Index, Counter.TdWrites, entryTd);
        cpu.Clock += ExitCyclesNow + entryTd * TdcallCyclesNow;   // the entry's marks are made at the exit (FollowExit)

        // The backend fills the record in the vCPU's row, and the pipeline takes it from there on this CPU: an exit is
        // taken by the CPU that ran the guest, so a ring between the two would be filled and emptied on consecutive lines
        // and never cross a thread (it was removed; docs/design.md).
        ref var rec = ref _pipe.ExitSlot(v);
        if (_replay is { } replay) replay.Run(v, ref rec);   // writes the whole record
        else { rec = default; backend.Run(v, ref rec); }
        rec.Vcpu = v;
        _pipe.HandleExit(cpu.Index, v, entryTd);
    }

    /// <summary>Makes the highest pending IRQ the vCPU's pending event if it may take one now. Inlined: at every entry
    /// the common answer is the IRR's four words, all zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void InjectPendingIrq(VcpuObject vc)
    {
        if (IrqPending(vc)) InjectIrq(vc);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    void InjectIrq(VcpuObject vc)
    {
        int v = vc.Global;
        // The IRR is the kernel's own memory: look there before paying a TDG.VP.RD for the pending-event field.
        if ((State.Rflags(v) & RflagsIf) == 0 || State.PendingEvent(v) != 0) return;
        if (State.Interruptibility(v) != 0) return;   // the STI/MOV SS shadow: not before the next instruction (hot/Exit/ExitPipeline.System.cs)
        lock (vc)
        {
            for (int w = 3; w >= 0; w--)
            {
                if (vc.Irr[w] == 0) continue;
                int bit = 63 - System.Numerics.BitOperations.LeadingZeroCount(vc.Irr[w]);
                vc.Irr[w] &= ~(1UL << bit);
                vc.IrrSet--;
                State.SetPendingEvent(v, PendingEventValid | (uint)(w * 64 + bit));
                return;
            }
        }
    }

    public const ulong RflagsIf = ExitRules.RflagsIf, RflagsDf = ExitRules.RflagsDf;
    public const uint PendingEventValid = ExitRules.PendingEventValid;
    public const uint EventTypeException = ExitRules.EventTypeException, EventHasErrorCode = ExitRules.EventHasErrorCode;
    public const byte VectorDe = ExitRules.VectorDe, VectorUd = ExitRules.VectorUd, VectorGp = ExitRules.VectorGp, VectorPf = ExitRules.VectorPf,
        VectorVe = ExitRules.VectorVe, VectorVc = ExitRules.VectorVc;

    // ---- the host's part of taking an exit ----------------------------------------------------

    /// <summary>Asks the tracers whether they follow this exit; reports the entry that led to it and the exit itself to those that do.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal byte FollowExit(Cpu cpu, in ExitRecord rec, long entryTd)
    {
        int v = rec.Vcpu;
        byte follow = 0;
        long taken = Stats.Taken;   // a sum over CPUs: only computed when a tracer is set
        if (Tracer is { } narrator && narrator.Follow(v, taken)) follow |= narrator.Narrates ? ExitRules.FollowNarrate : (byte)0;
        if (_marks is { } marks && marks.Follow(v, taken))
        {
            follow |= ExitRules.FollowMark;
            // The entry's two boundaries, at the clocks they had: nothing moves the CPU's clock between entry and exit.
            marks.Mark(cpu, cpu.Clock - (Cost.ExitCycles + entryTd * Cost.TdcallCycles), TraceKind.EntryStart, v, 0);
            marks.Mark(cpu, cpu.Clock, TraceKind.GuestEnter, v, 0);
            marks.Mark(cpu, cpu.Clock, TraceKind.Exit, v, (long)rec.Reason);
        }
        if ((follow & ExitRules.FollowNarrate) != 0)
            Tracer!.Step(v, $"exit #{taken} on cpu {cpu.Index}: vcpu {v} {rec.Reason} gpa=0x{rec.Gpa:x} port=0x{rec.Port:x} size={rec.Size} flags={rec.Flags}; RIP=0x{State.Rip(v):x} ({Cost.Name} exit+entry {Cost.ExitCycles} modelled cycles)");
        return follow;
    }

    /// <summary>The tracers' one check per exit.</summary>
    internal bool Tracing
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Tracer is not null || _marks is not null;
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal long HardwareTicks(int v) => _timedBackend is { } hwb ? hwb.LastRunTicks(v) : 0;
    /// <summary>The display marks' records of a followed exit's re-injection and faults.</summary>
    internal void MarkOn(int cpu, int v, TraceKind kind, long a) { var c = Cpus[cpu]; _marks!.Mark(c, c.Clock, kind, v, a); }

    internal void FirstExitTaken() => OnFirstExit?.Invoke();

    /// <summary>An exit the VMM handles: the run page, under the vCPU's lock.</summary>
    internal void RunPageExit(int cpu, int v, RunExit why)
    {
        var vc = _vcpus[v];
        lock (vc) ReportRunExitLocked(Cpus[cpu], vc, why);
    }

    internal void KillVcpu(int v)
    {
        var vc = _vcpus[v];
        lock (vc) { vc.Run = VcpuRun.Dead; }
    }

    /// <summary>Fills the run page and wakes the vCPU's thread (on the vCPU's CPU). Caller holds the vCPU's lock.</summary>
    void ReportRunExitLocked(Cpu cpu, VcpuObject vc, RunExit why)
    {
        int v = vc.Global;
        ref var page = ref vc.Page;
        page.ExitReason = why;
        page.Rip = State.Rip(v);
        page.Sequence++;
        page.Flags = (State.Rflags(v) & RflagsIf) != 0 ? RunPage.FlagInterruptsEnabled : 0;
        if (why == RunExit.Cpuid) { page.CpuidLeaf = (uint)State.Gpr(v, 0); page.CpuidSubleaf = (uint)State.Gpr(v, 1); }
        if (why is RunExit.MsrRead or RunExit.MsrWrite)
        {
            page.MsrIndex = (uint)State.Gpr(v, 1);
            page.MsrValue = why == RunExit.MsrWrite ? (uint)State.Gpr(v, 0) | State.Gpr(v, 2) << 32 : 0;
        }
        vc.PendingRunExit = why;
        if (vc.Run != VcpuRun.Dead) vc.Run = VcpuRun.Idle;
        Stats.Add(cpu.Index, Counter.ToVmm);
        Trace.Add(cpu, TraceKind.RunPageExit, v, (long)why);
        var w = vc.Waiter;
        vc.Waiter = null;
        if (w is not null) WakeThread(w, (long)why, vc.Cpu);
    }

    /// <summary>The exit is over: the vCPU goes back on its CPU unless it is dead or idle.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Reenter(int v)
    {
        var vc = VcpuAt(v);
        // Runnable already (the common case: RAM, the host, or a device that answered) needs no write
        // and so no lock; anything else takes the lock as before.
        var run = vc.Run;
        if (run is VcpuRun.Dead or VcpuRun.Idle) return;
        if (run != VcpuRun.Runnable)
            lock (vc)
            {
                if (vc.Run is VcpuRun.Dead or VcpuRun.Idle) return;
                vc.Run = VcpuRun.Runnable;
            }
        QueueVcpu(vc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]   // at the end of every exit (Reenter) and on a wake
    void QueueVcpu(VcpuObject vc)
    {
        var here = CurrentCpu;
        if (here is not null && here.Index == vc.Cpu) here.EnqueueVcpuLocal(vc.Global);
        else { Stats.Add(here?.Index ?? -1, Counter.CrossCpuWakes); Cpus[vc.Cpu].Post(new CpuMessage(CpuMessageKind.RunVcpu, vc.Global)); }
    }
}

using System.Runtime.CompilerServices;
using Copra.Abi;
using Copra.Hot.Decode;
using Copra.Hot.Emulate;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Hot.State;
using Copra.Hot.Timing;
using Copra.Kernel.Exit;
using Copra.Kernel.Machine;

namespace Copra.Kernel.Core;

/// <summary>
/// The exit path. Per MMIO/IOIO exit: take the record the backend filled, read the mode and
/// RIP from the state store, fetch through the guest's page tables (per-vCPU code-page cache),
/// decode, then run the instruction as a sequence of elements. An element is at most one read
/// followed by at most one write; each side is guest RAM (done at once), a device model (delivered
/// through its event area; the element resumes when the model answers) or the host (forwarded,
/// answered at once). String forms repeat the element with REP and DF; the last element advances
/// RIP and the vCPU re-enters.
///
/// Per-vCPU state of an instruction in progress is struct-of-arrays indexed by the global vCPU
/// index. Everything here runs on the CPU the vCPU is bound to, except a completion signalled
/// from another CPU, which touches only a stalled vCPU and hands it back through the CPU's inbox.
/// No allocation in steady state.
/// </summary>
public sealed partial class Kernel
{
    public IGuestBackend? Backend
    {
        get => _backend;
        set { _backend = value; _timedBackend = value as IHardwareTimedBackend; }
    }
    IGuestBackend? _backend;
    IHardwareTimedBackend? _timedBackend;   // asked once when the backend is set, not by a type test per exit
    bool _tdx;                              // TDG.VP.RD/WR are charged (the state store counts nothing on SNP)
    public InstructionFetcher Fetcher { get; private set; } = null!;
    public ExitStats Stats { get; private set; } = null!;
    /// <summary>The modelled host behind forwarded exits.</summary>
    public ModelledHost Host { get; } = new();


    /// <summary>
    /// Follows exits from outside the stages (<c>copra trace</c> narrates one): asked once per exit whether to follow
    /// it (<see cref="IExitTracer.Follow"/>); the stages of a followed exit report to it, and their text is built only
    /// then. Null on every normal run.
    /// </summary>
    public IExitTracer? Tracer { get; set; }
    /// <summary>The display records' tracer (<see cref="DisplayMarks"/>) when the run keeps its trace (--trace), else null.</summary>
    IExitTracer? _marks;
    const byte FollowNarrate = 1, FollowMark = 2;   // InFlight.Follow bits: Tracer narrates this exit, _marks records it
    int _firstExit;
    /// <summary>The lane of the CPU this host thread steps (the statistics are per CPU), or -1 outside the drivers.</summary>
    static int Here => CurrentCpu?.Index ?? -1;
    /// <summary>The narrating tracer when vCPU <paramref name="v"/>'s exit is followed, else null (a stage's one test).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    IExitTracer? Followed(int v) => (_f.Follow[v] & FollowNarrate) != 0 ? Tracer : null;

    /// <summary>A stage boundary of vCPU <paramref name="v"/>'s exit, for the display tracer if it follows the exit (a stage's one test).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void Mark(Cpu cpu, int v, TraceKind kind, long a = 0)
    {
        if ((_f.Follow[v] & FollowMark) != 0) _marks!.Mark(cpu, cpu.Clock, kind, v, a);
    }

    /// <summary>Called once, at the first exit (the run command snapshots the process tree there).</summary>
    public Action? OnFirstExit { get; set; }
    /// <summary>Called at the start of every exit, before the kernel touches any state (<c>copra tune</c> takes its snapshots here).</summary>
    public Action<int>? OnExitTaken { get; set; }
    /// <summary>TDCALL counters after boot (the platform's loading of initial state is not the kernel's cost).</summary>
    public (long Reads, long Writes) StateBaseline { get; set; }

    /// <summary>The instruction in flight, per vCPU (struct-of-arrays; the vCPU's CPU owns its row).</summary>
    InFlight _f = new(1);

    /// <summary>
    /// REP string elements one exit may run before the kernel re-enters the guest at the same RIP (the CPU's own
    /// interruptible REP: rSI/rDI/rCX carry the progress and the next exit resumes). Bounds the time one exit holds a CPU.
    /// </summary>
    public const int MaxRepPerExit = 256;

    void InitExitPath(int vcpus)
    {
        int n = Math.Max(1, vcpus);
        Stats = new ExitStats(Config.SampleCapacity, Cpus.Length);
        Fetcher = new InstructionFetcher(n);
        _f = new InFlight(n);
        _dataTlb = new DataTlb(n);
        _decodeCache = new DecodeCache(n);
        _marks = Trace.Keep ? new DisplayMarks(Trace) : null;
        _tdx = State.Cost == StateAccessCost.Tdx;
        InitWide(n);
    }

    /// <summary>The data side's TLB and the recent decodes, per vCPU (hot/Guest/DataTlb.cs, hot/Decode/DecodeCache.cs).</summary>
    DataTlb _dataTlb = null!;
    DecodeCache _decodeCache = null!;

    /// <summary>Drops vCPU <paramref name="v"/>'s cached translations and decodes (its CR3, mode or state was written).</summary>
    void InvalidateCaches(int v)
    {
        Fetcher.Invalidate(v);
        _dataTlb.Invalidate(v);
        _decodeCache.Invalidate(v);
    }

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
        if (Backend is null) throw new InvalidOperationException("no guest backend");
        InjectPendingIrq(vc);
        long entryTd = State.OnEntry(v);   // TDG.VP.WRs of the fields the exit dirtied (always 0 on SNP)
        if (entryTd != 0) Stats.Add(cpu.Index, Counter.TdWrites, entryTd);
        cpu.Clock += Cost.ExitCycles + entryTd * Cost.TdcallCycles;   // the entry's marks are made at the exit (FollowExit)

        ExitRecord rec = default;
        Backend.Run(v, ref rec);
        rec.Vcpu = v;
        // The record goes straight to the handler on this CPU: an exit is taken by the CPU that ran
        // the guest, so a ring between the two would be filled and emptied on consecutive lines and
        // never cross a thread (it was removed; docs/design.md).
        HandleExit(cpu, rec, entryTd);
    }

    void InjectPendingIrq(VcpuObject vc)
    {
        int v = vc.Global;
        // The IRR is the kernel's own memory: look there before paying a TDG.VP.RD for the pending-event field.
        if ((State.Rflags(v) & RflagsIf) == 0 || !IrqPending(vc) || State.PendingEvent(v) != 0) return;
        if (State.Interruptibility(v) != 0) return;   // the STI/MOV SS shadow: not before the next instruction (Kernel.System.cs)
        lock (vc)
        {
            for (int w = 3; w >= 0; w--)
            {
                if (vc.Irr[w] == 0) continue;
                int bit = 63 - System.Numerics.BitOperations.LeadingZeroCount(vc.Irr[w]);
                vc.Irr[w] &= ~(1UL << bit);
                State.SetPendingEvent(v, PendingEventValid | (uint)(w * 64 + bit));
                return;
            }
        }
    }

    public const ulong RflagsIf = 1 << 9, RflagsDf = 1 << 10;
    public const uint PendingEventValid = 1u << 31;
    public const uint EventTypeException = 3 << 8, EventHasErrorCode = 1 << 11;
    public const byte VectorDe = 0, VectorUd = 6, VectorGp = 13, VectorPf = 14, VectorVe = 20, VectorVc = 29;

    // ---- taking an exit ----------------------------------------------------------------------

    void HandleExit(Cpu cpu, in ExitRecord rec, long entryTd)
    {
        OnExitTaken?.Invoke(rec.Vcpu);
        long t0 = (long)Tsc.Read();
        int v = rec.Vcpu;
        State.OnExit(v);   // TDG.VP.RDs since the last charge (the entry's, e.g. the interrupt check) go to this exit
        Stats.Add(cpu.Index, Counter.Taken);
        if (_firstExit == 0 && Interlocked.Exchange(ref _firstExit, 1) == 0) OnFirstExit?.Invoke();
        // The tracers' one check per exit; the stages then test the vCPU's flag.
        _f.Follow[v] = Tracer is null && _marks is null ? (byte)0 : FollowExit(cpu, in rec, entryTd);
        _f.Measured[v] = 0;
        _f.SegStart[v] = t0;
        _f.Modelled[v] = Cost.ExitCycles + entryTd * Cost.TdcallCycles;
        _f.Hardware[v] = _timedBackend is { } hwb ? hwb.LastRunTicks(v) : 0;
        _f.Exit[v] = rec;
        if (_f.Shadow[v]) EndShadow(v);
        _f.HardwareCompletes[v] = (rec.Flags & ExitFlags.HardwareCompletes) != 0;
        var vc = _vcpus[v];
        switch (rec.Reason)
        {
            case ExitReason.Mmio:
            case ExitReason.Io:
                if (rec.Reason == ExitReason.Mmio) Stats.Add(cpu.Index, Counter.Mmio); else Stats.Add(cpu.Index, Counter.Io);
                BeginAccess(cpu, v);
                break;
            case ExitReason.Hlt:
                Stats.Add(cpu.Index, Counter.Hlt);
                RunPageExit(cpu, vc, RunExit.Hlt, ExitKind.Hlt);
                break;
            case ExitReason.Cpuid:
                Stats.Add(cpu.Index, Counter.Cpuid);
                RunPageExit(cpu, vc, RunExit.Cpuid, ExitKind.Cpuid);
                break;
            case ExitReason.MsrRead:
            case ExitReason.MsrWrite:
                Stats.Add(cpu.Index, Counter.Msr);
                RunPageExit(cpu, vc, rec.Reason == ExitReason.MsrRead ? RunExit.MsrRead : RunExit.MsrWrite, ExitKind.Msr);
                break;
            default:
                Stats.Add(cpu.Index, Counter.Shutdown);
                lock (vc) { vc.Run = VcpuRun.Dead; }
                RunPageExit(cpu, vc, RunExit.Shutdown, ExitKind.Other);
                break;
        }
        EndSegment(cpu, v);
    }

    /// <summary>Asks the tracers whether they follow this exit; reports the entry that led to it and the exit itself to those that do.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    byte FollowExit(Cpu cpu, in ExitRecord rec, long entryTd)
    {
        int v = rec.Vcpu;
        byte follow = 0;
        long taken = Stats.Taken;   // a sum over CPUs: only computed when a tracer is set
        if (Tracer is { } narrator && narrator.Follow(v, taken)) follow |= narrator.Narrates ? FollowNarrate : (byte)0;
        if (_marks is { } marks && marks.Follow(v, taken))
        {
            follow |= FollowMark;
            // The entry's two boundaries, at the clocks they had: nothing moves the CPU's clock between entry and exit.
            marks.Mark(cpu, cpu.Clock - (Cost.ExitCycles + entryTd * Cost.TdcallCycles), TraceKind.EntryStart, v, 0);
            marks.Mark(cpu, cpu.Clock, TraceKind.GuestEnter, v, 0);
            marks.Mark(cpu, cpu.Clock, TraceKind.Exit, v, (long)rec.Reason);
        }
        if ((follow & FollowNarrate) != 0)
            Tracer!.Step(v, $"exit #{taken} on cpu {cpu.Index}: vcpu {v} {rec.Reason} gpa=0x{rec.Gpa:x} port=0x{rec.Port:x} size={rec.Size} flags={rec.Flags}; RIP=0x{State.Rip(v):x} ({Cost.Name} exit+entry {Cost.ExitCycles} modelled cycles)");
        return follow;
    }

    /// <summary>
    /// Charges the TDG.VP.RDs the state store counted for this vCPU since the last charge to the
    /// exit's modelled cost. Called before a sample is recorded and at the end of each kernel segment,
    /// so every read lands in the exit that made it.
    /// </summary>
    void ChargeTdReads(Cpu cpu, int v)
    {
        long now = State.TdReads[v];
        long reads = now - _f.TdRead0[v];
        if (reads == 0) return;
        _f.TdRead0[v] = now;
        Stats.Add(cpu.Index, Counter.TdReads, reads);
        _f.Modelled[v] += reads * Cost.TdcallCycles;
    }

    /// <summary>A kernel segment of this exit ends: its TDG.VP.RDs are charged (TDX only) and its time added to the measured.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void EndSegment(Cpu cpu, int v)
    {
        if (_tdx) ChargeTdReads(cpu, v);
        ref long start = ref _f.SegStart[v];
        if (start == 0) return;
        _f.Measured[v] += (long)Tsc.Read() - start;
        start = 0;
    }

    void RunPageExit(Cpu cpu, VcpuObject vc, RunExit why, ExitKind kind)
    {
        lock (vc) ReportRunExitLocked(cpu, vc, why);
        EndSegment(cpu, vc.Global);
        Stats.Record(cpu.Index, kind, _f.Measured[vc.Global], _f.Modelled[vc.Global], _f.Hardware[vc.Global]);
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

    /// <summary>Decode the instruction behind an MMIO/IOIO exit and start its first element.</summary>
    void BeginAccess(Cpu cpu, int v)
    {
        ref readonly var rec = ref _f.Exit[v];
        ulong cr0 = State.Cr0(v), cr4 = State.Cr4(v), efer = State.Efer(v);
        var pmode = PagingMode.From(cr0, cr4, efer);
        ushort csAttr = State.SegAttributes(v, StateField.Cs);
        bool pe = (cr0 & 1) != 0;
        var cpuMode = SegmentAttributes.CodeBitness(csAttr, pmode.LongMode, pe) switch { 64 => CpuMode.Bits64, 32 => CpuMode.Bits32, _ => CpuMode.Bits16 };
        ulong cr3 = State.Cr3(v);
        _f.Mode[v] = pmode;
        _f.Cr3[v] = cr3;
        ulong csBase = cpuMode == CpuMode.Bits64 ? 0 : State.SegBase(v, StateField.Cs);
        ulong rip = State.Rip(v);

        Span<byte> buffer = stackalloc byte[DecodeCache.BufferLength];   // zeroed: the byte past the fetch is part of the cache key
        Span<byte> bytes = buffer[..InstructionFetcher.MaxInstructionLength];
        bool cached = Fetcher.IsCached(v);
        // The fetch is checked at the guest's CPL (U/S at CPL 3, CR4.SMEP below it); the element checks use the same context.
        bool hw = _f.HardwareCompletes[v];
        if (!hw) _f.Fault[v] = FaultContextOf(v, cpuMode, cr0, cr4, csAttr, in rec);
        int fetchCpl = hw ? (csAttr & SegmentAttributes.DplMask) >> SegmentAttributes.DplShift : _f.Fault[v].Cpl;
        var fr = Fetcher.Fetch(v, _memory, pmode, cr3, csBase + rip, bytes, out int got, out var fault, SupervisorProtection.Fetch(fetchCpl, cr4));
        if (Followed(v) is { } t) NarrateFront(t, v, cr0, cr4, efer, csAttr, cpuMode, pmode, cr3, csBase + rip, cached, fr, bytes[..got]);
        if (got == 0) { InjectWalkFault(cpu, v, fault); return; }

        // Decoded in place into the vCPU's row (no 60-byte copy per exit).
        ref var d = ref _f.Acc[v];
        if (!_decodeCache.TryDecode(v, csBase + rip, buffer, got, cpuMode, out d))
        {
            if (d.Error == RefuseReason.Truncated && !fault.IsOk) { InjectWalkFault(cpu, v, fault); return; }
            Stats.Add(cpu.Index, Counter.IcedFallbacks);
            if (!IcedFallback.TryDecode(bytes[..got], cpuMode, out d))
            {
                // The fetch's fault only when the decoder needed the missing bytes: an opcode already undefined is #UD.
                if (d.Error == RefuseReason.Truncated && !fault.IsOk) { InjectWalkFault(cpu, v, fault); return; }
                InjectException(cpu, v, VectorUd, null);
                return;
            }
        }
        _ = fr;
        if (Followed(v) is { } td) NarrateDecode(td, v, in d);
        bool isPort = d.Kind is AccessKind.In or AccessKind.Out or AccessKind.Ins or AccessKind.Outs;
        if (isPort != (rec.Reason == ExitReason.Io) || (isPort && !d.PortIsDx && d.Port != rec.Port && rec.Port != 0))
        {
            Stats.Add(cpu.Index, Counter.DecodeMismatch);
            InjectException(cpu, v, VectorGp, 0);
            return;
        }
        _f.SegBase[v] = SegmentBaseFor(v, cpuMode, d.SrcSegment);   // MOVS/OUTS read through the (overridable) source segment
        _f.EsBase[v] = cpuMode == CpuMode.Bits64 ? 0 : State.SegBase(v, StateField.Es);
        _f.FirstElement[v] = true;
        _f.RepElements[v] = 0;
        _f.LockRetries[v] = 0;
        // x87/MMX forms: #UD/#NM/#MF from CR0 and FSW rank above the alignment #GP (Kernel.X87.cs).
        if (!hw && IsX87Form(d.Kind) && X87Precheck(cpu, v, cr0)) return;
        // MOVAPS/APD/DQA, MOVNT*, CMPXCHG16B (operand) and MOVDIR64B (destination): #GP(0) when misaligned.
        if (d.Align != 0 && !Executor.Aligned(in d, LinearOf(v, write: d.Kind == AccessKind.Movdir64b))) { InjectException(cpu, v, VectorGp, 0); return; }
        // The hardware finishes this instruction (KVM): the second, short pipeline (Kernel.Hardware.cs) takes it from here.
        if (hw) { HardwareElement(cpu, v); return; }
        _f.CheckElements[v] = _f.Fault[v].ChecksNeeded(in d);
        if (IsFx(d.Kind) && FxBegin(cpu, v)) return;   // every piece checked before the first

        // REP with a zero count does nothing but advance RIP.
        if (d.Rep && IsString(d.Kind) && Masked(State.Gpr(v, 1), d.AddressSize) == 0)
        {
            FinishInstruction(cpu, v);
            return;
        }
        StartElement(cpu, v);
    }

    ulong SegmentBaseFor(int v, CpuMode mode, byte seg)
    {
        if (mode == CpuMode.Bits64 && seg != StateField.Fs && seg != StateField.Gs) return 0;
        return State.SegBase(v, seg);
    }

    static bool IsString(AccessKind k) => IcedForms.IsString(k);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong Masked(ulong value, byte size) => size switch { 2 => value & 0xFFFF, 4 => value & 0xFFFF_FFFF, _ => value };

    // ---- elements ----------------------------------------------------------------------------

    /// <summary>Where an element reads from or writes to.</summary>
    enum Side : byte { None, Memory, Port }

    static (Side read, Side write) SidesOf(in DecodedAccess d) => d.Kind switch
    {
        AccessKind.Bt => (Side.Memory, d.Op == AluOp.None ? Side.None : Side.Memory),
        AccessKind.Read or AccessKind.ReadZx or AccessKind.ReadSx or AccessKind.Cmov or AccessKind.Lods or AccessKind.Scas
            or AccessKind.Cmps or AccessKind.ReadVec => (Side.Memory, Side.None),
        AccessKind.Setcc or AccessKind.Pop => (Side.None, Side.Memory),
        AccessKind.Push or AccessKind.Call or AccessKind.Jmp => (Side.Memory, Side.None),
        AccessKind.SysLoad or AccessKind.SegLoad or AccessKind.FarJmp or AccessKind.FarCall or AccessKind.LoadFarPtr => (Side.Memory, Side.None),
        AccessKind.SysStore => (Side.None, Side.Memory),
        AccessKind.Alu or AccessKind.Xchg => (Side.Memory, Side.Memory),
        AccessKind.Write or AccessKind.WriteImm or AccessKind.Stos or AccessKind.WriteVec => (Side.None, Side.Memory),
        AccessKind.Movs or AccessKind.Movdir64b => (Side.Memory, Side.Memory),
        AccessKind.Fnstcw or AccessKind.Fnstsw or AccessKind.MmxWrite or AccessKind.Fxsave => (Side.None, Side.Memory),
        AccessKind.MmxRead or AccessKind.Fxrstor => (Side.Memory, Side.None),
        AccessKind.In => (Side.Port, Side.None),
        AccessKind.Out => (Side.None, Side.Port),
        AccessKind.Ins => (Side.Port, Side.Memory),
        AccessKind.Outs => (Side.Memory, Side.Port),
        _ => (Side.None, Side.None),
    };

    /// <summary>Linear address of the memory side: string forms use rSI (source) / rDI (destination).</summary>
    ulong LinearOf(int v, bool write)
    {
        ref readonly var d = ref _f.Acc[v];
        switch (d.Kind)
        {
            case AccessKind.Movs:
                return write ? _f.EsBase[v] + Masked(State.Gpr(v, 7), d.AddressSize) : _f.SegBase[v] + Masked(State.Gpr(v, 6), d.AddressSize);
            case AccessKind.Stos:
            case AccessKind.Ins:
            case AccessKind.Scas:
                return _f.EsBase[v] + Masked(State.Gpr(v, 7), d.AddressSize);
            case AccessKind.Outs:
            case AccessKind.Lods:
                return _f.SegBase[v] + Masked(State.Gpr(v, 6), d.AddressSize);
            case AccessKind.Cmps:   // the rSI element first, then (Read2) the ES:rDI one
                return _f.Phase[v] == ElementPhase.Read2 ? _f.EsBase[v] + Masked(State.Gpr(v, 7), d.AddressSize) : _f.SegBase[v] + Masked(State.Gpr(v, 6), d.AddressSize);
            case AccessKind.Movdir64b when write:
                return _f.EsBase[v] + Masked(State.Gpr(v, d.Reg), d.AddressSize);
            case AccessKind.Pop:
            {
                // Why: the CPU computes a POP destination with rSP already incremented (StackOps.PopDestinationOffset).
                ulong off = StackOps.PopDestinationOffset(in d, EffectiveAddress.Offset(in d, State.Gprs(v), State.Rip(v) + d.Length));
                ulong linear = _f.SegBase[v] + off;
                return d.Mode == CpuMode.Bits64 ? linear : linear & 0xFFFF_FFFFUL;
            }
            default:
            {
                ulong next = State.Rip(v) + d.Length;
                return EffectiveAddress.Compute(d, State.Gprs(v), next, _f.SegBase[v]);
            }
        }
    }

    void StartElement(Cpu cpu, int v)
    {
        var (read, _) = SidesOf(in _f.Acc[v]);
        _f.Phase[v] = ElementPhase.Read;
        // SGDT..LMSW, MOV Sreg, far JMP/CALL: privilege and mode first (Kernel.System.cs).
        if (IcedForms.IsSystem(_f.Acc[v].Kind) && !SystemBegin(cpu, v)) return;
        if (_f.CheckElements[v] && ElementFaults(cpu, v)) return;
        // PUSH/POP/CALL/JMP m: the stack slot before the device side (Kernel.Stack.cs); POP's value comes from it.
        if (StackOps.IsStackForm(_f.Acc[v].Kind) && !StackBegin(cpu, v)) return;
        // Far CALL: its two stack slots are translated before the device is asked for the pointer, as PUSH's is.
        if (_f.Acc[v].Kind == AccessKind.FarCall && !StackTranslate(cpu, v, write: true, FarCallSlot(v))) return;
        if (read == Side.None) { AfterRead(cpu, v, _f.Acc[v].Kind == AccessKind.Pop ? _f.StackValue[v] : 0); return; }
        Access(cpu, v, read, write: false, 0);
    }

    /// <summary>Performs one side of an element: RAM now, a device model later, or the host now.</summary>
    void Access(Cpu cpu, int v, Side side, bool write, ulong data)
    {
        ref readonly var d = ref _f.Acc[v];
        ref readonly var rec = ref _f.Exit[v];
        var vm = _vcpus[v].Vm;
        uint size = d.Size;
        if (side == Side.Port) { PortSide(cpu, v, write, data); return; }

        ulong gpa;
        {
            ulong linear = LinearOf(v, write);
            if (CanonicalFaults(cpu, v, linear)) return;
            // The exit's first element carries the GPA the hardware faulted on: a cached translation must agree with it.
            ulong witness = rec.Reason == ExitReason.Mmio && _f.FirstElement[v] ? rec.Gpa & ~(ulong)Page.Mask : DataTlb.NoWitness;
            var walk = _dataTlb.Translate(v, _memory, _f.Mode[v], _f.Cr3[v], linear, DataAccess(v, write), out gpa, witness);
            if (!walk.IsOk) { InjectWalkFault(cpu, v, walk); return; }
            if ((linear & Page.Mask) + size > Page.Size)
            {
                // Crosses a page: both halves must be RAM, contiguous or not; a device never spans pages here.
                if (!vm.IsRam(gpa, Page.Size - (gpa & Page.Mask))) { InjectException(cpu, v, VectorGp, 0); return; }
                // Why: a locked operand split over two pages is a bus lock on the CPU; here the bus lock of Kernel.Wide.cs.
                if (d.Lock && !write) { lock (s_busLock) RamSplit(cpu, v, linear, write, data); return; }
                RamSplit(cpu, v, linear, write, data);
                return;
            }
        }
        if (Followed(v) is { } t) NarrateSide(t, v, write, gpa, size, "");
        if (vm.IsRam(gpa, size))
        {
            if (size > 8 || d.Lock) { SpecialRam(cpu, v, gpa, write); return; }
            if (write) { _memory.WriteSized(gpa, (int)size, data); AfterWrite(cpu, v); }
            else AfterRead(cpu, v, _memory.ReadSized(gpa, (int)size));
            return;
        }
        MmioSide(cpu, v, gpa, size, write, data);
    }

    /// <summary>A port side: the VM's port table names the owner (a device model), or nobody (forward or re-inject).</summary>
    void PortSide(Cpu cpu, int v, bool write, ulong data)
    {
        ref readonly var d = ref _f.Acc[v];
        ushort port = d.PortIsDx ? (ushort)State.Gpr(v, 2) : d.Port;
        int owner = _vcpus[v].Vm.Ports.Lookup(port);
        if (owner == 0) { Unowned(cpu, v, EventKind.Ioio, port, write, data); return; }
        Request(cpu, v, owner, EventKind.Ioio, port, write, data);
    }

    /// <summary>A memory side that is not RAM: the VM's MMIO ranges name the owner, or nobody; an access over two ranges is #GP.</summary>
    void MmioSide(Cpu cpu, int v, ulong gpa, uint size, bool write, ulong data)
    {
        int mmioOwner = _vcpus[v].Vm.Mmio.Lookup(v, gpa, size, out _, out bool straddles);
        if (straddles) { InjectException(cpu, v, VectorGp, 0); return; }
        if (mmioOwner == 0) { Unowned(cpu, v, EventKind.Mmio, gpa, write, data); return; }
        Request(cpu, v, mmioOwner, EventKind.Mmio, gpa, write, data);
    }

    /// <summary>Bytes this element moves: the instruction's, or under KVM the 8-byte fragment of a wide access the exit reports.</summary>
    uint ElementSize(int v) => _f.HardwareCompletes[v] && _f.Acc[v].Size > 8 ? _f.Exit[v].Size : _f.Acc[v].Size;

    void RamSplit(Cpu cpu, int v, ulong linear, bool write, ulong data)
    {
        uint size = _f.Acc[v].Size;
        ulong value = 0;
        Span<byte> wide = write ? WideWrite(v) : WideRead(v);
        for (uint i = 0; i < size; i++)
        {
            var walk = PageWalker.Translate(_memory, _f.Mode[v], _f.Cr3[v], linear + i, DataAccess(v, write), out ulong g);
            if (!walk.IsOk) { InjectWalkFault(cpu, v, walk); return; }
            if (!_vcpus[v].Vm.IsRam(g, 1)) { InjectException(cpu, v, VectorGp, 0); return; }
            if (size > 8) { if (write) _memory.WriteU8(g, wide[(int)i]); else wide[(int)i] = _memory.ReadU8(g); }
            else if (write) _memory.WriteU8(g, (byte)(data >> (int)(8 * i)));
            else value |= (ulong)_memory.ReadU8(g) << (int)(8 * i);
        }
        if (write) AfterWrite(cpu, v); else AfterRead(cpu, v, value);
    }

    /// <summary>An access nobody registered: forward to the host (default) or re-inject #VC/#VE.</summary>
    void Unowned(Cpu cpu, int v, EventKind kind, ulong addr, bool write, ulong data)
    {
        var vm = _vcpus[v].Vm;
        // Re-injection hands the whole instruction to the guest, so only before anything of it was done.
        if (vm.Unhandled == VmCtl.UnhandledReinject && _f.FirstElement[v])
        {
            byte vector = Config.Platform == PlatformType.Tdp ? VectorVe : VectorVc;
            Stats.Add(cpu.Index, Counter.Reinjected);
            Mark(cpu, v, TraceKind.Reinject, (long)addr);
            State.SetPendingEvent(v, PendingEventValid | EventTypeException | vector);
            EndExit(cpu, v, ExitKind.Reinjected, countCompleted: false);
            return;
        }
        _f.Modelled[v] += Cost.ForwardCycles;
        Followed(v)?.Step(v, $"nobody registered {kind} 0x{addr:x}: forwarded to the host (+{Cost.ForwardCycles} modelled cycles)");
        Trace.Add(cpu, TraceKind.Forward, v, (long)addr);
        bool ok = _f.Acc[v].Size > 8
            ? Host.AccessWide(addr, write ? WideWrite(v)[.._f.Acc[v].Size] : WideRead(v)[.._f.Acc[v].Size], write, out ulong value)
            : Host.Access(kind, addr, _f.Acc[v].Size, write, data, out value);
        if (!ok) Stats.Add(cpu.Index, Counter.ForwardFailures);   // the guest sees all-ones for a read, a dropped write
        _f.Forwarded[v] = true;
        if (write) AfterWrite(cpu, v); else AfterRead(cpu, v, ok ? value : AllOnes(_f.Acc[v].Size));
    }

    static ulong AllOnes(uint size) => size >= 8 ? ulong.MaxValue : (1UL << (int)(size * 8)) - 1;

    /// <summary>The read side is done (value in hand): compute, then the write side.</summary>
    void AfterRead(Cpu cpu, int v, ulong value)
    {
        // The seam every read side returns through (RAM, the host, a device's answer): a hardware-completed exit's
        // side is its whole part of the instruction (Kernel.Hardware.cs).
        if (_f.HardwareCompletes[v]) { HardwareDone(cpu, v, value, write: false); return; }
        ref readonly var d = ref _f.Acc[v];
        _f.Value[v] = value;
        // The common read (MOV/MOVZX/MOVSX/IN into a register): the executor's load, without the general path's copies.
        if (d.Kind is AccessKind.Read or AccessKind.ReadZx or AccessKind.ReadSx or AccessKind.In)
        {
            WriteBack.ApplyRead(in d, State.Gprs(v), value);
            if (Followed(v) is { } t) NarrateValue(t, v, value, false, 0);
            AfterWrite(cpu, v);
            return;
        }
        var (_, writeSide) = SidesOf(in d);
        bool write = writeSide != Side.None;
        // CMPS reads twice per element: the rSI side first, then the ES:rDI side, then the flags.
        if (d.Kind == AccessKind.Cmps && _f.Phase[v] == ElementPhase.Read)
        {
            _f.CmpsSource[v] = value;
            _f.Phase[v] = ElementPhase.Read2;
            Access(cpu, v, Side.Memory, write: false, 0);
            return;
        }
        // The executor is the one state update for every form (hot/Emulate/Executor.cs), through Compute.
        if (!Compute(cpu, v, value, writeSide == Side.Memory, out bool w, out ulong toWrite)) return;
        if (StackOps.IsStackForm(d.Kind) && !StackAfterRead(cpu, v, value)) return;
        if (writeSide == Side.Memory) write = w;
        if (Followed(v) is { } tv) NarrateValue(tv, v, value, write, toWrite);
        if (!write) { AfterWrite(cpu, v); return; }
        _f.Phase[v] = ElementPhase.Write;
        _f.WriteValue[v] = toWrite;
        Access(cpu, v, writeSide, write: true, toWrite);
    }

    /// <summary>The element is done: step string registers, repeat, or finish.</summary>
    void AfterWrite(Cpu cpu, int v)
    {
        if (_f.HardwareCompletes[v]) { HardwareDone(cpu, v, 0, write: true); return; }
        ref readonly var d = ref _f.Acc[v];
        _f.Phase[v] = ElementPhase.None;
        _f.FirstElement[v] = false;
        CommitPending(v);
        ReleaseHeld(v);
        if (IsFx(d.Kind)) { FxNextPiece(cpu, v); return; }
        if (IsString(d.Kind) && !Executor.StringStep(in d, State.Gprs(v), State.Rflags(v)))
        {
            // Why: with TF the CPU traps after every REP iteration, RIP still at the instruction (the count resumes).
            if (_f.Fault[v].SingleStep) { SingleStepTrap(cpu, v); EndExit(cpu, v, KindOf(d, _f.Exit[v]), countCompleted: true); return; }
            // Why: a REP run longer than MaxRepPerExit ends this exit with RIP unchanged; the guest re-executes the
            // instruction, exits again and the count resumes where it stopped, so one exit never runs unbounded.
            if (++_f.RepElements[v] < MaxRepPerExit) { StartElement(cpu, v); return; }
            Stats.Add(cpu.Index, Counter.RepResumed);
            EndExit(cpu, v, KindOf(d, _f.Exit[v]), countCompleted: true);
            return;
        }
        FinishInstruction(cpu, v);
    }

    /// <summary>Adds to a register at the address size: 16-bit keeps the upper bits, 32-bit zeroes them.</summary>
    static ulong Advance(ulong reg, long delta, byte size) => size switch
    {
        2 => (reg & ~0xFFFFUL) | (ushort)((long)reg + delta),
        4 => (uint)((long)reg + delta),
        _ => (ulong)((long)reg + delta),
    };

    void FinishInstruction(Cpu cpu, int v)
    {
        State.Rip(v) = NextRip(v);
        bool shadow = _f.Acc[v].Kind is AccessKind.SegLoad or AccessKind.LoadFarPtr && StartsShadow(v);
        if (_f.Fault[v].SingleStep && !shadow) SingleStepTrap(cpu, v);
        EndInstruction(cpu, v);
    }

    /// <summary>The instruction is done (by the kernel or, for a hardware-completed exit, about to be by the hardware): count it and end the exit.</summary>
    void EndInstruction(Cpu cpu, int v)
    {
        bool forwarded = _f.Forwarded[v];
        _f.Forwarded[v] = false;
        if (forwarded) Stats.Add(cpu.Index, Counter.Forwarded);
        EndExit(cpu, v, forwarded ? ExitKind.Forwarded : KindOf(_f.Acc[v], _f.Exit[v]), countCompleted: !forwarded);
    }

    static ExitKind KindOf(in DecodedAccess d, in ExitRecord rec) => d.Kind switch
    {
        AccessKind.In => ExitKind.PortIn,
        AccessKind.Out => ExitKind.PortOut,
        AccessKind.Ins or AccessKind.Outs => ExitKind.PortString,
        AccessKind.Movs or AccessKind.Stos or AccessKind.Lods or AccessKind.Scas or AccessKind.Cmps => ExitKind.MmioString,
        AccessKind.Alu or AccessKind.Xchg or AccessKind.Bt => ExitKind.MmioAlu,
        AccessKind.Write or AccessKind.WriteImm or AccessKind.Setcc or AccessKind.WriteVec or AccessKind.Movdir64b or AccessKind.Pop
            or AccessKind.SysStore or AccessKind.Fnstcw or AccessKind.Fnstsw or AccessKind.MmxWrite or AccessKind.Fxsave => ExitKind.MmioWrite,
        _ => ExitKind.MmioRead,
    };

    /// <summary>The exit is over: record it and put the vCPU back on its CPU.</summary>
    void EndExit(Cpu cpu, int v, ExitKind kind, bool countCompleted)
    {
        _f.Pend[v] = false;   // a fault or a give-up after the read: nothing of the instruction is committed
        ReleaseHeld(v);
        if (countCompleted) Stats.Add(cpu.Index, Counter.Completed);
        EndSegment(cpu, v);
        Stats.Record(cpu.Index, kind, _f.Measured[v], _f.Modelled[v], _f.Hardware[v]);
        if (Followed(v) is { } t) NarrateDone(t, v, kind);
        Trace.AddOn(cpu, TraceKind.Complete, v, (long)kind);
        var vc = _vcpus[v];
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

    void QueueVcpu(VcpuObject vc)
    {
        var here = CurrentCpu;
        if (here is not null && here.Index == vc.Cpu) here.EnqueueVcpuLocal(vc.Global);
        else { Stats.Add(here?.Index ?? -1, Counter.CrossCpuWakes); Cpus[vc.Cpu].Post(new CpuMessage(CpuMessageKind.RunVcpu, vc.Global)); }
    }

    void InjectWalkFault(Cpu cpu, int v, in WalkResult fault)
    {
        if (fault.Status == WalkStatus.GeneralProtection) { InjectException(cpu, v, VectorGp, 0); return; }
        State.SetCr2(v, fault.Address);
        InjectException(cpu, v, VectorPf, fault.ErrorCode);
    }

    /// <summary>A defined guest-visible outcome for what the kernel cannot or will not do: the exception is pending at the next entry.</summary>
    void InjectException(Cpu cpu, int v, byte vector, uint? errorCode)
    {
        Stats.Add(cpu.Index, Counter.Faulted);
        Mark(cpu, v, TraceKind.Fault, vector);
        // EVENTINJ format (as SVM's): error code in bits 63:32, valid 31, has-error 11, type 10:8, vector 7:0.
        State.SetPendingEvent(v, (ulong)(errorCode ?? 0) << 32 | PendingEventValid | EventTypeException | (errorCode.HasValue ? EventHasErrorCode : 0) | vector);
        _f.Forwarded[v] = false;
        EndExit(cpu, v, ExitKind.Faulted, countCompleted: false);
    }

    // ---- narration (copra trace): the text of a followed exit's stages, built here so the stages carry no string
    // building (its locals would be zeroed on every call, followed or not) ---------------------------------------

    [MethodImpl(MethodImplOptions.NoInlining)]
    void NarrateFront(IExitTracer t, int v, ulong cr0, ulong cr4, ulong efer, ushort csAttr, CpuMode cpuMode, PagingMode pmode, ulong cr3,
        ulong linear, bool cached, FetchResult fr, ReadOnlySpan<byte> bytes)
    {
        t.Step(v, $"mode: CR0=0x{cr0:x} CR4=0x{cr4:x} EFER=0x{efer:x} CS.attr=0x{csAttr:x} -> {cpuMode}, paging {pmode}, CR3=0x{cr3:x}{(Config.Platform == PlatformType.Tdp ? $" (TDX: {State.TdReads[v] - _f.TdRead0[v]} TDG.VP.RD so far in this exit)" : "")}");
        t.Step(v, $"fetch: linear 0x{linear:x}, code-page cache {(cached ? "hit" : "miss (page walk)")}, {fr}, {bytes.Length} bytes: {Convert.ToHexString(bytes).ToLowerInvariant()}");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    static void NarrateDecode(IExitTracer t, int v, in DecodedAccess d) =>
        t.Step(v, $"decode: len {d.Length} kind {d.Kind} size {d.Size} reg {d.Reg}{(d.RegHigh8 ? "(high8)" : "")} imm {(d.HasImm ? $"0x{d.Imm:x}" : "-")} op {d.Op} rep {d.Rep} base {d.Base} index {d.Index} scale {d.Scale} disp 0x{d.Disp:x} seg {d.Segment} asz {d.AddressSize}{(d.PortIsDx ? " port=dx" : d.Kind is AccessKind.In or AccessKind.Out ? $" port=0x{d.Port:x}" : "")}");

    [MethodImpl(MethodImplOptions.NoInlining)]
    void NarrateSide(IExitTracer t, int v, bool write, ulong gpa, uint size, string whose) =>
        t.Step(v, $"{(write ? "write" : "read")} side{whose}: GPA 0x{gpa:x} ({(_vcpus[v].Vm.IsRam(gpa, size) ? "the VM's RAM" : "not RAM: device lookup")})");

    [MethodImpl(MethodImplOptions.NoInlining)]
    void NarrateValue(IExitTracer t, int v, ulong value, bool write, ulong toWrite) =>
        t.Step(v, $"value 0x{value:x} in hand; write-back done, RAX now 0x{State.Gpr(v, 0):x}, RFLAGS 0x{State.Rflags(v):x}{(write ? $"; next: write 0x{toWrite:x}" : "")}");

    [MethodImpl(MethodImplOptions.NoInlining)]
    void NarrateDone(IExitTracer t, int v, ExitKind kind) =>
        t.Step(v, $"done as {kind}: RIP=0x{State.Rip(v):x}; kernel software {_f.Measured[v]} TSC ticks (measured, and inflated here by the narration itself), platform {_f.Modelled[v]} cycles (modelled); vCPU back on cpu {_vcpus[v].Cpu}");
}

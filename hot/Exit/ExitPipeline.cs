using System.Runtime.CompilerServices;
using Copra.Abi;
using Copra.Hot.Decode;
using Copra.Hot.Emulate;
using Copra.Hot.Guest;
using Copra.Hot.State;
using Copra.Hot.Timing;

namespace Copra.Hot.Exit;

/// <summary>The guest-visible constants and limits of the exit path, and the arithmetic the kernel's side shares with it.</summary>
public static class ExitRules
{
    public const ulong RflagsIf = 1 << 9, RflagsDf = 1 << 10;
    public const uint PendingEventValid = 1u << 31;
    public const uint EventTypeException = 3 << 8, EventHasErrorCode = 1 << 11;
    public const byte VectorDe = 0, VectorUd = 6, VectorGp = 13, VectorPf = 14, VectorVe = 20, VectorVc = 29;

    /// <summary>
    /// REP string elements one exit may run before the kernel re-enters the guest at the same RIP (the CPU's own
    /// interruptible REP: rSI/rDI/rCX carry the progress and the next exit resumes). Bounds the time one exit holds a CPU.
    /// </summary>
    public const int MaxRepPerExit = 256;
    /// <summary>Compare-and-write attempts against a device per exit before the instruction is left to the guest to re-run.</summary>
    public const int MaxLockRetries = 8;

    /// <summary><see cref="InFlightRow.Follow"/> bits: the narrating tracer follows this exit, the display marks record it.</summary>
    public const byte FollowNarrate = 1, FollowMark = 2;

    /// <summary>All ones in the low <paramref name="size"/> bytes (what a read of nothing returns).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong AllOnes(uint size) => size >= 8 ? ulong.MaxValue : (1UL << (int)(size * 8)) - 1;

    /// <summary>The kind an exit of this form is counted under (the per-kind tables, the trace's Complete record).</summary>
    public static ExitKind KindOfForm(AccessKind kind) => kind switch
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

    /// <summary><see cref="KindOfForm"/> for every byte an <see cref="AccessKind"/> can hold, made once. Why a table: the
    /// switch compiled to a range test and a jump table at the end of every exit (~10 instructions); this is one load.</summary>
    static readonly ExitKind[] s_kindOf = KindTable();
    static ExitKind[] KindTable()
    {
        var t = new ExitKind[256];
        for (int k = 0; k < t.Length; k++) t[k] = KindOfForm((AccessKind)k);
        return t;
    }

    /// <summary><see cref="KindOfForm"/>, by the table.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ExitKind KindOf(AccessKind kind) => Layout.Unchecked.At(s_kindOf, (byte)kind);   // 256 entries: any byte is in range

    /// <summary>A register at the address size (16, 32 or 64 bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Masked(ulong value, byte size) => size switch { 2 => value & 0xFFFF, 4 => value & 0xFFFF_FFFF, _ => value };
}

/// <summary>
/// The exit path, in the order an exit runs it. Per MMIO/IOIO exit: take the record the backend filled
/// (<see cref="HandleExit"/>), read the mode and RIP from the state store, fetch through the guest's page tables
/// (per-vCPU code-page cache), decode (<see cref="BeginAccess"/>), then run the instruction as a sequence of elements
/// (<see cref="StartElement"/>). An element is at most one read followed by at most one write; each side's address is
/// resolved and its owner found (<see cref="Access"/>, <see cref="PortSide"/>, <see cref="MmioSide"/>): guest RAM
/// (done at once), a device model (delivered by the host, <see cref="IExitHost.Request"/>; the element resumes at
/// <see cref="AfterRead"/>/<see cref="AfterWrite"/> when the model answers) or the modelled host (forwarded, answered
/// at once, <see cref="Unowned"/>). <see cref="AfterRead"/> writes back, <see cref="AfterWrite"/> repeats a string
/// form's element with REP and DF, the last element advances RIP (<see cref="FinishInstruction"/>) and the vCPU
/// re-enters (<see cref="EndExit"/>). The families the stages call sit beside this file: ExitPipeline.Faults.cs,
/// .Stack.cs, .System.cs, .X87.cs, .Wide.cs; exits the hardware completes take the second, short pipeline after the
/// decode (ExitPipeline.Hardware.cs); narration text is built in ExitPipeline.Narration.cs.
///
/// Per-vCPU state of an instruction in progress is <see cref="InFlight"/> (struct-of-arrays indexed by the global
/// vCPU index). Everything here runs on the CPU the vCPU is bound to, except a completion signalled from another CPU,
/// which the host hands back through the CPU's inbox. No allocation in steady state.
///
/// Why a generic over a struct host: the kernel's part (owner lookups, delivery, forwarding, re-entry, the trace)
/// is reached through <typeparamref name="THost"/>, and a generic instantiated over a struct is compiled per type, so
/// every host call is a direct, inlinable call (over a class or an interface it would be a virtual call per stage).
/// </summary>
public sealed partial class ExitPipeline<THost> where THost : struct, IExitHost
{
    THost _host;   // not readonly: a call on a readonly field of an unconstrained struct type would copy it first
    readonly VcpuStateStore State;
    readonly GuestMemory _memory;
    readonly bool _tdx;                     // TDG.VP.RD/WR are charged (the state store counts nothing on SNP)
    readonly bool _tdp;                     // the platform re-injects #VE (TDX) rather than #VC (SNP)
    readonly long _exitCycles, _tdcallCycles, _forwardCycles;   // the platform's modelled costs (the kernel's cost model)

    /// <param name="host">The kernel's part.</param>
    /// <param name="vcpus">vCPUs (rows of every per-vCPU table).</param>
    /// <param name="stats">The exit statistics (per CPU).</param>
    /// <param name="state">The vCPUs' architectural state.</param>
    /// <param name="memory">Guest memory (RAM sides, page walks).</param>
    /// <param name="tdp">The platform is TDX (#VE re-injection).</param>
    /// <param name="exitCycles">Modelled cycles of an exit and its entry.</param>
    /// <param name="tdcallCycles">Modelled cycles of one TDG.VP.RD/WR.</param>
    /// <param name="forwardCycles">Modelled cycles of forwarding an access to the host.</param>
    public ExitPipeline(THost host, int vcpus, ExitStats stats, VcpuStateStore state, GuestMemory memory, bool tdp,
        long exitCycles, long tdcallCycles, long forwardCycles)
    {
        int n = Math.Max(1, vcpus);
        _host = host;
        Stats = stats;
        State = state;
        _memory = memory;
        _tdp = tdp;
        _tdx = state.Cost == StateAccessCost.Tdx;
        _exitCycles = exitCycles;
        _tdcallCycles = tdcallCycles;
        _forwardCycles = forwardCycles;
        Fetcher = new InstructionFetcher(n);
        _f = new InFlight(n);
        _dataTlb = new DataTlb(n);
        _decodeCache = new DecodeCache(n);
    }

    public InstructionFetcher Fetcher { get; }
    public ExitStats Stats { get; }
    /// <summary>The instruction in flight, per vCPU (struct-of-arrays; the vCPU's CPU owns its row).</summary>
    public ref readonly InFlight InFlight => ref _f;
    readonly InFlight _f;
    int _firstExit;

    /// <summary>The narrating tracer when vCPU <paramref name="v"/>'s exit is followed, else null (a stage's one test).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    IExitNarrator? Followed(int v) => (_f.Row[v].Follow & ExitRules.FollowNarrate) != 0 ? _host.Narrator : null;

    /// <summary>The display marks record vCPU <paramref name="v"/>'s exit (a stage's one test).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    bool Marked(int v) => (_f.Row[v].Follow & ExitRules.FollowMark) != 0;

    /// <summary>The data side's TLB and the recent decodes, per vCPU (hot/Guest/DataTlb.cs, hot/Decode/DecodeCache.cs).</summary>
    readonly DataTlb _dataTlb;
    readonly DecodeCache _decodeCache;

    /// <summary>Drops vCPU <paramref name="v"/>'s cached translations and decodes (its CR3, mode or state was written).</summary>
    public void InvalidateCaches(int v)
    {
        ref var row = ref _f.Row[v];
        Fetcher.Invalidate(v);
        _f.Memo.Row(v).Clear();
        row.MemoArmed = 0;
        row.MemoHeld = 0;
        _dataTlb.Invalidate(v);
        _decodeCache.Invalidate(v);
    }

    const int MaxRepPerExit = ExitRules.MaxRepPerExit;
    const ulong RflagsIf = ExitRules.RflagsIf;
    const uint PendingEventValid = ExitRules.PendingEventValid, EventTypeException = ExitRules.EventTypeException, EventHasErrorCode = ExitRules.EventHasErrorCode;
    const byte VectorDe = ExitRules.VectorDe, VectorUd = ExitRules.VectorUd, VectorGp = ExitRules.VectorGp, VectorPf = ExitRules.VectorPf,
        VectorVe = ExitRules.VectorVe, VectorVc = ExitRules.VectorVc;

    // ---- taking an exit ----------------------------------------------------------------------

    /// <summary>
    /// vCPU <paramref name="v"/>'s exit record, for the backend to fill in place before <see cref="HandleExit"/> (the
    /// record is then in the vCPU's row without a copy). The vCPU's last exit is over when it enters the guest again, so
    /// nothing reads the old record after that.
    /// </summary>
    public ref ExitRecord ExitSlot(int v) => ref _f.Exit[v];

    /// <summary>
    /// Takes the exit the backend just reported in vCPU <paramref name="v"/>'s <see cref="ExitSlot"/> on CPU
    /// <paramref name="cpu"/> (the guest entry that led to it charged <paramref name="entryTd"/> TDG.VP.WRs) and runs it
    /// as far as it goes now: to its end, or to a device model's answer.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]   // into the kernel's RunGuest, its one caller: one frame fewer per exit (−16)
    public void HandleExit(int cpu, int v, long entryTd)
    {
        ref readonly var rec = ref _f.Exit[v];
        bool hooked = _host.Hooked;   // false on a normal run: no hook, no tracer, no timed backend
        if (hooked) _host.ExitTaken(v);
        bool tracing = hooked && _host.Tracing;   // read once: the exit's timing and its following decided on the same answer
        // Counted before the tracers' check, which numbers the exit by the count. Timed: one exit in Stats.TimeEvery, or
        // every exit while a tracer or the display marks are on.
        bool timed = Stats.TakeExitOn(cpu, CounterOf(rec.Reason), timeAll: tracing);   // cpu: a CPU's own index (the kernel's Cpu.Index)
        long t0 = timed ? (long)Tsc.Read() : 0;
        ref var row = ref _f.Row[v];
        State.OnExit(v);   // TDG.VP.RDs since the last charge (the entry's, e.g. the interrupt check) go to this exit
        if (_firstExit == 0 && Interlocked.Exchange(ref _firstExit, 1) == 0) _host.FirstExit();
        // The tracers' one check per exit; the stages then test the vCPU's flag.
        row.Follow = tracing ? _host.Follow(cpu, in rec, entryTd) : (byte)0;
        row.Measured = 0;
        row.Timed = timed;
        row.SegStart = t0;
        row.Modelled = _exitCycles + entryTd * _tdcallCycles;
        row.Hardware = hooked ? _host.HardwareTicks(v) : 0;
        if (row.Shadow) EndShadow(v);
        row.HardwareCompletes = (rec.Flags & ExitFlags.HardwareCompletes) != 0;
        // MMIO and port I/O first, by two compares: nearly every exit is one, and a switch's jump table costs more.
        if (rec.Reason is ExitReason.Mmio or ExitReason.Io)
            BeginAccess(cpu, v);
        else OtherExit(cpu, v, rec.Reason);
        EndSegment(cpu, v);
    }

    /// <summary>The counter of an exit's reason (anything unknown ends the guest: Shutdown's).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Counter CounterOf(ExitReason reason)
    {
        ReadOnlySpan<byte> counters = [(byte)Counter.Shutdown, (byte)Counter.Mmio, (byte)Counter.Io, (byte)Counter.Hlt,
            (byte)Counter.Cpuid, (byte)Counter.Msr, (byte)Counter.Msr, (byte)Counter.Shutdown];
        return (uint)reason < (uint)counters.Length ? (Counter)counters[(int)reason] : Counter.Shutdown;
    }

    /// <summary>An exit that is not MMIO or port I/O: the VMM's (HLT, CPUID, MSRs) or the guest's end.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    void OtherExit(int cpu, int v, ExitReason reason)
    {
        switch (reason)
        {
            case ExitReason.Hlt:
                RunPageExit(cpu, v, RunExit.Hlt, ExitKind.Hlt);
                break;
            case ExitReason.Cpuid:
                RunPageExit(cpu, v, RunExit.Cpuid, ExitKind.Cpuid);
                break;
            case ExitReason.MsrRead:
            case ExitReason.MsrWrite:
                RunPageExit(cpu, v, reason == ExitReason.MsrRead ? RunExit.MsrRead : RunExit.MsrWrite, ExitKind.Msr);
                break;
            default:
                _host.Kill(v);
                RunPageExit(cpu, v, RunExit.Shutdown, ExitKind.Other);
                break;
        }
    }

    /// <summary>
    /// Charges the TDG.VP.RDs the state store counted for this vCPU since the last charge to the
    /// exit's modelled cost. Called before a sample is recorded and at the end of each kernel segment,
    /// so every read lands in the exit that made it.
    /// </summary>
    void ChargeTdReads(int cpu, int v)
    {
        long now = State.TdReads[v];
        long reads = now - _f.TdRead0[v];
        if (reads == 0) return;
        _f.TdRead0[v] = now;
        Stats.Add(cpu, Counter.TdReads, reads);
        _f.Row[v].Modelled += reads * _tdcallCycles;
    }

    /// <summary>A kernel segment of this exit ends: its TDG.VP.RDs are charged (TDX only) and, for a timed exit, its time added to the measured.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void EndSegment(int cpu, int v)
    {
        ref var row = ref _f.Row[v];
        if (_tdx) ChargeTdReads(cpu, v);
        ref long start = ref row.SegStart;
        if (start == 0) return;
        row.Measured += (long)Tsc.Read() - start;
        start = 0;
    }

    /// <summary>An exit the VMM handles: the host fills the run page and wakes the vCPU's thread; the exit is recorded.</summary>
    void RunPageExit(int cpu, int v, RunExit why, ExitKind kind)
    {
        _host.RunPageExit(cpu, v, why);
        EndSegment(cpu, v);
        Record(cpu, v, kind);
    }

    /// <summary>Decode the instruction behind an MMIO/IOIO exit and start its first element.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]   // its one caller is HandleExit: one frame fewer per MMIO/IO exit
    void BeginAccess(int cpu, int v)
    {
        ref var row = ref _f.Row[v];
        // The fused stage first: a plain MOV, IN or OUT memoised at this RIP, in the same context (ExitPipeline.Plain.cs).
        row.MemoArmed = 0;
        if (ReplayPlain(cpu, v)) return;
        FullFront(cpu, v);
    }

    /// <summary>The front end's full path: the mode, the fetch, the decode, the checks, then the first element. Out of
    /// line: inlined, its locals gave every exit's frame (the memo's replay too) ~600 bytes and their spills.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    void FullFront(int cpu, int v)
    {
        ref var row = ref _f.Row[v];
        row.MemoHeld = 0;   // the columns below are about to be derived afresh
        ref readonly var rec = ref _f.Exit[v];
        State.FrontKey(v, out ulong cr0, out ulong cr4, out ulong efer, out ulong cr3, out ushort csAttr);
        var pmode = PagingMode.From(cr0, cr4, efer);
        bool pe = (cr0 & 1) != 0;
        var cpuMode = SegmentAttributes.CodeBitness(csAttr, pmode.LongMode, pe) switch { 64 => CpuMode.Bits64, 32 => CpuMode.Bits32, _ => CpuMode.Bits16 };
        _f.Mode[v] = pmode;
        row.Cr3 = cr3;
        ulong csBase = cpuMode == CpuMode.Bits64 ? 0 : State.SegBase(v, StateField.Cs);
        ulong rip = State.Rip(v);

        // The fetch is checked at the guest's CPL (U/S at CPL 3, CR4.SMEP below it); the element checks use the same context.
        bool hw = row.HardwareCompletes;
        if (!hw) _f.Fault[v] = FaultContextOf(v, cpuMode, cr0, cr4, csAttr, in rec);
        int fetchCpl = hw ? (csAttr & SegmentAttributes.DplMask) >> SegmentAttributes.DplShift : _f.Fault[v].Cpl;
        var access = SupervisorProtection.Fetch(fetchCpl, cr4);
        ulong lo = 0, hi = 0;

        // Decoded in place into the vCPU's row. The common exit takes the first test: the code-page entry hits, the
        // instruction's 16 bytes are in that page, and the decode cache holds them (no buffer, no decode). Otherwise,
        // and for a followed exit (its narration shows the fetch), the fetch into a buffer and the cache's full path.
        ref var d = ref _f.Acc[v];
        bool words = (row.Follow & ExitRules.FollowNarrate) == 0 && Fetcher.TryFetchWords(v, _memory, pmode, cr3, csBase + rip, access, out lo, out hi);
        bool cached = words && _decodeCache.TryHit(v, csBase + rip, lo, hi, cpuMode, out d);
        if (!cached && !FetchAndDecode(cpu, v, cr0, cr4, efer, csAttr, cpuMode, pmode, cr3, csBase + rip, access, words, lo, hi, ref d)) return;
        if (Followed(v) is { } td) NarrateDecode(td, v, in d);
        bool isPort = d.Kind is AccessKind.In or AccessKind.Out or AccessKind.Ins or AccessKind.Outs;
        if (isPort != (rec.Reason == ExitReason.Io) || (isPort && !d.PortIsDx && d.Port != rec.Port && rec.Port != 0))
        {
            Stats.Add(cpu, Counter.DecodeMismatch);
            InjectException(cpu, v, VectorGp, 0);
            return;
        }
        row.SegBase = SegmentBaseFor(v, cpuMode, d.SrcSegment);   // MOVS/OUTS read through the (overridable) source segment
        row.EsBase = cpuMode == CpuMode.Bits64 ? 0 : State.SegBase(v, StateField.Es);
        row.FirstElement = true;
        row.RepElements = 0;
        row.LockRetries = 0;
        // x87/MMX forms: #UD/#NM/#MF from CR0 and FSW rank above the alignment #GP (ExitPipeline.X87.cs).
        if (!hw && IsX87Form(d.Kind) && X87Precheck(cpu, v, cr0)) return;
        // MOVAPS/APD/DQA, MOVNT*, CMPXCHG16B (operand) and MOVDIR64B (destination): #GP(0) when misaligned.
        if (d.Align != 0 && !Executor.Aligned(in d, LinearOf(v, write: d.Kind == AccessKind.Movdir64b))) { InjectException(cpu, v, VectorGp, 0); return; }
        // The hardware finishes this instruction (KVM): the second, short pipeline (ExitPipeline.Hardware.cs) takes it from here.
        if (hw) { HardwareElement(cpu, v); return; }
        row.CheckElements = _f.Fault[v].ChecksNeeded(in d);
        if (IsFx(d.Kind) && FxBegin(cpu, v)) return;   // every piece checked before the first

        // REP with a zero count does nothing but advance RIP.
        if (d.Rep && IsString(d.Kind) && Masked(State.Gpr(v, 1), d.AddressSize) == 0)
        {
            FinishInstruction(cpu, v);
            return;
        }
        bool plain = d.Kind is AccessKind.Read or AccessKind.ReadZx or AccessKind.ReadSx or AccessKind.Write or AccessKind.WriteImm;
        // A plain MOV, IN or OUT, or an ALU form (MemoAlu), from the decode cache in 64-bit mode, no element check due,
        // nobody following: memoised for its next exit (from its second at one RIP; its MMIO or port side completes the
        // entry). The exit's kind agrees with the form here (the check above refused a disagreement).
        if ((plain || d.Kind is AccessKind.In or AccessKind.Out || MemoAlu(in d)) && cached && cpuMode == CpuMode.Bits64 && !row.CheckElements && row.Follow == 0)
            ArmPlain(v, in rec, rip, cr0, cr4, efer, csAttr, cr3, access, lo, hi);
        // The plain MOV load or store with no element check due (64-bit mode, no #AC, no SS operand) and no narration:
        // its one element without the general start's tests (ExitPipeline.cs PlainElement). Everything else: StartElement.
        if (plain && !row.CheckElements && (row.Follow & ExitRules.FollowNarrate) == 0)
        {
            PlainElement(cpu, v, write: d.Kind is AccessKind.Write or AccessKind.WriteImm);
            return;
        }
        StartElement(cpu, v);
    }

    /// <summary>
    /// The decode cache's full path and the Iced fallback for what the tables do not cover, after the fetch into a
    /// buffer (a code-page miss, a page end, a followed exit) or from the words <see cref="InstructionFetcher.TryFetchWords"/>
    /// read when only the decode missed (<paramref name="words"/>). False when the exit ended here (a fetch fault, #UD).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    bool FetchAndDecode(int cpu, int v, ulong cr0, ulong cr4, ulong efer, ushort csAttr, CpuMode cpuMode,
        in PagingMode pmode, ulong cr3, ulong linearRip, AccessType access, bool words, ulong lo, ulong hi, ref DecodedAccess d)
    {
        Span<byte> buffer = stackalloc byte[DecodeCache.BufferLength];
        buffer.Clear();   // zeroed (SkipLocalsInit): the byte past the fetch is part of the cache key
        Span<byte> bytes = buffer[..InstructionFetcher.MaxInstructionLength];
        FetchResult fr;
        int got;
        WalkResult fault;
        if (words)
        {
            // The code-page entry hit and the instruction's bytes are in hand (only the decode missed): what Fetch returns.
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(buffer, lo);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(buffer[8..], hi);
            (fr, got, fault) = (FetchResult.Complete, InstructionFetcher.MaxInstructionLength, WalkResult.Ok);
        }
        else
        {
            bool cached = Fetcher.IsCached(v);
            fr = Fetcher.Fetch(v, _memory, pmode, cr3, linearRip, bytes, out got, out fault, access);
            if (Followed(v) is { } t) NarrateFront(t, v, cr0, cr4, efer, csAttr, cpuMode, pmode, cr3, linearRip, cached, fr, bytes[..got]);
        }
        if (got == 0) { InjectWalkFault(cpu, v, fault); return false; }
        if (_decodeCache.TryDecode(v, linearRip, buffer, got, cpuMode, out d)) return true;
        if (d.Error == RefuseReason.Truncated && !fault.IsOk) { InjectWalkFault(cpu, v, fault); return false; }
        Stats.Add(cpu, Counter.IcedFallbacks);
        if (IcedFallback.TryDecode(bytes[..got], cpuMode, out d)) return true;
        // The fetch's fault only when the decoder needed the missing bytes: an opcode already undefined is #UD.
        if (d.Error == RefuseReason.Truncated && !fault.IsOk) { InjectWalkFault(cpu, v, fault); return false; }
        InjectException(cpu, v, VectorUd, null);
        return false;
    }

    ulong SegmentBaseFor(int v, CpuMode mode, byte seg)
    {
        if (mode == CpuMode.Bits64 && seg != StateField.Fs && seg != StateField.Gs) return 0;
        return State.SegBase(v, seg);
    }

    static bool IsString(AccessKind k) => IcedForms.IsString(k);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong Masked(ulong value, byte size) => ExitRules.Masked(value, size);

    // ---- elements ----------------------------------------------------------------------------

    /// <summary>Where an element reads from or writes to.</summary>
    enum Side : byte { None, Memory, Port }

    /// <summary>An element's sides: by the form's table (<see cref="SidesOfForm"/>); a bit test without an operation (BT)
    /// writes nothing.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static (Side read, Side write) SidesOf(in DecodedAccess d)
    {
        byte sides = Layout.Unchecked.At(s_sides, (byte)d.Kind);   // 256 entries: any byte is in range
        var write = (Side)(sides >> 2);
        if (d.Kind == AccessKind.Bt && d.Op == AluOp.None) write = Side.None;
        return ((Side)(sides & 3), write);
    }

    /// <summary><see cref="SidesOfForm"/> for every byte an <see cref="AccessKind"/> can hold (read | write &lt;&lt; 2), made
    /// once. Why a table: the switch compiled to a chain of compares on every general element (~20 instructions).</summary>
    static readonly byte[] s_sides = SidesTable();
    static byte[] SidesTable()
    {
        var t = new byte[256];
        for (int k = 0; k < t.Length; k++) { var (r, w) = SidesOfForm((AccessKind)k); t[k] = (byte)((int)r | (int)w << 2); }
        return t;
    }

    /// <summary>Where an element of each form reads from and writes to (BTS/BTR/BTC's write; BT's is dropped by <see cref="SidesOf"/>).</summary>
    static (Side read, Side write) SidesOfForm(AccessKind kind) => kind switch
    {
        AccessKind.Bt => (Side.Memory, Side.Memory),
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
        ref var row = ref _f.Row[v];
        ref readonly var d = ref _f.Acc[v];
        switch (d.Kind)
        {
            case AccessKind.Movs:
                return write ? row.EsBase + Masked(State.Gpr(v, 7), d.AddressSize) : row.SegBase + Masked(State.Gpr(v, 6), d.AddressSize);
            case AccessKind.Stos:
            case AccessKind.Ins:
            case AccessKind.Scas:
                return row.EsBase + Masked(State.Gpr(v, 7), d.AddressSize);
            case AccessKind.Outs:
            case AccessKind.Lods:
                return row.SegBase + Masked(State.Gpr(v, 6), d.AddressSize);
            case AccessKind.Cmps:   // the rSI element first, then (Read2) the ES:rDI one
                return row.Phase == ElementPhase.Read2 ? row.EsBase + Masked(State.Gpr(v, 7), d.AddressSize) : row.SegBase + Masked(State.Gpr(v, 6), d.AddressSize);
            case AccessKind.Movdir64b when write:
                return row.EsBase + Masked(State.Gpr(v, d.Reg), d.AddressSize);
            case AccessKind.Pop:
            {
                // Why: the CPU computes a POP destination with rSP already incremented (StackOps.PopDestinationOffset).
                ulong off = StackOps.PopDestinationOffset(in d, EffectiveAddress.Offset(in d, State.Gprs(v), State.Rip(v) + d.Length));
                ulong linear = row.SegBase + off;
                return d.Mode == CpuMode.Bits64 ? linear : linear & 0xFFFF_FFFFUL;
            }
            default:
            {
                ulong next = State.Rip(v) + d.Length;
                return EffectiveAddress.Compute(d, State.Gprs(v), next, row.SegBase);
            }
        }
    }

    void StartElement(int cpu, int v)
    {
        ref var row = ref _f.Row[v];
        _f.RmwGpa[v] = InFlight.NoGpa;   // no device side yet in this element
        var (read, _) = SidesOf(in _f.Acc[v]);
        row.Phase = ElementPhase.Read;
        // SGDT..LMSW, MOV Sreg, far JMP/CALL: privilege and mode first (ExitPipeline.System.cs).
        if (IcedForms.IsSystem(_f.Acc[v].Kind) && !SystemBegin(cpu, v)) return;
        if (row.CheckElements && ElementFaults(cpu, v)) return;
        // PUSH/POP/CALL/JMP m: the stack slot before the device side (ExitPipeline.Stack.cs); POP's value comes from it.
        if (StackOps.IsStackForm(_f.Acc[v].Kind) && !StackBegin(cpu, v)) return;
        // Far CALL: its two stack slots are translated before the device is asked for the pointer, as PUSH's is.
        if (_f.Acc[v].Kind == AccessKind.FarCall && !StackTranslate(cpu, v, write: true, FarCallSlot(v))) return;
        if (read == Side.None) { AfterRead(cpu, v, _f.Acc[v].Kind == AccessKind.Pop ? _f.StackValue[v] : 0); return; }
        Access(cpu, v, read, write: false, 0);
    }

    /// <summary>
    /// The one element of a plain MOV load (Read, ReadZx, ReadSx) or store (Write, WriteImm) when no element check is
    /// due and nobody narrates: what <see cref="StartElement"/> and, for a store, <see cref="AfterRead"/>'s store case do
    /// for these forms (the phase, the store's value), then the memory side at the operand's address. Why a stage of its
    /// own: it is the exit of nearly every driver's register access, and the general start's tests (system, stack,
    /// far-call, fault-check forms), the side table and the address switch are not for it.
    /// </summary>
    void PlainElement(int cpu, int v, bool write)
    {
        ref var row = ref _f.Row[v];
        ref readonly var d = ref _f.Acc[v];
        ulong data = 0;
        if (write)
        {
            row.Value = 0;
            data = WriteBack.StoreValue(in d, State.Gprs(v));
            row.WriteValue = data;
        }
        row.Phase = write ? ElementPhase.Write : ElementPhase.Read;
        MemorySide(cpu, v, EffectiveAddress.Compute(d, State.Gprs(v), State.Rip(v) + d.Length, row.SegBase), write, data);
    }

    /// <summary>Performs one side of an element: RAM now, a device model later, or the host now.</summary>
    void Access(int cpu, int v, Side side, bool write, ulong data)
    {
        if (side == Side.Port) { PortSide(cpu, v, write, data); return; }
        MemorySide(cpu, v, LinearOf(v, write), write, data);
    }

    /// <summary>A memory side at <paramref name="linear"/>: the canonical check, the walk, then RAM, a device or the host.</summary>
    void MemorySide(int cpu, int v, ulong linear, bool write, ulong data)
    {
        ref var row = ref _f.Row[v];
        ref readonly var d = ref _f.Acc[v];
        ref readonly var rec = ref _f.Exit[v];
        uint size = d.Size;
        ulong gpa;
        {
            if (CanonicalFaults(cpu, v, linear)) return;
            // The exit's first element carries the GPA the hardware faulted on: a cached translation must agree with it.
            ulong witness = rec.Reason == ExitReason.Mmio && row.FirstElement ? rec.Gpa & ~(ulong)Page.Mask : DataTlb.NoWitness;
            // A read-modify-write's read is walked as a write, as the CPU does (its #PF, W set, comes before the device is read).
            var walk = _dataTlb.Translate(v, _memory, _f.Mode[v], row.Cr3, linear, DataAccess(v, write || IsRmw(in d)), out gpa, witness);
            if (!walk.IsOk) { InjectWalkFault(cpu, v, walk); return; }
            if ((linear & Page.Mask) + size > Page.Size)
            {
                // Crosses a page: both halves must be RAM, contiguous or not; a device never spans pages here.
                if (!_host.IsRam(v, gpa, Page.Size - (gpa & Page.Mask))) { InjectException(cpu, v, VectorGp, 0); return; }
                // Why: a locked operand split over two pages is a bus lock on the CPU; here the bus lock of ExitPipeline.Wide.cs.
                if (d.Lock && !write) { lock (s_busLock) RamSplit(cpu, v, linear, write, data); return; }
                RamSplit(cpu, v, linear, write, data);
                return;
            }
        }
        if (Followed(v) is { } t) NarrateSide(t, v, write, gpa, size, "");
        if (_host.IsRam(v, gpa, size))
        {
            if (size > 8 || d.Lock) { SpecialRam(cpu, v, gpa, write); return; }
            if (write) { _memory.WriteSized(gpa, (int)size, data); AfterWrite(cpu, v); }
            else AfterRead(cpu, v, _memory.ReadSized(gpa, (int)size));
            return;
        }
        if (row.MemoArmed != 0) RecordPlainPages(v, linear, gpa);
        // A read-modify-write's read: its write goes to the same GPA (AfterRead), unless narrated (the narration shows each side's walk).
        if (!write && IsRmw(in d) && (row.Follow & ExitRules.FollowNarrate) == 0) _f.RmwGpa[v] = gpa;
        MmioSide(cpu, v, gpa, size, write, data);
    }

    /// <summary>A port side: the VM's port table names the owner (a device model), or nobody (forward or re-inject).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]   // into the memo's replay and the general side, as MmioSide: one frame fewer per port exit
    void PortSide(int cpu, int v, bool write, ulong data)
    {
        ref readonly var d = ref _f.Acc[v];
        ushort port = d.PortIsDx ? (ushort)State.Gpr(v, 2) : d.Port;
        int owner = _host.Ports(v).Lookup(port);
        if (_f.Row[v].MemoArmed != 0) RecordPlainPort(v);
        if (owner == 0) { Unowned(cpu, v, EventKind.Ioio, port, write, data); return; }
        _host.Request(cpu, v, owner, EventKind.Ioio, port, write, data);
    }

    /// <summary>A memory side that is not RAM: the VM's MMIO ranges name the owner, or nobody; an access over two ranges is #GP.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]   // into the memo's replay and the memory side: one frame fewer per MMIO exit
    void MmioSide(int cpu, int v, ulong gpa, uint size, bool write, ulong data)
    {
        int mmioOwner = _host.Mmio(v).Lookup(v, gpa, size, out _, out bool straddles);
        if (straddles) { InjectException(cpu, v, VectorGp, 0); return; }
        if (mmioOwner == 0) { Unowned(cpu, v, EventKind.Mmio, gpa, write, data); return; }
        _host.Request(cpu, v, mmioOwner, EventKind.Mmio, gpa, write, data);
    }

    /// <summary>Bytes this element moves: the decode's (the hardware pipeline made it the fragment the exit reports).</summary>
    public uint ElementSize(int v) => _f.Acc[v].Size;

    void RamSplit(int cpu, int v, ulong linear, bool write, ulong data)
    {
        uint size = _f.Acc[v].Size;
        ulong value = 0;
        Span<byte> wide = write ? WideWrite(v) : WideRead(v);
        // Every byte translated and checked before any moves: a store whose second page faults writes nothing.
        Span<ulong> gpas = stackalloc ulong[(int)size];   // at most 64 (an FXSAVE piece, MOVDIR64B)
        for (uint i = 0; i < size; i++)
        {
            var walk = PageWalker.Translate(_memory, _f.Mode[v], _f.Row[v].Cr3, linear + i, DataAccess(v, write || IsRmw(in _f.Acc[v])), out gpas[(int)i]);
            if (!walk.IsOk) { InjectWalkFault(cpu, v, walk); return; }
            if (!_host.IsRam(v, gpas[(int)i], 1)) { InjectException(cpu, v, VectorGp, 0); return; }
        }
        for (uint i = 0; i < size; i++)
        {
            ulong g = gpas[(int)i];
            if (size > 8) { if (write) _memory.WriteU8(g, wide[(int)i]); else wide[(int)i] = _memory.ReadU8(g); }
            else if (write) _memory.WriteU8(g, (byte)(data >> (int)(8 * i)));
            else value |= (ulong)_memory.ReadU8(g) << (int)(8 * i);
        }
        if (write) AfterWrite(cpu, v); else AfterRead(cpu, v, value);
    }

    /// <summary>An access nobody registered: forward to the host (default) or re-inject #VC/#VE.</summary>
    public void Unowned(int cpu, int v, EventKind kind, ulong addr, bool write, ulong data)
    {
        ref var row = ref _f.Row[v];
        // Re-injection hands the whole instruction to the guest, so only before anything of it was done.
        if (_host.Reinjects(v) && row.FirstElement)
        {
            byte vector = _tdp ? VectorVe : VectorVc;
            Stats.Add(cpu, Counter.Reinjected);
            if (Marked(v)) _host.MarkReinject(cpu, v, addr);
            State.SetPendingEvent(v, PendingEventValid | EventTypeException | vector);
            EndExit(cpu, v, ExitKind.Reinjected, countCompleted: false);
            return;
        }
        row.Modelled += _forwardCycles;
        Followed(v)?.Step(v, $"nobody registered {kind} 0x{addr:x}: forwarded to the host (+{_forwardCycles} modelled cycles)");
        _host.TraceForward(cpu, v, addr);
        bool ok = _f.Acc[v].Size > 8
            ? _host.ForwardWide(addr, write ? WideWrite(v)[.._f.Acc[v].Size] : WideRead(v)[.._f.Acc[v].Size], write, out ulong value)
            : _host.Forward(kind, addr, _f.Acc[v].Size, write, data, out value);
        if (!ok) Stats.Add(cpu, Counter.ForwardFailures);   // the guest sees all-ones for a read, a dropped write
        row.Forwarded = true;
        SideDone(cpu, v, write ? 0 : ok ? value : AllOnes(_f.Acc[v].Size), write);
    }

    /// <summary>
    /// Where a side that left the stages comes back (a device model's answer, through the kernel's ContinueAfterDevice,
    /// and the host's): the one place after the decode where the two pipelines meet, so the one test of
    /// <see cref="InFlightRow.HardwareCompletes"/> after it. A hardware-completed exit's side is its whole part of the
    /// instruction (ExitPipeline.Hardware.cs); the kernel-emulated element goes on to its write side or its end.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SideDone(int cpu, int v, ulong value, bool write)
    {
        if (_f.Row[v].HardwareCompletes) HardwareDone(cpu, v, value, write);
        else if (write) AfterWrite(cpu, v);
        else AfterRead(cpu, v, value);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong AllOnes(uint size) => ExitRules.AllOnes(size);

    /// <summary>The read side is done (value in hand): compute, then the write side. Kernel-emulated exits only.</summary>
    // Inlined, as EndExit is: a device read's completion (the kernel's CompleteIfDone) then runs to re-entry in one frame.
    // Counted: −46 instructions per MMIO read exit, −35 over the four rigs (callgrind; PERF.md). AfterWrite too was worse
    // (the callers' own inlining gave way): 1,809 per MMIO read exit.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void AfterRead(int cpu, int v, ulong value)
    {
        ref var row = ref _f.Row[v];
        ref readonly var d = ref _f.Acc[v];
        row.Value = value;
        // The common read (MOV/MOVZX/MOVSX/IN into a register): the executor's load, without the general path's copies.
        if (d.Kind is AccessKind.Read or AccessKind.ReadZx or AccessKind.ReadSx or AccessKind.In)
        {
            WriteBack.ApplyRead(in d, State.Gprs(v), value);
            if (Followed(v) is { } t) NarrateValue(t, v, value, false, 0);
            if (d.Lock) { AfterWrite(cpu, v); return; }
            // AfterWrite for a one-element form with nothing pending or held (no LOCK, no read-modify-write, not FX or a
            // string: EndExit released what an earlier instruction held): the element ends, the instruction finishes.
            row.Phase = ElementPhase.None;
            row.FirstElement = false;
            FinishInstruction(cpu, v);
            return;
        }
        // The common store (MOV/OUT from a register or an immediate): the executor's store value (Executor.Execute's
        // Write case, which changes no register or flag), without the general path's table, copies and dispatch.
        if (d.Kind is AccessKind.Write or AccessKind.WriteImm or AccessKind.Out)
        {
            ulong store = WriteBack.StoreValue(in d, State.Gprs(v));
            if (Followed(v) is { } ts) NarrateValue(ts, v, value, true, store);
            row.Phase = ElementPhase.Write;
            row.WriteValue = store;
            Access(cpu, v, d.Kind == AccessKind.Out ? Side.Port : Side.Memory, write: true, store);
            return;
        }
        var (_, writeSide) = SidesOf(in d);
        bool write = writeSide != Side.None;
        // CMPS reads twice per element: the rSI side first, then the ES:rDI side, then the flags.
        if (d.Kind == AccessKind.Cmps && row.Phase == ElementPhase.Read)
        {
            _f.CmpsSource[v] = value;
            row.Phase = ElementPhase.Read2;
            Access(cpu, v, Side.Memory, write: false, 0);
            return;
        }
        // The executor is the one state update for every form (hot/Emulate/Executor.cs), through Compute.
        if (!Compute(cpu, v, value, writeSide == Side.Memory, out bool w, out ulong toWrite)) return;
        if (StackOps.IsStackForm(d.Kind) && !StackAfterRead(cpu, v, value)) return;
        if (writeSide == Side.Memory) write = w;
        if (Followed(v) is { } tv) NarrateValue(tv, v, value, write, toWrite);
        if (!write) { AfterWrite(cpu, v); return; }
        row.Phase = ElementPhase.Write;
        row.WriteValue = toWrite;
        // A read-modify-write whose read went to a device in this element (MemorySide kept its GPA; StartElement clears
        // it) writes the same operand there: translated then as a write (an RMW's read is walked as one), so no second
        // walk, canonical or RAM test; the owner is looked up again (it may have gone).
        ulong rmwGpa = _f.RmwGpa[v];
        if (rmwGpa != InFlight.NoGpa)
        {
            MmioSide(cpu, v, rmwGpa, d.Size, write: true, toWrite);
            return;
        }
        Access(cpu, v, writeSide, write: true, toWrite);
    }

    /// <summary>
    /// vCPU <paramref name="v"/>'s access in flight is a plain MOV load or store, IN or OUT (the one element of its
    /// instruction) that <see cref="PlainDone"/> may end: kernel-emulated, not followed and not timed. Its completion then
    /// has nothing to decide but the value (such a form is never locked, wide or a string, and nothing of it is pending).
    /// Why not timed: the one exit in 16 that is keeps its completion's segment in the general path, whose timing the
    /// rule tests hold open (DeviceTimingRuleTests); taking it here too counted 1 instruction less per exit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool EndsPlain(int v)
    {
        ref readonly var row = ref _f.Row[v];
        if (row.Follow != 0 || row.Timed || row.HardwareCompletes) return false;
        return _f.Acc[v].Kind is AccessKind.Read or AccessKind.ReadZx or AccessKind.ReadSx or AccessKind.In
            or AccessKind.Write or AccessKind.WriteImm or AccessKind.Out;
    }

    /// <summary>
    /// A device's answer to the access <see cref="EndsPlain"/> named: <see cref="AfterRead"/>'s load case or
    /// <see cref="AfterWrite"/>'s plain end, then the instruction's end. Why a stage of its own: the kernel's common
    /// completion calls it in place of the general one (<see cref="SideDone"/>), whose every other form inlined would give
    /// that small frame the general one's size (counted: PERF.md, "The common completion"). Inlined there: one frame
    /// fewer per exit (−21). It closes the exit but does not put the vCPU back (<see cref="IExitHost.Reenter"/>): the caller
    /// does, knowing the CPU it runs on, and may enter the vCPU at once instead of queueing it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PlainDone(int cpu, int v, ulong value, bool write)
    {
        ref var row = ref _f.Row[v];
        // A load's value as the model answered it: ApplyRead masks it to the access's size. Not kept in the row's Value,
        // which only a locked read's write side reads (its Expected).
        if (!write) WriteBack.ApplyRead(in _f.Acc[v], State.Gprs(v), value);
        row.Phase = ElementPhase.None;
        row.FirstElement = false;
        // Not AfterWrite's CommitPending: only a read-modify-write's Compute leaves anything pending, and every exit's end
        // (EndExit) clears it, so after a plain store nothing is (Stryker found the call removable without a trace).
        // FinishInstruction and EndInstruction less what a plain form never has: an interrupt shadow (MOV SS, LSS) and a
        // side forwarded to the host (its one side went to a device; a Forwarded flag a REP left set when it stopped
        // part-way belongs to that REP, and stays for its end to count, where EndInstruction would have counted this
        // load as forwarded and cleared it). Counted: −22 per MMIO read exit.
        State.Rip(v) = NextRip(v);
        if (_f.Fault[v].SingleStep) SingleStepTrap(cpu, v);
        CloseExit(cpu, v, ExitRules.KindOf(_f.Acc[v].Kind), countCompleted: true);
    }

    /// <summary>The element is done: step string registers, repeat, or finish. Kernel-emulated exits only.</summary>
    void AfterWrite(int cpu, int v)
    {
        ref var row = ref _f.Row[v];
        ref readonly var d = ref _f.Acc[v];
        row.Phase = ElementPhase.None;
        row.FirstElement = false;
        CommitPending(v);
        // What an earlier element held is released before the next element; the instruction's end (EndExit) releases it
        // itself, so the common path past these two tests pays for one release, not two.
        if (IsFx(d.Kind)) { ReleaseHeld(v); FxNextPiece(cpu, v); return; }
        if (IsString(d.Kind) && !Executor.StringStep(in d, State.Gprs(v), State.Rflags(v)))
        {
            ReleaseHeld(v);
            // Why: with TF the CPU traps after every REP iteration, RIP still at the instruction (the count resumes).
            if (_f.Fault[v].SingleStep) { SingleStepTrap(cpu, v); EndExit(cpu, v, ExitRules.KindOf(d.Kind), countCompleted: true); return; }
            // Why: a REP run longer than MaxRepPerExit ends this exit with RIP unchanged; the guest re-executes the
            // instruction, exits again and the count resumes where it stopped, so one exit never runs unbounded.
            if (++row.RepElements < MaxRepPerExit) { StartElement(cpu, v); return; }
            Stats.Add(cpu, Counter.RepResumed);
            EndExit(cpu, v, ExitRules.KindOf(d.Kind), countCompleted: true);
            return;
        }
        FinishInstruction(cpu, v);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]   // into AfterRead and AfterWrite: one frame fewer per exit
    void FinishInstruction(int cpu, int v)
    {
        State.Rip(v) = NextRip(v);
        bool shadow = _f.Acc[v].Kind is AccessKind.SegLoad or AccessKind.LoadFarPtr && StartsShadow(v);
        if (_f.Fault[v].SingleStep && !shadow) SingleStepTrap(cpu, v);
        EndInstruction(cpu, v);
    }

    /// <summary>The instruction is done (by the kernel or, for a hardware-completed exit, about to be by the hardware): count it and end the exit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void EndInstruction(int cpu, int v)
    {
        ref var row = ref _f.Row[v];
        bool forwarded = row.Forwarded;
        row.Forwarded = false;
        if (forwarded) Stats.Add(cpu, Counter.Forwarded);
        EndExit(cpu, v, forwarded ? ExitKind.Forwarded : ExitRules.KindOf(_f.Acc[v].Kind), countCompleted: !forwarded);
    }

    /// <summary>The exit is over: record it and put the vCPU back on its CPU.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]   // into AfterRead's completion and the other stages' ends (see AfterRead)
    void EndExit(int cpu, int v, ExitKind kind, bool countCompleted)
    {
        CloseExit(cpu, v, kind, countCompleted);
        _host.Reenter(v);
    }

    /// <summary><see cref="EndExit"/> less putting the vCPU back: <see cref="PlainDone"/>'s caller does that itself.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void CloseExit(int cpu, int v, ExitKind kind, bool countCompleted)
    {
        ref var row = ref _f.Row[v];
        row.Pend = false;   // a fault or a give-up after the read: nothing of the instruction is committed
        if (row.Holds) ReleaseHeld(v);
        EndSegment(cpu, v);
        Stats.RecordOn(cpu, kind, row.Timed, row.Measured, row.Modelled, row.Hardware, completed: countCompleted);   // Record, from the row in hand
        if ((row.Follow & ExitRules.FollowNarrate) != 0 && _host.Narrator is { } t) NarrateDone(t, v, kind);
        _host.TraceComplete(cpu, v, kind);
    }

    /// <summary>The exit is counted under its kind with its modelled (and hardware) sample; a timed one keeps its measured sample too.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void Record(int cpu, int v, ExitKind kind)
    {
        ref readonly var row = ref _f.Row[v];
        Stats.Record(cpu, kind, row.Timed, row.Measured, row.Modelled, row.Hardware);
    }

    void InjectWalkFault(int cpu, int v, in WalkResult fault)
    {
        if (fault.Status == WalkStatus.GeneralProtection) { InjectException(cpu, v, VectorGp, 0); return; }
        State.SetCr2(v, fault.Address);
        InjectException(cpu, v, VectorPf, fault.ErrorCode);
    }

    /// <summary>A defined guest-visible outcome for what the kernel cannot or will not do: the exception is pending at the next entry.</summary>
    void InjectException(int cpu, int v, byte vector, uint? errorCode)
    {
        Stats.Add(cpu, Counter.Faulted);
        if (Marked(v)) _host.MarkFault(cpu, v, vector);
        // EVENTINJ format (as SVM's): error code in bits 63:32, valid 31, has-error 11, type 10:8, vector 7:0.
        State.SetPendingEvent(v, (ulong)(errorCode ?? 0) << 32 | PendingEventValid | EventTypeException | (errorCode.HasValue ? EventHasErrorCode : 0) | vector);
        _f.Row[v].Forwarded = false;
        EndExit(cpu, v, ExitKind.Faulted, countCompleted: false);
    }
}

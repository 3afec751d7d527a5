using Copra.Abi;
using Copra.Cold;
using Copra.Hot.Exit;
using Copra.Hot.Timing;
using Copra.Kernel.Exit;
using Copra.Kernel.Machine;

namespace Copra.Kernel.Core;

/// <summary>
/// Device models and vCPU threads: delivering an access into an event area, completing it when the
/// model answers, WAIT_FOR_EVENT on vCPUs and event objects, IRQs, stopping a VM, and what happens
/// when a model or a VMM dies. An event object has no lock: its slot word (<see cref="EventObject.Slot"/>) says who may
/// change it next, and the common transitions (deliver into an idle object, complete the access in flight) are one
/// compare-and-swap that claims and checks at once, then a release store (docs/design.md, "Ownership"). Each vCPU
/// object is its own lock for the VMM-facing state; a claim on an event object and a vCPU's lock are never held
/// together (a completion publishes the event object, then continues the vCPU).
/// </summary>
public sealed partial class Kernel
{
    // ---- delivery ----------------------------------------------------------------------------

    // Inlined into the exit (RunGuest, through the sides to a device): one frame fewer per device exit, −26 per MMIO read
    // exit once the rare claim and fill were out of line (before, it counted +26: EndSegment fell out of line).
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    void Request(Cpu cpu, int v, int owner, EventKind kind, ulong addr, bool write, ulong data)
    {
        ref var row = ref _f.Row[v];
        var vc = VcpuAt(v);
        var e = vc.Vm.OwnerOf(owner);
        if (e is null) { _pipe.Unowned(cpu.Index, v, kind, addr, write, data); return; }
        byte size = (byte)_pipe.ElementSize(v);
        row.ReqKind = kind; row.ReqAddr = addr; row.ReqSize = size; row.ReqWrite = write; row.ReqData = data; row.ReqOwner = owner;
        // Only this exit changes the state of a vCPU that is in an exit (Runnable here; Dead is set by
        // this CPU too): a store to the vCPU's own word instead of its lock (SetRun says why no CAS).
        SetRun(vc, VcpuRun.Runnable, VcpuRun.WaitingDevice);
        Stats.CountOn(cpu.Index, Counter.DeviceRoundTrips);
        // The model's answer costs it one syscall (its next WAIT_FOR_EVENT or EVENT_SIGNAL).
        row.Modelled += SyscallCyclesNow;
        // The common transition: nothing in flight, nothing queued or held, the model alive. The claim is the check.
        int seen = Volatile.Read(ref e.Slot);
        if (((seen & (EventObject.SlotInflight | EventObject.SlotRare)) != 0 || !e.TryClaim(seen)) && !ClaimToDeliver(cpu, v, e))
            return;
        FillArea(e, v, kind, addr, size, write, data);
        var wake = e.Waiter;
        e.Waiter = null;
        if (wake is not null) e.Handed = e.Area.Sequence;
        e.Publish();
        if (row.Follow != 0) FollowDelivery(cpu, v, e, addr, write, data, wake);   // the tracers' one test
        if (wake is not null)
        {
            if (wake.Cpu != VcpuAt(v).Cpu) { row.Modelled += Cost.CrossCpuWakeCycles; Stats.Add(cpu.Index, Counter.CrossCpuWakes); }
            WakeThread(wake, 1, VcpuAt(v).Cpu);   // the model runs where the exit happened
        }
    }

    /// <summary>
    /// <see cref="Request"/>'s claim when the common transition's failed: true with the claim held when the access goes
    /// into the area now; false when it was answered (the model is gone) or queued. Out of line, as the other rare paths.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    bool ClaimToDeliver(Cpu cpu, int v, EventObject e)
    {
        e.Seize();
        if (e.Dead) { e.Publish(); AnswerLost(cpu, v, e); return false; }
        // A locked read-modify-write of another vCPU holds the object from its read to its write: queue behind it.
        if (e.Inflight >= 0 || (e.HeldBy >= 0 && e.HeldBy != v)) { e.Enqueue(v); e.Publish(); return false; }
        return true;
    }

    /// <summary>A followed exit's delivery: the display tracer's mark, the narrator's line. Out of line: one test of the
    /// vCPU's follow flag in the delivery instead of one per tracer (and their arguments read only here).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    void FollowDelivery(Cpu cpu, int v, EventObject e, ulong addr, bool write, ulong data, KThread? wake)
    {
        Mark(cpu, v, TraceKind.Deliver, e.OwnerId);
        if (Followed(v) is { } tracer) NarrateDelivery(tracer, v, e, addr, write, data, wake);
    }

    // Narration out of line: its interpolated strings would otherwise give the hot method a larger frame to zero on every call.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    void NarrateDelivery(IExitTracer tracer, int v, EventObject e, ulong addr, bool write, ulong data, KThread? wake) =>
        tracer.Step(v, $"deliver: {e.Describe()} event area seq {e.Area.Sequence}: {(write ? "write" : "read")} 0x{addr:x} size {_f.Row[v].ReqSize}{(write ? $" data 0x{data:x}" : "")}; {(wake is null ? "no thread waiting yet (it will find it)" : $"waking thread {wake.Id} on cpu {_vcpus[v].Cpu}")}");

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    void NarrateAnswer(IExitTracer tracer, int v, ulong value, Cpu? here) =>
        tracer.Step(v, $"the device model answered (state Done, data 0x{value:x}) and called WAIT_FOR_EVENT: completing on cpu {_vcpus[v].Cpu}{(here is not null && here.Index != _vcpus[v].Cpu ? $" (posted from cpu {here.Index} to its inbox)" : "")}");

    /// <summary>Writes vCPU <paramref name="v"/>'s queued request (from its row) into the area. Caller holds the object's claim.</summary>
    void FillArea(EventObject e, int v)
    {
        ref var row = ref _f.Row[v];
        FillArea(e, v, row.ReqKind, row.ReqAddr, row.ReqSize, row.ReqWrite, row.ReqData);
    }

    /// <summary>Writes vCPU <paramref name="v"/>'s request into the area. Caller holds the object's claim. Inlined into
    /// <see cref="Request"/>, which passes what it has in registers instead of reading back the row it just wrote.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    void FillArea(EventObject e, int v, EventKind kind, ulong addr, byte size, bool write, ulong data)
    {
        ref var a = ref e.Area;
        ref readonly var f = ref _f;
        ref readonly var d = ref f.Acc[v];
        var vc = VcpuAt(v);
        a.Sequence++;
        a.Kind = kind;
        a.Address = addr;
        a.Size = size;
        a.Direction = write ? AccessDirection.Write : AccessDirection.Read;
        a.Data = write ? data : 0;
        a.Vcpu = (uint)vc.LocalIndex;
        a.Cpu = (uint)vc.Cpu;
        a.Rip = State.Rip(v);
        // A string, REP, LOCK or wide form is the rare one: the common access is flagged nothing and counted once, by one test.
        a.Flags = 0;
        a.Result = LockResult.Applied;
        a.Count = 1;
        // The size from the argument, not read back from the area: a model thread may write its own memory at any time.
        if (size > 8 | d.Rep | d.Lock | ((StringKinds >> (int)d.Kind) & 1) != 0)   // not short-circuited: one branch, not four
            FillRare(v, size, write, ref a);
        a.PublishState(EventState.Pending);   // release: the fields above are visible first
        e.Inflight = v;
        e.Delivered++;
    }

    /// <summary>The string forms (MOVS, STOS, INS, OUTS) as bits of <see cref="Hot.Decode.AccessKind"/> (fewer than 64 kinds).</summary>
    const ulong StringKinds = 1UL << (int)Hot.Decode.AccessKind.Movs | 1UL << (int)Hot.Decode.AccessKind.Stos
        | 1UL << (int)Hot.Decode.AccessKind.Ins | 1UL << (int)Hot.Decode.AccessKind.Outs;

    /// <summary><see cref="FillArea"/> for a string, REP, LOCK or wide access: its flags, its count, the write's wide data
    /// and the value a locked write expects. Out of line: the common access needs none of it.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    void FillRare(int v, byte size, bool write, ref EventArea a)
    {
        ref readonly var d = ref _f.Acc[v];
        bool str = d.Kind is Hot.Decode.AccessKind.Movs or Hot.Decode.AccessKind.Stos or Hot.Decode.AccessKind.Ins or Hot.Decode.AccessKind.Outs;
        bool locked = LockedAccess(v);
        a.Flags = (str ? EventFlags.String : 0) | (d.Rep ? EventFlags.Rep : 0) | (locked ? EventFlags.Locked : 0);
        if (str && d.Rep) a.Count = (uint)ExitRules.Masked(State.Gpr(v, 1), d.AddressSize);
        if (size > 8 && write) WideToArea(v, size, ref a);
        if (locked && write)
        {
            // The write carries what the locked read returned: the model applies it only if the location still holds that.
            if (size > 8) { a.Expected = BitConverter.ToUInt64(WideRead(v)); a.ExpectedHigh = BitConverter.ToUInt64(WideRead(v)[8..]); }
            else { a.Expected = _f.Row[v].Value; a.ExpectedHigh = 0; }
        }
    }

    /// <summary>vCPU <paramref name="v"/>'s access in a device is a locked one the kernel emulates (a LOCK prefix, not
    /// completed by the hardware): its delivery is flagged Locked, and its write's answer may be Mismatch.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    bool LockedAccess(int v) => _f.Acc[v].Lock && !_f.Row[v].HardwareCompletes;

    /// <summary>WAIT_FOR_EVENT on an event object, the part that completes in place (<see cref="WaitForEventNow"/>):
    /// 1 with the next access handed over, or <see cref="WaitNotNow"/> for <see cref="WaitEventClaimed"/> to finish.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]   // its one caller is WaitForEventNow: one frame fewer per model call
    long WaitEventNow(KThread t, EventObject e, Cpu? here)
    {
        // The IPC fast path: reply and receive in one call. The answer made the vCPU runnable here; with nothing else
        // ready on this CPU, enter it now, from this call, so its next exit lands in this area before the check below and
        // the model takes it without blocking (docs/design.md). A common answer's vCPU comes back unqueued (ended): it is
        // entered straight when it would be the queue's next anyway, which spares the queue's round trip.
        int ended = CompleteIfDone(e, here);
        if (ended >= 0)
        {
            if (here!.Current == t && here.TryEnterNow()) RunGuest(here, ended);
            else
            {
                here.EnqueueVcpuLocal(ended);
                if (here.Current == t && here.TryTakeDirectVcpu(out int next)) RunGuest(here, next);
            }
        }
        else if (here is not null && here.Current == t && here.TryTakeDirectVcpu(out int direct)) RunGuest(here, direct);
        // An access the caller has not been handed yet: return it (here: see Hand). A model that
        // waits again without answering what it holds is not re-handed it: it sleeps, and the
        // vCPU waits (a silent device; VM_CONTROL Stop releases the vCPU).
        // Without a claim: Handed is the model's own (a deliverer writes it only for a parked waiter, and nothing is
        // parked here), and an access in the area, published and unclaimed, leaves it only by this model's answer or
        // by Stop/device loss, after which the model finds the area Idle, as if it had lost the race a moment later.
        int seen = Volatile.Read(ref e.Slot);
        if ((seen & (EventObject.SlotBusy | EventObject.SlotParked)) == 0 && (seen & EventObject.SlotInflight) != 0
            && e.Area.State == EventState.Pending && e.Area.Sequence != e.Handed)
            return Hand(e);
        return WaitNotNow;
    }

    /// <summary>The rest of <see cref="WaitEventNow"/> under the object's claim: an access the fast check could not take
    /// without it, or the thread parks. Out of line: its ValueTasks would otherwise be stack slots the model's every call
    /// zeroes on entry.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    static ValueTask<long> WaitEventClaimed(KThread t, EventObject e)
    {
        e.Seize();
        if (e.Waiter is not null && e.Waiter != t) { e.Publish(); throw KernelError.Busy("another thread waits on this event object"); }
        if (e.Inflight >= 0 && e.Area.State == EventState.Pending && e.Area.Sequence != e.Handed)
        {
            e.Publish();
            return new(Hand(e));
        }
        e.Waiter = t;
        var parked = t.Block(e);   // before the publish: a deliverer may take the waiter as soon as it is visible
        e.Publish();
        return parked;
    }

    /// <summary>
    /// Hands the access in the area to the model's thread, on the CPU the thread runs on (not the exit's). Why not
    /// move the thread to the exit's CPU, as a wake does (<see cref="Request"/>): a thread that finds an access already
    /// pending was not woken, and a move would cost a cross-CPU wake of its own (the thread queued on the other CPU) and a
    /// switch there; answering here costs one cross-CPU wake, the answer posted to the vCPU's CPU
    /// (<see cref="PostAnswer"/>, charged to the exit), and no switch. In Copra a move was also the async suspension and
    /// resumption of the model's thread and a scheduler round trip, ~610 instructions, 0.77 times per exit of the default
    /// run (docs/design.md, "Where a device model runs").
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    static long Hand(EventObject e)
    {
        e.Handed = e.Area.Sequence;
        return 1;
    }

    /// <summary>If the model marked its answer done, finish that access and deliver the next queued one.</summary>
    void CompleteIfDone(EventObject e)
    {
        var here = CurrentCpu;
        int ended = CompleteIfDone(e, here);
        if (ended >= 0) here!.EnqueueVcpuLocal(ended);
    }

    /// <summary>
    /// If the model marked its answer done, finish that access and deliver the next queued one. Returns the vCPU whose
    /// exit the common completion ended on <paramref name="here"/>, its own CPU, runnable and not put back: the caller
    /// must queue it on <paramref name="here"/> (<see cref="Cpu.EnqueueVcpuLocal"/>) or enter it at once. -1 otherwise:
    /// nothing answered, or the vCPU was put back as an exit's end puts it (<see cref="Reenter"/>: the general completion,
    /// or a vCPU a Stop or a death left not runnable), or the answer was posted to its CPU.
    /// </summary>
    /// <param name="here">The CPU this host thread steps (<see cref="CurrentCpu"/>, read once by the caller), or null outside the drivers.</param>
    int CompleteIfDone(EventObject e, Cpu? here)
    {
        // Nothing answered: read without a claim (only the model writes Done; only a claim holder takes the access out).
        int seen = Volatile.Read(ref e.Slot);
        if ((seen & EventObject.SlotInflight) == 0 || e.Area.ReadState() != EventState.Done) return -1;
        // The common answer: a plain MOV's, IN's or OUT's (the pipeline's EndsPlain says which), on the vCPU's own CPU,
        // nothing queued or held. What the general completion tests (a lock, a wide access, a string, a queue, a post to
        // another CPU, the narration) is decided already, so the access comes out under the claim and the instruction ends.
        // EndsPlain reads v's row before the test that v is this CPU's: while its access is in flight nobody writes those
        // fields (its CPU waits for this answer), so the read is of settled values, whichever CPU makes it.
        int v = (seen & EventObject.SlotInflight) - 1;
        var vc = VcpuAt(v);
        if (_pipe.EndsPlain(v) && here is not null && (seen & EventObject.SlotRare) == 0 && here.Index == vc.Cpu && e.TryClaim(seen))
        {
            ref var row = ref _f.Row[v];
            ulong value = e.Area.Data;
            e.Area.State = EventState.Idle;
            e.Inflight = -1;
            e.Completed++;
            e.PublishCompleted(seen);
            SetRun(vc, VcpuRun.WaitingDevice, VcpuRun.Runnable);   // as ContinueAfterDevice: the access is out of the object
            bool write = row.ReqWrite;
            _pipe.PlainDone(here.Index, v, value, write);   // unmasked (PlainDone's write-back masks it), and unread for a store
            // Reenter's test, with the vCPU in hand: a runnable one goes back to the caller; one a Stop or a death from
            // another CPU left otherwise is Reenter's (which leaves it out).
            if (vc.Run == VcpuRun.Runnable) return v;
            Reenter(v);
            return -1;
        }
        CompleteGeneral(e, here, seen);
        return -1;
    }

    /// <summary>A test's view of the split: called with the vCPU whose answer the general completion is about to take
    /// (never on the common one's path, which has no test of it).</summary>
    public Action<int>? OnGeneralCompletion;

    /// <summary>The completion of any other answer. Out of line: its rare paths would otherwise give the common one a
    /// frame of ~380 bytes and its spills (counted: PERF.md, "The common completion").</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    void CompleteGeneral(EventObject e, Cpu? here, int seen)
    {
        OnGeneralCompletion?.Invoke((seen & EventObject.SlotInflight) - 1);
        // The vCPU in the slot wrote its Timed column before its delivery published the area (read here for the clock only).
        long t0 = _f.Row[(seen & EventObject.SlotInflight) - 1].Timed ? (long)Tsc.Read() : 0;
        // The common transition: the access in flight answered, nothing queued or held. The claim is the check.
        bool rare = (seen & EventObject.SlotRare) != 0 || !e.TryClaim(seen);
        if (rare)
        {
            e.Seize();
            if (e.Inflight < 0 || e.Area.ReadState() != EventState.Done) { e.Publish(); return; }
        }
        int v = e.Inflight, wakeCpu = 0;
        ref var row = ref _f.Row[v];
        // The model's answer is Data (or the payload) and, for a locked write, Result; what the access was (its size, its
        // direction, whether it is locked) is the kernel's own record, not the area's copy, which the model may rewrite.
        ulong value = e.Area.Data;
        bool locked = LockedAccess(v), wrote = row.ReqWrite;
        bool mismatch = locked && wrote && e.Area.Result == LockResult.Mismatch;
        int size = row.ReqSize;
        if (size > 8 && (!wrote || mismatch)) WideFromArea(v, size, in e.Area);
        e.Area.State = EventState.Idle;
        e.Inflight = -1;
        e.Completed++;
        // A locked read keeps the object for its vCPU until its write is answered Applied (ReleaseHeld gives it up).
        if (locked && (!wrote || mismatch)) { e.HeldBy = v; _held[v] = e; row.Holds = true; }
        else if (e.HeldBy == v) { e.HeldBy = -1; _held[v] = null; row.Holds = false; }
        // A claim taken without rare found the queue empty, and nothing enqueues while this claim is held.
        // The next queued access goes into the area, and a model thread parked on the object is handed it (as a
        // delivery's would be): the thread answering here (EVENT_SIGNAL) need not be the one that waits.
        KThread? wake = null;
        if (rare && e.HeldBy < 0 && e.TryDequeue(out int next))
        {
            FillArea(e, next);
            wake = e.Waiter;
            e.Waiter = null;
            if (wake is not null) { e.Handed = e.Area.Sequence; wakeCpu = VcpuAt(next).Cpu; }
        }
        e.Publish();
        if (wake is not null) WakeThread(wake, 1, wakeCpu);
        if (Followed(v) is { } tracer) NarrateAnswer(tracer, v, value, here);
        int owner = VcpuAt(v).Cpu;
        if (here is not null && here.Index != owner) { PostAnswer(here, v, value, mismatch); return; }
        row.SegStart = t0;   // the completion is kernel work of this exit, from the claim on
        ContinueAfterDevice(here ?? Cpus[owner], v, value, mismatch);
    }

    /// <summary>
    /// Ownership, not a lock: vCPU <paramref name="v"/>'s in-flight row belongs to its CPU, so an answer taken on another
    /// CPU is handed to that CPU's inbox, and the owner applies it (<see cref="ApplyAnswer"/>) in its next step.
    /// </summary>
    void PostAnswer(Cpu from, int v, ulong value, bool lockMismatch = false)
    {
        _f.Answer[v] = value;   // published by the inbox's release; read after the owner's acquire
        _f.AnswerMismatch[v] = lockMismatch;
        Stats.Add(from.Index, Counter.CrossCpuWakes);
        _f.Row[v].Modelled += Cost.CrossCpuWakeCycles;
        Cpus[_vcpus[v].Cpu].Post(new CpuMessage(CpuMessageKind.Answer, v));
    }

    /// <summary>Owner CPU only: applies the answer another CPU posted for vCPU <paramref name="v"/>.</summary>
    internal void ApplyAnswer(Cpu cpu, int v) => ContinueAfterDevice(cpu, v, _f.Answer[v], _f.AnswerMismatch[v]);


    /// <summary>The device answered vCPU v's request: resume its element.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]   // into the completion: one call fewer per exit
    void ContinueAfterDevice(Cpu cpu, int v, ulong value, bool lockMismatch = false)
    {
        ref var row = ref _f.Row[v];
        if (row.Timed && row.SegStart == 0) row.SegStart = (long)Tsc.Read();
        // The completion took this access out of the event object under its claim, so VM_CONTROL Stop
        // can no longer abandon it: nothing else writes the state now but this store.
        SetRun(VcpuAt(v), VcpuRun.WaitingDevice, VcpuRun.Runnable);
        // Back into the pipeline (hot/Exit/ExitPipeline.cs) where the element left it.
        if (row.ReqWrite && lockMismatch) _pipe.LockMismatch(cpu.Index, v, value & ExitRules.AllOnes(row.ReqSize));
        else _pipe.SideDone(cpu.Index, v, row.ReqWrite ? 0 : value & ExitRules.AllOnes(row.ReqSize), row.ReqWrite);
        _pipe.EndSegment(cpu.Index, v);
    }

    /// <summary>
    /// Run state <paramref name="from"/> → <paramref name="to"/> if it is <paramref name="from"/> (the vCPU's own word; no
    /// lock). Why a test and a volatile store, not a compare-and-swap: in the two transitions the exit path makes here,
    /// Runnable → WaitingDevice (delivery) and WaitingDevice → Runnable (the completion, after taking the access out of
    /// the event object under its claim), no other thread writes the word: every other writer holds the vCPU's lock and
    /// acts only on Idle, Halted or an access it removed from the event object itself (WaitVcpu, RaiseIrq, StopVm), or
    /// runs on this CPU (RunGuest, the run-page exits, KillVcpu, Reenter). The volatile store is a release, so the
    /// request's columns written before it are visible to a Stop that reads WaitingDevice. A locked instruction costs
    /// ~20 cycles; the exit made two.
    /// </summary>
    static void SetRun(VcpuObject vc, VcpuRun from, VcpuRun to)
    {
        if (vc.Run == from) vc.Run = to;
    }

    /// <summary>A model whose event object is gone: answer everything it held as a bus with no device would.</summary>
    void DeviceLost(EventObject e)
    {
        var waiting = new List<int>();
        e.Seize();
        e.Dead = true;
        if (e.Inflight >= 0) { waiting.Add(e.Inflight); e.Inflight = -1; }
        while (e.TryDequeue(out int q)) waiting.Add(q);
        e.Waiter = null;
        e.Publish();
        foreach (int v in waiting)
            AnswerLost(CurrentCpu ?? Cpus[_vcpus[v].Cpu], v, e);
    }

    void AnswerLost(Cpu cpu, int v, EventObject e)
    {
        ref var row = ref _f.Row[v];
        Stats.Add(cpu.Index, Counter.DevicesLost);
        var vc = _vcpus[v];
        lock (vc)
        {
            ref var page = ref vc.Page;
            page.LostAddress = row.ReqAddr;
            page.LostKind = row.ReqKind;
            page.LostCount++;
        }
        if (row.ReqSize > 8 && !row.ReqWrite) WideRead(v).Fill(0xFF);   // a wide read of nothing: all ones too
        var here = CurrentCpu;
        if (here is not null && here.Index != vc.Cpu) { PostAnswer(here, v, ulong.MaxValue); return; }
        ContinueAfterDevice(cpu, v, ulong.MaxValue);
    }

    // ---- vCPUs -------------------------------------------------------------------------------

    ValueTask<long> WaitVcpu(KThread t, VcpuObject vc)
    {
        int v = vc.Global;
        lock (vc)
        {
            if (vc.Waiter is not null) throw KernelError.Busy("a thread is already in this vCPU");
            if (vc.Run == VcpuRun.Dead) return new((long)RunExit.Shutdown);
            if (vc.Vm.Stopped) return new((long)RunExit.Stopped);
            if (vc.Run != VcpuRun.Idle) throw KernelError.Busy("vCPU is busy");
            ref var page = ref vc.Page;
            var next = VcpuRun.Runnable;
            switch (vc.PendingRunExit)
            {
                case RunExit.Cpuid:
                    State.Gpr(v, 0) = page.CpuidEax; State.Gpr(v, 3) = page.CpuidEbx;
                    State.Gpr(v, 1) = page.CpuidEcx; State.Gpr(v, 2) = page.CpuidEdx;
                    State.Rip(v) = State.Rip(v) + 2;
                    break;
                case RunExit.MsrRead:
                    State.Gpr(v, 0) = (uint)page.MsrValue; State.Gpr(v, 2) = page.MsrValue >> 32;
                    State.Rip(v) = State.Rip(v) + 2;
                    break;
                case RunExit.MsrWrite:
                    State.Rip(v) = State.Rip(v) + 2;
                    break;
                case RunExit.Hlt:
                    State.Rip(v) = State.Rip(v) + 1;
                    if (!IrqPending(vc)) next = VcpuRun.Halted;
                    break;
            }
            vc.PendingRunExit = RunExit.None;
            page.ExitReason = RunExit.None;
            vc.Waiter = t;
            vc.Run = next;
            var block = t.Block(vc);
            t.Cpu = vc.Cpu;   // the thread now lives on the vCPU's CPU
            if (next == VcpuRun.Runnable) QueueVcpu(vc);
            return block;
        }
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]   // at every entry
    static bool IrqPending(VcpuObject vc)
    {
        return Volatile.Read(ref vc.IrrSet) != 0;
    }

    /// <summary>EVENT_SIGNAL on an IRQ object: the vector becomes pending on the VM's vCPU 0; a halted vCPU wakes.</summary>
    void RaiseIrq(IrqObject irq)
    {
        Interlocked.Increment(ref irq.Signals);
        var vc = irq.Vm.Vcpus[0];
        bool wake = false;
        lock (vc)
        {
            ref ulong word = ref vc.Irr[irq.Vector >> 6];
            ulong bit = 1UL << (irq.Vector & 63);
            if ((word & bit) == 0) { word |= bit; vc.IrrSet++; }
            if (vc.Run == VcpuRun.Halted && vc.Waiter is not null) { vc.Run = VcpuRun.Runnable; wake = true; }
        }
        var cpu = CurrentCpu ?? Cpus[vc.Cpu];
        Trace.Add(cpu, TraceKind.Irq, vc.Global, irq.Vector);
        if (wake) QueueVcpu(vc);
    }

    /// <summary>Stops every VM with a vCPU stuck on a device (the VMM's watchdog; the harness fires it when the system is otherwise idle).</summary>
    public int StopStuckVms()
    {
        int n = 0;
        foreach (var vm in _vms)
            if (!vm.Stopped && vm.Vcpus.Any(vc => vc.Run == VcpuRun.WaitingDevice)) { StopVm(vm); n++; }
        return n;
    }

    /// <summary>VM_CONTROL stop: every vCPU leaves the guest with Stopped; an access stuck in a silent model is abandoned.</summary>
    void StopVm(VmObject vm)
    {
        vm.Stopped = true;
        foreach (var vc in vm.Vcpus)
        {
            int v = vc.Global;
            bool abandoned = false;
            if (vc.Run == VcpuRun.WaitingDevice)
            {
                var e = vm.OwnerOf(_f.Row[v].ReqOwner);
                if (e is not null)
                {
                    e.Seize();
                    if (e.Inflight == v) { e.Inflight = -1; e.Area.State = EventState.Idle; if (e.TryDequeue(out int next)) FillArea(e, next); abandoned = true; }
                    else abandoned = e.Remove(v);
                    e.Publish();
                }
            }
            lock (vc)
            {
                if (abandoned) { Stats.Add(Here, Counter.Aborted); vc.Run = VcpuRun.Idle; }
                if (vc.Waiter is not null && vc.Run is VcpuRun.Halted or VcpuRun.Idle)
                    ReportRunExitLocked(CurrentCpu ?? Cpus[vc.Cpu], vc, RunExit.Stopped);
            }
        }
    }

    /// <summary>A thread died (EXIT, crash, THREAD_EXIT): it no longer waits on anything.</summary>
    partial void ThreadGone(KThread t)
    {
        switch (t.WaitingOn)
        {
            case VcpuObject vc:
                lock (vc) { if (vc.Waiter == t) vc.Waiter = null; }
                break;
            case EventObject e:
                e.Seize();
                if (e.Waiter == t) e.Waiter = null;
                e.Publish();
                break;
            case Batch.PolledRingObject ring:
                lock (ring) { if (ring.Waiter == t) ring.Waiter = null; }
                break;
        }
    }
}

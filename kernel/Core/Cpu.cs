using Copra.Hot.Rings;

namespace Copra.Kernel.Core;

/// <summary>
/// One simulated CPU. It owns its run queue and its queue of runnable vCPUs: only the host thread
/// stepping this CPU touches them. Other CPUs reach it through <see cref="Post"/> (the inbox,
/// multi-producer single-consumer). A step drains the inbox, then runs one user thread until it
/// blocks, or, with no thread ready, enters one runnable vCPU until its next exit.
/// Threads are preferred to guests: a ready thread is usually a device model holding a vCPU.
/// </summary>
public sealed class Cpu
{
    readonly Kernel _k;
    // Owner-only FIFOs (LocalFifo below): an exit queues its vCPU and the model's WAIT takes it, every exit.
    readonly LocalFifo<KThread> _runQueue = new(64);
    readonly LocalFifo<int> _vcpus = new(16);
    // Each thread and each vCPU has at most one message outstanding (it is queued once per wake),
    // so a ring of this size cannot fill unless the kernel breaks that invariant.
    readonly MpscRing<CpuMessage> _inbox = new(1 << 14);
    // Other CPUs increment it on every Post: alone on its line pair, so posting does not pull this CPU's hot fields
    // (Clock, Steps, the queues' heads) away from it.
    Copra.Hot.Rings.PaddedIndex _inboxDepth;
    Batch.PolledRingObject[] _pollers = [];
    readonly object _pollerLock = new();

    public Cpu(Kernel k, int index) { _k = k; Index = index; }

    public int Index { get; }
    /// <summary>Virtual clock in modelled cycles (deterministic driver); the trace is stamped with it.</summary>
    public long Clock;
    /// <summary>The thread whose slice this CPU runs, or ran last (a syscall is made from its own thread's slice, so
    /// during one this is the caller).</summary>
    public KThread? Current { get; private set; }
    public long Steps, ThreadSlices, GuestRuns, IdleSteps;
    /// <summary>Syscalls dispatched and gate entries made on this CPU (SysCallGate sums them; written only by this CPU's host thread).</summary>
    public long GateCalls, GateTransitions;

    public int InboxDepth => (int)Volatile.Read(ref _inboxDepth.Value);

    /// <summary>
    /// Guest entries a device model's WAIT_FOR_EVENT may make directly in one step (the IPC fast path, see
    /// <see cref="TryTakeDirectVcpu"/>). Why 64: it is the slice; long enough that the queue round trip and
    /// the model's async resume are paid once per 65 exits, short enough that the deterministic driver still
    /// interleaves CPUs every few microseconds of work.
    /// </summary>
    public const int DirectSwitchBudget = 64;
    int _directBudget;
    /// <summary>The budget each step starts with (a harness that must stop on an exact exit count lowers it).</summary>
    public int DirectBudgetCap { get; set; } = DirectSwitchBudget;
    public int RunQueueLength => _runQueue.Count;

    /// <summary>Any thread: queue a message for this CPU.</summary>
    public void Post(CpuMessage m)
    {
        Interlocked.Increment(ref _inboxDepth.Value);
        if (!_inbox.TryEnqueue(m)) throw new InvalidOperationException($"cpu {Index} inbox full: a wake-up was queued twice");
    }

    /// <summary>Owner only: make a thread runnable here.</summary>
    public void EnqueueLocal(KThread t)
    {
        t.Cpu = Index;
        t.State = ThreadState.Runnable;
        _runQueue.Enqueue(t);
    }

    /// <summary>Owner only: a vCPU bound to this CPU is ready to enter the guest.</summary>
    public void EnqueueVcpuLocal(int vcpu) => _vcpus.Enqueue(vcpu);

    /// <summary>Any thread: this CPU now runs a poller for <paramref name="ring"/> in every step (copy-on-write list).</summary>
    internal void AddPoller(Batch.PolledRingObject ring)
    {
        lock (_pollerLock)
        {
            var old = Volatile.Read(ref _pollers);
            Volatile.Write(ref _pollers, [.. old, ring]);
        }
    }

    /// <summary>Polled rings this CPU drains.</summary>
    public int PollerCount => Volatile.Read(ref _pollers).Length;

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]   // the test only: every step makes it
    bool RunPollers()
    {
        var pollers = Volatile.Read(ref _pollers);
        return pollers.Length != 0 && Poll(pollers);
    }

    /// <summary>Polls each ring registered on this CPU; drops the closed ones. Out of line: its loop and lock gave every
    /// step's empty test a frame of its own (~20 instructions per step).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    bool Poll(Batch.PolledRingObject[] pollers)
    {
        bool worked = false, closed = false;
        foreach (var r in pollers)
        {
            if (r.Closed) { closed = true; continue; }
            worked |= _k.Poll(r);
        }
        if (closed)
            lock (_pollerLock)
                Volatile.Write(ref _pollers, Volatile.Read(ref _pollers).Where(r => !r.Closed).ToArray());
        return worked;
    }

    /// <summary>
    /// Owner only, from a device model's WAIT_FOR_EVENT that has just completed an access: the vCPU this CPU
    /// would enter next, if entering it now is what the scheduler would do anyway (no thread ready, nothing in
    /// the inbox, no poller) and the step's budget allows. The caller enters it in place, so a model that is
    /// already waiting finds the vCPU's next access in its area without a scheduler round trip or a resume.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]   // its one caller is WAIT_FOR_EVENT's fast path
    internal bool TryTakeDirectVcpu(out int vcpu)
    {
        vcpu = -1;
        if (_directBudget <= 0 || _runQueue.Count != 0 || Volatile.Read(ref _inboxDepth.Value) != 0 || Volatile.Read(ref _pollers).Length != 0) return false;
        if (!_vcpus.TryDequeue(out vcpu)) return false;
        _directBudget--;
        GuestRuns++;
        return true;
    }

    /// <summary>
    /// Owner only: true when a vCPU that just became runnable here, not queued yet, may be entered now by the caller instead
    /// of queued: what <see cref="TryTakeDirectVcpu"/> would take right after queueing it (no thread ready, nothing in the
    /// inbox, no poller, no vCPU queued ahead of it, budget left), without the queue's round trip.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]   // its one caller is WAIT_FOR_EVENT's fast path
    internal bool TryEnterNow()
    {
        if (_directBudget <= 0 || _vcpus.Count != 0 || _runQueue.Count != 0 || Volatile.Read(ref _inboxDepth.Value) != 0 || Volatile.Read(ref _pollers).Length != 0) return false;
        _directBudget--;
        GuestRuns++;
        return true;
    }

    public bool HasWork => _runQueue.Count > 0 || _vcpus.Count > 0 || InboxDepth > 0;

    /// <summary>One scheduling step; false when the CPU had nothing to do.</summary>
    public bool Step()
    {
        Steps++;
        _directBudget = DirectBudgetCap;
        while (_inbox.TryDequeue(out var m))
        {
            Interlocked.Decrement(ref _inboxDepth.Value);
            if (m.Kind == CpuMessageKind.RunThread) { var t = _k.Thread(m.Id); if (t.State != ThreadState.Dead) EnqueueLocal(t); }
            else if (m.Kind == CpuMessageKind.Answer) _k.ApplyAnswer(this, m.Id);
            else _vcpus.Enqueue(m.Id);
        }

        if (_k.Trace.Keep) _k.Trace.AddDisplayOnly(this, TraceKind.QueueDepth, InboxDepth, _runQueue.Count + _vcpus.Count);
        bool polled = RunPollers();

        while (_runQueue.TryDequeue(out var t))
        {
            if (t.State == ThreadState.Dead) continue;
            ThreadSlices++;
            if (Current != t) Current = t;   // not cleared after the slice: a reference store is a GC write barrier
            t.State = ThreadState.Running;
            _k.RunSlice(this, t);
            return true;
        }

        if (_vcpus.TryDequeue(out int v))
        {
            GuestRuns++;
            _k.RunGuest(this, v);
            return true;
        }
        if (polled) return true;
        IdleSteps++;
        return false;
    }
}

/// <summary>
/// A first-in first-out queue for one owner thread (a CPU's run queue and runnable vCPUs): a power-of-two ring that
/// doubles when full. Why not <see cref="Queue{T}"/>: its version stamp, two bounds checks and modulo cost ≈ 25
/// instructions per operation, and the IPC fast path queues and takes a vCPU on every exit (issue 13). Same order.
/// </summary>
sealed class LocalFifo<T>(int capacity)
{
    T[] _items = new T[(int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(2, capacity))];
    int _head, _count;

    public int Count => _count;

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void Enqueue(T item)
    {
        if (_count == _items.Length) Grow();
        var items = _items;
        Hot.Layout.Unchecked.At(items, (_head + _count) & (items.Length - 1)) = item;   // masked by the power-of-two length
        _count++;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public bool TryDequeue(out T item)
    {
        if (_count == 0) { item = default!; return false; }
        var items = _items;
        ref T slot = ref Hot.Layout.Unchecked.At(items, _head);   // _head < the length: it is always stored masked
        item = slot;
        if (System.Runtime.CompilerServices.RuntimeHelpers.IsReferenceOrContainsReferences<T>()) slot = default!;   // no stale reference kept alive
        _head = (_head + 1) & (items.Length - 1);
        _count--;
        return true;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    void Grow()
    {
        var bigger = new T[_items.Length * 2];
        for (int i = 0; i < _count; i++) bigger[i] = _items[(_head + i) & (_items.Length - 1)];
        _items = bigger;
        _head = 0;
    }
}

using System.Threading.Tasks.Sources;
using Copra.Abi;
using Copra.Cold;

namespace Copra.Kernel.Core;

public enum ThreadState : byte { New, Runnable, Running, Blocked, Dead }

/// <summary>
/// A user thread: a green thread whose code is an async method and whose blocking syscalls are
/// awaits on this object (it is the <see cref="IValueTaskSource{T}"/> behind the gate's pending
/// results, reused for every block, so blocking allocates nothing).
///
/// Resumption handshake: a blocked thread may be woken (by any CPU) before the await that blocked
/// it has registered its continuation (parallel driver: the user code is still finishing its slice
/// on another host thread). <see cref="_handshake"/> collects the two halves — bit 0 "continuation
/// registered", bit 1 "woken" — and whichever side completes the pair queues the thread on its
/// target CPU. The continuation then runs only on that CPU, never inline on the waker.
/// </summary>
public sealed class KThread : IValueTaskSource<long>
{
    public KThread(int id, Process process, ThreadEntry entry, ulong arg)
    {
        Id = id; Process = process; Entry = entry; Arg = arg;
    }

    public int Id { get; }
    public Process Process { get; }
    public ThreadEntry Entry { get; }
    public ulong Arg { get; }
    public UserContext Context { get; internal set; } = null!;

    public volatile ThreadState State;
    /// <summary>The CPU the thread runs on, or will run on when woken.</summary>
    public int Cpu;
    /// <summary>
    /// The object the thread last blocked on: what it waits on while <see cref="State"/> is Blocked (the cleanup when it
    /// dies asks that object to forget it). Not cleared when it wakes, and stored only when it changes: a reference
    /// store is a GC write barrier (~16 instructions), and a device model blocks on the same object at every exit.
    /// </summary>
    public object? WaitingOn;
    public Task? Main;

    /// <summary>
    /// The last handle this thread waited on and what it named (a device model waits on one handle on every exit):
    /// valid while the process's handle table has had no removal since (<see cref="HandleTable.Removals"/>).
    /// </summary>
    internal uint WaitHandle;
    internal KObject? WaitObject;
    /// <summary><see cref="WaitObject"/> when it is an event object (a device model's every wait), else null: kept typed, so
    /// the wait does not test the type again.</summary>
    internal Machine.EventObject? WaitEvent;
    internal int WaitRemovals;

    Action<object?>? _cont;
    object? _contState;
    long _result;
    short _token;
    bool _resumed;
    int _handshake;
    int _wakeCpu;

    /// <summary>The pending result of a blocking call; the thread is now Blocked.</summary>
    public ValueTask<long> Block(object waitingOn)
    {
        if (!ReferenceEquals(WaitingOn, waitingOn)) WaitingOn = waitingOn;
        _resumed = false;
        // A dead thread (its EXIT, THREAD_EXIT, or its process killed) stays dead: its pending result never
        // completes, and the gate refuses its further calls. Made Blocked, it could call on after EXIT.
        if (State != ThreadState.Dead) State = ThreadState.Blocked;
        return new ValueTask<long>(this, _token);
    }

    /// <summary>
    /// Completes the thread's block with <paramref name="result"/>; it will run next on <paramref name="cpu"/>.
    /// Returns true when the caller must now queue it there (the handshake completed on this side).
    /// </summary>
    public bool Wake(long result, int cpu)
    {
        _result = result;
        _wakeCpu = cpu;
        return Interlocked.Or(ref _handshake, 2) == 1;
    }

    /// <summary>The CPU chosen by the last <see cref="Wake"/>.</summary>
    public int WakeCpu => _wakeCpu;

    /// <summary>Runs the continuation (on the CPU the thread was queued on).</summary>
    public void Resume()
    {
        Volatile.Write(ref _handshake, 0);
        _resumed = true;
        _cont!(_contState);
    }

    /// <summary>Set by the kernel so <see cref="OnCompleted"/> can queue the thread when it completes the handshake.</summary>
    internal Action<KThread>? QueueOnWakeCpu;

    ValueTaskSourceStatus IValueTaskSource<long>.GetStatus(short token) =>
        _resumed ? ValueTaskSourceStatus.Succeeded : ValueTaskSourceStatus.Pending;

    long IValueTaskSource<long>.GetResult(short token)
    {
        _token++;
        _resumed = false;
        return _result;
    }

    void IValueTaskSource<long>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
    {
        // Flags are ignored on purpose: there is no synchronization context or execution context
        // to flow inside the kernel; the continuation runs on the CPU that resumes the thread.
        // Kept after the resume and stored only when they change (an async method's awaits pass the same delegate and
        // box every time): each reference store is a GC write barrier. The handshake, not a null, says one is registered.
        if (!ReferenceEquals(_cont, continuation)) _cont = continuation;
        if (!ReferenceEquals(_contState, state)) _contState = state;
        if (Interlocked.Or(ref _handshake, 1) == 2) QueueOnWakeCpu!(this);
    }

    public override string ToString() => $"t{Id}({Process.Path})";
}

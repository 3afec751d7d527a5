using Copra.Abi;
using Copra.Cold;
using Copra.Kernel.Batch;

namespace Copra.Kernel.Core;

/// <summary>RING_POLL: creating polled rings, the poller pass a CPU runs, WAIT_FOR_EVENT on a ring.</summary>
public sealed partial class Kernel
{
    /// <summary>Entries run by pollers (no transition was paid for any of them).</summary>
    public long PolledCalls;

    /// <summary>RING_POLL(entries, cpu): a ring whose poller runs on <paramref name="cpu"/>.</summary>
    internal long RingPoll(KThread t, ulong entries, ulong cpu)
    {
        if (entries < PolledRingLayout.MinEntries || entries > PolledRingLayout.MaxEntries || (entries & (entries - 1)) != 0)
            throw KernelError.Inval($"entries must be a power of two, {PolledRingLayout.MinEntries}..{PolledRingLayout.MaxEntries}");
        if (cpu >= (ulong)Cpus.Length) throw KernelError.Inval($"no CPU {cpu}");
        var ring = new PolledRingObject(t, (int)entries, (int)cpu);
        long h = t.Process.Handles.Add(ring);
        Cpus[(int)cpu].AddPoller(ring);
        return h;
    }

    /// <summary>
    /// One poller pass over <paramref name="ring"/> on its CPU: runs every published entry that has room
    /// for its completion, then publishes the completions and wakes a waiter. True when it did work.
    /// </summary>
    internal bool Poll(PolledRingObject ring)
    {
        // The SQ head and CQ tail are the poller's own; the user's SQ tail and CQ head are cached and
        // re-read only when the SQ looks empty or the CQ looks full (each side caches the other's index).
        ulong head = ring.Load(PolledRingLayout.SqHead);
        ulong cqTail = ring.Load(PolledRingLayout.CqTail);
        ulong tail = ring.CachedSqTail;
        if (tail == head) tail = ring.CachedSqTail = ring.Load(PolledRingLayout.SqTail);
        if (head == tail) return false;
        if (tail - head > (ulong)ring.Entries) tail = head + (ulong)ring.Entries;   // a bogus tail from user space
        ulong cqHead = ring.CachedCqHead;
        if (cqTail - cqHead >= (ulong)ring.Entries) cqHead = ring.CachedCqHead = ring.Load(PolledRingLayout.CqHead);
        var owner = ring.Owner;
        int n = 0;
        while (head != tail && cqTail - cqHead < (ulong)ring.Entries)
        {
            var e = ring.ReadSq(head);
            ring.Store(PolledRingLayout.SqHead, ++head);   // the slot is free again once copied out
            long result;
            if (owner.State == ThreadState.Dead) result = SysCallGate.ToAbi(Cold.KernelErrorKind.Inval);
            else result = SysCallGate.Completed(Gate.Dispatch(owner, SysCallRegs.Make(e.Nr, e.A0, e.A1, e.A2, e.A3, e.A4), inBatch: true));
            ring.WriteCq(cqTail++, new SysCallOut { Result = result, UserData = e.UserData });
            n++;
        }
        if (n == 0) return false;
        KThread? wake;
        lock (ring)
        {
            ring.Store(PolledRingLayout.CqTail, cqTail);   // release: the completions are visible first
            wake = ring.Waiter;
            ring.Waiter = null;
        }
        ring.Ran += n;
        ring.Passes++;
        Interlocked.Add(ref PolledCalls, n);
        if (wake is not null) WakeThread(wake, ring.Ready, wake.Cpu);
        return true;
    }

    ValueTask<long> WaitRing(KThread t, PolledRingObject ring)
    {
        lock (ring)
        {
            long ready = ring.Ready;
            if (ready > 0) return new(ready);
            if (ring.Waiter is not null && ring.Waiter != t) throw KernelError.Busy("another thread waits on this ring");
            ring.Waiter = t;
            return t.Block(ring);
        }
    }
}

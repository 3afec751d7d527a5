// Design note — MpscRing<T>: a bounded, lock-free multi-producer/single-consumer ring (Dmitry
// Vyukov's bounded queue with per-slot sequence numbers, specialised to one consumer); each
// CPU's inbox for wake-ups and migrations sent by other CPUs.
//
// Who may call what: TryEnqueue from any thread, concurrently. TryDequeue only from the owning
// CPU's thread (one consumer at a time; nothing checks this). Count/Capacity from any thread.
//
// Invariant: slot i carries a sequence number that says whose turn it is. For position p
// (slot p & mask), sequence == p means free for the producer that claims p; sequence == p + 1
// means the entry for p is written and the consumer may take it; after taking it the consumer
// stores p + capacity, which is "free" for the producer one lap later. Producers claim p by a
// CAS of Tail from p to p + 1, so each position has exactly one writer. The consumer owns Head.
//
// Memory ordering:
//   producer: CAS Tail (full fence, claims p) → write item → release store sequence = p + 1.
//   consumer: acquire load sequence == p + 1 → read item → release store sequence = p + capacity.
//   producer (next lap): acquire load sequence == p + capacity → overwrite item.
// Release/acquire on the slot's own sequence number carries the item across in both directions;
// Tail and Head are only positions, never the publication point.
//
// Progress: producers are lock-free (a failed CAS means another producer succeeded). The
// consumer sees entries in claim order; a producer preempted between its CAS and its sequence
// store makes the consumer see "empty" at that slot until it finishes, even if later slots are
// ready (the known non-linearisability of this design; the inbox tolerates the delay).
// Per-producer order is preserved: one producer's claims are increasing positions.
//
// Slots are {sequence, item} pairs packed densely, not padded: producers on different CPUs may
// share a line at the tail, but inbox traffic is light and density keeps the consumer's drain
// sequential. Tail and Head each sit alone on a PaddedIndex.
//
// Allocation: the slot array is allocated once in the constructor; no method allocates.

using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Copra.Hot.Rings;

/// <summary>
/// Bounded lock-free multi-producer/single-consumer ring with power-of-two capacity. Any thread
/// enqueues; only the owner dequeues. Zero allocation after construction.
/// </summary>
/// <typeparam name="T">An unmanaged entry type, copied by value.</typeparam>
public sealed class MpscRing<T> where T : unmanaged
{
    private struct Slot
    {
        public long Sequence;
        public T Item;
    }

    private readonly Slot[] _slots;
    private readonly long _mask;
    private PaddedIndex _tail;   // next position a producer will claim; CAS by producers
    private PaddedIndex _head;   // next position the consumer will read; written by the consumer only

    /// <summary>Creates a ring of <paramref name="capacity"/> entries.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Capacity is not a power of two in [2, 2^30].</exception>
    public MpscRing(int capacity)
    {
        RingCapacity.Validate(capacity);
        _slots = new Slot[capacity];
        _mask = capacity - 1;
        for (int i = 0; i < _slots.Length; i++) _slots[i].Sequence = i;
        // The constructor's stores are published to other threads by whatever hands them the
        // ring reference (a Thread.Start, a volatile field), as for any object.
    }

    /// <summary>Maximum number of entries the ring holds.</summary>
    public int Capacity => _slots.Length;

    /// <summary>
    /// Positions claimed and not yet consumed (includes entries a producer is still writing);
    /// exact from a quiescent ring, a snapshot otherwise. Any thread.
    /// </summary>
    public int Count
    {
        get
        {
            long head = _head.ReadAcquire();   // head first: head ≤ tail at every instant, both grow
            long tail = _tail.ReadAcquire();
            return (int)Math.Clamp(tail - head, 0, _slots.Length);
        }
    }

    /// <summary>Any thread: appends <paramref name="item"/>; false if the ring is full.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryEnqueue(in T item)
    {
        long position = _tail.ReadAcquire();
        ref Slot slot = ref SlotAt(position);
        if (Volatile.Read(ref slot.Sequence) == position && _tail.CompareExchange(position + 1, position) == position)
        {
            slot.Item = item;
            Volatile.Write(ref slot.Sequence, position + 1);
            return true;
        }
        return EnqueueSlow(in item);
    }

    /// <summary>Contended or full: retry until this producer claims a slot or sees a full ring.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool EnqueueSlow(in T item)
    {
        long position = _tail.ReadAcquire();
        while (true)
        {
            ref Slot slot = ref SlotAt(position);
            long lag = Volatile.Read(ref slot.Sequence) - position;
            if (lag == 0)
            {
                long seen = _tail.CompareExchange(position + 1, position);
                if (seen == position)
                {
                    slot.Item = item;
                    Volatile.Write(ref slot.Sequence, position + 1);
                    return true;
                }
                position = seen;                    // another producer won; try where Tail is now
            }
            else if (lag < 0)
            {
                return false;                       // slot still holds the entry from one lap ago: full
            }
            else
            {
                position = _tail.ReadAcquire();     // our position is stale; catch up
            }
        }
    }

    /// <summary>Owner only: removes the oldest entry; false if the ring is empty (or its next entry is still being written).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryDequeue(out T item)
    {
        long position = _head.Value;
        ref Slot slot = ref SlotAt(position);
        long sequence = Volatile.Read(ref slot.Sequence);
        if (sequence != position + 1)
        {
            Debug.Assert(sequence - (position + 1) < 0, "single consumer: a slot can never be ahead of Head");
            item = default;
            return false;
        }
        item = slot.Item;
        Volatile.Write(ref slot.Sequence, position + _slots.Length);
        _head.WriteRelease(position + 1);
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref Slot SlotAt(long position)
    {
        // SAFETY: position & _mask is in [0, Capacity) and _slots.Length == Capacity, so the ref
        // stays inside the array, which this object keeps alive.
        return ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_slots), (nint)(position & _mask));
    }
}

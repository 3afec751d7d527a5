// Design note — SpscRing<T>: a bounded, lock-free single-producer/single-consumer ring of
// unmanaged values; each CPU's exit ring (exit records from its vCPUs to its exit loop).
//
// Who may call what: one producer thread calls TryEnqueue / TryEnqueueMany; one consumer thread
// calls TryDequeue / TryDequeueMany. Count and Capacity may be read from any thread. Nothing
// checks the caller: a second producer or consumer silently corrupts the ring.
//
// Invariant and memory ordering: see SpscCursor — entries are written into slots before a
// release store of Tail publishes them, read after an acquire load of Tail, and released by a
// release store of Head that the producer acquires before reusing a slot. Each side caches the
// other's index on its own cache-line pair (PaddedHeadTail), so the fast path of TryEnqueue and
// TryDequeue touches only lines the calling core already owns plus the one slot; the cross-core
// re-read lives in EnqueueSlow / DequeueSlow, taken only when the ring looks full or empty.
//
// Allocation: the slot array is allocated once in the constructor; no method allocates.

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Copra.Hot.Rings;

/// <summary>
/// Bounded lock-free single-producer/single-consumer ring with power-of-two capacity. One
/// producer thread and one consumer thread; zero allocation after construction.
/// </summary>
/// <typeparam name="T">An unmanaged entry type, copied by value.</typeparam>
public sealed class SpscRing<T> where T : unmanaged
{
    private readonly T[] _slots;
    private SpscCursor _cursor;

    /// <summary>Creates a ring of <paramref name="capacity"/> entries.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Capacity is not a power of two in [2, 2^30].</exception>
    public SpscRing(int capacity)
    {
        RingCapacity.Validate(capacity);
        _slots = new T[capacity];
        _cursor = new SpscCursor(capacity);
    }

    /// <summary>Maximum number of entries the ring holds.</summary>
    public int Capacity => _slots.Length;

    /// <summary>Entries enqueued and not yet dequeued; exact from a quiescent ring, a snapshot otherwise. Any thread.</summary>
    public int Count => _cursor.ApproximateCount();

    /// <summary>Producer only: appends <paramref name="item"/>; false if the ring is full.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryEnqueue(in T item)
    {
        if (!_cursor.TryClaimCached(out long position)) return EnqueueSlow(in item);
        SlotAt(position) = item;
        _cursor.Publish();
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool EnqueueSlow(in T item)
    {
        if (!_cursor.TryClaimFresh(out long position)) return false;
        SlotAt(position) = item;
        _cursor.Publish();
        return true;
    }

    /// <summary>Consumer only: removes the oldest entry; false if the ring is empty.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryDequeue(out T item)
    {
        if (!_cursor.TryPeekCached(out long position)) return DequeueSlow(out item);
        item = SlotAt(position);
        _cursor.ReleaseThrough(position + 1);
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool DequeueSlow(out T item)
    {
        if (!_cursor.TryPeekFresh(out long position))
        {
            item = default;
            return false;
        }
        item = SlotAt(position);
        _cursor.ReleaseThrough(position + 1);
        return true;
    }

    /// <summary>
    /// Producer only: appends as many of <paramref name="items"/>, in order, as fit (all of them
    /// if there is room) and publishes them with one release store. Returns the number appended.
    /// </summary>
    public int TryEnqueueMany(ReadOnlySpan<T> items)
    {
        if (items.IsEmpty) return 0;
        int count = _cursor.ClaimUpTo(items.Length, out long first);
        if (count == 0) return 0;
        int start = _cursor.SlotOf(first);
        int beforeWrap = Math.Min(count, _slots.Length - start);
        items[..beforeWrap].CopyTo(_slots.AsSpan(start));
        items[beforeWrap..count].CopyTo(_slots);
        _cursor.Publish();
        return count;
    }

    /// <summary>
    /// Consumer only: moves up to <paramref name="destination"/>.Length oldest entries, in order,
    /// into <paramref name="destination"/> and releases their slots with one release store.
    /// Returns the number moved.
    /// </summary>
    public int TryDequeueMany(Span<T> destination)
    {
        if (destination.IsEmpty) return 0;
        int count = _cursor.PeekUpTo(destination.Length, out long first);
        if (count == 0) return 0;
        int start = _cursor.SlotOf(first);
        int beforeWrap = Math.Min(count, _slots.Length - start);
        _slots.AsSpan(start, beforeWrap).CopyTo(destination);
        _slots.AsSpan(0, count - beforeWrap).CopyTo(destination[beforeWrap..]);
        _cursor.ReleaseThrough(first + count);
        return count;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref T SlotAt(long position)
    {
        // SAFETY: SlotOf masks with Capacity - 1, so the index is in [0, Capacity) and
        // _slots.Length == Capacity; the element ref stays inside the array, which this object keeps alive.
        return ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_slots), _cursor.SlotOf(position));
    }
}

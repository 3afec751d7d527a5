// Design note — SpscCursor: the index protocol shared by every single-producer/single-consumer
// ring here (SpscRing<T>, SubmissionRing, CompletionRing). The rings own their storage; the
// cursor only hands out positions, so the ordering argument lives in one place.
//
// Who may call what:
//   producer thread only: TryClaimCached, TryClaimFresh, ClaimUpTo, Publish, Unpublished
//   consumer thread only: TryPeekCached, TryPeekFresh, PeekUpTo, ReleaseThrough, ConsumerCount
//   any thread:           ApproximateCount, SlotOf, Capacity
// One thread may be both producer and consumer; two threads may never share a side.
//
// Invariant (positions are 64-bit and only grow; slot = position & mask):
//   Head ≤ Tail ≤ PendingTail ≤ Head + capacity.
//   Slots for positions in [Head, Tail) hold published entries owned by the consumer;
//   slots for [Tail, PendingTail) are written but unpublished; the rest belong to the producer.
// Each side trusts its cached copy of the other's index because the other index only moves in
// the direction that makes the cache pessimistic: a stale CachedHead under-reports free space,
// a stale CachedTail under-reports available entries. So the cache is re-read (acquire) only
// when it says "full" or "empty" — the fast path touches nothing the other core writes.
//
// Memory ordering:
//   producer: write slot(s) → Publish = release store of Tail.
//   consumer: acquire load of Tail (into CachedTail) → read slot(s) → release store of Head.
//   producer: acquire load of Head (into CachedHead) → overwrite slot(s) it frees.
// Release/acquire pairs on Tail make entries visible before the consumer reads them; pairs on
// Head make the consumer's reads of a slot happen before the producer reuses it. On x64 these
// are plain movs (TSO); on arm64 stlr/ldar.

using System.Runtime.CompilerServices;

namespace Copra.Hot.Rings;

/// <summary>Position bookkeeping for a bounded SPSC ring; storage lives in the owning ring.</summary>
internal struct SpscCursor
{
    private PaddedHeadTail _indices;
    private readonly long _capacity;
    private readonly long _mask;

    /// <summary>Caller has validated <paramref name="capacity"/> with <see cref="RingCapacity.Validate"/>.</summary>
    internal SpscCursor(int capacity)
    {
        _capacity = capacity;
        _mask = capacity - 1;
    }

    internal readonly int Capacity => (int)_capacity;

    /// <summary>The slot index of <paramref name="position"/>; always in [0, Capacity).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal readonly int SlotOf(long position) => (int)(position & _mask);

    // ---- producer side ------------------------------------------------------------------------

    /// <summary>
    /// Producer: claims the next position if the cached head shows room. False means the ring
    /// only looks full; call <see cref="TryClaimFresh"/> to re-read the consumer's head.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TryClaimCached(out long position)
    {
        position = _indices.PendingTail;
        if (position - _indices.CachedHead >= _capacity) return false;
        _indices.PendingTail = position + 1;
        return true;
    }

    /// <summary>Producer: re-reads the consumer's head (acquire), then claims as <see cref="TryClaimCached"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TryClaimFresh(out long position)
    {
        _indices.CachedHead = Volatile.Read(ref _indices.Head);
        return TryClaimCached(out position);
    }

    /// <summary>
    /// Producer: claims up to <paramref name="wanted"/> consecutive positions starting at
    /// <paramref name="first"/>, re-reading the head at most once; returns how many it claimed.
    /// </summary>
    internal int ClaimUpTo(int wanted, out long first)
    {
        first = _indices.PendingTail;
        long free = _capacity - (first - _indices.CachedHead);
        if (free < wanted)
        {
            _indices.CachedHead = Volatile.Read(ref _indices.Head);
            free = _capacity - (first - _indices.CachedHead);
        }
        int claimed = (int)Math.Min(free, wanted);
        _indices.PendingTail = first + claimed;
        return claimed;
    }

    /// <summary>Producer: makes every claimed-and-written position visible with one release store.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Publish() => Volatile.Write(ref _indices.Tail, _indices.PendingTail);

    /// <summary>Producer: positions claimed but not yet published.</summary>
    internal readonly int Unpublished => (int)(_indices.PendingTail - _indices.Tail);

    // ---- consumer side ------------------------------------------------------------------------

    /// <summary>
    /// Consumer: the next position to read, if the cached tail shows one. False means the ring
    /// only looks empty; call <see cref="TryPeekFresh"/> to re-read the producer's tail.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal readonly bool TryPeekCached(out long position)
    {
        position = _indices.Head;
        return position != _indices.CachedTail;
    }

    /// <summary>Consumer: re-reads the producer's tail (acquire), then peeks as <see cref="TryPeekCached"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TryPeekFresh(out long position)
    {
        _indices.CachedTail = Volatile.Read(ref _indices.Tail);
        return TryPeekCached(out position);
    }

    /// <summary>
    /// Consumer: up to <paramref name="wanted"/> consecutive readable positions starting at
    /// <paramref name="first"/>, re-reading the tail at most once. Nothing is released.
    /// </summary>
    internal int PeekUpTo(int wanted, out long first)
    {
        first = _indices.Head;
        long available = _indices.CachedTail - first;
        if (available < wanted)
        {
            _indices.CachedTail = Volatile.Read(ref _indices.Tail);
            available = _indices.CachedTail - first;
        }
        return (int)Math.Min(available, wanted);
    }

    /// <summary>
    /// Consumer: hands every position below <paramref name="next"/> back to the producer with one
    /// release store. Caller obligation: all reads of those slots are done, and
    /// Head ≤ <paramref name="next"/> ≤ CachedTail.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void ReleaseThrough(long next) => Volatile.Write(ref _indices.Head, next);

    /// <summary>Consumer: re-reads the tail and returns the exact number of entries it may pop now.</summary>
    internal int ConsumerCount()
    {
        _indices.CachedTail = Volatile.Read(ref _indices.Tail);
        return (int)(_indices.CachedTail - _indices.Head);
    }

    // ---- any thread ---------------------------------------------------------------------------

    /// <summary>
    /// Any thread: published entries not yet consumed, as of some moment during the call. Head is
    /// read before Tail so the difference is never negative (Head ≤ Tail at every instant and
    /// both only grow); it can overshoot while both move, so it is clamped to the capacity.
    /// </summary>
    internal readonly int ApproximateCount()
    {
        long head = Volatile.Read(in _indices.Head);
        long tail = Volatile.Read(in _indices.Tail);
        return (int)Math.Min(tail - head, _capacity);
    }
}

// Design note — SubmissionRing: the BATCH submission queue (io_uring's SQ) between one user
// thread (producer) and the kernel (consumer), holding SysCallIn entries struct-of-arrays.
//
// Who may call what:
//   user thread (producer): TryPush, Publish, Unpublished.
//   kernel (consumer):      TryPop, PeekCount.
//   any thread:             Capacity.
// A user-side builder wraps the producer half; the kernel drains the consumer half on its
// entry path. Nothing checks the caller.
//
// Invariant: see SpscCursor. Pushed entries are invisible to the kernel until Publish; a batch
// of k pushes costs k slot writes and one release store of Tail. TryPop releases each entry as
// it reads it, so the producer gets space back without waiting for the whole batch.
//
// Memory ordering: the seven columns of a slot are plain stores, all ordered before the release
// store of Tail in Publish; the kernel's acquire load of Tail orders its column loads after it.
// The kernel's release store of Head after loading the columns orders those loads before the
// user's next acquire of Head and its overwrite of the slot.
//
// Layout: struct-of-arrays, one column per SysCallIn field (Nr, A0..A4, UserData), each
// Capacity long, so the kernel's dispatch on Nr streams through one dense array.
// Allocation: columns are allocated once in the constructor; no method allocates.

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Copra.Abi;

namespace Copra.Hot.Rings;

/// <summary>
/// BATCH submission ring: a user thread pushes <see cref="SysCallIn"/> entries and publishes them
/// in one store; the kernel pops them in order. Struct-of-arrays, power-of-two capacity.
/// </summary>
public sealed class SubmissionRing
{
    private readonly ulong[] _nr;
    private readonly ulong[] _a0;
    private readonly ulong[] _a1;
    private readonly ulong[] _a2;
    private readonly ulong[] _a3;
    private readonly ulong[] _a4;
    private readonly ulong[] _userData;
    private SpscCursor _cursor;

    /// <summary>Creates a ring of <paramref name="capacity"/> entries.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Capacity is not a power of two in [2, 2^30].</exception>
    public SubmissionRing(int capacity)
    {
        RingCapacity.Validate(capacity);
        _nr = new ulong[capacity];
        _a0 = new ulong[capacity];
        _a1 = new ulong[capacity];
        _a2 = new ulong[capacity];
        _a3 = new ulong[capacity];
        _a4 = new ulong[capacity];
        _userData = new ulong[capacity];
        _cursor = new SpscCursor(capacity);
    }

    /// <summary>Maximum number of entries (pushed, published or not, and not yet popped).</summary>
    public int Capacity => _cursor.Capacity;

    /// <summary>User (producer) only: entries pushed since the last <see cref="Publish"/>.</summary>
    public int Unpublished => _cursor.Unpublished;

    /// <summary>User (producer) only: writes <paramref name="entry"/> into the next slot; false if full. Invisible until <see cref="Publish"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryPush(in SysCallIn entry)
    {
        if (!_cursor.TryClaimCached(out long position)) return PushSlow(in entry);
        Write(position, in entry);
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool PushSlow(in SysCallIn entry)
    {
        if (!_cursor.TryClaimFresh(out long position)) return false;
        Write(position, in entry);
        return true;
    }

    /// <summary>User (producer) only: makes every pushed entry visible to the kernel with one release store.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Publish() => _cursor.Publish();

    /// <summary>Kernel (consumer) only: takes the oldest published entry; false if none is published.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryPop(out SysCallIn entry)
    {
        if (!_cursor.TryPeekCached(out long position)) return PopSlow(out entry);
        Read(position, out entry);
        _cursor.ReleaseThrough(position + 1);
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool PopSlow(out SysCallIn entry)
    {
        if (!_cursor.TryPeekFresh(out long position))
        {
            entry = default;
            return false;
        }
        Read(position, out entry);
        _cursor.ReleaseThrough(position + 1);
        return true;
    }

    /// <summary>Kernel (consumer) only: re-reads the tail and returns how many published entries it may pop now.</summary>
    public int PeekCount() => _cursor.ConsumerCount();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Write(long position, in SysCallIn entry)
    {
        int i = _cursor.SlotOf(position);
        Column(_nr, i) = entry.Nr;
        Column(_a0, i) = entry.A0;
        Column(_a1, i) = entry.A1;
        Column(_a2, i) = entry.A2;
        Column(_a3, i) = entry.A3;
        Column(_a4, i) = entry.A4;
        Column(_userData, i) = entry.UserData;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Read(long position, out SysCallIn entry)
    {
        int i = _cursor.SlotOf(position);
        entry.Nr = Column(_nr, i);
        entry.A0 = Column(_a0, i);
        entry.A1 = Column(_a1, i);
        entry.A2 = Column(_a2, i);
        entry.A3 = Column(_a3, i);
        entry.A4 = Column(_a4, i);
        entry.UserData = Column(_userData, i);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ref ulong Column(ulong[] column, int index)
    {
        // SAFETY: callers pass SlotOf(position), which is in [0, Capacity), and every column has
        // exactly Capacity elements; the array is kept alive by this ring.
        return ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(column), index);
    }
}

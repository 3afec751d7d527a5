// Design note — CompletionRing: the BATCH completion queue (io_uring's CQ) from the kernel
// (producer) back to one user thread (consumer), holding SysCallOut entries struct-of-arrays.
//
// Who may call what:
//   kernel (producer):      TryPush, Publish, Unpublished.
//   user thread (consumer): TryPop, PeekCount.
//   any thread:             Capacity.
// Nothing checks the caller.
//
// Invariant: see SpscCursor. Completions written by the kernel stay invisible until Publish, so
// a BATCH's results appear together ("nothing in a batch counts as done until BATCH returns")
// with one release store of Tail.
//
// Memory ordering: the two columns of a slot are plain stores ordered before the release store
// of Tail in Publish; the user's acquire load of Tail orders its column loads after it, and its
// release store of Head orders those loads before the kernel reuses the slot.
//
// Layout: struct-of-arrays, one column for Result and one for UserData, each Capacity long.
// Allocation: columns are allocated once in the constructor; no method allocates.

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Copra.Abi;

namespace Copra.Hot.Rings;

/// <summary>
/// BATCH completion ring: the kernel pushes <see cref="SysCallOut"/> entries and publishes them
/// in one store; the user thread pops them in order. Struct-of-arrays, power-of-two capacity.
/// </summary>
public sealed class CompletionRing
{
    private readonly long[] _result;
    private readonly ulong[] _userData;
    private SpscCursor _cursor;

    /// <summary>Creates a ring of <paramref name="capacity"/> entries.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Capacity is not a power of two in [2, 2^30].</exception>
    public CompletionRing(int capacity)
    {
        RingCapacity.Validate(capacity);
        _result = new long[capacity];
        _userData = new ulong[capacity];
        _cursor = new SpscCursor(capacity);
    }

    /// <summary>Maximum number of entries (pushed, published or not, and not yet popped).</summary>
    public int Capacity => _cursor.Capacity;

    /// <summary>Kernel (producer) only: entries pushed since the last <see cref="Publish"/>.</summary>
    public int Unpublished => _cursor.Unpublished;

    /// <summary>Kernel (producer) only: writes <paramref name="entry"/> into the next slot; false if full. Invisible until <see cref="Publish"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryPush(in SysCallOut entry)
    {
        if (!_cursor.TryClaimCached(out long position)) return PushSlow(in entry);
        Write(position, in entry);
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool PushSlow(in SysCallOut entry)
    {
        if (!_cursor.TryClaimFresh(out long position)) return false;
        Write(position, in entry);
        return true;
    }

    /// <summary>Kernel (producer) only: makes every pushed completion visible to the user with one release store.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Publish() => _cursor.Publish();

    /// <summary>User (consumer) only: takes the oldest published completion; false if none is published.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryPop(out SysCallOut entry)
    {
        if (!_cursor.TryPeekCached(out long position)) return PopSlow(out entry);
        Read(position, out entry);
        _cursor.ReleaseThrough(position + 1);
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool PopSlow(out SysCallOut entry)
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

    /// <summary>User (consumer) only: re-reads the tail and returns how many published completions it may pop now.</summary>
    public int PeekCount() => _cursor.ConsumerCount();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Write(long position, in SysCallOut entry)
    {
        int i = _cursor.SlotOf(position);
        // SAFETY: i = SlotOf(position) is in [0, Capacity) and both columns have Capacity elements.
        Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_result), i) = entry.Result;
        // SAFETY: as above.
        Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_userData), i) = entry.UserData;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Read(long position, out SysCallOut entry)
    {
        int i = _cursor.SlotOf(position);
        // SAFETY: i = SlotOf(position) is in [0, Capacity) and both columns have Capacity elements.
        entry.Result = Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_result), i);
        // SAFETY: as above.
        entry.UserData = Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_userData), i);
    }
}

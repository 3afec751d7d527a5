// Design note — SoaRing: the one fast/slow push/pop skeleton of the BATCH rings. A ring is a
// SpscCursor (indices, caching, publication; its note has the memory-ordering argument) plus a
// set of columns, one array per entry field. The columns are a struct type argument, so the JIT
// specialises each ring and inlines its column stores and loads: no virtual call per entry.
//
// Who may call what: the producer pushes and publishes, the consumer pops and peeks (one thread
// each, nothing checks). Allocation: the columns are allocated once by their constructor.

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Copra.Hot.Rings;

/// <summary>How a ring stores one entry across its columns (slot already masked into [0, Capacity)).</summary>
public interface IRingColumns<TEntry>
{
    void Write(int slot, in TEntry entry);
    void Read(int slot, out TEntry entry);
}

/// <summary>
/// A bounded single-producer single-consumer ring whose entries are stored struct-of-arrays by
/// <typeparamref name="TColumns"/>. Pushed entries stay invisible until <see cref="Publish"/>.
/// </summary>
public abstract class SoaRing<TEntry, TColumns> where TColumns : struct, IRingColumns<TEntry>
{
    private TColumns _columns;
    private SpscCursor _cursor;

    /// <exception cref="ArgumentOutOfRangeException">Capacity is not a power of two in [2, 2^30].</exception>
    protected SoaRing(int capacity, Func<int, TColumns> columns)
    {
        RingCapacity.Validate(capacity);
        _columns = columns(capacity);
        _cursor = new SpscCursor(capacity);
    }

    /// <summary>Maximum number of entries (pushed, published or not, and not yet popped).</summary>
    public int Capacity => _cursor.Capacity;

    /// <summary>Producer only: entries pushed since the last <see cref="Publish"/>.</summary>
    public int Unpublished => _cursor.Unpublished;

    /// <summary>Producer only: writes <paramref name="entry"/> into the next slot; false if full. Invisible until <see cref="Publish"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryPush(in TEntry entry)
    {
        if (!_cursor.TryClaimCached(out long position)) return PushSlow(in entry);
        _columns.Write(_cursor.SlotOf(position), in entry);
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool PushSlow(in TEntry entry)
    {
        if (!_cursor.TryClaimFresh(out long position)) return false;
        _columns.Write(_cursor.SlotOf(position), in entry);
        return true;
    }

    /// <summary>Producer only: makes every pushed entry visible to the consumer with one release store.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Publish() => _cursor.Publish();

    /// <summary>Consumer only: takes the oldest published entry; false if none is published. Its slot is free again at once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryPop(out TEntry entry)
    {
        if (!_cursor.TryPeekCached(out long position)) return PopSlow(out entry);
        _columns.Read(_cursor.SlotOf(position), out entry);
        _cursor.ReleaseThrough(position + 1);
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool PopSlow(out TEntry entry)
    {
        if (!_cursor.TryPeekFresh(out long position))
        {
            entry = default!;
            return false;
        }
        _columns.Read(_cursor.SlotOf(position), out entry);
        _cursor.ReleaseThrough(position + 1);
        return true;
    }

    /// <summary>Consumer only: re-reads the tail and returns how many published entries it may pop now.</summary>
    public int PeekCount() => _cursor.ConsumerCount();

    /// <summary>Element <paramref name="slot"/> of a column, without a bounds check.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    protected internal static ref T At<T>(T[] column, int slot)
    {
        // SAFETY: callers pass a slot from SpscCursor.SlotOf, which is in [0, Capacity), and every column
        // has exactly Capacity elements; the ring keeps the array alive.
        return ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(column), slot);
    }
}

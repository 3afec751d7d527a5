namespace Copra.Cold;

/// <summary>
/// A process's handle table: a slot array with a generation per slot, so a stale handle is caught.
/// <code>
///  31            16 15             0
///  +---------------+---------------+
///  |  generation   |  slot index   |
///  +---------------+---------------+
/// </code>
/// A new handle takes the lowest free slot (0 is the console, which is created with generation 0,
/// so it is the value 0). Closing a slot bumps its generation, so the old value no longer matches.
/// Threads of one process share the table: changes take its lock (cold path, uncontended); a lookup reads
/// without it (see <see cref="TryGet"/>), since every syscall on a handle makes one.
/// </summary>
public sealed class HandleTable
{
    public const int IndexBits = 16;
    public const uint IndexMask = (1u << IndexBits) - 1;
    public const int MaxHandles = 1 << IndexBits;

    struct Slot { public KObject? Obj; public ushort Gen; }

    Slot[] _slots = new Slot[16];
    readonly object _lock = new();
    int _removals;

    /// <summary>
    /// Bumped after every removal (a handle closed or detached). A lookup cached with this value (a thread's last
    /// WAIT_FOR_EVENT handle) still names the same object while it is unchanged: adding never changes what an existing
    /// handle value names.
    /// </summary>
    public int Removals => Volatile.Read(ref _removals);

    public static uint Encode(int index, ushort gen) => (uint)gen << IndexBits | (uint)index;
    public static int IndexOf(uint handle) => (int)(handle & IndexMask);

    /// <summary>Adds at the lowest free slot. Throws EBUSY if the object is exclusive and already has a handle.</summary>
    public uint Add(KObject obj)
    {
        lock (_lock)
        {
            int i = 0;
            while (i < _slots.Length && _slots[i].Obj is not null) i++;
            if (i == MaxHandles) throw KernelError.NoMem("handle table full");
            if (!obj.TryAddHandle()) throw KernelError.Busy($"{obj.Kind} already has a handle");
            if (i == _slots.Length) Volatile.Write(ref _slots, Grown(_slots, Math.Min(_slots.Length * 2, MaxHandles)));
            _slots[i].Obj = obj;
            return Encode(i, _slots[i].Gen);
        }
    }

    /// <summary>A copy at the new size, published whole (a lock-free reader sees the old array or the new one).</summary>
    static Slot[] Grown(Slot[] old, int size)
    {
        var a = new Slot[size];
        old.CopyTo(a, 0);
        return a;
    }

    /// <summary>Looks a handle up. Any value (garbage included) is accepted; a miss is ENOTFOUND.</summary>
    public bool TryGet(ulong handle, out KObject obj)
    {
        obj = null!;
        if (handle > uint.MaxValue) return false;
        uint h = (uint)handle;
        int i = IndexOf(h);
        ushort gen = (ushort)(h >> IndexBits);
        // Without the lock (every syscall on a handle comes through here): read the generation, the object, the
        // generation again. Writers clear the object before they bump the generation (Detach) and fill a slot only
        // at its current generation, so an unchanged, matching generation around the read means the object read is
        // the one that handle names (or null while it is being closed: a miss, as under the lock a moment later).
        var slots = Volatile.Read(ref _slots);
        if (i >= slots.Length) return false;
        ref Slot s = ref slots[i];
        if (Volatile.Read(ref s.Gen) != gen) return false;
        var o = Volatile.Read(ref s.Obj);
        if (o is null || Volatile.Read(ref s.Gen) != gen) return false;
        obj = o;
        return true;
    }

    public KObject Get(ulong handle) =>
        TryGet(handle, out var o) ? o : throw KernelError.NotFound($"no handle 0x{handle:x}");

    public T Get<T>(ulong handle) where T : KObject =>
        Get(handle) as T ?? throw KernelError.NotSupp($"handle 0x{handle:x} is not a {typeof(T).Name}");

    /// <summary>Removes the handle; returns the object (its handle count is not yet dropped) or null.</summary>
    public KObject? Detach(ulong handle)
    {
        if (handle > uint.MaxValue) return null;
        uint h = (uint)handle;
        int i = IndexOf(h);
        lock (_lock)
        {
            if (i >= _slots.Length) return null;
            ref Slot s = ref _slots[i];
            if (s.Obj is null || s.Gen != (ushort)(h >> IndexBits)) return null;
            var o = s.Obj;
            Volatile.Write(ref s.Obj, null);
            Volatile.Write(ref s.Gen, (ushort)(s.Gen + 1));   // after the clear: TryGet's lock-free read relies on the order
            Volatile.Write(ref _removals, _removals + 1);
            return o;
        }
    }

    /// <summary>Puts an object at an exact slot (EXEC's 1..n in the child, the console at 0). The object's handle count is already held.</summary>
    public uint PlaceAt(int index, KObject obj)
    {
        lock (_lock)
        {
            while (index >= _slots.Length) Volatile.Write(ref _slots, Grown(_slots, _slots.Length * 2));
            if (_slots[index].Obj is not null) throw new InvalidOperationException($"slot {index} is taken");
            _slots[index].Obj = obj;
            return Encode(index, _slots[index].Gen);
        }
    }

    /// <summary>Live handles in slot order, for the process-tree printout and the fuzzers' model check.</summary>
    public List<(uint Handle, KObject Obj)> Snapshot()
    {
        lock (_lock)
        {
            var list = new List<(uint, KObject)>();
            for (int i = 0; i < _slots.Length; i++)
                if (_slots[i].Obj is { } o) list.Add((Encode(i, _slots[i].Gen), o));
            return list;
        }
    }

    /// <summary>Empties the table (process exit) and returns what it held.</summary>
    public List<KObject> DetachAll()
    {
        lock (_lock)
        {
            var list = new List<KObject>();
            for (int i = 0; i < _slots.Length; i++)
                if (_slots[i].Obj is { } o) { list.Add(o); Volatile.Write(ref _slots[i].Obj, null); Volatile.Write(ref _slots[i].Gen, (ushort)(_slots[i].Gen + 1)); }
            Volatile.Write(ref _removals, _removals + 1);
            return list;
        }
    }
}

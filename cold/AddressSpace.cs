using Copra.Abi;

namespace Copra.Cold;

/// <summary>
/// A process's virtual address space: a sorted list of regions, each a window onto memory
/// (its private data segment, a PHYSMEM range, a run page, an event area). The layout is fixed
/// and simple: data at <see cref="DataBase"/>, mappings handed out upward from <see cref="MapBase"/>.
/// User accesses and the kernel's checks of user pointers both go through <see cref="TryResolve"/>,
/// so "a user pointer is an allegation until checked" has one implementation.
/// </summary>
public sealed class AddressSpace
{
    public const ulong DataBase = 0x0000_0000_1000_0000;
    public const ulong MapBase = 0x0000_7000_0000_0000;
    /// <summary>Top of user space (canonical lower half); nothing maps at or above it.</summary>
    public const ulong UserTop = 0x0000_8000_0000_0000;

    public sealed record Region(ulong Va, ulong Length, IMemoryWindow Window, bool Writable, IMappable? Source, ulong SourceOffset)
    {
        public ulong End => Va + Length;
    }

    readonly List<Region> _regions = [];
    /// <summary>
    /// What <see cref="TryResolve"/> reads, without the lock: a copy of <see cref="_regions"/> replaced
    /// (never changed in place) under the lock by every map and unmap. A device model resolves its
    /// event area on every access; that lookup takes no lock.
    /// </summary>
    volatile Region[] _view = [];
    readonly object _lock = new();
    ulong _nextMap = MapBase;

    public AddressSpace(int dataSize)
    {
        DataSize = dataSize;
        _regions.Add(new Region(DataBase, (ulong)dataSize, new ArrayWindow(new byte[dataSize]), true, null, 0));
        _view = [.. _regions];
    }

    public int DataSize { get; }

    /// <summary>The current layout, as an identity: it changes with every map and unmap (a resolved view compares it).</summary>
    public object Layout => _view;

    /// <summary>Finds the region holding [va, va+length) entirely; false for wraps, holes and the kernel half.</summary>
    public bool TryResolve(ulong va, ulong length, bool write, out Region region, out ulong offset)
    {
        region = null!; offset = 0;
        if (length == 0) length = 1;
        ulong end = va + length;
        if (end < va || end > UserTop) return false;
        foreach (var r in _view)
        {
            if (va >= r.Va && end <= r.End)
            {
                if (write && !r.Writable) return false;
                region = r; offset = va - r.Va;
                return true;
            }
        }
        return false;
    }

    /// <summary>The bytes at [va, va+length) if mapped; otherwise an empty span and false.</summary>
    public bool TrySpan(ulong va, int length, bool write, out Span<byte> span)
    {
        span = default;
        if (length < 0 || !TryResolve(va, (ulong)length, write, out var r, out var off)) return false;
        span = r.Window.Span(off, length);
        return true;
    }

    /// <summary>
    /// Maps a window and returns its address: at <paramref name="fixedVa"/> exactly when given (page-aligned, below
    /// <see cref="UserTop"/>, overlapping nothing: EINVAL otherwise), else at the next free address upward from
    /// <see cref="MapBase"/> with a guard page after it.
    /// </summary>
    public ulong Map(ulong length, IMemoryWindow window, bool writable, IMappable source, ulong sourceOffset, ulong? fixedVa = null)
    {
        lock (_lock)
        {
            ulong rounded = (length + Page.Mask) & ~Page.Mask;
            ulong va;
            if (fixedVa is ulong want)
            {
                if ((want & Page.Mask) != 0 || want == 0 || want >= UserTop || rounded > UserTop - want)
                    throw KernelError.Inval($"MAP_FIXED at 0x{want:x} is not a page-aligned user range");
                foreach (var r in _regions)
                    if (want < PageEnd(r) && r.Va < want + rounded)
                        throw KernelError.Inval($"MAP_FIXED at 0x{want:x} overlaps a mapping at 0x{r.Va:x}");
                va = want;
            }
            else
            {
                va = _nextMap;
                // Step past anything a MAP_FIXED mapping put in the way (each leaves a guard page after it).
                while (_regions.Find(r => va < PageEnd(r) + Page.Size && r.Va < va + rounded + Page.Size) is { } hit) va = PageEnd(hit) + Page.Size;
                if (va + rounded + Page.Size > UserTop) throw KernelError.NoMem("user address space exhausted");
                _nextMap = va + rounded + Page.Size;   // a guard page between mappings
            }
            _regions.Add(new Region(va, length, window, writable, source, sourceOffset));
            _view = [.. _regions];
            return va;
        }
    }

    static ulong PageEnd(Region r) => (r.End + Page.Mask) & ~Page.Mask;

    /// <summary>MUNMAP: removes the mapping that starts at va, whatever its length (PR #945 ignores the length); EINVAL if none does.</summary>
    public Region Unmap(ulong va)
    {
        lock (_lock)
        {
            int i = _regions.FindIndex(r => r.Va == va && r.Source is not null);
            if (i < 0) throw KernelError.Inval($"no mapping starts at 0x{va:x}");
            var r = _regions[i];
            _regions.RemoveAt(i);
            _view = [.. _regions];
            return r;
        }
    }

    /// <summary>All mappings (not the data segment).</summary>
    public List<Region> Mappings()
    {
        lock (_lock) return _regions.Where(r => r.Source is not null).ToList();
    }

    /// <summary>Removes every mapping (process exit) and returns them.</summary>
    public List<Region> UnmapAll()
    {
        lock (_lock)
        {
            var maps = _regions.Where(r => r.Source is not null).ToList();
            _regions.RemoveAll(r => r.Source is not null);
            _view = [.. _regions];
            return maps;
        }
    }
}

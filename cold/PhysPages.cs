using Copra.Abi;

namespace Copra.Cold;

/// <summary>
/// Per-page bookkeeping of the confidential VM's physical memory: how many user mappings name
/// each page, and its page state (private or shared). SET_MEM_STATE is refused (EBUSY) for a
/// range with any mapped page; MMAP and MUNMAP move the counts. One lock: both sides are cold.
/// </summary>
public sealed class PhysPages
{
    readonly ushort[] _mapCount;
    readonly byte[] _state;
    readonly object _lock = new();

    public PhysPages(ulong bytes, ulong kernelBase, ulong kernelLength)
    {
        Pages = (int)(bytes >> Page.Shift);
        _mapCount = new ushort[Pages];
        _state = new byte[Pages];
        KernelBase = kernelBase;
        KernelLength = kernelLength;
    }

    public int Pages { get; }
    public ulong Bytes => (ulong)Pages << Page.Shift;
    /// <summary>The kernel's own range: never in PHYSMEM, never mappable, never changed by SET_MEM_STATE.</summary>
    public ulong KernelBase { get; }
    public ulong KernelLength { get; }

    /// <summary>Checks a user-given physical range: page-aligned, non-empty, inside memory, outside the kernel.</summary>
    public void CheckRange(ulong pa, ulong length)
    {
        if (length == 0 || ((pa | length) & Page.Mask) != 0) throw KernelError.Inval("range must be page-aligned and non-empty");
        ulong end = pa + length;
        if (end < pa || end > Bytes) throw KernelError.Fault($"range 0x{pa:x}+0x{length:x} is outside physical memory");
        if (pa < KernelBase + KernelLength && KernelBase < end) throw KernelError.Perm("range overlaps the kernel's memory");
    }

    /// <summary>True if [pa, pa+length) lies in memory and outside the kernel (for VM memory at boot).</summary>
    public bool IsGuestRange(ulong pa, ulong length)
    {
        ulong end = pa + length;
        return length > 0 && end >= pa && end <= Bytes && !(pa < KernelBase + KernelLength && KernelBase < end);
    }

    public void AddMapping(ulong pa, ulong length)
    {
        lock (_lock)
        {
            int first = (int)(pa >> Page.Shift), n = (int)(length >> Page.Shift);
            for (int i = first; i < first + n; i++)
                if (_mapCount[i] == ushort.MaxValue) throw KernelError.NoMem("page mapped too often");
            for (int i = first; i < first + n; i++) _mapCount[i]++;
        }
    }

    public void RemoveMapping(ulong pa, ulong length)
    {
        lock (_lock)
        {
            int first = (int)(pa >> Page.Shift), n = (int)(length >> Page.Shift);
            for (int i = first; i < first + n; i++)
            {
                if (_mapCount[i] == 0) throw new InvalidOperationException($"page {i} unmapped more than mapped");
                _mapCount[i]--;
            }
        }
    }

    /// <summary>SET_MEM_STATE: all or nothing; EBUSY if any page in the range is mapped.</summary>
    public void SetState(ulong pa, ulong length, ulong state)
    {
        if (state > MemState.Shared) throw KernelError.Inval($"unknown page state {state}");
        CheckRange(pa, length);
        lock (_lock)
        {
            int first = (int)(pa >> Page.Shift), n = (int)(length >> Page.Shift);
            for (int i = first; i < first + n; i++)
                if (_mapCount[i] != 0) throw KernelError.Busy($"page 0x{(ulong)i << Page.Shift:x} is mapped");
            for (int i = first; i < first + n; i++) _state[i] = (byte)state;
            StateChanges += n;
        }
    }

    public long StateChanges { get; private set; }
    public int MapCount(ulong pa) { lock (_lock) return _mapCount[pa >> Page.Shift]; }
    public ulong State(ulong pa) { lock (_lock) return _state[pa >> Page.Shift]; }
}

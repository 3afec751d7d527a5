// VcpuColumn / VcpuWays: the storage of every per-vCPU table the exit path writes (InFlight, VcpuStateStore,
// DecodeCache, DataTlb, InstructionFetcher). Struct-of-arrays with the vCPU index as the identity, as before
// (`Value[v]`, `Rip[v]`), but each vCPU's entry of a column starts on its own cache-line pair:
//
//   column base (128-byte aligned, pinned)
//   +--------------------------------+--------------------------------+-----
//   | vCPU 0: entry (ways entries)   | vCPU 1: entry (ways entries)   | ...
//   | padded to Stride bytes         | padded to Stride bytes         |
//   +--------------------------------+--------------------------------+-----
//   Stride = RoundUp(ways * sizeof(T), CacheLine.Separation)
//
// Why: with dense arrays (`long[] X`), vCPU 0 and vCPU 1 share the line of every column (and the array header's
// line holds the length every bounds check reads); when two VMs run on two CPUs, every exit's ~30 column writes
// bounced lines between the CPUs (perf put the samples on the bounds checks' loads; two CPUs gave 1.3x one). With a
// stride of one line pair per vCPU an exit touches the same number of lines as before (one per column) and no line
// another CPU writes. The unit is 128 bytes, not 64: the L2 adjacent-line prefetcher pulls 128-byte pairs
// (hot/Rings/CacheLine.cs). Why padded columns and not a row object per vCPU: STYLE.md's struct-of-arrays, index
// as the identity; the lines touched per exit are the same.
//
// Memory: one pinned array per column (the pinned object heap never moves it), the base aligned by hand. The
// column struct keeps that array, so the storage lives as long as the table that holds the column.
//
// No bounds check: an index is the caller's obligation (v < Count, way < Ways), asserted in Debug builds. The
// exit path's vCPU indices come from the VM table built at boot and from the exit record the kernel's own backend
// filled; nothing from user space reaches these indexers unchecked (the syscall layer checks handles first).
using System.Diagnostics;
using System.Runtime.CompilerServices;
using Copra.Hot.Rings;

namespace Copra.Hot.Layout;

/// <summary>What a layout test needs of a column: where a vCPU's entries are.</summary>
public interface IVcpuColumn
{
    /// <summary>vCPUs (rows).</summary>
    int Count { get; }
    /// <summary>Entries per vCPU.</summary>
    int Ways { get; }
    /// <summary>Bytes of one entry.</summary>
    int ElementSize { get; }
    /// <summary>Address of vCPU <paramref name="v"/>'s entry <paramref name="way"/>.</summary>
    nint Address(int v, int way);
}

/// <summary>Allocation shared by the column types.</summary>
static unsafe class VcpuColumnStorage
{
    /// <summary>Distance between two vCPUs' entries of one column.</summary>
    public static int Stride(int bytesPerVcpu) => (Math.Max(1, bytesPerVcpu) + CacheLine.Separation - 1) & ~(CacheLine.Separation - 1);

    /// <summary>A zeroed, pinned block of <paramref name="bytes"/> bytes starting on a <see cref="CacheLine.Separation"/> boundary.</summary>
    public static byte* Allocate(long bytes, out byte[] owner)
    {
        owner = GC.AllocateArray<byte>(checked((int)bytes + CacheLine.Separation), pinned: true);
        // SAFETY: the array is on the pinned object heap, so its address never changes while `owner` is held.
        byte* p = (byte*)Unsafe.AsPointer(ref owner[0]);
        return (byte*)(((nint)p + CacheLine.Separation - 1) & ~(nint)(CacheLine.Separation - 1));
    }
}

/// <summary>
/// One entry of <typeparamref name="T"/> per vCPU, each on its own cache-line pair (file note). <c>col[v]</c> is a
/// reference to vCPU <c>v</c>'s entry. Caller obligation: <c>0 &lt;= v &lt; Count</c> (not checked in Release).
/// </summary>
public readonly unsafe struct VcpuColumn<T> : IVcpuColumn where T : unmanaged
{
    /// <summary>Bytes between two vCPUs' entries: a constant per <typeparamref name="T"/>.</summary>
    public static int Stride => (sizeof(T) + CacheLine.Separation - 1) & ~(CacheLine.Separation - 1);

    readonly byte* _base;
    readonly byte[] _owner;

    /// <summary>A zeroed column for vCPUs 0..<paramref name="count"/>-1.</summary>
    public VcpuColumn(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        _base = VcpuColumnStorage.Allocate((long)count * Stride, out _owner);
        Count = count;
    }

    public int Count { get; }
    public int Ways => 1;
    public int ElementSize => sizeof(T);

    /// <summary>vCPU <paramref name="v"/>'s entry.</summary>
    public ref T this[int v]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            Debug.Assert((uint)v < (uint)Count);
            // SAFETY: v < Count is the caller's obligation, and Count * Stride bytes from _base are this column's (pinned).
            return ref *(T*)(_base + (nint)v * Stride);
        }
    }

    /// <summary>Sets every vCPU's entry to <paramref name="value"/>.</summary>
    public void Fill(T value) { for (int v = 0; v < Count; v++) this[v] = value; }

    public nint Address(int v, int way) => (nint)Unsafe.AsPointer(ref this[v]) + way * sizeof(T);
}

/// <summary>
/// <see cref="Ways"/> entries of <typeparamref name="T"/> per vCPU, contiguous, and each vCPU's group on its own
/// cache-line pairs (file note): <c>col.At(v, i)</c>, <c>col.Row(v)</c>. Caller obligation: <c>v &lt; Count</c>,
/// <c>i &lt; Ways</c> (not checked in Release).
/// </summary>
public readonly unsafe struct VcpuWays<T> : IVcpuColumn where T : unmanaged
{
    readonly byte* _base;
    readonly byte[] _owner;
    readonly int _stride;

    /// <summary>A zeroed column of <paramref name="ways"/> entries per vCPU for vCPUs 0..<paramref name="count"/>-1.</summary>
    public VcpuWays(int count, int ways)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(ways);
        _stride = VcpuColumnStorage.Stride(ways * sizeof(T));
        _base = VcpuColumnStorage.Allocate((long)count * _stride, out _owner);
        Count = count; Ways = ways;
    }

    public int Count { get; }
    public int Ways { get; }
    public int ElementSize => sizeof(T);

    /// <summary>vCPU <paramref name="v"/>'s entry <paramref name="way"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref T At(int v, int way)
    {
        Debug.Assert((uint)v < (uint)Count && (uint)way < (uint)Ways);
        // SAFETY: v < Count and way < Ways are the caller's obligations; the row is Ways entries inside its stride.
        return ref ((T*)(_base + (nint)v * _stride))[way];
    }

    /// <summary>vCPU <paramref name="v"/>'s <see cref="Ways"/> entries.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<T> Row(int v)
    {
        Debug.Assert((uint)v < (uint)Count);
        // SAFETY: as At; the span covers exactly the row's Ways entries.
        return new Span<T>(_base + (nint)v * _stride, Ways);
    }

    public nint Address(int v, int way) => (nint)Unsafe.AsPointer(ref At(v, way));
}

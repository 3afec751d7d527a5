namespace Copra.Cold;

/// <summary>
/// A kernel object behind handles. Objects are global; handles are per process. Kinds are reached
/// through <c>AsX()</c> accessors (as COCONUT's <c>Obj</c> trait does), so one object can be, say, a
/// vCPU, mappable and an event source at once.
/// </summary>
public abstract class KObject
{
    static long s_nextId;

    /// <summary>A global id, for traces and the process-tree printout.</summary>
    public long Id { get; } = Interlocked.Increment(ref s_nextId);

    public abstract string Kind { get; }

    /// <summary>A short description for the process-tree printout.</summary>
    public virtual string Describe() => Kind;

    /// <summary>
    /// True when at most one handle may exist at a time (VM, vCPU). The handle table asks
    /// <see cref="TryAcquireExclusive"/> before adding one.
    /// </summary>
    public virtual bool Exclusive => false;

    int _handles;

    /// <summary>Number of handles naming this object, over all processes.</summary>
    public int HandleCount => Volatile.Read(ref _handles);

    internal bool TryAddHandle()
    {
        if (!Exclusive) { Interlocked.Increment(ref _handles); return true; }
        return Interlocked.CompareExchange(ref _handles, 1, 0) == 0;
    }

    /// <summary>Takes a handle count for an object the kernel itself places (the console at boot).</summary>
    public void TryAddHandleForBoot() => Interlocked.Increment(ref _handles);

    internal void DropHandle(Process owner)
    {
        if (Interlocked.Decrement(ref _handles) == 0) OnLastHandleClosed(owner);
    }

    /// <summary>Called when the last handle closes (by CLOSE, by EXEC moving it away and never re-opening, or by process exit).</summary>
    protected virtual void OnLastHandleClosed(Process lastOwner) { }

    public virtual IFileLike? AsFile() => null;
    public virtual IMappable? AsMappable() => null;
}

/// <summary>What READ/WRITE/SEEK/TRUNCATE work on. Errors are thrown as <see cref="KernelError"/>.</summary>
public interface IFileLike
{
    /// <summary>Bytes a READ at the current position can return (upstream copies only these to the user).</summary>
    long Remaining { get; }
    long Read(Span<byte> dest);
    long Write(ReadOnlySpan<byte> src);
    long Seek(ulong offset, ulong whence);
    long Truncate(ulong length);
}

/// <summary>An object MMAP can map: a window of pages the kernel shares with user space.</summary>
public interface IMappable
{
    /// <summary>Bytes that may be mapped, starting at offset 0.</summary>
    ulong MappableLength { get; }

    /// <summary>Checks the range (page-aligned, inside) and returns the window; throws <see cref="KernelError"/> otherwise.</summary>
    IMemoryWindow Map(Process process, ulong offset, ulong length, bool writable);

    /// <summary>Called when a mapping made by <see cref="Map"/> goes away.</summary>
    void Unmapped(Process process, ulong offset, ulong length);
}

/// <summary>Memory a mapping shows to user space. Native-backed windows live in hot/.</summary>
public interface IMemoryWindow
{
    Span<byte> Span(ulong offset, int length);
}

/// <summary>A window over a managed array (a process's private data segment).</summary>
public sealed class ArrayWindow(byte[] bytes) : IMemoryWindow
{
    public byte[] Bytes { get; } = bytes;
    public Span<byte> Span(ulong offset, int length) => Bytes.AsSpan(checked((int)offset), length);
}

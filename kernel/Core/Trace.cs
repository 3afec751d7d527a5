namespace Copra.Kernel.Core;

public enum TraceKind : byte
{
    ThreadStart, ThreadSlice, ThreadBlock, ThreadWake, ThreadExit, ProcessExit, SysCall,
    GuestEnter, Exit, Deliver, Complete, Forward, Reinject, Fault, Irq, RunPageExit, Migrate,
    /// <summary>End of a thread's slice (kept only for --trace; not hashed).</summary>
    ThreadSliceEnd,
    /// <summary>Inbox depth and run-queue length of a CPU (kept only for --trace; not hashed).</summary>
    QueueDepth,
}

/// <summary>
/// The run's trace: every scheduling and exit-path event, folded into an FNV-1a hash so two runs
/// can be compared byte for byte without storing them. With <see cref="Keep"/> the records are
/// also retained (in a growable struct array) for <c>copra run --trace</c>. Only the deterministic
/// driver's hash is reproducible; measured times never enter it.
/// </summary>
public sealed class Trace
{
    public readonly record struct Record(long Clock, int Cpu, TraceKind Kind, long A, long B, long MeasuredTicks);

    const ulong FnvOffset = 14695981039346656037UL, FnvPrime = 1099511628211UL;
    ulong _hash = FnvOffset;
    readonly object _lock = new();
    Record[] _records = [];
    int _count;

    public bool Keep { get; init; }
    public long Count { get; private set; }
    public ulong Hash => _hash;
    public ReadOnlySpan<Record> Records => _records.AsSpan(0, _count);

    public void Add(Cpu cpu, TraceKind kind, long a = 0, long b = 0, long measuredTicks = 0)
    {
        lock (_lock)
        {
            Count++;
            Mix((ulong)cpu.Clock); Mix((ulong)cpu.Index); Mix((ulong)kind); Mix((ulong)a); Mix((ulong)b);
            if (!Keep) return;
            if (_count == _records.Length) Array.Resize(ref _records, Math.Max(1024, _count * 2));
            _records[_count++] = new Record(cpu.Clock, cpu.Index, kind, a, b, measuredTicks);
        }
    }

    /// <summary>A record for the Chrome trace only: kept when <see cref="Keep"/>, never hashed (so --trace does not change the hash).</summary>
    public void AddDisplayOnly(Cpu cpu, TraceKind kind, long a = 0, long b = 0)
    {
        if (!Keep) return;
        lock (_lock)
        {
            if (_count == _records.Length) Array.Resize(ref _records, Math.Max(1024, _count * 2));
            _records[_count++] = new Record(cpu.Clock, cpu.Index, kind, a, b, 0);
        }
    }

    void Mix(ulong v)
    {
        for (int i = 0; i < 8; i++) { _hash ^= (byte)(v >> (i * 8)); _hash *= FnvPrime; }
    }
}

/// <summary>A small, stable PRNG (xorshift64*): the same seed gives the same sequence on every runtime.</summary>
public struct DetRandom(ulong seed)
{
    ulong _s = seed == 0 ? 0x9E3779B97F4A7C15UL : seed;

    public ulong Next()
    {
        _s ^= _s >> 12; _s ^= _s << 25; _s ^= _s >> 27;
        return _s * 2685821657736338717UL;
    }

    public int Next(int bound) => (int)(Next() % (ulong)bound);
}

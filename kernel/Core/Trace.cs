namespace Copra.Kernel.Core;

/// <summary>
/// What a trace record is. Hashed (the determinism check): one <see cref="Complete"/> per MMIO/IOIO exit, and the
/// scheduling events off the exit path (thread start and exit, process exit, run-page exits, IRQs).
/// The per-exit steps (entry, exit, delivery, forward, re-injection, fault, slices, wakes) are display-only: kept for
/// --trace, never hashed, so hashing costs one record per exit (issue 13; the hash changed once with it).
/// </summary>
public enum TraceKind : byte
{
    ThreadStart, ThreadSlice, ThreadBlock, ThreadWake, ThreadExit, ProcessExit, SysCall,
    GuestEnter, Exit, Deliver, Complete, Forward, Reinject, Fault, Irq, RunPageExit,
    /// <summary>End of a thread's slice (kept only for --trace; not hashed).</summary>
    ThreadSliceEnd,
    /// <summary>Inbox depth and run-queue length of a CPU (kept only for --trace; not hashed).</summary>
    QueueDepth,
    /// <summary>A vCPU's entry begins, before the modelled exit+entry cost is charged (kept only for --trace; not hashed).</summary>
    EntryStart,
}

/// <summary>
/// The run's trace: every scheduling and exit-path event, folded into a hash so two runs can be
/// compared without storing them. One lane per CPU, written only by the host thread stepping that
/// CPU, so adding is lock-free: a lane mixes each record a 64-bit word at a time, and the run's hash
/// folds the lanes in CPU order. In the deterministic driver each lane's sequence is fixed by the
/// seed, so the hash is too; measured times never enter it. With <see cref="Keep"/> the records are
/// also retained per lane for <c>copra run --trace</c>.
/// </summary>
public sealed class Trace
{
    public readonly record struct Record(long Clock, int Cpu, TraceKind Kind, long A, long B, long MeasuredTicks);

    sealed class Lane
    {
#pragma warning disable CS0169 // padding: keep lanes of different CPUs off each other's cache lines
        long _p0, _p1, _p2, _p3, _p4, _p5, _p6, _p7;
#pragma warning restore CS0169
        public ulong Hash = 0x9E3779B97F4A7C15UL;
        public long Count;
        public Record[] Records = [];
        public int Kept;
    }

    readonly Lane[] _lanes;

    public Trace(int cpus)
    {
        _lanes = new Lane[cpus];
        for (int i = 0; i < cpus; i++) _lanes[i] = new Lane();
    }

    public bool Keep { get; init; }

    /// <summary>
    /// Records are hashed (the default). Off for a harness that never reads the hash (the exit-path rigs of exitbench and
    /// the benchmarks): the trace is the deterministic driver's check, not part of the exit, and off it costs one test.
    /// </summary>
    public bool Hashed { get; init; } = true;

    /// <summary>Records hashed, over all CPUs.</summary>
    public long Count { get { long n = 0; foreach (var l in _lanes) n += l.Count; return n; } }

    /// <summary>The run's hash: the lanes' hashes folded in CPU order. A trace that is not <see cref="Hashed"/> has none.</summary>
    public ulong Hash
    {
        get
        {
            if (!Hashed) throw new InvalidOperationException("this trace is not hashed (Trace.Hashed is off)");
            ulong h = 14695981039346656037UL;
            foreach (var l in _lanes) h = Mix(h, l.Hash);
            return h;
        }
    }

    /// <summary>The kept records of one CPU, in the order that CPU made them.</summary>
    public ReadOnlySpan<Record> RecordsOf(int cpu) => _lanes[cpu].Records.AsSpan(0, _lanes[cpu].Kept);

    /// <summary>Every kept record, CPU by CPU (a copy: for tests and tools, not the run).</summary>
    public Record[] Records
    {
        get
        {
            var all = new List<Record>(KeptCount);
            foreach (var l in _lanes) all.AddRange(l.Records.AsSpan(0, l.Kept));
            return all.ToArray();
        }
    }

    public int KeptCount { get { int n = 0; foreach (var l in _lanes) n += l.Kept; return n; } }

    /// <summary>Adds a record to the lane of the CPU this host thread is stepping (<paramref name="cpu"/> outside the drivers).</summary>
    public void Add(Cpu cpu, TraceKind kind, long a = 0, long b = 0, long measuredTicks = 0) =>
        AddOn(Kernel.CurrentCpu ?? cpu, kind, a, b, measuredTicks);

    /// <summary>
    /// Adds a record to <paramref name="here"/>'s lane. Caller obligation: the calling host thread is the one stepping
    /// <paramref name="here"/> (or no driver runs). The exit path knows its CPU, so it skips the thread-local lookup.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]   // once per exit (its Complete record): no frame
    public void AddOn(Cpu here, TraceKind kind, long a = 0, long b = 0, long measuredTicks = 0)
    {
        if (!Hashed) { if (Keep) Keep1(_lanes[here.Index], new Record(here.Clock, here.Index, kind, a, b, measuredTicks)); return; }
        var lane = _lanes[here.Index];
        lane.Count++;
        ulong h = lane.Hash;
        h = Mix(h, (ulong)here.Clock);
        h = Mix(h, (ulong)here.Index << 8 | (byte)kind);
        h = Mix(h, (ulong)a);
        lane.Hash = Mix(h, (ulong)b);
        if (Keep) Keep1(lane, new Record(here.Clock, here.Index, kind, a, b, measuredTicks));
    }

    /// <summary>
    /// <see cref="AddOn"/> for a record whose two values are small, the exit's Complete (its vCPU and its kind), with the
    /// same obligation: the clock and then one word for the kind and both values are mixed, not four words (the CPU is
    /// the lane's, and the run's hash folds the lanes in CPU order; ~10 instructions of every exit; the hash changed with
    /// it, 2026-12-01).
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void AddSmallOn(Cpu here, TraceKind kind, int a, byte b)
    {
        if (!Hashed) { if (Keep) Keep1(_lanes[here.Index], new Record(here.Clock, here.Index, kind, a, b, 0)); return; }
        var lane = _lanes[here.Index];
        lane.Count++;
        // A vCPU's global index is below 2^32: the fields do not overlap.
        lane.Hash = Mix(Mix(lane.Hash, (ulong)here.Clock), (ulong)(uint)a << 16 | (ulong)b << 8 | (byte)kind);
        if (Keep) Keep1(lane, new Record(here.Clock, here.Index, kind, a, b, 0));
    }

    /// <summary>A record for the Chrome trace only: kept when <see cref="Keep"/>, never hashed (so --trace does not change the hash).</summary>
    public void AddDisplayOnly(Cpu cpu, TraceKind kind, long a = 0, long b = 0)
    {
        if (!Keep) return;
        var here = Kernel.CurrentCpu ?? cpu;
        Keep1(_lanes[here.Index], new Record(here.Clock, here.Index, kind, a, b, 0));
    }

    /// <summary><see cref="AddDisplayOnly"/> on <paramref name="here"/>'s lane, with <see cref="AddOn"/>'s obligation. Inlined: off, it is one test.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void AddDisplayOnlyOn(Cpu here, TraceKind kind, long a = 0, long b = 0)
    {
        if (!Keep) return;
        Keep1(_lanes[here.Index], new Record(here.Clock, here.Index, kind, a, b, 0));
    }

    /// <summary>A display-only record at an explicit virtual <paramref name="clock"/> (a tracer reporting a stage after the fact), with <see cref="AddOn"/>'s obligation.</summary>
    public void AddDisplayOnlyAt(Cpu here, long clock, TraceKind kind, long a = 0, long b = 0)
    {
        if (!Keep) return;
        Keep1(_lanes[here.Index], new Record(clock, here.Index, kind, a, b, 0));
    }

    static void Keep1(Lane lane, in Record r)
    {
        if (lane.Kept == lane.Records.Length) Array.Resize(ref lane.Records, Math.Max(1024, lane.Kept * 2));
        lane.Records[lane.Kept++] = r;
    }

    /// <summary>One 64-bit word into the hash (multiply-rotate; order-sensitive).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    static ulong Mix(ulong h, ulong v) => System.Numerics.BitOperations.RotateLeft((h ^ v) * 0x9E3779B97F4A7C15UL, 29) * 0xBF58476D1CE4E5B9UL;
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

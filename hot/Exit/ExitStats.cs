using Copra.Hot.Layout;

namespace Copra.Hot.Exit;

/// <summary>The kinds an exit is reported under in the per-kind table.</summary>
public enum ExitKind : byte { MmioRead, MmioWrite, MmioString, MmioAlu, PortIn, PortOut, PortString, Forwarded, Reinjected, Faulted, Hlt, Cpuid, Msr, Other }

/// <summary>The counters of <see cref="ExitStats"/>; each CPU keeps its own and reads sum them.</summary>
public enum Counter
{
    Taken, Mmio, Io, Completed, Forwarded, Reinjected, Faulted, Aborted,
    ToVmm, Hlt, Cpuid, Msr, Shutdown, DecodeMismatch, IcedFallbacks, RepResumed, DeviceRoundTrips, DevicesLost, ForwardFailures,
    TdReads, TdWrites, Transitions, CrossCpuWakes,
    HardwareChecked, MismatchAddress, MismatchSize, MismatchDirection, MismatchData,
    /// <summary>Locked read-modify-writes that found the location changed (a failed CAS on RAM, a device's Mismatch) and ran again.</summary>
    LockRetries,
    SegmentFaults, AlignmentFaults, IoPrivilegeFaults, SingleStepTraps,
}

/// <summary>
/// Exit accounting. Counters are per CPU: the host thread stepping a CPU adds to that CPU's lane
/// with plain stores (no lock, no shared Interlocked); a read sums the lanes. A caller outside both
/// drivers (no current CPU) adds to a shared lane atomically. For MMIO and I/O exits: taken =
/// completed + forwarded + reinjected + faulted + aborted + in flight, and a finished run has none in
/// flight. Samples are kept per kind in preallocated arrays (the exit path records without
/// allocating); past the capacity, further samples are not kept (counts still are). Modelled (and hardware) samples
/// are kept for every exit, measured ones for the timed exits only (<see cref="TimeThis"/>: one in
/// <see cref="TimeEvery"/>), each with its own kept count. Samples are per CPU
/// too: CPU c keeps its own in its stripe of each array, [c × stripe, c × stripe + kept), with a plain
/// store and its own kept count; a report's read gathers the stripes (a copy when there is more than one
/// CPU). A shared slot counter made the two CPUs of the two-VM scenario contend on every exit.
/// </summary>
public sealed unsafe class ExitStats
{
    public const int KindCount = (int)ExitKind.Other + 1;
    public const int SampleCapacity = 1 << 18;
    const int CounterCount = (int)Counter.SingleStepTraps + 1;
    // A lane: 8 words of padding, the counters, the per-kind counts, the timing sampler's state (its xorshift and the
    // exits left until the next timed one), 8 words of padding (no two CPUs' words share a line).
    // LaneWords is a power of two at least the words used with 8 of padding after them: a lane's address is then a shift
    // of the CPU's index, not a multiply (a shift and an add), in each of the counts an exit makes. LaneFits does not
    // compile if the lane outgrows it (a constant's overflow is a compile-time error).
    const int Pad = 8, KindBase = Pad + CounterCount, SamplerWord = KindBase + KindCount, CountdownWord = SamplerWord + 1,
        LaneUsed = CountdownWord + 1 + Pad, LaneWords = 128;
    const uint LaneFits = (uint)LaneWords - (uint)LaneUsed;

    // The lanes, one after another in one pinned block (lane c at c × LaneWords; the shared lane last). Why a block and
    // not an array per lane: a counter add is then one compare and one add at a computed address (~3 instructions),
    // not two bounds-checked loads (~12), and the exit path adds four or five per exit.
    readonly long* _lanes;
    readonly long[] _laneOwner;   // keeps the pinned block alive
    readonly int _cpus;

    /// <summary>Adds to a counter in the lane of CPU <paramref name="cpu"/> (the CPU this host thread steps), or atomically to the shared lane when <paramref name="cpu"/> is negative.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void Add(int cpu, Counter c, long n = 1)
    {
        if ((uint)cpu < (uint)_cpus) _lanes[cpu * LaneWords + Pad + (int)c] += n;
        else Interlocked.Add(ref _lanes[_cpus * LaneWords + Pad + (int)c], n);
    }

    /// <summary><see cref="Add"/> by one in the lane of <paramref name="cpu"/>, a CPU's own index (a <c>Cpu</c> object's,
    /// never outside the drivers' range): no test of the range, for a count the exit makes on its own CPU.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void CountOn(int cpu, Counter c)
    {
        System.Diagnostics.Debug.Assert((uint)cpu < (uint)_cpus);
        _lanes[cpu * LaneWords + Pad + (int)c]++;
    }

    /// <summary>
    /// An exit taken on CPU <paramref name="cpu"/>: counts <see cref="Counter.Taken"/> and its reason's counter, and says
    /// whether it is timed: always when <paramref name="timeAll"/> (a tracer is on), else <see cref="TimeThis"/>'s draw.
    /// One lane computation for the three (each is made on every exit). A caller outside both drivers is counted in the
    /// shared lane, and timed.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public bool TakeExit(int cpu, Counter reason, bool timeAll)
    {
        if ((uint)cpu >= (uint)_cpus)
        {
            Add(cpu, Counter.Taken);
            Add(cpu, reason);
            return true;
        }
        return TakeExitOn(cpu, reason, timeAll);
    }

    /// <summary><see cref="TakeExit"/> for the exit path, whose <paramref name="cpu"/> is always a CPU's own index (the
    /// kernel passes a <c>Cpu</c> object's; hot/Layout/Unchecked.cs): without the range test.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public bool TakeExitOn(int cpu, Counter reason, bool timeAll)
    {
        System.Diagnostics.Debug.Assert((uint)cpu < (uint)_cpus);
        long* lane = _lanes + cpu * LaneWords;
        lane[Pad + (int)Counter.Taken]++;
        lane[Pad + (int)reason]++;
        return timeAll || Draw(lane);
    }

    /// <summary>
    /// Whether the exit CPU <paramref name="cpu"/> takes now is timed: every exit with <see cref="TimeEvery"/> 1, else one in
    /// <see cref="TimeEvery"/> on average, at intervals the CPU's own xorshift draws (deterministic, and not in step with a
    /// workload's loop, as a fixed stride could be). Why sample: the four LFENCE+RDTSC reads that time an exit's two kernel
    /// segments cost ~190 TSC cycles on an AMD EPYC host whose whole MMIO exit costs ~460 (docs/design.md, "Timing one exit
    /// in N"). Why a countdown to a drawn interval rather than a draw per exit: an untimed exit then costs a decrement and a
    /// branch, not the xorshift's six operations and their stores (~15 instructions per exit).
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public bool TimeThis(int cpu)
    {
        if ((uint)cpu >= (uint)_cpus) return true;
        return Draw(_lanes + cpu * LaneWords);
    }

    /// <summary>One exit of <paramref name="lane"/>'s countdown: true when it reaches the drawn exit (and draws the next).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    bool Draw(long* lane)
    {
        if (--lane[CountdownWord] != 0) return false;
        lane[CountdownWord] = NextInterval(ref lane[SamplerWord]);
        return true;
    }

    /// <summary>Exits until the next timed one: uniform in 1 .. 2N − 1 (mean N = <see cref="TimeEvery"/>; always 1 for N = 1).</summary>
    long NextInterval(ref long state)
    {
        ulong x = (ulong)state;
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        state = (long)x;
        return 1 + (long)(x % (ulong)(2 * TimeEvery - 1));
    }

    /// <summary>Exits timed: every one (1), or one in this many, chosen at random per CPU (a power of two).</summary>
    public int TimeEvery { get; }

    long Sum(int word)
    {
        long n = 0;
        for (int l = 0; l <= _cpus; l++) n += Volatile.Read(ref _lanes[l * LaneWords + word]);
        return n;
    }

    /// <summary>One CPU's part of a counter (a harness stepping one CPU polls this instead of the sum).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]   // the exit rig polls it after every step
    public long GetOn(int cpu, Counter c)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)cpu, (uint)_cpus, nameof(cpu));
        return Volatile.Read(ref _lanes[cpu * LaneWords + Pad + (int)c]);
    }

    /// <summary>A counter summed over every CPU.</summary>
    public long Get(Counter c) => Sum(Pad + (int)c);

    public long Taken => Get(Counter.Taken);
    public long Mmio => Get(Counter.Mmio);
    public long Io => Get(Counter.Io);
    public long Completed => Get(Counter.Completed);
    public long Forwarded => Get(Counter.Forwarded);
    public long Reinjected => Get(Counter.Reinjected);
    public long Faulted => Get(Counter.Faulted);
    public long Aborted => Get(Counter.Aborted);
    public long ToVmm => Get(Counter.ToVmm);
    public long Hlt => Get(Counter.Hlt);
    public long Cpuid => Get(Counter.Cpuid);
    public long Msr => Get(Counter.Msr);
    public long Shutdown => Get(Counter.Shutdown);
    public long DecodeMismatch => Get(Counter.DecodeMismatch);
    public long IcedFallbacks => Get(Counter.IcedFallbacks);
    public long RepResumed => Get(Counter.RepResumed);
    public long LockRetries => Get(Counter.LockRetries);
    public long DeviceRoundTrips => Get(Counter.DeviceRoundTrips);
    public long DevicesLost => Get(Counter.DevicesLost);
    public long ForwardFailures => Get(Counter.ForwardFailures);
    public long TdReads => Get(Counter.TdReads);
    public long TdWrites => Get(Counter.TdWrites);
    public long Transitions => Get(Counter.Transitions);
    public long CrossCpuWakes => Get(Counter.CrossCpuWakes);
    /// <summary>
    /// Hardware exits (KVM) whose kernel decode was checked against what the hardware reported, and the
    /// disagreements by what disagreed (each also counts in <see cref="DecodeMismatch"/>).
    /// </summary>
    public long HardwareChecked => Get(Counter.HardwareChecked);
    public long MismatchAddress => Get(Counter.MismatchAddress);
    public long MismatchSize => Get(Counter.MismatchSize);
    public long MismatchDirection => Get(Counter.MismatchDirection);
    public long MismatchData => Get(Counter.MismatchData);
    /// <summary>
    /// Faults the kernel's own checks raised before an element was performed (each also counts in <see cref="Faulted"/>):
    /// segment and canonical-address checks (#GP/#SS/#NP), alignment checks (#AC), port-I/O permission (#GP); and the
    /// single-step traps (#DB) raised after an instruction (or a REP iteration) completed, which count as completed.
    /// </summary>
    public long SegmentFaults => Get(Counter.SegmentFaults);
    public long AlignmentFaults => Get(Counter.AlignmentFaults);
    public long IoPrivilegeFaults => Get(Counter.IoPrivilegeFaults);
    public long SingleStepTraps => Get(Counter.SingleStepTraps);
    public long AccessesTaken => Mmio + Io;
    public long InFlight => AccessesTaken - Completed - Forwarded - Reinjected - Faulted - Aborted;

    /// <summary>Finished exits per kind, summed over every CPU (a fresh array: a report's read).</summary>
    public long[] Count
    {
        get
        {
            var c = new long[KindCount];
            for (int k = 0; k < KindCount; k++) c[k] = Sum(KindBase + k);
            return c;
        }
    }

    /// <summary>Per kind, the kept samples in per-CPU stripes (see the class comment); with one CPU, the first <see cref="Samples"/>.</summary>
    public readonly long[][] Measured = new long[KindCount][];
    public readonly long[][] Modelled = new long[KindCount][];
    /// <summary>Per kind: the hardware round trip (TSC around KVM_RUN) of each exit, when the backend is real hardware.</summary>
    public readonly long[]?[] Hardware = new long[KindCount][];
    // Per CPU: the samples kept per kind (modelled and hardware: every exit), then the measured samples kept per kind
    // (timed exits only), padded so no two CPUs' counts share a cache line.
    readonly int[][] _kept;
    readonly int _stripe;
    const int TimedBase = KindCount, KeptWords = 2 * KindCount + 16;

    /// <summary>Keeps up to <paramref name="capacity"/> samples per kind (a sweep that only needs counts keeps few), and times
    /// every exit, or one in <paramref name="timeEvery"/> (a power of two up to <see cref="MaxTimeEvery"/>).</summary>
    public ExitStats(int capacity = SampleCapacity, int cpus = 1, int timeEvery = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        ArgumentOutOfRangeException.ThrowIfLessThan(cpus, 1);
        if (!IsValidTimeEvery(timeEvery)) throw new ArgumentOutOfRangeException(nameof(timeEvery), timeEvery, $"a power of two from 1 to {MaxTimeEvery}");
        _cpus = cpus;
        TimeEvery = timeEvery;
        _laneOwner = GC.AllocateArray<long>((cpus + 1) * LaneWords, pinned: true);
        // SAFETY: the array is on the pinned object heap, so its address never changes while _laneOwner holds it.
        _lanes = (long*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref _laneOwner[0]);
        for (int c = 0; c < cpus; c++)
        {
            long* lane = _lanes + c * LaneWords;
            lane[SamplerWord] = unchecked((long)(0x9E3779B97F4A7C15UL + (ulong)c * 0xBF58476D1CE4E5B9UL));
            lane[CountdownWord] = NextInterval(ref lane[SamplerWord]);
        }
        Capacity = capacity;
        _stripe = capacity / cpus;
        _kept = new int[cpus][];
        for (int i = 0; i < cpus; i++) _kept[i] = new int[KeptWords];
        for (int i = 0; i < KindCount; i++) { Measured[i] = new long[capacity]; Modelled[i] = new long[capacity]; }
    }

    /// <summary>Samples kept per kind.</summary>
    public int Capacity { get; }

    /// <summary>Keep hardware round-trip samples too (the KVM backend turns this on).</summary>
    public void EnableHardware()
    {
        for (int i = 0; i < KindCount; i++) Hardware[i] ??= new long[Capacity];
    }

    public bool HasHardware => Hardware[0] is not null;

    /// <summary>
    /// Records one finished exit: the count in the CPU's lane, the modelled (and hardware) sample in the CPU's stripe,
    /// and for a <paramref name="timed"/> exit (<see cref="TimeThis"/>) the measured sample in the CPU's stripe of timed
    /// samples; all with plain stores (the CPU's host thread owns them). A sample past the stripe is counted but not kept.
    /// A caller outside both drivers (no current CPU) is counted in the shared lane and keeps no sample. A
    /// <paramref name="completed"/> access is also counted under <see cref="Counter.Completed"/>.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]   // into the exit's end (EndExit) and the run-page exit: one frame fewer per exit
    public void Record(int cpu, ExitKind kind, bool timed, long measuredTicks, long modelledCycles, long hardwareTicks = 0, bool completed = false)
    {
        if ((uint)cpu >= (uint)_cpus)
        {
            long* shared = _lanes + _cpus * LaneWords;
            Interlocked.Increment(ref shared[KindBase + (int)kind]);
            if (completed) Interlocked.Increment(ref shared[Pad + (int)Counter.Completed]);
            return;
        }
        RecordOn(cpu, kind, timed, measuredTicks, modelledCycles, hardwareTicks, completed);
    }

    /// <summary><see cref="Record(int, ExitKind, bool, long, long, long, bool)"/> for the exit path, whose
    /// <paramref name="cpu"/> is always a CPU's own index (<see cref="TakeExitOn"/>): without the range test.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void RecordOn(int cpu, ExitKind kind, bool timed, long measuredTicks, long modelledCycles, long hardwareTicks, bool completed)
    {
        System.Diagnostics.Debug.Assert((uint)cpu < (uint)_cpus);
        int k = (int)kind;
        long* lane = _lanes + cpu * LaneWords;
        lane[KindBase + k]++;
        // The exit path's Completed count, in the lane already in hand (an Add of its own would compute it again).
        if (completed) lane[Pad + (int)Counter.Completed]++;
        // Unchecked below: cpu < _cpus (the caller's obligation, tested in Record), k < KindCount (an ExitKind), and a sample's index
        // cpu * _stripe + kept < _cpus * _stripe <= Capacity, each array's length (hot/Layout/Unchecked.cs).
        var row = Unchecked.At(_kept, cpu);
        ref int kept = ref Unchecked.At(row, k);
        if (kept < _stripe)
        {
            int i = cpu * _stripe + kept;
            Unchecked.At(Unchecked.At(Modelled, k), i) = modelledCycles;
            if (Unchecked.At(Hardware, k) is { } h) Unchecked.At(h, i) = hardwareTicks;
            Volatile.Write(ref kept, kept + 1);
        }
        if (!timed) return;
        ref int keptTimed = ref Unchecked.At(row, TimedBase + k);
        if (keptTimed >= _stripe) return;
        Unchecked.At(Unchecked.At(Measured, k), cpu * _stripe + keptTimed) = measuredTicks;
        Volatile.Write(ref keptTimed, keptTimed + 1);
    }

    /// <summary>A timed exit (<see cref="Record(int, ExitKind, bool, long, long, long, bool)"/> with timed true).</summary>
    public void Record(int cpu, ExitKind kind, long measuredTicks, long modelledCycles, long hardwareTicks = 0) =>
        Record(cpu, kind, timed: true, measuredTicks, modelledCycles, hardwareTicks);

    /// <summary>The largest <see cref="TimeEvery"/>.</summary>
    public const int MaxTimeEvery = 1 << 16;
    /// <summary>The default for a run: one exit in 16 timed (docs/design.md, "Timing one exit in N").</summary>
    public const int DefaultTimeEvery = 16;
    public static bool IsValidTimeEvery(int n) => n >= 1 && n <= MaxTimeEvery && (n & (n - 1)) == 0;

    /// <summary>Forgets the kept samples (not the counts): a measurement phase after a warm-up. Not while CPUs run.</summary>
    public void ResetSamples()
    {
        foreach (var kept in _kept) Array.Clear(kept);
    }

    /// <summary>Every CPU's kept samples of one kind, stripe after stripe: the array itself with one CPU, a copy with more.</summary>
    ReadOnlySpan<long> Gather(long[]? samples, int k)
    {
        var parts = Parts(samples, k);
        if (parts.Length == 1) return parts[0].Span;
        var all = new List<long>();
        foreach (var p in parts) all.AddRange(p.Span);
        return System.Runtime.InteropServices.CollectionsMarshal.AsSpan(all);
    }

    /// <summary>Each CPU's kept samples of one kind (empty without that array): a report reads them without copying.</summary>
    public ReadOnlyMemory<long>[] Parts(long[]? samples, ExitKind kind) => Parts(samples, (int)kind);

    ReadOnlyMemory<long>[] Parts(long[]? samples, int k)
    {
        if (samples is null) return [ReadOnlyMemory<long>.Empty];
        // Measured samples are kept for timed exits only, so they have their own kept counts.
        int at = ReferenceEquals(samples, Measured[k]) ? TimedBase + k : k;
        var parts = new ReadOnlyMemory<long>[_kept.Length];
        for (int c = 0; c < parts.Length; c++) parts[c] = samples.AsMemory(c * _stripe, Volatile.Read(ref _kept[c][at]));
        return parts;
    }

    public double HardwareMedian(ExitKind k) => Median(HardwareSamples(k));

    public double HardwareMedianAll() => MedianAll(Hardware);

    /// <summary>Modelled samples of one kind kept over every CPU (one per exit, up to the capacity).</summary>
    public int Samples(ExitKind kind)
    {
        int n = 0;
        foreach (var kept in _kept) n += Volatile.Read(ref kept[(int)kind]);
        return n;
    }

    /// <summary>Measured samples of one kind kept over every CPU (one per timed exit, up to the capacity).</summary>
    public int TimedSamples(ExitKind kind)
    {
        int n = 0;
        foreach (var kept in _kept) n += Volatile.Read(ref kept[TimedBase + (int)kind]);
        return n;
    }

    /// <summary>The kept samples of one kind, for reports: measured TSC ticks of the kernel's code, modelled platform cycles, hardware round-trip ticks (empty without hardware).</summary>
    public ReadOnlySpan<long> MeasuredSamples(ExitKind kind) => Gather(Measured[(int)kind], (int)kind);
    public ReadOnlySpan<long> ModelledSamples(ExitKind kind) => Gather(Modelled[(int)kind], (int)kind);
    public ReadOnlySpan<long> HardwareSamples(ExitKind kind) => Gather(Hardware[(int)kind], (int)kind);

    /// <summary>
    /// The median of <paramref name="samples"/> (the mean of the middle two for an even count). By
    /// selection on a copy, linear in the count: a report of a long run costs a few instructions per
    /// exit, not a sort's (which showed as ~1,600 instructions per exit with --json or the tables).
    /// </summary>
    public static double Median(ReadOnlySpan<long> samples) => samples.Length == 0 ? 0 : MedianInPlace(samples.ToArray());

    /// <summary>The median, reordering <paramref name="s"/>.</summary>
    static double MedianInPlace(Span<long> s)
    {
        if (s.Length == 0) return 0;
        int m = s.Length / 2;
        long hi = Select(s, m);
        if (s.Length % 2 == 1) return hi;
        // After selecting m, everything left of m is <= s[m]: the lower middle is their maximum.
        long lo = long.MinValue;
        foreach (long x in s[..m]) if (x > lo) lo = x;
        return (lo + hi) / 2.0;
    }

    /// <summary>Quickselect (median-of-three pivot, Hoare partition): s[k] ends as the k-th smallest, smaller ones left of it.</summary>
    static long Select(Span<long> s, int k)
    {
        int lo = 0, hi = s.Length - 1;
        while (hi > lo)
        {
            int mid = lo + (hi - lo) / 2;
            if (s[mid] < s[lo]) (s[mid], s[lo]) = (s[lo], s[mid]);
            if (s[hi] < s[lo]) (s[hi], s[lo]) = (s[lo], s[hi]);
            if (s[hi] < s[mid]) (s[hi], s[mid]) = (s[mid], s[hi]);
            long pivot = s[mid];
            int i = lo, j = hi;
            while (i <= j)
            {
                while (s[i] < pivot) i++;
                while (s[j] > pivot) j--;
                if (i <= j) { (s[i], s[j]) = (s[j], s[i]); i++; j--; }
            }
            if (k <= j) hi = j;
            else if (k >= i) lo = i;
            else return s[k];
        }
        return s[k];
    }

    public double MeasuredMedian(ExitKind k) => Median(MeasuredSamples(k));
    public double ModelledMedian(ExitKind k) => Median(ModelledSamples(k));

    /// <summary>All measured samples over every kind.</summary>
    public double MeasuredMedianAll() => MedianAll(Measured);

    public double ModelledMedianAll() => MedianAll(Modelled);

    double MedianAll(long[]?[] arrays)
    {
        var all = new List<long>();
        for (int k = 0; k < KindCount; k++) all.AddRange(Gather(arrays[k], k));
        return MedianInPlace(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(all));
    }
}

namespace Copra.Kernel.Exit;

/// <summary>The kinds an exit is reported under in the per-kind table.</summary>
public enum ExitKind : byte { MmioRead, MmioWrite, MmioString, MmioAlu, PortIn, PortOut, PortString, Forwarded, Reinjected, Faulted, Hlt, Cpuid, Msr, Other }

/// <summary>
/// Exit accounting (counters are updated atomically: the parallel driver's CPUs share them). For MMIO and I/O exits: taken = completed + forwarded + reinjected + faulted +
/// aborted + in flight, and a finished run has none in flight. Samples are kept per kind in
/// preallocated arrays (the exit path records without allocating); past the capacity, further
/// samples are not kept (counts still are).
/// </summary>
public sealed class ExitStats
{
    public const int KindCount = (int)ExitKind.Other + 1;
    public const int SampleCapacity = 1 << 18;

    public long Taken, Mmio, Io, Completed, Forwarded, Reinjected, Faulted, Aborted;
    public long ToVmm, Hlt, Cpuid, Msr, Shutdown, DecodeMismatch, IcedFallbacks, RepResumed, DeviceRoundTrips, DevicesLost, ForwardFailures;
    public long TdReads, TdWrites, Transitions, CrossCpuWakes;
    /// <summary>
    /// Hardware exits (KVM) whose kernel decode was checked against what the hardware reported, and the
    /// disagreements by what disagreed (each also counts in <see cref="DecodeMismatch"/>).
    /// </summary>
    public long HardwareChecked, MismatchAddress, MismatchSize, MismatchDirection, MismatchData;
    public long AccessesTaken => Mmio + Io;
    public long InFlight => AccessesTaken - Completed - Forwarded - Reinjected - Faulted - Aborted;

    public readonly long[] Count = new long[KindCount];
    public readonly long[][] Measured = new long[KindCount][];
    public readonly long[][] Modelled = new long[KindCount][];
    /// <summary>Per kind: the hardware round trip (TSC around KVM_RUN) of each exit, when the backend is real hardware.</summary>
    public readonly long[]?[] Hardware = new long[KindCount][];
    readonly int[] _n = new int[KindCount];

    /// <summary>Keeps up to <paramref name="capacity"/> samples per kind (a sweep that only needs counts keeps few).</summary>
    public ExitStats(int capacity = SampleCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        Capacity = capacity;
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
    /// Records one finished exit. CPUs of the parallel driver record concurrently, so the count and
    /// the sample slot are taken atomically; a slot past the capacity is counted but not kept.
    /// </summary>
    public void Record(ExitKind kind, long measuredTicks, long modelledCycles, long hardwareTicks = 0)
    {
        int k = (int)kind;
        Interlocked.Increment(ref Count[k]);
        int n = Interlocked.Increment(ref _slots[k]) - 1;
        if (n >= Capacity) return;
        Measured[k][n] = measuredTicks;
        Modelled[k][n] = modelledCycles;
        if (Hardware[k] is { } h) h[n] = hardwareTicks;
        Interlocked.Increment(ref _n[k]);
    }

    readonly int[] _slots = new int[KindCount];

    /// <summary>Forgets the kept samples (not the counts): a measurement phase after a warm-up. Not while CPUs run.</summary>
    public void ResetSamples()
    {
        Array.Clear(_n);
        Array.Clear(_slots);
    }

    public double HardwareMedian(ExitKind k) => Hardware[(int)k] is { } h ? Median(h.AsSpan(0, _n[(int)k])) : 0;

    public double HardwareMedianAll()
    {
        var all = new List<long>();
        for (int k = 0; k < KindCount; k++) if (Hardware[k] is { } h) all.AddRange(h.AsSpan(0, _n[k]).ToArray());
        return Median(all.ToArray());
    }

    public int Samples(ExitKind kind) => _n[(int)kind];

    /// <summary>The kept samples of one kind, for reports: measured TSC ticks of the kernel's code, modelled platform cycles, hardware round-trip ticks (empty without hardware).</summary>
    public ReadOnlySpan<long> MeasuredSamples(ExitKind kind) => Measured[(int)kind].AsSpan(0, _n[(int)kind]);
    public ReadOnlySpan<long> ModelledSamples(ExitKind kind) => Modelled[(int)kind].AsSpan(0, _n[(int)kind]);
    public ReadOnlySpan<long> HardwareSamples(ExitKind kind) => Hardware[(int)kind] is { } h ? h.AsSpan(0, _n[(int)kind]) : default;

    public static double Median(ReadOnlySpan<long> samples)
    {
        if (samples.Length == 0) return 0;
        var copy = samples.ToArray();
        Array.Sort(copy);
        int m = copy.Length / 2;
        return copy.Length % 2 == 1 ? copy[m] : (copy[m - 1] + copy[m]) / 2.0;
    }

    public double MeasuredMedian(ExitKind k) => Median(Measured[(int)k].AsSpan(0, _n[(int)k]));
    public double ModelledMedian(ExitKind k) => Median(Modelled[(int)k].AsSpan(0, _n[(int)k]));

    /// <summary>All measured samples over every kind.</summary>
    public double MeasuredMedianAll()
    {
        var all = new List<long>();
        for (int k = 0; k < KindCount; k++) all.AddRange(Measured[k].AsSpan(0, _n[k]).ToArray());
        return Median(all.ToArray());
    }

    public double ModelledMedianAll()
    {
        var all = new List<long>();
        for (int k = 0; k < KindCount; k++) all.AddRange(Modelled[k].AsSpan(0, _n[k]).ToArray());
        return Median(all.ToArray());
    }
}

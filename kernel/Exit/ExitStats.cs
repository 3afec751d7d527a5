namespace Copra.Kernel.Exit;

/// <summary>The kinds an exit is reported under in the per-kind table.</summary>
public enum ExitKind : byte { MmioRead, MmioWrite, MmioString, MmioAlu, PortIn, PortOut, PortString, Forwarded, Reinjected, Faulted, Hlt, Cpuid, Msr, Other }

/// <summary>
/// Exit accounting. For MMIO and I/O exits: taken = completed + forwarded + reinjected + faulted +
/// aborted + in flight, and a finished run has none in flight. Samples are kept per kind in
/// preallocated arrays (the exit path records without allocating); past the capacity, further
/// samples are not kept (counts still are).
/// </summary>
public sealed class ExitStats
{
    public const int KindCount = (int)ExitKind.Other + 1;
    public const int SampleCapacity = 1 << 18;

    public long Taken, Mmio, Io, Completed, Forwarded, Reinjected, Faulted, Aborted;
    public long ToVmm, Hlt, Cpuid, Msr, Shutdown, DecodeMismatch, IcedFallbacks, DeviceRoundTrips, DevicesLost, ForwardFailures;
    public long TdReads, TdWrites, Transitions, CrossCpuWakes;
    public long AccessesTaken => Mmio + Io;
    public long InFlight => AccessesTaken - Completed - Forwarded - Reinjected - Faulted - Aborted;

    public readonly long[] Count = new long[KindCount];
    public readonly long[][] Measured = new long[KindCount][];
    public readonly long[][] Modelled = new long[KindCount][];
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

    public void Record(ExitKind kind, long measuredTicks, long modelledCycles)
    {
        int k = (int)kind;
        Count[k]++;
        int n = _n[k];
        if (n < Capacity) { Measured[k][n] = measuredTicks; Modelled[k][n] = modelledCycles; _n[k] = n + 1; }
    }

    public int Samples(ExitKind kind) => _n[(int)kind];

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

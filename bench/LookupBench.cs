using BenchmarkDotNet.Attributes;
using Copra.Hot.Lookup;

namespace Copra.Bench;

/// <summary>
/// GPA to owning device model with 1..4096 registered ranges: a hit in the per-vCPU last-hit cache
/// (the baseline: a device driver hammering one register block), and lookups that rotate over 64
/// ranges so the cache misses and the sorted search runs. Ports are one 64K-entry table load.
/// </summary>
[MemoryDiagnoser]
public class LookupBench
{
    [Params(1, 16, 256, 4096)]
    public int Ranges;

    MmioRangeTable _mmio = null!;
    PortTable _ports = null!;
    ulong[] _probes = [];
    const ulong Base = 0xF000_0000, Stride = 0x2000, Len = 0x1000;
    const int Probes = 64;

    [GlobalSetup]
    public void Setup()
    {
        _mmio = new MmioRangeTable(1);
        for (int i = 0; i < Ranges; i++)
            if (!_mmio.TryAdd(Base + (ulong)i * Stride, Len, i + 1)) throw new InvalidOperationException("TryAdd failed");
        var rng = new Random(42);
        _probes = new ulong[Probes];
        for (int i = 0; i < Probes; i++) _probes[i] = Base + (ulong)rng.Next(Ranges) * Stride + (ulong)rng.Next(0, (int)Len / 4) * 4;
        _ports = new PortTable();
        _ports.TryAdd(0x3F8, 8, 1);
        _ports.TryAdd(0xCF8, 8, 2);
    }

    [Benchmark(Baseline = true, Description = "MmioRangeTable.Lookup, last-hit cache")]
    public int MmioCached() => _mmio.Lookup(0, Base + 0x10, 4, out _, out _);

    [Benchmark(OperationsPerInvoke = Probes, Description = "MmioRangeTable.Lookup, rotating ranges (per lookup)")]
    public int MmioRotating()
    {
        int sum = 0;
        ulong[] p = _probes;
        for (int i = 0; i < p.Length; i++) sum += _mmio.Lookup(0, p[i], 4, out _, out _);
        return sum;
    }

    [Benchmark(Description = "PortTable.Lookup")]
    public int Port() => _ports.Lookup(0x3FD);
}

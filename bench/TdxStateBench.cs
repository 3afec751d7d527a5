using BenchmarkDotNet.Attributes;
using Copra.Abi;
using Copra.Hot.State;

namespace Copra.Bench;

/// <summary>
/// GET of m non-GPR fields from the vCPU state store under TDX accounting: cached (already read since
/// the last exit: a load) against uncached (OnExit first, so each field is a charged TDG.VP.RD in the
/// model). This measures the store's own software; the modelled TDCALL cost is the cost model's.
/// </summary>
[MemoryDiagnoser]
public class TdxStateBench
{
    [Params(1, 4, 16)]
    public int Fields;

    VcpuStateStore _store = null!;
    ulong[] _fields = [];

    [GlobalSetup]
    public void Setup()
    {
        _store = new VcpuStateStore(1, StateAccessCost.Tdx);
        var all = new List<ulong> { StateField.Cr0, StateField.Cr2, StateField.Cr3, StateField.Cr4, StateField.Efer };
        for (ulong i = 0; i < 24; i++) all.Add(StateField.SegBase + i);
        _fields = all.Take(Fields).ToArray();
        foreach (ulong f in _fields) if (!_store.TryRead(0, f, out _)) throw new InvalidOperationException($"field {f} not readable");
    }

    [Benchmark(Baseline = true, Description = "GET m fields, cached since exit")]
    public ulong Cached()
    {
        ulong sum = 0;
        foreach (ulong f in _fields) { _store.TryRead(0, f, out ulong x); sum += x; }
        return sum;
    }

    [Benchmark(Description = "GET m fields after OnExit (each a modelled TDG.VP.RD)")]
    public ulong Uncached()
    {
        _store.OnExit(0);
        ulong sum = 0;
        foreach (ulong f in _fields) { _store.TryRead(0, f, out ulong x); sum += x; }
        return sum + (ulong)_store.TotalTdReads;
    }
}

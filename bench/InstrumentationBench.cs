using BenchmarkDotNet.Attributes;
using Copra.Hot.Timing;
using Copra.Kernel.Core;

namespace Copra.Bench;

/// <summary>
/// What the exit path pays for watching itself: one TSC read (the baseline; the exit path reads it at
/// every segment boundary) and one trace event (the exit path adds several per exit: guest enter,
/// exit, deliver/forward, complete, thread wake-ups), with the trace not kept (hash only), as in every
/// benchmark here.
/// </summary>
[MemoryDiagnoser]
public class InstrumentationBench
{
    Kernel.Core.Kernel _k = null!;
    Trace _trace = null!;
    Cpu _cpu = null!;
    long _i;

    [GlobalSetup]
    public void Setup()
    {
        _k = new Kernel.Core.Kernel(new KernelConfig { Cpus = 1, MemoryBytes = 16UL << 20 });
        _trace = _k.Trace;
        _cpu = _k.Cpus[0];
    }

    [GlobalCleanup]
    public void Cleanup() => _k.Dispose();

    [Benchmark(Baseline = true, Description = "Tsc.Read")]
    public ulong TscRead() => Tsc.Read();

    [Benchmark(Description = "Trace.Add (hash only, not kept)")]
    public long TraceAdd()
    {
        _trace.Add(_cpu, TraceKind.Exit, ++_i, 2);
        return _trace.Count;
    }
}

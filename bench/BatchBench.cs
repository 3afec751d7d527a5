using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Copra.Abi;
using Copra.Kernel.Core;

namespace Copra.Bench;

/// <summary>
/// A kernel with one process whose program does nothing but hand its <see cref="IUserContext"/> out and
/// park forever, so benchmarks can call the syscall gate as that process's thread.
/// </summary>
public sealed class GateRig : IDisposable
{
    public const string Path = "/bin/bench-stash";
    public Kernel.Core.Kernel Kernel { get; }
    public IUserContext Context { get; }

    public GateRig()
    {
        Kernel = new Kernel.Core.Kernel(new KernelConfig { Cpus = 1, MemoryBytes = 16UL << 20 });
        var stash = new Stash();
        Kernel.Install(Path, () => stash);
        Kernel.Spawn(Path, null, 0);
        Kernel.RunDeterministic(1000);
        Context = stash.Context ?? throw new InvalidOperationException("the stash program never ran");
    }

    public void Dispose() => Kernel.Dispose();

    sealed class Stash : IUserProgram
    {
        public IUserContext? Context;
        public Task Main(IUserContext ctx) { Context = ctx; return new TaskCompletionSource().Task; }
    }
}

/// <summary>
/// BATCH of k CAPABILITIES calls (one gate entry) against k single CAPABILITIES calls (k gate
/// entries, the baseline). Measured software only: the modelled syscall transition cost is not
/// added here (no CPU is stepping, so the gate charges no clock).
/// </summary>
[MemoryDiagnoser]
public class BatchBench
{
    [Params(1, 2, 4, 8, 16, 32, 64)]
    public int K;

    GateRig _rig = null!;
    IUserContext _ctx = null!;
    ulong _in, _out;

    [GlobalSetup]
    public void Setup()
    {
        _rig = new GateRig();
        _ctx = _rig.Context;
        _in = _ctx.DataBase;
        _out = _ctx.DataBase + (ulong)(64 * SysCallIn.Size);
        var entries = MemoryMarshal.Cast<byte, SysCallIn>(_ctx.Memory(_in, K * SysCallIn.Size));
        for (int i = 0; i < K; i++) entries[i] = new SysCallIn { Nr = SysNr.Capabilities, A0 = 0, UserData = (ulong)i };
        long r = Batch();
        if (r < 0) throw new InvalidOperationException($"BATCH returned {r}");
        if (Singles() < 0) throw new InvalidOperationException("CAPABILITIES failed");
    }

    [GlobalCleanup]
    public void Cleanup() => _rig.Dispose();

    [Benchmark(Baseline = true, Description = "k single CAPABILITIES calls")]
    public long Singles()
    {
        long sum = 0;
        var regs = SysCallRegs.Make(SysNr.Capabilities, 0);
        for (int i = 0; i < K; i++) sum += _ctx.SysCall(regs).Result;
        return sum;
    }

    [Benchmark(Description = "one BATCH of k CAPABILITIES calls")]
    public long Batch() => _ctx.SysCall(SysCallRegs.Make(SysNr.Batch, _in, _out, (ulong)K)).Result;
}

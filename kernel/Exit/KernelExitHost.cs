using System.Runtime.CompilerServices;
using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.Layout;
using Copra.Hot.Lookup;

namespace Copra.Kernel.Core;

public sealed partial class Kernel
{
    /// <summary>
    /// The kernel's part of an exit, as hot/Exit/ExitPipeline.cs calls it (<see cref="IExitHost"/>): a struct holding
    /// the kernel, so the pipeline's generic is specialised over it and each call below is a direct call the compiler
    /// can inline into the stage (nested in <see cref="Kernel"/> to reach its private parts without widening them).
    /// </summary>
    internal readonly struct KernelExitHost(Kernel k) : IExitHost
    {
        public bool Hooked
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => k.ExitHooked;
        }
        public void ExitTaken(int v) => k.OnExitTaken?.Invoke(v);
        public void FirstExit() => k.FirstExitTaken();
        public bool Tracing
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => k.Tracing;
        }
        public byte Follow(int cpu, in ExitRecord rec, long entryTd) => k.FollowExit(k.Cpus[cpu], in rec, entryTd);
        public IExitNarrator? Narrator => k.Tracer;
        public long HardwareTicks(int v) => k.HardwareTicks(v);
        public int Here => Kernel.Here;
        public int CpuOf(int v) => k.VcpuAt(v).Cpu;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public bool IsRam(int v, ulong gpa, ulong size) => k.VcpuAt(v).Vm.IsRam(gpa, size);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public MmioRangeTable Mmio(int v) => k.VcpuAt(v).Vm.Mmio;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public PortTable Ports(int v) => k.VcpuAt(v).Vm.Ports;
        public bool Reinjects(int v) => k.VcpuAt(v).Vm.Unhandled == VmCtl.UnhandledReinject;

        public void Request(int cpu, int v, int owner, EventKind kind, ulong addr, bool write, ulong data) =>
            k.Request(Unchecked.At(k.Cpus, cpu), v, owner, kind, addr, write, data);   // cpu: as TraceComplete's
        public bool Forward(EventKind kind, ulong addr, uint size, bool write, ulong data, out ulong value) =>
            k.Host.Access(kind, addr, size, write, data, out value);
        public bool ForwardWide(ulong addr, Span<byte> data, bool write, out ulong value) => k.Host.AccessWide(addr, data, write, out value);
        public void CompleteAccess(int v, ulong readValue) => k.Backend!.CompleteAccess(v, readValue);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void ReleaseHeld(int v) => k.ReleaseHeld(v);

        public void Reenter(int v) => k.Reenter(v);
        public void RunPageExit(int cpu, int v, RunExit why) => k.RunPageExit(cpu, v, why);
        public void Kill(int v) => k.KillVcpu(v);

        // cpu: the index a driver stepping Cpus[cpu] passed down (in range by construction; hot/Layout/Unchecked.cs), so the
        // exit's two records go to its lane without the thread-local lookup; and a trace neither hashed nor kept (exitbench)
        // is asked first, before the CPU is loaded.
        public void TraceForward(int cpu, int v, ulong addr) => TraceOn(cpu, TraceKind.Forward, v, (long)addr);
        public void TraceComplete(int cpu, int v, ExitKind kind)
        {
            if (k.TracesExits) k.Trace.AddSmallOn(Unchecked.At(k.Cpus, cpu), TraceKind.Complete, v, (byte)kind);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void TraceOn(int cpu, TraceKind kind, long a, long b)
        {
            var trace = k.Trace;
            if (trace.Hashed || trace.Keep) trace.AddOn(Unchecked.At(k.Cpus, cpu), kind, a, b);
        }
        public void TraceFault(int cpu, int v, byte vector) => k.Trace.Add(k.Cpus[cpu], TraceKind.Fault, v, vector);
        public void MarkReinject(int cpu, int v, ulong addr) => k.MarkOn(cpu, v, TraceKind.Reinject, (long)addr);
        public void MarkFault(int cpu, int v, byte vector) => k.MarkOn(cpu, v, TraceKind.Fault, vector);
    }
}

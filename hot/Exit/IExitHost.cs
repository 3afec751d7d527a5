using Copra.Abi;
using Copra.Hot.Lookup;

namespace Copra.Hot.Exit;

/// <summary>
/// The kernel's part of an exit, as the pipeline (<see cref="ExitPipeline{THost}"/>) sees it: what the stages cannot
/// see from hot/ (which VM a vCPU belongs to and its RAM, MMIO and port tables, the event objects of device models, the
/// modelled host, the vCPU objects and their run state, the run's trace and its tracers). The kernel implements it on
/// a struct, so the pipeline, a generic over that struct, is specialised for it and every call here is direct and
/// inlinable (an interface on a class would be a virtual call per stage).
///
/// <c>cpu</c> is the index of the CPU whose host thread runs the stage (always a real CPU: the drivers and a
/// completion both name one); <see cref="Here"/> is the CPU of the calling host thread, or -1 outside the drivers.
/// </summary>
public interface IExitHost
{
    // ---- taking an exit --------------------------------------------------------------------------
    /// <summary>
    /// Anything asks to see each exit (a hook, a tracer, a backend that times its runs). False promises that
    /// <see cref="ExitTaken"/> does nothing, <see cref="Tracing"/> is false and <see cref="HardwareTicks"/> is 0, so the
    /// header asks none of them: one test per exit instead of three.
    /// </summary>
    bool Hooked { get; }
    /// <summary>Before the kernel touches any state of the exit (<c>copra tune</c> snapshots here).</summary>
    void ExitTaken(int v);
    /// <summary>Once per run, at the first exit.</summary>
    void FirstExit();
    /// <summary>A tracer is installed (the pipeline's one test per exit); <see cref="Follow"/> then decides for this exit.</summary>
    bool Tracing { get; }
    /// <summary>The <see cref="ExitRules.FollowNarrate"/>/<see cref="ExitRules.FollowMark"/> bits for this exit; reports the entry and the exit to the tracers that follow it.</summary>
    byte Follow(int cpu, in ExitRecord rec, long entryTd);
    /// <summary>The tracer a followed exit's stages narrate to (null when none narrates).</summary>
    IExitNarrator? Narrator { get; }
    /// <summary>The hardware round trip of vCPU <paramref name="v"/>'s last run (KVM: TSC around KVM_RUN), else 0.</summary>
    long HardwareTicks(int v);
    /// <summary>The CPU of the calling host thread, or -1 outside the drivers.</summary>
    int Here { get; }
    /// <summary>The CPU vCPU <paramref name="v"/> is bound to.</summary>
    int CpuOf(int v);

    // ---- finding the owner -------------------------------------------------------------------------
    /// <summary>[gpa, gpa+size) is RAM of vCPU <paramref name="v"/>'s VM.</summary>
    bool IsRam(int v, ulong gpa, ulong size);
    /// <summary>The MMIO ranges and the port table of vCPU <paramref name="v"/>'s VM.</summary>
    MmioRangeTable Mmio(int v);
    PortTable Ports(int v);
    /// <summary>vCPU <paramref name="v"/>'s VM re-injects #VC/#VE for an access nobody registered (else it is forwarded).</summary>
    bool Reinjects(int v);

    // ---- delivering ---------------------------------------------------------------------------------
    /// <summary>Delivers the element's side to device model <paramref name="owner"/>'s event area; the element resumes through <see cref="ExitPipeline{THost}.SideDone"/> when it answers.</summary>
    void Request(int cpu, int v, int owner, EventKind kind, ulong addr, bool write, ulong data);
    /// <summary>The modelled host behind forwarded exits: false when it has nothing there.</summary>
    bool Forward(EventKind kind, ulong addr, uint size, bool write, ulong data, out ulong value);
    bool ForwardWide(ulong addr, Span<byte> data, bool write, out ulong value);
    /// <summary>A hardware-completed exit: the value the read returned, for the hardware to finish the instruction with.</summary>
    void CompleteAccess(int v, ulong readValue);
    /// <summary>Gives up the device object a locked read of vCPU <paramref name="v"/> held, if any (no write followed, or the exit ended early).</summary>
    void ReleaseHeld(int v);

    // ---- re-entry ---------------------------------------------------------------------------------
    /// <summary>The exit is over: vCPU <paramref name="v"/> goes back on its CPU's run queue unless it is dead or idle.</summary>
    void Reenter(int v);
    /// <summary>An exit the VMM handles (HLT, CPUID, MSR, shutdown): fill the run page and wake the vCPU's thread.</summary>
    void RunPageExit(int cpu, int v, RunExit why);
    /// <summary>The vCPU is dead (shutdown).</summary>
    void Kill(int v);

    // ---- the trace (hashed) and the display marks ---------------------------------------------------
    void TraceForward(int cpu, int v, ulong addr);
    void TraceComplete(int cpu, int v, ExitKind kind);
    void TraceFault(int cpu, int v, byte vector);
    void MarkReinject(int cpu, int v, ulong addr);
    void MarkFault(int cpu, int v, byte vector);
}

/// <summary>What a followed exit's stages narrate to (<c>copra trace</c>); the kernel's tracers implement it.</summary>
public interface IExitNarrator
{
    /// <summary>One stage of a followed exit, in the order the exit runs them.</summary>
    void Step(int vcpu, string text);
}

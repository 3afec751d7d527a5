using Copra.Hot.Exit;

namespace Copra.Kernel.Exit;

/// <summary>
/// Where guest code runs: the replay backend (a synthetic guest, deterministic) or KVM (real
/// hardware). Registers live in the kernel's state store; a backend loads them before entry
/// and stores them after the exit.
/// </summary>
public interface IGuestBackend : IDisposable
{
    string Name { get; }

    /// <summary>Runs vCPU <paramref name="vcpu"/> (global index) until its next exit.</summary>
    void Run(int vcpu, ref ExitRecord exit);

    /// <summary>
    /// For exits flagged <see cref="ExitFlags.HardwareCompletes"/>: the value a read returned, handed
    /// back so the hardware finishes the instruction at the next entry.
    /// </summary>
    void CompleteAccess(int vcpu, ulong readValue);
}

/// <summary>A backend that can say how long the hardware took for the exit it last returned.</summary>
public interface IHardwareTimedBackend
{
    /// <summary>TSC ticks (<see cref="Hot.Timing.Tsc"/>) around the KVM_RUN that produced vCPU <paramref name="vcpu"/>'s last exit.</summary>
    long LastRunTicks(int vcpu);
}

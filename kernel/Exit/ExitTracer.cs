using Copra.Hot.Exit;
using Copra.Kernel.Core;

namespace Copra.Kernel.Exit;

/// <summary>
/// What follows the exit path from outside its stages: <c>copra trace</c>'s narration, <c>copra run --trace</c>'s
/// display records, or any tool that wants an exit told step by step. The kernel asks each tracer once per exit,
/// before any stage, whether it follows that exit, and keeps the answer in the vCPU's in-flight row; a stage reports
/// only to a tracer that follows its exit. With no tracer (every normal run) that is one test per exit and one per
/// stage of a flag already in hand; text is built only for a tracer that <see cref="Narrates"/>.
/// </summary>
public interface IExitTracer : IExitNarrator
{
    /// <summary>Called once per exit, before any stage: true to have this exit's stages reported. <paramref name="ordinal"/> is the number of exits the run has taken, this one included (over all CPUs).</summary>
    bool Follow(int vcpu, long ordinal);

    /// <summary>True when <see cref="Step"/> wants the stages' text (building it costs; a tracer that keeps records says false).</summary>
    bool Narrates { get; }

    /// <summary>A stage boundary of a followed exit: what it is, the CPU it ran on, that CPU's virtual clock then, one argument.</summary>
    void Mark(Cpu cpu, long clock, TraceKind kind, int vcpu, long a);
}

/// <summary>Narrates exit number <paramref name="exit"/> of the run into <paramref name="sink"/> (<c>copra trace</c>).</summary>
public sealed class ExitNarration(long exit, Action<string> sink) : IExitTracer
{
    public bool Follow(int vcpu, long ordinal) => ordinal == exit;
    public bool Narrates => true;
    public void Step(int vcpu, string text) => sink(text);
    public void Mark(Cpu cpu, long clock, TraceKind kind, int vcpu, long a) { }
}

/// <summary>
/// <c>copra run --trace</c>: follows every exit and keeps its stage boundaries (entry, guest enter, exit, delivery,
/// re-injection, fault) as display-only records of the run's trace, which the Chrome trace shows and the hash never
/// sees. Installed by the kernel when the run keeps its trace.
/// </summary>
public sealed class DisplayMarks(Trace trace) : IExitTracer
{
    public bool Follow(int vcpu, long ordinal) => true;
    public bool Narrates => false;
    public void Step(int vcpu, string text) { }
    public void Mark(Cpu cpu, long clock, TraceKind kind, int vcpu, long a) => trace.AddDisplayOnlyAt(cpu, clock, kind, vcpu, a);
}

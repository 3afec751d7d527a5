namespace Copra.Kernel.Exit;

/// <summary>
/// What follows the exit path from outside its stages: <c>copra trace</c>'s narration, or any tool that wants an
/// exit told step by step. The pipeline asks <see cref="Follow"/> once at the start of an exit; only a followed exit
/// calls <see cref="Step"/>, and the text of a step is built only then. With no tracer set (every normal run) the
/// cost is one null check per exit and one compare per stage.
/// </summary>
public interface IExitTracer
{
    /// <summary>Called once per exit, before any stage: true to have this exit's stages reported. <paramref name="ordinal"/> is the number of exits the run has taken, this one included (over all CPUs).</summary>
    bool Follow(int vcpu, long ordinal);

    /// <summary>One stage of a followed exit, in the order the exit runs them.</summary>
    void Step(int vcpu, string text);
}

/// <summary>Narrates exit number <paramref name="exit"/> of the run into <paramref name="sink"/> (<c>copra trace</c>).</summary>
public sealed class ExitNarration(long exit, Action<string> sink) : IExitTracer
{
    public bool Follow(int vcpu, long ordinal) => ordinal == exit;
    public void Step(int vcpu, string text) => sink(text);
}

// Design note — what a fuzz target is.
//
// As Garnet's IFuzzerTarget: a target is a function of bytes (here: of a case value built from a 64-bit seed) that
// passes or fails with a printable counterexample. Generate(seed) is pure, so `--replay SEED --target NAME` rebuilds
// the exact case; Shrink proposes smaller cases; Check returns null on pass or a message saying what differed.
// The same target object is driven by FsCheck (xunit properties, bounded counts) and by the campaign runner.
using Copra.Hot.Decode;

namespace Copra.Fuzz.Core;

/// <summary>A fuzz target seen from the runner: cases are addressed by seed.</summary>
public interface IFuzzTarget
{
    string Name { get; }
    /// <summary>One line: what the property is.</summary>
    string Description { get; }
    /// <summary>Runs the case for <paramref name="seed"/>; null when it passes, else the (unshrunk) failure.</summary>
    string? RunSeed(ulong seed);
    /// <summary>Shrinks the failing case for <paramref name="seed"/> and returns the smallest failure found.</summary>
    Failure Minimise(ulong seed, int budget = 2000);
    /// <summary>The printable case for a seed (for --replay).</summary>
    string ShowSeed(ulong seed);
    /// <summary>False when cases use threads of their own (the runner then runs one case at a time).</summary>
    bool ParallelSafe => true;
    /// <summary>Seeds are indices 0..Count-1 of an exhaustive sweep rather than random seeds.</summary>
    long? SweepCount => null;
    /// <summary>A line of totals the runner prints after the table (the syscall target's observed calls), or null.</summary>
    string? Totals => null;
    /// <summary>Cases a campaign runs when neither --cases nor --minutes is given (the CPU-oracle families: 10^6 each).</summary>
    long? CampaignCases => null;
}

/// <summary>A failing case: what it was, why it failed, how to replay it.</summary>
public sealed record Failure(string Target, ulong Seed, string Case, string Message, int ShrinkSteps, int Size, string ReplayArgs = "")
{
    public string Replay => $"./build.sh fuzz --target {Target}{ReplayArgs} --replay {Seed}";
    public override string ToString() => $"{Target} seed {Seed}: {Case}\n  {Message}\n  shrunk in {ShrinkSteps} steps (size {Size})\n  replay: {Replay}";
}

/// <summary>A typed target: generator, checker, shrinker and printer over one case type.</summary>
public abstract class FuzzTarget<T> : IFuzzTarget
{
    public abstract string Name { get; }
    public abstract string Description { get; }
    public abstract T Generate(Rng rng);
    /// <summary>Null when the case passes; otherwise what went wrong. Exceptions count as failures.</summary>
    public abstract string? Check(T c);
    public virtual IEnumerable<T> Shrink(T c) => [];
    public abstract string Show(T c);
    /// <summary>A measure of case size for "shrinks to a small case" assertions.</summary>
    public virtual int SizeOf(T c) => 0;

    /// <summary>The case for a seed; an indexed target (an exhaustive sweep) treats the seed as the index.</summary>
    public virtual T Generate(ulong seed) => Generate(new Rng(seed));

    public string? SafeCheck(T c)
    {
        try { return Check(c); }
        catch (Exception e) { return $"threw {e.GetType().Name}: {e.Message}"; }
    }

    public string? RunSeed(ulong seed)
    {
        T c;
        try { c = Generate(seed); }
        catch (Exception e) { return $"generator threw {e.GetType().Name}: {e.Message}"; }
        return SafeCheck(c);
    }
    public string ShowSeed(ulong seed) => Show(Generate(seed));
    public virtual bool ParallelSafe => true;
    public virtual long? SweepCount => null;
    public virtual long? CampaignCases => null;
    /// <summary>Extra runner arguments a replay needs (the decoder's --mode).</summary>
    public virtual string ReplayArgs => "";
    public virtual string? Totals => null;

    public Failure Minimise(ulong seed, int budget = 2000)
    {
        T c = Generate(seed);
        string? msg = SafeCheck(c) ?? throw new InvalidOperationException($"seed {seed} passes");
        var (small, smallMsg, steps) = ShrinkLoop(c, msg, budget);
        return new Failure(Name, seed, Show(small), smallMsg, steps, SizeOf(small), ReplayArgs);
    }

    /// <summary>Greedy shrinking: take the first smaller candidate that still fails, until none does.</summary>
    public (T Case, string Message, int Steps) ShrinkLoop(T c, string msg, int budget)
    {
        int steps = 0, tries = 0;
        bool progress = true;
        while (progress && tries < budget)
        {
            progress = false;
            foreach (T cand in Shrink(c))
            {
                if (++tries >= budget) break;
                string? m = SafeCheck(cand);
                if (m is null) continue;
                c = cand; msg = m; steps++; progress = true;
                break;
            }
        }
        return (c, msg, steps);
    }
}

/// <summary>Shared vocabulary.</summary>
public static class Modes
{
    public static readonly CpuMode[] All = [CpuMode.Bits16, CpuMode.Bits32, CpuMode.Bits64];
    public static int Bits(CpuMode m) => m switch { CpuMode.Bits16 => 16, CpuMode.Bits32 => 32, _ => 64 };
    public static CpuMode Parse(int bits) => bits switch
    {
        16 => CpuMode.Bits16,
        32 => CpuMode.Bits32,
        64 => CpuMode.Bits64,
        _ => throw new ArgumentException($"mode is 16, 32 or 64, not {bits}"),
    };
    public static string Hex(ReadOnlySpan<byte> b) => b.Length == 0 ? "(empty)" : string.Join(' ', b.ToArray().Select(x => x.ToString("x2")));
}

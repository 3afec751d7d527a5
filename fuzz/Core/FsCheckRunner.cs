// Drives a FuzzTarget through FsCheck: the generator is the target's seed-indexed Generate (so FsCheck's own seed
// picks cases), the shrinker is the target's Shrink. Failures surface as an exception carrying the shrunk case and
// the replay seed; the last failing evaluation (the shrunk counterexample) is also returned for broken-variant tests.
using FsCheck;
using FsCheck.Fluent;

namespace Copra.Fuzz.Core;

public static class FsCheckRunner
{
    /// <summary>Outcome of one FsCheck run over a target.</summary>
    public sealed record Outcome<T>(bool Passed, T? Shrunk, string? Message, ulong? Seed, string Report);

    public static Outcome<T> Run<T>(FuzzTarget<T> target, int maxTest)
    {
        ulong? firstSeed = null;
        T? last = default;
        string? lastMsg = null;
        bool failed = false;
        var gen =
            from hi in Gen.Choose(0, int.MaxValue)
            from lo in Gen.Choose(0, int.MaxValue)
            select ((ulong)(uint)hi << 32 | (uint)lo, target.Generate((ulong)(uint)hi << 32 | (uint)lo));
        var arb = Arb.From(gen, pair => target.Shrink(pair.Item2).Select(c => (pair.Item1, c)));
        var prop = Prop.ForAll(arb, pair =>
        {
            string? m = target.SafeCheck(pair.Item2);
            if (m is null) return true;
            failed = true;
            firstSeed ??= pair.Item1;
            last = pair.Item2;
            lastMsg = m;
            return false;
        });
        // QuickThrowOnFailure: nothing is printed (xunit runs classes in parallel; Console is shared).
        var config = Config.QuickThrowOnFailure.WithMaxTest(maxTest).WithQuietOnSuccess(true);
        string fsReport = "";
        try { Check.One(config, prop); }
        catch (Exception e) { fsReport = e.Message; }
        if (!failed) return new Outcome<T>(true, default, null, null, fsReport);
        string report = $"{target.Name} failed: {target.Show(last!)}\n  {lastMsg}\n  first failing seed {firstSeed} " +
            $"(replay: ./build.sh fuzz --target {target.Name}{target.ReplayArgs} --replay {firstSeed})";
        return new Outcome<T>(false, last, report, firstSeed, fsReport);
    }

    /// <summary>xunit helper: runs the property and throws with the shrunk counterexample on failure.</summary>
    public static void Assert<T>(FuzzTarget<T> target, int maxTest)
    {
        var o = Run(target, maxTest);
        if (!o.Passed) throw new Xunit.Sdk.XunitException(o.Message);
    }
}

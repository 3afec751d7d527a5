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
        bool haveCase = false;
        string? shrinkError = null;
        // A generator or shrinker exception is a failure of the run (never swallowed into a pass): it is recorded here
        // with the seed whose case raised it, because FsCheck would otherwise surface it only out of Check.One.
        void Fail(ulong seed, string msg, T? c, bool isCase)
        {
            failed = true;
            firstSeed ??= seed;
            if (isCase || !haveCase) { last = c; lastMsg = msg; haveCase |= isCase; }
        }
        var gen =
            from hi in Gen.Choose(0, int.MaxValue)
            from lo in Gen.Choose(0, int.MaxValue)
            select Generated((ulong)(uint)hi << 32 | (uint)lo);
        (ulong Seed, T? Case, string? Error) Generated(ulong seed)
        {
            try { return (seed, target.Generate(seed), null); }
            catch (Exception e) { return (seed, default, $"generator threw {e.GetType().Name}: {e.Message}"); }
        }
        IEnumerable<(ulong, T?, string?)> Shrunk((ulong Seed, T? Case, string? Error) p)
        {
            if (p.Error is not null) return [];
            try { return target.Shrink(p.Case!).Select(c => (p.Seed, (T?)c, (string?)null)).ToList(); }
            catch (Exception e)
            {
                shrinkError ??= $"shrinker threw {e.GetType().Name}: {e.Message} (shrinking seed {p.Seed})";
                Fail(p.Seed, shrinkError, p.Case, isCase: false);
                return [];
            }
        }
        var arb = Arb.From(gen, Shrunk);
        var prop = Prop.ForAll(arb, p =>
        {
            if (p.Error is not null) { Fail(p.Seed, p.Error, default, isCase: false); return false; }
            string? m = target.SafeCheck(p.Case!);
            if (m is null) return true;
            Fail(p.Seed, m, p.Case, isCase: true);
            return false;
        });
        // QuickThrowOnFailure: nothing is printed (xunit runs classes in parallel; Console is shared).
        var config = Config.QuickThrowOnFailure.WithMaxTest(maxTest).WithQuietOnSuccess(true);
        string fsReport = "";
        bool fsThrew = false;
        try { Check.One(config, prop); }
        catch (Exception e) { fsReport = e.Message; fsThrew = true; }
        if (!failed && !fsThrew) return new Outcome<T>(true, default, null, null, fsReport);
        if (!failed) lastMsg = $"FsCheck raised outside the property: {fsReport}";
        string shown = haveCase ? target.Show(last!) : "(no case)";
        string replay = firstSeed is ulong s
            ? $"first failing seed {s} (replay: ./build.sh fuzz --target {target.Name}{target.ReplayArgs} --replay {s})"
            : "no seed reached the property";
        string report = $"{target.Name} failed: {shown}\n  {lastMsg}\n  {replay}";
        if (shrinkError is not null && shrinkError != lastMsg) report += $"\n  {shrinkError}";
        return new Outcome<T>(false, last, report, firstSeed, fsReport);
    }

    /// <summary>xunit helper: runs the property and throws with the shrunk counterexample on failure.</summary>
    public static void Assert<T>(FuzzTarget<T> target, int maxTest)
    {
        var o = Run(target, maxTest);
        if (!o.Passed) throw new Xunit.Sdk.XunitException(o.Message);
    }
}

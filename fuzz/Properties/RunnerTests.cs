// The runner itself must not pass vacuously: a property whose generator or shrinker throws is a failure that names the
// seed to replay it, never a pass (FsCheck raises such exceptions out of Check.One, where they used to be swallowed).
using Copra.Fuzz.Core;
using Xunit;

namespace Copra.Fuzz.Properties;

public class RunnerTests
{
    /// <summary>Generator throws for every seed; the check would fail every case if it were ever reached.</summary>
    private sealed class ThrowingGenerator : FuzzTarget<int>
    {
        public override string Name => "probe-throwing-generator";
        public override string Description => "generator always throws";
        public override int Generate(Rng rng) => throw new InvalidOperationException("generator broke");
        public override string? Check(int c) => "every case fails";
        public override string Show(int c) => c.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Every case fails; the shrinker throws when asked for smaller cases.</summary>
    private sealed class ThrowingShrinker : FuzzTarget<int>
    {
        public override string Name => "probe-throwing-shrinker";
        public override string Description => "shrinker always throws";
        public override int Generate(Rng rng) => rng.Next(1, 0x10000);
        public override string? Check(int c) => c > 0 ? "positive" : null;
        public override IEnumerable<int> Shrink(int c) => throw new InvalidOperationException("shrinker broke");
        public override string Show(int c) => c.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public void GeneratorExceptionIsAFailureWithItsReplaySeed()
    {
        var t = new ThrowingGenerator();
        var o = FsCheckRunner.Run(t, 10);
        Assert.False(o.Passed, "a throwing generator counted as a pass");
        Assert.NotNull(o.Seed);
        Assert.Contains("generator broke", o.Message!, StringComparison.Ordinal);
        Assert.Contains($"--replay {o.Seed}", o.Message!, StringComparison.Ordinal);
        // The seed replays the same exception through the campaign runner's entry point.
        Assert.Contains("generator broke", t.RunSeed(o.Seed!.Value)!, StringComparison.Ordinal);
    }

    [Fact]
    public void ShrinkerExceptionIsAFailureWithItsReplaySeed()
    {
        var t = new ThrowingShrinker();
        var o = FsCheckRunner.Run(t, 10);
        Assert.False(o.Passed);
        Assert.NotNull(o.Seed);
        Assert.Contains("shrinker broke", o.Message!, StringComparison.Ordinal);
        Assert.Contains($"--replay {o.Seed}", o.Message!, StringComparison.Ordinal);
    }

    [Fact]
    public void AssertThrowsOnGeneratorException() =>
        Assert.Throws<Xunit.Sdk.XunitException>(() => FsCheckRunner.Assert(new ThrowingGenerator(), 10));
}

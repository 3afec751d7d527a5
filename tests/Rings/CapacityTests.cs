using Copra.Hot.Rings;
using Xunit;

namespace Copra.Tests.Rings;

/// <summary>Every ring takes a power-of-two capacity in [2, 2^30] and says so clearly otherwise.</summary>
public class CapacityTests
{
    public static TheoryData<string> Rings => ["spsc", "mpsc", "submission", "completion"];

    static int Make(string ring, int capacity) => ring switch
    {
        "spsc" => new SpscRing<long>(capacity).Capacity,
        "mpsc" => new MpscRing<long>(capacity).Capacity,
        "submission" => new SubmissionRing(capacity).Capacity,
        "completion" => new CompletionRing(capacity).Capacity,
        _ => throw new ArgumentException(ring),
    };

    [Theory]
    [MemberData(nameof(Rings))]
    public void Powers_of_two_are_accepted(string ring)
    {
        foreach (int capacity in new[] { 2, 4, 64, 1024, 1 << 16 })
            Assert.Equal(capacity, Make(ring, capacity));
    }

    [Theory]
    [MemberData(nameof(Rings))]
    public void Other_capacities_are_refused_with_a_message_naming_the_rule(string ring)
    {
        foreach (int capacity in new[] { int.MinValue, -4, 0, 1, 3, 6, 1000, (1 << 30) + 1, int.MaxValue })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => Make(ring, capacity));
            Assert.Equal("capacity", e.ParamName);
            Assert.Contains("power of two", e.Message);
            Assert.Contains(capacity.ToString(), e.Message);
        }
    }

    [Fact]
    public void The_rule_is_public_for_callers_that_size_rings_from_config()
    {
        Assert.True(RingCapacity.IsValid(2));
        Assert.True(RingCapacity.IsValid(RingCapacity.Max));
        Assert.False(RingCapacity.IsValid(1));
        Assert.False(RingCapacity.IsValid(int.MaxValue));
        Assert.Equal(8, RingCapacity.Validate(8));
    }
}

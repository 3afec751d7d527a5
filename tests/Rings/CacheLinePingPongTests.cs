using Copra.Hot.Rings;
using Xunit;

namespace Copra.Tests.Rings;

/// <summary>The ping-pong baseline really completes the round trips it is asked for.</summary>
[Collection(RingThreadsCollection.Name)]
public class CacheLinePingPongTests
{
    [Fact]
    public void Run_completes_n_round_trips()
    {
        var pingPong = new CacheLinePingPong();
        Assert.Equal(100_000, pingPong.Run(100_000));
        Assert.Equal(200_000, pingPong.Value);
    }

    [Fact]
    public void Run_can_be_repeated_on_one_instance()
    {
        var pingPong = new CacheLinePingPong();
        Assert.Equal(1_000, pingPong.Run(1_000));
        Assert.Equal(5_000, pingPong.Run(5_000));
        Assert.Equal(10_000, pingPong.Value);
        Assert.Equal(0, pingPong.Run(0));
        Assert.Equal(0, pingPong.Value);
    }

    [Fact]
    public void Ping_and_pong_on_caller_owned_threads()
    {
        var pingPong = new CacheLinePingPong();
        pingPong.Reset();
        long completed = 0;
        new Crew().Run(
            () => completed = pingPong.Ping(50_000),
            () => pingPong.Pong(50_000));
        Assert.Equal(50_000, completed);
        Assert.Equal(100_000, pingPong.Value);
    }

    [Fact]
    public void Negative_round_trips_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new CacheLinePingPong().Run(-1));
    }
}

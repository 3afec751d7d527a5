using Copra.Hot.Rings;
using Xunit;

namespace Copra.Tests.Rings;

/// <summary>MpscRing single-thread semantics: full, empty, FIFO across many laps of the per-slot sequence numbers.</summary>
public class MpscRingTests
{
    [Fact]
    public void Empty_ring_dequeues_nothing()
    {
        var ring = new MpscRing<long>(2);
        Assert.False(ring.TryDequeue(out long item));
        Assert.Equal(0, item);
        Assert.Equal(0, ring.Count);
    }

    [Fact]
    public void Full_ring_refuses_until_the_owner_takes_one()
    {
        var ring = new MpscRing<long>(4);
        for (long i = 0; i < 4; i++) Assert.True(ring.TryEnqueue(i));
        Assert.Equal(4, ring.Count);
        Assert.False(ring.TryEnqueue(99));
        Assert.True(ring.TryDequeue(out long first));
        Assert.Equal(0, first);
        Assert.Equal(3, ring.Count);
        Assert.True(ring.TryEnqueue(4));
        Assert.False(ring.TryEnqueue(99));
        for (long i = 1; i <= 4; i++)
        {
            Assert.True(ring.TryDequeue(out long item));
            Assert.Equal(i, item);
        }
        Assert.False(ring.TryDequeue(out _));
    }

    [Fact]
    public void Smallest_ring_alternates_correctly()
    {
        var ring = new MpscRing<long>(2);
        for (long i = 0; i < 100; i++)
        {
            Assert.True(ring.TryEnqueue(2 * i));
            Assert.True(ring.TryEnqueue(2 * i + 1));
            Assert.False(ring.TryEnqueue(-1));
            Assert.True(ring.TryDequeue(out long a));
            Assert.True(ring.TryDequeue(out long b));
            Assert.Equal(2 * i, a);
            Assert.Equal(2 * i + 1, b);
            Assert.False(ring.TryDequeue(out _));
        }
    }

    [Fact]
    public void Order_survives_many_wrap_arounds()
    {
        var ring = new MpscRing<ExitRecordLike>(8);
        long next = 0, expected = 0;
        for (int lap = 0; lap < 1000; lap++)
        {
            int burst = lap % 8 + 1;
            for (int i = 0; i < burst; i++) Assert.True(ring.TryEnqueue(ExitRecordLike.For(next++)));
            for (int i = 0; i < burst; i++)
            {
                Assert.True(ring.TryDequeue(out var item));
                Assert.Equal(ExitRecordLike.For(expected++), item);
            }
        }
        Assert.Equal(0, ring.Count);
    }
}

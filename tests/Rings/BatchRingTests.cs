using Copra.Abi;
using Copra.Hot.Rings;
using Xunit;

namespace Copra.Tests.Rings;

/// <summary>Submission and completion rings, single thread: publish makes a batch visible at once, full, empty, wrap-around, every field carried.</summary>
public class BatchRingTests
{
    internal static SysCallIn In(ulong n) => new()
    {
        Nr = n * 7, A0 = n + 1, A1 = n + 2, A2 = n + 3, A3 = n + 4, A4 = n + 5, UserData = n,
    };

    internal static SysCallOut Out(ulong n) => new() { Result = -(long)(n % 12), UserData = n };

    [Fact]
    public void Submissions_are_invisible_until_published()
    {
        var ring = new SubmissionRing(8);
        for (ulong i = 0; i < 3; i++) Assert.True(ring.TryPush(In(i)));
        Assert.Equal(3, ring.Unpublished);
        Assert.Equal(0, ring.PeekCount());
        Assert.False(ring.TryPop(out _));

        ring.Publish();
        Assert.Equal(0, ring.Unpublished);
        Assert.Equal(3, ring.PeekCount());
        for (ulong i = 0; i < 3; i++)
        {
            Assert.True(ring.TryPop(out var entry));
            Assert.Equal(In(i), entry);
            Assert.Equal(2 - (int)i, ring.PeekCount());
        }
        Assert.False(ring.TryPop(out var none));
        Assert.Equal(default, none);
    }

    [Fact]
    public void Submission_ring_full_counts_unpublished_entries_too()
    {
        var ring = new SubmissionRing(4);
        for (ulong i = 0; i < 4; i++) Assert.True(ring.TryPush(In(i)));
        Assert.False(ring.TryPush(In(99)));
        ring.Publish();
        Assert.False(ring.TryPush(In(99)));
        Assert.True(ring.TryPop(out var first));
        Assert.Equal(In(0), first);
        Assert.True(ring.TryPush(In(4)));            // producer re-reads the head
        Assert.False(ring.TryPush(In(99)));
        ring.Publish();
        for (ulong i = 1; i <= 4; i++)
        {
            Assert.True(ring.TryPop(out var entry));
            Assert.Equal(In(i), entry);
        }
    }

    [Fact]
    public void Submission_order_and_fields_survive_wrap_around()
    {
        var ring = new SubmissionRing(4);
        ulong next = 0, expected = 0;
        for (int lap = 0; lap < 1000; lap++)
        {
            int burst = lap % 4 + 1;
            for (int i = 0; i < burst; i++) Assert.True(ring.TryPush(In(next++)));
            ring.Publish();
            Assert.Equal(burst, ring.PeekCount());
            for (int i = 0; i < burst; i++)
            {
                Assert.True(ring.TryPop(out var entry));
                Assert.Equal(In(expected++), entry);
            }
        }
    }

    [Fact]
    public void Completions_are_invisible_until_published()
    {
        var ring = new CompletionRing(4);
        Assert.True(ring.TryPush(Out(1)));
        Assert.True(ring.TryPush(Out(2)));
        Assert.Equal(2, ring.Unpublished);
        Assert.Equal(0, ring.PeekCount());
        Assert.False(ring.TryPop(out _));
        ring.Publish();
        Assert.Equal(2, ring.PeekCount());
        Assert.True(ring.TryPop(out var a));
        Assert.True(ring.TryPop(out var b));
        Assert.Equal(Out(1), a);
        Assert.Equal(Out(2), b);
        Assert.False(ring.TryPop(out var none));
        Assert.Equal(default, none);
    }

    [Fact]
    public void Completion_ring_full_and_wrap_around()
    {
        var ring = new CompletionRing(2);
        ulong next = 0, expected = 0;
        for (int lap = 0; lap < 1000; lap++)
        {
            Assert.True(ring.TryPush(Out(next++)));
            Assert.True(ring.TryPush(Out(next++)));
            Assert.False(ring.TryPush(Out(99)));
            ring.Publish();
            Assert.Equal(2, ring.PeekCount());
            for (int i = 0; i < 2; i++)
            {
                Assert.True(ring.TryPop(out var entry));
                Assert.Equal(Out(expected++), entry);
            }
            Assert.Equal(0, ring.PeekCount());
        }
    }

    [Fact]
    public void Publish_with_nothing_pushed_changes_nothing()
    {
        var sq = new SubmissionRing(2);
        sq.Publish();
        Assert.Equal(0, sq.PeekCount());
        var cq = new CompletionRing(2);
        cq.Publish();
        Assert.Equal(0, cq.PeekCount());
    }
}

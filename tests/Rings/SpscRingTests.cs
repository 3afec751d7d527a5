using Copra.Hot.Rings;
using Xunit;

namespace Copra.Tests.Rings;

/// <summary>SpscRing single-thread semantics: full, empty, FIFO across many wrap-arounds, batch variants, Count.</summary>
public class SpscRingTests
{
    [Fact]
    public void Empty_ring_dequeues_nothing()
    {
        var ring = new SpscRing<long>(4);
        Assert.False(ring.TryDequeue(out long item));
        Assert.Equal(0, item);
        Assert.Equal(0, ring.Count);
        Assert.Equal(0, ring.TryDequeueMany(new long[3]));
    }

    [Fact]
    public void Full_ring_refuses_until_the_consumer_frees_a_slot()
    {
        var ring = new SpscRing<long>(4);
        for (long i = 0; i < 4; i++) Assert.True(ring.TryEnqueue(i));
        Assert.Equal(4, ring.Count);
        Assert.False(ring.TryEnqueue(99));
        Assert.False(ring.TryEnqueue(99));          // a second refusal goes through the slow path again
        Assert.Equal(0, ring.TryEnqueueMany([99, 98]));

        Assert.True(ring.TryDequeue(out long first));
        Assert.Equal(0, first);
        Assert.True(ring.TryEnqueue(4));             // producer re-reads the head and sees the free slot
        Assert.False(ring.TryEnqueue(99));
        for (long i = 1; i <= 4; i++)
        {
            Assert.True(ring.TryDequeue(out long item));
            Assert.Equal(i, item);
        }
        Assert.False(ring.TryDequeue(out _));
    }

    [Fact]
    public void Order_survives_many_wrap_arounds()
    {
        var ring = new SpscRing<long>(4);
        long next = 0, expected = 0;
        for (int lap = 0; lap < 1000; lap++)
        {
            int burst = lap % 4 + 1;                 // 1..4 so the slot index lands everywhere
            for (int i = 0; i < burst; i++) Assert.True(ring.TryEnqueue(next++));
            Assert.Equal(burst, ring.Count);
            for (int i = 0; i < burst; i++)
            {
                Assert.True(ring.TryDequeue(out long item));
                Assert.Equal(expected++, item);
            }
            Assert.Equal(0, ring.Count);
        }
    }

    [Fact]
    public void EnqueueMany_takes_what_fits_and_wraps_in_order()
    {
        var ring = new SpscRing<int>(8);
        for (int i = 0; i < 5; i++) Assert.True(ring.TryEnqueue(-1));
        Assert.Equal(5, ring.TryDequeueMany(new int[5]));   // head and tail now at slot 5

        int[] source = Enumerable.Range(0, 10).ToArray();
        Assert.Equal(8, ring.TryEnqueueMany(source));       // only 8 fit; slots 5,6,7,0,1,2,3,4
        Assert.Equal(8, ring.Count);
        Assert.Equal(0, ring.TryEnqueueMany(source.AsSpan(8)));

        var got = new int[5];
        Assert.Equal(5, ring.TryDequeueMany(got));
        Assert.Equal([0, 1, 2, 3, 4], got);
        Assert.Equal(2, ring.TryEnqueueMany(source.AsSpan(8)));
        var rest = new int[10];
        Assert.Equal(5, ring.TryDequeueMany(rest));
        Assert.Equal([5, 6, 7, 8, 9], rest[..5]);
        Assert.Equal(0, ring.Count);
    }

    [Fact]
    public void Empty_spans_move_nothing()
    {
        var ring = new SpscRing<long>(2);
        Assert.Equal(0, ring.TryEnqueueMany(ReadOnlySpan<long>.Empty));
        Assert.True(ring.TryEnqueue(1));
        Assert.Equal(0, ring.TryDequeueMany(Span<long>.Empty));
        Assert.Equal(1, ring.Count);
    }

    [Fact]
    public void Single_and_batch_calls_interleave_in_one_order()
    {
        var ring = new SpscRing<long>(16);
        long next = 0, expected = 0;
        var buffer = new long[7];
        for (int round = 0; round < 500; round++)
        {
            Assert.True(ring.TryEnqueue(next++));
            long[] batch = [next, next + 1, next + 2];
            int pushed = ring.TryEnqueueMany(batch);
            next += pushed;
            int popped = ring.TryDequeueMany(buffer.AsSpan(0, round % 7 + 1));
            for (int i = 0; i < popped; i++) Assert.Equal(expected++, buffer[i]);
            if (ring.TryDequeue(out long one)) Assert.Equal(expected++, one);
        }
        while (ring.TryDequeue(out long item)) Assert.Equal(expected++, item);
        Assert.Equal(next, expected);
    }

    [Fact]
    public void Struct_entries_are_copied_whole()
    {
        var ring = new SpscRing<ExitRecordLike>(2);
        var record = ExitRecordLike.For(42);
        Assert.True(ring.TryEnqueue(record));
        Assert.True(ring.TryDequeue(out var got));
        Assert.Equal(record, got);
    }
}

/// <summary>A 32-byte stand-in for an exit record; its fields are derived from one number so a torn copy shows.</summary>
internal readonly record struct ExitRecordLike(long Sequence, ulong Gpa, ulong Qualification, long Check)
{
    public static ExitRecordLike For(long n) => new(n, (ulong)n * 4096, ~(ulong)n, n ^ 0x5A5A_5A5A_5A5A);

    public bool IsWhole => Gpa == (ulong)Sequence * 4096 && Qualification == ~(ulong)Sequence && Check == (Sequence ^ 0x5A5A_5A5A_5A5A);
}

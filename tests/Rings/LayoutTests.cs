using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Copra.Hot.Rings;
using Xunit;

namespace Copra.Tests.Rings;

/// <summary>
/// Pins the padding of the ring index structs: fields written by different cores start at least
/// one 128-byte separation apart, and nothing outside the struct can come closer than that.
/// </summary>
public class LayoutTests
{
    static int Off<T>(string field) where T : struct => (int)Marshal.OffsetOf<T>(field);

    [Fact]
    public void Separation_is_two_64_byte_lines()
    {
        Assert.Equal(64, CacheLine.Size);
        Assert.Equal(128, CacheLine.Separation);
    }

    [Fact]
    public void PaddedIndex_value_sits_alone_in_256_bytes()
    {
        Assert.Equal(256, Unsafe.SizeOf<PaddedIndex>());
        Assert.Equal(PaddedIndex.Size, Unsafe.SizeOf<PaddedIndex>());
        Assert.Equal(128, Off<PaddedIndex>(nameof(PaddedIndex.Value)));
        Assert.Equal(PaddedIndex.ValueOffset, Off<PaddedIndex>(nameof(PaddedIndex.Value)));
        Assert.True(PaddedIndex.Size - PaddedIndex.ValueOffset >= CacheLine.Separation);
    }

    [Fact]
    public void PaddedHeadTail_offsets_are_pinned()
    {
        Assert.Equal(408, Unsafe.SizeOf<PaddedHeadTail>());
        Assert.Equal(PaddedHeadTail.Size, Unsafe.SizeOf<PaddedHeadTail>());
        Assert.Equal(128, Off<PaddedHeadTail>(nameof(PaddedHeadTail.Head)));
        Assert.Equal(136, Off<PaddedHeadTail>(nameof(PaddedHeadTail.CachedTail)));
        Assert.Equal(264, Off<PaddedHeadTail>(nameof(PaddedHeadTail.Tail)));
        Assert.Equal(272, Off<PaddedHeadTail>(nameof(PaddedHeadTail.CachedHead)));
        Assert.Equal(280, Off<PaddedHeadTail>(nameof(PaddedHeadTail.PendingTail)));
        Assert.Equal(PaddedHeadTail.HeadOffset, Off<PaddedHeadTail>(nameof(PaddedHeadTail.Head)));
        Assert.Equal(PaddedHeadTail.CachedTailOffset, Off<PaddedHeadTail>(nameof(PaddedHeadTail.CachedTail)));
        Assert.Equal(PaddedHeadTail.TailOffset, Off<PaddedHeadTail>(nameof(PaddedHeadTail.Tail)));
        Assert.Equal(PaddedHeadTail.CachedHeadOffset, Off<PaddedHeadTail>(nameof(PaddedHeadTail.CachedHead)));
        Assert.Equal(PaddedHeadTail.PendingTailOffset, Off<PaddedHeadTail>(nameof(PaddedHeadTail.PendingTail)));
    }

    [Fact]
    public void PaddedHeadTail_head_and_tail_are_at_least_128_bytes_apart_in_a_live_instance()
    {
        var indices = new PaddedHeadTail();
        long apart = Unsafe.ByteOffset(ref indices.Head, ref indices.Tail);
        Assert.True(apart >= CacheLine.Separation, $"head and tail only {apart} bytes apart");
    }

    [Fact]
    public void PaddedHeadTail_consumer_and_producer_groups_never_share_a_128_byte_pair()
    {
        string[] consumer = [nameof(PaddedHeadTail.Head), nameof(PaddedHeadTail.CachedTail)];
        string[] producer = [nameof(PaddedHeadTail.Tail), nameof(PaddedHeadTail.CachedHead), nameof(PaddedHeadTail.PendingTail)];
        foreach (var c in consumer)
        foreach (var p in producer)
        {
            int gap = Off<PaddedHeadTail>(p) - Off<PaddedHeadTail>(c);
            Assert.True(gap >= CacheLine.Separation, $"{c} and {p} only {gap} bytes apart");
        }
        // Whatever the runtime puts before or after the struct stays a full separation away.
        foreach (var f in consumer.Concat(producer))
        {
            int off = Off<PaddedHeadTail>(f);
            Assert.True(off >= CacheLine.Separation, $"{f} only {off} bytes from the struct start");
            Assert.True(PaddedHeadTail.Size - off >= CacheLine.Separation, $"{f} only {PaddedHeadTail.Size - off} bytes from the struct end");
        }
    }
}

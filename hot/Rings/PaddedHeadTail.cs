// Design note — PaddedHeadTail: the indices of a single-producer/single-consumer ring, each side's
// fields grouped on that side's own cache-line pair (dotnet/runtime's PaddedHeadAndTail, extended
// with the cached copies Disruptor/rigtorp-style rings keep).
//
//   offset 0         128    136          264    272          280          408
//          | pad     | Head | CachedTail | pad  | Tail | CachedHead | PendingTail | pad |
//          |         '--- consumer ----'      '------------ producer -----------'     |
//
// Every group start is ≥ CacheLine.Separation from the last field start of the group before it
// (and from the struct's edges), so the consumer's line and the producer's line never share a
// 128-byte pair (see CacheLine for the 8-byte-alignment argument).
//
// Who may call what:
//   Head         — written by the consumer only (release store), read by the producer (acquire).
//   CachedTail   — consumer-private: its last acquired copy of Tail.
//   Tail         — written by the producer only (release store), read by the consumer (acquire).
//   CachedHead   — producer-private: its last acquired copy of Head.
//   PendingTail  — producer-private: entries written but not yet published (batch rings push
//                  several entries and publish them with one store to Tail; rings that publish
//                  every entry keep PendingTail == Tail).
// A side reads its own published index with a plain load (nobody else writes it).
//
// Invariant: 0 ≤ Head ≤ CachedTail ≤ Tail ≤ PendingTail ≤ CachedHead + capacity ≤ Head + capacity
// (each inequality holds when read by the side that owns its right-hand field's cache). Indices
// are 64-bit and only grow: at one entry per nanosecond they wrap after 292 years.

using System.Runtime.InteropServices;

namespace Copra.Hot.Rings;

/// <summary>
/// Head and tail of an SPSC ring on separate 128-byte cache-line pairs, each next to the cached
/// copy of the other index that its owner keeps. Offsets are public constants so a layout test
/// can pin them.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct PaddedHeadTail
{
    /// <summary>Offset of <see cref="Head"/>: one full separation of leading padding.</summary>
    public const int HeadOffset = CacheLine.Separation;

    /// <summary>Offset of <see cref="CachedTail"/>, beside <see cref="Head"/> on the consumer's line.</summary>
    public const int CachedTailOffset = HeadOffset + CacheLine.IndexSize;

    /// <summary>Offset of <see cref="Tail"/>: a full separation after the consumer's last field.</summary>
    public const int TailOffset = CachedTailOffset + CacheLine.Separation;

    /// <summary>Offset of <see cref="CachedHead"/>, beside <see cref="Tail"/> on the producer's line.</summary>
    public const int CachedHeadOffset = TailOffset + CacheLine.IndexSize;

    /// <summary>Offset of <see cref="PendingTail"/>, the producer's unpublished tail.</summary>
    public const int PendingTailOffset = CachedHeadOffset + CacheLine.IndexSize;

    /// <summary>Total size: trailing padding keeps whatever follows a full separation from the producer's last field.</summary>
    public const int Size = PendingTailOffset + CacheLine.Separation;

    /// <summary>Next position the consumer will read. Written by the consumer only.</summary>
    [FieldOffset(HeadOffset)]
    public long Head;

    /// <summary>Consumer-private copy of <see cref="Tail"/>, refreshed only when the ring looks empty.</summary>
    [FieldOffset(CachedTailOffset)]
    public long CachedTail;

    /// <summary>One past the last position the producer has published. Written by the producer only.</summary>
    [FieldOffset(TailOffset)]
    public long Tail;

    /// <summary>Producer-private copy of <see cref="Head"/>, refreshed only when the ring looks full.</summary>
    [FieldOffset(CachedHeadOffset)]
    public long CachedHead;

    /// <summary>Producer-private: one past the last position written; becomes visible when stored to <see cref="Tail"/>.</summary>
    [FieldOffset(PendingTailOffset)]
    public long PendingTail;
}

// Design note — PaddedIndex: one 64-bit index alone on its cache-line pair (Disruptor's Sequence).
//
//   offset 0            128          136                       256
//          | pad (128)  | Value (8)  | pad (120)               |
//
// Who may call what: whoever owns the index decides; PaddedIndex itself imposes no protocol. It
// is used for the MPSC ring's head (written by the one consumer) and tail (CAS'd by producers),
// and for the ping-pong baseline. Callers must hold it in a mutable field (never a readonly
// field or a copy), otherwise the methods below act on a copy.
//
// Invariant: nothing else the runtime places before or after this struct starts within
// CacheLine.Separation bytes of Value (see CacheLine for why starts ≥ 128 apart suffice).
//
// Memory ordering: ReadAcquire / WriteRelease are Volatile.Read / Volatile.Write (acquire load,
// release store; plain mov on x64, ldar/stlr on arm64). CompareExchange is a full fence.

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Copra.Hot.Rings;

/// <summary>
/// A single <see cref="long"/> index padded so that no other field shares its 128-byte
/// cache-line pair. Layout is pinned by <see cref="ValueOffset"/> and <see cref="Size"/>.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct PaddedIndex
{
    /// <summary>Offset of <see cref="Value"/>: one full separation of leading padding.</summary>
    public const int ValueOffset = CacheLine.Separation;

    /// <summary>Total size: trailing padding keeps the next field a full separation away from <see cref="Value"/>.</summary>
    public const int Size = ValueOffset + CacheLine.Separation;

    /// <summary>The index. Plain access is for its single writer; other threads use <see cref="ReadAcquire"/>.</summary>
    [FieldOffset(ValueOffset)]
    public long Value;

    /// <summary>Acquire load of <see cref="Value"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly long ReadAcquire() => Volatile.Read(in Value);

    /// <summary>Release store to <see cref="Value"/>: every earlier write is visible before it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteRelease(long value) => Volatile.Write(ref Value, value);

    /// <summary>Full-fence compare-and-swap; returns the value seen before the swap.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long CompareExchange(long value, long comparand) => Interlocked.CompareExchange(ref Value, value, comparand);
}

// Design note — the capacity rule every ring in hot/Rings shares, and its throw site.
// Who calls: ring constructors (once each). Invariant: a ring's capacity is a power of two in
// [2, 2^30], so a slot index is position & (capacity - 1) and fits an int. No shared state, so
// no ordering argument. The throw sits in RingThrowHelper, out of line, so validating callers
// stay small enough to inline.

using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace Copra.Hot.Rings;

/// <summary>Capacity rules every ring shares.</summary>
public static class RingCapacity
{
    /// <summary>Smallest capacity: the MPSC ring's per-slot sequence numbers need two slots to tell "full" from "free".</summary>
    public const int Min = 2;

    /// <summary>Largest capacity (2^30 entries), so position arithmetic and array lengths stay within int.</summary>
    public const int Max = 1 << 30;

    /// <summary>True when <paramref name="capacity"/> is a power of two in [<see cref="Min"/>, <see cref="Max"/>].</summary>
    public static bool IsValid(int capacity) => capacity is >= Min and <= Max && BitOperations.IsPow2(capacity);

    /// <summary>Returns <paramref name="capacity"/> or throws <see cref="ArgumentOutOfRangeException"/> naming the rule.</summary>
    public static int Validate(int capacity, [CallerArgumentExpression(nameof(capacity))] string? paramName = null)
    {
        if (!IsValid(capacity)) RingThrowHelper.ThrowCapacityNotPowerOfTwo(capacity, paramName);
        return capacity;
    }
}

internal static class RingThrowHelper
{
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void ThrowCapacityNotPowerOfTwo(int capacity, string? paramName) =>
        throw new ArgumentOutOfRangeException(paramName, capacity,
            $"Ring capacity must be a power of two between {RingCapacity.Min} and {RingCapacity.Max} (2^30); got {capacity}.");
}

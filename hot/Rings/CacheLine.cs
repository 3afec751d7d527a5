// Design note — cache-line geometry shared by every padded structure in hot/Rings.
//
// x86 cores move memory in 64-byte lines, but the L2 "adjacent-line" (spatial) prefetcher
// pulls the 128-byte-aligned pair a line belongs to, so two hot fields 64 bytes apart still
// bounce between cores. Apple and some Arm server parts use 128-byte lines outright. The unit
// of separation is therefore 128 bytes (dotnet/runtime's PaddingHelpers.CACHE_LINE_SIZE makes
// the same choice for x64 and arm64).
//
// Why "field starts 128 bytes apart" is enough: the CLR aligns every object and every long
// field to 8 bytes, so a 128-byte-aligned block seen from the struct starts at a multiple of 8.
// Two 8-byte fields whose starts differ by ≥ 128 cannot both lie inside such a block. Every
// padded layout below therefore keeps ≥ Separation bytes between the start of the last field
// of one group and the start of the first field of the next, and between each group and
// whatever the runtime places before or after the struct.

namespace Copra.Hot.Rings;

/// <summary>Cache-line sizes the padded ring layouts are derived from.</summary>
public static class CacheLine
{
    /// <summary>One hardware cache line on x86-64.</summary>
    public const int Size = 64;

    /// <summary>
    /// The false-sharing unit: the adjacent-line prefetcher fetches 128-byte-aligned pairs of
    /// lines, so fields written by different cores keep their starts this far apart.
    /// </summary>
    public const int Separation = 2 * Size;

    /// <summary>Size of one index field.</summary>
    public const int IndexSize = sizeof(long);
}

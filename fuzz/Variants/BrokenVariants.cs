// Deliberately broken variants of the code under test. Each plants one realistic bug; the broken-variant tests
// assert that the matching property catches it and shrinks the counterexample to a small case. They live here, not
// in hot/, so production code never carries them.
using Copra.Hot.Decode;

namespace Copra.Fuzz.Variants;

public static class BrokenDecoder
{
    /// <summary>X86Decoder with MOVSX r, r/m8 (0F BE) reported as a zero-extending load: the classic table slip.</summary>
    public static bool MovsxAsMovzx(ReadOnlySpan<byte> bytes, CpuMode mode, out DecodedAccess d)
    {
        bool ok = X86Decoder.TryDecode(bytes, mode, out d);
        if (ok && d.Kind == AccessKind.ReadSx && d.Size == 1) d.Kind = AccessKind.ReadZx;
        return ok;
    }
}

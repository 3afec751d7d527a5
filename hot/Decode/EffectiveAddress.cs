// Design note — effective and linear addresses of a decoded access.
//
// offset = base + index * scale + disp (+ next RIP for RIP-relative), truncated to the address size;
// linear = segment base + offset, truncated to 32 bits outside 64-bit mode (the CPU's wrap-around).
// BT with a register bit offset addresses the operand-sized unit holding the bit, which may lie outside
// the encoded operand (SDM Vol. 2A "BT"): Compute includes that adjustment so the exit path reads the right unit.
// Callers pass the 16 GPRs in x86 order and the segment base of d.Segment (of d.SrcSegment for the MOVS source).
// Pure functions: no state, no allocation.

using System.Runtime.CompilerServices;

namespace Copra.Hot.Decode;

/// <summary>Linear addresses of the memory operand(s) of a <see cref="DecodedAccess"/>.</summary>
public static class EffectiveAddress
{
    /// <summary>
    /// Linear address of the memory operand (for MOVS, STOS and INS the ES:rDI destination; for OUTS the rSI source).
    /// Caller obligations: <paramref name="gprs"/> holds at least 16 registers; <paramref name="segBase"/> is the base of
    /// <c>d.Segment</c> (0 for ES/CS/SS/DS in 64-bit mode).
    /// </summary>
    public static ulong Compute(in DecodedAccess d, ReadOnlySpan<ulong> gprs, ulong nextRip, ulong segBase) =>
        Linear(in d, RawOffset(in d, gprs, nextRip), segBase);

    /// <summary>The offset within the segment (the effective address truncated to the address size) of the memory operand:
    /// what the segment limit is checked against.</summary>
    public static ulong Offset(in DecodedAccess d, ReadOnlySpan<ulong> gprs, ulong nextRip) =>
        RawOffset(in d, gprs, nextRip) & X86Decoder.SizeMask(d.AddressSize);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong RawOffset(in DecodedAccess d, ReadOnlySpan<ulong> gprs, ulong nextRip)
    {
        ulong ea = BaseIndexDisp(in d, gprs, nextRip);
        if (d.Kind == AccessKind.Bt && d.Reg >= 0) ea += (ulong)WriteBack.BtByteOffset(in d, gprs);
        return ea;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong BaseIndexDisp(in DecodedAccess d, ReadOnlySpan<ulong> gprs, ulong nextRip)
    {
        ulong ea = (ulong)d.Disp;
        if (d.Base == Gpr.Rip) ea += nextRip;
        else if (d.Base >= 0) ea += gprs[d.Base];
        if (d.Index >= 0) ea += gprs[d.Index] * d.Scale;
        return ea;
    }

    /// <summary>
    /// <see cref="Compute"/> for an operand the plain memo replays (hot/Exit/ExitPipeline.Plain.cs): 64-bit mode, a segment
    /// whose base is 0 (not FS or GS) and not a BT form, so the linear address is the offset truncated to the address
    /// size, whose mask (<paramref name="sizeMask"/>, the address size's) the memo keeps. Why apart: the general one's
    /// tests of those three and the mask's computation are instructions of every replayed exit (−7 per MMIO exit).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Linear64(in DecodedAccess d, ReadOnlySpan<ulong> gprs, ulong nextRip, ulong sizeMask) =>
        BaseIndexDisp(in d, gprs, nextRip) & sizeMask;

    /// <summary>Linear address of the DS:rSI source of MOVS; <paramref name="srcSegBase"/> is the base of <c>d.SrcSegment</c>.</summary>
    public static ulong ComputeMovsSource(in DecodedAccess d, ReadOnlySpan<ulong> gprs, ulong srcSegBase) =>
        Linear(in d, gprs[Gpr.Rsi], srcSegBase);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong Linear(in DecodedAccess d, ulong ea, ulong segBase)
    {
        ulong linear = segBase + (ea & X86Decoder.SizeMask(d.AddressSize));
        return d.Mode == CpuMode.Bits64 ? linear : linear & 0xFFFF_FFFFUL;
    }
}

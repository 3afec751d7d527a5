// DecodeCache: the last instructions each vCPU decoded, keyed by their bytes and the CPU mode. A driver polls a
// status register or feeds a FIFO with the same few instructions exit after exit; the fetch still reads the bytes
// every time (through the code-page entry), and a hit needs them equal to the cached ones over the instruction's
// length, so code rewritten in place is decoded afresh. Nothing in a DecodedAccess depends on where the instruction
// sits (the effective address is computed later, from RIP and the registers), so the address only picks the slot
// (direct-mapped by its low bits, Ways slots per vCPU) and is not part of the key. Only the fast decoder's successes are kept: a
// refusal or an Iced fallback is decoded (and counted) every time.
//
// One vCPU is handled by one CPU at a time (the vCPU's CPU), so the slots need no synchronisation; each vCPU's ways
// of a column sit on their own cache-line pair (hot/Layout/VcpuColumn.cs).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Copra.Hot.Layout;

namespace Copra.Hot.Decode;

/// <summary>Per-vCPU direct-mapped cache of recently decoded instructions.</summary>
public sealed class DecodeCache
{
    /// <summary>
    /// Slots per vCPU, picked by the linear address's low six bits: instructions within one 64-byte window never evict
    /// each other. Why 64: with 8 slots (the low three bits) the default run mix's loop of eight exiting instructions
    /// collided in its slots and 37 % of its exits decoded afresh (~100 instructions per exit on average, counted).
    /// </summary>
    public const int Ways = 64;
    /// <summary>The byte buffer <see cref="TryDecode"/> takes: the 15 fetchable bytes and one zero, read as one 128-bit key.</summary>
    public const int BufferLength = 16;

    readonly VcpuWays<ulong> _lo, _hi;  // the key's bytes 0..7 and 8..15, beyond the length zero
    readonly VcpuWays<CpuMode> _mode;
    readonly VcpuWays<byte> _length;   // 0: empty
    readonly VcpuWays<DecodedAccess> _decoded;

    public DecodeCache(int vcpuCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vcpuCount);
        _lo = new(vcpuCount, Ways); _hi = new(vcpuCount, Ways); _mode = new(vcpuCount, Ways); _length = new(vcpuCount, Ways); _decoded = new(vcpuCount, Ways);
    }

    /// <summary>
    /// Decodes the first <paramref name="got"/> bytes of <paramref name="buffer"/> (<see cref="BufferLength"/> bytes,
    /// the fetched ones then zeros) in <paramref name="mode"/> for vCPU <paramref name="vcpu"/>, whose instruction is at
    /// linear address <paramref name="linear"/>; from the cache when the slot holds the same bytes. Same contract as
    /// <see cref="X86Decoder.TryDecode"/> on <c>buffer[..got]</c>.
    /// </summary>
    public bool TryDecode(int vcpu, ulong linear, ReadOnlySpan<byte> buffer, int got, CpuMode mode, out DecodedAccess d)
    {
        // Why two ulongs and not a UInt128: the 128-bit shift and compare were calls under NativeAOT (~40 instructions a hit).
        ulong lo = MemoryMarshal.Read<ulong>(buffer), hi = MemoryMarshal.Read<ulong>(buffer[8..BufferLength]);
        int slot = Slot(linear);
        if (TryHit(vcpu, slot, lo, hi, got, mode, out d)) return true;
        if (!X86Decoder.TryDecode(buffer[..got], mode, out d)) return false;
        _length.At(vcpu, slot) = d.Length;
        _mode.At(vcpu, slot) = mode;
        _lo.At(vcpu, slot) = lo & LowMask(d.Length);
        _hi.At(vcpu, slot) = hi & HighMask(d.Length);
        _decoded.At(vcpu, slot) = d;
        return true;
    }

    /// <summary>
    /// The hit half of <see cref="TryDecode"/>, for a caller that holds the key as two words (<see
    /// cref="Guest.InstructionFetcher.TryFetchWords"/>: 15 bytes fetched, the 16th zero). False on a miss, with
    /// <paramref name="d"/> undefined: the caller then fills the buffer and calls <see cref="TryDecode"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryHit(int vcpu, ulong linear, ulong lo, ulong hi, CpuMode mode, out DecodedAccess d) =>
        TryHit(vcpu, Slot(linear), lo, hi, Guest.InstructionFetcher.MaxInstructionLength, mode, out d);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    bool TryHit(int vcpu, int slot, ulong lo, ulong hi, int got, CpuMode mode, out DecodedAccess d)
    {
        int len = _length.At(vcpu, slot);
        if (len != 0 && len <= got && _mode.At(vcpu, slot) == mode
            && (lo & LowMask(len)) == _lo.At(vcpu, slot) && (hi & HighMask(len)) == _hi.At(vcpu, slot))
        {
            d = _decoded.At(vcpu, slot);
            return true;
        }
        Unsafe.SkipInit(out d);
        return false;
    }

    /// <summary>The slot of the instruction at <paramref name="linear"/>. Why the low bits and not a hash: a loop's
    /// instructions lie close together, and distinct addresses within <see cref="Ways"/> bytes always take distinct
    /// slots (a multiplicative hash spreads them too, but collided in 6 % of random 8-instruction loops).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Slot(ulong linear) => (int)(linear & (Ways - 1));

    /// <summary>Forgets vCPU <paramref name="vcpu"/>'s entries.</summary>
    public void Invalidate(int vcpu) => _length.Row(vcpu).Clear();

    /// <summary>The key's bytes 0..7 that belong to an instruction of <paramref name="len"/> bytes (1..15).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong LowMask(int len) => len >= 8 ? ulong.MaxValue : (1UL << (8 * len)) - 1;
    /// <summary>The key's bytes 8..15 that belong to it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong HighMask(int len) => len <= 8 ? 0 : (1UL << (8 * (len - 8))) - 1;
}

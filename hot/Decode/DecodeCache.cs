// DecodeCache: the last instructions each vCPU decoded, keyed by their bytes and the CPU mode. A driver polls a
// status register or feeds a FIFO with the same few instructions exit after exit; the fetch still reads the bytes
// every time (through the code-page entry), and a hit needs them equal to the cached ones over the instruction's
// length, so code rewritten in place is decoded afresh. Nothing in a DecodedAccess depends on where the instruction
// sits (the effective address is computed later, from RIP and the registers), so the address only picks the slot
// (direct-mapped, Ways slots per vCPU) and is not part of the key. Only the fast decoder's successes are kept: a
// refusal or an Iced fallback is decoded (and counted) every time.
//
// One vCPU is handled by one CPU at a time (the vCPU's CPU), so the slots need no synchronisation; each vCPU's ways
// of a column sit on their own cache-line pair (hot/Layout/VcpuColumn.cs).
using System.Runtime.InteropServices;
using Copra.Hot.Layout;

namespace Copra.Hot.Decode;

/// <summary>Per-vCPU direct-mapped cache of recently decoded instructions.</summary>
public sealed class DecodeCache
{
    /// <summary>Slots per vCPU. Why 8: the default run mix cycles through about that many exiting instructions per vCPU.</summary>
    public const int Ways = 8;
    /// <summary>The byte buffer <see cref="TryDecode"/> takes: the 15 fetchable bytes and one zero, read as one 128-bit key.</summary>
    public const int BufferLength = 16;

    readonly VcpuWays<UInt128> _bytes;
    readonly VcpuWays<CpuMode> _mode;
    readonly VcpuWays<byte> _length;   // 0: empty
    readonly VcpuWays<DecodedAccess> _decoded;

    public DecodeCache(int vcpuCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vcpuCount);
        _bytes = new(vcpuCount, Ways); _mode = new(vcpuCount, Ways); _length = new(vcpuCount, Ways); _decoded = new(vcpuCount, Ways);
    }

    /// <summary>
    /// Decodes the first <paramref name="got"/> bytes of <paramref name="buffer"/> (<see cref="BufferLength"/> bytes,
    /// the fetched ones then zeros) in <paramref name="mode"/> for vCPU <paramref name="vcpu"/>, whose instruction is at
    /// linear address <paramref name="linear"/>; from the cache when the slot holds the same bytes. Same contract as
    /// <see cref="X86Decoder.TryDecode"/> on <c>buffer[..got]</c>.
    /// </summary>
    public bool TryDecode(int vcpu, ulong linear, ReadOnlySpan<byte> buffer, int got, CpuMode mode, out DecodedAccess d)
    {
        UInt128 all = MemoryMarshal.Read<UInt128>(buffer[..BufferLength]);
        int slot = (int)(linear & (Ways - 1));
        int len = _length.At(vcpu, slot);
        if (len != 0 && len <= got && _mode.At(vcpu, slot) == mode && (all & Mask(len)) == _bytes.At(vcpu, slot))
        {
            d = _decoded.At(vcpu, slot);
            return true;
        }
        if (!X86Decoder.TryDecode(buffer[..got], mode, out d)) return false;
        _length.At(vcpu, slot) = d.Length;
        _mode.At(vcpu, slot) = mode;
        _bytes.At(vcpu, slot) = all & Mask(d.Length);
        _decoded.At(vcpu, slot) = d;
        return true;
    }

    /// <summary>Forgets vCPU <paramref name="vcpu"/>'s entries.</summary>
    public void Invalidate(int vcpu) => _length.Row(vcpu).Clear();

    static UInt128 Mask(int len) => len >= 16 ? UInt128.MaxValue : (UInt128.One << (8 * len)) - 1;
}

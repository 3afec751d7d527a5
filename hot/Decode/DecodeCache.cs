// DecodeCache: the last instruction each vCPU decoded, keyed by its bytes and the CPU mode. A driver polls a status
// register or feeds a FIFO with the same instruction exit after exit; the fetch still reads the bytes every time
// (through the code-page entry), and a hit needs them equal to the cached ones over the instruction's length, so
// code rewritten in place is decoded afresh. Nothing in a DecodedAccess depends on where the instruction sits (the
// effective address is computed later, from RIP and the registers), so the address is not part of the key.
// Only the fast decoder's successes are kept: a refusal or an Iced fallback is decoded (and counted) every time.
//
// One vCPU is handled by one CPU at a time (the vCPU's CPU), so the slots need no synchronisation.
namespace Copra.Hot.Decode;

/// <summary>Per-vCPU one-entry cache of the last decoded instruction.</summary>
public sealed class DecodeCache
{
    readonly UInt128[] _bytes;
    readonly CpuMode[] _mode;
    readonly byte[] _length;   // 0: empty
    readonly DecodedAccess[] _decoded;

    public DecodeCache(int vcpuCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vcpuCount);
        _bytes = new UInt128[vcpuCount]; _mode = new CpuMode[vcpuCount]; _length = new byte[vcpuCount];
        _decoded = new DecodedAccess[vcpuCount];
    }

    /// <summary>
    /// Decodes <paramref name="bytes"/> (at most 16) in <paramref name="mode"/> for vCPU <paramref name="vcpu"/>,
    /// from the cache when the same bytes were its last successful decode. Same contract as
    /// <see cref="X86Decoder.TryDecode"/>.
    /// </summary>
    public bool TryDecode(int vcpu, ReadOnlySpan<byte> bytes, CpuMode mode, out DecodedAccess d)
    {
        int len = _length[vcpu];
        if (len != 0 && len <= bytes.Length && _mode[vcpu] == mode && Key(bytes, len) == _bytes[vcpu])
        {
            d = _decoded[vcpu];
            return true;
        }
        if (!X86Decoder.TryDecode(bytes, mode, out d)) return false;
        _length[vcpu] = d.Length;
        _mode[vcpu] = mode;
        _bytes[vcpu] = Key(bytes, d.Length);
        _decoded[vcpu] = d;
        return true;
    }

    /// <summary>Forgets vCPU <paramref name="vcpu"/>'s entry.</summary>
    public void Invalidate(int vcpu) => _length[vcpu] = 0;

    /// <summary>The first <paramref name="len"/> (1..16) bytes as one 128-bit value.</summary>
    static UInt128 Key(ReadOnlySpan<byte> bytes, int len)
    {
        Span<byte> k = stackalloc byte[16];
        k.Clear();
        bytes[..len].CopyTo(k);
        return System.Runtime.InteropServices.MemoryMarshal.Read<UInt128>(k);
    }
}

using Copra.Abi;

namespace Copra.Kernel.Exit;

/// <summary>
/// The host behind forwarded exits (one GHCB request / TDVMCALL each). It has a few devices of its
/// own so forwarding does something observable: a POST-code port (0x80), a CMOS/RTC index/data
/// pair (0x70/0x71), and scratch MMIO at <see cref="ScratchBase"/>. Anything else reads all-ones
/// and drops writes, as a bus with nothing behind it does. <see cref="FailRate"/> (fault injection)
/// makes a share of requests fail; the guest then sees all-ones.
/// </summary>
public sealed class ModelledHost
{
    public const ulong ScratchBase = 0xFED0_0000, ScratchLength = 0x1000;
    readonly byte[] _cmos = new byte[128];
    readonly byte[] _scratch = new byte[ScratchLength];
    byte _cmosIndex;
    ulong _failState = 0x2545F4914F6CDD1DUL;

    public long Requests, Failures;
    public byte LastPostCode { get; private set; }
    /// <summary>Share of requests that fail, 0..1 (fault injection).</summary>
    public double FailRate { get; set; }

    public bool Access(EventKind kind, ulong addr, uint size, bool write, ulong data, out ulong value)
    {
        Requests++;
        value = 0;
        // Stryker disable once Equality: at FailRate 0 the draw below can never fail a request, so > and >= differ only in the unobserved generator state.
        if (FailRate > 0)
        {
            // The rule is the share of failed requests, not this sequence: any full-period variant of the xorshift is as right.
            // Stryker disable Bitwise,Assignment: another shift direction or |= is another generator with the same share (tests check the share).
            _failState ^= _failState << 13;
            _failState ^= _failState >> 7;
            _failState ^= _failState << 17;
            // Stryker restore Bitwise,Assignment
            // Stryker disable once Equality: < against <= differs on one residue in a million.
            if ((_failState % 1_000_000) < FailRate * 1_000_000) { Failures++; return false; }
        }
        ulong ones = size >= 8 ? ulong.MaxValue : (1UL << (int)(size * 8)) - 1;
        if (kind == EventKind.Ioio)
        {
            switch (addr)
            {
                case 0x80: if (write) LastPostCode = (byte)data; else value = LastPostCode; return true;
                case 0x70: if (write) _cmosIndex = (byte)(data & 0x7F); else value = _cmosIndex; return true;
                case 0x71: if (write) _cmos[_cmosIndex] = (byte)data; else value = _cmos[_cmosIndex]; return true;
                default: value = write ? 0 : ones; return true;
            }
        }
        if (addr >= ScratchBase && addr - ScratchBase + size <= ScratchLength)
        {
            int off = (int)(addr - ScratchBase);
            for (int i = 0; i < size; i++)
                // Stryker disable once Bitwise,Assignment: data is unsigned (>> is >>>), and the bytes' bits are disjoint (|= is ^=).
                if (write) _scratch[off + i] = (byte)(data >> (8 * i)); else value |= (ulong)_scratch[off + i] << (8 * i);
            return true;
        }
        value = write ? 0 : ones;
        return true;
    }

    /// <summary>
    /// An MMIO access wider than 8 bytes (SSE, CMPXCHG16B, MOVDIR64B), forwarded whole: one request whose data moves
    /// through the shared buffer (<paramref name="data"/> holds a write's bytes, and receives a read's). The scratch
    /// page keeps them; anything else reads all-ones. A failed request leaves a read all-ones as well.
    /// </summary>
    public bool AccessWide(ulong addr, Span<byte> data, bool write, out ulong value)
    {
        value = 0;
        if (!Access(EventKind.Mmio, addr, 1, write, 0, out _)) { if (!write) data.Fill(0xFF); return false; }
        if (addr >= ScratchBase && addr - ScratchBase + (ulong)data.Length <= ScratchLength)
        {
            var page = _scratch.AsSpan((int)(addr - ScratchBase), data.Length);
            if (write) data.CopyTo(page); else page.CopyTo(data);
            return true;
        }
        if (!write) data.Fill(0xFF);
        return true;
    }
}

using Copra.Hot.Decode;
using Xunit;

namespace Copra.Tests.Decode;

/// <summary>
/// Seeded random instructions built around the emulated opcodes (random legacy prefixes, REX, ModRM, SIB and
/// trailing bytes), decoded by both X86Decoder and the Iced fallback. Wherever the fast path accepts, the fallback
/// must produce the identical access; wherever the fallback accepts and the fast path refuses, it must be one of
/// the encodings deliberately left to Iced (F6/F7 /1, 82). Also: decoding never allocates.
/// </summary>
public class DecoderRandomDifferentialTests
{
    static readonly byte[] Prefixes = [0x66, 0x67, 0xF2, 0xF3, 0xF0, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65];
    static readonly byte[] OneByte =
    [
        0x00, 0x01, 0x02, 0x03, 0x08, 0x09, 0x0A, 0x0B, 0x10, 0x11, 0x12, 0x13, 0x18, 0x19, 0x1A, 0x1B, 0x20, 0x21, 0x22, 0x23,
        0x28, 0x29, 0x2A, 0x2B, 0x30, 0x31, 0x32, 0x33, 0x38, 0x39, 0x3A, 0x3B, 0x63, 0x69, 0x6B, 0x6C, 0x6D, 0x6E, 0x6F,
        0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8B, 0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
        0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF, 0xC0, 0xC1, 0xC6, 0xC7, 0xD0, 0xD1, 0xD2, 0xD3, 0xE4, 0xE5,
        0xE6, 0xE7, 0xEC, 0xED, 0xEE, 0xEF, 0xF6, 0xF7, 0xFE, 0xFF, 0xC4, 0xC5,
    ];
    static readonly byte[] TwoByte =
    [
        0xA3, 0xAB, 0xB3, 0xBB, 0xBA, 0xB6, 0xB7, 0xBE, 0xBF, 0xA4, 0xA5, 0xAC, 0xAD, 0xAF, 0xB0, 0xB1, 0xC0, 0xC1, 0xC3, 0xC7,
        0x40, 0x41, 0x45, 0x4C, 0x4E, 0x90, 0x93, 0x95, 0x98, 0x9D,
    ];

    static byte[] RandomInstruction(Random rng)
    {
        var b = new List<byte>();
        int prefixes = rng.Next(4);
        for (int i = 0; i < prefixes; i++) b.Add(Prefixes[rng.Next(Prefixes.Length)]);
        if (rng.Next(2) == 0) b.Add((byte)(0x40 + rng.Next(16)));
        if (rng.Next(8) == 0) b.Add(Prefixes[rng.Next(Prefixes.Length)]); // a prefix after REX
        if (rng.Next(5) == 0) { b.Add(0x0F); b.Add(TwoByte[rng.Next(TwoByte.Length)]); }
        else b.Add(OneByte[rng.Next(OneByte.Length)]);
        int tail = rng.Next(16);
        for (int i = 0; i < tail; i++) b.Add((byte)rng.Next(256));
        return [.. b];
    }

    [Theory]
    [InlineData(CpuMode.Bits16, 1)]
    [InlineData(CpuMode.Bits32, 2)]
    [InlineData(CpuMode.Bits64, 3)]
    public void FastPathAndIcedAgree(CpuMode mode, int seed)
    {
        var rng = new Random(seed);
        int accepted = 0;
        for (int n = 0; n < 20_000; n++)
        {
            byte[] bytes = RandomInstruction(rng);
            bool ours = X86Decoder.TryDecode(bytes, mode, out DecodedAccess d);
            bool iced = IcedFallback.TryDecode(bytes, mode, out DecodedAccess f);
            string hex = Convert.ToHexString(bytes);
            if (ours)
            {
                accepted++;
                Assert.True(iced, $"{mode} {hex}: fallback refused ({f.Error}), fast path decoded {d.Kind}");
                Assert.Equal(Describe(d), Describe(f));
            }
            else if (iced)
            {
                Assert.True(LeftToIced(bytes, mode, d.Error), $"{mode} {hex}: fast path refused ({d.Error}), Iced decoded {Describe(f)}");
            }
        }
        Assert.True(accepted > 5_000, $"only {accepted} accepted: the generator no longer exercises the decoder");
    }

    /// <summary>The fast path's deliberate gaps: F6/F7 /1 (undocumented TEST) and 82 (an 80 alias outside 64-bit mode).</summary>
    static bool LeftToIced(byte[] bytes, CpuMode mode, RefuseReason why)
    {
        int i = 0;
        while (i < bytes.Length && (Array.IndexOf(Prefixes, bytes[i]) >= 0 || (mode == CpuMode.Bits64 && bytes[i] is >= 0x40 and <= 0x4F))) i++;
        if (i + 1 >= bytes.Length) return false;
        byte op = bytes[i], modrm = bytes[i + 1];
        if (op is 0xF6 or 0xF7 && ((modrm >> 3) & 7) == 1) return why == RefuseReason.UnsupportedOp;
        return op == 0x82 && mode != CpuMode.Bits64 && why == RefuseReason.UnknownOpcode;
    }

    static string Describe(in DecodedAccess d) =>
        $"len={d.Length} kind={d.Kind} size={d.Size} reg={d.Reg}/{d.RegHigh8}/{d.RegSize} imm={d.HasImm}:{d.Imm:x} rep={d.Rep} "
        + (d.HasMemory ? $"seg={d.Segment}/{d.SrcSegment} mem={d.Base}+{d.Index}*{d.Scale}+{d.Disp:x} asz={d.AddressSize} " : "")
        + $"port={d.PortIsDx}:{d.Port} op={d.Op} memdest={d.MemIsDest} repne={d.RepNe} cond={d.Cond}";

    [Fact]
    public void DecodingDoesNotAllocate()
    {
        var inputs = new List<(byte[] Bytes, CpuMode Mode)>();
        foreach (var (file, mode) in new[] { ("Decoder16.txt", CpuMode.Bits16), ("Decoder32.txt", CpuMode.Bits32), ("Decoder64.txt", CpuMode.Bits64) })
            foreach (var v in DecoderVectors.Load(file)) inputs.Add((v.Bytes, mode));
        ulong[] gprs = new ulong[16];
        ulong flags = 2;
        int ok = 0;
        long allocated = Support.SteadyState.BytesPerRound(() => { for (int round = 0; round < 10; round++) ok += Run(); });
        Assert.True(ok > 0);
        Assert.Equal(0, allocated);

        int Run()
        {
            int accepted = 0;
            foreach (var (bytes, mode) in inputs)
            {
                if (!X86Decoder.TryDecode(bytes, mode, out DecodedAccess d)) continue;
                accepted++;
                _ = EffectiveAddress.Compute(in d, gprs, 0x1000, 0);
                _ = Hot.Emulate.Executor.Execute(in d, gprs, ref flags, 0x5A, out _);
            }
            return accepted;
        }
    }
}

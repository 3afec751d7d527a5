// Rules the decode mutation run at b894875 found unnamed (docs/testing.md, "decode: the run after dec14"): the
// 15-byte limit seen from a 16th byte that is supplied but must never be read, and the FXSAVE64/FXRSTOR64 layout bit
// the fallback reports. Each test names its rule; the comment says which wrong line it catches.
using Copra.Hot.Decode;
using Xunit;

namespace Copra.Tests.Decode;

public class DecoderLimitRuleTests
{
    static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    static byte[] Repeat(byte b, int n) => Enumerable.Repeat(b, n).ToArray();

    [Theory]
    [InlineData(CpuMode.Bits16)]
    [InlineData(CpuMode.Bits32)]
    [InlineData(CpuMode.Bits64)]
    public void Fifteen_prefixes_are_too_long_whatever_the_16th_byte_supplied_after_them(CpuMode mode)
    {
        // The opcode would be the 16th byte: the CPU's #GP, even when the caller hands over more bytes and the 16th
        // would complete an instruction on its own (A4 MOVS, AC LODS, EC IN). Catches the prefix loop's `i >= limit`
        // loosened to `i > limit`, which reads byte 16 and decodes MOVS with length 16.
        for (int last = 0; last < 256; last++)
        {
            byte[] bytes = [.. Repeat(0x66, 15), (byte)last];
            Assert.False(X86Decoder.TryDecode(bytes, mode, out DecodedAccess d), $"{mode} 15 x 66 + {last:x2}: decoded {d.Kind}, length {d.Length}");
            Assert.Equal(RefuseReason.TooLong, d.Error);
            Assert.Equal(0, d.Length);
        }
    }

    [Theory]
    [InlineData(CpuMode.Bits16)]
    [InlineData(CpuMode.Bits32)]
    [InlineData(CpuMode.Bits64)]
    public void Fourteen_prefixes_and_0F_are_too_long_whatever_the_16th_byte_supplied_after_them(CpuMode mode)
    {
        // The 0F map's opcode would be the 16th byte. Catches the escape loop's `i >= limit` loosened to `i > limit`,
        // which reads it and answers UnknownOpcode for 0F 0B (UD2) or 0F FF instead of TooLong.
        for (int last = 0; last < 256; last++)
        {
            byte[] bytes = [.. Repeat(0x66, 14), 0x0F, (byte)last];
            Assert.False(X86Decoder.TryDecode(bytes, mode, out DecodedAccess d), $"{mode} 14 x 66 + 0f {last:x2}: decoded {d.Kind}");
            Assert.Equal(RefuseReason.TooLong, d.Error);
        }
        // The same with the escape as the 15th byte and nothing after it: the 16th byte is needed, so TooLong as well.
        Assert.False(X86Decoder.TryDecode([.. Repeat(0x66, 14), 0x0F], mode, out DecodedAccess shortOne));
        Assert.Equal(RefuseReason.TooLong, shortOne.Error);
    }

    [Theory]
    [InlineData("0f ae 03", 0)]      // FXSAVE m512
    [InlineData("48 0f ae 03", 1)]   // FXSAVE64 m512 (REX.W: 64-bit FIP/FDP layout)
    [InlineData("0f ae 0b", 0)]      // FXRSTOR m512
    [InlineData("48 0f ae 0b", 1)]   // FXRSTOR64 m512
    [InlineData("4c 0f ae 44 24 40", 1)]
    public void The_fallback_reports_the_FXSAVE64_layout_bit_in_Imm_as_the_fast_path_does(string hex, long rexW)
    {
        // The exit path picks the 32- or 64-bit FIP/FDP image layout from Imm, whichever decoder answered. The vector
        // comparisons skip Imm when HasImm is false (FXSAVE has no immediate), so nothing compared it. Catches the
        // fallback's `ins.Code is Fxsave64 or Fxrstor64 ? 1 : 0` made always 1, always 0, or negated.
        Assert.True(IcedFallback.TryDecode(Hex(hex), CpuMode.Bits64, out DecodedAccess f), $"{hex}: fallback refused ({f.Error})");
        Assert.True(X86Decoder.TryDecode(Hex(hex), CpuMode.Bits64, out DecodedAccess d), $"{hex}: fast path refused ({d.Error})");
        Assert.Equal(rexW, f.Imm);
        Assert.Equal(d.Imm, f.Imm);
        Assert.False(f.HasImm);
        Assert.Equal((d.Kind, d.Size, d.Align), (f.Kind, f.Size, f.Align));
    }
}

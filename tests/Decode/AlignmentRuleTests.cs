using System.Buffers.Binary;
using Copra.Hot.Decode;
using Copra.Hot.Emulate;
using Xunit;

namespace Copra.Tests.Decode;

/// <summary>
/// The SDM's alignment rules, which the CPU oracle cannot run natively (a #GP kills the harness): MOVAPS, MOVAPD,
/// MOVDQA and the legacy MOVNTPS, MOVNTPD, MOVNTDQ need a 16-byte aligned m128 (SDM vol. 2, each instruction's
/// "Protected Mode Exceptions": #GP(0) "if a memory operand is not aligned on a 16-byte boundary"); CMPXCHG16B needs
/// 16 too; MOVDIR64B needs its destination on a 64-byte boundary and its source on none; MOVUPS/UPD/DQU need none.
/// </summary>
public sealed class AlignmentRuleTests
{
    [Theory]
    [InlineData("0f 10 03", 0)]          // movups
    [InlineData("66 0f 10 03", 0)]       // movupd
    [InlineData("f3 0f 6f 03", 0)]       // movdqu
    [InlineData("0f 11 03", 0)]          // movups store
    [InlineData("f3 0f 7f 03", 0)]       // movdqu store
    [InlineData("0f 28 03", 16)]         // movaps
    [InlineData("66 0f 28 03", 16)]      // movapd
    [InlineData("66 0f 6f 03", 16)]      // movdqa
    [InlineData("0f 29 03", 16)]         // movaps store
    [InlineData("66 0f 7f 03", 16)]      // movdqa store
    [InlineData("0f 2b 03", 16)]         // movntps
    [InlineData("66 0f 2b 03", 16)]      // movntpd
    [InlineData("66 0f e7 03", 16)]      // movntdq
    [InlineData("48 0f c7 0e", 16)]      // cmpxchg16b
    [InlineData("0f c7 0e", 0)]          // cmpxchg8b: no rule (#AC only, with CR0.AM and RFLAGS.AC)
    [InlineData("66 0f 38 f8 3e", 64)]   // movdir64b: the destination
    [InlineData("0f 38 f9 03", 0)]       // movdiri
    public void Each_form_carries_the_SDM_alignment_and_the_check_follows_it(string hex, int align)
    {
        Assert.True(X86Decoder.TryDecode(Convert.FromHexString(hex.Replace(" ", "")), CpuMode.Bits64, out var d), hex);
        Assert.Equal(align, d.Align);
        Assert.True(Executor.Aligned(in d, 0x1000));
        Assert.True(Executor.Aligned(in d, 0x1000 + (ulong)align));
        if (align == 0) { Assert.True(Executor.Aligned(in d, 0x1001)); return; }
        for (int off = 1; off < align; off++) Assert.False(Executor.Aligned(in d, 0x1000 + (ulong)off), $"{hex} at +{off}");
    }

    [Fact]
    public void Lock_marks_the_locked_forms_and_xchg_without_a_prefix()
    {
        static DecodedAccess D(string hex) { Assert.True(X86Decoder.TryDecode(Convert.FromHexString(hex.Replace(" ", "")), CpuMode.Bits64, out var d)); return d; }
        Assert.True(D("f0 01 03").Lock);      // lock add
        Assert.False(D("01 03").Lock);        // add
        Assert.True(D("87 03").Lock);         // xchg: implicitly locked
        Assert.True(D("f0 48 0f c7 0e").Lock);
        Assert.False(D("0f 11 03").Lock);
    }

    [Fact]
    public void Vector_execution_moves_the_image_whole()
    {
        Span<UInt128> xmm = stackalloc UInt128[16];
        byte[] mem = new byte[64], write = new byte[64];
        for (int i = 0; i < 64; i++) mem[i] = (byte)(i + 1);
        Assert.True(X86Decoder.TryDecode([0x44, 0x0F, 0x10, 0x03], CpuMode.Bits64, out var load));   // movups xmm8, [rbx]
        Assert.Equal(ExecResult.NoWrite, Executor.ExecuteVector(in load, xmm, mem, write));
        Assert.Equal(BinaryPrimitives.ReadUInt128LittleEndian(mem), xmm[8]);
        Assert.Equal(UInt128.Zero, xmm[0]);
        xmm[3] = new UInt128(0x1122_3344_5566_7788, 0x99AA_BBCC_DDEE_FF00);
        Assert.True(X86Decoder.TryDecode([0x66, 0x0F, 0x7F, 0x1B], CpuMode.Bits64, out var store));   // movdqa [rbx], xmm3
        Assert.Equal(ExecResult.Write, Executor.ExecuteVector(in store, xmm, mem, write));
        Assert.Equal(0x99AA_BBCC_DDEE_FF00UL, BinaryPrimitives.ReadUInt64LittleEndian(write));        // low half first
        Assert.Equal(0x1122_3344_5566_7788UL, BinaryPrimitives.ReadUInt64LittleEndian(write.AsSpan(8)));
        Assert.True(X86Decoder.TryDecode([0x66, 0x0F, 0x38, 0xF8, 0x3E], CpuMode.Bits64, out var m64)); // movdir64b rdi, [rsi]
        Array.Clear(write);
        Assert.Equal(ExecResult.Write, Executor.ExecuteVector(in m64, xmm, mem, write));
        Assert.Equal(mem, write);
    }
}

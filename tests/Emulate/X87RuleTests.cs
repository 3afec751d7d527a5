using System.Buffers.Binary;
using Copra.Abi;
using Copra.Hot.Emulate;
using Copra.Hot.State;
using Xunit;

namespace Copra.Tests.Emulate;

/// <summary>The SDM's x87/MMX/FXSAVE rules (hot/Emulate/X87.cs) that the exit-path and CPU-oracle tests do not pin.</summary>
public sealed class X87RuleTests
{
    [Theory]
    [InlineData(true, 0UL, 0, 0)]
    [InlineData(true, X87.Cr0Em, 0, X87.VectorUd)]
    [InlineData(true, X87.Cr0Em | X87.Cr0Ts, 0, X87.VectorUd)]     // EM outranks TS for MMX
    [InlineData(true, X87.Cr0Ts, 0, X87.VectorNm)]
    [InlineData(true, X87.Cr0Ts, X87.FswEs, X87.VectorNm)]         // #NM outranks #MF
    [InlineData(true, 0UL, X87.FswEs, X87.VectorMf)]
    [InlineData(true, X87.Cr0Mp, 0, 0)]
    [InlineData(false, X87.Cr0Em, 0, X87.VectorNm)]                 // FNSTCW/FNSTSW/FXSAVE: #NM for EM or TS
    [InlineData(false, X87.Cr0Ts, 0, X87.VectorNm)]
    [InlineData(false, 0UL, X87.FswEs, 0)]                          // the no-wait forms ignore a pending exception
    public void Precheck_follows_the_sdm_exception_tables(bool mmx, ulong cr0, ushort fsw, byte vector) =>
        Assert.Equal(vector, X87.Precheck(mmx, cr0, fsw));

    [Fact]
    public void Abridged_tags_and_classification()
    {
        Assert.Equal(0x00, X87.Abridge(0xFFFF));
        Assert.Equal(0xFF, X87.Abridge(0x0000));
        Assert.Equal(0b1000_0101, X87.Abridge(0b10_11_11_11_11_01_11_00));      // R0 valid, R2 zero, R7 special
        Assert.Equal(0, X87.Classify(0x8000_0000_0000_0000, 0x3FFF));           // 1.0
        Assert.Equal(1, X87.Classify(0, 0x8000));                                // -0
        Assert.Equal(2, X87.Classify(1, 0));                                     // denormal
        Assert.Equal(2, X87.Classify(0x4000_0000_0000_0000, 0x3FFF));            // unnormal (J clear)
        Assert.Equal(2, X87.Classify(0xC000_0000_0000_0000, 0x7FFF));            // NaN
        Assert.Equal(2, X87.Classify(0x8000_0000_0000_0000, 0xFFFF));            // -infinity
    }

    [Fact]
    public void Restore_rebuilds_the_tag_word_by_physical_register_with_top_not_zero()
    {
        var s = new VcpuStateStore(1, StateAccessCost.Snp);
        var image = new byte[X87.ImageSize];
        BinaryPrimitives.WriteUInt16LittleEndian(image.AsSpan(2), 0x1800);   // TOP = 3
        image[4] = 0b0001_1000;                                              // physical R3 and R4 in use
        BinaryPrimitives.WriteUInt64LittleEndian(image.AsSpan(32), 0x8000_0000_0000_0000);   // ST(0) = R3: 1.0
        BinaryPrimitives.WriteUInt16LittleEndian(image.AsSpan(40), 0x3FFF);
        // ST(1) = R4: zero
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(24), 0x1F80);
        Assert.True(X87.Restore(s, 0, mode64: true, rexW: true, image));
        Assert.Equal((ushort)(0xFFFF & ~(3 << 6) & ~(3 << 8) | (1 << 8)), s.Ftw(0));   // R3 valid (00), R4 zero (01), the rest empty
    }

    [Fact]
    public void Restore_with_a_reserved_mxcsr_bit_loads_nothing()
    {
        var s = new VcpuStateStore(1, StateAccessCost.Snp);
        var image = new byte[X87.ImageSize];
        BinaryPrimitives.WriteUInt16LittleEndian(image, 0x037F);
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(24), 0x1_1F80);
        Assert.False(X87.MxcsrValid(image));
        Assert.False(X87.Restore(s, 0, mode64: true, rexW: false, image));
        Assert.Equal((ushort)0x0040, s.Fcw(0));
    }

    [Fact]
    public void Outside_64_bit_mode_the_image_is_288_bytes_without_xmm8_to_15()
    {
        var s = new VcpuStateStore(1, StateAccessCost.Snp);
        s.SetXmm(0, 7, new UInt128(0x77, 0x7777));
        s.SetXmm(0, 8, new UInt128(0x88, 0x8888));
        s.SetFip(0, 0x1_2345_6789);
        s.SetFcs(0, 0x10);
        var image = new byte[X87.ImageSize];
        image.AsSpan().Fill(0xCC);
        X87.Save(s, 0, mode64: false, rexW: false, image);
        Assert.Equal(288, X87.ImageBytes(false));
        Assert.Equal(5, X87.Pieces(false));
        Assert.Equal(32, X87.PieceBytes(false, 4));
        Assert.Equal(7, X87.Pieces(true));
        Assert.Equal(32, X87.PieceBytes(true, 6));
        Assert.Equal(0x2345_6789u, BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(8)));   // FIP 31:0
        Assert.Equal((ushort)0x10, BinaryPrimitives.ReadUInt16LittleEndian(image.AsSpan(12)));
        Assert.Equal(new UInt128(0x77, 0x7777), BinaryPrimitives.ReadUInt128LittleEndian(image.AsSpan(160 + 7 * 16)));
        Assert.All(image[288..], b => Assert.Equal(0xCC, b));                                  // XMM8.. and the rest untouched
        Assert.Equal(0, image[5]);                                                            // reserved bytes stored as zero

        s.SetXmm(0, 8, 0);
        image.AsSpan(160 + 8 * 16, 16).Fill(0x11);
        Assert.True(X87.Restore(s, 0, mode64: false, rexW: false, image));
        Assert.Equal((UInt128)0, s.Xmm(0, 8));                                                // not loaded outside 64-bit mode
        Assert.Equal(0x2345_6789UL, s.Fip(0));                                                // zero-extended
    }

    [Fact]
    public void Mmx_transition_with_top_zero_touches_no_register()
    {
        var s = new VcpuStateStore(1, StateAccessCost.Tdx);
        s.OnExit(0);
        s.SetSt(0, 2, 0x22, 0x2222);
        s.OnEntry(0);
        s.OnExit(0);
        Assert.Equal(0x22UL, X87.MmxStore(s, 0, 2));
        Assert.Equal((ushort)0, s.Ftw(0));
        Assert.Equal(1 + 2, s.TdReads[0]);                          // FSW, then ST(2): no rename, no other register read
        X87.MmxLoad(s, 0, 6, 0x66);
        Assert.Equal((0x66UL, (ushort)0xFFFF), s.St(0, 6));
    }
}

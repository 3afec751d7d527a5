using Copra.Abi;
using Copra.Hot.State;
using Xunit;

namespace Copra.Tests.State;

/// <summary>The x87/MMX/MXCSR fields (128..152): reset values, widths, TDX charging in their own pair, the VMSA's x87 area.</summary>
public sealed class X87StateTests
{
    static readonly ulong[] Words = [StateField.Fcw, StateField.Fsw, StateField.Ftw, StateField.Fcs, StateField.Fds];

    [Fact]
    public void Reset_values_are_the_sdm_power_up_ones()
    {
        var s = new VcpuStateStore(2, StateAccessCost.Snp);
        Assert.Equal((ushort)0x0040, s.Fcw(1));
        Assert.Equal((ushort)0x5555, s.Ftw(1));
        Assert.Equal(0x1F80u, s.Mxcsr(1));
        Assert.Equal((ushort)0, s.Fsw(1));
        Assert.Equal((0UL, (ushort)0), s.St(1, 7));
    }

    [Fact]
    public void Every_field_id_reads_back_what_it_wrote_and_refuses_values_too_wide()
    {
        var s = new VcpuStateStore(1, StateAccessCost.Snp);
        ulong n = 0x10;
        for (ulong f = StateField.Fcw; f <= StateField.Fds; f++)
        {
            ulong value = f == StateField.Fop ? 0x7FF : f == StateField.Mxcsr ? 0xFFFF : (f is StateField.Fip or StateField.Fdp || (f >= StateField.StBase && f < StateField.StBase + 16 && (f & 1) == 0)) ? 0x8123_4567_89AB_CD00 + n : 0xFF00 + n;
            Assert.True(s.TryWrite(0, f, value), $"field {f}");
            Assert.True(s.TryRead(0, f, out ulong back));
            Assert.Equal(value, back);
            n++;
        }
        foreach (ulong f in Words) Assert.False(s.TryWrite(0, f, 0x1_0000));
        Assert.False(s.TryWrite(0, StateField.Fop, 0x800));
        Assert.False(s.TryWrite(0, StateField.Mxcsr, 0x1_0000));            // outside MXCSR_MASK: FXRSTOR's #GP
        Assert.False(s.TryWrite(0, StateField.St(3, true), 0x1_0000));
        Assert.True(s.TryWrite(0, StateField.St(3, true), 0xBEEF));           // the exponent half keeps the mantissa
        Assert.Equal(0x8123_4567_89AB_CD00 + 0x10 + 14, s.St(0, 3).Mantissa);   // field 142 was the fifteenth written
        Assert.False(s.TryRead(0, StateField.Fds + 1, out _));
        Assert.Equal(VcpuStateStore.X87Bit.StFirst + 7, VcpuStateStore.X87TrackedBit(StateField.St(7, true)));
        Assert.Equal(-1, VcpuStateStore.X87TrackedBit(StateField.Xmm(15, true)));
        Assert.Equal(-1, VcpuStateStore.TrackedBit(StateField.Fcw));
    }

    [Fact]
    public void Tdx_charges_one_tdcall_per_word_and_two_per_register_in_the_x87_pair()
    {
        var s = new VcpuStateStore(2, StateAccessCost.Tdx);
        s.OnExit(1);
        s.Fcw(1); s.Fcw(1);
        s.St(1, 2); s.St(1, 2);
        Assert.True(s.TryRead(1, StateField.St(2, true), out _));
        Assert.Equal(3, s.TdReads[1]);                                        // FCW once, ST(2) twice (80 bits)
        Assert.Equal(0UL, s.ValidMask(1));                                    // the first pair is untouched
        Assert.Equal(1UL << VcpuStateStore.X87Bit.Fcw | 1UL << (VcpuStateStore.X87Bit.StFirst + 2), s.X87ValidMask(1));
        s.SetMxcsr(1, 0x1F80);
        s.SetSt(1, 0, 1, 2);
        s.SetCr3(1, 0x1000);
        Assert.Equal(1 + 2 + 1, s.OnEntry(1));                                // MXCSR, ST(0) (two), CR3
        Assert.Equal(0UL, s.X87DirtyMask(1));
        s.OnExit(1);
        Assert.Equal(0UL, s.X87ValidMask(1));                                 // an exit makes them stale again
        s.Mxcsr(1);
        Assert.Equal(4, s.TdReads[1]);
        Assert.Equal(0, s.TdReads[0]);

        var snp = new VcpuStateStore(1, StateAccessCost.Snp);
        snp.SetFcw(0, 1); snp.St(0, 1);
        Assert.Equal(0, snp.OnEntry(0) + snp.TotalTdReads);
    }

    [Fact]
    public void Vmsa_x87_area_round_trips_at_amds_offsets()
    {
        var s = new VcpuStateStore(1, StateAccessCost.Snp);
        s.SetFcw(0, 0x037F); s.SetFsw(0, 0x3800); s.SetFtw(0, 0xFFF0); s.SetFop(0, 0x123);
        s.SetFip(0, 0x1111_2222_3333_4444); s.SetFdp(0, 0x5555_6666_7777_8888); s.SetFcs(0, 0x33); s.SetFds(0, 0x2B); s.SetMxcsr(0, 0x1FA0);
        for (int n = 0; n < 8; n++) s.SetSt(0, n, 0xA000_0000_0000_0000UL | (uint)n, (ushort)(0x4000 + n));
        var page = new byte[VmsaLayout.Size];
        Assert.True(s.TryExportVmsa(0, page));
        Assert.Equal(0x5555_6666_7777_8888UL, BitConverter.ToUInt64(page, 0x400));
        Assert.Equal(0x1FA0u, BitConverter.ToUInt32(page, 0x408));
        Assert.Equal((ushort)0xFFF0, BitConverter.ToUInt16(page, 0x40C));
        Assert.Equal((ushort)0x3800, BitConverter.ToUInt16(page, 0x40E));
        Assert.Equal((ushort)0x037F, BitConverter.ToUInt16(page, 0x410));
        Assert.Equal((ushort)0x123, BitConverter.ToUInt16(page, 0x412));
        Assert.Equal((ushort)0x2B, BitConverter.ToUInt16(page, 0x414));
        Assert.Equal((ushort)0x33, BitConverter.ToUInt16(page, 0x416));
        Assert.Equal(0x1111_2222_3333_4444UL, BitConverter.ToUInt64(page, 0x418));
        Assert.Equal(0xA000_0000_0000_0007UL, BitConverter.ToUInt64(page, 0x420 + 70));
        Assert.Equal((ushort)0x4007, BitConverter.ToUInt16(page, 0x420 + 78));
        Assert.Equal(0x470, VmsaLayout.FpregX87 + 80);                         // fpreg_x87 ends where fpreg_xmm starts

        var t = new VcpuStateStore(1, StateAccessCost.Snp);
        Assert.True(t.TryImportVmsa(0, page));
        var again = new byte[VmsaLayout.Size];
        Assert.True(t.TryExportVmsa(0, again));
        Assert.Equal(page, again);
        BitConverter.TryWriteBytes(page.AsSpan(0x408), 0x1_0000u);              // a reserved MXCSR bit: refused whole
        Assert.False(t.TryImportVmsa(0, page));
        Assert.Equal(0x1FA0u, t.Mxcsr(0));
    }
}

using Copra.Abi;
using Copra.Hot.State;
using Xunit;

namespace Copra.Tests.State;

/// <summary>The vCPU state store: TDX field accounting, SNP free access, field ids, MSRs and the VMSA page.</summary>
public sealed class VcpuStateStoreTests
{
    static VcpuStateStore Tdx() => new(4, StateAccessCost.Tdx);
    static VcpuStateStore Snp() => new(4, StateAccessCost.Snp);

    [Fact]
    public void Tdx_read_twice_costs_one_tdg_vp_rd()
    {
        VcpuStateStore s = Tdx();
        s.OnExit(1);
        s.Cr0(1);
        s.Cr0(1);
        Assert.True(s.TryRead(1, StateField.Cr0, out _));
        Assert.Equal(1, s.TdReads[1]);
        Assert.Equal(0, s.TdReads[0]);
    }

    [Fact]
    public void Tdx_write_costs_one_tdg_vp_wr_at_entry_and_no_read()
    {
        VcpuStateStore s = Tdx();
        s.OnExit(0);
        s.SetCr3(0, 0x1000);
        s.SetCr3(0, 0x2000);
        Assert.True(s.TryWrite(0, StateField.Seg(StateField.Ds, StateField.Selector), 0x20));
        Assert.Equal(0x2000UL, s.Cr3(0)); // a written field is known: reading it back is free
        Assert.Equal(0, s.TdReads[0]);
        Assert.Equal(0, s.TdWrites[0]);
        Assert.Equal(2, s.OnEntry(0));
        Assert.Equal(2, s.TdWrites[0]);
        Assert.Equal(0, s.OnEntry(0)); // dirty cleared
        Assert.Equal(2, s.TotalTdWrites);
    }

    [Fact]
    public void Tdx_exit_invalidates_every_tracked_field()
    {
        VcpuStateStore s = Tdx();
        s.OnExit(2);
        s.Cr4(2);
        s.SegBase(2, StateField.Cs);
        s.OnEntry(2);
        s.OnExit(2);
        Assert.Equal(0UL, s.ValidMask(2));
        s.Cr4(2);
        s.SegBase(2, StateField.Cs);
        Assert.Equal(4, s.TdReads[2]);
        Assert.Equal(4, s.TotalTdReads);
    }

    [Fact]
    public void Tdx_gprs_rip_rflags_and_exit_info_are_free()
    {
        VcpuStateStore s = Tdx();
        s.OnExit(0);
        s.Gpr(0, 3) = 7;
        s.Rip(0) += 3;
        s.Rflags(0) |= 0x200;
        for (ulong f = 0; f < 18; f++) Assert.True(s.TryRead(0, f, out _));
        Assert.True(s.TryWrite(0, StateField.Rax, 1));
        Assert.True(s.TryRead(0, StateField.ExitGpa, out _));
        Assert.Equal(0, s.OnEntry(0));
        Assert.Equal(0, s.TdReads[0] + s.TdWrites[0]);
        Assert.Equal(7UL, s.Gprs(0)[3]);
        Assert.Equal(0x202UL, s.Rflags(0));
    }

    [Fact]
    public void Snp_reads_and_writes_cost_nothing()
    {
        VcpuStateStore s = Snp();
        s.OnExit(0);
        s.Cr0(0); s.Cr2(0); s.Efer(0); s.PagingMode(0);
        s.SetCr2(0, 5);
        Assert.True(s.TryWriteMsr(0, VcpuStateStore.MsrIndex.Lstar, 0xFFFF_8000_0000_1000));
        Assert.Equal(0UL, s.DirtyMask(0));
        Assert.Equal(0, s.OnEntry(0));
        Assert.Equal(0, s.TotalTdReads + s.TotalTdWrites);
    }

    [Fact]
    public void Kernel_mode_lookup_is_charged_like_user_reads()
    {
        VcpuStateStore s = Tdx();
        s.OnExit(0);
        s.PagingMode(0);
        s.PagingMode(0);
        Assert.Equal(3, s.TdReads[0]); // CR0, CR4, EFER once each
    }

    [Fact]
    public void Unknown_and_read_only_fields_are_refused()
    {
        VcpuStateStore s = Tdx();
        Assert.False(s.TryRead(0, 18, out _));
        Assert.False(s.TryRead(0, StateField.VmsaPage, out _));
        Assert.False(s.TryRead(0, StateField.Msr(0x1B), out _)); // APIC_BASE does not pass through
        Assert.False(s.TryWrite(0, StateField.ExitReason, 1));
        Assert.False(s.TryWrite(0, 2UL << 32, 1));
        Assert.True(s.TryPoke(0, StateField.ExitReason, 48));
        Assert.Equal(48UL, s.ExitReason(0));
    }

    [Fact]
    public void Values_wider_than_the_field_are_refused()
    {
        VcpuStateStore s = Tdx();
        Assert.False(s.TryWrite(0, StateField.Seg(StateField.Cs, StateField.Selector), 0x1_0000));
        Assert.False(s.TryWrite(0, StateField.Seg(StateField.Cs, StateField.Limit), 0x1_0000_0000));
        Assert.False(s.TryWrite(0, StateField.Seg(StateField.Cs, StateField.Attributes), 0x1000));
        Assert.False(s.TryWrite(0, StateField.PendingEvent, 0x4000_0000));
        Assert.False(s.TryWrite(0, StateField.Msr(VcpuStateStore.MsrIndex.TscAux), 0x1_0000_0000));
        Assert.Equal(0UL, s.DirtyMask(0));
        Assert.True(s.TryWrite(0, StateField.PendingEvent, 0x8000_0B0EUL | (2UL << 32))); // #PF, error code 2
    }

    [Fact]
    public void Fs_and_gs_base_msrs_alias_the_segment_bases_and_efer_msr_aliases_efer()
    {
        VcpuStateStore s = Tdx();
        s.OnExit(0);
        Assert.True(s.TryWrite(0, StateField.Msr(VcpuStateStore.MsrIndex.FsBase), 0x7000));
        Assert.True(s.TryWrite(0, StateField.Msr(VcpuStateStore.MsrIndex.Efer), 0xD00));
        Assert.Equal(0x7000UL, s.SegBase(0, StateField.Fs));
        Assert.Equal(0xD00UL, s.Efer(0));
        Assert.Equal(2, s.OnEntry(0));
        Assert.Equal(VcpuStateStore.Bit.Seg(StateField.Gs, StateField.Base), VcpuStateStore.TrackedBit(StateField.Msr(VcpuStateStore.MsrIndex.GsBase)));
    }

    [Fact]
    public void Every_pass_through_msr_round_trips_and_costs_one_of_each()
    {
        VcpuStateStore s = Tdx();
        s.OnExit(3);
        int i = 0;
        foreach (uint msr in VcpuStateStore.PassThroughMsrs)
        {
            Assert.True(s.TryWriteMsr(3, msr, 0x1000UL + (ulong)i));
            Assert.True(s.TryReadMsr(3, msr, out ulong v));
            Assert.Equal(0x1000UL + (ulong)i, v);
            i++;
        }
        Assert.Equal(VcpuStateStore.PassThroughMsrs.Length, s.OnEntry(3));
        s.OnExit(3);
        foreach (uint msr in VcpuStateStore.PassThroughMsrs) s.TryReadMsr(3, msr, out _);
        Assert.Equal(VcpuStateStore.PassThroughMsrs.Length, s.TdReads[3]);
    }

    [Fact]
    public void Peek_and_poke_are_not_charged()
    {
        VcpuStateStore s = Tdx();
        s.OnExit(0);
        Assert.True(s.TryPoke(0, StateField.Cr3, 0x9000));
        Assert.True(s.TryPeek(0, StateField.Cr3, out ulong v));
        Assert.Equal(0x9000UL, v);
        Assert.Equal(0UL, s.ValidMask(0) | s.DirtyMask(0));
        Assert.Equal(0, s.TotalTdReads + s.TotalTdWrites);
    }

    [Fact]
    public void Xmm_halves_are_fields_96_to_127_and_cost_two_tdcalls_per_register_on_tdx()
    {
        VcpuStateStore s = Tdx();
        s.OnExit(1);
        Assert.True(s.TryWrite(1, StateField.Xmm(5, true), 0xAAAA));        // the high half alone keeps the low one
        Assert.True(s.TryRead(1, StateField.Xmm(5, false), out ulong lo));
        Assert.Equal(0UL, lo);
        Assert.Equal((UInt128)0xAAAA << 64, s.Xmm(1, 5));
        Assert.Equal(0, s.TdReads[1]);                                       // written, so known: no TDG.VP.RD
        Assert.Equal(2, s.OnEntry(1));                                       // one register, two 64-bit TDG.VP.WR
        s.OnExit(1);
        Assert.True(s.TryRead(1, StateField.Xmm(15, true), out _));
        Assert.True(s.TryRead(1, StateField.Xmm(15, false), out _));
        s.Xmm(1, 15);
        Assert.Equal(2, s.TdReads[1]);                                       // both halves came with the first read
        Assert.Equal(VcpuStateStore.Bit.XmmFirst + 15, VcpuStateStore.TrackedBit(StateField.Xmm(15, false)));
        Assert.True(VcpuStateStore.TrackedBit(StateField.XmmBase + 32) < 0);  // 128 is FCW, charged in the x87 pair (VcpuStateStoreX87Tests)
        VcpuStateStore snp = Snp();
        snp.SetXmm(0, 2, 7);
        snp.Xmm(0, 2);
        Assert.Equal(0, snp.OnEntry(0) + snp.TotalTdReads);
    }

    [Fact]
    public void Vmsa_page_round_trips_every_field()
    {
        VcpuStateStore s = Snp();
        ulong n = 1;
        var written = new List<(ulong field, ulong value)>();
        void Set(ulong f, ulong v) { Assert.True(s.TryWrite(0, f, v)); written.Add((f, v)); }
        for (ulong r = 0; r < 18; r++) Set(r, 0x1111_0000_0000_0000UL + n++);
        foreach (ulong f in new[] { StateField.Cr0, StateField.Cr2, StateField.Cr3, StateField.Cr4, StateField.Efer }) Set(f, 0x2222_0000UL + n++);
        for (int seg = 0; seg < 6; seg++)
        {
            Set(StateField.Seg(seg, StateField.Selector), 0x10 + (ulong)seg);
            Set(StateField.Seg(seg, StateField.Base), 0xFFFF_8000_0000_0000UL + n++);
            Set(StateField.Seg(seg, StateField.Limit), 0xFFFF_0000UL + n++);
            Set(StateField.Seg(seg, StateField.Attributes), 0xA9B - (ulong)seg);
        }
        Set(StateField.PendingEvent, 0x8000_030EUL);
        // The aliased MSRs (EFER, FS_BASE, GS_BASE) share storage with fields already set above.
        foreach (uint msr in VcpuStateStore.PassThroughMsrs[..VcpuStateStore.MsrSlotCount]) Set(StateField.Msr(msr), 0x3333_0000UL + n++);
        for (int x = 0; x < VcpuStateStore.XmmCount; x++) { Set(StateField.Xmm(x, false), 0x4444_0000UL + n++); Set(StateField.Xmm(x, true), 0x5555_0000UL + n++); }

        byte[] page = new byte[VmsaLayout.Size];
        Assert.True(s.TryExportVmsa(0, page));
        Assert.True(s.TryRead(0, StateField.Xmm(3, true), out ulong x3hi));
        Assert.Equal(x3hi, BitConverter.ToUInt64(page, 0x470 + 3 * 16 + 8));   // fpreg_xmm, COCONUT's VMSA layout
        Assert.Equal(s.Rip(0), BitConverter.ToUInt64(page, 0x178));          // AMD's VMSA offsets
        Assert.Equal(s.Gpr(0, (int)StateField.Rsp), BitConverter.ToUInt64(page, 0x1D8));
        Assert.Equal(0xA9B - 1, BitConverter.ToUInt16(page, 0x12));            // CS attributes
        Assert.True(s.TryImportVmsa(2, page));
        foreach ((ulong f, ulong v) in written)
        {
            Assert.True(s.TryRead(2, f, out ulong got));
            Assert.Equal(v, got);
        }
    }

    [Fact]
    public void Vmsa_page_is_refused_on_tdx_and_when_malformed()
    {
        byte[] page = new byte[VmsaLayout.Size];
        Assert.False(Tdx().TryExportVmsa(0, page));
        Assert.False(Tdx().TryImportVmsa(0, page));
        VcpuStateStore s = Snp();
        Assert.False(s.TryExportVmsa(0, new byte[100]));
        page[VmsaLayout.Segment(StateField.Cs) + VmsaLayout.SegAttributes + 1] = 0x10; // attributes bit 12
        s.Rip(1) = 0x42;
        Assert.False(s.TryImportVmsa(1, page));
        Assert.Equal(0x42UL, s.Rip(1)); // nothing changed
    }

    [Fact]
    public void Accessors_allocate_nothing_in_steady_state()
    {
        VcpuStateStore s = Tdx();
        byte[] page = new byte[VmsaLayout.Size];
        VcpuStateStore snp = Snp();
        Assert.Equal(0, Support.SteadyState.BytesPerRound(() => Loop(s, snp, page, 1000)));

        static void Loop(VcpuStateStore s, VcpuStateStore snp, Span<byte> page, int n)
        {
            for (int i = 0; i < n; i++)
            {
                int v = i & 3;
                s.OnExit(v);
                ulong x = s.Cr0(v) + s.Cr3(v) + s.SegAttributes(v, StateField.Cs) + s.Gpr(v, i & 15) + s.PagingMode(v).Bits;
                s.TryRead(v, StateField.Msr(VcpuStateStore.MsrIndex.Lstar), out ulong m);
                s.TryWrite(v, StateField.Seg(StateField.Ds, StateField.Base), x + m);
                s.SetPendingEvent(v, 0);
                s.Rip(v) += 2;
                s.OnEntry(v);
                _ = s.TdReads[v] + s.TotalTdWrites;
                snp.TryExportVmsa(v, page);
                snp.TryImportVmsa(v, page);
            }
        }
    }
}

using Copra.Hot.Decode;
using Copra.Hot.Emulate;
using Copra.Hot.State;
using Xunit;
using A = Copra.Hot.State.SegmentAttributes;

namespace Copra.Tests.Emulate;

/// <summary>
/// hot/Emulate/Faults.cs against the SDM's rules, case by case (these faults cannot be provoked natively as an oracle:
/// the host's segments are flat and its CPL fixed). Each case names the rule it pins.
/// </summary>
public class FaultRuleTests
{
    const ushort Rw = A.TypeDataReadWriteAccessed | A.S | A.P | A.Db | A.G;     // flat read/write data, DPL 0
    const ushort Ro = 0x1 | A.S | A.P | A.Db | A.G;                              // read-only data
    const ushort ExecRead = A.TypeCodeExecReadAccessed | A.S | A.P | A.Db | A.G;  // readable code
    const ushort ExecOnly = 0x9 | A.S | A.P | A.Db | A.G;                         // execute-only code
    const ushort ConformingRead = 0xF | A.S | A.P | A.Db | A.G;                   // conforming readable code, DPL 0
    const ushort Dpl3 = 3 << A.DplShift;
    const ushort Sel = 0x20, Sel3 = 0x23;
    const uint Flat = 0xFFFF_FFFF;

    static Fault Prot(int seg, ushort selector, int attr, ulong offset = 0x1000, uint size = 4, MemUse use = MemUse.Read, int cpl = 0, uint limit = Flat) =>
        Faults.Segment(SegMode.Protected, cpl, seg, selector, (ushort)attr, limit, offset, size, use);

    static void Is(Fault f, byte vector, uint error)
    {
        Assert.True(f.Raised, "expected a fault");
        Assert.Equal(vector, f.Vector);
        Assert.True(f.HasErrorCode);
        Assert.Equal(error, f.ErrorCode);
    }

    [Fact]
    public void A_usable_flat_segment_passes_every_access()
    {
        foreach (int seg in new[] { Seg.ES, Seg.SS, Seg.DS, Seg.FS, Seg.GS })
            Assert.False(Prot(seg, Sel, Rw, use: MemUse.ReadWrite).Raised);
        Assert.False(Prot(Seg.CS, 0x10, ExecRead).Raised);
    }

    [Fact]
    public void Null_selector_in_DS_ES_FS_GS_is_gp0_whatever_its_rpl()
    {
        foreach (int seg in new[] { Seg.ES, Seg.DS, Seg.FS, Seg.GS })
        {
            Is(Prot(seg, 0, Rw), 13, 0);
            Is(Prot(seg, 3, Rw, cpl: 3), 13, 0);
        }
    }

    [Fact]
    public void Not_present_is_np_with_the_selector_and_ss_for_the_stack()
    {
        Is(Prot(Seg.DS, 0x2C, Rw & ~A.P), 11, 0x2C);         // TI kept, RPL dropped: 0x2C | 0
        Is(Prot(Seg.DS, 0x2F, Rw & ~A.P, cpl: 0), 11, 0x2C);
        Is(Prot(Seg.SS, Sel, Rw & ~A.P), 12, Sel);
    }

    [Fact]
    public void System_descriptors_and_execute_only_code_cannot_be_data_segments()
    {
        Is(Prot(Seg.DS, Sel, (ushort)(A.TypeBusyTss | A.P)), 13, Sel);   // S = 0
        Is(Prot(Seg.DS, Sel, ExecOnly), 13, Sel);
        Assert.False(Prot(Seg.DS, Sel, ExecRead).Raised);               // readable code may be read through DS
    }

    [Fact]
    public void Privilege_max_of_cpl_and_rpl_must_not_exceed_dpl_except_for_conforming_code()
    {
        Is(Prot(Seg.DS, Sel3, Rw, cpl: 3), 13, Sel);                     // CPL 3 > DPL 0
        Is(Prot(Seg.DS, Sel3, Rw, cpl: 0), 13, Sel);                     // RPL 3 > DPL 0
        Is(Prot(Seg.DS, Sel, Rw, cpl: 3), 13, Sel);                      // CPL 3 > DPL 0, RPL 0
        Assert.False(Prot(Seg.DS, Sel3, Rw | Dpl3, cpl: 3).Raised);
        Assert.False(Prot(Seg.DS, Sel, Rw | Dpl3, cpl: 0).Raised);       // a more privileged CPL may use a DPL-3 segment
        Assert.False(Prot(Seg.DS, Sel3, ConformingRead, cpl: 3).Raised); // conforming: no DPL check
    }

    [Fact]
    public void Stack_segment_needs_rpl_and_dpl_equal_to_cpl_and_a_writable_data_segment()
    {
        Is(Prot(Seg.SS, Sel3, Rw | Dpl3, cpl: 0), 13, Sel);              // RPL != CPL
        Is(Prot(Seg.SS, Sel, Rw | Dpl3, cpl: 0), 13, Sel);               // DPL != CPL
        Is(Prot(Seg.SS, Sel, Ro), 13, Sel);                              // read-only
        Is(Prot(Seg.SS, Sel, ExecRead), 13, Sel);                        // code
        Assert.False(Prot(Seg.SS, Sel3, Rw | Dpl3, cpl: 3).Raised);
    }

    [Fact]
    public void Writes_need_a_writable_data_segment_and_are_gp0()
    {
        Is(Prot(Seg.DS, Sel, Ro, use: MemUse.Write), 13, 0);
        Is(Prot(Seg.DS, Sel, Ro, use: MemUse.ReadWrite), 13, 0);         // the RMW's read must not happen either
        Assert.False(Prot(Seg.DS, Sel, Ro, use: MemUse.Read).Raised);
        Is(Prot(Seg.DS, Sel, ExecRead, use: MemUse.Write), 13, 0);       // code is never writable
        Is(Prot(Seg.CS, 0x10, ExecRead, use: MemUse.Write), 13, 0);      // CS override write
        Is(Prot(Seg.CS, 0x10, ExecOnly, use: MemUse.Read), 13, 0);       // CS override read of execute-only code
    }

    [Fact]
    public void Expand_up_limit_covers_every_byte_and_is_ss0_for_the_stack()
    {
        Assert.False(Prot(Seg.DS, Sel, Rw, offset: 0xFFC, size: 4, limit: 0xFFF).Raised);
        Is(Prot(Seg.DS, Sel, Rw, offset: 0xFFD, size: 4, limit: 0xFFF), 13, 0);
        Is(Prot(Seg.SS, Sel, Rw, offset: 0xFFD, size: 4, limit: 0xFFF), 12, 0);
        Is(Prot(Seg.ES, Sel, Rw, offset: 0x1000, size: 1, limit: 0xFFF), 13, 0);
        Is(Prot(Seg.CS, 0x10, ExecRead, offset: 0xFFFF, size: 2, limit: 0xFFFF), 13, 0);
        // An access wrapping past 4 GiB is outside even a 4 GiB segment.
        Is(Prot(Seg.DS, Sel, Rw, offset: 0xFFFF_FFFE, size: 4), 13, 0);
    }

    [Fact]
    public void Expand_down_holds_limit_plus_one_to_the_top_set_by_db()
    {
        const ushort Down16 = 0x7 | A.S | A.P, Down32 = Down16 | A.Db;
        Assert.True(Faults.WithinLimit(Down16, 0xFFF, 0x1000, 4));
        Assert.False(Faults.WithinLimit(Down16, 0xFFF, 0xFFF, 1));       // at the limit: outside
        Assert.True(Faults.WithinLimit(Down16, 0xFFF, 0xFFFE, 2));
        Assert.False(Faults.WithinLimit(Down16, 0xFFF, 0xFFFF, 2));      // past 0xFFFF with B = 0
        Assert.True(Faults.WithinLimit(Down32, 0xFFF, 0xFFFF, 2));
        Assert.True(Faults.WithinLimit(Down32, 0xFFF, 0xFFFF_FFFC, 4));
        Assert.False(Faults.WithinLimit(Down32, 0xFFF, 0xFFFF_FFFD, 4));
        Is(Prot(Seg.SS, Sel, Down32, offset: 0x800, limit: 0xFFF, use: MemUse.Write), 12, 0);
        // Type bit 2 of a code segment is "conforming", not "expand-down".
        Assert.True(Faults.WithinLimit(ConformingRead, 0xFFF, 0x10, 4));
    }

    [Fact]
    public void Real_and_virtual_8086_mode_check_only_the_limit()
    {
        foreach (var mode in new[] { SegMode.Real, SegMode.Virtual8086 })
        {
            // Null selector, not present, read-only, DPL 0: none of it matters outside protected mode.
            Assert.False(Faults.Segment(mode, 3, Seg.DS, 0, (ushort)(Ro & ~A.P), 0xFFFF, 0x10, 2, MemUse.Write).Raised);
            Is(Faults.Segment(mode, 0, Seg.DS, 0x1000, A.Data16, 0xFFFF, 0xFFFF, 2, MemUse.Read), 13, 0);
            Is(Faults.Segment(mode, 0, Seg.SS, 0x1000, A.Data16, 0xFFFF, 0xFFFF, 2, MemUse.Read), 12, 0);
            Assert.False(Faults.Segment(mode, 0, Seg.DS, 0, A.Data16, 0xFFFF_FFFF, 0xFFFF, 2, MemUse.Read).Raised);  // unreal mode
        }
    }

    [Fact]
    public void Canonical_check_covers_first_and_last_byte_and_picks_ss_for_the_stack()
    {
        Assert.False(Faults.Canonical(0x0000_7FFF_FFFF_FFFC, 4, false, false).Raised);
        Is(Faults.Canonical(0x0000_7FFF_FFFF_FFFE, 4, false, false), 13, 0);
        Is(Faults.Canonical(0x0000_8000_0000_0000, 1, true, false), 12, 0);
        Assert.False(Faults.Canonical(0xFFFF_8000_0000_0000, 8, false, false).Raised);
        Assert.False(Faults.Canonical(0x00FF_FFFF_FFFF_FFF8, 8, false, la57: true).Raised);
        Is(Faults.Canonical(0x00FF_FFFF_FFFF_FFF8, 8, false, la57: false), 13, 0);
        Is(Faults.Canonical(0x0100_0000_0000_0000, 8, false, la57: true), 13, 0);
    }

    static FaultContext Ctx(SegMode mode = SegMode.Protected, int cpl = 3, ulong cr0 = FaultContext.Cr0Pe | FaultContext.Cr0Am,
        ulong rflags = 2 | FaultContext.RflagsAc, ushort port = 0, byte size = 0) =>
        new(mode, cpl, cr0, rflags, false, port, size);

    [Fact]
    public void Alignment_check_needs_cpl3_ac_and_am_together()
    {
        Assert.True(Faults.Misaligned(Ctx(), 0x1001, 4));
        Assert.False(Faults.Misaligned(Ctx(), 0x1004, 4));
        Assert.False(Faults.Misaligned(Ctx(cpl: 0), 0x1001, 4));
        Assert.False(Faults.Misaligned(Ctx(cr0: FaultContext.Cr0Pe), 0x1001, 4));
        Assert.False(Faults.Misaligned(Ctx(rflags: 2), 0x1001, 4));
        Assert.False(Faults.Misaligned(Ctx(), 0x1001, 1));               // bytes are always aligned
        Assert.True(Faults.Misaligned(Ctx(mode: SegMode.Virtual8086), 0x1002, 4));
        Assert.True(Faults.Misaligned(Ctx(), 0x1004, 8));
    }

    [Fact]
    public void Alignment_by_data_type_follows_table_6_7()
    {
        static DecodedAccess D(AccessKind k, byte size) => new() { Kind = k, Size = size };
        Assert.Equal(1u, Faults.AlignmentOf(D(AccessKind.Read, 1)));
        Assert.Equal(2u, Faults.AlignmentOf(D(AccessKind.Read, 2)));
        Assert.Equal(4u, Faults.AlignmentOf(D(AccessKind.Write, 4)));
        Assert.Equal(8u, Faults.AlignmentOf(D(AccessKind.Alu, 8)));
        Assert.Equal(16u, Faults.AlignmentOf(D(AccessKind.Alu, 16)));
        Assert.Equal(2u, Faults.AlignmentOf(D(AccessKind.Bt, 2)));        // bit string: 2 or 4 by operand size
        Assert.Equal(4u, Faults.AlignmentOf(D(AccessKind.Bt, 4)));
        Assert.Equal(4u, Faults.AlignmentOf(D(AccessKind.Bt, 8)));
    }

    [Fact]
    public void Port_permission_iopl_then_what_the_hardware_checked()
    {
        Assert.False(Faults.IoPermission(Ctx(mode: SegMode.Real, cpl: 0), 0x3F8, 4).Raised);
        Assert.False(Faults.IoPermission(Ctx(cpl: 0, rflags: 2), 0x3F8, 4).Raised);                  // CPL 0 <= IOPL 0
        Assert.False(Faults.IoPermission(Ctx(cpl: 3, rflags: 2 | 3 << 12), 0x3F8, 4).Raised);       // CPL 3 <= IOPL 3
        Is(Faults.IoPermission(Ctx(cpl: 3, rflags: 2 | 2 << 12), 0x3F8, 1), 13, 0);                // CPL 3 > IOPL 2, nothing reported
        Assert.False(Faults.IoPermission(Ctx(cpl: 3, rflags: 2, port: 0x3F8, size: 1), 0x3F8, 1).Raised);
        Is(Faults.IoPermission(Ctx(cpl: 3, rflags: 2, port: 0x3F8, size: 1), 0x3F8, 2), 13, 0);    // wider than checked
        Is(Faults.IoPermission(Ctx(cpl: 3, rflags: 2, port: 0x3F8, size: 1), 0x3F9, 1), 13, 0);    // another port
        Is(Faults.IoPermission(Ctx(cpl: 1, rflags: 2, port: 0x3F8, size: 1), 0x80, 1), 13, 0);
        // Virtual-8086 mode: IOPL 3 grants nothing, only the bitmap (here: the hardware's report) does.
        Is(Faults.IoPermission(Ctx(mode: SegMode.Virtual8086, rflags: 2 | 3 << 12), 0x3F8, 1), 13, 0);
        Assert.False(Faults.IoPermission(Ctx(mode: SegMode.Virtual8086, rflags: 2, port: 0x3F8, size: 1), 0x3F8, 1).Raised);
    }

    [Fact]
    public void Mode_and_cpl_come_from_cr0_rflags_vm_and_the_code_segment()
    {
        const ulong Pe = FaultContext.Cr0Pe, Vm = FaultContext.RflagsVm;
        Assert.Equal(SegMode.Long64, FaultContext.ModeOf(CpuMode.Bits64, Pe, 2));
        Assert.Equal(SegMode.Real, FaultContext.ModeOf(CpuMode.Bits16, 0, 2 | Vm));
        Assert.Equal(SegMode.Virtual8086, FaultContext.ModeOf(CpuMode.Bits16, Pe, 2 | Vm));
        Assert.Equal(SegMode.Protected, FaultContext.ModeOf(CpuMode.Bits32, Pe, 2));
        Assert.Equal(SegMode.Protected, FaultContext.ModeOf(CpuMode.Bits16, Pe, 2));
        Assert.Equal(0, FaultContext.CplOf(SegMode.Real, A.Code16 | Dpl3));
        Assert.Equal(3, FaultContext.CplOf(SegMode.Virtual8086, A.Code16));
        Assert.Equal(3, FaultContext.CplOf(SegMode.Protected, A.Code32 | Dpl3));
        Assert.Equal(2, FaultContext.CplOf(SegMode.Long64, A.Code64 | 2 << A.DplShift));
        Assert.False(FaultContext.CplNeedsSs(SegMode.Protected, A.Code32));
        Assert.True(FaultContext.CplNeedsSs(SegMode.Protected, ConformingRead));
        Assert.False(FaultContext.CplNeedsSs(SegMode.Real, ConformingRead));
    }

    [Fact]
    public void Element_checks_are_skipped_only_where_none_can_fire()
    {
        Assert.True(X86Decoder.TryDecode([0x8B, 0x06], CpuMode.Bits64, out var load));        // mov eax,[rsi]
        Assert.True(X86Decoder.TryDecode([0x8B, 0x45, 0x08], CpuMode.Bits64, out var stack)); // mov eax,[rbp+8]
        Assert.True(X86Decoder.TryDecode([0xEE], CpuMode.Bits64, out var port));              // out dx,al
        var quiet64 = new FaultContext(SegMode.Long64, 0, FaultContext.Cr0Pe, 2, false, 0, 0);
        Assert.False(quiet64.ChecksNeeded(in load));
        Assert.False(quiet64.ChecksNeeded(in port));                                            // CPL 0 <= IOPL 0
        Assert.True(quiet64.ChecksNeeded(in stack));                                            // #SS, not the walk's #GP
        Assert.True(new FaultContext(SegMode.Long64, 3, FaultContext.Cr0Pe, 2, false, 0, 0).ChecksNeeded(in port));
        Assert.False(new FaultContext(SegMode.Long64, 3, FaultContext.Cr0Pe, 2 | 3 << 12, false, 0, 0).ChecksNeeded(in port));
        Assert.True(new FaultContext(SegMode.Long64, 3, FaultContext.Cr0Pe | FaultContext.Cr0Am, 2 | FaultContext.RflagsAc, false, 0, 0).ChecksNeeded(in load));
        Assert.False(new FaultContext(SegMode.Long64, 0, FaultContext.Cr0Pe | FaultContext.Cr0Am, 2 | FaultContext.RflagsAc, false, 0, 0).ChecksNeeded(in load));
        Assert.True(X86Decoder.TryDecode([0x8B, 0x06], CpuMode.Bits32, out var load32));
        Assert.True(new FaultContext(SegMode.Protected, 0, FaultContext.Cr0Pe, 2, false, 0, 0).ChecksNeeded(in load32));
        Assert.True(new FaultContext(SegMode.Real, 0, 0, 2, false, 0, 0).ChecksNeeded(in load32));
    }

    [Fact]
    public void Single_step_sets_bs_and_keeps_the_other_dr6_bits()
    {
        Assert.Equal(0xFFFF_4FF0UL, Faults.Dr6AfterSingleStep(VcpuStateStore.Dr6Reset));
        Assert.Equal(0xFFFF_4FF1UL, Faults.Dr6AfterSingleStep(VcpuStateStore.Dr6Reset | 1));   // B0 stays
        Assert.True(Ctx(rflags: 2 | FaultContext.RflagsTf).SingleStep);
        Assert.False(Ctx(rflags: 2).SingleStep);
    }

    [Fact]
    public void An_element_checks_both_string_sides_and_names_the_misaligned_one()
    {
        var st = new VcpuStateStore(1, StateAccessCost.Snp);
        for (int s = 0; s < 6; s++)
        {
            st.SetSegSelector(0, s, Sel);
            st.SetSegAttributes(0, s, s == Seg.CS ? ExecRead : Rw);
            st.SetSegLimit(0, s, Flat);
        }
        Assert.True(X86Decoder.TryDecode([0xA5], CpuMode.Bits32, out var movs));  // movsd
        st.Gpr(0, Gpr.Rsi) = 0x1000;
        st.Gpr(0, Gpr.Rdi) = 0x2002;
        var c0 = new FaultContext(SegMode.Protected, 0, FaultContext.Cr0Pe, 2, false, 0, 0);
        Assert.False(Faults.CheckElement(st, 0, in movs, in c0, 0, 0, 0, out _, out _).Raised);
        st.SetSegAttributes(0, Seg.ES, Ro);   // the destination is ES: read-only ES must stop the element
        Is(Faults.CheckElement(st, 0, in movs, in c0, 0, 0, 0, out _, out _), 13, 0);
        st.SetSegAttributes(0, Seg.ES, Rw | Dpl3);
        st.SetSegAttributes(0, Seg.DS, Rw | Dpl3);
        st.SetSegAttributes(0, Seg.SS, Rw | Dpl3);
        st.SetSegSelector(0, Seg.SS, Sel3);
        var c3 = new FaultContext(SegMode.Protected, 3, FaultContext.Cr0Pe | FaultContext.Cr0Am, 2 | FaultContext.RflagsAc, false, 0, 0);
        var f = Faults.CheckElement(st, 0, in movs, in c3, 0, 0, 0, out ulong at, out bool write);
        Assert.Equal(Fault.VectorAc, f.Vector);
        Assert.Equal(0x2002UL, at);            // the source at 0x1000 is aligned; the ES:EDI destination is not
        Assert.True(write);
        Assert.True(X86Decoder.TryDecode([0x66, 0xEF], CpuMode.Bits32, out var outw));  // out dx, ax
        st.Gpr(0, Gpr.Rdx) = 0x3F8;
        Is(Faults.CheckElement(st, 0, in outw, in c3, 0, 0, 0, out _, out _), 13, 0);   // CPL 3 > IOPL 0, nothing reported
    }
    [Fact]
    public void Movdir64b_checks_its_source_segment_for_reading_and_es_for_writing_and_an_sse_store_checks_writability()
    {
        var st = new VcpuStateStore(1, StateAccessCost.Snp);
        for (int s = 0; s < 6; s++)
        {
            st.SetSegSelector(0, s, Sel);
            st.SetSegAttributes(0, s, s == Seg.CS ? ExecRead : Rw);
            st.SetSegLimit(0, s, Flat);
        }
        Assert.True(X86Decoder.TryDecode([0x66, 0x0F, 0x38, 0xF8, 0x06], CpuMode.Bits32, out var dir));   // movdir64b eax, [esi]
        st.Gpr(0, Gpr.Rsi) = 0x1000;
        st.Gpr(0, Gpr.Rax) = 0x2000;
        var c0 = new FaultContext(SegMode.Protected, 0, FaultContext.Cr0Pe, 2, false, 0, 0);
        Assert.False(Faults.CheckElement(st, 0, in dir, in c0, 0, 0, 0, out _, out _).Raised);
        st.SetSegAttributes(0, Seg.ES, Ro);   // the 64 bytes go to ES:[eax]: a read-only ES stops the instruction
        Is(Faults.CheckElement(st, 0, in dir, in c0, 0, 0, 0, out _, out _), 13, 0);
        st.SetSegAttributes(0, Seg.ES, Rw);
        st.SetSegAttributes(0, Seg.DS, Ro);   // the source is read through DS: read-only is enough
        Assert.False(Faults.CheckElement(st, 0, in dir, in c0, 0, 0, 0, out _, out _).Raised);
        st.SetSegLimit(0, Seg.DS, 0x1020);    // [esi]..+63 passes DS's limit: the source side faults
        Is(Faults.CheckElement(st, 0, in dir, in c0, 0, 0, 0, out _, out _), 13, 0);
        st.SetSegLimit(0, Seg.DS, Flat);
        st.SetSegLimit(0, Seg.ES, 0x2020);    // ES:[eax]..+63 passes ES's limit
        Is(Faults.CheckElement(st, 0, in dir, in c0, 0, 0, 0, out _, out _), 13, 0);

        st.SetSegLimit(0, Seg.ES, Flat);
        Assert.True(X86Decoder.TryDecode([0x0F, 0x11, 0x06], CpuMode.Bits32, out var movups));   // movups [esi], xmm0
        Is(Faults.CheckElement(st, 0, in movups, in c0, 0, 0, 0, out _, out _), 13, 0);           // DS is read-only: a store faults
        st.SetSegAttributes(0, Seg.DS, Rw);
        Assert.False(Faults.CheckElement(st, 0, in movups, in c0, 0, 0, 0, out _, out _).Raised);
    }
}

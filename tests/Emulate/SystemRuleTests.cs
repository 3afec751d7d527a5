using Copra.Hot.Decode;
using Copra.Hot.Emulate;
using Copra.Hot.Guest;
using Xunit;
using A = Copra.Hot.State.SegmentAttributes;

namespace Copra.Tests.Emulate;

/// <summary>
/// hot/Emulate/SystemOps.cs against the SDM (vol. 2: SGDT, SIDT, SLDT, STR, SMSW, LGDT, LIDT, LLDT, LTR, LMSW, MOV Sreg,
/// JMP/CALL far; vol. 3 ch. 5). None of these forms can run natively in the CPU oracle (privileged, or they change the
/// host's segmentation), so every rule is a case here, each fault with its vector and error code. The exit path's use of
/// them is tests/Kernel/SystemFamiliesTests.cs.
/// </summary>
public class SystemRuleTests
{
    static DecodedAccess Decode(CpuMode mode, params byte[] bytes)
    {
        Assert.True(X86Decoder.TryDecode(bytes, mode, out var d), d.Error.ToString());
        return d;
    }

    static void Is(Fault f, byte vector, uint? error)
    {
        Assert.True(f.Raised, "no fault");
        Assert.Equal(vector, f.Vector);
        Assert.Equal(error.HasValue, f.HasErrorCode);
        if (error is { } e) Assert.Equal(e, f.ErrorCode);
    }

    static ulong Desc(uint @base, uint limit, ushort attr) => A.Descriptor(@base, limit, attr);
    const ushort DataRw = A.TypeDataReadWriteAccessed | A.S | A.P | A.Db | A.G;   // DPL 0
    static ushort Dpl(ushort attr, int dpl) => (ushort)(attr & ~A.DplMask | dpl << A.DplShift);

    // ---- privilege and mode ----

    [Fact]
    public void Stores_are_allowed_at_any_cpl_unless_cr4_umip()
    {
        var sgdt = Decode(CpuMode.Bits64, 0x0F, 0x01, 0x00);
        var smsw = Decode(CpuMode.Bits64, 0x0F, 0x01, 0x20);
        var sldt = Decode(CpuMode.Bits64, 0x0F, 0x00, 0x00);
        Assert.False(SystemOps.PrivilegeFault(in sgdt, SegMode.Long64, 3, 0).Raised);
        Assert.False(SystemOps.PrivilegeFault(in sgdt, SegMode.Long64, 0, SystemOps.Cr4Umip).Raised);
        Is(SystemOps.PrivilegeFault(in sgdt, SegMode.Long64, 3, SystemOps.Cr4Umip), 13, 0);
        Is(SystemOps.PrivilegeFault(in smsw, SegMode.Long64, 1, SystemOps.Cr4Umip), 13, 0);
        Is(SystemOps.PrivilegeFault(in sldt, SegMode.Protected, 2, SystemOps.Cr4Umip), 13, 0);
        Assert.False(SystemOps.PrivilegeFault(in smsw, SegMode.Long64, 3, 1UL << 10).Raised);   // bit 10 is not UMIP
        // MOV m16, Sreg is no system-register store: never checked.
        var movSreg = Decode(CpuMode.Bits64, 0x8C, 0x18);
        Assert.False(SystemOps.PrivilegeFault(in movSreg, SegMode.Long64, 3, SystemOps.Cr4Umip).Raised);
    }

    [Fact]
    public void Loads_are_gp0_above_cpl_0()
    {
        foreach (byte[] b in new[] { new byte[] { 0x0F, 0x01, 0x10 }, [0x0F, 0x01, 0x18], [0x0F, 0x01, 0x30], [0x0F, 0x00, 0x10], [0x0F, 0x00, 0x18] })
        {
            var d = Decode(CpuMode.Bits64, b);
            Assert.False(SystemOps.PrivilegeFault(in d, SegMode.Long64, 0, SystemOps.Cr4Umip).Raised);
            Is(SystemOps.PrivilegeFault(in d, SegMode.Long64, 1, 0), 13, 0);
            Is(SystemOps.PrivilegeFault(in d, SegMode.Protected, 3, 0), 13, 0);
        }
    }

    [Fact]
    public void Sldt_str_lldt_ltr_are_ud_in_real_and_v86_mode_the_table_forms_are_not()
    {
        foreach (byte reg in new byte[] { 0x00, 0x08, 0x10, 0x18 })   // /0 SLDT, /1 STR, /2 LLDT, /3 LTR
        {
            var d = Decode(CpuMode.Bits16, 0x0F, 0x00, (byte)(reg | 7));
            Is(SystemOps.PrivilegeFault(in d, SegMode.Real, 0, 0), 6, null);
            Is(SystemOps.PrivilegeFault(in d, SegMode.Virtual8086, 3, 0), 6, null);
        }
        var lgdt = Decode(CpuMode.Bits16, 0x0F, 0x01, 0x17);
        Assert.False(SystemOps.PrivilegeFault(in lgdt, SegMode.Real, 0, 0).Raised);
        var sidt = Decode(CpuMode.Bits16, 0x0F, 0x01, 0x0F);
        Assert.False(SystemOps.PrivilegeFault(in sidt, SegMode.Real, 0, SystemOps.Cr4Umip).Raised);
        Is(SystemOps.PrivilegeFault(in sidt, SegMode.Virtual8086, 3, SystemOps.Cr4Umip), 13, 0);
    }

    // ---- stores and the table loads ----

    [Fact]
    public void Sgdt_image_is_limit_then_base_at_the_operand_width()
    {
        Span<byte> b10 = stackalloc byte[10];
        SystemOps.DescriptorTableImage(0x1234, 0x1122_3344_5566_7788, b10);
        Assert.Equal(new byte[] { 0x34, 0x12, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11 }, b10.ToArray());
        Span<byte> b6 = stackalloc byte[6];
        SystemOps.DescriptorTableImage(0xFFFF, 0xAABB_CCDD, b6);
        Assert.Equal(new byte[] { 0xFF, 0xFF, 0xDD, 0xCC, 0xBB, 0xAA }, b6.ToArray());
        Assert.Equal(0x0033, SystemOps.Msw(0x8005_0033));
    }

    [Fact]
    public void Lgdt_takes_limit_and_base_and_keeps_24_bits_with_a_16_bit_operand()
    {
        byte[] op = [0x57, 0x00, 0x00, 0x10, 0x20, 0xC0, 0x00, 0x80, 0xFF, 0xFF];
        Assert.False(SystemOps.LoadDescriptorTable(op, 8, is64: true, la57: false, out ushort l, out ulong b).Raised);
        Assert.Equal(0x57, l);
        Assert.Equal(0xFFFF_8000_C020_1000UL, b);
        Assert.False(SystemOps.LoadDescriptorTable(op, 4, is64: false, la57: false, out _, out b).Raised);
        Assert.Equal(0xC020_1000UL, b);
        Assert.False(SystemOps.LoadDescriptorTable(op, 2, is64: false, la57: false, out _, out b).Raised);
        Assert.Equal(0x0020_1000UL, b);
        byte[] bad = [0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0];   // base 0x0000_8000_0000_0000: not canonical
        Is(SystemOps.LoadDescriptorTable(bad, 8, is64: true, la57: false, out _, out _), 13, 0);
        Assert.False(SystemOps.LoadDescriptorTable(bad, 8, is64: true, la57: true, out _, out _).Raised);
    }

    [Fact]
    public void Lmsw_sets_bits_0_to_3_and_never_clears_pe()
    {
        Assert.Equal(0x8000_003FUL, SystemOps.Lmsw(0x8000_0031, 0xFFFE));   // PE kept, MP EM TS set, ET/NE untouched
        Assert.Equal(0x8000_0031UL, SystemOps.Lmsw(0x8000_003F, 0x0000));   // clears MP EM TS, not PE
        Assert.Equal(0x11UL, SystemOps.Lmsw(0x10, 0x0001));                 // PE can be set
    }

    // ---- descriptors ----

    [Fact]
    public void Locate_checks_the_table_limit_and_an_unusable_ldt()
    {
        var t = new DescriptorTables(0x1000, 0x2F, 0x8000, 0x0F, LdtUsable: true);
        Assert.False(SystemOps.Locate(0x28, t, 8, out ulong at).Raised);
        Assert.Equal(0x1028UL, at);
        Is(SystemOps.Locate(0x30, t, 8, out _), 13, 0x30);
        Is(SystemOps.Locate(0x28, t, 16, out _), 13, 0x28);     // a 16-byte system descriptor must fit too
        Assert.False(SystemOps.Locate(0x0F, t, 8, out at).Raised);   // LDT index 1, RPL 3
        Assert.Equal(0x8008UL, at);
        Is(SystemOps.Locate(0x17, t, 8, out _), 13, 0x14);      // LDT index 2: past its limit; RPL is not in the error code
        Is(SystemOps.Locate(0x0C, t with { LdtUsable = false }, 8, out _), 13, 0x0C);
    }

    [Fact]
    public void Cache_scales_a_granular_limit_and_joins_the_base()
    {
        var s = SystemOps.Cache(0x2B, Desc(0x1234_5678, 0xFFFFF, DataRw), 0, system64: false);
        Assert.Equal(0x1234_5678UL, s.Base);
        Assert.Equal(0xFFFF_FFFFu, s.Limit);
        Assert.Equal(DataRw, s.Attributes);
        Assert.Equal(0x2B, s.Selector);
        var b = SystemOps.Cache(0, Desc(0, 0x00067, A.TypeAvailableTss | A.P), 0xFFFF_FFFF, system64: true);
        Assert.Equal(0xFFFF_FFFF_0000_0000UL, b.Base);
        Assert.Equal(0x67u, b.Limit);
        Assert.Equal(1UL << 40, SystemOps.WithAccessed(0));
        Assert.Equal(1UL << 41, SystemOps.WithBusy(0));
    }

    [Fact]
    public void Data_segment_loads_follow_the_privilege_rules()
    {
        ulong data3 = Desc(0, 0xFFFFF, Dpl(DataRw, 3)), data0 = Desc(0, 0xFFFFF, DataRw);
        Assert.False(SystemOps.CheckSegmentLoad(Seg.DS, 0x2B, data3, 3).Raised);
        Is(SystemOps.CheckSegmentLoad(Seg.DS, 0x28, data0, 3), 13, 0x28);           // CPL 3 > DPL 0
        Is(SystemOps.CheckSegmentLoad(Seg.FS, 0x2B, data0, 0), 13, 0x28);           // RPL 3 > DPL 0
        ulong execOnly = Desc(0, 0xFFFFF, 0x8 | A.S | A.P);
        Is(SystemOps.CheckSegmentLoad(Seg.ES, 0x10, execOnly, 0), 13, 0x10);
        ulong readableConforming = Desc(0, 0xFFFFF, 0xE | A.S | A.P);               // DPL 0, conforming: no privilege check
        Assert.False(SystemOps.CheckSegmentLoad(Seg.GS, 0x13, readableConforming, 3).Raised);
        ulong notPresent = Desc(0, 0xFFFFF, (ushort)(DataRw & ~A.P));
        Is(SystemOps.CheckSegmentLoad(Seg.DS, 0x20, notPresent, 0), 11, 0x20);
        ulong ldt = Desc(0, 0x67, A.TypeLdt | A.P);
        Is(SystemOps.CheckSegmentLoad(Seg.DS, 0x30, ldt, 0), 13, 0x30);              // a system descriptor
    }

    [Fact]
    public void Stack_segment_loads_need_writable_data_at_cpl()
    {
        ulong data0 = Desc(0, 0xFFFFF, DataRw);
        Assert.False(SystemOps.CheckSegmentLoad(Seg.SS, 0x20, data0, 0).Raised);
        Is(SystemOps.CheckSegmentLoad(Seg.SS, 0x23, data0, 0), 13, 0x20);           // RPL ≠ CPL
        Is(SystemOps.CheckSegmentLoad(Seg.SS, 0x20, Desc(0, 0xFFFFF, Dpl(DataRw, 3)), 0), 13, 0x20);   // DPL ≠ CPL
        Is(SystemOps.CheckSegmentLoad(Seg.SS, 0x20, Desc(0, 0xFFFFF, 0x1 | A.S | A.P), 0), 13, 0x20);  // read-only data
        Is(SystemOps.CheckSegmentLoad(Seg.SS, 0x20, Desc(0, 0xFFFFF, 0xB | A.S | A.P), 0), 13, 0x20);  // code
        Is(SystemOps.CheckSegmentLoad(Seg.SS, 0x20, Desc(0, 0xFFFFF, (ushort)(DataRw & ~A.P)), 0), 12, 0x20);   // #SS(sel)
    }

    [Fact]
    public void Null_selectors_are_allowed_in_data_registers_and_in_ss_only_in_64_bit_mode_below_cpl_3()
    {
        Assert.True(SystemOps.IsNull(0x0003));
        Assert.False(SystemOps.IsNull(0x0004));                                      // LDT index 0 is not null
        Assert.False(SystemOps.NullSegmentLoad(Seg.FS, 0, 3, is64: false).Raised);
        Is(SystemOps.NullSegmentLoad(Seg.SS, 0, 0, is64: false), 13, 0);
        Assert.False(SystemOps.NullSegmentLoad(Seg.SS, 0, 0, is64: true).Raised);
        Is(SystemOps.NullSegmentLoad(Seg.SS, 0x3, 3, is64: true), 13, 0);
        Is(SystemOps.NullSegmentLoad(Seg.SS, 0x1, 0, is64: true), 13, 0);           // RPL ≠ CPL
        Assert.Equal(0, SystemOps.NullCache(Seg.DS, 0, 0).Attributes & A.P);
        Assert.Equal(2 << A.DplShift, SystemOps.NullCache(Seg.SS, 2, 2).Attributes);
    }

    [Fact]
    public void Real_and_v86_mode_loads_are_paragraphs()
    {
        var r = SystemOps.RealModeCache(0x1234, 0xFFFF_FFFF, A.Data, v86: false);
        Assert.Equal(0x12340UL, r.Base);
        Assert.Equal(0xFFFF_FFFFu, r.Limit);   // "unreal" limits survive a real-mode load
        var v = SystemOps.RealModeCache(0x1234, 0xFFFF_FFFF, A.Data, v86: true);
        Assert.Equal(0xFFFFu, v.Limit);
        Assert.Equal(3, (v.Attributes & A.DplMask) >> A.DplShift);
    }

    // ---- far branches ----

    [Fact]
    public void Far_pointer_is_offset_then_selector()
    {
        byte[] p = [0x78, 0x56, 0x34, 0x12, 0x08, 0x00, 0xEE, 0xEE, 0x10, 0x00];
        Assert.Equal((0x1234_5678UL, (ushort)0x0008), SystemOps.FarPointer(p, 4));
        Assert.Equal((0x5678UL, (ushort)0x1234), SystemOps.FarPointer(p, 2));
        Assert.Equal((0xEEEE_0008_1234_5678UL, (ushort)0x0010), SystemOps.FarPointer(p, 8));
        Assert.Equal(0x5678UL, SystemOps.FarTarget(0x1234_5678, 2));
    }

    [Fact]
    public void Far_targets_must_be_code_at_the_callers_privilege()
    {
        ulong code64 = Desc(0, 0xFFFFF, A.Code64), code32 = Desc(0, 0xFFFFF, A.Code32);
        Assert.False(SystemOps.CheckFarTarget(0x08, code64, 0, longMode: true).Raised);
        Is(SystemOps.CheckFarTarget(0x0B, code64, 0, longMode: true), 13, 0x08);    // RPL 3 > CPL 0
        Is(SystemOps.CheckFarTarget(0x08, code64, 3, longMode: true), 13, 0x08);    // DPL 0 ≠ CPL 3
        Is(SystemOps.CheckFarTarget(0x20, Desc(0, 0xFFFFF, DataRw), 0, true), 13, 0x20);
        ulong callGate = Desc(0, 0, 0xC | A.P);
        Is(SystemOps.CheckFarTarget(0x30, callGate, 0, true), 13, 0x30);            // gates are #GP(sel) here
        ulong conforming0 = Desc(0, 0xFFFFF, 0xE | A.S | A.P | A.Db | A.G);
        Assert.False(SystemOps.CheckFarTarget(0x13, conforming0, 3, false).Raised);  // DPL 0 ≤ CPL 3, RPL ignored
        Is(SystemOps.CheckFarTarget(0x13, Desc(0, 0xFFFFF, Dpl((ushort)(0xE | A.S | A.P), 3)), 0, false), 13, 0x10);
        Is(SystemOps.CheckFarTarget(0x10, Desc(0, 0xFFFFF, (ushort)(A.Code32 & ~A.P)), 0, false), 11, 0x10);
        Is(SystemOps.CheckFarTarget(0x08, Desc(0, 0xFFFFF, A.Code64 | A.Db), 0, longMode: true), 13, 0x08);
        Assert.False(SystemOps.CheckFarTarget(0x08, Desc(0, 0xFFFFF, A.Code64 | A.Db), 0, longMode: false).Raised);
        Assert.Equal(0x0B, SystemOps.CsSelector(0x08, 3));
        Assert.Equal(0x10, SystemOps.CsSelector(0x13, 0));
        _ = code32;
    }

    [Fact]
    public void Far_target_offset_is_checked_against_the_new_cs()
    {
        var c64 = SystemOps.Cache(0x08, Desc(0, 0xFFFFF, A.Code64), 0, false);
        var c16 = SystemOps.Cache(0x18, Desc(0, 0xFFFF, A.Code16), 0, false);
        Assert.False(SystemOps.FarTargetFaults(in c64, 0xFFFF_8000_0000_0000, true, true, false));
        Assert.True(SystemOps.FarTargetFaults(in c64, 0x0000_8000_0000_0000, true, true, false));
        Assert.False(SystemOps.FarTargetFaults(in c16, 0xFFFF, true, true, false));
        Assert.True(SystemOps.FarTargetFaults(in c16, 0x1_0000, true, true, false));
    }

    [Fact]
    public void Far_call_frame_puts_the_return_offset_below_cs()
    {
        Span<byte> f = stackalloc byte[16];
        SystemOps.FarCallFrame(0x1_2345_6789, 0x0010, 4, f);
        Assert.Equal(new byte[] { 0x89, 0x67, 0x45, 0x23, 0x10, 0x00, 0x00, 0x00 }, f[..8].ToArray());
        f.Fill(0xCC);
        SystemOps.FarCallFrame(0xFFFF_8000_0000_1000, 0x0033, 8, f);
        Assert.Equal(0xFFFF_8000_0000_1000UL, BitConverter.ToUInt64(f));
        Assert.Equal(0x33UL, BitConverter.ToUInt64(f[8..]));
        SystemOps.FarCallFrame(0x1_2345, 0x0018, 2, f);
        Assert.Equal(new byte[] { 0x45, 0x23, 0x18, 0x00 }, f[..4].ToArray());
    }

    [Fact]
    public void Six_byte_accesses_move_exactly_48_bits_of_guest_ram()
    {
        var m = new GuestMemory(1 << 20);
        m.WriteU64(0x100, ulong.MaxValue);
        m.WriteU64(0x108, ulong.MaxValue);
        m.WriteSized(0x101, 6, 0x1122_3344_5566_7788);
        Assert.Equal(0xFF33_4455_6677_88FFUL, m.ReadU64(0x100));
        Assert.Equal(0x3344_5566_7788UL, m.ReadSized(0x101, 6));
    }

    // ---- LLDT, LTR ----

    [Fact]
    public void Lldt_and_ltr_take_only_their_own_system_type_from_the_gdt()
    {
        ulong ldt = Desc(0x5000, 0xFF, A.TypeLdt | A.P), tss = Desc(0x6000, 0x67, A.TypeAvailableTss | A.P);
        Assert.False(SystemOps.CheckSystemLoad(SysReg.Ldtr, 0x30, ldt, 0, longMode: false, false).Raised);
        Assert.False(SystemOps.CheckSystemLoad(SysReg.Tr, 0x38, tss, 0, longMode: false, false).Raised);
        Is(SystemOps.CheckSystemLoad(SysReg.Ldtr, 0x38, tss, 0, false, false), 13, 0x38);
        Is(SystemOps.CheckSystemLoad(SysReg.Tr, 0x30, ldt, 0, false, false), 13, 0x30);
        Is(SystemOps.CheckSystemLoad(SysReg.Tr, 0x38, Desc(0x6000, 0x67, A.TypeBusyTss | A.P), 0, false, false), 13, 0x38);   // busy already
        Is(SystemOps.CheckSystemLoad(SysReg.Tr, 0x3C, tss, 0, false, false), 13, 0x3C);     // TI = 1: not from an LDT
        Is(SystemOps.CheckSystemLoad(SysReg.Ldtr, 0x30, Desc(0x5000, 0xFF, A.TypeLdt), 0, false, false), 11, 0x30);
        Is(SystemOps.CheckSystemLoad(SysReg.Ldtr, 0x20, Desc(0, 0xFFFFF, DataRw), 0, false, false), 13, 0x20);
        ulong tss16 = Desc(0x6000, 0x2B, 0x1 | A.P);
        Assert.False(SystemOps.CheckSystemLoad(SysReg.Tr, 0x38, tss16, 0, longMode: false, false).Raised);
        Is(SystemOps.CheckSystemLoad(SysReg.Tr, 0x38, tss16, 0, longMode: true, false), 13, 0x38);
    }

    [Fact]
    public void Long_mode_system_descriptors_check_their_upper_half()
    {
        ulong tss = Desc(0x6000, 0x67, A.TypeAvailableTss | A.P);
        Assert.False(SystemOps.CheckSystemLoad(SysReg.Tr, 0x40, tss, 0xFFFF_FFFF, longMode: true, false).Raised);
        Is(SystemOps.CheckSystemLoad(SysReg.Tr, 0x40, tss, 0x0000_8000, longMode: true, false), 13, 0x40);          // base not canonical
        Is(SystemOps.CheckSystemLoad(SysReg.Tr, 0x40, tss, 1UL << 40, longMode: true, false), 13, 0x40);            // upper type field ≠ 0
        Assert.False(SystemOps.CheckSystemLoad(SysReg.Tr, 0x40, tss, 1UL << 40, longMode: false, false).Raised);    // ignored outside long mode
    }
}

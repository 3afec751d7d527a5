using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Hot.State;
using Copra.Kernel.Backends;
using Copra.Kernel.Run;
using Iced.Intel;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// The system forms (SGDT..LMSW, MOV Sreg both ways, far JMP/CALL m, LSS/LFS/LGS, LES/LDS) through the real exit path
/// (replay backend, the test device's RAM-like window on the memory side) outside 64-bit CPL 0: at CPL 3 (the SDM's
/// #GP(0) for the privileged loads, UMIP for the stores, the DPL/RPL rules of segment loads and far branches), in 32-bit
/// protected mode, in 16-bit protected mode and in real mode. Each step asserts the guest-visible outcome: the registers
/// and descriptor caches it leaves (Step.ExpectFields, checked by the replay), RIP, the exception and its error code,
/// what reached the device (read back by a later step and counted in DeviceRoundTrips) and the descriptor bits in RAM.
/// Operands are written to the device by the steps before; each assertion names a rule of ExitPipeline.System.cs or
/// SystemOps.cs that a wrong line would break.
/// </summary>
public class SystemModesTests
{
    const ulong Dev = 0xFEB0_0000, Win = Dev + TestDeviceWindow;
    const ulong TestDeviceWindow = 0x1000;
    const ulong M16 = 0xFFFF, M32 = 0xFFFF_FFFF, All = ulong.MaxValue;
    const ulong Umip = 1UL << 11;
    const ushort Dpl3 = 3 << SegmentAttributes.DplShift;
    const ulong Cr0Pe32 = GuestCpuState.Cr0Pe | GuestCpuState.Cr0Mp | GuestCpuState.Cr0Et | GuestCpuState.Cr0Ne | GuestCpuState.Cr0Wp;

    // The GDT of these tests: the six of Gdt, then the descriptors below (accessed bits clear where a load must set them).
    const ushort SelData3 = 0x30, SelCode3 = 0x38, SelData = 0x40, SelLdt = 0x48, SelTss = 0x50, SelCode = 0x58, SelAbsent = 0x60;
    const ushort GdtLimit = 0x67;
    const uint DataBase = 0x0012_3000;
    const ushort DataAttr = SegmentAttributes.TypeDataReadWriteAccessed | SegmentAttributes.S | SegmentAttributes.P | SegmentAttributes.Db;
    static ulong LdtBase(VmLayout l) => l.Data + 0x800;
    static ulong TssBase(VmLayout l) => l.Data + 0x900;

    static void WriteGdt(GuestMemory m, VmLayout l)
    {
        ulong g = l.Gdt;
        new GuestBuilder(m).WriteGdt(g);
        m.WriteU64(g + SelData3, SegmentAttributes.Descriptor(0, 0xFFFFF, (ushort)((SegmentAttributes.Data & ~1) | Dpl3)));
        m.WriteU64(g + SelCode3, SegmentAttributes.Descriptor(0, 0xFFFFF, SegmentAttributes.Code32 | Dpl3));
        m.WriteU64(g + SelData, SegmentAttributes.Descriptor(DataBase, 0xFFFF, DataAttr & ~1));
        m.WriteU64(g + SelLdt, SegmentAttributes.Descriptor((uint)LdtBase(l), 0x17, SegmentAttributes.TypeLdt | SegmentAttributes.P));
        m.WriteU64(g + SelTss, SegmentAttributes.Descriptor((uint)TssBase(l), 0x67, SegmentAttributes.TypeAvailableTss | SegmentAttributes.P));
        m.WriteU64(g + SelCode, SegmentAttributes.Descriptor(0, 0xFFFFF, SegmentAttributes.Code32 & ~1));
        m.WriteU64(g + SelAbsent, SegmentAttributes.Descriptor(0, 0xFFFFF, SegmentAttributes.Data & ~SegmentAttributes.P));
    }

    static ulong Field(int seg, int part) => StateField.Seg(seg, part);
    static (ulong, ulong)[] Seg(int seg, ushort sel, ulong @base, uint limit, ushort attr) =>
        [(Field(seg, StateField.Selector), sel), (Field(seg, StateField.Base), @base), (Field(seg, StateField.Limit), limit), (Field(seg, StateField.Attributes), attr)];
    static (ulong, ulong, ulong)[] Cache(int seg, ushort sel, ulong @base, uint limit, ushort attr) =>
        [(Field(seg, StateField.Selector), sel, M16), (Field(seg, StateField.Base), @base, All), (Field(seg, StateField.Limit), limit, All), (Field(seg, StateField.Attributes), attr, 0xFFF)];
    static Action<Assembler> Raw(params byte[] b) => a => a.db(b);

    /// <summary>Boots one vCPU in <paramref name="bits"/>-bit code at CS base <paramref name="csBase"/>, no paging, this
    /// class's GDT loaded (limit <see cref="GdtLimit"/>).</summary>
    static CopraSystem Boot(int bits, Func<VmLayout, GuestCpuState> start, Func<VmLayout, ulong> csBase, Action<ReplayRig, VmLayout> build)
    {
        var sc = Scenario.Default() with { Vms = [new VmScenario(Vcpus: 1)] };
        return new CopraSystem(sc, backend: (k, layouts) =>
        {
            var l = layouts[0];
            WriteGdt(k.Memory, l);
            var rig = new ReplayRig(new GuestBuilder(k.Memory), l.Code, bits, csBase(l));
            build(rig, l);
            start(l).ApplyTo(k.State, 0);
            k.State.OnEntry(0);
            return new ReplayBackend(k.State, [rig.Program()]);
        });
    }

    static GuestCpuState Protected32(VmLayout l) =>
        GuestCpuState.ProtectedMode(PagingKind.None, 0, l.Gdt, (uint)l.Code, (uint)l.StackTop(0)) with { GdtLimit = GdtLimit };

    static void Run(CopraSystem sys)
    {
        Assert.True(sys.Run().Quiescent);
        Assert.True(sys.Replay!.Desyncs == 0 && sys.Replay.DataMismatches == 0, string.Join("\n", sys.Replay.Problems));
        Assert.Equal(0, sys.Kernel.InternalErrors);
        Assert.Equal(0, sys.Kernel.Stats.InFlight);
        Assert.Equal(0, sys.Kernel.Stats.IcedFallbacks);   // every form decoded by the tables
    }

    /// <summary>The exceptions the run raised, in order: (step, vector, error code or null, RIP).</summary>
    static (string Step, byte Vector, uint? Error, ulong Rip)[] Faults(CopraSystem sys) =>
        [.. sys.Replay!.Exceptions.Select(e => (e.Step, (byte)e.Event, (e.Event & (1 << 11)) != 0 ? (uint?)(uint)(e.Event >> 32) : null, e.Rip))];

    static (string, byte, uint?, ulong) Fault(Step s, byte vector, uint? error) => (s.Text, vector, error, s.Rip);

    // ---- CPL 3 ----------------------------------------------------------------------------------

    static (ulong, ulong)[] Ring3 =>
    [
        .. Seg(StateField.Cs, SelCode3 | 3, 0, 0xFFFF_FFFF, SegmentAttributes.Code32 | Dpl3),
        .. Seg(StateField.Ss, SelData3 | 3, 0, 0xFFFF_FFFF, SegmentAttributes.Data | Dpl3),
        .. Seg(StateField.Ds, SelData3 | 3, 0, 0xFFFF_FFFF, SegmentAttributes.Data | Dpl3),
        .. Seg(StateField.Es, SelData3 | 3, 0, 0xFFFF_FFFF, SegmentAttributes.Data | Dpl3),
        (StateField.Rflags, 0x2), (StateField.Cr0, Cr0Pe32), (StateField.Cr4, 0),
    ];
    static (ulong, ulong)[] Ring3Umip => [.. Ring3, (StateField.Cr4, Umip)];

    /// <summary>
    /// At CPL 3 the loads LGDT, LIDT, LLDT, LTR, LMSW are #GP(0) and the stores SGDT, SIDT, SLDT, STR, SMSW are #GP(0)
    /// under CR4.UMIP, before the operand is read or written: no device round trip, GDTR/IDTR/LDTR/TR/CR0 unchanged.
    /// Without UMIP the stores run at CPL 3 and the device receives GDTR, TR and the MSW.
    /// </summary>
    [Fact]
    public void At_cpl3_the_privileged_loads_and_the_umip_stores_fault_before_the_device()
    {
        var faulted = new List<Step>();
        ulong gdtBase = 0;
        using var sys = Boot(32, Protected32, _ => 0, (r, l) =>
        {
            gdtBase = l.Gdt;
            (int, ulong)[] b = [(3, Win)];
            r.Add("mov dword [ebx], 0x11112222 (an operand the loads would take)", a => a.mov(__dword_ptr[ebx], 0x1111_2222), ExitReason.Mmio, Win, 4, true, b, Ring3);
            r.Add("mov dword [ebx+4], 0x50 (its selector half)", a => a.mov(__dword_ptr[ebx + 4], SelTss), ExitReason.Mmio, Win + 4, 4, true, b, Ring3);
            foreach (var (text, bytes, size, write) in new (string, byte[], byte, bool)[]
            {
                ("sgdt [ebx] (CPL 3, UMIP)", [0x0F, 0x01, 0x03], 6, true), ("sidt [ebx] (CPL 3, UMIP)", [0x0F, 0x01, 0x0B], 6, true),
                ("sldt [ebx] (CPL 3, UMIP)", [0x0F, 0x00, 0x03], 2, true), ("str [ebx] (CPL 3, UMIP)", [0x0F, 0x00, 0x0B], 2, true),
                ("smsw [ebx] (CPL 3, UMIP)", [0x0F, 0x01, 0x23], 2, true),
            })
                faulted.Add(r.Add(text, Raw(bytes), ExitReason.Mmio, Win, size, write, b, Ring3Umip));
            foreach (var (text, bytes, size) in new (string, byte[], byte)[]
            {
                ("lgdt [ebx] (CPL 3)", [0x0F, 0x01, 0x13], 6), ("lidt [ebx] (CPL 3)", [0x0F, 0x01, 0x1B], 6),
                ("lldt [ebx+4] (CPL 3)", [0x0F, 0x00, 0x53, 0x04], 2), ("ltr [ebx+4] (CPL 3)", [0x0F, 0x00, 0x5B, 0x04], 2),
                ("lmsw [ebx] (CPL 3)", [0x0F, 0x01, 0x33], 2),
            })
                faulted.Add(r.Add(text, Raw(bytes), ExitReason.Mmio, Win + (text.Contains("+4") ? 4UL : 0), size, false, b, Ring3));
            // Nothing of the faulted forms reached the device or the registers.
            var kept = r.Add("mov eax, [ebx] (the operand still there)", a => a.mov(eax, __dword_ptr[ebx]), ExitReason.Mmio, Win, 4, false, b, Ring3, expect: 0x1111_2222);
            kept.ExpectFields =
            [
                (StateField.GdtrBase, l.Gdt, All), (StateField.GdtrLimit, GdtLimit, M16), (StateField.IdtrLimit, 0, M16),
                (Field(StateField.Tr, StateField.Selector), 0, M16), (Field(StateField.Ldtr, StateField.Attributes), 0, 0xFFF),
                (StateField.Cr0, Cr0Pe32, All),
            ];
            // Without UMIP the stores are allowed at any CPL.
            r.Add("sgdt [ebx+8] (CPL 3, no UMIP)", Raw(0x0F, 0x01, 0x43, 0x08), ExitReason.Mmio, Win + 8, 6, true, b, Ring3);
            r.Add("mov eax, [ebx+8] (SGDT's limit and base 15:0)", a => a.mov(eax, __dword_ptr[ebx + 8]), ExitReason.Mmio, Win + 8, 4, false, b, Ring3,
                expect: GdtLimit | (l.Gdt & 0xFFFF) << 16);
            r.Add("mov eax, [ebx+0xc] (SGDT's base 31:16)", a => a.mov(eax, __dword_ptr[ebx + 0xC]), ExitReason.Mmio, Win + 0xC, 4, false, b, Ring3,
                expect: (l.Gdt >> 16) & 0xFFFF);
            r.Add("str [ebx+0x10] (CPL 3, no UMIP)", Raw(0x0F, 0x00, 0x4B, 0x10), ExitReason.Mmio, Win + 0x10, 2, true, b,
                [.. Ring3, (Field(StateField.Tr, StateField.Selector), SelTss)]);
            r.Add("smsw [ebx+0x12] (CPL 3, no UMIP)", Raw(0x0F, 0x01, 0x63, 0x12), ExitReason.Mmio, Win + 0x12, 2, true, b, Ring3);
            r.Add("mov eax, [ebx+0x10] (STR's selector, SMSW's CR0 15:0)", a => a.mov(eax, __dword_ptr[ebx + 0x10]), ExitReason.Mmio, Win + 0x10, 4, false, b, Ring3,
                expect: SelTss | (Cr0Pe32 & 0xFFFF) << 16);
        });
        Run(sys);
        Assert.Equal(faulted.Select(s => Fault(s, 13, 0)), Faults(sys));
        Assert.Equal(9, sys.Kernel.Stats.DeviceRoundTrips);   // 2 writes, the read-back, SGDT + 2 reads, STR, SMSW, 1 read
        Assert.Equal(gdtBase, sys.Kernel.State.TryPeek(0, StateField.GdtrBase, out ulong g) ? g : 0);
    }

    /// <summary>
    /// Segment loads and far branches at CPL 3: MOV DS of a DPL-0 data segment is #GP(sel) (CPL &gt; DPL), of a DPL-3 one
    /// loads it and sets its accessed bit; MOV SS with RPL ≠ CPL is #GP(sel); LSS of the DPL-3 stack loads SS and ESP; far
    /// JMP to DPL-0 non-conforming code is #GP(sel); to DPL-3 code it loads CS with RPL = CPL; MOV m16, CS stores CS.
    /// </summary>
    [Fact]
    public void At_cpl3_segment_loads_and_far_branches_follow_the_dpl_and_rpl_rules()
    {
        Step? dsDpl0 = null, ssRpl = null, jmpDpl0 = null, ssNull = null;
        const ulong Target = 0x0040_2000;
        using var sys = Boot(32, Protected32, _ => 0, (r, l) =>
        {
            (int, ulong)[] b = [(3, Win)];
            Step W(string t, ulong off, ulong v) => r.Add(t, a => a.mov(__dword_ptr[ebx + (int)off], (int)v), ExitReason.Mmio, Win + off, 4, true, b, Ring3);
            W("mov dword [ebx], 0x40 (DPL-0 data)", 0, SelData);
            dsDpl0 = r.Add("mov ds, [ebx] (CPL 3 > DPL 0: #GP(0x40))", Raw(0x8E, 0x1B), ExitReason.Mmio, Win, 2, false, b, Ring3);
            W("mov dword [ebx+4], 0x33 (DPL-3 data, RPL 3)", 4, SelData3 | 3);
            r.Add("mov ds, [ebx+4] (loads)", Raw(0x8E, 0x5B, 0x04), ExitReason.Mmio, Win + 4, 2, false, b, Ring3).ExpectFields =
                Cache(StateField.Ds, SelData3 | 3, 0, 0xFFFF_FFFF, SegmentAttributes.Data | Dpl3);
            W("mov dword [ebx+8], 0x30 (DPL-3 data, RPL 0)", 8, SelData3);
            ssRpl = r.Add("mov ss, [ebx+8] (RPL 0 != CPL 3: #GP(0x30))", Raw(0x8E, 0x53, 0x08), ExitReason.Mmio, Win + 8, 2, false, b, Ring3);
            W("mov dword [ebx+0x10], 0x1234 (LSS offset)", 0x10, 0x1234);
            W("mov dword [ebx+0x14], 0x33 (LSS selector)", 0x14, SelData3 | 3);
            var lss = r.Add("lss esp, [ebx+0x10] (CPL 3 stack)", Raw(0x0F, 0xB2, 0x63, 0x10), ExitReason.Mmio, Win + 0x10, 6, false, [.. b, (4, 0xDEAD_BEEF)], Ring3);
            lss.ExpectFields = [(4, 0x1234, All), .. Cache(StateField.Ss, SelData3 | 3, 0, 0xFFFF_FFFF, SegmentAttributes.Data | Dpl3)];
            W("mov dword [ebx+0x18], 0 (LES offset)", 0x18, 0);
            W("mov dword [ebx+0x1c], 3 (LES selector: null, RPL 3)", 0x1C, 3);
            var les = r.Add("les eax, [ebx+0x18] (null selector: ES unusable)", Raw(0xC4, 0x43, 0x18), ExitReason.Mmio, Win + 0x18, 6, false, [.. b, (0, 0xFFFF_FFFF)], Ring3);
            les.ExpectFields = [(0, 0, All), .. Cache(StateField.Es, 3, 0, 0, 0)];
            W("mov dword [ebx+0x20], 0x3 (null selector for SS)", 0x20, 3);
            ssNull = r.Add("mov ss, [ebx+0x20] (null SS outside 64-bit mode: #GP(0))", Raw(0x8E, 0x53, 0x20), ExitReason.Mmio, Win + 0x20, 2, false, b, Ring3);
            W("mov dword [ebx+0x28], target", 0x28, Target);
            W("mov dword [ebx+0x2c], 0x58 (DPL-0 code)", 0x2C, SelCode);
            jmpDpl0 = r.Add("jmp far [ebx+0x28] (DPL-0 code at CPL 3: #GP(0x58))", Raw(0xFF, 0x6B, 0x28), ExitReason.Mmio, Win + 0x28, 6, false, b, Ring3);
            W("mov dword [ebx+0x2c], 0x38 (DPL-3 code, RPL 0)", 0x2C, SelCode3);
            var jmp = r.Add("jmp far [ebx+0x28] (DPL-3 code: CS RPL = CPL)", Raw(0xFF, 0x6B, 0x28), ExitReason.Mmio, Win + 0x28, 6, false, b, Ring3);
            jmp.ExpectRip = Target;
            jmp.ExpectFields = Cache(StateField.Cs, SelCode3 | 3, 0, 0xFFFF_FFFF, SegmentAttributes.Code32 | Dpl3);
            r.Add("mov [ebx+0x30], cs (CPL 3)", Raw(0x8C, 0x4B, 0x30), ExitReason.Mmio, Win + 0x30, 2, true, b, Ring3);
            r.Add("mov eax, [ebx+0x30] (CS stored)", a => a.mov(eax, __dword_ptr[ebx + 0x30]), ExitReason.Mmio, Win + 0x30, 4, false, b, Ring3, expect: SelCode3 | 3);
        });
        Run(sys);
        Assert.Equal(new[] { Fault(dsDpl0!, 13, SelData), Fault(ssRpl!, 13, SelData3), Fault(ssNull!, 13, 0), Fault(jmpDpl0!, 13, SelCode) }, Faults(sys));
        var m = sys.Kernel.Memory;
        ulong gdt = sys.Layouts[0].Gdt;
        Assert.Equal(0x2UL, (m.ReadU64(gdt + SelData) >> 40) & 0xF);     // the faulted MOV DS did not set its accessed bit
        Assert.Equal(0x3UL, (m.ReadU64(gdt + SelData3) >> 40) & 0xF);    // the loads of SelData3 did
        Assert.Equal(0xAUL, (m.ReadU64(gdt + SelCode) >> 40) & 0xF);     // the faulted far JMP did not
    }

    // ---- 32-bit protected mode, CPL 0 -----------------------------------------------------------

    static (ulong, ulong)[] Ring0 =>
    [
        .. Seg(StateField.Cs, Gdt.Code32, 0, 0xFFFF_FFFF, SegmentAttributes.Code32),
        .. Seg(StateField.Ss, Gdt.Data, 0, 0xFFFF_FFFF, SegmentAttributes.Data),
        .. Seg(StateField.Ds, Gdt.Data, 0, 0xFFFF_FFFF, SegmentAttributes.Data),
        (StateField.Rflags, 0x2), (StateField.Cr0, Cr0Pe32),
    ];

    /// <summary>
    /// Every form in 32-bit protected mode with the operand on the device: LGDT/SGDT of 6 bytes (32-bit base), LIDT with
    /// 66 (24-bit base), LLDT/LTR of 8-byte legacy descriptors (TSS busy in RAM), MOV SS and LFS through their descriptors
    /// (base, byte-granular limit, accessed bit), LDS, far JMP m16:32, far CALL m16:32 (frame in RAM: EIP then CS, 4
    /// bytes each) and with 66 m16:16 (2 bytes each, a 16-bit target), SMSW and LMSW (PE kept), MOV m16, SS.
    /// </summary>
    [Fact]
    public void Protected_mode_32_bit_forms_move_their_operands_through_the_device()
    {
        Step? call32 = null, call16 = null;
        ulong esp32 = 0, esp16 = 0;
        const ulong Target = 0x0040_3000;
        using var sys = Boot(32, Protected32, _ => 0, (r, l) =>
        {
            (int, ulong)[] b = [(3, Win)];
            Step W(string t, ulong off, ulong v) => r.Add(t, a => a.mov(__dword_ptr[ebx + (int)off], (int)(uint)v), ExitReason.Mmio, Win + off, 4, true, b, Ring0);
            Step R(string t, ulong off, ulong expect) => r.Add(t, a => a.mov(eax, __dword_ptr[ebx + (int)off]), ExitReason.Mmio, Win + off, 4, false, b, Ring0, expect: expect);
            // LGDT m (6 bytes: limit, 32-bit base), then SGDT back.
            W("mov dword [ebx], limit:base 15:0", 0, GdtLimit | (l.Gdt & 0xFFFF) << 16);
            W("mov dword [ebx+4], base 31:16 (and a byte LGDT must not take)", 4, (l.Gdt >> 16) | 0xAA00_0000);
            r.Add("lgdt [ebx]", Raw(0x0F, 0x01, 0x13), ExitReason.Mmio, Win, 6, false, b, Ring0).ExpectFields =
                [(StateField.GdtrBase, l.Gdt, All), (StateField.GdtrLimit, GdtLimit, M16)];
            var sgdt = r.Add("sgdt [ebx+8]", Raw(0x0F, 0x01, 0x43, 0x08), ExitReason.Mmio, Win + 8, 6, true, b, Ring0);
            sgdt.PresetFields = [(StateField.GdtrBase, l.Gdt | 0xFFFF_FFFF_0000_0000UL)];   // base 63:32 is not stored outside 64-bit mode
            R("mov eax, [ebx+8] (SGDT limit, base 15:0)", 8, GdtLimit | (l.Gdt & 0xFFFF) << 16);
            R("mov eax, [ebx+0xc] (SGDT base 31:16, nothing past 6 bytes)", 0xC, l.Gdt >> 16);
            // o16 LIDT: 24 bits of base.
            W("mov dword [ebx+0x10], limit 0x3ff, base 15:0", 0x10, 0x3FF | 0x5678UL << 16);
            W("mov dword [ebx+0x14], base 31:16", 0x14, 0x9A34);
            r.Add("o16 lidt [ebx+0x10] (24-bit base)", Raw(0x66, 0x0F, 0x01, 0x5B, 0x10), ExitReason.Mmio, Win + 0x10, 6, false, b, Ring0).ExpectFields =
                [(StateField.IdtrBase, 0x34_5678, All), (StateField.IdtrLimit, 0x3FF, M16)];
            // LLDT, LTR: 8-byte descriptors outside long mode.
            W("mov dword [ebx+0x18], 0x48 | 0x50 << 16", 0x18, SelLdt | (ulong)SelTss << 16);
            r.Add("lldt [ebx+0x18]", Raw(0x0F, 0x00, 0x53, 0x18), ExitReason.Mmio, Win + 0x18, 2, false, b, Ring0).ExpectFields =
                Cache(StateField.Ldtr, SelLdt, LdtBase(l), 0x17, SegmentAttributes.TypeLdt | SegmentAttributes.P);
            r.Add("ltr [ebx+0x1a]", Raw(0x0F, 0x00, 0x5B, 0x1A), ExitReason.Mmio, Win + 0x1A, 2, false, b, Ring0).ExpectFields =
                Cache(StateField.Tr, SelTss, TssBase(l), 0x67, SegmentAttributes.TypeBusyTss | SegmentAttributes.P);
            // MOV SS, LFS, LDS through the byte-granular DPL-0 descriptor at 0x40 (base 0x123000, limit 0xFFFF).
            W("mov dword [ebx+0x20], 0x40", 0x20, SelData);
            r.Add("mov ss, [ebx+0x20]", Raw(0x8E, 0x53, 0x20), ExitReason.Mmio, Win + 0x20, 2, false, b, Ring0).ExpectFields =
                Cache(StateField.Ss, SelData, DataBase, 0xFFFF, DataAttr);
            W("mov dword [ebx+0x28], offset", 0x28, 0x8765_4321);
            W("mov dword [ebx+0x2c], 0x40", 0x2C, SelData);
            var lfs = r.Add("lfs eax, [ebx+0x28]", Raw(0x0F, 0xB4, 0x43, 0x28), ExitReason.Mmio, Win + 0x28, 6, false, b, Ring0);
            lfs.ExpectFields = [(0, 0x8765_4321, All), .. Cache(StateField.Fs, SelData, DataBase, 0xFFFF, DataAttr)];
            var lds = r.Add("lds ecx, [ebx+0x28]", Raw(0xC5, 0x4B, 0x28), ExitReason.Mmio, Win + 0x28, 6, false, [.. b, (1, 0xFFFF_FFFF_FFFF_FFFF)], Ring0);
            lds.ExpectFields = [(1, 0x8765_4321, All), .. Cache(StateField.Ds, SelData, DataBase, 0xFFFF, DataAttr)];
            var o16les = r.Add("o16 les dx, [ebx+0x2c] (m16:16: offset 0x40, selector 0: ES null)", Raw(0x66, 0xC4, 0x53, 0x2C), ExitReason.Mmio, Win + 0x2C, 4, false,
                [.. b, (2, 0x1111_2222_3333_4444)], Ring0);
            o16les.ExpectFields = [(2, 0x1111_2222_3333_0040, All), .. Cache(StateField.Es, 0, 0, 0, 0)];   // DX's upper bits kept
            // Far JMP m16:32 to the code descriptor at 0x58 (accessed clear in RAM).
            W("mov dword [ebx+0x30], target", 0x30, Target);
            W("mov dword [ebx+0x34], 0x58", 0x34, SelCode);
            var jmp = r.Add("jmp far [ebx+0x30] (m16:32)", Raw(0xFF, 0x6B, 0x30), ExitReason.Mmio, Win + 0x30, 6, false, b, Ring0);
            jmp.ExpectRip = Target;
            jmp.ExpectFields = Cache(StateField.Cs, SelCode, 0, 0xFFFF_FFFF, SegmentAttributes.Code32);
            // Far CALL m16:32 and o16 m16:16: the frame lands in RAM at SS:ESP.
            esp32 = l.StackTop(0) - 0x100;
            call32 = r.Add("call far [ebx+0x30] (m16:32)", Raw(0xFF, 0x5B, 0x30), ExitReason.Mmio, Win + 0x30, 6, false, [.. b, (4, esp32)], Ring0);
            call32.ExpectRip = Target;
            call32.ExpectFields = [(4, esp32 - 8, All), (Field(StateField.Cs, StateField.Selector), SelCode, M16)];
            W("mov dword [ebx+0x38], 0x58 << 16 | 0x1234", 0x38, 0x1234 | (ulong)SelCode << 16);
            esp16 = l.StackTop(0) - 0x200;
            call16 = r.Add("o16 call far [ebx+0x38] (m16:16)", Raw(0x66, 0xFF, 0x5B, 0x38), ExitReason.Mmio, Win + 0x38, 4, false, [.. b, (4, esp16)], Ring0);
            call16.ExpectRip = 0x1234;
            call16.ExpectFields = [(4, esp16 - 4, All)];
            // SMSW, LMSW (PE stays set even when the operand clears it), MOV m16, SS.
            r.Add("smsw [ebx+0x40]", Raw(0x0F, 0x01, 0x63, 0x40), ExitReason.Mmio, Win + 0x40, 2, true, b, Ring0);
            r.Add("mov [ebx+0x42], ss", Raw(0x8C, 0x53, 0x42), ExitReason.Mmio, Win + 0x42, 2, true, b,
                [.. Ring0, .. Seg(StateField.Ss, SelData, DataBase, 0xFFFF, DataAttr)]);
            R("mov eax, [ebx+0x40] (MSW, SS)", 0x40, (Cr0Pe32 & 0xFFFF) | (ulong)SelData << 16);
            W("mov dword [ebx+0x44], 0xfff8 (TS EM MP set, PE clear)", 0x44, 0xFFF8 | 0xE);
            r.Add("lmsw [ebx+0x44]", Raw(0x0F, 0x01, 0x73, 0x44), ExitReason.Mmio, Win + 0x44, 2, false, b, Ring0).ExpectFields =
                [(StateField.Cr0, (Cr0Pe32 & ~0xFUL) | 0xF, All)];
        });
        Run(sys);
        Assert.Empty(Faults(sys));
        var m = sys.Kernel.Memory;
        ulong gdt = sys.Layouts[0].Gdt;
        Assert.Equal((ulong)SegmentAttributes.TypeBusyTss, (m.ReadU64(gdt + SelTss) >> 40) & 0xF);   // LTR made it busy
        Assert.Equal(0x3UL, (m.ReadU64(gdt + SelData) >> 40) & 0xF);                                  // MOV SS set accessed
        Assert.Equal(0xBUL, (m.ReadU64(gdt + SelCode) >> 40) & 0xF);                                  // the far JMP set accessed
        Assert.Equal(call32!.Rip + (ulong)call32.Length, m.ReadU32(esp32 - 8));                       // the return EIP
        Assert.Equal((ulong)Gdt.Code32, m.ReadU32(esp32 - 4));                                         // the old CS, zero-extended
        Assert.Equal((call16!.Rip + (ulong)call16.Length) & 0xFFFF, m.ReadU16(esp16 - 4));
        Assert.Equal((ulong)Gdt.Code32, m.ReadU16(esp16 - 2));
        Assert.Equal(0UL, m.ReadU32(esp16 - 8));                                                       // nothing pushed below the 4 bytes
    }

    // ---- 16-bit protected mode, CPL 0 -----------------------------------------------------------

    /// <summary>16-bit code (CS a 16-bit descriptor cache based at the code page), flat 32-bit SS, DS based at the device.</summary>
    static (ulong, ulong)[] Prot16(VmLayout l) =>
    [
        .. Seg(StateField.Cs, Gdt.Code16, l.Code, 0xFFFF, SegmentAttributes.Code16),
        .. Seg(StateField.Ss, Gdt.Data, 0, 0xFFFF_FFFF, SegmentAttributes.Data),
        .. Seg(StateField.Ds, Gdt.Data16, Dev, 0xFFFF, SegmentAttributes.Data16),
        (StateField.Rflags, 0x2), (StateField.Cr0, Cr0Pe32),
    ];

    /// <summary>
    /// 16-bit protected mode: the default operand size is 2, so far JMP/CALL take m16:16 (4 bytes) and push 2-byte slots
    /// (on a 32-bit stack: ESP moves), 66 gives m16:32 (6); LGDT keeps 24 bits of base, 66 LGDT 32; LSS SP writes SP only;
    /// MOV ES through the descriptor; a null SS and an LLDT selector with TI set are #GP.
    /// </summary>
    [Fact]
    public void Protected_mode_16_bit_forms_take_16_bit_operands_unless_66_says_otherwise()
    {
        Step? ssNull = null, lldtTi = null, call = null;
        ulong esp = 0;
        using var sys = Boot(16, l => Protected32(l) with { Cs = new SegmentState(Gdt.Code16, l.Code, 0xFFFF, SegmentAttributes.Code16), Rip = 0 }, l => l.Code, (r, l) =>
        {
            var st = Prot16(l);
            (int, ulong)[] b = [(3, TestDeviceWindow)];
            Step W(string t, int off, ulong v) => r.Add(t, a => a.mov(__dword_ptr[bx + off], (int)(uint)v), ExitReason.Mmio, Win + (ulong)off, 4, true, b, st);
            W("mov dword [bx], 0x0040 | 0x18 << 16 (m16:16)", 0, 0x40 | (ulong)Gdt.Code16 << 16);
            var jmp = r.Add("jmp far [bx] (m16:16)", Raw(0xFF, 0x2F), ExitReason.Mmio, Win, 4, false, b, st);
            jmp.ExpectRip = 0x40;
            jmp.ExpectFields = Cache(StateField.Cs, Gdt.Code16, 0, 0xFFFF, SegmentAttributes.Code16);
            W("mov dword [bx+4], 0x00400000 (m16:32 offset)", 4, 0x0040_0000);
            W("mov dword [bx+8], 0x10 (m16:32 selector)", 8, Gdt.Code32);
            var jmp32 = r.Add("o32 jmp far [bx+4] (m16:32)", Raw(0x66, 0xFF, 0x6F, 0x04), ExitReason.Mmio, Win + 4, 6, false, b, st);
            jmp32.ExpectRip = 0x0040_0000;
            jmp32.ExpectFields = Cache(StateField.Cs, Gdt.Code32, 0, 0xFFFF_FFFF, SegmentAttributes.Code32);
            esp = l.StackTop(0) - 0x300;
            call = r.Add("call far [bx] (m16:16, 2-byte slots on a 32-bit stack)", Raw(0xFF, 0x1F), ExitReason.Mmio, Win, 4, false, [.. b, (4, esp)], st);
            call.ExpectRip = 0x40;
            call.ExpectFields = [(4, esp - 4, All)];
            W("mov dword [bx+0x10], limit 0x1ff, base 15:0", 0x10, 0x1FF | 0xBEEFUL << 16);
            W("mov dword [bx+0x14], base 31:16", 0x14, 0x12AD);
            r.Add("lgdt [bx+0x10] (24-bit base)", Raw(0x0F, 0x01, 0x57, 0x10), ExitReason.Mmio, Win + 0x10, 6, false, b, st).ExpectFields =
                [(StateField.GdtrBase, 0xAD_BEEF, All), (StateField.GdtrLimit, 0x1FF, M16)];
            r.Add("o32 lgdt [bx+0x10] (32-bit base)", Raw(0x66, 0x0F, 0x01, 0x57, 0x10), ExitReason.Mmio, Win + 0x10, 6, false, b, st).ExpectFields =
                [(StateField.GdtrBase, 0x12AD_BEEF, All)];
            W("mov dword [bx+0x20], 0x40 (ES: the base-0x123000 descriptor)", 0x20, SelData);
            r.Add("mov es, [bx+0x20]", Raw(0x8E, 0x47, 0x20), ExitReason.Mmio, Win + 0x20, 2, false, b, [.. st, (StateField.GdtrBase, l.Gdt), (StateField.GdtrLimit, GdtLimit)]).ExpectFields =
                Cache(StateField.Es, SelData, DataBase, 0xFFFF, DataAttr);
            W("mov dword [bx+0x24], 0xabcd (offset) | 0x28 << 16 (16-bit data)", 0x24, 0xABCD | (ulong)Gdt.Data16 << 16);
            var lss = r.Add("lss sp, [bx+0x24] (m16:16)", Raw(0x0F, 0xB2, 0x67, 0x24), ExitReason.Mmio, Win + 0x24, 4, false, [.. b, (4, 0xDEAD_0000)], st);
            lss.ExpectFields = [(4, 0xDEAD_ABCD, All), .. Cache(StateField.Ss, Gdt.Data16, 0, 0xFFFF, SegmentAttributes.Data16)];
            W("mov dword [bx+0x28], 0 (null selector)", 0x28, 0);
            ssNull = r.Add("mov ss, [bx+0x28] (null SS: #GP(0))", Raw(0x8E, 0x57, 0x28), ExitReason.Mmio, Win + 0x28, 2, false, b, st);
            W("mov dword [bx+0x2c], 0x4c (TI set)", 0x2C, SelLdt | 4);
            lldtTi = r.Add("lldt [bx+0x2c] (TI = 1: #GP(0x4c))", Raw(0x0F, 0x00, 0x57, 0x2C), ExitReason.Mmio, Win + 0x2C, 2, false, b, st);
            // The faults left SS and LDTR as they were.
            (ulong, ulong)[] keepSs = [.. st.Where(f => f.Item1 < Field(StateField.Ss, 0) || f.Item1 > Field(StateField.Ss, 3))];
            r.Add("mov eax, [bx] (after the faults; SS not preset)", a => a.mov(eax, __dword_ptr[bx]), ExitReason.Mmio, Win, 4, false, b, keepSs, expect: 0x40 | (ulong)Gdt.Code16 << 16).ExpectFields =
                [(Field(StateField.Ldtr, StateField.Attributes), 0, 0xFFF), (Field(StateField.Ss, StateField.Selector), Gdt.Data, M16)];
        });
        Run(sys);
        Assert.Equal(new[] { Fault(ssNull!, 13, 0), Fault(lldtTi!, 13, SelLdt | 4u) }, Faults(sys));
        var m = sys.Kernel.Memory;
        Assert.Equal(call!.Rip + (ulong)call.Length, m.ReadU16(esp - 4));   // IP, then CS above it
        Assert.Equal((ulong)Gdt.Code16, m.ReadU16(esp - 2));
    }

    // ---- real mode ------------------------------------------------------------------------------

    /// <summary>Real mode: CS cached at the code page (as after a far jump from protected mode), DS at the device with a
    /// 1 MiB cached limit (big real mode, so a load that resets the limit is seen), SS at the stack page.</summary>
    static (ulong, ulong)[] Real(VmLayout l) =>
    [
        .. Seg(StateField.Cs, 0xF000, l.Code, 0xFFFF, SegmentAttributes.Code16),
        .. Seg(StateField.Ss, 0x8000, l.Data, 0xFFFF, SegmentAttributes.Data16),
        .. Seg(StateField.Ds, 0x9000, Dev, 0xF_FFFF, SegmentAttributes.Data16),
        .. Seg(StateField.Es, 0x9000, Dev, 0xF_FFFF, SegmentAttributes.Data16),
        (StateField.Rflags, 0x2), (StateField.Cr0, GuestCpuState.Cr0Et),
    ];

    /// <summary>
    /// Real mode: MOV Sreg, LSS and LES give base = selector × 16 and keep the cached limit and attributes (not virtual-8086
    /// mode's 64 KiB DPL-3 ones); far JMP/CALL m16:16 likewise for CS, CALL pushing CS then IP at SS:SP; a 66 far JMP past
    /// CS's limit is #GP(0); LGDT keeps 24 bits of base; SMSW stores CR0 15:0; LMSW can set PE; SLDT and LTR are #UD.
    /// </summary>
    [Fact]
    public void Real_mode_forms_load_paragraph_bases_and_refuse_the_protected_only_ones()
    {
        Step? sldt = null, ltr = null, far = null, call = null;
        ulong data = 0;
        using var sys = Boot(16, l => GuestCpuState.RealMode(0xF000, 0, 0x8000, 0x100), l => l.Code, (r, l) =>
        {
            var st = Real(l);
            data = l.Data;
            (int, ulong)[] b = [(3, TestDeviceWindow)];
            Step W(string t, int off, ulong v) => r.Add(t, a => a.mov(__dword_ptr[bx + off], (int)(uint)v), ExitReason.Mmio, Win + (ulong)off, 4, true, b, st);
            W("mov dword [bx], 0x1234", 0, 0x1234);
            r.Add("mov es, [bx]", Raw(0x8E, 0x07), ExitReason.Mmio, Win, 2, false, b, st).ExpectFields =
                Cache(StateField.Es, 0x1234, 0x12340, 0xF_FFFF, SegmentAttributes.Data16);
            r.Add("mov ds, [bx] (DS itself: the base moves, the cached limit stays)", Raw(0x8E, 0x1F), ExitReason.Mmio, Win, 2, false, b, st).ExpectFields =
                Cache(StateField.Ds, 0x1234, 0x12340, 0xF_FFFF, SegmentAttributes.Data16);
            W("mov dword [bx+4], 0x0abc | 0x2000 << 16", 4, 0x0ABC | 0x2000UL << 16);
            var lss = r.Add("lss sp, [bx+4]", Raw(0x0F, 0xB2, 0x67, 0x04), ExitReason.Mmio, Win + 4, 4, false, [.. b, (4, 0xDEAD_0100)], st);
            lss.ExpectFields = [(4, 0xDEAD_0ABC, All), .. Cache(StateField.Ss, 0x2000, 0x20000, 0xFFFF, SegmentAttributes.Data16)];
            var les = r.Add("les di, [bx+4]", Raw(0xC4, 0x7F, 0x04), ExitReason.Mmio, Win + 4, 4, false, [.. b, (7, 0x5555_0000)], st);
            les.ExpectFields = [(7, 0x5555_0ABC, All), .. Cache(StateField.Es, 0x2000, 0x20000, 0xF_FFFF, SegmentAttributes.Data16)];
            // Far JMP/CALL m16:16: CS = selector × 16, IP = offset; CALL pushes CS then IP at SS:SP.
            W("mov dword [bx+8], 0x0042 | 0x1000 << 16", 8, 0x42 | 0x1000UL << 16);
            var jmp = r.Add("jmp far [bx+8]", Raw(0xFF, 0x6F, 0x08), ExitReason.Mmio, Win + 8, 4, false, b, st);
            jmp.ExpectRip = 0x42;
            jmp.ExpectFields = Cache(StateField.Cs, 0x1000, 0x10000, 0xFFFF, SegmentAttributes.Code16);
            call = r.Add("call far [bx+8]", Raw(0xFF, 0x5F, 0x08), ExitReason.Mmio, Win + 8, 4, false, [.. b, (4, 0x0200)], st);
            call.ExpectRip = 0x42;
            call.ExpectFields = [(4, 0x01FC, All), .. Cache(StateField.Cs, 0x1000, 0x10000, 0xFFFF, SegmentAttributes.Code16)];
            W("mov dword [bx+0xc], 0x00010000 (past CS's 64 KiB)", 0xC, 0x1_0000);
            W("mov dword [bx+0x10], 0x1000", 0x10, 0x1000);
            far = r.Add("o32 jmp far [bx+0xc] (offset past CS's limit: #GP(0))", Raw(0x66, 0xFF, 0x6F, 0x0C), ExitReason.Mmio, Win + 0xC, 6, false, b, st);
            // LGDT (24-bit base), SMSW, LMSW turning PE on.
            W("mov dword [bx+0x14], limit 0x27, base 15:0", 0x14, 0x27 | 0x3456UL << 16);
            W("mov dword [bx+0x18], base 31:16", 0x18, 0xFF12);
            r.Add("lgdt [bx+0x14]", Raw(0x0F, 0x01, 0x57, 0x14), ExitReason.Mmio, Win + 0x14, 6, false, b, st).ExpectFields =
                [(StateField.GdtrBase, 0x12_3456, All), (StateField.GdtrLimit, 0x27, M16)];
            r.Add("smsw [bx+0x1c]", Raw(0x0F, 0x01, 0x67, 0x1C), ExitReason.Mmio, Win + 0x1C, 2, true, b, st);
            r.Add("mov [bx+0x1e], ss", Raw(0x8C, 0x57, 0x1E), ExitReason.Mmio, Win + 0x1E, 2, true, b, st);
            r.Add("mov eax, [bx+0x1c] (MSW, SS)", a => a.mov(eax, __dword_ptr[bx + 0x1C]), ExitReason.Mmio, Win + 0x1C, 4, false, b, st,
                expect: GuestCpuState.Cr0Et | 0x8000UL << 16);
            W("mov dword [bx+0x20], 1 (PE)", 0x20, 1);
            r.Add("lmsw [bx+0x20] (PE on)", Raw(0x0F, 0x01, 0x77, 0x20), ExitReason.Mmio, Win + 0x20, 2, false, b, st).ExpectFields =
                [(StateField.Cr0, GuestCpuState.Cr0Et | GuestCpuState.Cr0Pe, All)];
            sldt = r.Add("sldt [bx+0x24] (real mode: #UD)", Raw(0x0F, 0x00, 0x47, 0x24), ExitReason.Mmio, Win + 0x24, 2, true, b, st);
            ltr = r.Add("ltr [bx+0x20] (real mode: #UD)", Raw(0x0F, 0x00, 0x5F, 0x20), ExitReason.Mmio, Win + 0x20, 2, false, b, st);
            r.Add("mov eax, [bx+0x24] (SLDT stored nothing)", a => a.mov(eax, __dword_ptr[bx + 0x24]), ExitReason.Mmio, Win + 0x24, 4, false, b, st, expect: 0).ExpectFields =
                [(Field(StateField.Tr, StateField.Attributes), SegmentAttributes.TypeBusyTss16 | SegmentAttributes.P, 0xFFF), (Field(StateField.Ldtr, StateField.Attributes), 0, 0xFFF)];
        });
        Run(sys);
        Assert.Equal(new[] { Fault(far!, 13, 0), Fault(sldt!, 6, null), Fault(ltr!, 6, null) }, Faults(sys));
        var m = sys.Kernel.Memory;
        Assert.Equal(call!.Rip + (ulong)call.Length, m.ReadU16(data + 0x1FC));   // IP at SS:SP - 4
        Assert.Equal(0xF000UL, m.ReadU16(data + 0x1FE));                         // the old CS above it
    }

    /// <summary>
    /// Real mode decodes 16-bit code whatever CS's cached attributes say (hot/Exit/ExitPipeline.cs, the exit's mode from
    /// CR0.PE: CodeBitness ignores D without PE): with CS's cache holding a 32-bit code segment's attributes (D=1, as
    /// left by a switch out of protected mode without a 16-bit far jump), 8B 07 is <c>mov ax, [bx]</c> (2 bytes at DS:BX),
    /// not <c>mov eax, [edi]</c>.
    /// </summary>
    [Fact]
    public void Real_mode_decodes_16_bit_code_even_when_cs_cached_attributes_say_32_bit()
    {
        using var sys = Boot(16, l => GuestCpuState.RealMode(0xF000, 0, 0x8000, 0x100), l => l.Code, (r, l) =>
        {
            (ulong, ulong)[] st = [.. Real(l), .. Seg(StateField.Cs, 0xF000, l.Code, 0xFFFF, SegmentAttributes.Code32)];
            r.Add("mov dword [bx], 0x5678 (CS attributes 16-bit)", a => a.mov(__dword_ptr[bx], 0x5678), ExitReason.Mmio, Win, 4, true, [(3, TestDeviceWindow)], Real(l));
            r.Add("mov ax, [bx] (8B 07; CS attributes D=1)", Raw(0x8B, 0x07), ExitReason.Mmio, Win, 2, false, [(3, TestDeviceWindow), (7, 0x40), (0, 0)], st,
                expect: 0x5678);
        });
        Run(sys);
        Assert.Empty(Faults(sys));
        Assert.Equal(0x5678UL, sys.Kernel.State.Gpr(0, 0) & 0xFFFF_FFFF);
    }

    // ---- the MOV SS interrupt shadow ------------------------------------------------------------

    /// <summary>
    /// The interrupt shadow after MOV SS and LSS (SDM vol. 3 §6.8.3): with the device's IRQ pending and IF set, the kernel
    /// injects nothing at the entry after the SS load (the interruptibility field reads blocking by MOV SS) and delivers
    /// the IRQ after the next instruction; a MOV DS in the same place takes it at once. With TF set, MOV SS raises no #DB
    /// and the instruction after it traps (the delayed trap), RIP past that instruction.
    /// </summary>
    [Fact]
    public void Mov_ss_and_lss_hold_interrupts_and_the_single_step_trap_for_one_instruction()
    {
        Step? afterSs = null, afterLss = null, movDs = null, tfSs = null, tfNext = null;
        const ulong Tf = 1UL << 8;
        using var sys = Boot(32, Protected32, _ => 0, (r, l) =>
        {
            (int, ulong)[] b = [(3, Dev)];
            (ulong Field, ulong Value, ulong Mask)[] shadow = [(StateField.Interruptibility, StateField.BlockingByMovSs, All)];
            (ulong Field, ulong Value, ulong Mask)[] none = [(StateField.Interruptibility, 0, All)];
            Step Doorbell(string t)
            {
                var d = r.Add(t, a => a.mov(__dword_ptr[ebx + 0x1C], 1), ExitReason.Mmio, Dev + 0x1C, 4, true, b, Ring0);
                d.ClearIf = true;   // the IRQ it raises stays pending in the IRR
                return d;
            }
            r.Add("mov dword [ebx+0x1000], 0x20 (a flat data selector)", a => a.mov(__dword_ptr[ebx + 0x1000], Gdt.Data), ExitReason.Mmio, Win, 4, true, b, Ring0);
            Doorbell("mov dword [ebx+0x1c], 1 (doorbell, IF clear)");
            var ss = r.Add("mov ss, [ebx+0x1000] (IF set, the IRQ pending)", Raw(0x8E, 0x93, 0x00, 0x10, 0x00, 0x00), ExitReason.Mmio, Win, 2, false, b, Ring0);
            ss.SetIf = true;
            ss.ExpectFields = shadow;
            afterSs = r.Add("mov eax, [ebx+0x20] (IRQ count: the instruction after MOV SS)", a => a.mov(eax, __dword_ptr[ebx + 0x20]), ExitReason.Mmio, Dev + 0x20, 4, false, b, Ring0, expect: 1);
            afterSs.SetIf = true;
            afterSs.ExpectFields = none;
            // LSS likewise.
            r.Add("mov dword [ebx+0x1004], 0x20 (LSS selector)", a => a.mov(__dword_ptr[ebx + 0x1004], Gdt.Data), ExitReason.Mmio, Win + 4, 4, true, b, Ring0);
            Doorbell("mov dword [ebx+0x1c], 1 (second doorbell)");
            var lss = r.Add("lss esp, [ebx+0x1000] (IF set, the IRQ pending)", Raw(0x0F, 0xB2, 0xA3, 0x00, 0x10, 0x00, 0x00), ExitReason.Mmio, Win, 6, false, b, Ring0);
            lss.SetIf = true;
            lss.ExpectFields = [(4, Gdt.Data, All), .. shadow];
            afterLss = r.Add("mov eax, [ebx+0x20] (after LSS)", a => a.mov(eax, __dword_ptr[ebx + 0x20]), ExitReason.Mmio, Dev + 0x20, 4, false, b, Ring0, expect: 2);
            afterLss.SetIf = true;
            // No shadow for another segment register: the IRQ comes right after MOV DS.
            Doorbell("mov dword [ebx+0x1c], 1 (third doorbell)");
            movDs = r.Add("mov ds, [ebx+0x1000] (no shadow)", Raw(0x8E, 0x9B, 0x00, 0x10, 0x00, 0x00), ExitReason.Mmio, Win, 2, false, b, Ring0);
            movDs.SetIf = true;
            movDs.ExpectFields = none;
            r.Add("mov eax, [ebx+0x20] (after MOV DS)", a => a.mov(eax, __dword_ptr[ebx + 0x20]), ExitReason.Mmio, Dev + 0x20, 4, false, b, Ring0, expect: 3).ClearIf = true;
            // TF: MOV SS's own trap is held; the next instruction traps.
            (ulong, ulong)[] tf = [.. Ring0, (StateField.Rflags, 0x2 | Tf)];
            tfSs = r.Add("mov ss, [ebx+0x1000] (TF)", Raw(0x8E, 0x93, 0x00, 0x10, 0x00, 0x00), ExitReason.Mmio, Win, 2, false, b, tf);
            tfNext = r.Add("mov eax, [ebx+0x1000] (TF, after MOV SS)", a => a.mov(eax, __dword_ptr[ebx + 0x1000]), ExitReason.Mmio, Win, 4, false, b, tf);
            r.Add("mov ds, [ebx+0x1000] (TF, not SS: traps)", Raw(0x8E, 0x9B, 0x00, 0x10, 0x00, 0x00), ExitReason.Mmio, Win, 2, false, b, tf);
        });
        Run(sys);
        byte irq = (byte)new VmScenario().IrqVector;
        Assert.Equal(new[] { (afterSs!.Text, irq), (afterLss!.Text, irq), (movDs!.Text, irq) }, sys.Replay!.Interrupts);
        var traps = Faults(sys);
        Assert.Equal(2, traps.Length);
        Assert.Equal((tfNext!.Text, (byte)1, (uint?)null, tfNext.Next), traps[0]);   // the delayed trap, after the next instruction
        Assert.DoesNotContain(traps, t => t.Step == tfSs!.Text);
        Assert.Equal(2, sys.Kernel.Stats.SingleStepTraps);   // the delayed one and the MOV DS's; none for MOV SS
    }
}

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
/// Operands are written to the device by the steps before; each assertion names a rule of Kernel.System.cs or
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
}

using Copra.Abi;
using Copra.Hot.Guest;
using Copra.Hot.State;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Kernel.Backends;

/// <summary>The system-state forms and segment loads of the replay guest (<see cref="WorkloadSpec.SystemFamilies"/>).</summary>
public sealed partial class WorkloadBuilder
{
    /// <summary>The GDT the system steps load with LGDT (guest RAM): the six of <see cref="Gdt"/>, then the descriptors below.</summary>
    public ulong SysGdt => _l.Data + 0xA00;
    /// <summary>The LDT that LLDT loads (guest RAM).</summary>
    public ulong SysLdt => _l.Data + 0xB00;
    /// <summary>The TSS that LTR loads (guest RAM).</summary>
    public ulong SysTss => _l.Data + 0xB80;
    public const ushort SelFsData = 0x30, SelAbsent = 0x38, SelLdt = 0x40, SelTss = 0x50, SelCode = 0x60, SelGate = 0x70;
    public const ushort SysGdtLimit = 0x77;
    /// <summary>The base of descriptor <see cref="SelFsData"/> (what MOV FS leaves in FS.base).</summary>
    public const uint FsDataBase = 0x1234_5000;
    /// <summary>IDTR as SIDT must store it (set through the state before the step).</summary>
    public const ulong IdtBase = 0xFFFF_8000_DEAD_0000;
    /// <summary>The far JMP's target (32-bit offset) and the far CALL's (64-bit).</summary>
    public const ulong FarJmpTarget = 0x0040_1000, FarCallTarget = 0x0000_2345_6789_A000;

    /// <summary>
    /// Every system form with the device on the memory side: LGDT of a new GDT (10 bytes from the device) and SGDT back,
    /// SIDT, MOV FS from a descriptor whose accessed bit is clear (set in RAM by the load), MOV GS of a not-present one
    /// (#NP, GS kept), MOV m16, FS, SMSW, LLDT/SLDT, LTR/STR (the TSS marked busy in RAM), far JMP m16:32 to a second
    /// 64-bit code segment, far CALL m16:64 back (its frame popped to the device: return RIP and the old CS), a far JMP
    /// to a call gate (#GP(sel), CS kept) and an LGDT of a non-canonical base (#GP(0), GDTR kept). Each value stored is
    /// read back from the device, each load checked in the state.
    /// </summary>
    void SystemFamilies(ReplayProgram p, ulong x)
    {
        const ulong Rsp = 4, M16 = 0xFFFF, All = ulong.MaxValue;
        var mem = _gb.Memory;
        ReadOnlySpan<ulong> flat = Gdt.Descriptors;
        for (int i = 0; i < flat.Length; i++) mem.WriteU64(SysGdt + (ulong)i * 8, flat[i]);
        ushort dataNotAccessed = (ushort)(SegmentAttributes.Data & ~1);
        mem.WriteU64(SysGdt + SelFsData, SegmentAttributes.Descriptor(FsDataBase, 0xFFFFF, dataNotAccessed));
        mem.WriteU64(SysGdt + SelAbsent, SegmentAttributes.Descriptor(0, 0xFFFFF, (ushort)(dataNotAccessed & ~SegmentAttributes.P)));
        // Long-mode system descriptors are 16 bytes: base 63:32 and a zero type field in the upper half.
        mem.WriteU64(SysGdt + SelLdt, SegmentAttributes.Descriptor((uint)SysLdt, 0x17, SegmentAttributes.TypeLdt | SegmentAttributes.P));
        mem.WriteU64(SysGdt + SelLdt + 8, SysLdt >> 32);
        mem.WriteU64(SysGdt + SelTss, SegmentAttributes.Descriptor((uint)SysTss, 0x67, SegmentAttributes.TypeAvailableTss | SegmentAttributes.P));
        mem.WriteU64(SysGdt + SelTss + 8, SysTss >> 32);
        mem.WriteU64(SysGdt + SelCode, SegmentAttributes.Descriptor(0, 0xFFFFF, (ushort)(SegmentAttributes.Code64 & ~1)));
        mem.WriteU64(SysGdt + SelGate, SegmentAttributes.Descriptor(0, 0, 0xC | SegmentAttributes.P));   // a 64-bit call gate

        (int, ulong)[] B(params (int, ulong)[] more) => [(6, x), .. more];
        Action<Assembler> Raw(params byte[] b) => a => a.db(b);
        ulong gdtImage = SysGdtLimit | SysGdt << 16;

        Mem(p, "mov [rsi], rax (GDTR image: limit, base 47:0)", a => a.mov(__qword_ptr[rsi], rax), x, 8, true, B((0, gdtImage)));
        Mem(p, "mov word [rsi+8], imm (GDTR base 63:48)", a => a.mov(__word_ptr[rsi + 8], (int)(SysGdt >> 48)), x + 8, 2, true, B());
        Expect(Mem(p, "lgdt [rsi]", Raw(0x0F, 0x01, 0x16), x, 10, false, B()),
            (StateField.GdtrBase, SysGdt, All), (StateField.GdtrLimit, SysGdtLimit, M16));
        Mem(p, "sgdt [rsi+0x10]", Raw(0x0F, 0x01, 0x46, 0x10), x + 0x10, 10, true, B());
        Mem(p, "mov rax, [rsi+0x10] (after SGDT)", a => a.mov(rax, __qword_ptr[rsi + 0x10]), x + 0x10, 8, false, B(), expect: gdtImage);
        var sidt = Mem(p, "sidt [rsi+0x20]", Raw(0x0F, 0x01, 0x4E, 0x20), x + 0x20, 10, true, B());
        sidt.PresetFields = [(StateField.IdtrBase, IdtBase), (StateField.IdtrLimit, 0xFFF)];
        Mem(p, "mov rax, [rsi+0x20] (after SIDT)", a => a.mov(rax, __qword_ptr[rsi + 0x20]), x + 0x20, 8, false, B(), expect: 0xFFF | IdtBase << 16);
        Mem(p, "movzx eax, word [rsi+0x28] (SIDT base 63:48)", a => a.movzx(eax, __word_ptr[rsi + 0x28]), x + 0x28, 2, false, B(), expect: IdtBase >> 48, mask: M16);

        // MOV FS, m16: the descriptor's accessed bit is clear in RAM; the load sets it and caches the 32-bit base.
        Mem(p, "mov word [rsi+0x30], 0x30", a => a.mov(__word_ptr[rsi + 0x30], (int)SelFsData), x + 0x30, 2, true, B());
        Expect(Mem(p, "mov fs, [rsi+0x30]", Raw(0x8E, 0x66, 0x30), x + 0x30, 2, false, B()),
            (StateField.Seg(StateField.Fs, StateField.Selector), SelFsData, M16), (StateField.Seg(StateField.Fs, StateField.Base), FsDataBase, All),
            (StateField.Seg(StateField.Fs, StateField.Limit), 0xFFFF_FFFF, All), (StateField.Seg(StateField.Fs, StateField.Attributes), SegmentAttributes.Data, 0xFFF));
        Mem(p, "mov word [rsi+0x32], 0x38 (not present)", a => a.mov(__word_ptr[rsi + 0x32], (int)SelAbsent), x + 0x32, 2, true, B());
        Mem(p, "mov gs, [rsi+0x32] (#NP(0x38))", Raw(0x8E, 0x6E, 0x32), x + 0x32, 2, false, B());
        Expect(Mem(p, "mov [rsi+0x34], fs", Raw(0x8C, 0x66, 0x34), x + 0x34, 2, true, B()),
            (StateField.Seg(StateField.Gs, StateField.Selector), Gdt.Data, M16));   // the #NP left GS as it was
        Mem(p, "movzx eax, word [rsi+0x34] (after MOV m16, FS)", a => a.movzx(eax, __word_ptr[rsi + 0x34]), x + 0x34, 2, false, B(), expect: SelFsData, mask: M16);
        Mem(p, "smsw [rsi+0x38]", Raw(0x0F, 0x01, 0x66, 0x38), x + 0x38, 2, true, B());
        Mem(p, "movzx eax, word [rsi+0x38] (after SMSW)", a => a.movzx(eax, __word_ptr[rsi + 0x38]), x + 0x38, 2, false, B(),
            expect: (GuestCpuState.Cr0Pe | GuestCpuState.Cr0Mp | GuestCpuState.Cr0Et | GuestCpuState.Cr0Ne) & M16, mask: M16);

        // LLDT / SLDT, LTR / STR (LTR marks the TSS busy in the GDT).
        Mem(p, "mov word [rsi+0x3c], 0x40", a => a.mov(__word_ptr[rsi + 0x3C], (int)SelLdt), x + 0x3C, 2, true, B());
        Expect(Mem(p, "lldt [rsi+0x3c]", Raw(0x0F, 0x00, 0x56, 0x3C), x + 0x3C, 2, false, B()),
            (StateField.Seg(StateField.Ldtr, StateField.Selector), SelLdt, M16), (StateField.Seg(StateField.Ldtr, StateField.Base), SysLdt, All),
            (StateField.Seg(StateField.Ldtr, StateField.Limit), 0x17, All), (StateField.Seg(StateField.Ldtr, StateField.Attributes), 0x82, 0xFFF));
        Mem(p, "sldt [rsi+0x3e]", Raw(0x0F, 0x00, 0x46, 0x3E), x + 0x3E, 2, true, B());
        Mem(p, "movzx eax, word [rsi+0x3e] (after SLDT)", a => a.movzx(eax, __word_ptr[rsi + 0x3E]), x + 0x3E, 2, false, B(), expect: SelLdt, mask: M16);
        Mem(p, "mov word [rsi+0x40], 0x50", a => a.mov(__word_ptr[rsi + 0x40], (int)SelTss), x + 0x40, 2, true, B());
        Expect(Mem(p, "ltr [rsi+0x40]", Raw(0x0F, 0x00, 0x5E, 0x40), x + 0x40, 2, false, B()),
            (StateField.Seg(StateField.Tr, StateField.Selector), SelTss, M16), (StateField.Seg(StateField.Tr, StateField.Base), SysTss, All),
            (StateField.Seg(StateField.Tr, StateField.Attributes), SegmentAttributes.TypeBusyTss | SegmentAttributes.P, 0xFFF));
        Mem(p, "str [rsi+0x42]", Raw(0x0F, 0x00, 0x4E, 0x42), x + 0x42, 2, true, B());
        Mem(p, "movzx eax, word [rsi+0x42] (after STR)", a => a.movzx(eax, __word_ptr[rsi + 0x42]), x + 0x42, 2, false, B(), expect: SelTss, mask: M16);

        // Far JMP m16:32 (6 bytes from the device) to the second code segment; far CALL m16:64 (10) back to the first.
        Mem(p, "mov [rsi+0x50], rax (m16:32 pointer)", a => a.mov(__qword_ptr[rsi + 0x50], rax), x + 0x50, 8, true, B((0, FarJmpTarget | (ulong)SelCode << 32)));
        var jmp = Expect(Mem(p, "jmp far [rsi+0x50] (m16:32)", Raw(0xFF, 0x6E, 0x50), x + 0x50, 6, false, B()),
            (StateField.Seg(StateField.Cs, StateField.Selector), SelCode, M16), (StateField.Seg(StateField.Cs, StateField.Attributes), SegmentAttributes.Code64, 0xFFF));
        jmp.ExpectRip = FarJmpTarget;
        Mem(p, "mov [rsi+0x60], rax (m16:64 offset)", a => a.mov(__qword_ptr[rsi + 0x60], rax), x + 0x60, 8, true, B((0, FarCallTarget)));
        Mem(p, "mov word [rsi+0x68], 0x08 (m16:64 selector)", a => a.mov(__word_ptr[rsi + 0x68], (int)Gdt.Code64), x + 0x68, 2, true, B());
        ulong s = StackSlot;
        var call = Expect(Mem(p, "call far [rsi+0x60] (m16:64)", Raw(0x48, 0xFF, 0x5E, 0x60), x + 0x60, 10, false, B((4, s))),
            (Rsp, s - 16, All), (StateField.Seg(StateField.Cs, StateField.Selector), Gdt.Code64, M16));
        call.ExpectRip = FarCallTarget;
        Expect(Mem(p, "pop qword [rsi+0x70] (the return RIP)", a => a.pop(__qword_ptr[rsi + 0x70]), x + 0x70, 8, true, B()), (Rsp, s - 8, All));
        Mem(p, "mov rax, [rsi+0x70] (after far CALL)", a => a.mov(rax, __qword_ptr[rsi + 0x70]), x + 0x70, 8, false, B(), expect: call.Rip + (ulong)call.Length);
        Expect(Mem(p, "pop qword [rsi+0x78] (the CS pushed)", a => a.pop(__qword_ptr[rsi + 0x78]), x + 0x78, 8, true, B()), (Rsp, s, All));
        Mem(p, "mov rax, [rsi+0x78] (after far CALL)", a => a.mov(rax, __qword_ptr[rsi + 0x78]), x + 0x78, 8, false, B(), expect: SelCode);

        // LFS r32, m16:32: FS from the selector (as MOV FS did), EAX = the offset zero-extended into RAX.
        Mem(p, "mov [rsi+0xa0], rax (m16:32 for LFS)", a => a.mov(__qword_ptr[rsi + 0xA0], rax), x + 0xA0, 8, true, B((0, 0xCAFE_F00DUL | (ulong)SelFsData << 32)));
        var lfs = Expect(Mem(p, "lfs eax, [rsi+0xa0]", Raw(0x0F, 0xB4, 0x86, 0xA0, 0x00, 0x00, 0x00), x + 0xA0, 6, false, B((0, All))),
            (0, 0xCAFE_F00D, All), (StateField.Seg(StateField.Fs, StateField.Selector), SelFsData, M16), (StateField.Seg(StateField.Fs, StateField.Base), FsDataBase, All));
        lfs.PresetFields = [(StateField.Seg(StateField.Fs, StateField.Selector), Gdt.Data), (StateField.Seg(StateField.Fs, StateField.Base), 0)];   // FS flat again first

                // Faults: nothing of the instruction is committed.
        Mem(p, "mov [rsi+0x80], rax (a pointer to the call gate)", a => a.mov(__qword_ptr[rsi + 0x80], rax), x + 0x80, 8, true, B((0, FarJmpTarget | (ulong)SelGate << 32)));
        Mem(p, "jmp far [rsi+0x80] (call gate: #GP(0x70))", Raw(0xFF, 0xAE, 0x80, 0x00, 0x00, 0x00), x + 0x80, 6, false, B());
        Mem(p, "mov [rsi+0x90], rax (GDTR image with a non-canonical base)", a => a.mov(__qword_ptr[rsi + 0x90], rax), x + 0x90, 8, true, B((0, 0x10 | 0x8000_0000_0000UL << 16)));
        Mem(p, "mov word [rsi+0x98], 0", a => a.mov(__word_ptr[rsi + 0x98], 0), x + 0x98, 2, true, B());
        Mem(p, "lgdt [rsi+0x90] (non-canonical base: #GP(0))", Raw(0x0F, 0x01, 0x96, 0x90, 0x00, 0x00, 0x00), x + 0x90, 10, false, B());
        Expect(Mem(p, "mov eax, [rsi+0x90] (GDTR and CS kept by the faults)", a => a.mov(eax, __dword_ptr[rsi + 0x90]), x + 0x90, 4, false, B()),
            (StateField.GdtrBase, SysGdt, All), (StateField.GdtrLimit, SysGdtLimit, M16), (StateField.Seg(StateField.Cs, StateField.Selector), Gdt.Code64, M16));
    }
}

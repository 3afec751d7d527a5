using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Hot.State;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Kernel.Backends;

/// <summary>What a replay guest does: the scenario's "workload" section.</summary>
public sealed record WorkloadSpec
{
    /// <summary>Text vCPU 0 prints through the UART before anything else.</summary>
    public string Greeting { get; init; } = "Hello from the Copra guest!\n";
    /// <summary>Run the test-device driver sequence (ID, scratch, MOVZX/MOVSX, REP MOVS, ALU, doorbell + IRQ).</summary>
    public bool DeviceDriver { get; init; } = true;
    /// <summary>Touch a port and an MMIO address nobody registered (forwarded, or re-injected).</summary>
    public bool Unregistered { get; init; } = true;
    /// <summary>Loop body mix: entries from read, write, write_imm, read_zx, read_sx, alu, port_out, port_in, movs, stos, cpuid,
    /// lock_xadd (LOCK XADD of 1 on the test device's ticker, the same register from every vCPU: a held compare-and-write),
    /// push_pop (PUSH qword [rsi] then POP qword [rsi]: the window through the guest's stack and back).</summary>
    public IReadOnlyList<string> Mix { get; init; } = ["read", "write", "write_imm", "read_zx", "port_out"];
    /// <summary>"sequential" or "random" offsets into the data window.</summary>
    public string Pattern { get; init; } = "sequential";
    /// <summary>
    /// Hostile forms on vCPU 0 (fault injection): a 4-byte read that runs past the end of the test
    /// device's range (the guest must get #GP), and an exiting instruction that straddles into a
    /// not-present code page (the guest must get #PF for that page).
    /// </summary>
    public bool HostileForms { get; init; }
    /// <summary>
    /// On vCPU 0, one instruction of every emulated family against the test device's window (ADC/SBB, INC/DEC, NEG/NOT,
    /// XADD, CMPXCHG, shifts/rotates/SHLD, BTS/BTR/BTC with a register offset past the operand, IMUL/MUL/DIV and #DE,
    /// SETcc/CMOVcc, LODS/SCAS/CMPS, a REP LODS longer than one exit's bound, MOVNTI, and the wide and locked forms of
    /// <see cref="WorkloadBuilder"/>.WideFamilies: SSE moves, CMPXCHG16B, MOVDIRI, MOVDIR64B, LOCK on a device and on RAM).
    /// </summary>
    public bool EmulatedFamilies { get; init; }
    /// <summary>On vCPU 0, the stack and branch forms against the test device (<see cref="WorkloadBuilder"/>.StackFamilies):
    /// PUSH m, POP m, CALL m and JMP m, 8- and 2-byte, and their faults (a non-canonical target, a stack on an unmapped page).</summary>
    public bool StackFamilies { get; init; }
    /// <summary>On vCPU 0, the x87/MMX/FXSAVE state forms against the test device (<see cref="WorkloadBuilder"/>.X87Families):
    /// FNSTCW, FNSTSW, MMX MOVQ both ways (the TOP/tag transition), FXSAVE/FXSAVE64/FXRSTOR/FXRSTOR64, and their faults.</summary>
    public bool X87Families { get; init; }
    /// <summary>Loop iterations per vCPU (the run's exit count grows with it).</summary>
    public long Iterations { get; init; } = 64;
}

/// <summary>Where things are in a replay VM's memory and on its bus.</summary>
public sealed record VmLayout(ulong MemBase, ulong MemLength, ulong UartPort, ulong DeviceBase)
{
    public ulong Tables => MemBase;                      // 512 KiB of page-table pages
    public ulong Gdt => MemBase + 0x80000;
    public ulong Code => MemBase + 0x100000;             // 4 KiB pages
    public ulong Data => MemBase + 0x200000;             // 2 MiB pages from here
    public ulong StackTop(int vcpu) => MemBase + MemLength - 0x1000 - (ulong)vcpu * 0x10000;
    public const ulong HostScratch = Exit.ModelledHost.ScratchBase;
    public const ushort PostPort = 0x80;
}

/// <summary>
/// Builds a replay guest into guest memory: 4-level page tables (4 KiB pages for the low 2 MiB of
/// the VM, 2 MiB pages above, 4 KiB pages for the device ranges), the GDT, one program per vCPU
/// assembled with Iced, and the long-mode registers each vCPU starts with.
/// </summary>
public sealed partial class WorkloadBuilder
{
    const int TestDeviceRegsChecksum = Copra.User.Programs.TestDeviceRegs.ChecksumBytes;

    readonly GuestBuilder _gb;
    readonly VmLayout _l;
    ulong _rip;

    public WorkloadBuilder(GuestMemory mem, VmLayout layout)
    {
        if ((layout.MemBase & 0x1F_FFFF) != 0 || layout.MemLength < 0x40_0000 || (layout.MemLength & 0x1F_FFFF) != 0)
            throw new ArgumentException("VM memory must be 2 MiB aligned and at least 4 MiB");
        _gb = new GuestBuilder(mem);
        _l = layout;
        var pt = _gb.PageTables(PagingKind.Level4, layout.Tables, 0x80000);
        pt.Map(layout.MemBase, layout.MemBase, 0x200000, PageSize.Size4K, writable: true, executable: true);
        pt.Map(layout.MemBase + 0x200000, layout.MemBase + 0x200000, layout.MemLength - 0x200000, PageSize.Size2M, writable: true, executable: false);
        pt.Map(layout.DeviceBase, layout.DeviceBase, 0x2000, PageSize.Size4K, writable: true, executable: false);
        pt.Map(VmLayout.HostScratch, VmLayout.HostScratch, 0x1000, PageSize.Size4K, writable: true, executable: false);
        _gb.WriteGdt(layout.Gdt);
        Tables = pt;
        Cr3 = pt.Cr3;
        _rip = layout.Code;
    }

    public ulong Cr3 { get; }
    /// <summary>The guest's page tables (fault injection corrupts entries through it).</summary>
    public PageTableBuilder Tables { get; }
    public GuestMemory Memory => _gb.Memory;

    public GuestCpuState InitialState(ulong rip, int vcpu) => GuestCpuState.LongMode(Cr3, _l.Gdt, rip, _l.StackTop(vcpu));

    /// <summary>Builds vCPU <paramref name="vcpu"/>'s program.</summary>
    public ReplayProgram Build(WorkloadSpec w, int vcpu)
    {
        var p = new ReplayProgram();
        _rip = (_rip + 0xFFF) & ~0xFFFUL;   // each vCPU's code on its own pages (fault injection corrupts one vCPU's)
        ulong dev = _l.DeviceBase;
        if (vcpu == 0 && _l.UartPort != 0)
        {
            ushort thr = (ushort)_l.UartPort, lsr = (ushort)(_l.UartPort + 5);
            foreach (char c in w.Greeting)
            {
                var poll = Emit(p, StepKind.Poll, $"in al, dx (LSR)", a => a.@in(al, dx), a => { a.test(al, 0x20); }, jzBack: true);
                Port(poll, lsr, 1, write: false); poll.Presets = [(2, lsr)]; poll.PollMask = 0x20; poll.PollExpect = 0x20;
                var o = Emit(p, StepKind.Access, $"out dx, al ('{Printable(c)}')", a => a.@out(dx, al));
                Port(o, thr, 1, write: true); o.Presets = [(2, thr), (0, c)];
            }
        }
        if (vcpu == 0 && w.DeviceDriver && dev != 0) DeviceDriver(p, dev);
        if (vcpu == 0 && w.Unregistered) Unregistered(p);
        if (vcpu == 0 && w.HostileForms && dev != 0) HostileForms(p, dev);
        if (vcpu == 0 && w.EmulatedFamilies && dev != 0) EmulatedFamilies(p, dev + 0x1800);
        if (vcpu == 0 && w.StackFamilies && dev != 0) StackFamilies(p, dev + 0x1E00);
        if (vcpu == 0 && w.X87Families && dev != 0) X87Families(p, dev + 0x1200);

        p.LoopStart = p.Steps.Count;
        foreach (var kind in w.Mix) MixStep(p, kind, dev, w.Pattern == "random");
        p.LoopEnd = p.Steps.Count;
        p.Iterations = Math.Max(1, w.Iterations);
        if (vcpu == 0)
        {
            var cpuid = Emit(p, StepKind.Cpuid, "cpuid", a => a.cpuid());
            cpuid.Reason = ExitReason.Cpuid; cpuid.Presets = [(0, 0), (1, 0)]; cpuid.ExpectRax = 0xD;
        }
        var halt = Emit(p, StepKind.Halt, "cli; hlt", a => a.hlt());
        halt.Reason = ExitReason.Hlt; halt.ClearIf = true;
        return p;
    }

    static string Printable(char c) => c == '\n' ? "\\n" : c.ToString();

    void DeviceDriver(ReplayProgram p, ulong dev)
    {
        Mem(p, "mov eax, [rbx] (ID)", a => a.mov(eax, __dword_ptr[rbx]), dev, 4, false, [(3, dev)], expect: 0xC0B2_A001, mask: 0xFFFF_FFFF);
        Mem(p, "mov dword [rbx+8], 0x89abcdef", a => a.mov(__dword_ptr[rbx + 8], unchecked((int)0x89ABCDEF)), dev + 8, 4, true, [(3, dev)]);
        Mem(p, "movzx eax, word [rbx+8]", a => a.movzx(eax, __word_ptr[rbx + 8]), dev + 8, 2, false, [(3, dev), (0, ulong.MaxValue)], expect: 0xCDEF);
        Mem(p, "movsx rax, byte [rbx+8]", a => a.movsx(rax, __byte_ptr[rbx + 8]), dev + 8, 1, false, [(3, dev)], expect: 0xFFFF_FFFF_FFFF_FFEF);
        Mem(p, "mov [rbx+0x10], rcx", a => a.mov(__qword_ptr[rbx + 0x10], rcx), dev + 0x10, 8, true, [(3, dev), (1, 0x0123_4567_89AB_CDEF)]);
        Mem(p, "mov rax, [rbx+0x10]", a => a.mov(rax, __qword_ptr[rbx + 0x10]), dev + 0x10, 8, false, [(3, dev)], expect: 0x0123_4567_89AB_CDEF);
        Mem(p, "or dword [rbx+8], 0x1000", a => a.or(__dword_ptr[rbx + 8], 0x1000), dev + 8, 4, false, [(3, dev)]);
        Mem(p, "mov eax, [rbx+8] (after OR)", a => a.mov(eax, __dword_ptr[rbx + 8]), dev + 8, 4, false, [(3, dev)], expect: 0x89AB_DDEF, mask: 0xFFFF_FFFF);
        // 64 bytes of a pattern into the data window with REP MOVSD, then the device's checksum of it.
        ulong src = _l.Data;
        uint sum = 0;
        for (int i = 0; i < 64; i++) { byte b = (byte)(i * 7 + 3); _gb.Memory.WriteU8(src + (ulong)i, b); sum += b; }
        var movs = Emit(p, StepKind.Access, "rep movsd (64 bytes into the window)", a => a.rep.movsd());
        movs.Reason = ExitReason.Mmio; movs.Gpa = dev + 0x1000; movs.Size = 4; movs.Flags = ExitFlags.Write | ExitFlags.String | ExitFlags.Rep;
        movs.Presets = [(6, src), (7, dev + 0x1000), (1, 16)];
        Mem(p, "mov eax, [rbx+0x24] (checksum)", a => a.mov(eax, __dword_ptr[rbx + 0x24]), dev + 0x24, 4, false, [(3, dev)], expect: sum, mask: 0xFFFF_FFFF);
        // Doorbell: the device raises its IRQ; the guest sleeps in HLT until it arrives, then polls STATUS.
        Mem(p, "mov dword [rbx+0x1c], 1 (doorbell)", a => a.mov(__dword_ptr[rbx + 0x1C], 1), dev + 0x1C, 4, true, [(3, dev)]);
        var wait = Emit(p, StepKind.WaitIrq, "sti; hlt (wait for the IRQ)", a => a.hlt());
        wait.Reason = ExitReason.Hlt; wait.SetIf = true;
        var poll = Emit(p, StepKind.Poll, "mov eax, [rbx+0x18] (STATUS)", a => a.mov(eax, __dword_ptr[rbx + 0x18]), a => a.test(eax, 1), jzBack: true);
        poll.Reason = ExitReason.Mmio; poll.Gpa = dev + 0x18; poll.Size = 4; poll.Presets = [(3, dev)]; poll.PollMask = 1; poll.PollExpect = 1;
        Mem(p, "mov eax, [rbx+0x20] (IRQ count)", a => a.mov(eax, __dword_ptr[rbx + 0x20]), dev + 0x20, 4, false, [(3, dev)], expect: 1, mask: 0xFFFF_FFFF);
    }

    void Unregistered(ReplayProgram p)
    {
        var o = Emit(p, StepKind.Access, "out 0x80, al (POST code, host)", a => a.@out(0x80, al));
        Port(o, VmLayout.PostPort, 1, write: true); o.Presets = [(0, 0x42)];
        Mem(p, "mov eax, [rdx] (host scratch)", a => a.mov(eax, __dword_ptr[rdx]), VmLayout.HostScratch, 4, false, [(2, VmLayout.HostScratch)]);
    }

    /// <summary>Linear addresses of code pages made not-present by <see cref="HostileForms"/>.</summary>
    public List<ulong> UnmappedCodePages { get; } = [];

    void HostileForms(ReplayProgram p, ulong dev)
    {
        // Runs 2 bytes past the device's 8 KiB range: a straddle the kernel must refuse with #GP.
        ulong end = dev + Copra.User.Programs.TestDeviceRegs.RangeSize;
        Mem(p, "mov eax, [rsi] (runs past the device's range)", a => a.mov(eax, __dword_ptr[rsi]), end - 2, 4, false, [(6, end - 2)]);
        // A 6-byte instruction whose last 3 bytes are on the next page, which is then made not-present.
        ulong page = (_rip + 0xFFF) & ~0xFFFUL;
        _rip = page - 3;
        var s = Mem(p, "mov eax, [rsi+0x100] (straddles into a not-present page)", a => a.mov(eax, __dword_ptr[rsi + 0x100]), dev + 0x1100, 4, false, [(6, dev + 0x1000)]);
        if (s.Length <= 3) throw new InvalidOperationException("the straddling instruction must cross the page");
        ulong pte = Tables.EntryAddress(page, 1);
        Memory.WriteU64(pte, Memory.ReadU64(pte) & ~1UL);
        UnmappedCodePages.Add(page);
        _rip = page + 0x1000;   // the rest of the program skips the hole (the guest's own jmp over it)
    }

    /// <summary>Each step's expected RAX is the architectural result, worked by hand from the previous steps.</summary>
    void EmulatedFamilies(ReplayProgram p, ulong w)
    {
        (int, ulong)[] B(params (int, ulong)[] more) => [(3, w), .. more];
        const ulong M32 = 0xFFFF_FFFF;
        Mem(p, "mov dword [rbx], 5", a => a.mov(__dword_ptr[rbx], 5), w, 4, true, B());
        Mem(p, "mov dword [rbx+4], 0", a => a.mov(__dword_ptr[rbx + 4], 0), w + 4, 4, true, B());
        Mem(p, "inc dword [rbx]", a => a.inc(__dword_ptr[rbx]), w, 4, false, B());                       // 6
        Mem(p, "lock dec dword [rbx]", a => a.@lock.dec(__dword_ptr[rbx]), w, 4, false, B());            // 5
        Mem(p, "neg dword [rbx]", a => a.neg(__dword_ptr[rbx]), w, 4, false, B());                       // -5, CF=1
        Mem(p, "not dword [rbx]", a => a.not(__dword_ptr[rbx]), w, 4, false, B());                       // 4, CF still 1
        Mem(p, "adc dword [rbx], 1", a => a.adc(__dword_ptr[rbx], 1), w, 4, false, B());                 // 6, CF=0
        Mem(p, "sbb dword [rbx], 1", a => a.sbb(__dword_ptr[rbx], 1), w, 4, false, B());                 // 5
        Mem(p, "mov eax, [rbx] (after ADC/SBB)", a => a.mov(eax, __dword_ptr[rbx]), w, 4, false, B(), expect: 5, mask: M32);
        Mem(p, "xadd [rbx], eax", a => a.xadd(__dword_ptr[rbx], eax), w, 4, false, B((0, 10)), expect: 5, mask: M32); // mem 15
        Mem(p, "lock cmpxchg [rbx], ecx (match)", a => a.@lock.cmpxchg(__dword_ptr[rbx], ecx), w, 4, false, B((0, 15), (1, 0x77)), expect: 15, mask: M32);
        Mem(p, "cmpxchg [rbx], ecx (mismatch)", a => a.cmpxchg(__dword_ptr[rbx], ecx), w, 4, false, B((0, 1), (1, 0x99)), expect: 0x77, mask: M32);
        Mem(p, "shl dword [rbx], 4", a => a.shl(__dword_ptr[rbx], 4), w, 4, false, B());                 // 0x770
        Mem(p, "ror dword [rbx], cl", a => a.ror(__dword_ptr[rbx], cl), w, 4, false, B((1, 4)));          // 0x77
        Mem(p, "shld [rbx], eax, 8", a => a.shld(__dword_ptr[rbx], eax, 8), w, 4, false, B((0, 0xAB00_0000))); // 0x77AB
        Mem(p, "mov eax, [rbx] (after shifts)", a => a.mov(eax, __dword_ptr[rbx]), w, 4, false, B(), expect: 0x77AB, mask: M32);
        Mem(p, "bts [rbx], eax (bit 33: the next dword)", a => a.bts(__dword_ptr[rbx], eax), w + 4, 4, false, B((0, 33)));
        Mem(p, "mov eax, [rbx+4] (after BTS)", a => a.mov(eax, __dword_ptr[rbx + 4]), w + 4, 4, false, B(), expect: 2, mask: M32);
        Mem(p, "btr dword [rbx+4], 1", a => a.btr(__dword_ptr[rbx + 4], 1), w + 4, 4, false, B());
        Mem(p, "btc dword [rbx+4], 31", a => a.btc(__dword_ptr[rbx + 4], 31), w + 4, 4, false, B());
        Mem(p, "mov eax, [rbx+4] (after BTR/BTC)", a => a.mov(eax, __dword_ptr[rbx + 4]), w + 4, 4, false, B(), expect: 0x8000_0000, mask: M32);
        Mem(p, "imul eax, [rbx], 3", a => a.imul(eax, __dword_ptr[rbx], 3), w, 4, false, B(), expect: 0x77AB * 3, mask: M32);
        Mem(p, "mul dword [rbx]", a => a.mul(__dword_ptr[rbx]), w, 4, false, B((0, 0x10000), (2, 0)), expect: 0x77AB_0000, mask: M32);
        Mem(p, "div dword [rbx]", a => a.div(__dword_ptr[rbx]), w, 4, false, B((0, 0x77AB * 7 + 3), (2, 0)), expect: 7, mask: M32);
        Mem(p, "cmp dword [rbx], 0x77ab", a => a.cmp(__dword_ptr[rbx], 0x77AB), w, 4, false, B());       // ZF=1
        Mem(p, "sete byte [rbx+4]", a => a.sete(__byte_ptr[rbx + 4]), w + 4, 1, true, B());             // 0x80000001
        Mem(p, "cmovne eax, [rbx] (not taken: upper half cleared)", a => a.cmovne(eax, __dword_ptr[rbx]), w, 4, false, B((0, 0xFFFF_FFFF_0000_1234)), expect: 0x1234);
        Mem(p, "cmove eax, [rbx+4] (taken)", a => a.cmove(eax, __dword_ptr[rbx + 4]), w + 4, 4, false, B(), expect: 0x8000_0001);
        Mem(p, "lodsd", a => a.lodsd(), w, 4, false, [(6, w)], expect: 0x77AB, mask: M32);
        Mem(p, "scasd", a => a.scasd(), w, 4, false, [(7, w), (0, 0x77AB)]);                            // ZF=1
        Mem(p, "setne byte [rbx+4]", a => a.setne(__byte_ptr[rbx + 4]), w + 4, 1, true, B());
        Mem(p, "mov eax, [rbx+4] (after SETNE)", a => a.mov(eax, __dword_ptr[rbx + 4]), w + 4, 4, false, B(), expect: 0x8000_0000, mask: M32);
        var rep = Mem(p, "rep lodsb (300 elements: more than one exit runs)", a => a.rep.lodsb(), w + 0x200, 1, false, [(6, w + 0x200), (1, 300), (0, 0xFF)], expect: 0, mask: 0xFF);
        rep.Flags |= ExitFlags.String | ExitFlags.Rep;
        Mem(p, "movnti [rbx], eax", a => a.movnti(__dword_ptr[rbx], eax), w, 4, true, B((0, 0xCAFE)));
        Mem(p, "mov eax, [rbx] (after MOVNTI)", a => a.mov(eax, __dword_ptr[rbx]), w, 4, false, B(), expect: 0xCAFE, mask: M32);
        Mem(p, "mov dword [rbx+4], 0", a => a.mov(__dword_ptr[rbx + 4], 0), w + 4, 4, true, B());
        Mem(p, "div dword [rbx+4] (by zero: #DE)", a => a.div(__dword_ptr[rbx + 4]), w + 4, 4, false, B((0, 1), (2, 0)));
        // CMPS: two reads per element, the rSI side then the ES:rDI side (both on the device).
        Expect(Mem(p, "repe cmpsb (0xfe vs 0: stops after one)", a => a.repe.cmpsb(), w, 1, false, [(6, w), (7, w + 4), (1, 2)]),
            (1, 1, M32), (6, w + 1, ulong.MaxValue), (7, w + 5, ulong.MaxValue), (StateField.Rflags, 0, ZfBit));
        Expect(Mem(p, "repe cmpsd (four equal dwords)", a => a.repe.cmpsd(), w + 0x200, 4, false, [(6, w + 0x200), (7, w + 0x280), (1, 4)]),
            (1, 0, M32), (6, w + 0x210, ulong.MaxValue), (7, w + 0x290, ulong.MaxValue), (StateField.Rflags, ZfBit, ZfBit));
        MoreFamilies(p, w + 0x20);
        WideFamilies(p, w);
    }

    /// <summary>The rest of the narrow families: SAR, SHR, RCL, RCR, ROL, SHRD, BT, SETC, IDIV, one- and two-operand IMUL,
    /// CMPXCHG8B and REPNE SCAS, each result worked by hand from the previous steps.</summary>
    void MoreFamilies(ReplayProgram p, ulong x)
    {
        const ulong M32 = 0xFFFF_FFFF;
        (int, ulong)[] B(params (int, ulong)[] more) => [(3, x), .. more];
        Mem(p, "mov dword [rbx], 0x80000010", a => a.mov(__dword_ptr[rbx], unchecked((int)0x8000_0010)), x, 4, true, B());
        Mem(p, "sar dword [rbx], 4", a => a.sar(__dword_ptr[rbx], 4), x, 4, false, B());                  // 0xf8000001
        Mem(p, "shr dword [rbx], 1", a => a.shr(__dword_ptr[rbx], 1), x, 4, false, B());                  // 0x7c000000, CF=1
        Mem(p, "rcl dword [rbx], 1", a => a.rcl(__dword_ptr[rbx], 1), x, 4, false, B());                  // 0xf8000001, CF=0
        Mem(p, "rcr dword [rbx], 1", a => a.rcr(__dword_ptr[rbx], 1), x, 4, false, B());                  // 0x7c000000, CF=1
        Mem(p, "rol dword [rbx], 8", a => a.rol(__dword_ptr[rbx], 8), x, 4, false, B());                  // 0x7c
        Mem(p, "mov eax, [rbx] (after SAR..ROL)", a => a.mov(eax, __dword_ptr[rbx]), x, 4, false, B(), expect: 0x7C, mask: M32);
        Mem(p, "shrd [rbx], ecx, 4", a => a.shrd(__dword_ptr[rbx], ecx, 4), x, 4, false, B((1, 0xA)));   // 0xa0000007
        Mem(p, "mov eax, [rbx] (after SHRD)", a => a.mov(eax, __dword_ptr[rbx]), x, 4, false, B(), expect: 0xA000_0007, mask: M32);
        Mem(p, "bt dword [rbx], 31", a => a.bt(__dword_ptr[rbx], 31), x, 4, false, B());                  // CF=1
        Mem(p, "setc byte [rbx+4]", a => a.setb(__byte_ptr[rbx + 4]), x + 4, 1, true, B());
        Mem(p, "mov eax, [rbx+4] (after SETC)", a => a.mov(eax, __dword_ptr[rbx + 4]), x + 4, 4, false, B(), expect: 1, mask: M32);
        Mem(p, "mov dword [rbx+8], -7", a => a.mov(__dword_ptr[rbx + 8], -7), x + 8, 4, true, B());
        Expect(Mem(p, "idiv dword [rbx+8] (-100 / -7)", a => a.idiv(__dword_ptr[rbx + 8]), x + 8, 4, false, B((0, 0xFFFF_FF9C), (2, M32)), expect: 14),
            (2, 0xFFFF_FFFE, ulong.MaxValue));
        Expect(Mem(p, "imul dword [rbx+8] (3 * -7)", a => a.imul(__dword_ptr[rbx + 8]), x + 8, 4, false, B((0, 3), (2, 0)), expect: 0xFFFF_FFEB),
            (2, M32, ulong.MaxValue));
        Expect(Mem(p, "imul ecx, [rbx+8] (5 * -7)", a => a.imul(ecx, __dword_ptr[rbx + 8]), x + 8, 4, false, B((1, 5))), (1, 0xFFFF_FFDD, ulong.MaxValue));
        Expect(Mem(p, "cmpxchg8b [rsi] (match)", a => a.cmpxchg8b(__qword_ptr[rsi]), x + 8, 8, false, [(6, x + 8), (0, 0xFFFF_FFF9), (2, 0), (3, 0x1234), (1, 0x5678)]),
            (StateField.Rflags, ZfBit, ZfBit));
        Mem(p, "mov rax, [rsi] (after CMPXCHG8B)", a => a.mov(rax, __qword_ptr[rsi]), x + 8, 8, false, [(6, x + 8)], expect: 0x0000_5678_0000_1234);
        Expect(Mem(p, "bsf eax, [rsi] (0x1234: bit 2)", a => a.bsf(eax, __dword_ptr[rsi]), x + 8, 4, false, [(6, x + 8), (0, ulong.MaxValue)], expect: 2),
            (StateField.Rflags, 0, ZfBit));
        Mem(p, "bsr rax, [rsi] (0x0000567800001234: bit 46)", a => a.bsr(rax, __qword_ptr[rsi]), x + 8, 8, false, [(6, x + 8)], expect: 46);
        Expect(Mem(p, "repne scasb (finds 0xa0 at the fourth byte)", a => a.repne.scasb(), x, 1, false, [(7, x), (0, 0xA0), (1, 16)]),
            (1, 12, ulong.MaxValue), (7, x + 4, ulong.MaxValue), (StateField.Rflags, ZfBit, ZfBit));
    }

    const ulong ZfBit = 1 << 6;

    static Step Expect(Step s, params (ulong Field, ulong Value, ulong Mask)[] fields) { s.ExpectFields = fields; return s; }

    static (ulong, ulong)[] Xmm(int n, UInt128 value) => [(StateField.Xmm(n, false), (ulong)value), (StateField.Xmm(n, true), (ulong)(value >> 64))];

    static (ulong, ulong, ulong)[] ExpectXmm(int n, UInt128 value) =>
        [(StateField.Xmm(n, false), (ulong)value, ulong.MaxValue), (StateField.Xmm(n, true), (ulong)(value >> 64), ulong.MaxValue)];

    /// <summary>
    /// The forms wider than 8 bytes, and LOCK: every SSE move (load and store, aligned and not, #GP when an aligned form
    /// is not), CMPXCHG16B (match, mismatch, misaligned), MOVDIRI, MOVDIR64B (RAM source to the device, misaligned),
    /// a locked ADD the device answers Mismatch once (its ticker moved on), XCHG on the device, and locked forms on RAM
    /// (CAS in one word, the bus lock across words).
    /// </summary>
    void WideFamilies(ReplayProgram p, ulong w)
    {
        const ulong M32 = 0xFFFF_FFFF;
        ulong dev = w - 0x1800;
        UInt128 v1 = new(0x1111_2222_3333_4444, 0x5555_6666_7777_8888), v2 = new(0x0102_0304_0506_0708, 0x090A_0B0C_0D0E_0F10);
        // Stores of XMM1, one 16-byte slot each, each read back through its high half.
        (string Name, Action<Assembler, AssemblerMemoryOperand> Insn)[] stores =
        [
            ("movups", (a, m) => a.movups(m, xmm1)), ("movupd", (a, m) => a.movupd(m, xmm1)), ("movdqu", (a, m) => a.movdqu(m, xmm1)),
            ("movaps", (a, m) => a.movaps(m, xmm1)), ("movapd", (a, m) => a.movapd(m, xmm1)), ("movdqa", (a, m) => a.movdqa(m, xmm1)),
            ("movntps", (a, m) => a.movntps(m, xmm1)), ("movntpd", (a, m) => a.movntpd(m, xmm1)), ("movntdq", (a, m) => a.movntdq(m, xmm1)),
        ];
        for (int i = 0; i < stores.Length; i++)
        {
            ulong slot = w + 0x80 + (ulong)i * 16;
            var st = stores[i];
            Mem(p, $"{st.Name} [rsi], xmm1", a => st.Insn(a, __xmmword_ptr[rsi]), slot, 16, true, [(6, slot)]).PresetFields = Xmm(1, v1 + (uint)i);
            Mem(p, $"mov rax, [rsi+8] (after {st.Name})", a => a.mov(rax, __qword_ptr[rsi + 8]), slot + 8, 8, false, [(6, slot)], expect: (ulong)(v1 >> 64));
            Mem(p, $"mov rax, [rsi] (after {st.Name})", a => a.mov(rax, __qword_ptr[rsi]), slot, 8, false, [(6, slot)], expect: (ulong)v1 + (uint)i);
        }
        // Loads of each slot back into XMM2..XMM7 (16-byte reads answered whole by the device).
        (string Name, Action<Assembler, AssemblerRegisterXMM, AssemblerMemoryOperand> Insn)[] loads =
        [
            ("movups", (a, x, m) => a.movups(x, m)), ("movupd", (a, x, m) => a.movupd(x, m)), ("movdqu", (a, x, m) => a.movdqu(x, m)),
            ("movaps", (a, x, m) => a.movaps(x, m)), ("movapd", (a, x, m) => a.movapd(x, m)), ("movdqa", (a, x, m) => a.movdqa(x, m)),
        ];
        AssemblerRegisterXMM[] xs = [xmm2, xmm3, xmm4, xmm5, xmm6, xmm7];
        for (int i = 0; i < loads.Length; i++)
        {
            ulong slot = w + 0x80 + (ulong)i * 16;
            var ld = loads[i];
            var x = xs[i];
            Expect(Mem(p, $"{ld.Name} xmm{i + 2}, [rsi]", a => ld.Insn(a, x, __xmmword_ptr[rsi]), slot, 16, false, [(6, slot)]), ExpectXmm(i + 2, v1 + (uint)i));
        }
        // Unaligned: fine for MOVUPS/MOVDQU, #GP(0) for MOVAPS, MOVDQA (load) and MOVNTDQ (store); nothing is written.
        Mem(p, "movdqu [rsi+1], xmm1 (unaligned: allowed)", a => a.movdqu(__xmmword_ptr[rsi + 1], xmm1), w + 0x181, 16, true, [(6, w + 0x180)]).PresetFields = Xmm(1, v2);
        Mem(p, "mov rax, [rsi+1] (after unaligned MOVDQU)", a => a.mov(rax, __qword_ptr[rsi + 1]), w + 0x181, 8, false, [(6, w + 0x180)], expect: (ulong)v2);
        Expect(Mem(p, "movups xmm8, [rsi+1] (unaligned load)", a => a.movups(xmm8, __xmmword_ptr[rsi + 1]), w + 0x181, 16, false, [(6, w + 0x180)]), ExpectXmm(8, v2));
        Mem(p, "movaps xmm9, [rsi+8] (unaligned: #GP)", a => a.movaps(xmm9, __xmmword_ptr[rsi + 8]), w + 0x88, 16, false, [(6, w + 0x80)]);
        Mem(p, "movdqa xmm9, [rsi+4] (unaligned: #GP)", a => a.movdqa(xmm9, __xmmword_ptr[rsi + 4]), w + 0x84, 16, false, [(6, w + 0x80)]);
        Mem(p, "movntdq [rsi+8], xmm1 (unaligned: #GP)", a => a.movntdq(__xmmword_ptr[rsi + 8], xmm1), w + 0x88, 16, true, [(6, w + 0x80)]);

        // CMPXCHG16B at a 16-byte aligned device address: a match stores RCX:RBX, a mismatch loads RDX:RAX.
        ulong c16 = w + 0x40;
        Mem(p, "movdqa [rsi], xmm1 (seed for CMPXCHG16B)", a => a.movdqa(__xmmword_ptr[rsi], xmm1), c16, 16, true, [(6, c16)]).PresetFields = Xmm(1, v1);
        Expect(Mem(p, "lock cmpxchg16b [rsi] (match)", a => a.@lock.cmpxchg16b(__xmmword_ptr[rsi]), c16, 16, false,
            [(6, c16), (0, (ulong)v1), (2, (ulong)(v1 >> 64)), (3, (ulong)v2), (1, (ulong)(v2 >> 64))]), (StateField.Rflags, ZfBit, ZfBit));
        Mem(p, "mov rax, [rsi+8] (after CMPXCHG16B)", a => a.mov(rax, __qword_ptr[rsi + 8]), c16 + 8, 8, false, [(6, c16)], expect: (ulong)(v2 >> 64));
        Expect(Mem(p, "cmpxchg16b [rsi] (mismatch: RDX:RAX loaded)", a => a.cmpxchg16b(__xmmword_ptr[rsi]), c16, 16, false,
            [(6, c16), (0, 1), (2, 2), (3, 3), (1, 4)]), (0, (ulong)v2, ulong.MaxValue), (2, (ulong)(v2 >> 64), ulong.MaxValue), (StateField.Rflags, 0, ZfBit));
        Mem(p, "cmpxchg16b [rsi+8] (unaligned: #GP)", a => a.cmpxchg16b(__xmmword_ptr[rsi + 8]), c16 + 8, 16, false, [(6, c16)]);

        // MOVDIRI, and MOVDIR64B from a RAM source to the device (one 64-byte write), then misaligned (#GP).
        Mem(p, "movdiri [rsi], eax", a => a.movdiri(__dword_ptr[rsi], eax), w + 0x1C0, 4, true, [(6, w + 0x1C0), (0, 0xD1D1_0001)]);
        Mem(p, "mov eax, [rsi] (after MOVDIRI)", a => a.mov(eax, __dword_ptr[rsi]), w + 0x1C0, 4, false, [(6, w + 0x1C0)], expect: 0xD1D1_0001, mask: M32);
        ulong src = _l.Data + 0x500, dst = w + 0x140;
        for (int i = 0; i < 64; i++) _gb.Memory.WriteU8(src + (ulong)i, (byte)(0xA0 + i));
        Mem(p, "movdir64b rdi, [rsi] (RAM to the device)", a => a.movdir64b(rdi, __zmmword_ptr[rsi]), dst, 64, true, [(6, src), (7, dst)]);
        Mem(p, "mov rax, [rdi+0x38] (after MOVDIR64B)", a => a.mov(rax, __qword_ptr[rdi + 0x38]), dst + 0x38, 8, false, [(7, dst)], expect: 0xDFDE_DDDC_DBDA_D9D8);
        Mem(p, "movdir64b rdi, [rsi] (destination not 64-byte aligned: #GP)", a => a.movdir64b(rdi, __zmmword_ptr[rsi]), dst + 8, 64, true, [(6, src), (7, dst + 8)]);

        // LOCK against a device whose value moves on by itself: the locked ADD's write is answered Mismatch once
        // (the ticker advanced after the read), the kernel recomputes from the new value and writes again.
        ulong tick = dev + Copra.User.Programs.TestDeviceRegs.Ticker;
        Mem(p, "mov dword [rsi], 100 (ticker)", a => a.mov(__dword_ptr[rsi], 100), tick, 4, true, [(6, tick)]);
        Mem(p, "lock add dword [rsi], 1 (one retry)", a => a.@lock.add(__dword_ptr[rsi], 1), tick, 4, false, [(6, tick)]);
        Mem(p, "mov eax, [rsi] (ticker after the locked ADD)", a => a.mov(eax, __dword_ptr[rsi]), tick, 4, false, [(6, tick)], expect: 102, mask: M32);
        Mem(p, "xchg [rsi], eax (implicitly locked)", a => a.xchg(__dword_ptr[rsi], eax), w + 0x1C0, 4, false, [(6, w + 0x1C0), (0, 0x5555)], expect: 0xD1D1_0001, mask: M32);

        // LOCK on RAM (the operand resolves to guest RAM): CAS within one aligned word; across two words, the bus lock.
        ulong ram = _l.Data + 0x400;
        _gb.Memory.WriteU64(ram, 0x10);
        Mem(p, "lock inc dword [rsi] (RAM: CAS)", a => a.@lock.inc(__dword_ptr[rsi]), ram, 4, false, [(6, ram)]);
        Mem(p, "lock xadd [rsi+6], eax (RAM across two words: bus lock)", a => a.@lock.xadd(__dword_ptr[rsi + 6], eax), ram + 6, 4, false, [(6, ram), (0, 0x100)], expect: 0, mask: M32);
        Mem(p, "mov rax, [rsi] (RAM after both)", a => a.mov(rax, __qword_ptr[rsi]), ram, 8, false, [(6, ram)], expect: 0x0100_0000_0000_0011);
    }

    /// <summary>The stack seed: the qword at <see cref="StackSlot"/> that only a POP with rSP unchanged can see.</summary>
    public const ulong StackSeed = 0x5EED_0000_0000_5EED;
    /// <summary>Where the stack forms' rSP starts (guest RAM, in the data window).</summary>
    public ulong StackSlot => _l.Data + 0x800;
    /// <summary>An address no page table maps: a stack there is #PF.</summary>
    public const ulong UnmappedStack = 0x0000_7000_0000_0000;
    /// <summary>The branch target the CALL/JMP steps load from the device (any canonical address: the replay checks RIP).</summary>
    public const ulong BranchTarget = 0x0000_1234_5678_9000;

    /// <summary>
    /// PUSH m, POP m, CALL m and JMP m with the device on the memory side and the guest's stack (RAM) on the other; every
    /// value pushed comes back through a POP to the device and a read of it, so a wrong stack slot, width or rSP shows as a
    /// data mismatch. Then the faults: CALL to a non-canonical target (#GP(0)) and PUSH with rSP on an unmapped page
    /// (#PF), each followed by a POP that proves rSP was left as it was.
    /// </summary>
    void StackFamilies(ReplayProgram p, ulong x)
    {
        const ulong Rsp = 4, M16 = 0xFFFF;
        ulong s = StackSlot;
        _gb.Memory.WriteU64(s, StackSeed);
        (int, ulong)[] B(params (int, ulong)[] more) => [(6, x), .. more];
        Mem(p, "mov qword [rsi], 0x1234", a => a.mov(__qword_ptr[rsi], 0x1234), x, 8, true, B());
        Expect(Mem(p, "push qword [rsi]", a => a.push(__qword_ptr[rsi]), x, 8, false, B((4, s))), (Rsp, s - 8, ulong.MaxValue));
        Expect(Mem(p, "pop qword [rsi+8]", a => a.pop(__qword_ptr[rsi + 8]), x + 8, 8, true, B()), (Rsp, s, ulong.MaxValue));
        Mem(p, "mov rax, [rsi+8] (after PUSH/POP)", a => a.mov(rax, __qword_ptr[rsi + 8]), x + 8, 8, false, B(), expect: 0x1234);
        Expect(Mem(p, "push word [rsi] (66: two bytes)", a => a.push(__word_ptr[rsi]), x, 2, false, B((4, s))), (Rsp, s - 2, ulong.MaxValue));
        Expect(Mem(p, "pop word [rsi+0x18]", a => a.pop(__word_ptr[rsi + 0x18]), x + 0x18, 2, true, B()), (Rsp, s, ulong.MaxValue));
        Mem(p, "movzx eax, word [rsi+0x18] (after PUSH/POP word)", a => a.movzx(eax, __word_ptr[rsi + 0x18]), x + 0x18, 2, false, B(), expect: 0x1234, mask: M16);
        Mem(p, "mov [rsi], rax (branch target)", a => a.mov(__qword_ptr[rsi], rax), x, 8, true, B((0, BranchTarget)));
        var call = Expect(Mem(p, "call qword [rsi]", a => a.call(__qword_ptr[rsi]), x, 8, false, B((4, s))), (Rsp, s - 8, ulong.MaxValue));
        call.ExpectRip = BranchTarget;
        Expect(Mem(p, "pop qword [rsi+0x10] (the return address)", a => a.pop(__qword_ptr[rsi + 0x10]), x + 0x10, 8, true, B()), (Rsp, s, ulong.MaxValue));
        Mem(p, "mov rax, [rsi+0x10] (after CALL)", a => a.mov(rax, __qword_ptr[rsi + 0x10]), x + 0x10, 8, false, B(), expect: call.Rip + (ulong)call.Length);
        var jmp = Expect(Mem(p, "jmp qword [rsi]", a => a.jmp(__qword_ptr[rsi]), x, 8, false, B((4, s))), (Rsp, s, ulong.MaxValue));
        jmp.ExpectRip = BranchTarget;
        // Faults: nothing of the instruction is committed, so the POP that follows each finds the seed at the old rSP.
        Mem(p, "mov [rsi], rax (a non-canonical target)", a => a.mov(__qword_ptr[rsi], rax), x, 8, true, B((0, 0x8000_0000_0000_0000)));
        Mem(p, "call qword [rsi] (non-canonical target: #GP)", a => a.call(__qword_ptr[rsi]), x, 8, false, B((4, s)));
        Expect(Mem(p, "pop qword [rsi+0x20] (rSP untouched by the #GP)", a => a.pop(__qword_ptr[rsi + 0x20]), x + 0x20, 8, true, B()), (Rsp, s + 8, ulong.MaxValue));
        Mem(p, "mov rax, [rsi+0x20] (the seed)", a => a.mov(rax, __qword_ptr[rsi + 0x20]), x + 0x20, 8, false, B(), expect: StackSeed);
        // The faulting PUSH's operand is the ticker, which advances on every read: unchanged afterwards, no device saw it.
        ulong tick = x - 0x1E00 + Copra.User.Programs.TestDeviceRegs.Ticker;
        Mem(p, "mov dword [rdi], 500 (ticker)", a => a.mov(__dword_ptr[rdi], 500), tick, 4, true, [(7, tick)]);
        Mem(p, "push qword [rdi] (stack on an unmapped page: #PF)", a => a.push(__qword_ptr[rdi]), tick, 8, false, [(7, tick), (4, UnmappedStack)]);
        Mem(p, "mov eax, [rdi] (ticker: the faulted PUSH never read it)", a => a.mov(eax, __dword_ptr[rdi]), tick, 4, false, [(7, tick)], expect: 500, mask: 0xFFFF_FFFF);
        Expect(Mem(p, "pop qword [rsi+0x28] (rSP reset to the slot)", a => a.pop(__qword_ptr[rsi + 0x28]), x + 0x28, 8, true, B((4, s))), (Rsp, s + 8, ulong.MaxValue));
        Mem(p, "mov rax, [rsi+0x28] (the seed again)", a => a.mov(rax, __qword_ptr[rsi + 0x28]), x + 0x28, 8, false, B(), expect: StackSeed);
    }

    void MixStep(ReplayProgram p, string kind, ulong dev, bool random)
    {
        ulong win = dev + 0x1000 + (ulong)TestDeviceRegsChecksum;   // above the checksummed bytes
        Step s = kind switch
        {
            "read" => Mem(p, "mov eax, [rsi]", a => a.mov(eax, __dword_ptr[rsi]), win, 4, false, [(6, win)]),
            "write" => Mem(p, "mov [rsi], eax", a => a.mov(__dword_ptr[rsi], eax), win, 4, true, [(6, win), (0, 0x5A5A_0000)]),
            "write_imm" => Mem(p, "mov dword [rsi], imm", a => a.mov(__dword_ptr[rsi], 0x1234), win, 4, true, [(6, win)]),
            "read_zx" => Mem(p, "movzx eax, byte [rsi]", a => a.movzx(eax, __byte_ptr[rsi]), win, 1, false, [(6, win)]),
            "read_sx" => Mem(p, "movsx eax, word [rsi]", a => a.movsx(eax, __word_ptr[rsi]), win, 2, false, [(6, win)]),
            "alu" => Mem(p, "or dword [rsi], 1", a => a.or(__dword_ptr[rsi], 1), win, 4, false, [(6, win)]),
            "port_out" => PortStep(p, "out dx, al (UART scratch)", a => a.@out(dx, al), (ushort)(_l.UartPort + 7), true),
            "port_in" => PortStep(p, "in al, dx (UART LSR)", a => a.@in(al, dx), (ushort)(_l.UartPort + 5), false),
            "stos" => StringStep(p, "stosd", a => a.stosd(), win, [(7, win), (0, 0xA5A5_A5A5)], 7),
            "movs" => StringStep(p, "movsd", a => a.movsd(), win, [(6, _l.Data), (7, win)], 7),
            "cpuid" => CpuidStep(p),
            "push_pop" => PushPop(p, win, random),
            "sse" or "movdiri" or "movdir64b" or "cmps" or "cmpxchg16b" or "call_jmp" or "bsf_bsr" => KvmPathStep(p, kind, win, random),
            // Why: one fixed register for every vCPU and iteration (no Vary), so the vCPUs contend for the held device.
            // The ticker advances on every read, so each XADD's write is answered Mismatch once and redone from the moved
            // value: held (no other vCPU's access between its read and write), it returns an odd value (the ticker is even
            // between instructions); another vCPU's read in between makes one return an even value.
            "lock_xadd" => Mem(p, "lock xadd [rdi], eax (ticker, shared by every vCPU)", a => a.@lock.xadd(__dword_ptr[rdi], eax), dev + Copra.User.Programs.TestDeviceRegs.Ticker, 4, false,
                [(7, dev + Copra.User.Programs.TestDeviceRegs.Ticker), (0, 1)], expect: 1, mask: 1),
            _ => throw new ArgumentException($"unknown mix entry '{kind}'"),
        };
        if (s.Reason == ExitReason.Mmio && kind != "lock_xadd")
        {
            if (s.VaryReg < 0) s.VaryReg = 6;
            if (s.VaryStride == 0) { s.VaryStride = 4; s.VarySpan = 0xEF0; }   // an entry with an alignment sets its own
            s.VaryRandom = random;
        }
    }

    /// <summary>PUSH qword [rsi] (the window's qword onto the stack, RAM), then POP qword [rsi] (back): two exits; the POP
    /// is the returned step and the PUSH varies with it.</summary>
    Step PushPop(ReplayProgram p, ulong win, bool random)
    {
        var push = Mem(p, "push qword [rsi]", a => a.push(__qword_ptr[rsi]), win, 8, false, [(6, win)]);
        push.VaryReg = 6; push.VaryStride = 4; push.VarySpan = 0xEF0; push.VaryRandom = random;
        return Mem(p, "pop qword [rsi]", a => a.pop(__qword_ptr[rsi]), win, 8, true, [(6, win)]);
    }

    /// <summary>CPUID leaf 0: an exit the VMM answers through the run page (what <c>copra tune</c> loops on).</summary>
    Step CpuidStep(ReplayProgram p)
    {
        var s = Emit(p, StepKind.Cpuid, "cpuid (to the VMM)", a => a.cpuid());
        s.Reason = ExitReason.Cpuid; s.Presets = [(0, 0), (1, 0)]; s.ExpectRax = 0xD;
        return s;
    }

    Step PortStep(ReplayProgram p, string text, Action<Assembler> insn, ushort port, bool write)
    {
        var s = Emit(p, StepKind.Access, text, insn);
        Port(s, port, 1, write);
        s.Presets = [(2, port), (0, 0x55)];
        return s;
    }

    Step StringStep(ReplayProgram p, string text, Action<Assembler> insn, ulong gpa, (int, ulong)[] presets, int vary)
    {
        var s = Emit(p, StepKind.Access, text, insn);
        s.Reason = ExitReason.Mmio; s.Gpa = gpa; s.Size = 4; s.Flags = ExitFlags.Write | ExitFlags.String; s.Presets = presets; s.VaryReg = vary;
        return s;
    }

    Step Mem(ReplayProgram p, string text, Action<Assembler> insn, ulong gpa, byte size, bool write, (int, ulong)[] presets, ulong? expect = null, ulong mask = ulong.MaxValue)
    {
        var s = Emit(p, StepKind.Access, text, insn);
        s.Reason = ExitReason.Mmio; s.Gpa = gpa; s.Size = size; s.Flags = write ? ExitFlags.Write : 0; s.Presets = presets;
        s.ExpectRax = expect; s.ExpectMask = mask;
        return s;
    }

    static void Port(Step s, ushort port, byte size, bool write)
    {
        s.Reason = ExitReason.Io; s.Port = port; s.Size = size; s.Flags = write ? ExitFlags.Write : 0;
    }

    /// <summary>Assembles one exiting instruction (and its glue) at the next code address.</summary>
    Step Emit(ReplayProgram p, StepKind kind, string text, Action<Assembler> insn, Action<Assembler>? glue = null, bool jzBack = false)
    {
        var asm = new Assembler(64);
        var start = asm.CreateLabel();
        var after = asm.CreateLabel();
        asm.Label(ref start);
        insn(asm);
        asm.Label(ref after);
        glue?.Invoke(asm);
        if (jzBack) asm.jz(start);
        if (!jzBack && glue is null) asm.nop();   // a label needs an instruction after it
        var code = _gb.Assemble(_rip, _rip, asm);
        var s = new Step { Kind = kind, Rip = _rip, Length = (int)(code.LabelAddress(after) - _rip), Text = text };
        s.Next = s.Rip + (ulong)s.Length;
        _rip = code.End;
        if (_rip >= _l.Code + 0x100000) throw new InvalidOperationException("replay program does not fit in its 1 MiB of code");
        p.Steps.Add(s);
        return s;
    }
}

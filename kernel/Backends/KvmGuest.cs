using Copra.Hot.Guest;
using Copra.User.Programs;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Kernel.Backends;

/// <summary>
/// Where a KVM guest keeps what it learned, relative to its <see cref="VmLayout"/>: every value the
/// device driver reads back goes to a result slot in RAM (one 8-byte slot each), so a test or the run
/// command can check the device's registers as the guest saw them.
/// </summary>
public static class KvmGuestLayout
{
    public static ulong Idt(VmLayout l) => l.Gdt + 0x1000;
    /// <summary>The REP MOVS source pattern (64 bytes).</summary>
    public static ulong Pattern(VmLayout l) => l.Data;
    /// <summary>Where the guest copies the data window back to with REP MOVS (64 bytes).</summary>
    public static ulong CopyBack(VmLayout l) => l.Data + 0x100;
    public static ulong Results(VmLayout l, int vcpu) => l.Data + 0x1000 + (ulong)vcpu * 0x100;
    /// <summary>The guest's interrupt handler (one IDT per VM, so one handler) counts its invocations here (8 bytes).</summary>
    public static ulong IrqCounter(VmLayout l) => l.Data + 0x2000;
    public static ulong Greeting(VmLayout l) => l.Data + 0x3000;
    public static ulong CodeOf(VmLayout l, int vcpu) => l.Code + (ulong)vcpu * 0x8000;

    /// <summary>Result slots, in the order the driver fills them.</summary>
    public enum Slot
    {
        Id, MovzxScratch, MovsxScratch, Scratch64, ScratchAfterOr, Checksum, DeviceIrqCount, HandlerIrqCount, WindowDword15, Done,
    }

    public const int PatternBytes = 64;
    public static byte PatternByte(int i) => (byte)(i * 7 + 3);
    public static uint PatternChecksum() { uint s = 0; for (int i = 0; i < PatternBytes; i++) s += PatternByte(i); return s; }
    /// <summary>Written to <see cref="Slot.Done"/> when the program reached its final cli; hlt.</summary>
    public const ulong DoneMagic = 0xC0B2_D0E5;
}

/// <summary>
/// Builds real guest programs for the KVM backend into guest memory: the same page tables and GDT as
/// the replay workload (<see cref="WorkloadBuilder"/>), an IDT with a gate for the device's IRQ vector,
/// and per vCPU one straight-line program assembled with Iced. Its semantics are the replay workload's:
/// vCPU 0 greets through the UART (IN on LSR until THRE, then OUT), drives the test device (ID, scratch,
/// MOVZX/MOVSX, 64-bit scratch, OR, REP MOVSD into the data window, checksum, doorbell and HLT until the
/// IRQ, STATUS poll, IRQ count, REP MOVSD back out of the window), touches a port and an MMIO page nobody
/// registered; every vCPU then runs the loop mix; the program ends with cli; hlt. Here the guest's own
/// code does what the replay backend plays: branches, loop counters, the poll loops.
/// </summary>
public sealed class KvmGuestBuilder
{
    readonly GuestMemory _mem;
    readonly VmLayout _l;
    readonly WorkloadBuilder _wb;
    readonly byte _irqVector;
    readonly GuestBuilder _gb;

    public KvmGuestBuilder(GuestMemory mem, VmLayout layout, byte irqVector)
    {
        _mem = mem;
        _l = layout;
        _irqVector = irqVector;
        _wb = new WorkloadBuilder(mem, layout);   // page tables and GDT
        _gb = new GuestBuilder(mem);
        for (int i = 0; i < KvmGuestLayout.PatternBytes; i++) mem.WriteU8(KvmGuestLayout.Pattern(layout) + (ulong)i, KvmGuestLayout.PatternByte(i));
    }

    public ulong Cr3 => _wb.Cr3;
    public ulong IdtBase => KvmGuestLayout.Idt(_l);
    public const ushort IdtLimit = 256 * 16 - 1;

    /// <summary>Builds vCPU <paramref name="vcpu"/>'s program and its IRQ handler; returns the start state.</summary>
    public GuestCpuState Build(WorkloadSpec w, int vcpu)
    {
        ulong code = KvmGuestLayout.CodeOf(_l, vcpu);
        ulong results = KvmGuestLayout.Results(_l, vcpu);
        ulong dev = _l.DeviceBase;
        var a = new Assembler(64);
        var handler = a.CreateLabel();
        var end = a.CreateLabel();

        a.mov(r15, results);
        if (vcpu == 0 && _l.UartPort != 0) Greeting(a, w.Greeting);
        if (vcpu == 0 && w.DeviceDriver && dev != 0) Driver(a, dev, vcpu);
        if (vcpu == 0 && w.Unregistered)
        {
            a.mov(al, 0x42);
            a.@out((byte)VmLayout.PostPort, al);
            a.mov(rdx, VmLayout.HostScratch);
            a.mov(eax, __dword_ptr[rdx]);
        }
        Loop(a, w, dev);
        a.mov(rax, KvmGuestLayout.DoneMagic);
        a.mov(__qword_ptr[r15 + 8 * (int)KvmGuestLayout.Slot.Done], rax);
        a.Label(ref end);
        a.cli();
        a.hlt();
        a.jmp(end);

        // The IRQ handler: count, return (no APIC here, so no EOI).
        a.Label(ref handler);
        a.push(rax);
        a.mov(rax, KvmGuestLayout.IrqCounter(_l));
        a.inc(__qword_ptr[rax]);
        a.pop(rax);
        a.iretq();

        var asm = _gb.Assemble(code, code, a);
        if (asm.End > code + 0x8000) throw new InvalidOperationException("KVM guest program does not fit its 32 KiB");
        SetGate(_irqVector, asm.LabelAddress(handler));
        var s = _wb.InitialState(code, vcpu);
        return s with { IdtBase = IdtBase, IdtLimit = IdtLimit };
    }

    void Greeting(Assembler a, string text)
    {
        ulong at = KvmGuestLayout.Greeting(_l);
        var bytes = System.Text.Encoding.ASCII.GetBytes(text);
        _mem.Write(at, bytes);
        _mem.WriteU8(at + (ulong)bytes.Length, 0);
        ushort thr = (ushort)_l.UartPort, lsr = (ushort)(_l.UartPort + 5);
        var next = a.CreateLabel();
        var poll = a.CreateLabel();
        var done = a.CreateLabel();
        a.mov(rsi, at);
        a.Label(ref next);
        a.movzx(ecx, __byte_ptr[rsi]);
        a.test(ecx, ecx);
        a.jz(done);
        a.Label(ref poll);
        a.mov(edx, (uint)lsr);
        a.@in(al, dx);                 // LSR
        a.test(al, 0x20);              // THRE
        a.jz(poll);
        a.mov(edx, (uint)thr);
        a.mov(eax, ecx);
        a.@out(dx, al);                // THR
        a.inc(rsi);
        a.jmp(next);
        a.Label(ref done);
    }

    static void Save(Assembler a, KvmGuestLayout.Slot slot) => a.mov(__qword_ptr[r15 + 8 * (int)slot], rax);

    void Driver(Assembler a, ulong dev, int vcpu)
    {
        a.mov(rbx, dev);
        a.mov(rax, ulong.MaxValue);
        a.mov(eax, __dword_ptr[rbx + (int)TestDeviceRegs.Id]);
        Save(a, KvmGuestLayout.Slot.Id);
        a.mov(__dword_ptr[rbx + (int)TestDeviceRegs.Scratch], unchecked((int)0x89ABCDEF));
        a.mov(rax, ulong.MaxValue);
        a.movzx(eax, __word_ptr[rbx + (int)TestDeviceRegs.Scratch]);
        Save(a, KvmGuestLayout.Slot.MovzxScratch);
        a.movsx(rax, __byte_ptr[rbx + (int)TestDeviceRegs.Scratch]);
        Save(a, KvmGuestLayout.Slot.MovsxScratch);
        a.mov(rcx, 0x0123_4567_89AB_CDEFUL);
        a.mov(__qword_ptr[rbx + (int)TestDeviceRegs.Scratch64], rcx);
        a.xor(eax, eax);
        a.mov(rax, __qword_ptr[rbx + (int)TestDeviceRegs.Scratch64]);
        Save(a, KvmGuestLayout.Slot.Scratch64);
        a.or(__dword_ptr[rbx + (int)TestDeviceRegs.Scratch], 0x1000);
        a.mov(eax, __dword_ptr[rbx + (int)TestDeviceRegs.Scratch]);
        Save(a, KvmGuestLayout.Slot.ScratchAfterOr);

        // 64 bytes of the pattern into the data window (16 MMIO write exits), then the device's checksum.
        a.cld();
        a.mov(rsi, KvmGuestLayout.Pattern(_l));
        a.mov(rdi, dev + TestDeviceRegs.Window);
        a.mov(ecx, KvmGuestLayout.PatternBytes / 4);
        a.rep.movsd();
        a.mov(eax, __dword_ptr[rbx + (int)TestDeviceRegs.Checksum]);
        Save(a, KvmGuestLayout.Slot.Checksum);

        // Doorbell: the device raises its IRQ; sleep in HLT until the handler has run.
        var wait = a.CreateLabel();
        var woke = a.CreateLabel();
        var poll = a.CreateLabel();
        a.mov(__dword_ptr[rbx + (int)TestDeviceRegs.Doorbell], 1);
        a.mov(rdx, KvmGuestLayout.IrqCounter(_l));
        a.Label(ref wait);
        a.cli();
        a.cmp(__qword_ptr[rdx], 0);
        a.jne(woke);
        a.sti();
        a.hlt();
        a.jmp(wait);
        a.Label(ref woke);
        a.cli();
        a.Label(ref poll);
        a.mov(eax, __dword_ptr[rbx + (int)TestDeviceRegs.Status]);
        a.test(eax, (int)TestDeviceRegs.StatusReady);
        a.jz(poll);
        a.mov(eax, __dword_ptr[rbx + (int)TestDeviceRegs.IrqCount]);
        Save(a, KvmGuestLayout.Slot.DeviceIrqCount);
        a.mov(rax, __qword_ptr[rdx]);
        Save(a, KvmGuestLayout.Slot.HandlerIrqCount);

        // And back out of the window into RAM (16 MMIO read exits), plus one dword read directly.
        a.mov(rsi, dev + TestDeviceRegs.Window);
        a.mov(rdi, KvmGuestLayout.CopyBack(_l));
        a.mov(ecx, KvmGuestLayout.PatternBytes / 4);
        a.rep.movsd();
        a.mov(eax, __dword_ptr[rbx + (int)TestDeviceRegs.Window + 60]);
        Save(a, KvmGuestLayout.Slot.WindowDword15);
    }

    void Loop(Assembler a, WorkloadSpec w, ulong dev)
    {
        if (w.Mix.Count == 0) return;
        EmitAccessLoop(a, w.Mix, w.Iterations, w.Pattern == "random", dev + TestDeviceRegs.Window,
            (ushort)(_l.UartPort + 7), (ushort)(_l.UartPort + 5), KvmGuestLayout.Pattern(_l));
    }

    /// <summary>
    /// The access loop: <paramref name="iterations"/> times, each mix entry's access at window + offset, then the
    /// next offset. Both sides of kvmbench run exactly this code (the backend's guest and <see cref="Kvm.KvmBareLoop"/>),
    /// so they execute the same guest instructions per access: on kvm_pvm every ring-0 instruction is emulated, so a
    /// loop of different length would be compared, not the exit path. Uses r12-r14, rsi, rdi, eax/al, edx.
    /// </summary>
    /// <summary>
    /// The "families" entry: INC, DEC (locked), NEG, NOT, ADC, SBB, XADD, CMPXCHG (locked match, mismatch), SHL, ROR by CL,
    /// SHLD, BTS with a register offset past the dword, BTR, BTC, IMUL (three forms), MUL, DIV, CMP, SETcc, CMOVcc (taken
    /// and not), LODS, SCAS, MOVNTI, SAR, SHR, RCL, RCR, ROL, SHRD, BT, IDIV, CMPXCHG8B, BSF, BSR, REPNE SCASB, REP LODSB, REPE CMPSB, each on
    /// [rsi], [rsi+4] or [rsi+8] (the window's current dword and the two after it).
    /// </summary>
    static void EmitFamilies(Assembler a)
    {
        a.push(rbx); a.push(rcx); a.push(rdx); a.push(rdi); a.push(rsi);
        a.mov(__dword_ptr[rsi], 5); a.mov(__dword_ptr[rsi + 4], 0);
        a.inc(__dword_ptr[rsi]); a.@lock.dec(__dword_ptr[rsi]); a.neg(__dword_ptr[rsi]); a.not(__dword_ptr[rsi]);
        a.adc(__dword_ptr[rsi], 1); a.sbb(__dword_ptr[rsi], 1);
        a.mov(eax, 10); a.xadd(__dword_ptr[rsi], eax);
        a.mov(eax, __dword_ptr[rsi]); a.mov(ecx, 0x77); a.@lock.cmpxchg(__dword_ptr[rsi], ecx);
        a.mov(eax, 1); a.mov(ecx, 0x99); a.cmpxchg(__dword_ptr[rsi], ecx);
        a.shl(__dword_ptr[rsi], 4); a.mov(ecx, 4); a.ror(__dword_ptr[rsi], cl);
        a.mov(eax, 0xAB00_0000); a.shld(__dword_ptr[rsi], eax, 8);
        a.mov(eax, 33); a.bts(__dword_ptr[rsi], eax); a.btr(__dword_ptr[rsi + 4], 1); a.btc(__dword_ptr[rsi + 4], 31);
        a.imul(eax, __dword_ptr[rsi], 3);
        a.mov(eax, 0x10000); a.xor(edx, edx); a.mul(__dword_ptr[rsi]);
        a.mov(__dword_ptr[rsi + 8], 7); a.mov(eax, 100); a.xor(edx, edx); a.div(__dword_ptr[rsi + 8]);
        a.cmp(__dword_ptr[rsi], 0x77AB); a.sete(__byte_ptr[rsi + 4]);
        a.cmovne(eax, __dword_ptr[rsi]); a.cmove(eax, __dword_ptr[rsi + 4]);
        a.mov(rdi, rsi); a.lodsd(); a.scasd(); a.mov(rsi, rdi);
        a.setne(__byte_ptr[rsi + 4]); a.movnti(__dword_ptr[rsi], eax);
        a.sar(__dword_ptr[rsi], 4); a.shr(__dword_ptr[rsi], 1); a.rcl(__dword_ptr[rsi], 1); a.rcr(__dword_ptr[rsi], 1); a.rol(__dword_ptr[rsi], 8);
        a.mov(ecx, 0xA); a.shrd(__dword_ptr[rsi], ecx, 4);
        a.bt(__dword_ptr[rsi], 31); a.setb(__byte_ptr[rsi + 4]);
        a.mov(__dword_ptr[rsi + 8], -7); a.mov(eax, -100); a.cdq(); a.idiv(__dword_ptr[rsi + 8]);
        a.mov(eax, 3); a.imul(__dword_ptr[rsi + 8]); a.mov(ecx, 5); a.imul(ecx, __dword_ptr[rsi + 8]);
        a.mov(eax, __dword_ptr[rsi]); a.mov(edx, __dword_ptr[rsi + 4]); a.mov(ebx, 0x1234); a.mov(ecx, 0x5678); a.cmpxchg8b(__qword_ptr[rsi]);
        a.bsf(eax, __dword_ptr[rsi]); a.bsr(eax, __dword_ptr[rsi]);
        a.mov(rdi, rsi); a.mov(eax, 0xA0); a.mov(ecx, 4); a.repne.scasb();
        a.mov(rdi, rsi); a.mov(ecx, 3); a.rep.lodsb(); a.mov(rsi, rdi);
        a.lea(rdi, __[rsi + 4]); a.mov(ecx, 3); a.repe.cmpsb(); a.lea(rsi, __[rdi - 4 - 3]);
        a.pop(rsi); a.pop(rdi); a.pop(rdx); a.pop(rcx); a.pop(rbx);
    }

    public static void EmitAccessLoop(Assembler a, IReadOnlyList<string> mix, long iterations, bool random, ulong window,
        ushort outPort, ushort inPort, ulong movsSource)
    {
        var top = a.CreateLabel();
        var noWrap = a.CreateLabel();
        var rng = new Random(7);
        a.mov(r12, (ulong)Math.Max(1, iterations));
        a.xor(r13d, r13d);
        a.mov(r14, window);
        a.Label(ref top);
        a.lea(rsi, __[r14 + r13]);
        foreach (var kind in mix)
        {
            switch (kind)
            {
                case "read": a.mov(eax, __dword_ptr[rsi]); break;
                case "write": a.mov(eax, 0x5A5A_0000); a.mov(__dword_ptr[rsi], eax); break;
                case "write_imm": a.mov(__dword_ptr[rsi], 0x1234); break;
                case "read_zx": a.movzx(eax, __byte_ptr[rsi]); break;
                case "read_sx": a.movsx(eax, __word_ptr[rsi]); break;
                case "alu": a.or(__dword_ptr[rsi], 1); break;
                case "lock_xadd": a.mov(eax, 1); a.@lock.xadd(__dword_ptr[rsi], eax); break;
                case "push_pop": a.push(__qword_ptr[rsi]); a.pop(__qword_ptr[rsi]); break;
                // The forms issue 14 added, one entry each (the replay's MixStep builds the same instructions).
                case "sse": a.movdqu(__xmmword_ptr[rsi], xmm0); a.movdqu(xmm1, __xmmword_ptr[rsi]); break;
                case "movdiri": a.mov(eax, 0xD1D1_0001); a.movdiri(__dword_ptr[rsi], eax); break;
                case "movdir64b":
                    // Why: the destination must be 64-byte aligned (#GP otherwise); the source is the RAM pattern.
                    a.mov(rdi, rsi); a.and(rdi, -64); a.push(rsi); a.mov(rsi, movsSource); a.movdir64b(rdi, __zmmword_ptr[rsi]); a.pop(rsi); break;
                case "cmps": a.push(rsi); a.mov(rdi, rsi); a.cmpsb(); a.pop(rsi); break;
                case "cmpxchg16b":
                    a.push(rbx); a.push(rcx); a.mov(rdi, rsi); a.and(rdi, -16);
                    a.xor(eax, eax); a.xor(edx, edx); a.mov(ebx, 0x16); a.xor(ecx, ecx);
                    a.@lock.cmpxchg16b(__xmmword_ptr[rdi]); a.pop(rcx); a.pop(rbx); break;
                case "call_jmp":
                {
                    // CALL [rsi] to a RET, then JMP [rsi] to the next instruction: each target written to the window first.
                    var over = a.CreateLabel(); var callee = a.CreateLabel(); var after = a.CreateLabel();
                    a.jmp(over); a.Label(ref callee); a.ret(); a.Label(ref over);
                    a.lea(rax, __[callee]); a.mov(__qword_ptr[rsi], rax); a.call(__qword_ptr[rsi]);
                    a.lea(rax, __[after]); a.mov(__qword_ptr[rsi], rax); a.jmp(__qword_ptr[rsi]); a.Label(ref after);
                    a.nop();
                    break;
                }
                case "bsf_bsr": a.bsf(eax, __dword_ptr[rsi]); a.bsr(eax, __dword_ptr[rsi]); break;
                // Issue 14's narrow families against the device window, once each (tests/Kvm: KVM's emulator finishes them,
                // the kernel checks its decode against each exit). Registers the loop keeps (RBX, RCX, RDX, RDI) are saved.
                case "families": EmitFamilies(a); break;
                // Issue 14's SSE moves, stores then loads, on the window's 16-byte aligned slot (the aligned forms need it).
                case "vector":
                    a.push(rsi); a.and(rsi, -16);
                    a.movups(__xmmword_ptr[rsi], xmm0); a.movupd(__xmmword_ptr[rsi], xmm1); a.movaps(__xmmword_ptr[rsi], xmm2);
                    a.movapd(__xmmword_ptr[rsi], xmm3); a.movdqa(__xmmword_ptr[rsi], xmm4); a.movntps(__xmmword_ptr[rsi], xmm5);
                    a.movntpd(__xmmword_ptr[rsi], xmm6); a.movntdq(__xmmword_ptr[rsi], xmm7);
                    a.movups(xmm0, __xmmword_ptr[rsi]); a.movupd(xmm1, __xmmword_ptr[rsi]); a.movaps(xmm2, __xmmword_ptr[rsi]);
                    a.movapd(xmm3, __xmmword_ptr[rsi]); a.movdqa(xmm4, __xmmword_ptr[rsi]);
                    a.pop(rsi); break;
                // Why no exit here: KVM answers CPUID in its own kernel; the replay backend models it as an exit to the VMM.
                case "cpuid": a.push(rbx); a.push(rcx); a.push(rdx); a.xor(eax, eax); a.cpuid(); a.pop(rdx); a.pop(rcx); a.pop(rbx); break;
                case "port_out": a.mov(edx, (uint)outPort); a.mov(al, 0x55); a.@out(dx, al); break;
                case "port_in": a.mov(edx, (uint)inPort); a.@in(al, dx); break;
                case "stos": a.mov(rdi, rsi); a.mov(eax, 0xA5A5_A5A5); a.stosd(); break;
                case "movs":
                    a.push(rsi); a.mov(rdi, rsi); a.mov(rsi, movsSource); a.movsd(); a.pop(rsi); break;
                default: throw new ArgumentException($"unknown mix entry '{kind}'");
            }
        }
        // Next offset: sequential steps of 4 through 0xFF0 bytes, or a pseudo-random dword (xorshift in r13).
        if (random)
        {
            a.imul(r13d, r13d, 1103515245 & 0x7FFF_FFFF);
            a.add(r13d, 12345 + rng.Next(1, 7) * 4);
            a.and(r13d, 0xFFC);
            a.cmp(r13d, 0xFF0);
            a.jb(noWrap);
            a.xor(r13d, r13d);
        }
        else
        {
            a.add(r13d, 4);
            a.cmp(r13d, 0xFF0);
            a.jb(noWrap);
            a.xor(r13d, r13d);
        }
        a.Label(ref noWrap);
        a.dec(r12);
        a.jnz(top);
    }

    /// <summary>A 64-bit interrupt gate (present, DPL 0) through the 64-bit code selector.</summary>
    void SetGate(byte vector, ulong handler)
    {
        ulong g = IdtBase + vector * 16UL;
        ulong low = (handler & 0xFFFF) | (ulong)Gdt.Code64 << 16 | 0x8EUL << 40 | ((handler >> 16) & 0xFFFF) << 48;
        _mem.WriteU64(g, low);
        _mem.WriteU64(g + 8, handler >> 32);
    }
}

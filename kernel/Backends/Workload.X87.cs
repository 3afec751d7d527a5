using Copra.Abi;
using Copra.Hot.Guest;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Kernel.Backends;

public sealed partial class WorkloadBuilder
{
    /// <summary>The long-mode CR0 every replay vCPU starts with (GuestCpuState.LongMode).</summary>
    const ulong LongModeCr0 = GuestCpuState.Cr0Pe | GuestCpuState.Cr0Mp | GuestCpuState.Cr0Et | GuestCpuState.Cr0Ne | GuestCpuState.Cr0Wp | GuestCpuState.Cr0Pg;
    const ulong Cr0Em = 1UL << 2, Cr0Ts = 1UL << 3;

    /// <summary>Where <see cref="X87Families"/> saves an FXSAVE image in guest RAM: 48 bytes below a 4 KiB boundary, so
    /// one 64-byte piece crosses it.</summary>
    public ulong FxRamImage => _l.Data + 0xFD0;

    /// <summary>
    /// FNSTCW, FNSTSW, MMX MOVQ and FXSAVE/FXRSTOR(64) with the test device on the memory side (x is 16-byte aligned):
    /// each stored value read back through the device, each loaded value checked in the state store, the MMX transition
    /// (TOP to 0 renames the registers, every tag valid), both FXSAVE layouts, FXRSTOR's tag word rebuilt from the
    /// registers, and the faults: #UD (MMX with CR0.EM), #NM (CR0.TS), #MF (MMX with FSW.ES), #GP(0) for a misaligned
    /// image and for a reserved MXCSR bit, after each of which nothing was written or loaded.
    /// </summary>
    void X87Families(ReplayProgram p, ulong x)
    {
        const ulong M16 = 0xFFFF, Top = 0x3800;
        (int, ulong)[] B(params (int, ulong)[] more) => [(6, x), .. more];
        static (ulong, ulong) St(int n, ulong m, ulong e, out (ulong, ulong) exp) { exp = (StateField.St(n, true), e); return (StateField.St(n, false), m); }
        (ulong, ulong)[] Regs(Func<int, (ulong M, ulong E)> f)
        {
            var r = new List<(ulong, ulong)>();
            for (int n = 0; n < 8; n++) { var (m, e) = f(n); r.Add(St(n, m, e, out var ex)); r.Add(ex); }
            return [.. r];
        }

        // FNSTCW / FNSTSW: the word goes to the device.
        Mem(p, "fnstcw [rsi]", a => a.fnstcw(__word_ptr[rsi]), x, 2, true, B()).PresetFields = [(StateField.Fcw, 0x027F)];
        Mem(p, "movzx eax, word [rsi] (after FNSTCW)", a => a.movzx(eax, __word_ptr[rsi]), x, 2, false, B(), expect: 0x027F);
        Mem(p, "fnstsw [rsi+2]", a => a.fnstsw(__word_ptr[rsi + 2]), x + 2, 2, true, B()).PresetFields = [(StateField.Fsw, 0x3A41)];
        Mem(p, "movzx eax, word [rsi+2] (after FNSTSW)", a => a.movzx(eax, __word_ptr[rsi + 2]), x + 2, 2, false, B(), expect: 0x3A41);

        // MMX MOVQ store with TOP = 2: MM3 is physical R3 = ST(1); afterwards TOP = 0 (ST(3) is R3, ST(1) is R1 = old ST(7)).
        var mmx = Mem(p, "movq [rsi+8], mm3 (TOP = 2)", a => a.movq(__qword_ptr[rsi + 8], mm3), x + 8, 8, true, B());
        mmx.PresetFields = [(StateField.Fsw, 0x1000), (StateField.Ftw, 0xFFFF), .. Regs(n => (0xA000_0000_0000_0000UL | (uint)n, 0x4000UL + (uint)n))];
        Expect(mmx, (StateField.Fsw, 0, Top), (StateField.Ftw, 0, M16),
            (StateField.St(3, false), 0xA000_0000_0000_0001, ulong.MaxValue), (StateField.St(1, false), 0xA000_0000_0000_0007, ulong.MaxValue));
        Mem(p, "mov rax, [rsi+8] (after MOVQ store)", a => a.mov(rax, __qword_ptr[rsi + 8]), x + 8, 8, false, B(), expect: 0xA000_0000_0000_0001);
        var load = Mem(p, "movq mm5, [rsi+8]", a => a.movq(mm5, __qword_ptr[rsi + 8]), x + 8, 8, false, B());
        load.PresetFields = [(StateField.Ftw, 0xFFFF)];
        Expect(load, (StateField.St(5, false), 0xA000_0000_0000_0001, ulong.MaxValue), (StateField.St(5, true), 0xFFFF, M16), (StateField.Ftw, 0, M16));

        // Faults: nothing reaches the device (the canary at +0x10 stays), nothing changes.
        Mem(p, "mov qword [rsi+0x10], 0x7777 (canary)", a => a.mov(__qword_ptr[rsi + 0x10], 0x7777), x + 0x10, 8, true, B());
        Mem(p, "movq mm0, [rsi+0x10] (CR0.EM: #UD)", a => a.movq(mm0, __qword_ptr[rsi + 0x10]), x + 0x10, 8, false, B()).PresetFields = [(StateField.Cr0, LongModeCr0 | Cr0Em)];
        Mem(p, "fnstcw [rsi+0x10] (CR0.TS: #NM)", a => a.fnstcw(__word_ptr[rsi + 0x10]), x + 0x10, 2, true, B()).PresetFields = [(StateField.Cr0, LongModeCr0 | Cr0Ts)];
        var mf = Mem(p, "movq [rsi+0x10], mm0 (FSW.ES: #MF)", a => a.movq(__qword_ptr[rsi + 0x10], mm0), x + 0x10, 8, true, B());
        mf.PresetFields = [(StateField.Cr0, LongModeCr0), (StateField.Fsw, 0x0080)];
        Mem(p, "mov rax, [rsi+0x10] (the canary after #UD, #NM, #MF)", a => a.mov(rax, __qword_ptr[rsi + 0x10]), x + 0x10, 8, false, B(), expect: 0x7777);

        // FXSAVE64 of a known state; bytes 416.. are not the processor's to write (the canary stays).
        UInt128 x0 = new(0x0F0E_0D0C_0B0A_0908, 0x0706_0504_0302_0100), x15 = new(0xFFEE_DDCC_BBAA_9988, 0x7766_5544_3322_1100);
        Mem(p, "mov qword [rsi+0x1a0], 0x5a5a (canary past the image)", a => a.mov(__qword_ptr[rsi + 0x1A0], 0x5A5A), x + 0x1A0, 8, true, B());
        var save = Mem(p, "fxsave64 [rsi]", a => a.fxsave64(__[rsi]), x, 64, true, B());
        save.PresetFields =
        [
            (StateField.Fcw, 0x037F), (StateField.Fsw, 0), (StateField.Ftw, 0xFFF0), (StateField.Fop, 0x123),
            (StateField.Fip, 0x1122_3344_5566_7788), (StateField.Fdp, 0x99AA_BBCC_DDEE_FF00), (StateField.Fcs, 0x33), (StateField.Fds, 0x2B),
            (StateField.Mxcsr, 0x1FA0),
            .. Regs(n => n switch { 0 => (0x8000_0000_0000_0000UL, 0x3FFFUL), 1 => (0UL, 0UL), _ => (0x1234_0000_0000_0000UL | (uint)n, 0x100UL + (uint)n) }),
            .. Xmm(0, x0), .. Xmm(15, x15),
        ];
        (ulong Off, ulong Want, string What)[] image =
        [
            (0x00, 0x0123_0003_0000_037F, "FCW FSW abridged-FTW FOP"), (0x08, 0x1122_3344_5566_7788, "FIP (64)"), (0x10, 0x99AA_BBCC_DDEE_FF00, "FDP (64)"),
            (0x18, 0x0000_FFFF_0000_1FA0, "MXCSR, MXCSR_MASK"), (0x20, 0x8000_0000_0000_0000, "ST0 mantissa"), (0x28, 0x3FFF, "ST0 exponent, padding"),
            (0x98, 0x107, "ST7 exponent"), (0xA0, (ulong)x0, "XMM0 low"), (0x198, (ulong)(x15 >> 64), "XMM15 high"), (0x1A0, 0x5A5A, "the canary past the image"),
        ];
        foreach (var (off, want, what) in image)
            Mem(p, $"mov rax, [rsi+0x{off:x}] (after FXSAVE64: {what})", a => a.mov(rax, __qword_ptr[rsi + (int)off]), x + off, 8, false, B(), expect: want);

        // FXSAVE without REX.W: the 32-bit FIP/FCS and FDP/FDS layout.
        Mem(p, "fxsave [rsi]", a => a.fxsave(__[rsi]), x, 64, true, B());
        Mem(p, "mov rax, [rsi+8] (after FXSAVE: FIP 31:0, FCS)", a => a.mov(rax, __qword_ptr[rsi + 8]), x + 8, 8, false, B(), expect: 0x0000_0033_5566_7788);
        Mem(p, "mov rax, [rsi+0x10] (after FXSAVE: FDP 31:0, FDS)", a => a.mov(rax, __qword_ptr[rsi + 0x10]), x + 0x10, 8, false, B(), expect: 0x0000_002B_DDEE_FF00);

        // FXRSTOR of that image, with FCW changed on the device first; the tag word is rebuilt: R0 valid, R1 zero, the rest empty.
        Mem(p, "mov word [rsi], 0x0272 (FCW in the image)", a => a.mov(__word_ptr[rsi], 0x0272), x, 2, true, B());
        var rstor = Mem(p, "fxrstor [rsi]", a => a.fxrstor(__[rsi]), x, 64, false, B());
        rstor.PresetFields = [(StateField.Fcw, 0x40), (StateField.Mxcsr, 0x1F80), (StateField.Fip, 0), (StateField.Ftw, 0xFFFF), .. Regs(_ => (0UL, 0UL)), .. Xmm(15, 0)];
        Expect(rstor, (StateField.Fcw, 0x0272, M16), (StateField.Mxcsr, 0x1FA0, ulong.MaxValue), (StateField.Ftw, 0xFFF4, M16), (StateField.Fop, 0x123, M16),
            (StateField.Fip, 0x5566_7788, ulong.MaxValue), (StateField.Fcs, 0x33, M16), (StateField.Fdp, 0xDDEE_FF00, ulong.MaxValue), (StateField.Fds, 0x2B, M16),
            (StateField.St(0, false), 0x8000_0000_0000_0000, ulong.MaxValue), (StateField.St(7, true), 0x107, M16),
            (StateField.Xmm(15, false), (ulong)x15, ulong.MaxValue), (StateField.Xmm(15, true), (ulong)(x15 >> 64), ulong.MaxValue));

        // A reserved MXCSR bit in the image: #GP(0) and nothing loaded (FOP and MXCSR keep their values).
        Mem(p, "mov dword [rsi+0x18], 0x10000 (reserved MXCSR bit)", a => a.mov(__dword_ptr[rsi + 0x18], 0x10000), x + 0x18, 4, true, B());
        Mem(p, "fxrstor64 [rsi] (reserved MXCSR bit: #GP)", a => a.fxrstor64(__[rsi]), x, 64, false, B()).PresetFields = [(StateField.Fop, 0x555)];
        // Misaligned: #GP(0) before any piece (the image's FIP qword is unchanged).
        Mem(p, "fxsave64 [rsi+8] (misaligned: #GP)", a => a.fxsave64(__[rsi + 8]), x + 8, 64, true, B());
        Expect(Mem(p, "mov rax, [rsi+8] (after the faults)", a => a.mov(rax, __qword_ptr[rsi + 8]), x + 8, 8, false, B(), expect: 0x0000_0033_5566_7788),
            (StateField.Fop, 0x555, M16), (StateField.Mxcsr, 0x1FA0, ulong.MaxValue));

        // Guest RAM with one piece across a 4 KiB boundary: saved, the state changed, restored.
        ulong ram = FxRamImage;
        Mem(p, "fxsave64 [rdi] (RAM, a piece across a page)", a => a.fxsave64(__[rdi]), ram, 64, true, [(7, ram)]).PresetFields = [(StateField.Fcw, 0x0444)];
        var back = Mem(p, "fxrstor64 [rdi] (RAM)", a => a.fxrstor64(__[rdi]), ram, 64, false, [(7, ram)]);
        back.PresetFields = [(StateField.Fcw, 0x0111), .. Xmm(15, 0)];
        Expect(back, (StateField.Fcw, 0x0444, M16), (StateField.Xmm(15, true), (ulong)(x15 >> 64), ulong.MaxValue), (StateField.Fop, 0x555, M16));
    }
}

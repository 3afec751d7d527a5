using Copra.Abi;
using Copra.Hot.Exit;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Kernel.Backends;

public sealed partial class WorkloadBuilder
{
    /// <summary>
    /// The replay side of the mix entries KvmGuest.EmitAccessLoop runs under KVM for the forms issue 14 added (sse,
    /// movdiri, movdir64b, cmps, cmpxchg16b, call_jmp, bsf_bsr): the same exiting instructions, one step each, with the
    /// registers the KVM loop would hold and the architectural result checked where the step has one. The KVM test and
    /// the replay test run the same mix, so a broken entry fails here where /dev/kvm is missing.
    /// </summary>
    Step KvmPathStep(ReplayProgram p, string kind, ulong win, bool random)
    {
        const ulong M32 = 0xFFFF_FFFF;
        Step V(Step s, int reg = 6, ulong stride = 4, ulong span = 0xEF0) { s.VaryReg = reg; s.VaryStride = stride; s.VarySpan = span; s.VaryRandom = random; return s; }
        switch (kind)
        {
            case "sse":
            {
                UInt128 x = new(0x5353_0000_0000_0001, 0x5353_0000_0000_0002);
                var st = V(Mem(p, "movdqu [rsi], xmm0", a => a.movdqu(__xmmword_ptr[rsi], xmm0), win, 16, true, [(6, win)]));
                st.PresetFields = Xmm(0, x);
                var ld = Mem(p, "movdqu xmm1, [rsi]", a => a.movdqu(xmm1, __xmmword_ptr[rsi]), win, 16, false, [(6, win)]);
                return Expect(ld, ExpectXmm(1, x));
            }
            case "movdiri":
                return Mem(p, "movdiri [rsi], eax", a => a.movdiri(__dword_ptr[rsi], eax), win, 4, true, [(6, win), (0, 0xD1D1_0001)]);
            case "movdir64b":
                // The destination 64-byte aligned in the window, the source the RAM pattern (as the KVM loop's).
                return V(Mem(p, "movdir64b rdi, [rsi]", a => a.movdir64b(rdi, __zmmword_ptr[rsi]), (win + 63) & ~63UL, 64, true,
                    [(6, _l.Data), (7, (win + 63) & ~63UL)]), reg: 7, stride: 64, span: 0xE80);
            case "cmps":
            {
                // Both sides name the same byte (as in the KVM loop): equal, ZF set, rSI and rDI each one further. A step
                // varies one register only, so this one keeps a fixed offset (span 4 with stride 4: always 0).
                var c = V(Mem(p, "cmpsb", a => a.cmpsb(), win, 1, false, [(6, win), (7, win)]), stride: 4, span: 4);
                c.Flags |= ExitFlags.String;
                return Expect(c, (StateField.Rflags, ZfBit, ZfBit), (6, win + 1, ulong.MaxValue), (7, win + 1, ulong.MaxValue));
            }
            case "cmpxchg16b":
                // RDX:RAX = 0 against whatever the window holds: either outcome is architectural; ZF says which, and the
                // replay's per-step checks catch a wrong length, address or fault.
                return V(Mem(p, "lock cmpxchg16b [rdi]", a => a.@lock.cmpxchg16b(__xmmword_ptr[rdi]), win & ~15UL, 16, false,
                    [(7, win & ~15UL), (0, 0), (2, 0), (3, 0x16), (1, 0)]), reg: 7, stride: 16);
            case "call_jmp":
            {
                V(Mem(p, "mov [rsi], rax (branch target)", a => a.mov(__qword_ptr[rsi], rax), win, 8, true, [(6, win), (0, BranchTarget)]));
                var call = V(Mem(p, "call qword [rsi]", a => a.call(__qword_ptr[rsi]), win, 8, false, [(6, win), (4, StackSlot)]));
                call.ExpectRip = BranchTarget;
                Expect(call, (4, StackSlot - 8, ulong.MaxValue));
                var jmp = Mem(p, "jmp qword [rsi]", a => a.jmp(__qword_ptr[rsi]), win, 8, false, [(6, win), (4, StackSlot)]);
                jmp.ExpectRip = BranchTarget;
                return jmp;
            }
            default:   // bsf_bsr: a set bit written first, so both results are defined
            {
                V(Mem(p, "mov dword [rsi], 0x00f0_0100", a => a.mov(__dword_ptr[rsi], 0x00F0_0100), win, 4, true, [(6, win)]));
                V(Mem(p, "bsf eax, [rsi]", a => a.bsf(eax, __dword_ptr[rsi]), win, 4, false, [(6, win)], expect: 8, mask: M32));
                return Mem(p, "bsr eax, [rsi]", a => a.bsr(eax, __dword_ptr[rsi]), win, 4, false, [(6, win)], expect: 23, mask: M32);
            }
        }
    }
}

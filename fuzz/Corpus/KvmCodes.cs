// KVM's instruction emulator (Linux arch/x86/kvm/emulate.c), its dispatch list as data: the Iced Code values of every
// opcode-table entry that reaches memory through an explicit operand (ModRM memory, moffs, a string operand or XLAT's
// [rBX+AL]). Read off the tables opcode_table, twobyte_table, opcode_map_0f_38, group1..group15, group1A, the
// gprefix/instr_dual/escape rows, in the linux-next snapshot ColinIanKing/linux-next 482f77f689c15033fdfebca59789df1eec843dba
// (the tables as in mainline 6.x). Entries with no memory operand (register, immediate, implicit-stack-only forms such
// as PUSH r, PUSHF, RET, ENTER) cannot reach an MMIO exit through an operand and are not listed.
//
// Left out on purpose, one line each (their memory operand is no data access):
//   LEA (8D, instr_dual_8d: NoAccess)           computes an address, touches no memory.
//   NOP r/m, PREFETCH* (0F 0D, 0F 18..1F)       hints: NoAccess in KVM's tables; no data reaches a device.
//   INVLPG m (0F 01 /7, NoAccess)               a TLB invalidation of the address, no access to it.
//   CLFLUSH, CLFLUSHOPT (0F AE /7)              cache-line flushes: the SDM defines no data transfer, and an MMIO mapping is
//                                               uncached; KVM's em_clflush does nothing with the byte its SrcMem decode reads.
namespace Copra.Fuzz.Corpus;

static class KvmCodes
{
    /// <summary>The forms KVM shares with x86emu's integer list (ALU, shifts, BTx, CMOVcc/SETcc, MUL/DIV, XADD/CMPXCHG*,
    /// MOV/MOVZX/MOVSX/MOVSXD, strings, INS/OUTS, IN/OUT, MOVNTI) are taken from X86emuCodes by family, minus what KVM
    /// lacks there: MOVDIRI and MOVDIR64B (no 0F 38 F8/F9 entry).</summary>
    public static bool SharedWithX86emu(string x86emuName) => !x86emuName.StartsWith("Movdir", StringComparison.Ordinal);

    /// <summary>KVM forms outside x86emu's list, by table row.</summary>
    public const string Extra =
        // IN/OUT (E4..E7, EC..EF: check_perm_in/out) -- x86emu handles them on its I/O fast path, so X86emuCodes omits them.
        "In_AL_imm8 In_AX_imm8 In_EAX_imm8 In_AL_DX In_AX_DX In_EAX_DX Out_imm8_AL Out_imm8_AX Out_imm8_EAX Out_DX_AL Out_DX_AX Out_DX_EAX " +
        // 0F 6F / 0F 7F without a prefix: pfx_0f_6f_0f_7f pfx_no = I(Mmx, em_mov), MOVQ mm, m64 and MOVQ m64, mm.
        "Movq_mm_mmm64 Movq_mmm64_mm " +
        // FF /2, FF /4 (group5: em_call_near_abs, em_jmp_abs, NearBranch) and FF /3, FF /5 (em_call_far, em_jmp_far).
        "Call_rm16 Call_rm32 Call_rm64 Jmp_rm16 Jmp_rm32 Jmp_rm64 Call_m1616 Call_m1632 Call_m1664 Jmp_m1616 Jmp_m1632 Jmp_m1664 " +
        // FF /6 (group5: em_push, Stack) and 8F /0 (group1A: em_pop, Stack).
        "Push_rm16 Push_rm32 Push_rm64 Pop_rm16 Pop_rm32 Pop_rm64 " +
        // 8C (em_mov_rm_sreg) and 8E (em_mov_sreg_rm).
        "Mov_rm16_Sreg Mov_r32m16_Sreg Mov_r64m16_Sreg Mov_Sreg_rm16 Mov_Sreg_r32m16 Mov_Sreg_r64m16 " +
        // C4/C5 LES/LDS (No64), 0F B2/B4/B5 LSS/LFS/LGS (em_lseg).
        "Les_r16_m1616 Les_r32_m1632 Lds_r16_m1616 Lds_r32_m1632 Lss_r16_m1616 Lss_r32_m1632 Lss_r64_m1664 " +
        "Lfs_r16_m1616 Lfs_r32_m1632 Lfs_r64_m1664 Lgs_r16_m1616 Lgs_r32_m1632 Lgs_r64_m1664 " +
        // D7 XLAT (SrcXLat).
        "Xlat_m8 " +
        // D9 /7 FNSTCW m16, DD /7 FNSTSW m16 (escape_d9, escape_dd).
        "Fnstcw_m2byte Fnstsw_m2byte " +
        // 0F AE /0, /1 FXSAVE, FXRSTOR (group15, Aligned16).
        "Fxsave_m512byte Fxsave64_m512byte Fxrstor_m512byte Fxrstor64_m512byte " +
        // 0F 00 group6: SLDT m16, STR m16, LLDT m16, LTR m16.
        "Sldt_rm16 Sldt_r32m16 Sldt_r64m16 Str_rm16 Str_r32m16 Str_r64m16 Lldt_rm16 Lldt_r32m16 Lldt_r64m16 Ltr_rm16 Ltr_r32m16 Ltr_r64m16 " +
        // 0F 01 group7 (mod != 3): SGDT, SIDT, LGDT, LIDT, SMSW, LMSW.
        "Sgdt_m1632_16 Sgdt_m1632 Sgdt_m1664 Sidt_m1632_16 Sidt_m1632 Sidt_m1664 Lgdt_m1632_16 Lgdt_m1632 Lgdt_m1664 " +
        "Lidt_m1632_16 Lidt_m1632 Lidt_m1664 Smsw_rm16 Smsw_r32m16 Smsw_r64m16 Lmsw_rm16 Lmsw_r32m16 Lmsw_r64m16 " +
        // 0F BC/BD BSF/BSR (em_bsf_c, em_bsr_c).
        "Bsf_r16_rm16 Bsf_r32_rm32 Bsf_r64_rm64 Bsr_r16_rm16 Bsr_r32_rm32 Bsr_r64_rm64 " +
        // 0F 38 F0/F1 MOVBE (three_byte_0f_38_f0/f1: no prefix and 66).
        "Movbe_r16_m16 Movbe_r32_m32 Movbe_r64_m64 Movbe_m16_r16 Movbe_m32_r32 Movbe_m64_r64";
}

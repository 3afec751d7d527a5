// The Iced Code values OpenHCL x86emu dispatches on (microsoft/openvmm vm/x86/x86emu/src/emulator.rs, Emulator::run,
// at commit 1488a37b7cfe596c8fd72bbf7d2bb3af3f99aea6; IN/OUT excluded: x86emu refuses them there and handles them on
// its I/O fast path). A list of instruction names, read off the match arms; regenerate with
//   git show HEAD:vm/x86/x86emu/src/emulator.rs | sed -n "/match instr.code()/,/unsupported_instruction(instr)/p" | grep -oE "Code::[A-Za-z0-9_]+"
namespace Copra.Fuzz.Corpus;

static class X86emuCodes
{
    public const string Names =
        "Adc_r16_rm16 Adc_r32_rm32 Adc_r64_rm64 Adc_r8_rm8 Adc_rm16_imm16 Adc_rm16_imm8 Adc_rm16_r16 " +
        "Adc_rm32_imm32 Adc_rm32_imm8 Adc_rm32_r32 Adc_rm64_imm32 Adc_rm64_imm8 Adc_rm64_r64 Adc_rm8_imm8 " +
        "Adc_rm8_r8 Add_r16_rm16 Add_r32_rm32 Add_r64_rm64 Add_r8_rm8 Add_rm16_imm16 Add_rm16_imm8 " +
        "Add_rm16_r16 Add_rm32_imm32 Add_rm32_imm8 Add_rm32_r32 Add_rm64_imm32 Add_rm64_imm8 Add_rm64_r64 " +
        "Add_rm8_imm8 Add_rm8_r8 And_r16_rm16 And_r32_rm32 And_r64_rm64 And_r8_rm8 And_rm16_imm16 " +
        "And_rm16_imm8 And_rm16_r16 And_rm32_imm32 And_rm32_imm8 And_rm32_r32 And_rm64_imm32 And_rm64_imm8 " +
        "And_rm64_r64 And_rm8_imm8 And_rm8_r8 Bt_rm16_imm8 Bt_rm16_r16 Bt_rm32_imm8 Bt_rm32_r32 Bt_rm64_imm8 " +
        "Bt_rm64_r64 Btc_rm16_imm8 Btc_rm16_r16 Btc_rm32_imm8 Btc_rm32_r32 Btc_rm64_imm8 Btc_rm64_r64 " +
        "Btr_rm16_imm8 Btr_rm16_r16 Btr_rm32_imm8 Btr_rm32_r32 Btr_rm64_imm8 Btr_rm64_r64 Bts_rm16_imm8 " +
        "Bts_rm16_r16 Bts_rm32_imm8 Bts_rm32_r32 Bts_rm64_imm8 Bts_rm64_r64 Cmova_r16_rm16 Cmova_r32_rm32 " +
        "Cmova_r64_rm64 Cmovae_r16_rm16 Cmovae_r32_rm32 Cmovae_r64_rm64 Cmovb_r16_rm16 Cmovb_r32_rm32 " +
        "Cmovb_r64_rm64 Cmovbe_r16_rm16 Cmovbe_r32_rm32 Cmovbe_r64_rm64 Cmove_r16_rm16 Cmove_r32_rm32 " +
        "Cmove_r64_rm64 Cmovg_r16_rm16 Cmovg_r32_rm32 Cmovg_r64_rm64 Cmovge_r16_rm16 Cmovge_r32_rm32 " +
        "Cmovge_r64_rm64 Cmovl_r16_rm16 Cmovl_r32_rm32 Cmovl_r64_rm64 Cmovle_r16_rm16 Cmovle_r32_rm32 " +
        "Cmovle_r64_rm64 Cmovne_r16_rm16 Cmovne_r32_rm32 Cmovne_r64_rm64 Cmovno_r16_rm16 Cmovno_r32_rm32 " +
        "Cmovno_r64_rm64 Cmovnp_r16_rm16 Cmovnp_r32_rm32 Cmovnp_r64_rm64 Cmovns_r16_rm16 Cmovns_r32_rm32 " +
        "Cmovns_r64_rm64 Cmovo_r16_rm16 Cmovo_r32_rm32 Cmovo_r64_rm64 Cmovp_r16_rm16 Cmovp_r32_rm32 " +
        "Cmovp_r64_rm64 Cmovs_r16_rm16 Cmovs_r32_rm32 Cmovs_r64_rm64 Cmp_r16_rm16 Cmp_r32_rm32 Cmp_r64_rm64 " +
        "Cmp_r8_rm8 Cmp_rm16_imm16 Cmp_rm16_imm8 Cmp_rm16_r16 Cmp_rm32_imm32 Cmp_rm32_imm8 Cmp_rm32_r32 " +
        "Cmp_rm64_imm32 Cmp_rm64_imm8 Cmp_rm64_r64 Cmp_rm8_imm8 Cmp_rm8_r8 Cmpsb_m8_m8 Cmpsd_m32_m32 " +
        "Cmpsq_m64_m64 Cmpsw_m16_m16 Cmpxchg16b_m128 Cmpxchg8b_m64 Cmpxchg_rm16_r16 Cmpxchg_rm32_r32 " +
        "Cmpxchg_rm64_r64 Cmpxchg_rm8_r8 Dec_rm16 Dec_rm32 Dec_rm64 Dec_rm8 Div_rm16 Div_rm32 Div_rm64 Div_rm8 " +
        "Idiv_rm16 Idiv_rm32 Idiv_rm64 Idiv_rm8 Imul_r16_rm16 Imul_r16_rm16_imm16 Imul_r16_rm16_imm8 " +
        "Imul_r32_rm32 Imul_r32_rm32_imm32 Imul_r32_rm32_imm8 Imul_r64_rm64 Imul_r64_rm64_imm32 " +
        "Imul_r64_rm64_imm8 Imul_rm16 Imul_rm32 Imul_rm64 Imul_rm8 Inc_rm16 Inc_rm32 Inc_rm64 Inc_rm8 " +
        "Insb_m8_DX Insd_m32_DX Insw_m16_DX Lodsb_AL_m8 Lodsd_EAX_m32 Lodsq_RAX_m64 Lodsw_AX_m16 Mov_AL_moffs8 " +
        "Mov_AX_moffs16 Mov_EAX_moffs32 Mov_RAX_moffs64 Mov_moffs16_AX Mov_moffs32_EAX Mov_moffs64_RAX " +
        "Mov_moffs8_AL Mov_r16_rm16 Mov_r32_rm32 Mov_r64_rm64 Mov_r8_rm8 Mov_rm16_imm16 Mov_rm16_r16 " +
        "Mov_rm32_imm32 Mov_rm32_r32 Mov_rm64_imm32 Mov_rm64_r64 Mov_rm8_imm8 Mov_rm8_r8 Movapd_xmm_xmmm128 " +
        "Movapd_xmmm128_xmm Movaps_xmm_xmmm128 Movaps_xmmm128_xmm Movdir64b_r16_m512 Movdir64b_r32_m512 " +
        "Movdir64b_r64_m512 Movdiri_m32_r32 Movdiri_m64_r64 Movdqa_xmm_xmmm128 Movdqa_xmmm128_xmm " +
        "Movdqu_xmm_xmmm128 Movdqu_xmmm128_xmm Movntdq_m128_xmm Movnti_m32_r32 Movnti_m64_r64 Movntpd_m128_xmm " +
        "Movntps_m128_xmm Movsb_m8_m8 Movsd_m32_m32 Movsq_m64_m64 Movsw_m16_m16 Movsx_r16_rm16 Movsx_r16_rm8 " +
        "Movsx_r32_rm16 Movsx_r32_rm8 Movsx_r64_rm16 Movsx_r64_rm8 Movsxd_r16_rm16 Movsxd_r32_rm32 " +
        "Movsxd_r64_rm32 Movupd_xmm_xmmm128 Movupd_xmmm128_xmm Movups_xmm_xmmm128 Movups_xmmm128_xmm " +
        "Movzx_r16_rm16 Movzx_r16_rm8 Movzx_r32_rm16 Movzx_r32_rm8 Movzx_r64_rm16 Movzx_r64_rm8 Mul_rm16 " +
        "Mul_rm32 Mul_rm64 Mul_rm8 Neg_rm16 Neg_rm32 Neg_rm64 Neg_rm8 Not_rm16 Not_rm32 Not_rm64 Not_rm8 " +
        "Or_r16_rm16 Or_r32_rm32 Or_r64_rm64 Or_r8_rm8 Or_rm16_imm16 Or_rm16_imm8 Or_rm16_r16 Or_rm32_imm32 " +
        "Or_rm32_imm8 Or_rm32_r32 Or_rm64_imm32 Or_rm64_imm8 Or_rm64_r64 Or_rm8_imm8 Or_rm8_r8 Outsb_DX_m8 " +
        "Outsd_DX_m32 Outsw_DX_m16 Rcl_rm16_1 Rcl_rm16_CL Rcl_rm16_imm8 Rcl_rm32_1 Rcl_rm32_CL Rcl_rm32_imm8 " +
        "Rcl_rm64_1 Rcl_rm64_CL Rcl_rm64_imm8 Rcl_rm8_1 Rcl_rm8_CL Rcl_rm8_imm8 Rcr_rm16_1 Rcr_rm16_CL " +
        "Rcr_rm16_imm8 Rcr_rm32_1 Rcr_rm32_CL Rcr_rm32_imm8 Rcr_rm64_1 Rcr_rm64_CL Rcr_rm64_imm8 Rcr_rm8_1 " +
        "Rcr_rm8_CL Rcr_rm8_imm8 Rol_rm16_1 Rol_rm16_CL Rol_rm16_imm8 Rol_rm32_1 Rol_rm32_CL Rol_rm32_imm8 " +
        "Rol_rm64_1 Rol_rm64_CL Rol_rm64_imm8 Rol_rm8_1 Rol_rm8_CL Rol_rm8_imm8 Ror_rm16_1 Ror_rm16_CL " +
        "Ror_rm16_imm8 Ror_rm32_1 Ror_rm32_CL Ror_rm32_imm8 Ror_rm64_1 Ror_rm64_CL Ror_rm64_imm8 Ror_rm8_1 " +
        "Ror_rm8_CL Ror_rm8_imm8 Sal_rm16_1 Sal_rm16_CL Sal_rm16_imm8 Sal_rm32_1 Sal_rm32_CL Sal_rm32_imm8 " +
        "Sal_rm64_1 Sal_rm64_CL Sal_rm64_imm8 Sal_rm8_1 Sal_rm8_CL Sal_rm8_imm8 Sar_rm16_1 Sar_rm16_CL " +
        "Sar_rm16_imm8 Sar_rm32_1 Sar_rm32_CL Sar_rm32_imm8 Sar_rm64_1 Sar_rm64_CL Sar_rm64_imm8 Sar_rm8_1 " +
        "Sar_rm8_CL Sar_rm8_imm8 Sbb_r16_rm16 Sbb_r32_rm32 Sbb_r64_rm64 Sbb_r8_rm8 Sbb_rm16_imm16 " +
        "Sbb_rm16_imm8 Sbb_rm16_r16 Sbb_rm32_imm32 Sbb_rm32_imm8 Sbb_rm32_r32 Sbb_rm64_imm32 Sbb_rm64_imm8 " +
        "Sbb_rm64_r64 Sbb_rm8_imm8 Sbb_rm8_r8 Scasb_AL_m8 Scasd_EAX_m32 Scasq_RAX_m64 Scasw_AX_m16 Seta_rm8 " +
        "Setae_rm8 Setb_rm8 Setbe_rm8 Sete_rm8 Setg_rm8 Setge_rm8 Setl_rm8 Setle_rm8 Setne_rm8 Setno_rm8 " +
        "Setnp_rm8 Setns_rm8 Seto_rm8 Setp_rm8 Sets_rm8 Shl_rm16_1 Shl_rm16_CL Shl_rm16_imm8 Shl_rm32_1 " +
        "Shl_rm32_CL Shl_rm32_imm8 Shl_rm64_1 Shl_rm64_CL Shl_rm64_imm8 Shl_rm8_1 Shl_rm8_CL Shl_rm8_imm8 " +
        "Shld_rm16_r16_CL Shld_rm16_r16_imm8 Shld_rm32_r32_CL Shld_rm32_r32_imm8 Shld_rm64_r64_CL " +
        "Shld_rm64_r64_imm8 Shr_rm16_1 Shr_rm16_CL Shr_rm16_imm8 Shr_rm32_1 Shr_rm32_CL Shr_rm32_imm8 " +
        "Shr_rm64_1 Shr_rm64_CL Shr_rm64_imm8 Shr_rm8_1 Shr_rm8_CL Shr_rm8_imm8 Shrd_rm16_r16_CL " +
        "Shrd_rm16_r16_imm8 Shrd_rm32_r32_CL Shrd_rm32_r32_imm8 Shrd_rm64_r64_CL Shrd_rm64_r64_imm8 " +
        "Stosb_m8_AL Stosd_m32_EAX Stosq_m64_RAX Stosw_m16_AX Sub_r16_rm16 Sub_r32_rm32 Sub_r64_rm64 " +
        "Sub_r8_rm8 Sub_rm16_imm16 Sub_rm16_imm8 Sub_rm16_r16 Sub_rm32_imm32 Sub_rm32_imm8 Sub_rm32_r32 " +
        "Sub_rm64_imm32 Sub_rm64_imm8 Sub_rm64_r64 Sub_rm8_imm8 Sub_rm8_r8 Test_rm16_imm16 Test_rm16_r16 " +
        "Test_rm32_imm32 Test_rm32_r32 Test_rm64_imm32 Test_rm64_r64 Test_rm8_imm8 Test_rm8_r8 Xadd_rm16_r16 " +
        "Xadd_rm32_r32 Xadd_rm64_r64 Xadd_rm8_r8 Xchg_rm16_r16 Xchg_rm32_r32 Xchg_rm64_r64 Xchg_rm8_r8 " +
        "Xor_r16_rm16 Xor_r32_rm32 Xor_r64_rm64 Xor_r8_rm8 Xor_rm16_imm16 Xor_rm16_imm8 Xor_rm16_r16 " +
        "Xor_rm32_imm32 Xor_rm32_imm8 Xor_rm32_r32 Xor_rm64_imm32 Xor_rm64_imm8 Xor_rm64_r64 Xor_rm8_imm8 " +
        "Xor_rm8_r8 ";
}

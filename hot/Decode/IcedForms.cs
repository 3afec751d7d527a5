// Design note — which Iced instructions are emulated forms, and as what.
//
// One mapping from Iced's Mnemonic to Copra's (AccessKind, AluOp, condition), shared by the cold-path decoder
// (IcedFallback) and the fuzz oracle (IcedOracle) so the two cannot drift apart. Both remain independent of
// X86Decoder's opcode tables, which is what the differential tests compare. Operands (memory or register) are the
// callers' business: a form mapped here with no memory operand is still refused by them.

using Iced.Intel;
using System.Runtime.CompilerServices;

namespace Copra.Hot.Decode;

/// <summary>Iced mnemonic → emulated form.</summary>
public static class IcedForms
{
    /// <summary>The access kind for Iced's instruction, or Unsupported; <paramref name="cond"/> for SETcc/CMOVcc.</summary>
    public static AccessKind Classify(in Instruction ins, out AluOp op, out byte cond)
    {
        op = AluOp.None;
        cond = ins.ConditionCode == ConditionCode.None ? (byte)0 : (byte)(ins.ConditionCode - 1);
        switch (ins.Mnemonic)
        {
            case Mnemonic.Mov:
                // 8C MOV m16, Sreg and 8E MOV Sreg, m16 (MOV CS, m16 is #UD: the CPU never runs it).
                if (IsMemory(ins.Op0Kind))
                    return ins.Op1Kind != OpKind.Register ? AccessKind.WriteImm : ins.Op1Register.IsSegmentRegister() ? AccessKind.SysStore : AccessKind.Write;
                if (ins.OpCount != 2 || !IsMemory(ins.Op1Kind)) return AccessKind.Unsupported;
                if (!ins.Op0Register.IsSegmentRegister()) return AccessKind.Read;
                return ins.Op0Register == Register.CS ? AccessKind.Unsupported : AccessKind.SegLoad;
            case Mnemonic.Sgdt: case Mnemonic.Sidt: case Mnemonic.Sldt: case Mnemonic.Str: case Mnemonic.Smsw: return AccessKind.SysStore;
            case Mnemonic.Lgdt: case Mnemonic.Lidt: case Mnemonic.Lldt: case Mnemonic.Ltr: case Mnemonic.Lmsw: return AccessKind.SysLoad;
            case Mnemonic.Lss: case Mnemonic.Lfs: case Mnemonic.Lgs: case Mnemonic.Les: case Mnemonic.Lds: return AccessKind.LoadFarPtr;
            case Mnemonic.Movnti: case Mnemonic.Movdiri: return AccessKind.Write;
            case Mnemonic.Movups: case Mnemonic.Movupd: case Mnemonic.Movdqu: case Mnemonic.Movaps: case Mnemonic.Movapd: case Mnemonic.Movdqa:
                if (ins.Encoding != EncodingKind.Legacy) return AccessKind.Unsupported;   // VEX/EVEX forms are not emulated
                return IsMemory(ins.Op0Kind) ? AccessKind.WriteVec : AccessKind.ReadVec;
            case Mnemonic.Movntps: case Mnemonic.Movntpd: case Mnemonic.Movntdq:
                return ins.Encoding == EncodingKind.Legacy ? AccessKind.WriteVec : AccessKind.Unsupported;
            case Mnemonic.Movdir64b: return AccessKind.Movdir64b;
            // MMX MOVQ (0F 6F / 0F 7F); the SSE MOVQ forms (F3 0F 7E, 66 0F D6) are not emulated.
            case Mnemonic.Movq:
                return ins.Code == Code.Movq_mm_mmm64 ? AccessKind.MmxRead : ins.Code == Code.Movq_mmm64_mm ? AccessKind.MmxWrite : AccessKind.Unsupported;
            case Mnemonic.Fnstcw: return AccessKind.Fnstcw;
            case Mnemonic.Fnstsw: return ins.Code == Code.Fnstsw_m2byte ? AccessKind.Fnstsw : AccessKind.Unsupported;
            case Mnemonic.Fxsave: case Mnemonic.Fxsave64: return AccessKind.Fxsave;
            case Mnemonic.Fxrstor: case Mnemonic.Fxrstor64: return AccessKind.Fxrstor;
            case Mnemonic.Movzx: return AccessKind.ReadZx;
            case Mnemonic.Movsx: case Mnemonic.Movsxd: return AccessKind.ReadSx;
            case Mnemonic.Movsb: case Mnemonic.Movsw: case Mnemonic.Movsq: return AccessKind.Movs;
            case Mnemonic.Movsd: return ins.Code == Code.Movsd_m32_m32 ? AccessKind.Movs : AccessKind.Unsupported;
            case Mnemonic.Stosb: case Mnemonic.Stosw: case Mnemonic.Stosd: case Mnemonic.Stosq: return AccessKind.Stos;
            case Mnemonic.Lodsb: case Mnemonic.Lodsw: case Mnemonic.Lodsd: case Mnemonic.Lodsq: return AccessKind.Lods;
            case Mnemonic.Cmpsb: case Mnemonic.Cmpsw: case Mnemonic.Cmpsq: return AccessKind.Cmps;
            case Mnemonic.Cmpsd: return ins.Code == Code.Cmpsd_m32_m32 ? AccessKind.Cmps : AccessKind.Unsupported;
            case Mnemonic.Scasb: case Mnemonic.Scasw: case Mnemonic.Scasd: case Mnemonic.Scasq: return AccessKind.Scas;
            case Mnemonic.Insb: case Mnemonic.Insw: case Mnemonic.Insd: return AccessKind.Ins;
            case Mnemonic.Outsb: case Mnemonic.Outsw: case Mnemonic.Outsd: return AccessKind.Outs;
            case Mnemonic.In: return AccessKind.In;
            case Mnemonic.Out: return AccessKind.Out;
            case Mnemonic.Xchg: return AccessKind.Xchg;
            case Mnemonic.Push: return AccessKind.Push;
            case Mnemonic.Pop: return AccessKind.Pop;
            case Mnemonic.Call:
                return ins.Code is Code.Call_rm16 or Code.Call_rm32 or Code.Call_rm64 ? AccessKind.Call
                    : ins.Code is Code.Call_m1616 or Code.Call_m1632 or Code.Call_m1664 ? AccessKind.FarCall : AccessKind.Unsupported;
            case Mnemonic.Jmp:
                return ins.Code is Code.Jmp_rm16 or Code.Jmp_rm32 or Code.Jmp_rm64 ? AccessKind.Jmp
                    : ins.Code is Code.Jmp_m1616 or Code.Jmp_m1632 or Code.Jmp_m1664 ? AccessKind.FarJmp : AccessKind.Unsupported;
            case Mnemonic.Bt: return AccessKind.Bt;
            case Mnemonic.Bts: op = AluOp.Bts; return AccessKind.Bt;
            case Mnemonic.Btr: op = AluOp.Btr; return AccessKind.Bt;
            case Mnemonic.Btc: op = AluOp.Btc; return AccessKind.Bt;
            case >= Mnemonic.Seta and <= Mnemonic.Sets when IsSetcc(ins.Mnemonic): return AccessKind.Setcc;
            case >= Mnemonic.Cmova and <= Mnemonic.Cmovs when IsCmov(ins.Mnemonic): return AccessKind.Cmov;
            default:
                op = AluOf(ins.Mnemonic);
                return op == AluOp.None ? AccessKind.Unsupported : AccessKind.Alu;
        }
    }

    /// <summary>True for the system-state and segment-load kinds, whose register is <see cref="DecodedAccess.SysReg"/>.</summary>
    public static bool IsSystem(AccessKind k) => k is AccessKind.SysStore or AccessKind.SysLoad or AccessKind.SegLoad or AccessKind.FarJmp
        or AccessKind.FarCall or AccessKind.LoadFarPtr;

    /// <summary>
    /// A system form's register (<see cref="DecodedAccess.SysReg"/>) and operand size (2, 4 or 8: Iced's Code names it,
    /// as o16/o32/o64 or m1616/m1632/m1664).
    /// </summary>
    public static (byte SysReg, int OperandSize) SystemOperand(in Instruction ins)
    {
        byte reg = ins.Mnemonic switch
        {
            Mnemonic.Sgdt or Mnemonic.Lgdt => SysReg.Gdtr,
            Mnemonic.Sidt or Mnemonic.Lidt => SysReg.Idtr,
            Mnemonic.Sldt or Mnemonic.Lldt => SysReg.Ldtr,
            Mnemonic.Str or Mnemonic.Ltr => SysReg.Tr,
            Mnemonic.Smsw or Mnemonic.Lmsw => SysReg.Msw,
            Mnemonic.Call or Mnemonic.Jmp => Seg.CS,
            Mnemonic.Lss => Seg.SS,
            Mnemonic.Les => Seg.ES,
            Mnemonic.Lds => Seg.DS,
            Mnemonic.Lfs => Seg.FS,
            Mnemonic.Lgs => Seg.GS,
            _ => SegmentOf(ins.Op0Kind == OpKind.Register ? ins.Op0Register : ins.Op1Register),
        };
        string code = ins.Code.ToString();
        int size = code.EndsWith("_16", StringComparison.Ordinal) || code.EndsWith("1616", StringComparison.Ordinal) || code.EndsWith("rm16", StringComparison.Ordinal) ? 2
            : code.EndsWith("1664", StringComparison.Ordinal) || code.Contains("r64", StringComparison.Ordinal) ? 8 : 4;
        return (reg, size);
    }

    static byte SegmentOf(Register r) => r switch
    {
        Register.ES => Seg.ES, Register.CS => Seg.CS, Register.SS => Seg.SS, Register.DS => Seg.DS, Register.FS => Seg.FS, _ => Seg.GS,
    };

    static bool IsSetcc(Mnemonic m) => m is Mnemonic.Seta or Mnemonic.Setae or Mnemonic.Setb or Mnemonic.Setbe or Mnemonic.Sete
        or Mnemonic.Setg or Mnemonic.Setge or Mnemonic.Setl or Mnemonic.Setle or Mnemonic.Setne or Mnemonic.Setno
        or Mnemonic.Setnp or Mnemonic.Setns or Mnemonic.Seto or Mnemonic.Setp or Mnemonic.Sets;

    static bool IsCmov(Mnemonic m) => m is Mnemonic.Cmova or Mnemonic.Cmovae or Mnemonic.Cmovb or Mnemonic.Cmovbe or Mnemonic.Cmove
        or Mnemonic.Cmovg or Mnemonic.Cmovge or Mnemonic.Cmovl or Mnemonic.Cmovle or Mnemonic.Cmovne or Mnemonic.Cmovno
        or Mnemonic.Cmovnp or Mnemonic.Cmovns or Mnemonic.Cmovo or Mnemonic.Cmovp or Mnemonic.Cmovs;

    static AluOp AluOf(Mnemonic m) => m switch
    {
        Mnemonic.And => AluOp.And, Mnemonic.Or => AluOp.Or, Mnemonic.Xor => AluOp.Xor, Mnemonic.Add => AluOp.Add,
        Mnemonic.Sub => AluOp.Sub, Mnemonic.Cmp => AluOp.Cmp, Mnemonic.Test => AluOp.Test,
        Mnemonic.Adc => AluOp.Adc, Mnemonic.Sbb => AluOp.Sbb, Mnemonic.Inc => AluOp.Inc, Mnemonic.Dec => AluOp.Dec,
        Mnemonic.Neg => AluOp.Neg, Mnemonic.Not => AluOp.Not,
        Mnemonic.Rol => AluOp.Rol, Mnemonic.Ror => AluOp.Ror, Mnemonic.Rcl => AluOp.Rcl, Mnemonic.Rcr => AluOp.Rcr,
        Mnemonic.Shl or Mnemonic.Sal => AluOp.Shl, Mnemonic.Shr => AluOp.Shr, Mnemonic.Sar => AluOp.Sar,
        Mnemonic.Shld => AluOp.Shld, Mnemonic.Shrd => AluOp.Shrd,
        Mnemonic.Xadd => AluOp.Xadd, Mnemonic.Cmpxchg => AluOp.Cmpxchg,
        Mnemonic.Cmpxchg8b => AluOp.Cmpxchg8b, Mnemonic.Cmpxchg16b => AluOp.Cmpxchg16b,
        Mnemonic.Mul => AluOp.Mul, Mnemonic.Imul => AluOp.Imul, Mnemonic.Div => AluOp.Div, Mnemonic.Idiv => AluOp.Idiv,
        Mnemonic.Bsf => AluOp.Bsf, Mnemonic.Bsr => AluOp.Bsr,
        _ => AluOp.None,
    };

    /// <summary>True for the memory operand kinds, explicit or string.</summary>
    public static bool IsMemory(OpKind k) => k is OpKind.Memory or OpKind.MemorySegSI or OpKind.MemorySegESI or OpKind.MemorySegRSI
        or OpKind.MemoryESDI or OpKind.MemoryESEDI or OpKind.MemoryESRDI;

    /// <summary>CL as the third operand of SHLD/SHRD is the count, not the register operand.</summary>
    public static bool IsCountRegister(in Instruction ins, int operand) =>
        operand == 2 && ins.GetOpKind(2) == OpKind.Register && ins.GetOpRegister(2) == Register.CL;

    /// <summary>Whether the string form's memory operand is the rSI side (LODS, OUTS) rather than ES:rDI.</summary>
    public static bool StringReadsSi(AccessKind k) => k is AccessKind.Outs or AccessKind.Lods;

    /// <summary>String forms with a second, overridable rSI side (MOVS, CMPS).</summary>
    public static bool StringHasSource(AccessKind k) => k is AccessKind.Movs or AccessKind.Cmps;

    /// <summary>The string forms REP applies to.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsString(AccessKind k) => k is AccessKind.Movs or AccessKind.Stos or AccessKind.Ins or AccessKind.Outs
        or AccessKind.Lods or AccessKind.Cmps or AccessKind.Scas;
}

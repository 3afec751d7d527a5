namespace Copra.Hot.Decode;

/// <summary>The code-segment mode an instruction is decoded in.</summary>
public enum CpuMode : byte { Bits16, Bits32, Bits64 }

/// <summary>What the instruction does with its memory or port operand.</summary>
public enum AccessKind : byte
{
    Unsupported,
    /// <summary>MOV reg, mem (8A/8B/A0/A1).</summary>
    Read,
    /// <summary>MOV mem, reg (88/89/A2/A3).</summary>
    Write,
    /// <summary>MOV mem, imm (C6 /0, C7 /0).</summary>
    WriteImm,
    /// <summary>MOVZX (0F B6/B7).</summary>
    ReadZx,
    /// <summary>MOVSX (0F BE/BF) and MOVSXD (63).</summary>
    ReadSx,
    Movs, Stos, In, Out, Ins, Outs,
    /// <summary>AND/OR/XOR/ADD/SUB/CMP/TEST with a memory operand.</summary>
    Alu,
    Xchg,
    /// <summary>BT, and with <see cref="DecodedAccess.Op"/> BTS/BTR/BTC (which also write the unit back).</summary>
    Bt,
    /// <summary>SETcc m8 (0F 90..9F): writes 1 or 0 per <see cref="DecodedAccess.Cond"/>.</summary>
    Setcc,
    /// <summary>CMOVcc r, m (0F 40..4F): always reads memory; writes the register per <see cref="DecodedAccess.Cond"/>.</summary>
    Cmov,
    /// <summary>LODS (AC/AD): loads the accumulator from seg:rSI.</summary>
    Lods,
    /// <summary>CMPS (A6/A7): compares seg:rSI with ES:rDI (two reads).</summary>
    Cmps,
    /// <summary>SCAS (AE/AF): compares the accumulator with ES:rDI.</summary>
    Scas,
    /// <summary>SSE load of an XMM register from m128 (MOVUPS/UPD/DQU/APS/APD/DQA): <see cref="DecodedAccess.Reg"/> is the XMM number.</summary>
    ReadVec,
    /// <summary>SSE store of an XMM register to m128 (the load forms' stores and MOVNTPS/NTPD/NTDQ).</summary>
    WriteVec,
    /// <summary>MOVDIR64B (66 0F 38 F8): 64 bytes from the ModRM source to ES:[<see cref="DecodedAccess.Reg"/>] (address size), one write.</summary>
    Movdir64b,
    /// <summary>PUSH m (FF /6): reads the operand, writes it to SS:[rSP - size] (guest RAM), then rSP moves.</summary>
    Push,
    /// <summary>POP m (8F /0): reads SS:[rSP] (guest RAM), writes the operand (its address computed with rSP already
    /// incremented, as the CPU does), then rSP moves.</summary>
    Pop,
    /// <summary>CALL m, near (FF /2): reads the target from the operand, pushes the return address (guest RAM), RIP = target.</summary>
    Call,
    /// <summary>JMP m, near (FF /4): reads the target from the operand, RIP = target.</summary>
    Jmp,
    // Keep the x87/MMX and system kinds last, from Fnstcw on: X86Decoder sizes them behind one `kind >= Fnstcw` test.
    /// <summary>FNSTCW m16 (D9 /7): stores the x87 control word.</summary>
    Fnstcw,
    /// <summary>FNSTSW m16 (DD /7): stores the x87 status word.</summary>
    Fnstsw,
    /// <summary>MOVQ mm, m64 (0F 6F, no prefix): <see cref="DecodedAccess.Reg"/> is the MMX register 0..7.</summary>
    MmxRead,
    /// <summary>MOVQ m64, mm (0F 7F, no prefix).</summary>
    MmxWrite,
    /// <summary>FXSAVE m512 (0F AE /0; FXSAVE64 with REX.W): the image moves as 64-byte pieces (<see cref="DecodedAccess.Size"/>
    /// is the piece size; hot/Emulate/X87.cs); <see cref="DecodedAccess.Op"/> is unused, REX.W is in <see cref="DecodedAccess.Imm"/>.</summary>
    Fxsave,
    /// <summary>FXRSTOR m512 (0F AE /1; FXRSTOR64 with REX.W): all pieces are read before any state is loaded.</summary>
    Fxrstor,

    // ---- system state and segment loads (hot/Emulate/SystemOps.cs; hot/Exit/ExitPipeline.System.cs) ----
    /// <summary>SGDT/SIDT m (limit:16 then base:32/64), SLDT/STR/SMSW m16, MOV m16, Sreg (8C): writes the register named by
    /// <see cref="DecodedAccess.SysReg"/> to the operand.</summary>
    SysStore,
    /// <summary>LGDT/LIDT m, LLDT/LTR/LMSW m16: reads the operand into the register named by <see cref="DecodedAccess.SysReg"/>
    /// (LLDT/LTR through a descriptor in the guest's GDT).</summary>
    SysLoad,
    /// <summary>MOV Sreg, m16 (8E): loads segment <see cref="DecodedAccess.SysReg"/> (ES SS DS FS GS) through its descriptor.</summary>
    SegLoad,
    /// <summary>JMP m16:16/32/64, far (FF /5): offset then selector from the operand; CS through its descriptor.</summary>
    FarJmp,
    /// <summary>CALL m16:16/32/64, far (FF /3): as <see cref="FarJmp"/>, and pushes CS then the return RIP (guest RAM).</summary>
    FarCall,
    /// <summary>LSS/LFS/LGS r, m16:16/32/64 (0F B2/B4/B5): segment <see cref="DecodedAccess.SysReg"/> through its descriptor
    /// from the selector, then <see cref="DecodedAccess.Reg"/> = the offset.</summary>
    LoadFarPtr,
}

/// <summary>The arithmetic of an <see cref="AccessKind.Alu"/> access.
/// Beyond the two-operand ALU: the one-operand forms (INC..IDIV), shifts and rotates (count in Imm, or CL when
/// <see cref="DecodedAccess.Reg"/> is RCX at size 1; SHLD/SHRD: CL when there is no Imm), the exchange forms, and the
/// bit-test-and-modify forms (with <see cref="AccessKind.Bt"/>).</summary>
public enum AluOp : byte
{
    None, And, Or, Xor, Add, Sub, Cmp, Test,
    Adc, Sbb, Inc, Dec, Neg, Not,
    Rol, Ror, Rcl, Rcr, Shl, Shr, Sar, Shld, Shrd,
    Xadd, Cmpxchg, Cmpxchg8b, Cmpxchg16b,
    Mul, Imul, Div, Idiv,
    Bts, Btr, Btc,
    /// <summary>BSF, BSR r, m (0F BC/BD; KVM's em_bsf_c/em_bsr_c): the index of the lowest/highest set bit; ZF when the operand is 0.</summary>
    Bsf, Bsr,
}

/// <summary>Why an instruction was refused. Every refusal has one; none is a guess.</summary>
public enum RefuseReason : byte
{
    None,
    /// <summary>The bytes end before the instruction does (fewer than 15 were supplied).</summary>
    Truncated,
    /// <summary>The instruction would exceed 15 bytes (#GP on the CPU).</summary>
    TooLong,
    /// <summary>The opcode is not one of the MMIO/port-I/O forms (or is undefined).</summary>
    UnknownOpcode,
    /// <summary>A memory-operand form whose ModRM names a register (mod = 3): it cannot cause an MMIO exit.</summary>
    RegisterOperand,
    /// <summary>The form does not exist in this mode (MOVSXD outside 64-bit mode, where 63 is ARPL).</summary>
    InvalidInMode,
    /// <summary>LOCK on a form that does not allow it (#UD on the CPU).</summary>
    LockInvalid,
    /// <summary>A recognised opcode whose operation the exit path does not emulate (ADC, SBB, NOT, BTS, C6 /1..7, ...).</summary>
    UnsupportedOp,
}

/// <summary>
/// One decoded MMIO/port-I/O access. Small and blittable so the exit path keeps it on the stack.
/// Register numbers use x86 numbering (RAX = 0 .. R15 = 15). A legacy high-byte register (AH, CH, DH, BH) is
/// <see cref="Reg"/> 0..3 with <see cref="RegHigh8"/> set, so <c>gprs[Reg]</c> is always the register that holds it.
/// </summary>
public struct DecodedAccess
{
    /// <summary>Instruction length in bytes; 0 when refused.</summary>
    public byte Length;
    public AccessKind Kind;
    /// <summary>Bytes accessed in memory or at the port, per element.</summary>
    public byte Size;
    /// <summary>Register operand 0..15, -1 if none.</summary>
    public sbyte Reg;
    /// <summary>The register operand is AH/CH/DH/BH (only possible without REX).</summary>
    public bool RegHigh8;
    /// <summary>Width of the register operand in bytes (MOVZX/MOVSX: the destination width).</summary>
    public byte RegSize;
    public bool HasImm;
    /// <summary>The immediate after the CPU's sign extension to the operand size, as an operand-size value
    /// (so <c>mov dword [x], -1</c> has 0xFFFFFFFF and <c>mov qword [x], -1</c> has -1). BT: the raw imm8.</summary>
    public long Imm;
    /// <summary>F3 or F2 on a string form.</summary>
    public bool Rep;
    /// <summary>CMPS/SCAS with REP: the last of F2/F3 was F2 (REPNE: stop when equal); false means REPE.</summary>
    public bool RepNe;
    /// <summary>SETcc/CMOVcc: the condition, the low nibble of the opcode (0 O, 1 NO, 2 B, ... 15 G).</summary>
    public byte Cond;
    /// <summary>Effective segment 0..5 = ES, CS, SS, DS, FS, GS of the memory operand (MOVS: the ES destination).</summary>
    public byte Segment;
    /// <summary>MOVS: the segment of the rSI source (DS or the override). Every other form: equal to <see cref="Segment"/>.</summary>
    public byte SrcSegment;
    /// <summary>Base register, -1 none, 16 = RIP-relative.</summary>
    public sbyte Base;
    /// <summary>Index register, -1 none.</summary>
    public sbyte Index;
    /// <summary>1, 2, 4 or 8 (1 when there is no index).</summary>
    public byte Scale;
    /// <summary>ModRM displacement sign-extended from its encoded width; moffs zero-extended from the address size.</summary>
    public long Disp;
    /// <summary>2, 4 or 8.</summary>
    public byte AddressSize;
    /// <summary>The mode the bytes were decoded in (linear addresses wrap at 32 bits outside 64-bit mode).</summary>
    public CpuMode Mode;
    public bool PortIsDx;
    public ushort Port;
    public AluOp Op;
    /// <summary>ALU: the memory operand is operand 0 (r/m, reg or r/m, imm). CMP and TEST still write nothing.</summary>
    public bool MemIsDest;
    /// <summary>A locked read-modify-write: an explicit LOCK prefix, or XCHG (always locked).</summary>
    public bool Lock;
    /// <summary>The register a <see cref="AccessKind.SysStore"/>/<see cref="AccessKind.SysLoad"/>/<see cref="AccessKind.SegLoad"/>
    /// form names: a segment 0..5 (ES..GS), or <see cref="Decode.SysReg"/> LDTR, TR, GDTR, IDTR, MSW; CS for the far
    /// branches. For those kinds and the far branches <see cref="RegSize"/> is the operand size (2, 4 or 8), which sizes
    /// a far pointer's offset and an LGDT/LIDT base; <see cref="Reg"/> stays -1.</summary>
    public byte SysReg;
    /// <summary>Alignment the memory operand must have or the CPU raises #GP(0): 16 for MOVAPS/APD/DQA, MOVNTPS/NTPD/NTDQ and
    /// CMPXCHG16B, 64 for MOVDIR64B's destination; 0 when any alignment is allowed.</summary>
    public byte Align;
    public RefuseReason Error;

    /// <summary>Bytes of the whole memory operand: <see cref="Size"/>, except FXSAVE/FXRSTOR's 512 (Size is their piece's).</summary>
    public readonly int OperandBytes => Kind is AccessKind.Fxsave or AccessKind.Fxrstor ? 512 : Size;

    /// <summary>True when the form has a memory operand (everything but IN/OUT).</summary>
    public readonly bool HasMemory => Kind != AccessKind.Unsupported && Kind != AccessKind.In && Kind != AccessKind.Out;
}

/// <summary>Segment register numbers as used in <see cref="DecodedAccess.Segment"/>.</summary>
public static class Seg
{
    public const byte ES = 0, CS = 1, SS = 2, DS = 3, FS = 4, GS = 5;
}

/// <summary>The system registers of <see cref="DecodedAccess.SysReg"/> beyond the six segments (LDTR and TR are the
/// state store's segments 6 and 7).</summary>
public static class SysReg
{
    public const byte Ldtr = 6, Tr = 7, Gdtr = 8, Idtr = 9, Msw = 10;
}

/// <summary>Well-known register numbers.</summary>
public static class Gpr
{
    public const sbyte Rax = 0, Rcx = 1, Rdx = 2, Rbx = 3, Rsp = 4, Rbp = 5, Rsi = 6, Rdi = 7, Rip = 16;
}

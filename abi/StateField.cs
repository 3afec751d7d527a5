namespace Copra.Abi;

/// <summary>
/// Field ids for GET_STATE / SET_STATE. A field id is a u64:
/// <code>
///  63        32 31                 0
///  +-----------+--------------------+
///  |   space   |       index        |
///  +-----------+--------------------+
/// </code>
/// space 0 = architectural registers (below), space 1 = MSR (index = MSR number).
/// </summary>
public static class StateField
{
    // GPRs in x86 encoding order, so a ModRM register number is its field id.
    public const ulong Rax = 0, Rcx = 1, Rdx = 2, Rbx = 3, Rsp = 4, Rbp = 5, Rsi = 6, Rdi = 7;
    public const ulong R8 = 8, R9 = 9, R10 = 10, R11 = 11, R12 = 12, R13 = 13, R14 = 14, R15 = 15;
    public const ulong Rip = 16, Rflags = 17;
    public const ulong Cr0 = 32, Cr2 = 33, Cr3 = 34, Cr4 = 35, Efer = 36;
    /// <summary>DR6, the debug status register (the kernel sets BS when it raises a single-step #DB); resets to 0xFFFF0FF0.</summary>
    public const ulong Dr6 = 37;
    /// <summary>The interruptibility state, in VMX's guest-interruptibility layout: bit 0 blocking by STI, bit 1 blocking
    /// by MOV SS (the interrupt shadow; the kernel sets it when it completes MOV SS or LSS); other bits must be zero. The
    /// VMSA keeps one bit for both (VINTR_CTRL.INT_SHADOW).</summary>
    public const ulong Interruptibility = 38;
    public const ulong BlockingBySti = 1, BlockingByMovSs = 2;
    /// <summary>GDTR and IDTR: base (linear, 64 bits) and limit (16 bits). Reset: base 0, limit 0xFFFF.</summary>
    public const ulong GdtrBase = 24, GdtrLimit = 25, IdtrBase = 26, IdtrLimit = 27;
    /// <summary>Segment fields: <c>SegBase + seg*4 + {0 selector, 1 base, 2 limit, 3 attributes}</c>, seg in x86 order ES CS SS DS FS GS,
    /// then <see cref="Ldtr"/> (6, ids 72..75) and <see cref="Tr"/> (7, ids 76..79).</summary>
    public const ulong SegBase = 48;
    public const ulong ExitReason = 80, ExitQualification = 81, ExitGpa = 82, ExitInstructionLength = 83;
    /// <summary>Pending event to inject: bit 31 valid, bits 7:0 vector, bits 10:8 type.</summary>
    public const ulong PendingEvent = 84;
    /// <summary>XMM registers: <c>XmmBase + n*2 + {0 bits 63:0, 1 bits 127:64}</c>, n = 0..15 (ids 96..127).</summary>
    public const ulong XmmBase = 96;
    // ---- x87/MMX/SSE control state (ids 128..152; issue 14) ----
    /// <summary>x87 control word FCW (16 bits; resets to 0x0040, SDM vol. 3 table 9-1 power-up).</summary>
    public const ulong Fcw = 128;
    /// <summary>x87 status word FSW (16 bits; TOP is bits 13:11).</summary>
    public const ulong Fsw = 129;
    /// <summary>x87 tag word, the FULL 16-bit form (two bits per physical register R0..R7: 00 valid, 01 zero, 10 special,
    /// 11 empty), as the VMSA's x87_ftw holds it; FXSAVE stores the abridged form derived from it. Resets to 0x5555.</summary>
    public const ulong Ftw = 130;
    /// <summary>Last x87 opcode FOP (11 bits).</summary>
    public const ulong Fop = 131;
    /// <summary>Last x87 instruction pointer FIP (64 bits; the non-64-bit FXSAVE layout stores bits 31:0).</summary>
    public const ulong Fip = 132;
    /// <summary>Last x87 data pointer FDP (64 bits; the non-64-bit FXSAVE layout stores bits 31:0).</summary>
    public const ulong Fdp = 133;
    /// <summary>MXCSR (32 bits; resets to 0x1F80; a write with a bit outside <c>MxcsrMask</c> is refused, as FXRSTOR's #GP).</summary>
    public const ulong Mxcsr = 134;
    /// <summary>FCS, the x87 last-instruction code selector (16 bits), stored by the non-64-bit FXSAVE layout.</summary>
    public const ulong Fcs = 135;
    /// <summary>x87 registers: <c>StBase + n*2 + {0 mantissa 63:0, 1 sign and exponent 15:0}</c>, n = 0..7 is ST(n)
    /// (stack order, as FXSAVE and the VMSA's fpreg_x87 store them). MMX register n is the mantissa of physical register
    /// n, that is ST((n - TOP) mod 8).</summary>
    public const ulong StBase = 136;
    /// <summary>FDS, the x87 last-operand data selector (16 bits), stored by the non-64-bit FXSAVE layout.</summary>
    public const ulong Fds = 152;
    /// <summary>The MXCSR bits this model's CPU implements (MXCSR_MASK as FXSAVE stores it): DAZ and every bit below.</summary>
    public const uint MxcsrMask = 0xFFFF;

    /// <summary>The whole VMSA page (SNP only): the values pointer names a 4096-byte buffer; count must be 1.</summary>
    public const ulong VmsaPage = 0xFFFF;

    public const ulong MsrSpace = 1UL << 32;
    public static ulong Msr(uint index) => MsrSpace | index;
    public static ulong Seg(int seg, int part) => SegBase + (ulong)(seg * 4 + part);
    /// <summary>Field id of half <paramref name="high"/> of XMM register <paramref name="n"/>.</summary>
    public static ulong Xmm(int n, bool high) => XmmBase + (ulong)(n * 2) + (high ? 1UL : 0);
    /// <summary>Field id of ST(<paramref name="n"/>)'s mantissa (<paramref name="exponent"/> false) or sign and exponent.</summary>
    public static ulong St(int n, bool exponent) => StBase + (ulong)(n * 2) + (exponent ? 1UL : 0);

    public const int Es = 0, Cs = 1, Ss = 2, Ds = 3, Fs = 4, Gs = 5, Ldtr = 6, Tr = 7;
    public const int Selector = 0, Base = 1, Limit = 2, Attributes = 3;
}

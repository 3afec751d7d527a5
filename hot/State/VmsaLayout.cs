namespace Copra.Hot.State;

/// <summary>
/// Byte offsets of the 4096-byte VMSA-like page that GET_STATE/SET_STATE exchange on SNP
/// (<see cref="Copra.Abi.StateField.VmsaPage"/>). The offsets are those of AMD's SEV-ES save area
/// (APM vol. 2 table B-4, Linux <c>struct sev_es_save_area</c>) for every field the store keeps;
/// every other byte is zero on export and ignored on import.
/// <code>
///  0x000  ES  CS  SS  DS  FS  GS     6 x 16 B: u16 selector | u16 attributes | u32 limit | u64 base
///  0x060  GDTR (limit at 0x064, base at 0x068)   0x070  LDTR   0x080  IDTR (as GDTR)   0x090  TR
///  0x0D0  EFER
///  0x148  CR4    0x150  CR3    0x158  CR0    0x168  DR6
///  0x170  RFLAGS 0x178  RIP    0x1D8  RSP    0x1F8  RAX
///  0x200  STAR   0x208  LSTAR  0x210  CSTAR  0x218  SFMASK  0x220  KERNEL_GS_BASE
///  0x228  SYSENTER_CS  0x230  SYSENTER_ESP  0x238  SYSENTER_EIP  0x240  CR2
///  0x268  G_PAT  0x2EC  TSC_AUX (u32)
///  0x308  RCX RDX RBX (0x320 unused: RSP lives at 0x1D8) RBP RSI RDI R8 .. R15 (to 0x378)
///  0x390  EXITINFO1 (qualification)  0x398  EXITINFO2 (GPA)  0x3C0  EXITCODE (reason)   export only
///  0x3B8  VINTR_CTRL (bit 10 INT_SHADOW: the interruptibility field, either blocking bit)
///  0x3E0  EVENTINJ (pending event)
///  0x400  X87_DP  0x408 MXCSR (u32)  0x40C X87_FTW  0x40E X87_FSW  0x410 X87_FCW  0x412 X87_FOP  (u16 each)
///  0x414  X87_DS  0x416 X87_CS (u16)  0x418 X87_RIP  0x420 FPREG_X87 (ST0..ST7, 10 B each: mantissa, then sign+exponent)
///  0x470  XMM0 .. XMM15 (16 x 16 B, fpreg_xmm; COCONUT-SVSM cpuarch/src/vmsa.rs)
/// </code>
/// Attributes use the packed form of <see cref="SegmentAttributes"/>, which is the VMSA's own.
/// </summary>
public static class VmsaLayout
{
    public const int Size = 4096;
    public const int SegmentStride = 16;
    public const int SegSelector = 0, SegAttributes = 2, SegLimit = 4, SegBase = 8;
    public const int Efer = 0x0D0;
    public const int Cr4 = 0x148, Cr3 = 0x150, Cr0 = 0x158, Dr6 = 0x168;
    public const int Rflags = 0x170, Rip = 0x178, Rsp = 0x1D8, Rax = 0x1F8;
    public const int Star = 0x200, Lstar = 0x208, Cstar = 0x210, Sfmask = 0x218, KernelGsBase = 0x220;
    public const int SysenterCs = 0x228, SysenterEsp = 0x230, SysenterEip = 0x238, Cr2 = 0x240;
    public const int GPat = 0x268, TscAux = 0x2EC;
    public const int Rcx = 0x308, Rdx = 0x310, Rbx = 0x318, Rbp = 0x328, Rsi = 0x330, Rdi = 0x338, R8 = 0x340;
    public const int ExitInfo1 = 0x390, ExitInfo2 = 0x398, ExitCode = 0x3C0, EventInj = 0x3E0;
    /// <summary>VINTR_CTRL and its INT_SHADOW bit (COCONUT-SVSM cpuarch/src/vmsa.rs VIntrCtrl: v_tpr 7:0, v_irq 8, vgif 9, int_shadow 10).</summary>
    public const int VintrCtrl = 0x3B8, IntShadowBit = 10;
    public const int XmmFirst = 0x470;
    public const int X87Dp = 0x400, Mxcsr = 0x408, X87Ftw = 0x40C, X87Fsw = 0x40E, X87Fcw = 0x410, X87Fop = 0x412;
    public const int X87Ds = 0x414, X87Cs = 0x416, X87Rip = 0x418, FpregX87 = 0x420;

    /// <summary>Offset of ST(<paramref name="n"/>) in FPREG_X87 (10 bytes each).</summary>
    public static int St(int n) => FpregX87 + n * 10;

    /// <summary>Offset of XMM register <paramref name="n"/> (16 bytes each, little-endian).</summary>
    public static int Xmm(int n) => XmmFirst + n * 16;

    /// <summary>GDTR and IDTR: VMSA segment slots of which only limit (u32, 16 bits used) and base are meaningful.</summary>
    public const int Gdtr = 0x060, Ldtr = 0x070, Idtr = 0x080, Tr = 0x090;

    /// <summary>Offset of segment <paramref name="seg"/> (x86 order ES CS SS DS FS GS, then 6 LDTR, 7 TR: the VMSA
    /// puts GDTR between GS and LDTR and IDTR between LDTR and TR).</summary>
    public static int Segment(int seg) => seg switch { 6 => Ldtr, 7 => Tr, _ => seg * SegmentStride };

    /// <summary>Offset of GPR <paramref name="r"/> in x86 encoding order (RAX=0 .. R15=15).</summary>
    public static int Gpr(int r) => r switch
    {
        0 => Rax,
        1 => Rcx,
        2 => Rdx,
        3 => Rbx,
        4 => Rsp,
        5 => Rbp,
        6 => Rsi,
        7 => Rdi,
        _ => R8 + (r - 8) * 8,
    };
}

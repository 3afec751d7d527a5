// Design note — the architectural checks an emulated access must pass before it touches memory or a port, and
// the single-step trap after it.
//
// The CPU makes these checks itself when it runs an instruction; an emulator that finishes the instruction for it
// must make them again, or a guest gets a device access (with side effects) that its own CPU would have refused.
// Sources: Intel SDM vol. 3 ch. 5 (segment protection), §6.15 (#NP, #SS, #GP, #AC, #DB), table 6-7 (alignment
// by data type), §18.3.1.4 (single step), §20.2 / §16.5 (I/O permission), and the "Exceptions" sections of the
// MOV, string, IN/OUT pages of vol. 2. OpenHCL's x86emu makes the same family of checks (the reference notes on
// emulator coverage); where Copra decides differently the reason is written beside the rule.
//
// Callers: the exit path, once per element (an element is one read and/or one write), before any side of the
// element is performed, on the kernel-emulated path only (a hardware backend that finishes the instruction has
// made the checks itself). Pure functions over values, except CheckElement, which reads the segment registers it
// needs from the state store (charged like any other read; none in 64-bit mode).
//
// Order (SDM §6.15 "exception priority", faults during execution): #NP, #SS, #GP (segment), then the page walk's
// #PF, then #AC. The alignment check is made here with the others so nothing reaches a device first; when it
// fails, the caller walks the page before raising #AC so a not-present page still reports #PF.

using System.Runtime.CompilerServices;
using Copra.Hot.Decode;
using Copra.Hot.State;

namespace Copra.Hot.Emulate;

/// <summary>An exception the guest must see instead of the access, or none (<see cref="Raised"/> false).</summary>
public readonly struct Fault
{
    public const byte VectorDb = 1, VectorUd = 6, VectorNp = 11, VectorSs = 12, VectorGp = 13, VectorAc = 17;

    public readonly byte Vector;
    public readonly bool Raised;
    public readonly bool HasErrorCode;
    public readonly uint ErrorCode;
    /// <summary>What raised it (for the counters and the narration).</summary>
    public readonly FaultCause Cause;

    Fault(byte vector, bool hasError, uint error, FaultCause cause) { Vector = vector; Raised = true; HasErrorCode = hasError; ErrorCode = error; Cause = cause; }

    public static Fault None => default;
    public static Fault Gp(uint error, FaultCause cause) => new(VectorGp, true, error, cause);
    public static Fault Ss(uint error) => new(VectorSs, true, error, FaultCause.Segment);
    public static Fault Np(uint error) => new(VectorNp, true, error, FaultCause.Segment);
    /// <summary>#AC(0): the error code is always zero.</summary>
    public static Fault Ac => new(VectorAc, true, 0, FaultCause.Alignment);
    /// <summary>#UD: an instruction the mode does not have (SLDT/STR/LLDT/LTR in real and virtual-8086 mode).</summary>
    public static Fault Ud => new(VectorUd, false, 0, FaultCause.Privilege);
    /// <summary>Marks a fault already injected by whoever found it (<see cref="FaultCause.Injected"/>): raise nothing more.</summary>
    public static Fault Injected => new(0, false, 0, FaultCause.Injected);
    /// <summary>#DB (a trap: no error code; DR6 says why).</summary>
    public static Fault Db => new(VectorDb, false, 0, FaultCause.SingleStep);

    public override string ToString() => !Raised ? "none" : HasErrorCode ? $"vector {Vector} ({Cause}, error 0x{ErrorCode:x})" : $"vector {Vector} ({Cause})";
}

/// <summary>Which check raised a <see cref="Fault"/>.</summary>
public enum FaultCause : byte
{
    None, Segment, Canonical, Alignment, IoPrivilege, SingleStep, Privilege,
    /// <summary>An implicit access (a descriptor-table read) faulted in the page walk and the caller injected that fault itself.</summary>
    Injected,
}

/// <summary>The processor mode as the segment checks see it.</summary>
public enum SegMode : byte
{
    /// <summary>CR0.PE = 0: only the (cached) limit is checked.</summary>
    Real,
    /// <summary>Protected mode with RFLAGS.VM: CPL 3, limits only, I/O always through the TSS bitmap.</summary>
    Virtual8086,
    /// <summary>16- or 32-bit protected mode, and IA-32e compatibility mode: every segment check.</summary>
    Protected,
    /// <summary>64-bit code: no segment checks, only the canonical check.</summary>
    Long64,
}

/// <summary>How an element uses a memory operand.</summary>
[Flags]
public enum MemUse : byte { None = 0, Read = 1, Write = 2, ReadWrite = Read | Write }

/// <summary>What the checks need to know about the vCPU, derived once per exit from state the exit path already read.</summary>
public readonly struct FaultContext
{
    public readonly SegMode Mode;
    public readonly byte Cpl;
    public readonly ulong Cr0;
    /// <summary>RFLAGS when the instruction started (TF there decides the single-step trap).</summary>
    public readonly ulong Rflags;
    /// <summary>CR4.LA57: linear addresses are 57 bits wide.</summary>
    public readonly bool La57;
    /// <summary>The port and width the hardware reported for a port-I/O exit (width 0: not reported).</summary>
    public readonly ushort ReportedPort;
    public readonly byte ReportedSize;
    /// <summary>CR4 at the exit (SMEP and SMAP decide the page walks' supervisor checks).</summary>
    public readonly ulong Cr4;

    public FaultContext(SegMode mode, int cpl, ulong cr0, ulong rflags, bool la57, ushort reportedPort, byte reportedSize, ulong cr4 = 0)
    {
        Mode = mode; Cpl = (byte)cpl; Cr0 = cr0; Rflags = rflags; La57 = la57; ReportedPort = reportedPort; ReportedSize = reportedSize; Cr4 = cr4;
    }

    public const ulong Cr0Pe = 1, Cr0Am = 1UL << 18, Cr4La57 = 1UL << 12;
    public const ulong RflagsTf = 1UL << 8, RflagsIoplMask = 3UL << 12, RflagsAc = 1UL << 18, RflagsVm = 1UL << 17;
    public const int RflagsIoplShift = 12;

    /// <summary>The segment-check mode for code of <paramref name="mode"/> under these CR0/RFLAGS.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static SegMode ModeOf(CpuMode mode, ulong cr0, ulong rflags) =>
        mode == CpuMode.Bits64 ? SegMode.Long64
        : (cr0 & Cr0Pe) == 0 ? SegMode.Real
        : (rflags & RflagsVm) != 0 ? SegMode.Virtual8086
        : SegMode.Protected;

    /// <summary>
    /// True when the CPL cannot be taken from CS: a conforming code segment runs at the caller's CPL, which only
    /// SS.DPL records (SDM vol. 3 §5.8.1.1). Otherwise CS.DPL is the CPL, and the exit path has CS's attributes already.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool CplNeedsSs(SegMode mode, ushort csAttributes) =>
        mode is SegMode.Protected or SegMode.Long64 && (csAttributes & 0xC) == 0xC;

    /// <summary>
    /// The CPL: 0 in real mode, 3 in virtual-8086 mode, else the DPL of <paramref name="dplSource"/> (CS's attributes,
    /// or SS's when <see cref="CplNeedsSs"/>). Why not a CPL field: the state store has none, and SS.DPL is what VMX and
    /// KVM use; CS.DPL equals it for every non-conforming CS and costs no extra TDG.VP.RD.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int CplOf(SegMode mode, ushort dplSource) => mode switch
    {
        SegMode.Real => 0,
        SegMode.Virtual8086 => 3,
        _ => (dplSource & SegmentAttributes.DplMask) >> SegmentAttributes.DplShift,
    };

    public int Iopl => (int)((Rflags & RflagsIoplMask) >> RflagsIoplShift);
    public bool SingleStep
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]   // read at every instruction's end: a call for one test
        get => (Rflags & RflagsTf) != 0;
    }

    /// <summary>
    /// Whether any check of <see cref="Faults.CheckElement"/> can fire for <paramref name="d"/>, decided once per exit so
    /// the common case (64-bit code, alignment checking off, port access within IOPL, no SS-based operand) pays one
    /// branch per element. In 64-bit mode only an SS-based operand needs them (its non-canonical address is #SS(0)); the
    /// exit path checks every other address for #GP(0) just before it walks it.
    /// </summary>
    public bool ChecksNeeded(in DecodedAccess d)
    {
        if (Mode != SegMode.Long64) return true;
        if ((Rflags & RflagsAc) != 0 && (Cr0 & Cr0Am) != 0 && Cpl == 3) return true;
        if (d.Kind is AccessKind.In or AccessKind.Out or AccessKind.Ins or AccessKind.Outs && Cpl > Iopl) return true;
        return d.Segment == Seg.SS || d.SrcSegment == Seg.SS;
    }
}

/// <summary>The checks themselves.</summary>
public static class Faults
{
    /// <summary>Selector error code: index, TI (bit 2); EXT and IDT are 0 for a fault raised by the instruction.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint SelectorError(ushort selector) => (uint)(selector & 0xFFFC);

    /// <summary>
    /// One reference to <paramref name="size"/> bytes at <paramref name="offset"/> (already truncated to the address
    /// size) through segment <paramref name="seg"/> (0..5, ES CS SS DS FS GS), outside 64-bit mode.
    /// Real and virtual-8086 mode check only the limit; protected mode checks, in the order the CPU reports them:
    /// null selector (DS/ES/FS/GS: #GP(0)), presence (#NP(sel), #SS(sel) for SS), descriptor type and privilege
    /// (#GP(sel)), writability (#GP(0)), readability of code (#GP(0)), and the limit (#GP(0), #SS(0) for SS).
    /// </summary>
    public static Fault Segment(SegMode mode, int cpl, int seg, ushort selector, ushort attributes, uint limit, ulong offset, uint size, MemUse use)
    {
        bool stack = seg == Seg.SS;
        int type = attributes & SegmentAttributes.TypeMask;
        bool code = (type & 8) != 0;
        if (mode == SegMode.Protected)
        {
            if (seg == Seg.CS)
            {
                // CS always holds a present code segment the CPU is executing from: no presence or privilege check.
                if ((use & MemUse.Write) != 0 || (use & MemUse.Read) != 0 && (type & 2) == 0) return Fault.Gp(0, FaultCause.Segment);
            }
            else
            {
                // Why SS is exempt: a null SS exists only in 64-bit mode, where nothing here is checked.
                if (!stack && (selector & 0xFFFC) == 0) return Fault.Gp(0, FaultCause.Segment);
                uint sel = SelectorError(selector);
                if ((attributes & SegmentAttributes.P) == 0) return stack ? Fault.Ss(sel) : Fault.Np(sel);
                // The checks MOV Sreg made when the register was loaded, made again on the cached descriptor: a VMM can
                // load any attributes through SET_STATE, and the CPU would never have let such a segment be used.
                if ((attributes & SegmentAttributes.S) == 0) return Fault.Gp(sel, FaultCause.Segment);
                int dpl = (attributes & SegmentAttributes.DplMask) >> SegmentAttributes.DplShift;
                int rpl = selector & 3;
                if (stack)
                {
                    if (code || (type & 2) == 0 || rpl != cpl || dpl != cpl) return Fault.Gp(sel, FaultCause.Segment);
                }
                else
                {
                    if (code && (type & 2) == 0) return Fault.Gp(sel, FaultCause.Segment);   // execute-only code in a data register
                    bool conforming = code && (type & 4) != 0;
                    if (!conforming && (cpl > dpl || rpl > dpl)) return Fault.Gp(sel, FaultCause.Segment);
                }
                if ((use & MemUse.Write) != 0 && (code || (type & 2) == 0)) return Fault.Gp(0, FaultCause.Segment);
            }
        }
        if (!WithinLimit(attributes, limit, offset, size)) return stack ? Fault.Ss(0) : Fault.Gp(0, FaultCause.Segment);
        return Fault.None;
    }

    /// <summary>
    /// The limit rule (SDM vol. 3 §5.3): an expand-up segment holds offsets 0..limit; an expand-down data segment holds
    /// limit+1 .. 0xFFFF (or 0xFFFFFFFF with D/B). Every byte of the access must be inside; the last byte is computed
    /// without wrapping, so an access that wraps past the top of the segment is outside.
    /// </summary>
    public static bool WithinLimit(ushort attributes, uint limit, ulong offset, uint size)
    {
        ulong last = offset + size - 1;
        int type = attributes & SegmentAttributes.TypeMask;
        bool expandDown = (attributes & SegmentAttributes.S) != 0 && (type & 0xC) == 0x4;
        if (!expandDown) return last <= limit;
        ulong top = (attributes & SegmentAttributes.Db) != 0 ? 0xFFFF_FFFFUL : 0xFFFFUL;
        return offset > limit && last <= top;
    }

    /// <summary>
    /// 64-bit mode: the first and the last byte must be canonical (48 or, with LA57, 57 bits); else #SS(0) for an
    /// SS-based reference (base rSP/rBP), #GP(0) for any other (SDM vol. 3 §3.3.7.1).
    /// </summary>
    public static Fault Canonical(ulong linear, uint size, bool stack, bool la57)
    {
        int bits = la57 ? 57 : 48;
        if (IsCanonical(linear, bits) && IsCanonical(linear + size - 1, bits)) return Fault.None;
        return stack ? Fault.Ss(0) : Fault.Gp(0, FaultCause.Canonical);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static bool IsCanonical(ulong a, int bits) => (ulong)((long)(a << (64 - bits)) >> (64 - bits)) == a;

    /// <summary>
    /// #AC(0): CPL 3, CR0.AM and RFLAGS.AC all set, and the address not a multiple of <paramref name="alignment"/>
    /// (SDM vol. 3 §6.15 "Interrupt 17"). Real mode never has CPL 3, so it never faults.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Misaligned(in FaultContext c, ulong linear, uint alignment) =>
        (c.Rflags & FaultContext.RflagsAc) != 0 && (c.Cr0 & FaultContext.Cr0Am) != 0 && c.Cpl == 3 && (linear & (alignment - 1)) != 0;

    /// <summary>
    /// The alignment an access must have under alignment checking, by SDM vol. 3 table 6-7: the operand size for
    /// word, doubleword, quadword and double-quadword data (1 byte: none); a bit string (BT/BTS/BTR/BTC with a
    /// memory operand) 2 for a 16-bit operand and 4 otherwise, as the table gives for bit strings.
    /// </summary>
    public static uint AlignmentOf(in DecodedAccess d)
    {
        if (d.Kind == AccessKind.Bt) return d.Size == 2 ? 2u : 4u;
        uint s = d.Size;
        return s is 2 or 4 or 8 or 16 ? s : 1;
    }

    /// <summary>
    /// IN/OUT/INS/OUTS: allowed in real mode, and in protected mode when CPL ≤ IOPL. Otherwise (and always in
    /// virtual-8086 mode, where IOPL does not apply to I/O) the TSS I/O permission bitmap decides, and Copra keeps no
    /// view of the guest's TR/TSS. The CPU checks the bitmap before it takes the I/O exit (SDM vol. 3 §26.1.1, AMD
    /// APM vol. 2 §15.10), so the exit itself says the bitmap allowed the port and width the hardware reported; the
    /// kernel allows exactly that and raises #GP(0) for any other port or width (the code changed under the exit), or
    /// when the platform did not report them. Why not plain "#GP when CPL > IOPL" (x86emu): it would break every guest
    /// that grants ports through the bitmap (Linux ioperm()).
    /// </summary>
    public static Fault IoPermission(in FaultContext c, ushort port, uint size)
    {
        if (c.Mode == SegMode.Real) return Fault.None;
        if (c.Mode != SegMode.Virtual8086 && c.Cpl <= c.Iopl) return Fault.None;
        if (c.ReportedSize != 0 && port == c.ReportedPort && size == c.ReportedSize) return Fault.None;
        return Fault.Gp(0, FaultCause.IoPrivilege);
    }

    /// <summary>DR6 after a single-step trap: BS (bit 14) set, every other bit kept (SDM vol. 3 §18.2.3: the CPU never
    /// clears the other status bits).</summary>
    public static ulong Dr6AfterSingleStep(ulong dr6) => dr6 | Dr6Bs;

    public const ulong Dr6Bs = 1UL << 14;

    /// <summary>
    /// Every check one element needs before it is performed: the port permission for the port side, then for each
    /// memory side the segment checks (outside 64-bit mode) or the canonical check (in it), then alignment. Reads the
    /// segment registers it needs from <paramref name="state"/> (none in 64-bit mode but FS/GS bases, which the caller
    /// passes already). <paramref name="misalignedLinear"/> and <paramref name="misalignedWrite"/> name the side that failed
    /// #AC (the caller walks it first so a #PF wins, as it does on the CPU).
    /// </summary>
    public static Fault CheckElement(VcpuStateStore state, int v, in DecodedAccess d, in FaultContext c, ulong nextRip, ulong segBase, ulong esBase, out ulong misalignedLinear, out bool misalignedWrite)
    {
        misalignedLinear = 0;
        misalignedWrite = false;
        if (d.Kind is AccessKind.In or AccessKind.Out or AccessKind.Ins or AccessKind.Outs)
        {
            ushort port = d.PortIsDx ? (ushort)state.Gpr(v, Gpr.Rdx) : d.Port;
            var f = IoPermission(in c, port, d.Size);
            if (f.Raised || d.Kind is AccessKind.In or AccessKind.Out) return f;
        }
        var gprs = state.Gprs(v);
        uint align = AlignmentOf(in d);
        // Up to two memory sides: the rSI source and the rDI destination of a string form, or the one ModRM operand.
        for (int side = 0; side < 2; side++)
        {
            if (!Side(in d, gprs, nextRip, side, out int seg, out ulong offset, out MemUse use)) continue;
            // The exit path's bases: the rDI side is always ES; side 0 is d.SrcSegment (= d.Segment but for MOVS/CMPS).
            ulong linear = (side == 1 ? esBase : segBase) + offset;
            if (c.Mode == SegMode.Long64)
            {
                var f = Canonical(linear, d.Size, seg == Seg.SS, c.La57);
                if (f.Raised) return f;
            }
            else
            {
                var f = Segment(c.Mode, c.Cpl, seg, state.SegSelector(v, seg), state.SegAttributes(v, seg), state.SegLimit(v, seg), offset, d.Size, use);
                if (f.Raised) return f;
                linear &= 0xFFFF_FFFFUL;
            }
            if (Misaligned(in c, linear, align)) { misalignedLinear = linear; misalignedWrite = (use & MemUse.Write) != 0; return Fault.Ac; }
        }
        return Fault.None;
    }

    /// <summary>
    /// Memory side <paramref name="side"/> of one element: 0 = the rSI source of a string form, or the ModRM/moffs
    /// operand; 1 = the ES:rDI destination of a string form. False when the element has no such side.
    /// </summary>
    public static bool Side(in DecodedAccess d, ReadOnlySpan<ulong> gprs, ulong nextRip, int side, out int seg, out ulong offset, out MemUse use)
    {
        ulong mask = X86Decoder.SizeMask(d.AddressSize);
        seg = 0; offset = 0; use = MemUse.None;
        switch (d.Kind)
        {
            case AccessKind.Movs or AccessKind.Cmps:
                if (side == 0) { seg = d.SrcSegment; offset = gprs[Gpr.Rsi] & mask; use = MemUse.Read; }
                else { seg = Seg.ES; offset = gprs[Gpr.Rdi] & mask; use = d.Kind == AccessKind.Movs ? MemUse.Write : MemUse.Read; }
                return true;
            case AccessKind.Lods or AccessKind.Outs:
                if (side != 0) return false;
                seg = d.SrcSegment; offset = gprs[Gpr.Rsi] & mask; use = MemUse.Read;
                return true;
            case AccessKind.Stos or AccessKind.Ins or AccessKind.Scas:
                if (side != 1) return false;
                seg = Seg.ES; offset = gprs[Gpr.Rdi] & mask; use = d.Kind == AccessKind.Scas ? MemUse.Read : MemUse.Write;
                return true;
            case AccessKind.Movdir64b:   // reads its ModRM source through the (overridable) segment, writes ES:[reg]
                if (side == 0) { seg = d.SrcSegment; offset = EffectiveAddress.Offset(in d, gprs, nextRip); use = MemUse.Read; }
                else { seg = Seg.ES; offset = gprs[d.Reg] & mask; use = MemUse.Write; }
                return true;
            case AccessKind.Unsupported or AccessKind.In or AccessKind.Out:
                return false;
            default:
                if (side != 0) return false;
                seg = d.Segment;
                offset = EffectiveAddress.Offset(in d, gprs, nextRip);
                if (d.Kind == AccessKind.Pop) offset = StackOps.PopDestinationOffset(in d, offset);
                use = UseOf(in d);
                return true;
        }
    }

    /// <summary>How a non-string form uses its memory operand (the CPU checks writability before a read-modify-write reads).</summary>
    public static MemUse UseOf(in DecodedAccess d) => d.Kind switch
    {
        AccessKind.Write or AccessKind.WriteImm or AccessKind.Setcc or AccessKind.Pop or AccessKind.SysStore or AccessKind.WriteVec
            or AccessKind.Fnstcw or AccessKind.Fnstsw or AccessKind.MmxWrite or AccessKind.Fxsave => MemUse.Write,
        AccessKind.Xchg => MemUse.ReadWrite,
        AccessKind.Bt => d.Op == AluOp.None ? MemUse.Read : MemUse.ReadWrite,
        AccessKind.Alu => !d.MemIsDest || d.Op is AluOp.Cmp or AluOp.Test or AluOp.Mul or AluOp.Imul or AluOp.Div or AluOp.Idiv ? MemUse.Read : MemUse.ReadWrite,
        _ => MemUse.Read,
    };
}

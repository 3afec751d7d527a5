// Design note — the system-state forms and the segment loads (SDM vol. 2: SGDT, SIDT, SLDT, STR, SMSW, LGDT, LIDT, LLDT,
// LTR, LMSW, MOV Sreg, JMP far, CALL far; vol. 3 §3.4-3.5 and §5.4-5.8 for the descriptor checks; KVM's emulate.c
// __load_segment_descriptor, em_lgdt_lidt, em_lldt, em_ltr, em_jmp_far, em_call_far for what a production emulator does).
//
// The memory operand of these forms is the MMIO side, as for every other form: the device receives the bytes SGDT or
// MOV m16, Sreg store, or supplies the pointer, selector or limit:base the loads take. The descriptor tables (GDT, LDT)
// are guest RAM, read (and their accessed/busy bits written) by the exit path through the page walk
// (hot/Exit/ExitPipeline.System.cs). This unit is the arithmetic and the rules, pure functions over values: where a
// selector's descriptor is, whether the descriptor may be loaded into a register (and which fault if not), what the
// register caches afterwards, and the bytes a store writes. Nothing here touches state or memory, so every rule has a
// unit test that names its fault and error code (tests/Emulate/SystemRuleTests.cs); none of these forms can run natively
// in the CPU oracle (they are privileged or change segmentation), so the SDM's rules are the oracle.

using Copra.Hot.Decode;
using Copra.Hot.Guest;
using Copra.Hot.State;

namespace Copra.Hot.Emulate;

/// <summary>The descriptor tables a selector can name: GDTR, and LDTR's cached base/limit (usable when present).</summary>
public readonly record struct DescriptorTables(ulong GdtBase, ushort GdtLimit, ulong LdtBase, uint LdtLimit, bool LdtUsable);

/// <summary>Rules and arithmetic of the system-state forms and the segment loads.</summary>
public static class SystemOps
{
    public const ulong Cr4Umip = 1UL << 11;
    public const ulong Cr0Pe = 1;

    /// <summary>
    /// The fault the instruction raises before it touches anything, from its privilege and mode alone:
    /// SLDT, STR, LLDT, LTR are #UD in real and virtual-8086 mode; the loads (LGDT, LIDT, LLDT, LTR, LMSW) are #GP(0) at
    /// CPL > 0; the stores SGDT, SIDT, SLDT, STR, SMSW are #GP(0) at CPL > 0 when CR4.UMIP is set (else allowed at any CPL,
    /// as the CPU allows them). MOV Sreg and far JMP/CALL have no such check (their descriptor's checks come later).
    /// </summary>
    public static Fault PrivilegeFault(in DecodedAccess d, SegMode mode, int cpl, ulong cr4)
    {
        bool store = d.Kind == AccessKind.SysStore, load = d.Kind == AccessKind.SysLoad;
        if (!store && !load) return Fault.None;
        if (d.SysReg < SysReg.Ldtr) return Fault.None;   // MOV m16, Sreg
        if (d.SysReg is SysReg.Ldtr or SysReg.Tr && mode is SegMode.Real or SegMode.Virtual8086) return Fault.Ud;
        if (load && cpl > 0) return Fault.Gp(0, FaultCause.Privilege);
        if (store && cpl > 0 && (cr4 & Cr4Umip) != 0) return Fault.Gp(0, FaultCause.Privilege);
        return Fault.None;
    }

    // ---- stores ------------------------------------------------------------------------------

    /// <summary>
    /// The bytes SGDT/SIDT store, little-endian into <paramref name="dest"/> (6 or 10 bytes: <c>d.Size</c>): the 16-bit
    /// limit, then the base, 32 bits outside 64-bit mode (the whole 32-bit base whatever the operand size, as the SDM's
    /// SGDT operation gives it for processors since the 386) and 64 bits in it.
    /// </summary>
    public static void DescriptorTableImage(ushort limit, ulong @base, Span<byte> dest)
    {
        dest[0] = (byte)limit;
        dest[1] = (byte)(limit >> 8);
        for (int i = 2; i < dest.Length; i++) dest[i] = (byte)(@base >> (8 * (i - 2)));
    }

    /// <summary>SMSW m16: the low 16 bits of CR0 (PE, MP, EM, TS, ET, NE and the reserved bits as CR0 holds them).</summary>
    public static ushort Msw(ulong cr0) => (ushort)cr0;

    // ---- LGDT, LIDT, LMSW --------------------------------------------------------------------

    /// <summary>
    /// LGDT/LIDT's operand, <paramref name="src"/> (6 or 10 bytes): limit = bytes 0..1; base = bytes 2..9 in 64-bit mode,
    /// else bytes 2..5, of which a 16-bit operand size keeps 24 bits. In 64-bit mode a non-canonical base is #GP(0) (KVM's
    /// em_lgdt_lidt; the CPU would fault on the first use of such a table).
    /// </summary>
    public static Fault LoadDescriptorTable(ReadOnlySpan<byte> src, int operandSize, bool is64, bool la57, out ushort limit, out ulong @base)
    {
        limit = (ushort)(src[0] | src[1] << 8);
        @base = 0;
        int n = is64 ? 8 : 4;
        for (int i = 0; i < n; i++) @base |= (ulong)src[2 + i] << (8 * i);
        if (!is64 && operandSize == 2) @base &= 0x00FF_FFFF;
        if (is64 && !PageWalker.IsCanonical(@base, la57 ? 57 : 48)) return Fault.Gp(0, FaultCause.Privilege);
        return Fault.None;
    }

    /// <summary>LMSW: CR0 bits 0..3 (PE, MP, EM, TS) from the operand, except that PE is never cleared.</summary>
    public static ulong Lmsw(ulong cr0, ushort msw) => (cr0 & ~0xFUL) | (msw & 0xFUL) | (cr0 & Cr0Pe);

    // ---- descriptors -------------------------------------------------------------------------

    /// <summary>A selector's descriptor slot: the linear address of its first byte. #GP(sel) when TI names an LDT that is
    /// not usable, or the slot's last byte (<paramref name="bytes"/> 8, or 16 for a system descriptor in long mode) is past
    /// the table's limit. The caller has dealt with a null selector.</summary>
    public static Fault Locate(ushort selector, in DescriptorTables t, int bytes, out ulong linear)
    {
        bool ldt = (selector & 4) != 0;
        ulong offset = (ulong)(selector & 0xFFF8);
        linear = (ldt ? t.LdtBase : t.GdtBase) + offset;
        ulong limit = ldt ? t.LdtLimit : t.GdtLimit;
        if (ldt && !t.LdtUsable) return Fault.Gp(Faults.SelectorError(selector), FaultCause.Segment);
        if (offset + (ulong)bytes - 1 > limit) return Fault.Gp(Faults.SelectorError(selector), FaultCause.Segment);
        return Fault.None;
    }

    /// <summary>True when the selector names no descriptor (index 0 in the GDT; its RPL is ignored).</summary>
    public static bool IsNull(ushort selector) => (selector & 0xFFFC) == 0;

    /// <summary>Packed attributes (<see cref="SegmentAttributes"/>) of a raw descriptor.</summary>
    public static ushort Attributes(ulong descriptor) => SegmentAttributes.FromDescriptor(descriptor);

    /// <summary>
    /// The register cache a descriptor gives: base (bits 63:32 from <paramref name="high"/> for a 16-byte system
    /// descriptor in long mode), the byte-granular limit (G scales the 20-bit limit by 4 KiB, filling the low 12 bits),
    /// and the packed attributes. <paramref name="selector"/> is stored as given.
    /// </summary>
    public static SegmentState Cache(ushort selector, ulong descriptor, ulong high, bool system64)
    {
        ulong @base = ((descriptor >> 16) & 0xFF_FFFF) | ((descriptor >> 32) & 0xFF00_0000);
        if (system64) @base |= high << 32;
        uint raw = (uint)((descriptor & 0xFFFF) | ((descriptor >> 32) & 0xF_0000));
        ushort attr = Attributes(descriptor);
        uint limit = (attr & SegmentAttributes.G) != 0 ? (raw << 12) | 0xFFF : raw;
        return new SegmentState(selector, @base, limit, attr);
    }

    /// <summary>The descriptor with its accessed bit (type bit 0, descriptor bit 40) set.</summary>
    public static ulong WithAccessed(ulong descriptor) => descriptor | 1UL << 40;

    /// <summary>A TSS descriptor marked busy (type bit 1, descriptor bit 41).</summary>
    public static ulong WithBusy(ulong descriptor) => descriptor | 1UL << 41;

    // ---- MOV Sreg, m16 -----------------------------------------------------------------------

    /// <summary>
    /// MOV <paramref name="seg"/>, selector in protected mode (16/32-bit and long mode), the checks after the descriptor
    /// was read (SDM vol. 2 MOV, "Operation", and vol. 3 §5.10.1):
    /// SS: RPL = CPL, else #GP(sel); a writable data segment, else #GP(sel); DPL = CPL, else #GP(sel); present, else #SS(sel).
    /// DS/ES/FS/GS: a data or readable code segment, else #GP(sel); for data and non-conforming code, RPL ≤ DPL and
    /// CPL ≤ DPL, else #GP(sel); present, else #NP(sel). A system descriptor is #GP(sel) in every register.
    /// </summary>
    public static Fault CheckSegmentLoad(int seg, ushort selector, ulong descriptor, int cpl)
    {
        ushort attr = Attributes(descriptor);
        uint sel = Faults.SelectorError(selector);
        int type = attr & SegmentAttributes.TypeMask;
        bool code = (type & 8) != 0;
        int dpl = (attr & SegmentAttributes.DplMask) >> SegmentAttributes.DplShift;
        int rpl = selector & 3;
        bool present = (attr & SegmentAttributes.P) != 0;
        if ((attr & SegmentAttributes.S) == 0) return Fault.Gp(sel, FaultCause.Segment);
        if (seg == Seg.SS)
        {
            if (rpl != cpl || code || (type & 2) == 0 || dpl != cpl) return Fault.Gp(sel, FaultCause.Segment);
            return present ? Fault.None : Fault.Ss(sel);
        }
        if (code && (type & 2) == 0) return Fault.Gp(sel, FaultCause.Segment);   // execute-only code
        bool conforming = code && (type & 4) != 0;
        if (!conforming && (rpl > dpl || cpl > dpl)) return Fault.Gp(sel, FaultCause.Segment);
        return present ? Fault.None : Fault.Np(sel);
    }

    /// <summary>
    /// MOV Sreg with a null selector: allowed for DS, ES, FS, GS (the register becomes unusable); for SS #GP(0) except
    /// in 64-bit mode at CPL &lt; 3 with RPL = CPL (SDM vol. 2 MOV: "64-bit mode ... SS can be loaded with a null selector").
    /// </summary>
    public static Fault NullSegmentLoad(int seg, ushort selector, int cpl, bool is64) =>
        seg != Seg.SS || (is64 && cpl < 3 && (selector & 3) == cpl) ? Fault.None : Fault.Gp(0, FaultCause.Segment);

    /// <summary>What a null selector leaves in the register: selector, base 0, limit 0, unusable (P clear); a null SS
    /// keeps DPL = CPL (the CPL lives there for SVM and KVM).</summary>
    public static SegmentState NullCache(int seg, ushort selector, int cpl) =>
        new(selector, 0, 0, seg == Seg.SS ? (ushort)(cpl << SegmentAttributes.DplShift) : (ushort)0);

    /// <summary>Real and virtual-8086 mode: the selector is a paragraph number; base = selector × 16. Virtual-8086 mode
    /// also gives the 64 KiB limit and DPL-3 read/write data attributes; real mode keeps the cached limit and attributes.</summary>
    public static SegmentState RealModeCache(ushort selector, uint limit, ushort attributes, bool v86) =>
        v86 ? new(selector, (ulong)selector << 4, 0xFFFF, SegmentAttributes.Data16 | SegmentAttributes.DplMask)
            : new(selector, (ulong)selector << 4, limit, attributes);

    // ---- far JMP / CALL ------------------------------------------------------------------------

    /// <summary>A far pointer m16:16/32/64: the offset (<paramref name="operandSize"/> bytes) then the selector.</summary>
    public static (ulong Offset, ushort Selector) FarPointer(ReadOnlySpan<byte> src, int operandSize)
    {
        ulong off = 0;
        for (int i = 0; i < operandSize; i++) off |= (ulong)src[i] << (8 * i);
        return (off, (ushort)(src[operandSize] | src[operandSize + 1] << 8));
    }

    /// <summary>
    /// The new CS of a far JMP/CALL in protected mode (SDM vol. 2 JMP/CALL, "far jump/call to a code segment at the same
    /// privilege level"): a null selector is #GP(0) (checked before the table); a system descriptor (call gate, task
    /// gate, TSS) is #GP(sel): Copra does not switch tasks or pass through gates (KVM's emulator gives such a transfer up
    /// as unhandleable, docs/emulation.md); not code: #GP(sel); conforming with DPL &gt; CPL, or non-conforming with
    /// RPL &gt; CPL or DPL ≠ CPL: #GP(sel); not present: #NP(sel); in long mode L and D both set: #GP(sel).
    /// </summary>
    public static Fault CheckFarTarget(ushort selector, ulong descriptor, int cpl, bool longMode)
    {
        ushort attr = Attributes(descriptor);
        uint sel = Faults.SelectorError(selector);
        int type = attr & SegmentAttributes.TypeMask;
        int dpl = (attr & SegmentAttributes.DplMask) >> SegmentAttributes.DplShift;
        int rpl = selector & 3;
        if ((attr & SegmentAttributes.S) == 0 || (type & 8) == 0) return Fault.Gp(sel, FaultCause.Segment);
        bool conforming = (type & 4) != 0;
        if (conforming ? dpl > cpl : rpl > cpl || dpl != cpl) return Fault.Gp(sel, FaultCause.Segment);
        if ((attr & SegmentAttributes.P) == 0) return Fault.Np(sel);
        if (longMode && (attr & SegmentAttributes.L) != 0 && (attr & SegmentAttributes.Db) != 0) return Fault.Gp(sel, FaultCause.Segment);
        return Fault.None;
    }

    /// <summary>The offset a far branch loads into RIP: <paramref name="offset"/> at the operand size.</summary>
    public static ulong FarTarget(ulong offset, int operandSize) => offset & X86Decoder.SizeMask(operandSize);

    /// <summary>#GP(0) for a target the new CS cannot reach: non-canonical when it is a 64-bit segment in long mode, else
    /// past its limit.</summary>
    public static bool FarTargetFaults(in SegmentState cs, ulong target, bool longMode, bool protectedMode, bool la57)
    {
        int bits = SegmentAttributes.CodeBitness(cs.Attributes, longMode, protectedMode);
        return bits == 64 ? !PageWalker.IsCanonical(target, la57 ? 57 : 48) : !Faults.WithinLimit(cs.Attributes, cs.Limit, target, 1);
    }

    /// <summary>The CS selector a same-privilege far transfer loads: the given one with RPL = CPL.</summary>
    public static ushort CsSelector(ushort selector, int cpl) => (ushort)((selector & 0xFFFC) | cpl);

    /// <summary>Far CALL's two stack slots, <paramref name="operandSize"/> bytes each, into <paramref name="dest"/> in
    /// memory order: the return offset at the lower address (pushed second), CS zero-extended above it (pushed first).</summary>
    public static void FarCallFrame(ulong returnOffset, ushort cs, int operandSize, Span<byte> dest)
    {
        ulong ret = returnOffset & X86Decoder.SizeMask(operandSize);
        for (int i = 0; i < operandSize; i++)
        {
            dest[i] = (byte)(ret >> (8 * i));
            dest[operandSize + i] = i < 2 ? (byte)(cs >> (8 * i)) : (byte)0;
        }
    }

    // ---- LLDT, LTR -----------------------------------------------------------------------------

    /// <summary>
    /// LLDT/LTR after the descriptor was read (SDM vol. 2 LLDT, LTR): the selector must name the GDT (TI = 1 is
    /// #GP(sel)); the descriptor must be a system descriptor of type LDT (2) for LLDT, an available TSS for LTR (9, or 1,
    /// a 16-bit TSS, outside long mode), else #GP(sel); present, else #NP(sel). In long mode the descriptor is 16 bytes:
    /// the upper half's type field (bits 12:8 of its second dword) must be 0 and the 64-bit base canonical, else #GP(sel).
    /// </summary>
    public static Fault CheckSystemLoad(byte sysReg, ushort selector, ulong descriptor, ulong high, bool longMode, bool la57)
    {
        uint sel = Faults.SelectorError(selector);
        if ((selector & 4) != 0) return Fault.Gp(sel, FaultCause.Segment);
        ushort attr = Attributes(descriptor);
        int type = attr & SegmentAttributes.TypeMask;
        bool typeOk = (attr & SegmentAttributes.S) == 0 && (sysReg == SysReg.Ldtr
            ? type == SegmentAttributes.TypeLdt
            : type == SegmentAttributes.TypeAvailableTss || (type == 1 && !longMode));
        if (!typeOk) return Fault.Gp(sel, FaultCause.Segment);
        if ((attr & SegmentAttributes.P) == 0) return Fault.Np(sel);
        if (longMode)
        {
            if (((high >> 40) & 0x1F) != 0) return Fault.Gp(sel, FaultCause.Segment);
            if (!PageWalker.IsCanonical(Cache(selector, descriptor, high, system64: true).Base, la57 ? 57 : 48)) return Fault.Gp(sel, FaultCause.Segment);
        }
        return Fault.None;
    }
}

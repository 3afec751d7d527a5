// Design note — the fast-path decoder.
//
// Callers: the exit path, once per MMIO/port-I/O exit, with up to 15 fetched bytes and the CPU mode read from the
// state store. Any thread may call it; it reads only immutable tables (OpcodeTable) and writes only its out
// parameter. It never allocates and never throws: every input ends either in a DecodedAccess or in a refusal
// with a RefuseReason, never in a guess.
//
// Pipeline, as the CPU does it: legacy prefixes (repeated ones allowed, last segment override wins, in 64-bit
// mode ES/CS/SS/DS overrides are null prefixes) -> REX (64-bit mode only, and only if it is the last prefix) ->
// opcode (one-byte map or 0F map) -> table entry -> ModRM (+ group row) -> SIB -> displacement -> immediate or
// moffs. Semantic checks (mod = 3, LOCK) come after the bytes they depend on.
//
// Length rule: at most 15 bytes are looked at. Running out of bytes when fewer than 15 were supplied is
// Truncated; needing a 16th byte is TooLong (the CPU's #GP).
//
// Two paths, one result (issue 14): TryDecode first runs the form-row path (TryRows; OpcodeTable's "form rows"),
// which copies a DecodedAccess precomputed per form, mode and operand size and writes only the operands the bytes
// name; whatever the rows do not hold goes to Decode, the pipeline above, which also built the rows. The row path is
// a leaf with few values live (NativeAOT spills whatever does not fit the caller-saved registers), so its state is
// packed: prefixes, segment override and REX in one int. TryDecodeFull and TryDecodeRows expose each path alone for
// the tests that hold them to the same result (DecoderFormRowTests).

using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using static Copra.Hot.Decode.OpcodeTable;

namespace Copra.Hot.Decode;

/// <summary>Table-driven decoder for the instruction forms an MMIO or port-I/O exit can be caused by.</summary>
public static class X86Decoder
{
    /// <summary>The architectural maximum instruction length.</summary>
    public const int MaxLength = 15;
    /// <summary>The piece size FXSAVE/FXRSTOR decode with (Copra.Hot.Emulate.X87.PieceSize).</summary>
    const int X87Piece = 64;

    /// <summary>
    /// Decodes the instruction at the start of <paramref name="bytes"/> (only the first 15 bytes are looked at).
    /// Returns false when the instruction is not an emulated form; then <c>d.Kind == Unsupported</c>,
    /// <c>d.Length == 0</c> and <c>d.Error</c> says why.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryDecode(ReadOnlySpan<byte> bytes, CpuMode mode, out DecodedAccess d)
    {
        // Why a wrapper: the row path is a leaf (no call, so no callee-saved registers to save and nothing kept alive for
        // a call), and the full decoder is called from here only for what the rows do not cover.
        ref byte t = ref MemoryMarshal.GetArrayDataReference(Table);
        Unsafe.SkipInit(out d);
        return TryRows(ref t, ref MemoryMarshal.GetReference(bytes), (nint)(uint)bytes.Length, (byte)mode, ref d) || Decode(ref t, bytes, mode, out d);
    }

    /// <summary>
    /// The form-row path (OpcodeTable's design note, "form rows"): prefixes, the form's entry, ModRM, then one 48-byte
    /// copy of the row's precomputed DecodedAccess, and only the operands the bytes name are written after it. Returns
    /// false, with <paramref name="d"/> undefined, for whatever the rows do not cover (no row for the form, mod = 3, 16-bit
    /// addressing, bytes that end early or run past 15, a LOCK the form refuses): Decode decides those from scratch.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    static bool TryRows(ref byte t, ref byte code, nint length, int mode, ref DecodedAccess d)
    {
        // Bounds: every byte is read only after a check against `length`; the 15-byte limit is checked once at the end (a
        // longer instruction goes to Decode, which refuses it TooLong). Few values live, so the method needs no frame.
        nint i = 0;
        int pf = 0;
        int b = Prefixes(ref t, ref code, length, (CpuMode)mode, ref i, ref pf);
        // b = -1 (the bytes ended) reads the zero entry just before the form entries: no form.
        uint ent = Unsafe.ReadUnaligned<uint>(ref At(ref t, FormsAt + b * 4));
        i++;
        if (ent < FormRowsAt)
        {
            // 0F (FormEscape): the next byte is an index into the 0F map's form entries (0F 38 has none: Decode takes it).
            if (ent == 0 || i >= length) return false;
            ent = Unsafe.ReadUnaligned<uint>(ref At(ref t, FormsAt + (Map0F + At(ref code, i)) * 4));
            i++;
            if (ent < FormRowsAt) return false;
        }
        // Why one load per (mode, 66, 67, REX.W): the row variant (as a byte offset), the address size and the ModRM table
        // come from one entry instead of the compares Decode makes.
        int sel = Unsafe.ReadUnaligned<ushort>(ref At(ref t, ModeSizesAt + (mode * 8 + (pf & PfSizes)) * 2));
        int row = (int)(ent & FormRowMask) + (sel & SelVariant);
        int modrm = 0;
        if ((ent & FormModRM) != 0)
        {
            if (i >= length) return false;
            modrm = At(ref code, i);
            if (modrm >= 0xC0) return false;
            i++;
            if ((ent & FormGroup) != 0) row += (modrm & 0x38) << (FormRowBits + FormVariantBits - 3);   // the member's row
        }
        ref byte r = ref At(ref t, row);
        int ctl = Unsafe.ReadUnaligned<int>(ref At(ref r, RowCtl));
        if ((ctl & CValid) == 0) return false;
        d = Unsafe.ReadUnaligned<DecodedAccess>(ref r);
        d.AddressSize = (byte)(sel & SelAddrSize);
        nint end = i + (nint)(uint)(ctl & CImmBytes);   // the instruction's end, once the ModRM operand's bytes are added
        if ((ctl & CModRM) != 0)
        {
            int mi = At(ref t, ModRMAt + (sel & SelModRM) + modrm);
            int bas;
            end += (nint)(uint)(mi & MDisp);
            if ((mi & (MSib | MNoBase | MNone)) == 0)
            {
                if (end > length) return false;
                bas = (modrm & 7) | ((pf >> (PfRexShift - 3)) & 8);
            }
            else if ((mi & MSib) != 0)
            {
                if (++end > length) return false;
                int sib = At(ref code, i++);
                int index = ((sib >> 3) & 7) | ((pf >> (PfRexShift - 2)) & 8);
                if (index != 4)
                {
                    d.Index = (sbyte)index;
                    d.Scale = (byte)(1 << (sib >> 6));
                }
                if ((sib & 7) != 5 || (modrm & 0xC0) != 0) bas = (sib & 7) | ((pf >> (PfRexShift - 3)) & 8);
                else if ((end += 4) > length) return false;   // no base: disp32
                else { mi = 4; bas = -1; }
            }
            else if ((mi & MNone) != 0) return false;   // 16-bit addressing: Decode
            else
            {
                if (end > length) return false;
                bas = (sel & SelModRM) == SelModRM64 ? Gpr.Rip : -1;   // disp32 alone is RIP-relative in 64-bit mode
            }
            d.Base = (sbyte)bas;
            // The row holds the segment for no override and a base other than rSP/rBP (DS, or ES for the rDI operand).
            if ((pf & PfSeg) != 0) SetSegment(ref d, ((pf & PfSeg) >> PfSegShift) - 1, ctl);
            else if ((uint)(bas - Gpr.Rsp) <= 1) SetSegment(ref d, Seg.SS, ctl);
            int dispBytes = mi & MDisp;
            if (dispBytes != 0)
            {
                d.Disp = dispBytes == 1 ? (sbyte)At(ref code, i) : Le32(ref At(ref code, i));
                i += dispBytes;
            }
            if ((ctl & CRegModRM) != 0)
            {
                int reg = ((modrm >> 3) & 7) | ((pf >> (PfRexShift - 1)) & 8);
                if ((ctl & CByteReg) != 0 && (pf & PfRex) == 0 && reg >= 4)
                {
                    reg -= 4;
                    d.RegHigh8 = true;
                }
                d.Reg = (sbyte)reg;
            }
        }
        else
        {
            // Unreachable today: the rows without ModRM (string forms, IN/OUT DX) have no immediate, so end == i <= length.
            if (end > length) /* Stryker disable once Boolean: unreachable (a row without ModRM has no immediate) */ return false;
            if ((pf & PfSeg) != 0) SetSegment(ref d, ((pf & PfSeg) >> PfSegShift) - 1, ctl);
        }
        int n = ctl & CImmBytes;
        if (n != 0)
        {
            ref byte at = ref At(ref code, i);
            long imm = n == 1 ? (sbyte)at : n == 2 ? Le16(ref at) : Le32(ref at);
            d.Imm = imm & (long)(ulong.MaxValue >> (ctl >> CImmShift));
            i += n;
        }
        if ((pf & (PfLock | PfRep)) != 0)
        {
            if ((pf & PfLock) != 0)
            {
                if ((ctl & CLockable) == 0) return false;
                d.Lock = true;
            }
            if ((/* Stryker disable once Bitwise: `|` enters only for LOCK, and no CLockable row is CRep */ pf & PfRep) != 0 && (ctl & CRep) != 0)
            {
                d.Rep = true;
                d.RepNe = (pf & PfRepne) != 0 && (ctl & CRepNe) != 0;
            }
        }
        if (i > MaxLength) return false;
        d.Length = (byte)i;
        return true;
    }

    /// <summary>The memory operand's segment when it is not the row's: an override, or SS for an rSP/rBP base. The rDI
    /// operand of the string forms and MOVDIR64B stays ES; only their second source (CSrcSeg) moves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void SetSegment(ref DecodedAccess d, int seg, int ctl)
    {
        if ((ctl & CEsDest) == 0) Unsafe.WriteUnaligned(ref d.Segment, (ushort)(seg | seg << 8));   // Segment, SrcSegment
        else if ((ctl & CSrcSeg) != 0) d.SrcSegment = (byte)seg;
    }

    /// <summary>
    /// The form-row path alone: true and the access when the rows decode the instruction, false (and <paramref name="d"/>
    /// default) when TryDecode would hand it to the full decoder. For tests and benchmarks that check what the rows
    /// cover; TryDecode is the decoder.
    /// </summary>
    public static bool TryDecodeRows(ReadOnlySpan<byte> bytes, CpuMode mode, out DecodedAccess d)
    {
        d = default;
        if (TryRows(ref MemoryMarshal.GetArrayDataReference(Table), ref MemoryMarshal.GetReference(bytes), (nint)(uint)bytes.Length, (byte)mode, ref d)) return true;
        d = default;
        return false;
    }

    /// <summary>
    /// The full decoder alone, without the form rows: what <see cref="TryDecode"/> returns for every input (the
    /// form-row path is a shortcut to the same result, and DecoderFormRowTests checks the two byte for byte).
    /// </summary>
    public static bool TryDecodeFull(ReadOnlySpan<byte> bytes, CpuMode mode, out DecodedAccess d) =>
        Decode(ref MemoryMarshal.GetArrayDataReference(Table), bytes, mode, out d);

    /// <summary>The legacy prefixes and REX before the opcode, as bits of <paramref name="pf"/> (PfOpSize..PfLock, the
    /// segment override + 1 at PfSegShift, the REX byte at PfRexShift): returns the opcode byte (i at it), or -1 when the
    /// bytes end first. Shared by both paths, so they cannot read prefixes differently.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int Prefixes(ref byte t, ref byte code, nint limit, CpuMode mode, ref nint i, ref int pf)
    {
        while (true)
        {
            if (i >= limit) return /* Stryker disable once Unary: +1 is opcode 01, whose ModRM check refuses the same way, reading nothing */ -1;
            int b = At(ref code, i);
            int p = At(ref t, PrefixesAt + b);
            if (p == PNone) return b;
            if (p == PRex)
            {
                if (mode != CpuMode.Bits64) return b; // 40..4F are INC/DEC outside 64-bit mode: an opcode, not a prefix
                pf = (pf & ~PfRex) | Unsafe.ReadUnaligned<int>(ref At(ref t, RexBitsAt + (b & 0xF) * 4));
                i++;
                continue;
            }
            pf &= ~PfRex; // a REX that is not immediately before the opcode is ignored
            switch (p)
            {
                case POpSize: pf |= PfOpSize; break;
                case PAddrSize: pf |= PfAddrSize; break;
                case PRep: pf = (pf & ~PfRepne) | PfRep; break;
                case PRepne: pf |= PfRep | PfRepne; break;
                case PLock: pf |= PfLock; break;
                default:
                    int s = p - PSeg;
                    if (mode != CpuMode.Bits64 || s >= Seg.FS) pf = (pf & ~PfSeg) | (s + 1) << PfSegShift;
                    break;
            }
            i++;
        }
    }

    /// <summary>The full decoder over the tables at <paramref name="t"/> (OpcodeTable's layout; the form rows are not
    /// read, so OpcodeTable builds them by calling this on its own tables before they are published).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static bool Decode(ref byte t, ReadOnlySpan<byte> bytes, CpuMode mode, out DecodedAccess d)
    {
        d = default;
        d.Mode = mode;
        int limit = Math.Min(bytes.Length, MaxLength);
        bool is64 = mode == CpuMode.Bits64;
        // Why references and Unsafe.Add: every table index below is a byte times a row size inside its table (OpcodeTable's
        // offsets), and every instruction byte is read only after `i < limit` (limit <= bytes.Length), so the bounds checks
        // the span indexers would add are provably dead; the JIT could not see it through the packed offsets.
        ref byte code = ref MemoryMarshal.GetReference(bytes);

        // Why one int: the legacy prefixes as bits (PfOpSize..PfLock) keep the decoder's live state in registers.
        int pf = 0;
        nint at0 = 0;
        int b = Prefixes(ref t, ref code, limit, mode, ref at0, ref pf);
        int i = (int)at0;
        if (b < 0) return RefuseShort(ref d, bytes.Length);
        int segOverride = ((pf & PfSeg) >> PfSegShift) - 1;
        int rex = (pf >> PfRexShift) & 0xFF;

        i++;
        int e = EntriesAt + b * EntrySize;
        // 0F, then 0F 38: the escape entry's arg names the next map.
        while (At(ref t, e) == KindEscape)
        {
            if (i >= limit) return RefuseShort(ref d, bytes.Length);
            e = EntriesAt + (Map0F + At(ref t, e + 3) * 256 + At(ref code, i++)) * EntrySize;
        }
        int kind = At(ref t, e);
        int flags = At(ref t, e + 1);
        int immKind = At(ref t, e + 2);
        int arg = At(ref t, e + 3);
        int prow = 0;   // the prefix row's entry (size, then alignment, follow the kind), 0 when the form has none
        if (kind == KindPrefixed)
        {
            // Why: the mandatory prefix is the last F2/F3 if any, else 66; it selects the row entry and is not an
            // operand-size or REP prefix for the instruction it selects.
            int mp = (pf & PfRep) != 0 ? ((pf & PfRepne) != 0 ? MandatoryF2 : MandatoryF3) : (pf & PfOpSize) != 0 ? Mandatory66 : MandatoryNone;
            prow = PrefixRowsAt + arg * PrefixRowSize + mp * 4;
            kind = At(ref t, prow);
        }
        if (kind == (int)AccessKind.Unsupported) return Refuse(ref d, RefuseReason.UnknownOpcode);
        // Why: MOVSXD exists only in 64-bit mode; LES/LDS (the one LoadFarPtr pair with the flag) only outside it, where
        // C4/C5 are VEX and not an emulated form (the flag is tested first, so other opcodes pay nothing more).
        if ((flags & FOnly64) != 0 && (kind == (int)AccessKind.LoadFarPtr) == is64) return Refuse(ref d, is64 ? RefuseReason.UnknownOpcode : RefuseReason.InvalidInMode);
        if ((pf & (PfOpSize | PfRep)) != 0)
        {
            // Why: MOVNTI exists only without 66/F2/F3; the CPU (and Iced) decide that before reading ModRM, so a
            // truncated form with such a prefix is unknown, not truncated (found by the decoder property).
            if (kind == (int)AccessKind.Write && arg != 0) return Refuse(ref d, RefuseReason.UnknownOpcode);
            // Why: F3 (when it is the last of F2/F3) makes 0F BC/BD TZCNT/LZCNT, which no anchor emulates.
            if (kind == (int)AccessKind.Alu && arg is (int)AluOp.Bsf or (int)AluOp.Bsr && (pf & (PfRep | PfRepne)) == PfRep) return Refuse(ref d, RefuseReason.UnknownOpcode);
        }

        int opSize;
        if ((flags & FByte) != 0) opSize = 1;
        // Why: on IN/OUT/INS/OUTS a REX.W still overrides 66 but cannot reach 8 bytes, so it yields 4 (as Iced and XED do).
        else if (is64) opSize = (rex & 8) != 0 ? ((flags & FNoRexW) != 0 ? 4 : 8) : (pf & PfOpSize) != 0 ? 2 : 4;
        else opSize = (mode == CpuMode.Bits32) != ((pf & PfOpSize) != 0) ? 4 : 2;
        int addrSize = is64 ? ((pf & PfAddrSize) != 0 ? 4 : 8) : (mode == CpuMode.Bits32) != ((pf & PfAddrSize) != 0) ? 4 : 2;

        int aluOp = arg;
        int sysSize = 0;   // the system forms' fixed operand size (OpcodeTable.SizeWord/SizeDescTable/SizeFarPtr), else 0
        int reg = -1, bas = -1;
        d.Index = -1;
        d.Scale = 1;
        if ((flags & FModRM) != 0)
        {
            if (i >= limit) return RefuseShort(ref d, bytes.Length);
            int modrm = At(ref code, i++);
            int mod = modrm >> 6;
            int rm = modrm & 7;
            if (kind == KindGroup)
            {
                int g = GroupsAt + (arg * 8 + ((modrm >> 3) & 7)) * GroupRowSize;
                kind = At(ref t, g);
                if (kind == (int)AccessKind.Unsupported) return Refuse(ref d, RefuseReason.UnsupportedOp);
                // Why: 66/F2/F3 make 0F AE /0 and /1 undefined (Iced agrees); decided on ModRM, before SIB and displacement.
                if (kind is (int)AccessKind.Fxsave or (int)AccessKind.Fxrstor && (pf & (PfOpSize | PfRep)) != 0) return Refuse(ref d, RefuseReason.UnknownOpcode);
                aluOp = At(ref t, g + 1);
                immKind &= At(ref t, g + 2);
                // Why: PUSH/POP m default to 8 bytes in 64-bit mode (66 gives 2, REX.W wins); near CALL/JMP m are always 8.
                int rule = At(ref t, g + 3);
                if (rule >= SizeWord)
                {
                    sysSize = rule == SizeWord ? 2 : rule == SizeDescTable ? (is64 ? 10 : 6) : opSize + 2;
                    if (rule == SizeDescTable && is64) opSize = 8;   // SGDT..LIDT: 64-bit operands in 64-bit mode whatever 66/REX.W say
                    // Why: a far pointer is memory by definition; FF /3, /5 with mod = 3 are undefined (#UD), not register forms.
                    if (rule == SizeFarPtr) flags |= FMemOnly;
                }
                else if (rule != SizeNormal && is64) opSize = rule == SizeStack && (pf & PfOpSize) != 0 && (rex & 8) == 0 ? 2 : 8;
            }
            else
            {
                reg = ((modrm >> 3) & 7) | ((rex & 4) << 1);
            }
            // Why: LOCK on a register operand is #UD whatever the opcode, so the CPU would never exit for it.
            if (mod == 3)
            {
                // Why: a register form is still a whole instruction only once its immediate is there; bytes that
                // end first are Truncated (TooLong past 15 bytes), as for every other form (found by the fuzzer).
                int immBytes = immKind is Imm8 or Imm8Sx ? 1 : immKind == ImmZ ? (opSize == 2 ? 2 : 4) : 0;
                if (i + immBytes > limit) return RefuseShort(ref d, bytes.Length);
                if ((flags & FMemOnly) != 0) return Refuse(ref d, RefuseReason.UnknownOpcode);
                return Refuse(ref d, (pf & PfLock) != 0 ? RefuseReason.LockInvalid : RefuseReason.RegisterOperand);
            }

            int dispBytes;
            if (addrSize == 2)
            {
                bas = Base16[rm];
                d.Index = Index16[rm];
                dispBytes = mod == 1 ? 1 : mod == 2 ? 2 : 0;
                if (mod == 0 && rm == 6) { bas = -1; dispBytes = 2; }
            }
            else
            {
                dispBytes = mod == 1 ? 1 : mod == 2 ? 4 : 0;
                if (rm == 4)
                {
                    if (i >= limit) return RefuseShort(ref d, bytes.Length);
                    int sib = At(ref code, i++);
                    int index = ((sib >> 3) & 7) | ((rex & 2) << 2);
                    if (index != 4)
                    {
                        d.Index = (sbyte)index;
                        d.Scale = (byte)(1 << (sib >> 6));
                    }
                    if ((sib & 7) == 5 && mod == 0) dispBytes = 4;
                    else bas = (sib & 7) | ((rex & 1) << 3);
                }
                else if (rm == 5 && mod == 0)
                {
                    dispBytes = 4;
                    if (is64) bas = Gpr.Rip;
                }
                else
                {
                    bas = rm | ((rex & 1) << 3);
                }
            }
            d.Base = (sbyte)bas;
            if (dispBytes != 0)
            {
                if (i + dispBytes > limit) return RefuseShort(ref d, bytes.Length);
                ref byte at = ref At(ref code, i);
                d.Disp = dispBytes == 1 ? (sbyte)at
                    : dispBytes == 2 ? Le16(ref at)
                    : Le32(ref at);
                i += dispBytes;
            }
        }
        else
        {
            d.Base = -1;
            if ((flags & FString) != 0) d.Base = (sbyte)arg;
        }

        // Register operand and access width.
        int size = opSize;
        int regSize = opSize;
        if ((flags & FAcc) != 0) reg = Gpr.Rax;
        int traits = At(ref t, TraitsAt + kind);
        if ((traits & TSized) != 0)
        {
            if (kind == (int)AccessKind.ReadZx || kind == (int)AccessKind.ReadSx)
            {
                // MOVZX/MOVSX read 1 or 2 bytes; MOVSXD reads 4 only with REX.W, else it is a plain 2/4-byte load.
                size = arg == 4 ? (opSize == 8 ? 4 : opSize) : arg;
                aluOp = 0;
            }
            else if (kind >= (int)AccessKind.Fnstcw)
            {
                // Why: the x87/MMX and system kinds are the enum's tail, so the common forms pay one compare for all of them.
                if (kind == (int)AccessKind.LoadFarPtr) sysSize = opSize + 2;   // LSS/LFS/LGS: offset then selector; arg is the segment
                // Stryker disable once Logical: the MMX arm's `prow != 0 &&` made `||` is equivalent (the MOVQ rows are the only prefix rows past Fnstcw)
                if (kind is (int)AccessKind.Fnstcw or (int)AccessKind.Fnstsw)
                {
                    size = 2;   // m2byte whatever 66 or REX.W say
                }
                else if (kind is (int)AccessKind.Fxsave or (int)AccessKind.Fxrstor)
                {
                    // Why: 512 bytes do not fit the byte-wide Size; the exit path moves the image in X87.PieceSize pieces and
                    // sets the size of each; REX.W (the 64-bit FIP/FDP layout) rides in Imm.
                    size = X87Piece;
                    d.Align = 16;
                    d.Imm = (rex & 8) >> 3;
                }
                else if (prow != 0 && kind is (int)AccessKind.MmxRead or (int)AccessKind.MmxWrite)
                {
                    size = regSize = 8;
                    reg &= 7;   // MM0..MM7: REX.R is ignored
                }
                else if (sysSize != 0)
                {
                    size = sysSize;   // the operand size stays in RegSize (Reg is -1): a far pointer's offset, an LGDT base
                }
            }
            else
            {
                // SSE moves: m128 and an XMM register (REX.R reaches XMM8..15); MOVDIR64B: m512 and the destination's
                // address register at the address size.
                size = At(ref t, prow + 1);
                d.Align = At(ref t, prow + 2);
                regSize = kind == (int)AccessKind.Movdir64b ? addrSize : 16;
            }
        }
        else if (kind == (int)AccessKind.Alu)
        {
            if (aluOp == (int)AluOp.Cmpxchg8b)
            {
                // Why: CMPXCHG8B ignores 66; only REX.W turns it into CMPXCHG16B (m128).
                size = (rex & 8) != 0 ? 16 : 8;
                aluOp += (rex & 8) >> 3;
                if (aluOp == (int)AluOp.Cmpxchg16b) d.Align = 16;
            }
        }
        else if (kind == (int)AccessKind.Write && arg != 0 && opSize == 2)
        {
            size = regSize = 4; // MOVNTI and MOVDIRI have no 16-bit form: 32 bits in 16-bit mode too
        }
        if (reg >= 0)
        {
            d.RegSize = (byte)regSize;
            if (regSize == 1 && rex == 0 && reg >= 4)
            {
                reg -= 4;
                d.RegHigh8 = true;
            }
        }
        d.Reg = (sbyte)reg;
        d.Size = (byte)size;
        if (sysSize != 0) { d.SysReg = (byte)aluOp; d.RegSize = (byte)opSize; }

        // Immediate, moffs or port byte.
        if (immKind != ImmNone)
        {
            ref byte at = ref At(ref code, i);
            switch (immKind)
            {
                case Imm8:
                    if (i >= limit) return RefuseShort(ref d, bytes.Length);
                    d.HasImm = true;
                    d.Imm = at;
                    i++;
                    break;
                case Imm8Sx:
                    if (i >= limit) return RefuseShort(ref d, bytes.Length);
                    d.HasImm = true;
                    d.Imm = (long)((ulong)(sbyte)at & SizeMask(opSize));
                    i++;
                    break;
                case ImmZ:
                    {
                        int n = opSize == 2 ? 2 : 4;
                        if (i + n > limit) return RefuseShort(ref d, bytes.Length);
                        d.HasImm = true;
                        d.Imm = n == 2
                            ? (ushort)Le16(ref at)
                            : (long)((ulong)Le32(ref at) & SizeMask(opSize));
                        i += n;
                        break;
                    }
                case ImmMoffs:
                    if (i + addrSize > limit) return RefuseShort(ref d, bytes.Length);
                    d.Disp = addrSize switch
                    {
                        2 => (ushort)Le16(ref at),
                        4 => (uint)Le32(ref at),
                        _ => Le64(ref at),
                    };
                    i += addrSize;
                    break;
                case ImmPort8:
                    if (i >= limit) return RefuseShort(ref d, bytes.Length);
                    d.Port = at;
                    i++;
                    break;
                case ImmOne:
                    d.HasImm = true;
                    d.Imm = 1;
                    break;
                case ImmCl:
                    d.Reg = Gpr.Rcx;
                    d.RegSize = 1;
                    break;
            }
        }

        d.Kind = (AccessKind)kind;
        int op = (traits & TOp) != 0 ? aluOp : 0;
        d.Op = (AluOp)op;
        if ((traits & TCond) != 0) d.Cond = (byte)(((/* Stryker disable once Arithmetic: + differs by 2 * 256 / 4 = 128 entries, a multiple of 16 */ e - EntriesAt) / EntrySize) & 0xF);
        if ((pf & PfLock) != 0)
        {
            if (!LockAllowed(d.Kind, d.Op, flags)) return Refuse(ref d, RefuseReason.LockInvalid);
            d.Lock = true;
        }
        else
        {
            d.Lock = kind == (int)AccessKind.Xchg;
        }

        // Why: only rSP/rBP themselves (not R12/R13) make the stack segment the default.
        int seg = segOverride >= 0 ? segOverride : bas is Gpr.Rsp or Gpr.Rbp ? Seg.SS : Seg.DS;
        // Why: the rDI operand of STOS/INS/MOVS/CMPS/SCAS is always ES; an override only moves the rSI side.
        // MOVDIR64B likewise writes to ES:[reg] and reads its ModRM source through the (overridable) segment.
        d.Segment = (traits & TEsDest) != 0 ? Seg.ES : (byte)seg;
        d.SrcSegment = (traits & TSrcSeg) != 0 ? (byte)seg : d.Segment;
        if ((pf & PfRep) != 0 && (flags & FString) != 0)
        {
            d.Rep = true;
            d.RepNe = (pf & PfRepne) != 0 && (traits & TRepNe) != 0;
        }
        d.PortIsDx = (traits & TPortDx) != 0 && immKind != ImmPort8;
        d.MemIsDest = kind == (int)AccessKind.Alu && (flags & FMemDest) != 0;
        d.AddressSize = (byte)addrSize;
        d.Length = (byte)i;
        return true;
    }

    /// <summary>The legacy prefixes as bits of one int: 66, 67, a REP (F2 or F3), the last of F2/F3 was F2, LOCK
    /// (66 and 67 are bits 0 and 1: OpcodeTable's ModeSizes row is indexed by them; REX is OpcodeTable's PfRexW/PfRexShift).</summary>
    internal const int PfOpSize = 1, PfAddrSize = 2, PfRep = 8, PfRepne = 16, PfLock = 32;
    /// <summary>In the same int: the segment override + 1 (0 = none) at PfSegShift; 66, 67 and REX.W together (PfSizes);
    /// REX.W and the REX byte (PfRex).</summary>
    const int PfSizes = PfOpSize | PfAddrSize | PfRexW, PfSegShift = 8, PfSeg = 7 << PfSegShift, PfRex = 0xFF << PfRexShift | PfRexW;

    /// <summary>The byte <paramref name="i"/> bytes on: indices here are never negative, and as unsigned they need no sign extension.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ref byte At(ref byte at, int i) => ref Unsafe.Add(ref at, (nuint)(uint)i);
    /// <summary>The byte <paramref name="i"/> bytes on, for an index that is already pointer-sized (never negative).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ref byte At(ref byte at, nint i) => ref Unsafe.Add(ref at, i);

    // Little-endian reads of guest bytes already known to be there (the caller checked i + n <= limit).
    // Why an if and not ?: (the same code: the JIT folds IsLittleEndian): Stryker's `true ?` mutant of a ?: here is
    // equivalent on every host Copra builds for; the if's negated condition is not.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static short Le16(ref byte at)
    {
        if (BitConverter.IsLittleEndian) return Unsafe.ReadUnaligned<short>(ref at);
        return BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<short>(ref at));
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int Le32(ref byte at)
    {
        if (BitConverter.IsLittleEndian) return Unsafe.ReadUnaligned<int>(ref at);
        return BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<int>(ref at));
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static long Le64(ref byte at)
    {
        if (BitConverter.IsLittleEndian) return Unsafe.ReadUnaligned<long>(ref at);
        return BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<long>(ref at));
    }

    /// <summary>A refusal for bytes that end before the instruction: Truncated, or TooLong once 15 bytes were there
    /// (any further byte needed makes the instruction too long for the CPU).</summary>
    static bool RefuseShort(ref DecodedAccess d, int supplied) =>
        Refuse(ref d, supplied >= MaxLength ? RefuseReason.TooLong : RefuseReason.Truncated);

    /// <summary>LOCK is legal only on read-modify-write of memory: XCHG, and the memory-destination forms whose
    /// operation is in <see cref="LockableOps"/> (ADD..XOR but CMP, INC/DEC/NEG/NOT, XADD, CMPXCHG*, BTS/BTR/BTC).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static bool LockAllowed(AccessKind kind, AluOp op, int flags) =>
        kind == AccessKind.Xchg || (kind is AccessKind.Alu or AccessKind.Bt && (flags & FMemDest) != 0 && ((LockableOps >> (int)op) & 1) != 0);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong SizeMask(int size) => size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;

    /// <summary>The one shape of a refusal: kind Unsupported, length 0, no operands, the reason; the mode kept.</summary>
    internal static bool Refuse(ref DecodedAccess d, RefuseReason why)
    {
        CpuMode mode = d.Mode;
        d = default;
        d.Mode = mode;
        d.Reg = -1;
        d.Base = -1;
        d.Index = -1;
        d.Scale = 1;
        d.Error = why;
        return false;
    }
}

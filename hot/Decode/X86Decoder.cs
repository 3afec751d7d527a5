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

using System.Buffers.Binary;
using System.Runtime.CompilerServices;
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
    public static bool TryDecode(ReadOnlySpan<byte> bytes, CpuMode mode, out DecodedAccess d)
    {
        d = default;
        d.Mode = mode;
        int limit = Math.Min(bytes.Length, MaxLength);
        // Why: once 15 bytes are available, any further byte needed makes the instruction too long for the CPU.
        RefuseReason shortOf = bytes.Length >= MaxLength ? RefuseReason.TooLong : RefuseReason.Truncated;
        bool is64 = mode == CpuMode.Bits64;

        bool opSizePrefix = false, addrSizePrefix = false, lockPrefix = false, repPrefix = false;
        // Stryker disable once Boolean: every REP prefix sets repne, and nothing reads it without one
        bool repne = false;
        int segOverride = -1;
        int rex = 0;
        int i = 0;
        ReadOnlySpan<byte> prefixes = Prefixes;
        int b = 0; // initialised: Stryker's mutant switches break definite assignment of a bare local
        while (true)
        {
            if (i >= limit) return Refuse(ref d, shortOf);
            b = bytes[i];
            int p = prefixes[b];
            if (p == PNone) break;
            if (p == PRex)
            {
                if (!is64) break; // 40..4F are INC/DEC outside 64-bit mode: an opcode, not a prefix
                rex = b;
                i++;
                continue;
            }
            rex = 0; // a REX that is not immediately before the opcode is ignored
            switch (p)
            {
                case POpSize: opSizePrefix = true; break;
                case PAddrSize: addrSizePrefix = true; break;
                case PRep: repPrefix = true; repne = false; break;
                case PRepne: repPrefix = true; repne = true; break;
                case PLock: lockPrefix = true; break;
                default:
                    int s = p - PSeg;
                    if (!is64 || s >= Seg.FS) segOverride = s;
                    break;
            }
            i++;
        }

        i++;
        ReadOnlySpan<byte> entries = Entries;
        int e = b * EntrySize;
        // 0F, then 0F 38: the escape entry's arg names the next map.
        while (entries[e] == KindEscape)
        {
            if (i >= limit) return Refuse(ref d, shortOf);
            e = (Map0F + entries[e + 3] * 256 + bytes[i++]) * EntrySize;
        }
        int kind = entries[e];
        int flags = entries[e + 1];
        int immKind = entries[e + 2];
        int arg = entries[e + 3];
        int vecSize = 0, align = 0;
        if (kind == KindPrefixed)
        {
            // Why: the mandatory prefix is the last F2/F3 if any, else 66; it selects the row entry and is not an
            // operand-size or REP prefix for the instruction it selects.
            int mp = repPrefix ? (repne ? MandatoryF2 : MandatoryF3) : opSizePrefix ? Mandatory66 : MandatoryNone;
            int r = arg * PrefixRowSize + mp * 4;
            kind = PrefixRows[r];
            vecSize = PrefixRows[r + 1];
            align = PrefixRows[r + 2];
        }
        if (kind == (int)AccessKind.Unsupported) return Refuse(ref d, RefuseReason.UnknownOpcode);
        // Why: MOVSXD exists only in 64-bit mode; LES/LDS (the one LoadFarPtr pair with the flag) only outside it, where
        // C4/C5 are VEX and not an emulated form (the flag is tested first, so other opcodes pay nothing more).
        if ((flags & FOnly64) != 0 && (kind == (int)AccessKind.LoadFarPtr) == is64) return Refuse(ref d, is64 ? RefuseReason.UnknownOpcode : RefuseReason.InvalidInMode);
        // Why: MOVNTI exists only without 66/F2/F3; the CPU (and Iced) decide that before reading ModRM, so a
        // truncated form with such a prefix is unknown, not truncated (found by the decoder property).
        if (kind == (int)AccessKind.Write && arg != 0 && (opSizePrefix || repPrefix)) return Refuse(ref d, RefuseReason.UnknownOpcode);
        // Why: F3 (when it is the last of F2/F3) makes 0F BC/BD TZCNT/LZCNT, which no anchor emulates.
        if (kind == (int)AccessKind.Alu && arg is (int)AluOp.Bsf or (int)AluOp.Bsr && repPrefix && !repne) return Refuse(ref d, RefuseReason.UnknownOpcode);

        int opSize;
        if ((flags & FByte) != 0) opSize = 1;
        // Why: on IN/OUT/INS/OUTS a REX.W still overrides 66 but cannot reach 8 bytes, so it yields 4 (as Iced and XED do).
        else if (is64) opSize = (rex & 8) != 0 ? ((flags & FNoRexW) != 0 ? 4 : 8) : opSizePrefix ? 2 : 4;
        else opSize = (mode == CpuMode.Bits32) != opSizePrefix ? 4 : 2;
        int addrSize = is64 ? (addrSizePrefix ? 4 : 8) : (mode == CpuMode.Bits32) != addrSizePrefix ? 4 : 2;

        int aluOp = arg;
        int sysSize = 0;   // the system forms' fixed operand size (OpcodeTable.SizeWord/SizeDescTable/SizeFarPtr), else 0
        int defaultSeg = Seg.DS;
        d.Reg = -1;
        d.Base = -1;
        d.Index = -1;
        d.Scale = 1;
        if ((flags & FModRM) != 0)
        {
            if (i >= limit) return Refuse(ref d, shortOf);
            int modrm = bytes[i++];
            int mod = modrm >> 6;
            int regField = (modrm >> 3) & 7;
            int rm = modrm & 7;
            if (kind == KindGroup)
            {
                int g = (arg * 8 + regField) * GroupRowSize;
                kind = Groups[g];
                if (kind == (int)AccessKind.Unsupported) return Refuse(ref d, RefuseReason.UnsupportedOp);
                // Why: 66/F2/F3 make 0F AE /0 and /1 undefined (Iced agrees); decided on ModRM, before SIB and displacement.
                if (kind is (int)AccessKind.Fxsave or (int)AccessKind.Fxrstor && (opSizePrefix || repPrefix)) return Refuse(ref d, RefuseReason.UnknownOpcode);
                aluOp = Groups[g + 1];
                immKind &= Groups[g + 2];
                // Why: PUSH/POP m default to 8 bytes in 64-bit mode (66 gives 2, REX.W wins); near CALL/JMP m are always 8.
                int rule = Groups[g + 3];
                if (rule >= SizeWord)
                {
                    sysSize = rule == SizeWord ? 2 : rule == SizeDescTable ? (is64 ? 10 : 6) : opSize + 2;
                    if (rule == SizeDescTable && is64) opSize = 8;   // SGDT..LIDT: 64-bit operands in 64-bit mode whatever 66/REX.W say
                    // Why: a far pointer is memory by definition; FF /3, /5 with mod = 3 are undefined (#UD), not register forms.
                    if (rule == SizeFarPtr) flags |= FMemOnly;
                }
                else if (rule != SizeNormal && is64) opSize = rule == SizeStack && opSizePrefix && (rex & 8) == 0 ? 2 : 8;
            }
            else
            {
                d.Reg = (sbyte)(regField | ((rex & 4) << 1));
            }
            // Why: LOCK on a register operand is #UD whatever the opcode, so the CPU would never exit for it.
            if (mod == 3)
            {
                // Why: a register form is still a whole instruction only once its immediate is there; bytes that
                // end first are Truncated (TooLong past 15 bytes), as for every other form (found by the fuzzer).
                int immBytes = immKind is Imm8 or Imm8Sx ? 1 : immKind == ImmZ ? (opSize == 2 ? 2 : 4) : 0;
                if (i + immBytes > limit) return Refuse(ref d, shortOf);
                if ((flags & FMemOnly) != 0) return Refuse(ref d, RefuseReason.UnknownOpcode);
                return Refuse(ref d, lockPrefix ? RefuseReason.LockInvalid : RefuseReason.RegisterOperand);
            }

            int dispBytes;
            if (addrSize == 2)
            {
                d.Base = Base16[rm];
                d.Index = Index16[rm];
                dispBytes = mod == 1 ? 1 : mod == 2 ? 2 : 0;
                if (mod == 0 && rm == 6) { d.Base = -1; dispBytes = 2; }
            }
            else
            {
                dispBytes = mod == 1 ? 1 : mod == 2 ? 4 : 0;
                if (rm == 4)
                {
                    if (i >= limit) return Refuse(ref d, shortOf);
                    int sib = bytes[i++];
                    int index = ((sib >> 3) & 7) | ((rex & 2) << 2);
                    if (index != 4)
                    {
                        d.Index = (sbyte)index;
                        d.Scale = (byte)(1 << (sib >> 6));
                    }
                    if ((sib & 7) == 5 && mod == 0) dispBytes = 4;
                    else d.Base = (sbyte)((sib & 7) | ((rex & 1) << 3));
                }
                else if (rm == 5 && mod == 0)
                {
                    dispBytes = 4;
                    if (is64) d.Base = Gpr.Rip;
                }
                else
                {
                    d.Base = (sbyte)(rm | ((rex & 1) << 3));
                }
            }
            // Why: only rSP/rBP themselves (not R12/R13) make the stack segment the default.
            if (d.Base == Gpr.Rsp || d.Base == Gpr.Rbp) defaultSeg = Seg.SS;
            if (dispBytes != 0)
            {
                if (i + dispBytes > limit) return Refuse(ref d, shortOf);
                d.Disp = dispBytes switch
                {
                    1 => (sbyte)bytes[i],
                    2 => BinaryPrimitives.ReadInt16LittleEndian(bytes.Slice(i, 2)),
                    _ => BinaryPrimitives.ReadInt32LittleEndian(bytes.Slice(i, 4)),
                };
                i += dispBytes;
            }
        }
        else if ((flags & FString) != 0)
        {
            d.Base = (sbyte)arg;
        }

        // Register operand and access width.
        int size = opSize;
        int regSize = opSize;
        if ((flags & FAcc) != 0) d.Reg = Gpr.Rax;
        if (kind == (int)AccessKind.ReadZx || kind == (int)AccessKind.ReadSx)
        {
            // MOVZX/MOVSX read 1 or 2 bytes; MOVSXD reads 4 only with REX.W, else it is a plain 2/4-byte load.
            size = arg == 4 ? (opSize == 8 ? 4 : opSize) : arg;
            aluOp = 0;
        }
        else if (kind == (int)AccessKind.Alu && aluOp == (int)AluOp.Cmpxchg8b)
        {
            // Why: CMPXCHG8B ignores 66; only REX.W turns it into CMPXCHG16B (m128).
            size = (rex & 8) != 0 ? 16 : 8;
            aluOp += (rex & 8) >> 3;
        }
        else if (kind == (int)AccessKind.Write && arg != 0 && opSize == 2)
        {
            size = regSize = 4; // MOVNTI and MOVDIRI have no 16-bit form: 32 bits in 16-bit mode too
        }
        else if (kind >= (int)AccessKind.Fnstcw)
        {
            // Why: the x87/MMX and system kinds are the enum's tail, so the common forms pay one compare for all of them.
            if (kind == (int)AccessKind.LoadFarPtr) sysSize = opSize + 2;   // LSS/LFS/LGS: offset then selector; arg is the segment
            if (kind is (int)AccessKind.Fnstcw or (int)AccessKind.Fnstsw)
            {
                size = 2;   // m2byte whatever 66 or REX.W say
            }
            else if (kind is (int)AccessKind.Fxsave or (int)AccessKind.Fxrstor)
            {
                // Why: 512 bytes do not fit the byte-wide Size; the exit path moves the image in X87.PieceSize pieces and
                // sets the size of each; REX.W (the 64-bit FIP/FDP layout) rides in Imm.
                size = X87Piece;
                align = 16;
                d.Imm = (rex & 8) >> 3;
            }
            else if (vecSize != 0 && kind is (int)AccessKind.MmxRead or (int)AccessKind.MmxWrite)
            {
                size = regSize = 8;
                d.Reg &= 7;   // MM0..MM7: REX.R is ignored
            }
            else if (sysSize != 0)
            {
                size = sysSize;   // the operand size stays in RegSize (Reg is -1): a far pointer's offset, an LGDT base
            }
        }
        else if (vecSize != 0)
        {
            // SSE moves: m128 and an XMM register (REX.R reaches XMM8..15); MOVDIR64B: m512 and the destination's
            // address register at the address size.
            size = vecSize;
            regSize = kind == (int)AccessKind.Movdir64b ? addrSize : 16;
        }
        if (d.Reg >= 0)
        {
            d.RegSize = (byte)regSize;
            if (regSize == 1 && rex == 0 && d.Reg >= 4)
            {
                d.Reg -= 4;
                d.RegHigh8 = true;
            }
        }
        d.Size = (byte)size;
        if (sysSize != 0) { d.SysReg = (byte)aluOp; d.RegSize = (byte)opSize; }

        // Immediate, moffs or port byte.
        switch (immKind)
        {
            case Imm8:
                if (i >= limit) return Refuse(ref d, shortOf);
                d.HasImm = true;
                d.Imm = bytes[i++];
                break;
            case Imm8Sx:
                if (i >= limit) return Refuse(ref d, shortOf);
                d.HasImm = true;
                d.Imm = (long)((ulong)(sbyte)bytes[i++] & SizeMask(opSize));
                break;
            case ImmZ:
                {
                    int n = opSize == 2 ? 2 : 4;
                    if (i + n > limit) return Refuse(ref d, shortOf);
                    d.HasImm = true;
                    d.Imm = n == 2
                        ? BinaryPrimitives.ReadUInt16LittleEndian(bytes.Slice(i, 2))
                        : (long)((ulong)BinaryPrimitives.ReadInt32LittleEndian(bytes.Slice(i, 4)) & SizeMask(opSize));
                    i += n;
                    break;
                }
            case ImmMoffs:
                if (i + addrSize > limit) return Refuse(ref d, shortOf);
                d.Disp = addrSize switch
                {
                    2 => BinaryPrimitives.ReadUInt16LittleEndian(bytes.Slice(i, 2)),
                    4 => BinaryPrimitives.ReadUInt32LittleEndian(bytes.Slice(i, 4)),
                    _ => BinaryPrimitives.ReadInt64LittleEndian(bytes.Slice(i, 8)),
                };
                i += addrSize;
                break;
            case ImmPort8:
                if (i >= limit) return Refuse(ref d, shortOf);
                d.Port = bytes[i++];
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

        d.Kind = (AccessKind)kind;
        d.Op = (AluOp)(kind is (int)AccessKind.Alu or (int)AccessKind.Bt ? aluOp : 0);
        if (kind is (int)AccessKind.Setcc or (int)AccessKind.Cmov) d.Cond = (byte)((e / EntrySize) & 0xF);
        if (lockPrefix && !LockAllowed(d.Kind, d.Op, flags)) return Refuse(ref d, RefuseReason.LockInvalid);
        d.Lock = lockPrefix || d.Kind == AccessKind.Xchg;
        d.Align = (byte)(d.Op == AluOp.Cmpxchg16b ? 16 : align);

        int seg = segOverride >= 0 ? segOverride : defaultSeg;
        d.SrcSegment = (byte)seg;
        // Why: the rDI operand of STOS/INS/MOVS/CMPS/SCAS is always ES; an override only moves the rSI side.
        // MOVDIR64B likewise writes to ES:[reg] and reads its ModRM source through the (overridable) segment.
        d.Segment = d.Kind is AccessKind.Stos or AccessKind.Ins or AccessKind.Movs or AccessKind.Cmps or AccessKind.Scas or AccessKind.Movdir64b ? Seg.ES : (byte)seg;
        if (d.Kind is not (AccessKind.Movs or AccessKind.Cmps or AccessKind.Movdir64b)) d.SrcSegment = d.Segment;
        d.Rep = repPrefix && (flags & FString) != 0;
        d.RepNe = d.Rep && repne && d.Kind is AccessKind.Cmps or AccessKind.Scas;
        d.PortIsDx = (d.Kind is AccessKind.In or AccessKind.Out && immKind != ImmPort8) || d.Kind is AccessKind.Ins or AccessKind.Outs;
        d.MemIsDest = d.Kind == AccessKind.Alu && (flags & FMemDest) != 0;
        d.AddressSize = (byte)addrSize;
        d.Length = (byte)i;
        return true;
    }

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

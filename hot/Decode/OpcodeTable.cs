// Design note — the opcode attribute table.
//
// The decoder is driven by data, as Iced's is: one 4-byte entry per opcode of the one-byte map (0..255), of
// the 0F map (256..511) and of the 0F 38 map (512..767), built once at type initialisation and read through a ReadOnlySpan<byte>. The decoder
// itself only walks prefixes, looks up the entry, and consumes ModRM/SIB/displacement/immediate as the entry
// says. Opcodes that take their operation from ModRM.reg (groups 1, 2, 3, 4, 5, 8, 9, 11, and SETcc, whose reg
// field is ignored) point at an 8-entry group row. Nothing here is mutated after the static constructor; reads
// are safe from any thread.
//
//   entry (4 bytes)
//   +--------+--------+--------+--------+
//   |  kind  | flags  |  imm   |  arg   |
//   +--------+--------+--------+--------+
//    kind : AccessKind, or KindGroup (arg = group row), KindEscape (0F; 0F 38 with arg 1), KindPrefixed (arg =
//           prefix row: the SSE and MOVDIR64B forms whose mandatory prefix 66/F3/F2 picks the instruction)
//    flags: FModRM | FByte | FNoRexW | FMemDest | FOnly64 | FAcc | FString | FMemOnly
//    imm  : ImmNone | Imm8 | ImmZ | Imm8Sx | ImmMoffs | ImmPort8 | ImmOne (shift by 1) | ImmCl (count in CL)
//    arg  : AluOp for ALU and BTx forms, source width for MOVZX/MOVSX, base register for string forms, group row
//           for groups, 1 on a Write that allows no 66/F2/F3 (MOVNTI). SETcc/CMOVcc take the condition from the
//           opcode's low nibble (the entry index), so they need no arg.
//
//   group row (4 bytes per ModRM.reg value): [AccessKind, AluOp, imm mask, size rule]; AccessKind.Unsupported = refused
//   (UnsupportedOp); the imm mask is ANDed into the entry's imm kind (0: this member has no immediate, as NOT..IDIV
//   in group 3 whose TEST carries one).
//   prefix row (4 entries of 4 bytes, chosen by the mandatory prefix: none, 66, F3, F2; the last F2/F3 wins over 66,
//   as the CPU decides): [AccessKind, access size, required alignment, 0]; Unsupported = not an emulated form.
//   LOCK: legal on XCHG and on the memory-destination forms whose AluOp has its bit in LockableOps.

using System.Numerics;
using System.Runtime.CompilerServices;

namespace Copra.Hot.Decode;

internal static class OpcodeTable
{
    public const int EntrySize = 4;
    public const int GroupRowSize = 4;
    public const int Map0F = 256;
    public const int Map0F38 = 512;
    public const int PrefixRowSize = 4 * 4;

    public const byte KindGroup = 0xF0, KindEscape = 0xF1, KindPrefixed = 0xF2;

    public const byte FModRM = 1 << 0;   // a ModRM byte follows
    public const byte FByte = 1 << 1;    // operand size is 1 regardless of prefixes
    public const byte FNoRexW = 1 << 2;  // IN/OUT/INS/OUTS: operand size 2 or 4 (REX.W selects 4)
    public const byte FMemDest = 1 << 3; // the memory operand is operand 0
    public const byte FOnly64 = 1 << 4;  // exists only in 64-bit mode (MOVSXD); on LoadFarPtr the reverse: not in it (LES/LDS)
    public const byte FAcc = 1 << 5;     // the register operand is the accumulator (no ModRM.reg)
    public const byte FString = 1 << 6;  // implicit rSI/rDI operand, no ModRM
    public const byte FMemOnly = 1 << 7; // mod = 3 is not this instruction (#UD or another one): UnknownOpcode

    public const byte ImmNone = 0, Imm8 = 1, ImmZ = 2, Imm8Sx = 3, ImmMoffs = 4, ImmPort8 = 5, ImmOne = 6, ImmCl = 7;

    public const byte GroupAlu1 = 0, GroupUnary3 = 1, GroupMov11 = 2, GroupBt8 = 3, GroupShift2 = 4, GroupIncDec4 = 5,
        GroupIncDec5 = 6, GroupSetcc = 7, GroupCx9 = 8, GroupPop1A = 9, GroupX87D9 = 10, GroupX87DD = 11, GroupFx15 = 12,
        // System state and segment loads (c14a): 0F 00, 0F 01 (memory forms), 8E MOV Sreg, m16, 8C MOV m16, Sreg.
        GroupSys6 = 13, GroupSys7 = 14, GroupMovSreg = 15, GroupStoreSreg = 16, GroupCount = 17;

    /// <summary>Group-row byte 3: how a stack or branch member sizes its operand in 64-bit mode (SDM vol. 2, PUSH, POP,
    /// CALL, JMP): SizeStack = 8 bytes by default, 2 with 66 (REX.W wins), never 4; SizeNearBranch = always 8 (66 and
    /// REX.W ignored, as Intel parts and KVM's NearBranch do). Outside 64-bit mode both use the ordinary operand size.</summary>
    public const byte SizeNormal = 0, SizeStack = 1, SizeNearBranch = 2;
    /// <summary>Group-row byte 3 for the system forms, in every mode: SizeWord = the operand is m16 whatever 66/REX.W say
    /// (SLDT, STR, SMSW, LLDT, LTR, LMSW, MOV Sreg); SizeDescTable = limit:16 + base, 10 bytes in 64-bit mode and 6
    /// otherwise (SGDT, SIDT, LGDT, LIDT); SizeFarPtr = offset at the operand size + selector:16 (m16:16/32/64).</summary>
    public const byte SizeWord = 3, SizeDescTable = 4, SizeFarPtr = 5;

    /// <summary>One bit per AluOp that may carry LOCK (on a memory destination; BTS/BTR/BTC with kind Bt).</summary>
    public const ulong LockableOps =
        1UL << (int)AluOp.Add | 1UL << (int)AluOp.Or | 1UL << (int)AluOp.Adc | 1UL << (int)AluOp.Sbb | 1UL << (int)AluOp.And
        | 1UL << (int)AluOp.Sub | 1UL << (int)AluOp.Xor | 1UL << (int)AluOp.Inc | 1UL << (int)AluOp.Dec | 1UL << (int)AluOp.Neg
        | 1UL << (int)AluOp.Not | 1UL << (int)AluOp.Xadd | 1UL << (int)AluOp.Cmpxchg | 1UL << (int)AluOp.Cmpxchg8b
        | 1UL << (int)AluOp.Cmpxchg16b | 1UL << (int)AluOp.Bts | 1UL << (int)AluOp.Btr | 1UL << (int)AluOp.Btc;

    // Prefix table values (one byte per possible first byte).
    public const byte PNone = 0, POpSize = 1, PAddrSize = 2, PRep = 3, PRepne = 4, PLock = 5, PRex = 6, PSeg = 8; // PSeg + segment number

    /// <summary>Where each table starts in <see cref="Table"/>: the prefix table (256 bytes), the opcode entries (3 maps),
    /// the group rows, the prefix rows, the kind traits, the decoder's prefix bits per REX byte (RexBits), the form entries (one uint per opcode of the one-byte and 0F
    /// maps, after one zero entry for "no opcode byte"), the mode-size entries (8 per CpuMode value, 256 values), the ModRM
    /// tables and the form rows (their count is known once built).</summary>
    public const int PrefixesAt = 0, EntriesAt = 256, GroupsAt = EntriesAt + 3 * 256 * EntrySize,
        PrefixRowsAt = GroupsAt + GroupCount * 8 * GroupRowSize, TraitsAt = PrefixRowsAt + PrefixRowCount * PrefixRowSize,
        RexBitsAt = TraitsAt + 256, FormsAt = RexBitsAt + 16 * 4 + 4, ModeSizesAt = FormsAt + 2 * 256 * 4, ModRMAt = ModeSizesAt + 256 * 8 * 2, FormRowsAt = ModRMAt + 3 * 512;

    // ---- Form rows (the decoder's short path; X86Decoder.TryDecode) ----
    //
    // A form is an opcode of the one-byte or 0F map, or one ModRM.reg member of a group opcode, whose DecodedAccess is
    // fixed by the form, the CPU mode and the operand size except for what the bytes name: the ModRM/SIB operands, the
    // displacement, the immediate, the segment, the length, LOCK and REP. Its row holds that DecodedAccess once per
    // variant (mode and operand size: FormVariantCount, ModeSizes), built at type initialisation by running the full
    // decoder (X86Decoder.Decode) on a synthesised instance of the form, so a row cannot disagree with the decoder it
    // shortens; the decoder copies the row in one 48-byte move and writes the operands after it.
    // Why built by decoding and not from the tables directly: a second derivation of Size/RegSize/Op/Align per kind
    // would be a second decoder to keep in step; decoding the form once per variant is the first one, by construction.
    //
    //   form entry (uint, FormsAt + (map * 256 + opcode) * 4): bits 0..23 the offset in Table of the form's rows (a
    //   group's member 0; its members follow), FormModRM, FormGroup; below FormRowsAt: FormEscape on 0F (the next byte
    //   indexes the 0F map's entries), 0 = no form. A form's rows: one per variant, 1 << FormVariantBits of them.
    //   form row (FormRowSize bytes): [0..47] the DecodedAccess; [RowCtl] an int: the immediate's length and mask, and
    //   C* bits; CValid clear = this form does not exist in this variant (the full decoder refuses it, or decides more
    //   than a row holds).
    //   mode-size entry (ushort at ModeSizesAt + (mode * 8 + 66 + 67 * 2 + REX.W * 4) * 2): the variant's row offset
    //   (SelVariant; variant 7 = none, for the CpuMode values that are not modes), the address size (SelAddrSize) and
    //   the ModRM table (SelModRM).
    /// <summary>Where a REX prefix sits in the decoder's prefix bits (X86Decoder.Prefixes): REX.W at PfRexW, beside 66 and
    /// 67, and the whole byte at PfRexShift. RexBitsAt holds those bits for 40..4F, so a REX costs a load and no shifts.</summary>
    public const int PfRexW = 4, PfRexShift = 16;
    public const uint FormRowMask = 0xFF_FFFF, FormModRM = 1u << 24, FormGroup = 1u << 25, FormEscape = 1;
    public const int FormVariantBits = 3, FormVariantCount = 7, FormRowBits = 6, FormRowSize = 1 << FormRowBits,
        RowCtl = 48;
    /// <summary>A mode-size entry (ushort): the address size, the variant's byte offset within a form's rows, and which
    /// ModRM table the mode and address size use (its offset from ModRMAt: 16-bit addressing, 32-bit, 64-bit mode; the
    /// tables are 512 bytes apart, 256 of them used, so the entry's bits are the offset).</summary>
    public const int SelAddrSize = 0xF, SelVariant = ((1 << FormVariantBits) - 1) << FormRowBits,
        SelModRM16 = 0, SelModRM32 = 1 << 9, SelModRM64 = 2 << 9, SelModRM = 3 << 9;
    /// <summary>Form-row control (an int at RowCtl): the immediate's length (CImmBytes) and its mask (bits CImmShift..: the
    /// immediate is read sign-extended and ANDed with ulong.MaxValue shifted right by this); CValid = the row exists; CModRM =
    /// a ModRM byte follows; CRegModRM = Reg is ModRM.reg (+ REX.R); CByteReg = ... and it is a byte register (AH..BH
    /// without REX); CLockable = LOCK is legal; CRep = F2/F3 make it a REP string form; CRepNe = F2 means REPNE;
    /// CEsDest = Segment is ES whatever the prefixes; CSrcSeg = SrcSegment takes the segment.</summary>
    public const int CImmBytes = 0xFF, CImmShift = 24, CValid = 1 << 8, CModRM = 1 << 9, CRegModRM = 1 << 10, CByteReg = 1 << 11,
        CLockable = 1 << 12, CRep = 1 << 13, CRepNe = 1 << 14, CEsDest = 1 << 15, CSrcSeg = 1 << 16;
    /// <summary>ModRM table bytes (ModRMAt + SelModRM* + the ModRM byte, mod 0..2): the displacement's length (MDisp:
    /// 0, 1 or 4), MSib = a SIB byte follows, MNoBase = mod 0, rm 5 (disp32 alone: RIP-relative in 64-bit mode), MNone =
    /// 16-bit addressing (not decoded by the rows).</summary>
    public const int MDisp = 7, MSib = 8, MNoBase = 16, MNone = 32;

    // Why one array: the decoder reaches every table through one reference fetched once per call (a static field read in
    // NativeAOT is a class-init check, a base load and a null check; four tables paid that four times and spilled the bases).
    static readonly byte[] s_table = BuildTable();

    /// <summary>All the tables, one after another (offsets <see cref="PrefixesAt"/> .. <see cref="TraitsAt"/>).</summary>
    public static byte[] Table => s_table;

    static byte[] BuildTable()
    {
        var t = new byte[FormRowsAt];
        BuildPrefixes().CopyTo(t, PrefixesAt);
        BuildEntries().CopyTo(t, EntriesAt);
        BuildGroups().CopyTo(t, GroupsAt);
        BuildPrefixRows().CopyTo(t, PrefixRowsAt);
        BuildTraits().CopyTo(t, TraitsAt);
        BuildModeSizes(t);
        for (int rex = 0x40; rex <= 0x4F; rex++)
            Unsafe.WriteUnaligned(ref t[RexBitsAt + (rex & 0xF) * 4], rex << PfRexShift | ((rex & 8) != 0 ? PfRexW : 0));
        byte[] rows = BuildForms(t);
        var all = new byte[FormRowsAt + rows.Length];
        t.CopyTo(all, 0);
        rows.CopyTo(all, FormRowsAt);
        return all;
    }

    /// <summary>The variant (which operand size a row was built for) and the address size per mode, 66, 67 and REX.W.</summary>
    static void BuildModeSizes(byte[] t)
    {
        for (int m = 0; m < 256; m++)
            for (int k = 0; k < 8; k++)
            {
                bool o = (k & 1) != 0, a = (k & 2) != 0, w = (k & 4) != 0;
                int sel = (CpuMode)m switch
                {
                    CpuMode.Bits16 => Sel(o ? 1 : 0, a ? 4 : 2, a ? SelModRM32 : SelModRM16),
                    CpuMode.Bits32 => Sel(o ? 3 : 2, a ? 2 : 4, a ? SelModRM16 : SelModRM32),
                    CpuMode.Bits64 => Sel(w ? 6 : o ? 5 : 4, a ? 4 : 8, SelModRM64),
                    _ => Sel(FormVariantCount, 0, SelModRM16),   // not a mode: the variant no form has, so every form goes to Decode
                };
                Unsafe.WriteUnaligned(ref t[ModeSizesAt + (m * 8 + k) * 2], (ushort)sel);
            }
        static int Sel(int variant, int addrSize, int modrmTable) => variant << FormRowBits | addrSize | modrmTable;

        // ModRM (mod 0..2) for 16-bit addressing (MNone), 32-bit addressing and 64-bit mode (which differ in nothing here but
        // the table's name: RIP-relative is decided on SelModRM64).
        for (int modrm = 0; modrm < 0xC0; modrm++)
        {
            int mod = modrm >> 6, rm = modrm & 7;
            int m = mod == 1 ? 1 : mod == 2 ? 4 : 0;
            if (rm == 4) m |= MSib;
            else if (rm == 5 && mod == 0) m |= MNoBase | 4;
            t[ModRMAt + SelModRM16 + modrm] = MNone;
            t[ModRMAt + SelModRM32 + modrm] = (byte)m;
            t[ModRMAt + SelModRM64 + modrm] = (byte)m;
        }
    }

    /// <summary>A variant's mode and prefixes: 0, 1 = 16-bit mode without and with 66; 2, 3 = 32-bit mode without and
    /// with 66; 4, 5, 6 = 64-bit mode without a prefix, with 66, with REX.W.</summary>
    static (CpuMode Mode, byte[] Prefixes) Variant(int v) => v switch
    {
        // 67 in 16-bit mode: the rows are for 32/64-bit addressing (16-bit addressing goes to Decode), and the address
        // size is not part of a row.
        0 => (CpuMode.Bits16, [0x67]),
        1 => (CpuMode.Bits16, [0x67, 0x66]),
        2 => (CpuMode.Bits32, []),
        3 => (CpuMode.Bits32, [0x66]),
        4 => (CpuMode.Bits64, []),
        5 => (CpuMode.Bits64, [0x66]),
        _ => (CpuMode.Bits64, [0x48]),
    };

    /// <summary>Whether a kind's DecodedAccess is fixed by the form, mode and operand size (so a row can hold it): not the
    /// SSE/MMX, MOVDIR64B, x87 and system kinds (a mandatory prefix or a size rule of their own), not MOVNTI/MOVDIRI
    /// (refused with 66/F2/F3) and not BSF/BSR (F3 makes them TZCNT/LZCNT).</summary>
    static bool RowKind(AccessKind kind, int op, bool writeArg) =>
        kind is not (AccessKind.Unsupported or AccessKind.ReadVec or AccessKind.WriteVec or AccessKind.Movdir64b)
        && kind < AccessKind.Fnstcw
        && !(kind == AccessKind.Write && writeArg)
        && !(kind == AccessKind.Alu && op is (int)AluOp.Bsf or (int)AluOp.Bsr);

    static byte[] BuildForms(byte[] t)
    {
        var rows = new List<byte>();
        int next = 0;
        for (int map = 0; map < 2; map++)
        {
            for (int op = 0; op < 256; op++)
            {
                int e = EntriesAt + (map * 256 + op) * EntrySize;
                byte kind = t[e], flags = t[e + 1], imm = t[e + 2], arg = t[e + 3];
                uint entry = 0;
                if (kind == KindEscape && map == 0) entry = FormEscape;
                else if (kind is not (KindEscape or KindPrefixed) && kind != (byte)AccessKind.Unsupported && imm is not (ImmMoffs or ImmPort8))
                {
                    bool group = kind == KindGroup;
                    var members = new List<byte[]>();
                    for (int m = 0; m < (group ? 8 : 1); m++)
                    {
                        int g = GroupsAt + (arg * 8 + m) * GroupRowSize;
                        bool rowKind = group ? RowKind((AccessKind)t[g], t[g + 1], false) : RowKind((AccessKind)kind, arg, arg != 0);
                        var memberRows = new List<byte>();
                        for (int v = 0; v < 1 << FormVariantBits; v++)
                            memberRows.AddRange(rowKind && v < FormVariantCount ? FormRow(t, map, op, m, v, group) : new byte[FormRowSize]);
                        members.Add([.. memberRows]);
                    }
                    // Why: a group whose members decode alike (SETcc ignores ModRM.reg) needs one form, not eight, and a
                    // form without a row in any variant needs none (the full decoder takes it before ModRM is read).
                    if (members.TrueForAll(r => r.AsSpan().SequenceEqual(members[0]))) { members.RemoveRange(1, members.Count - 1); group = false; }
                    if (members.Exists(HasRow))
                    {
                        entry = (uint)(FormRowsAt + (next << (FormVariantBits + FormRowBits))) | ((flags & FModRM) != 0 ? FormModRM : 0) | (group ? FormGroup : 0);
                        foreach (byte[] r in members) rows.AddRange(r);
                        next += members.Count;
                    }
                }
                Unsafe.WriteUnaligned(ref t[FormsAt + (map * 256 + op) * 4], entry);
            }
        }
        if (FormRowsAt + rows.Count > FormRowMask) throw new InvalidOperationException($"OpcodeTable: {next} forms do not fit a form entry");
        return [.. rows];
    }

    /// <summary>Whether a form's rows (all variants) hold at least one row.</summary>
    static bool HasRow(byte[] rows)
    {
        for (int o = 0; o < rows.Length; o += FormRowSize)
            if ((Unsafe.ReadUnaligned<int>(ref rows[o + RowCtl]) & CValid) != 0) return true;
        return false;
    }

    /// <summary>One form's row for variant <paramref name="v"/>: the full decoder's result for the form with ModRM
    /// [rAX] (mod 0, rm 0, reg = the group member or 0) and an all-ones immediate, and what the decoder must still
    /// write per instance.</summary>
    static byte[] FormRow(byte[] t, int map, int op, int member, int v, bool group)
    {
        if (Unsafe.SizeOf<DecodedAccess>() > RowCtl) throw new InvalidOperationException("OpcodeTable: DecodedAccess outgrew its form row");
        var (mode, prefixes) = Variant(v);
        var bytes = new List<byte>(prefixes);
        if (map == 1) bytes.Add(0x0F);
        bytes.Add((byte)op);
        int e = EntriesAt + (map * 256 + op) * EntrySize;
        byte flags = t[e + 1];
        if ((flags & FModRM) != 0) bytes.Add((byte)(member << 3));
        int end = bytes.Count;
        bytes.AddRange([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        var row = new byte[FormRowSize];
        if (!X86Decoder.Decode(ref t[0], bytes.ToArray(), mode, out DecodedAccess d)) return row;   // not a form in this variant

        int immBytes = d.Length - end;
        if (immBytes is not (0 or 1 or 2 or 4) || d.Port != 0 || d.Disp != 0)
            throw new InvalidOperationException($"OpcodeTable: form {map:X}/{op:X2}/{member} has operands a row cannot hold");
        int traits = t[TraitsAt + (int)d.Kind];
        bool regModRM = (flags & FModRM) != 0 && !group && (flags & FAcc) == 0 && t[e + 2] != ImmCl;
        int ctl = CValid | immBytes;
        if ((flags & FModRM) != 0) ctl |= CModRM;
        if (regModRM) ctl |= CRegModRM;
        if (regModRM && d.RegSize == 1) ctl |= CByteReg;
        if ((flags & FString) != 0) ctl |= CRep;
        if ((flags & FString) != 0 && (traits & TRepNe) != 0) ctl |= CRepNe;
        if ((traits & TEsDest) != 0) ctl |= CEsDest;
        if ((traits & TSrcSeg) != 0) ctl |= CSrcSeg;
        bytes.Insert(0, 0xF0);
        if (X86Decoder.Decode(ref t[0], bytes.ToArray(), mode, out _)) ctl |= CLockable;

        if (immBytes != 0)
        {
            // The all-ones immediate decodes to its mask (sign-extended, then cut to the operand size or to its own width).
            int shift = BitOperations.LeadingZeroCount((ulong)d.Imm);
            if (ulong.MaxValue >> shift != (ulong)d.Imm) throw new InvalidOperationException($"OpcodeTable: form {map:X}/{op:X2}/{member} has an immediate mask {d.Imm:X}");
            ctl |= shift << CImmShift;
        }
        Unsafe.WriteUnaligned(ref row[0], d);
        Unsafe.WriteUnaligned(ref row[RowCtl], ctl);
        return row;
    }

    /// <summary>Kind traits (one byte per AccessKind), so the decoder's tail reads one byte instead of comparing the kind
    /// against lists: TEsDest = the rDI/ES operand is the memory operand (STOS, INS, MOVS, CMPS, SCAS, MOVDIR64B);
    /// TSrcSeg = a second, overridable source segment (MOVS, CMPS, MOVDIR64B); TOp = the AluOp is reported (ALU, BTx);
    /// TCond = the opcode's low nibble is a condition (SETcc, CMOVcc); TRepNe = F2 means REPNE (CMPS, SCAS);
    /// TPortDx = the port is DX unless an imm8 names it (IN, OUT, INS, OUTS); TSized = the operand is not sized by the
    /// operand size alone (MOVZX/MOVSX/MOVSXD, the SSE moves, MOVDIR64B, and every kind from FNSTCW on; MOVNTI/MOVDIRI and
    /// CMPXCHG8B/16B share the Write and ALU kinds and are told apart by their arg).</summary>
    public const byte TEsDest = 1, TSrcSeg = 2, TOp = 4, TCond = 8, TRepNe = 16, TPortDx = 32, TSized = 64;

    static byte[] BuildTraits()
    {
        var r = new byte[256];
        foreach (var k in new[] { AccessKind.Stos, AccessKind.Ins, AccessKind.Movs, AccessKind.Cmps, AccessKind.Scas, AccessKind.Movdir64b }) r[(int)k] |= TEsDest;
        foreach (var k in new[] { AccessKind.Movs, AccessKind.Cmps, AccessKind.Movdir64b }) r[(int)k] |= TSrcSeg;
        r[(int)AccessKind.Alu] |= TOp; r[(int)AccessKind.Bt] |= TOp;
        r[(int)AccessKind.Setcc] |= TCond; r[(int)AccessKind.Cmov] |= TCond;
        r[(int)AccessKind.Cmps] |= TRepNe; r[(int)AccessKind.Scas] |= TRepNe;
        foreach (var k in new[] { AccessKind.In, AccessKind.Out, AccessKind.Ins, AccessKind.Outs }) r[(int)k] |= TPortDx;
        foreach (var k in new[] { AccessKind.ReadZx, AccessKind.ReadSx, AccessKind.ReadVec, AccessKind.WriteVec, AccessKind.Movdir64b }) r[(int)k] |= TSized;
        foreach (var k in Enum.GetValues<AccessKind>()) if (k >= AccessKind.Fnstcw) r[(int)k] |= TSized;
        return r;
    }

    static byte[] BuildEntries()
    {
        var t = new byte[3 * 256 * EntrySize];
        void Set(int op, AccessKind kind, byte flags, byte imm = ImmNone, byte arg = 0) => SetRaw(op, (byte)kind, flags, imm, arg);
        void SetRaw(int op, byte kind, byte flags, byte imm, byte arg)
        {
            int o = op * EntrySize;
            t[o] = kind; t[o + 1] = flags; t[o + 2] = imm; t[o + 3] = arg;
        }

        // 00..3D: eight ALU families; only the r/m,reg and reg,r/m forms touch memory (acc,imm forms do not).
        ReadOnlySpan<AluOp> families = [AluOp.Add, AluOp.Or, AluOp.Adc, AluOp.Sbb, AluOp.And, AluOp.Sub, AluOp.Xor, AluOp.Cmp];
        for (int f = 0; f < 8; f++)
        {
            int b = f << 3;
            byte op = (byte)families[f];
            Set(b + 0, AccessKind.Alu, FModRM | FByte | FMemDest, ImmNone, op);
            Set(b + 1, AccessKind.Alu, FModRM | FMemDest, ImmNone, op);
            Set(b + 2, AccessKind.Alu, FModRM | FByte, ImmNone, op);
            Set(b + 3, AccessKind.Alu, FModRM, ImmNone, op);
        }

        Set(0x63, AccessKind.ReadSx, FModRM | FOnly64, ImmNone, 4);
        Set(0x69, AccessKind.Alu, FModRM, ImmZ, (byte)AluOp.Imul);
        Set(0x6B, AccessKind.Alu, FModRM, Imm8Sx, (byte)AluOp.Imul);

        SetRaw(0x80, KindGroup, FModRM | FByte | FMemDest, Imm8, GroupAlu1);
        SetRaw(0x81, KindGroup, FModRM | FMemDest, ImmZ, GroupAlu1);
        SetRaw(0x83, KindGroup, FModRM | FMemDest, Imm8Sx, GroupAlu1);
        Set(0x84, AccessKind.Alu, FModRM | FByte | FMemDest, ImmNone, (byte)AluOp.Test);
        Set(0x85, AccessKind.Alu, FModRM | FMemDest, ImmNone, (byte)AluOp.Test);
        Set(0x86, AccessKind.Xchg, FModRM | FByte | FMemDest);
        Set(0x87, AccessKind.Xchg, FModRM | FMemDest);

        Set(0x88, AccessKind.Write, FModRM | FByte | FMemDest);
        Set(0x89, AccessKind.Write, FModRM | FMemDest);
        Set(0x8A, AccessKind.Read, FModRM | FByte);
        Set(0x8B, AccessKind.Read, FModRM);

        Set(0xA0, AccessKind.Read, FByte | FAcc, ImmMoffs);
        Set(0xA1, AccessKind.Read, FAcc, ImmMoffs);
        Set(0xA2, AccessKind.Write, FByte | FAcc | FMemDest, ImmMoffs);
        Set(0xA3, AccessKind.Write, FAcc | FMemDest, ImmMoffs);

        Set(0xA4, AccessKind.Movs, FByte | FString | FMemDest, ImmNone, (byte)Gpr.Rdi);
        Set(0xA5, AccessKind.Movs, FString | FMemDest, ImmNone, (byte)Gpr.Rdi);
        Set(0xA6, AccessKind.Cmps, FByte | FString, ImmNone, (byte)Gpr.Rdi);
        Set(0xA7, AccessKind.Cmps, FString, ImmNone, (byte)Gpr.Rdi);
        Set(0xAC, AccessKind.Lods, FByte | FString | FAcc, ImmNone, (byte)Gpr.Rsi);
        Set(0xAD, AccessKind.Lods, FString | FAcc, ImmNone, (byte)Gpr.Rsi);
        Set(0xAE, AccessKind.Scas, FByte | FString | FAcc, ImmNone, (byte)Gpr.Rdi);
        Set(0xAF, AccessKind.Scas, FString | FAcc, ImmNone, (byte)Gpr.Rdi);
        Set(0xAA, AccessKind.Stos, FByte | FString | FAcc | FMemDest, ImmNone, (byte)Gpr.Rdi);
        Set(0xAB, AccessKind.Stos, FString | FAcc | FMemDest, ImmNone, (byte)Gpr.Rdi);
        Set(0x6C, AccessKind.Ins, FByte | FString | FMemDest, ImmNone, (byte)Gpr.Rdi);
        Set(0x6D, AccessKind.Ins, FString | FNoRexW | FMemDest, ImmNone, (byte)Gpr.Rdi);
        Set(0x6E, AccessKind.Outs, FByte | FString, ImmNone, (byte)Gpr.Rsi);
        Set(0x6F, AccessKind.Outs, FString | FNoRexW, ImmNone, (byte)Gpr.Rsi);

        SetRaw(0xC0, KindGroup, FModRM | FByte | FMemDest, Imm8, GroupShift2);
        SetRaw(0xC1, KindGroup, FModRM | FMemDest, Imm8, GroupShift2);
        SetRaw(0xD0, KindGroup, FModRM | FByte | FMemDest, ImmOne, GroupShift2);
        SetRaw(0xD1, KindGroup, FModRM | FMemDest, ImmOne, GroupShift2);
        SetRaw(0xD2, KindGroup, FModRM | FByte | FMemDest, ImmCl, GroupShift2);
        SetRaw(0xD3, KindGroup, FModRM | FMemDest, ImmCl, GroupShift2);
        SetRaw(0xC6, KindGroup, FModRM | FByte | FMemDest, Imm8, GroupMov11);
        SetRaw(0xC7, KindGroup, FModRM | FMemDest, ImmZ, GroupMov11);

        Set(0xE4, AccessKind.In, FByte | FAcc, ImmPort8);
        Set(0xE5, AccessKind.In, FAcc | FNoRexW, ImmPort8);
        Set(0xE6, AccessKind.Out, FByte | FAcc, ImmPort8);
        Set(0xE7, AccessKind.Out, FAcc | FNoRexW, ImmPort8);
        Set(0xEC, AccessKind.In, FByte | FAcc);
        Set(0xED, AccessKind.In, FAcc | FNoRexW);
        Set(0xEE, AccessKind.Out, FByte | FAcc);
        Set(0xEF, AccessKind.Out, FAcc | FNoRexW);

        // Group 3: only TEST /0 (and its /1 alias) has an immediate; the entry's Imm8/ImmZ applies to those alone.
        SetRaw(0xF6, KindGroup, FModRM | FByte | FMemDest, Imm8, GroupUnary3);
        SetRaw(0xF7, KindGroup, FModRM | FMemDest, ImmZ, GroupUnary3);
        SetRaw(0x8F, KindGroup, FModRM | FMemDest, ImmNone, GroupPop1A);
        SetRaw(0xFE, KindGroup, FModRM | FByte | FMemDest, ImmNone, GroupIncDec4);
        SetRaw(0xFF, KindGroup, FModRM | FMemDest, ImmNone, GroupIncDec5);

        SetRaw(0x0F, KindEscape, 0, ImmNone, 0);

        // x87 escapes D9 and DD: only the state stores FNSTCW (/7) and FNSTSW (/7); mod = 3 is an x87 register form.
        SetRaw(0xD9, KindGroup, FModRM | FMemDest | FMemOnly, ImmNone, GroupX87D9);
        SetRaw(0xDD, KindGroup, FModRM | FMemDest | FMemOnly, ImmNone, GroupX87DD);
        // Group 15 (0F AE): /0 FXSAVE, /1 FXRSTOR; mod = 3 is the fences and RD/WR FS/GS BASE.
        SetRaw(Map0F + 0xAE, KindGroup, FModRM | FMemOnly, ImmNone, GroupFx15);

        // 0F map.
        Set(Map0F + 0xA3, AccessKind.Bt, FModRM | FMemDest);
        Set(Map0F + 0xAB, AccessKind.Bt, FModRM | FMemDest, ImmNone, (byte)AluOp.Bts);
        Set(Map0F + 0xB3, AccessKind.Bt, FModRM | FMemDest, ImmNone, (byte)AluOp.Btr);
        Set(Map0F + 0xBB, AccessKind.Bt, FModRM | FMemDest, ImmNone, (byte)AluOp.Btc);
        SetRaw(Map0F + 0xBA, KindGroup, FModRM | FMemDest, Imm8, GroupBt8);
        for (int c = 0; c < 16; c++)
        {
            Set(Map0F + 0x40 + c, AccessKind.Cmov, FModRM);
            SetRaw(Map0F + 0x90 + c, KindGroup, FModRM | FByte | FMemDest, ImmNone, GroupSetcc);
        }
        Set(Map0F + 0xA4, AccessKind.Alu, FModRM | FMemDest, Imm8, (byte)AluOp.Shld);
        Set(Map0F + 0xA5, AccessKind.Alu, FModRM | FMemDest, ImmNone, (byte)AluOp.Shld);
        Set(Map0F + 0xAC, AccessKind.Alu, FModRM | FMemDest, Imm8, (byte)AluOp.Shrd);
        Set(Map0F + 0xAD, AccessKind.Alu, FModRM | FMemDest, ImmNone, (byte)AluOp.Shrd);
        Set(Map0F + 0xAF, AccessKind.Alu, FModRM, ImmNone, (byte)AluOp.Imul);
        Set(Map0F + 0xBC, AccessKind.Alu, FModRM, ImmNone, (byte)AluOp.Bsf);   // F3 0F BC/BD are TZCNT/LZCNT: refused (X86Decoder)
        Set(Map0F + 0xBD, AccessKind.Alu, FModRM, ImmNone, (byte)AluOp.Bsr);
        Set(Map0F + 0xB0, AccessKind.Alu, FModRM | FByte | FMemDest, ImmNone, (byte)AluOp.Cmpxchg);
        Set(Map0F + 0xB1, AccessKind.Alu, FModRM | FMemDest, ImmNone, (byte)AluOp.Cmpxchg);
        Set(Map0F + 0xC0, AccessKind.Alu, FModRM | FByte | FMemDest, ImmNone, (byte)AluOp.Xadd);
        Set(Map0F + 0xC1, AccessKind.Alu, FModRM | FMemDest, ImmNone, (byte)AluOp.Xadd);
        Set(Map0F + 0xC3, AccessKind.Write, FModRM | FMemDest | FMemOnly, ImmNone, 1);
        SetRaw(Map0F + 0xC7, KindGroup, FModRM | FMemDest | FMemOnly, ImmNone, GroupCx9);
        Set(Map0F + 0xB6, AccessKind.ReadZx, FModRM, ImmNone, 1);
        Set(Map0F + 0xB7, AccessKind.ReadZx, FModRM, ImmNone, 2);
        Set(Map0F + 0xBE, AccessKind.ReadSx, FModRM, ImmNone, 1);
        Set(Map0F + 0xBF, AccessKind.ReadSx, FModRM, ImmNone, 2);

        // SSE moves: the mandatory prefix picks the form (BuildPrefixRows); the MOVNT* stores have no register form.
        SetRaw(Map0F + 0x10, KindPrefixed, FModRM, ImmNone, PrefixMovu);
        SetRaw(Map0F + 0x11, KindPrefixed, FModRM | FMemDest, ImmNone, PrefixMovuStore);
        SetRaw(Map0F + 0x28, KindPrefixed, FModRM, ImmNone, PrefixMova);
        SetRaw(Map0F + 0x29, KindPrefixed, FModRM | FMemDest, ImmNone, PrefixMovaStore);
        SetRaw(Map0F + 0x2B, KindPrefixed, FModRM | FMemDest | FMemOnly, ImmNone, PrefixMovntps);
        SetRaw(Map0F + 0x6F, KindPrefixed, FModRM, ImmNone, PrefixMovdq);
        SetRaw(Map0F + 0x7F, KindPrefixed, FModRM | FMemDest, ImmNone, PrefixMovdqStore);
        SetRaw(Map0F + 0xE7, KindPrefixed, FModRM | FMemDest | FMemOnly, ImmNone, PrefixMovntdq);

        // 0F 38 map: MOVDIRI (no 66/F2/F3, like MOVNTI) and MOVDIR64B (66 only).
        // System state (c14a): 0F 00 group 6 (SLDT/STR/LLDT/LTR m16; register forms touch no memory), 0F 01 group 7
        // (mod = 3 is VMCALL, MONITOR, SWAPGS, ...: other instructions), 8E MOV Sreg, m16, 8C MOV m16, Sreg.
        SetRaw(Map0F + 0x00, KindGroup, FModRM, ImmNone, GroupSys6);
        SetRaw(Map0F + 0x01, KindGroup, FModRM | FMemOnly, ImmNone, GroupSys7);
        SetRaw(0x8E, KindGroup, FModRM, ImmNone, GroupMovSreg);
        SetRaw(0x8C, KindGroup, FModRM | FMemDest, ImmNone, GroupStoreSreg);
        // LSS, LFS, LGS r, m16:xx (arg: the segment); LES, LDS (C4, C5) only outside 64-bit mode, where they are VEX
        // prefixes (FOnly64 reversed on this kind: the flag byte is full), and with mod = 3 VEX in every mode.
        Set(0xC4, AccessKind.LoadFarPtr, FModRM | FMemOnly | FOnly64, ImmNone, Seg.ES);
        Set(0xC5, AccessKind.LoadFarPtr, FModRM | FMemOnly | FOnly64, ImmNone, Seg.DS);
        Set(Map0F + 0xB2, AccessKind.LoadFarPtr, FModRM | FMemOnly, ImmNone, Seg.SS);
        Set(Map0F + 0xB4, AccessKind.LoadFarPtr, FModRM | FMemOnly, ImmNone, Seg.FS);
        Set(Map0F + 0xB5, AccessKind.LoadFarPtr, FModRM | FMemOnly, ImmNone, Seg.GS);

        SetRaw(Map0F + 0x38, KindEscape, 0, ImmNone, 1);
        Set(Map0F38 + 0xF9, AccessKind.Write, FModRM | FMemDest | FMemOnly, ImmNone, 1);
        SetRaw(Map0F38 + 0xF8, KindPrefixed, FModRM | FMemOnly, ImmNone, PrefixMovdir64b);
        return t;
    }

    public const byte PrefixMovu = 0, PrefixMovuStore = 1, PrefixMova = 2, PrefixMovaStore = 3, PrefixMovntps = 4,
        PrefixMovdq = 5, PrefixMovdqStore = 6, PrefixMovntdq = 7, PrefixMovdir64b = 8, PrefixRowCount = 9;
    /// <summary>Index of a mandatory prefix within a prefix row.</summary>
    public const int MandatoryNone = 0, Mandatory66 = 1, MandatoryF3 = 2, MandatoryF2 = 3;

    static byte[] BuildPrefixRows()
    {
        var r = new byte[PrefixRowCount * PrefixRowSize];
        void Set(int row, int prefix, AccessKind kind, byte size, byte align)
        {
            int o = row * PrefixRowSize + prefix * 4;
            r[o] = (byte)kind; r[o + 1] = size; r[o + 2] = align;
        }
        // F3/F2 on 0F 10/11 are MOVSS/MOVSD, on 0F 28/29/2B undefined or other: left out. No prefix on 0F 6F/7F is MMX
        // MOVQ (an 8-byte move of an MMX register); on 0F E7 it is MOVNTQ, not emulated by any anchor.
        Set(PrefixMovu, MandatoryNone, AccessKind.ReadVec, 16, 0);        // MOVUPS xmm, m128
        Set(PrefixMovu, Mandatory66, AccessKind.ReadVec, 16, 0);          // MOVUPD
        Set(PrefixMovuStore, MandatoryNone, AccessKind.WriteVec, 16, 0);  // MOVUPS m128, xmm
        Set(PrefixMovuStore, Mandatory66, AccessKind.WriteVec, 16, 0);    // MOVUPD
        Set(PrefixMova, MandatoryNone, AccessKind.ReadVec, 16, 16);       // MOVAPS: #GP(0) unless 16-byte aligned
        Set(PrefixMova, Mandatory66, AccessKind.ReadVec, 16, 16);         // MOVAPD
        Set(PrefixMovaStore, MandatoryNone, AccessKind.WriteVec, 16, 16);
        Set(PrefixMovaStore, Mandatory66, AccessKind.WriteVec, 16, 16);
        Set(PrefixMovntps, MandatoryNone, AccessKind.WriteVec, 16, 16);   // MOVNTPS (SDM: #GP(0) if unaligned)
        Set(PrefixMovntps, Mandatory66, AccessKind.WriteVec, 16, 16);     // MOVNTPD
        Set(PrefixMovdq, MandatoryNone, AccessKind.MmxRead, 8, 0);        // MOVQ mm, m64
        Set(PrefixMovdqStore, MandatoryNone, AccessKind.MmxWrite, 8, 0);  // MOVQ m64, mm
        Set(PrefixMovdq, Mandatory66, AccessKind.ReadVec, 16, 16);        // MOVDQA
        Set(PrefixMovdq, MandatoryF3, AccessKind.ReadVec, 16, 0);         // MOVDQU
        Set(PrefixMovdqStore, Mandatory66, AccessKind.WriteVec, 16, 16);
        Set(PrefixMovdqStore, MandatoryF3, AccessKind.WriteVec, 16, 0);
        Set(PrefixMovntdq, Mandatory66, AccessKind.WriteVec, 16, 16);     // MOVNTDQ
        Set(PrefixMovdir64b, Mandatory66, AccessKind.Movdir64b, 64, 64);  // destination 64-byte aligned; F3/F2 are ENQCMD(S)
        return r;
    }

    static byte[] BuildGroups()
    {
        var g = new byte[GroupCount * 8 * GroupRowSize];
        void Set(int group, int reg, AccessKind kind, AluOp op, byte immMask = 0xFF, byte sizeRule = SizeNormal)
        {
            int o = (group * 8 + reg) * GroupRowSize;
            g[o] = (byte)kind;
            g[o + 1] = (byte)op;
            g[o + 2] = immMask;
            g[o + 3] = sizeRule;
        }
        // Group 1 (80/81/83): the eight ALU operations in encoding order.
        ReadOnlySpan<AluOp> alu1 = [AluOp.Add, AluOp.Or, AluOp.Adc, AluOp.Sbb, AluOp.And, AluOp.Sub, AluOp.Xor, AluOp.Cmp];
        for (int r = 0; r < 8; r++) Set(GroupAlu1, r, AccessKind.Alu, alu1[r]);
        // Group 2 (C0/C1/D0..D3): /6 is SAL, the same operation as SHL.
        ReadOnlySpan<AluOp> shift2 = [AluOp.Rol, AluOp.Ror, AluOp.Rcl, AluOp.Rcr, AluOp.Shl, AluOp.Shr, AluOp.Shl, AluOp.Sar];
        for (int r = 0; r < 8; r++) Set(GroupShift2, r, AccessKind.Alu, shift2[r]);
        // Group 3 (F6/F7): /1 is an undocumented TEST alias left to Iced.
        Set(GroupUnary3, 0, AccessKind.Alu, AluOp.Test);
        Set(GroupUnary3, 2, AccessKind.Alu, AluOp.Not, 0);
        Set(GroupUnary3, 3, AccessKind.Alu, AluOp.Neg, 0);
        Set(GroupUnary3, 4, AccessKind.Alu, AluOp.Mul, 0);
        Set(GroupUnary3, 5, AccessKind.Alu, AluOp.Imul, 0);
        Set(GroupUnary3, 6, AccessKind.Alu, AluOp.Div, 0);
        Set(GroupUnary3, 7, AccessKind.Alu, AluOp.Idiv, 0);
        // Groups 4 and 5 (FE/FF): INC and DEC; FE /2.. undefined. FF /2 CALL m, /4 JMP m, /6 PUSH m (KVM's group5);
        // the far forms /3 and /5 load CS and are not emulated.
        foreach (int grp in new[] { GroupIncDec4, GroupIncDec5 })
        {
            Set(grp, 0, AccessKind.Alu, AluOp.Inc);
            Set(grp, 1, AccessKind.Alu, AluOp.Dec);
        }
        Set(GroupIncDec5, 2, AccessKind.Call, AluOp.None, 0, SizeNearBranch);
        Set(GroupIncDec5, 4, AccessKind.Jmp, AluOp.None, 0, SizeNearBranch);
        Set(GroupIncDec5, 6, AccessKind.Push, AluOp.None, 0, SizeStack);
        // FF /3 CALL m16:xx and FF /5 JMP m16:xx, far: CS through its descriptor (hot/Emulate/SystemOps.cs).
        SetSys(GroupIncDec5, 3, AccessKind.FarCall, Seg.CS, SizeFarPtr);
        SetSys(GroupIncDec5, 5, AccessKind.FarJmp, Seg.CS, SizeFarPtr);
        // Group 1A (8F): /0 POP m; the rest is XOP's escape on AMD, #UD here.
        Set(GroupPop1A, 0, AccessKind.Pop, AluOp.None, 0, SizeStack);
        // Group 11 (C6/C7): /0 MOV; the rest is #UD or XABORT/XBEGIN.
        Set(GroupMov11, 0, AccessKind.WriteImm, AluOp.None);
        // Group 8 (0F BA): /4 BT, /5 BTS, /6 BTR, /7 BTC; /0../3 undefined.
        Set(GroupBt8, 4, AccessKind.Bt, AluOp.None);
        Set(GroupBt8, 5, AccessKind.Bt, AluOp.Bts);
        Set(GroupBt8, 6, AccessKind.Bt, AluOp.Btr);
        Set(GroupBt8, 7, AccessKind.Bt, AluOp.Btc);
        // SETcc (0F 90..9F): the reg field is ignored.
        for (int r = 0; r < 8; r++) Set(GroupSetcc, r, AccessKind.Setcc, AluOp.None);
        // Group 9 (0F C7): /1 CMPXCHG8B (CMPXCHG16B with REX.W); the memory forms of the rest are not emulated.
        Set(GroupCx9, 1, AccessKind.Alu, AluOp.Cmpxchg8b);
        // x87 (D9 /7, DD /7) and group 15 (0F AE /0, /1): the state forms KVM emulates; the other members are not.
        Set(GroupX87D9, 7, AccessKind.Fnstcw, AluOp.None);
        Set(GroupX87DD, 7, AccessKind.Fnstsw, AluOp.None);
        Set(GroupFx15, 0, AccessKind.Fxsave, AluOp.None);
        Set(GroupFx15, 1, AccessKind.Fxrstor, AluOp.None);

        // System state (c14a). Row byte 1 is the register the form names (DecodedAccess.SysReg), not an AluOp.
        // Group 6 (0F 00): /0 SLDT, /1 STR, /2 LLDT, /3 LTR; /4 VERR and /5 VERW only test a selector (no data access).
        SetSys(GroupSys6, 0, AccessKind.SysStore, SysReg.Ldtr, SizeWord);
        SetSys(GroupSys6, 1, AccessKind.SysStore, SysReg.Tr, SizeWord);
        SetSys(GroupSys6, 2, AccessKind.SysLoad, SysReg.Ldtr, SizeWord);
        SetSys(GroupSys6, 3, AccessKind.SysLoad, SysReg.Tr, SizeWord);
        // Group 7 (0F 01, memory forms): /0 SGDT, /1 SIDT, /2 LGDT, /3 LIDT, /4 SMSW, /6 LMSW; /5 (RSTORSSP) and /7 INVLPG are not data moves.
        SetSys(GroupSys7, 0, AccessKind.SysStore, SysReg.Gdtr, SizeDescTable);
        SetSys(GroupSys7, 1, AccessKind.SysStore, SysReg.Idtr, SizeDescTable);
        SetSys(GroupSys7, 2, AccessKind.SysLoad, SysReg.Gdtr, SizeDescTable);
        SetSys(GroupSys7, 3, AccessKind.SysLoad, SysReg.Idtr, SizeDescTable);
        SetSys(GroupSys7, 4, AccessKind.SysStore, SysReg.Msw, SizeWord);
        SetSys(GroupSys7, 6, AccessKind.SysLoad, SysReg.Msw, SizeWord);
        // 8E: MOV Sreg, m16 for ES, SS, DS, FS, GS (/1, MOV CS, is #UD; /6, /7 do not exist); 8C: MOV m16, Sreg for all six.
        foreach (byte sreg in new[] { Seg.ES, Seg.SS, Seg.DS, Seg.FS, Seg.GS }) SetSys(GroupMovSreg, sreg, AccessKind.SegLoad, sreg, SizeWord);
        for (byte sreg = Seg.ES; sreg <= Seg.GS; sreg++) SetSys(GroupStoreSreg, sreg, AccessKind.SysStore, sreg, SizeWord);
        return g;

        void SetSys(int group, int reg, AccessKind kind, byte sysReg, byte sizeRule)
        {
            int o = (group * 8 + reg) * GroupRowSize;
            g[o] = (byte)kind; g[o + 1] = sysReg; g[o + 2] = 0; g[o + 3] = sizeRule;
        }
    }

    static byte[] BuildPrefixes()
    {
        var p = new byte[256];
        p[0x66] = POpSize;
        p[0x67] = PAddrSize;
        p[0xF3] = PRep;
        p[0xF2] = PRepne;
        p[0xF0] = PLock;
        p[0x26] = PSeg + Seg.ES;
        p[0x2E] = PSeg + Seg.CS;
        p[0x36] = PSeg + Seg.SS;
        p[0x3E] = PSeg + Seg.DS;
        p[0x64] = PSeg + Seg.FS;
        p[0x65] = PSeg + Seg.GS;
        for (int r = 0x40; r <= 0x4F; r++) p[r] = PRex;
        return p;
    }

    // 16-bit ModRM addressing: rm -> base, index ([bx+si], [bx+di], [bp+si], [bp+di], [si], [di], [bp], [bx]).
    public static ReadOnlySpan<sbyte> Base16 => [Gpr.Rbx, Gpr.Rbx, Gpr.Rbp, Gpr.Rbp, Gpr.Rsi, Gpr.Rdi, Gpr.Rbp, Gpr.Rbx];
    public static ReadOnlySpan<sbyte> Index16 => [Gpr.Rsi, Gpr.Rdi, Gpr.Rsi, Gpr.Rdi, -1, -1, -1, -1];
}

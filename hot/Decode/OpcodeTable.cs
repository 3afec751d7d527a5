// Design note — the opcode attribute table.
//
// The decoder is driven by data, as Iced's is: one 4-byte entry per opcode of the one-byte map (0..255) and of
// the 0F map (256..511), built once at type initialisation and read through a ReadOnlySpan<byte>. The decoder
// itself only walks prefixes, looks up the entry, and consumes ModRM/SIB/displacement/immediate as the entry
// says. Opcodes that take their operation from ModRM.reg (groups 1, 3, 11, 8) point at an 8-entry group row.
// Nothing here is mutated after the static constructor; reads are safe from any thread.
//
//   entry (4 bytes)
//   +--------+--------+--------+--------+
//   |  kind  | flags  |  imm   |  arg   |
//   +--------+--------+--------+--------+
//    kind : AccessKind, or KindGroup (arg = group row), KindEscape (0F), KindUnsupported (ADC/SBB: known, refused)
//    flags: FModRM | FByte | FNoRexW | FMemDest | FOnly64 | FAcc | FString
//    imm  : ImmNone | Imm8 | ImmZ | Imm8Sx | ImmMoffs | ImmPort8
//    arg  : AluOp for ALU forms, source width for MOVZX/MOVSX, base register for string forms, group row for groups
//
//   group row (2 bytes per ModRM.reg value): [AccessKind, AluOp]; AccessKind.Unsupported = refused (UnsupportedOp).

namespace Copra.Hot.Decode;

internal static class OpcodeTable
{
    public const int EntrySize = 4;
    public const int Map0F = 256;

    public const byte KindGroup = 0xF0, KindEscape = 0xF1, KindUnsupported = 0xF2;

    public const byte FModRM = 1 << 0;   // a ModRM byte follows
    public const byte FByte = 1 << 1;    // operand size is 1 regardless of prefixes
    public const byte FNoRexW = 1 << 2;  // IN/OUT/INS/OUTS: operand size 2 or 4 (REX.W selects 4)
    public const byte FMemDest = 1 << 3; // the memory operand is operand 0
    public const byte FOnly64 = 1 << 4;  // exists only in 64-bit mode (MOVSXD)
    public const byte FAcc = 1 << 5;     // the register operand is the accumulator (no ModRM.reg)
    public const byte FString = 1 << 6;  // implicit rSI/rDI operand, no ModRM

    public const byte ImmNone = 0, Imm8 = 1, ImmZ = 2, Imm8Sx = 3, ImmMoffs = 4, ImmPort8 = 5;

    public const byte GroupAlu1 = 0, GroupTest3 = 1, GroupMov11 = 2, GroupBt8 = 3;

    // Prefix table values (one byte per possible first byte).
    public const byte PNone = 0, POpSize = 1, PAddrSize = 2, PRep = 3, PRepne = 4, PLock = 5, PRex = 6, PSeg = 8; // PSeg + segment number

    static readonly byte[] s_entries = BuildEntries();
    static readonly byte[] s_groups = BuildGroups();
    static readonly byte[] s_prefixes = BuildPrefixes();

    public static ReadOnlySpan<byte> Entries => s_entries;
    public static ReadOnlySpan<byte> Groups => s_groups;
    public static ReadOnlySpan<byte> Prefixes => s_prefixes;

    static byte[] BuildEntries()
    {
        var t = new byte[2 * 256 * EntrySize];
        void Set(int op, AccessKind kind, byte flags, byte imm = ImmNone, byte arg = 0) => SetRaw(op, (byte)kind, flags, imm, arg);
        void SetRaw(int op, byte kind, byte flags, byte imm, byte arg)
        {
            int o = op * EntrySize;
            t[o] = kind; t[o + 1] = flags; t[o + 2] = imm; t[o + 3] = arg;
        }

        // 00..3D: eight ALU families; only the r/m,reg and reg,r/m forms touch memory (acc,imm forms do not).
        ReadOnlySpan<AluOp> families = [AluOp.Add, AluOp.Or, AluOp.None, AluOp.None, AluOp.And, AluOp.Sub, AluOp.Xor, AluOp.Cmp];
        for (int f = 0; f < 8; f++)
        {
            int b = f << 3;
            if (families[f] == AluOp.None)
            {
                // ADC and SBB: real instructions, but the exit path does not model a carry-in.
                for (int k = 0; k < 4; k++) SetRaw(b + k, KindUnsupported, FModRM, ImmNone, 0);
                continue;
            }
            byte op = (byte)families[f];
            Set(b + 0, AccessKind.Alu, FModRM | FByte | FMemDest, ImmNone, op);
            Set(b + 1, AccessKind.Alu, FModRM | FMemDest, ImmNone, op);
            Set(b + 2, AccessKind.Alu, FModRM | FByte, ImmNone, op);
            Set(b + 3, AccessKind.Alu, FModRM, ImmNone, op);
        }

        Set(0x63, AccessKind.ReadSx, FModRM | FOnly64, ImmNone, 4);

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
        Set(0xAA, AccessKind.Stos, FByte | FString | FAcc | FMemDest, ImmNone, (byte)Gpr.Rdi);
        Set(0xAB, AccessKind.Stos, FString | FAcc | FMemDest, ImmNone, (byte)Gpr.Rdi);
        Set(0x6C, AccessKind.Ins, FByte | FString | FMemDest, ImmNone, (byte)Gpr.Rdi);
        Set(0x6D, AccessKind.Ins, FString | FNoRexW | FMemDest, ImmNone, (byte)Gpr.Rdi);
        Set(0x6E, AccessKind.Outs, FByte | FString, ImmNone, (byte)Gpr.Rsi);
        Set(0x6F, AccessKind.Outs, FString | FNoRexW, ImmNone, (byte)Gpr.Rsi);

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

        SetRaw(0xF6, KindGroup, FModRM | FByte | FMemDest, Imm8, GroupTest3);
        SetRaw(0xF7, KindGroup, FModRM | FMemDest, ImmZ, GroupTest3);

        SetRaw(0x0F, KindEscape, 0, ImmNone, 0);

        // 0F map.
        Set(Map0F + 0xA3, AccessKind.Bt, FModRM | FMemDest);
        SetRaw(Map0F + 0xBA, KindGroup, FModRM | FMemDest, Imm8, GroupBt8);
        Set(Map0F + 0xB6, AccessKind.ReadZx, FModRM, ImmNone, 1);
        Set(Map0F + 0xB7, AccessKind.ReadZx, FModRM, ImmNone, 2);
        Set(Map0F + 0xBE, AccessKind.ReadSx, FModRM, ImmNone, 1);
        Set(Map0F + 0xBF, AccessKind.ReadSx, FModRM, ImmNone, 2);
        return t;
    }

    static byte[] BuildGroups()
    {
        var g = new byte[4 * 8 * 2];
        void Set(int group, int reg, AccessKind kind, AluOp op)
        {
            g[(group * 8 + reg) * 2] = (byte)kind;
            g[(group * 8 + reg) * 2 + 1] = (byte)op;
        }
        // Group 1 (80/81/83): /2 ADC and /3 SBB stay refused.
        Set(GroupAlu1, 0, AccessKind.Alu, AluOp.Add);
        Set(GroupAlu1, 1, AccessKind.Alu, AluOp.Or);
        Set(GroupAlu1, 4, AccessKind.Alu, AluOp.And);
        Set(GroupAlu1, 5, AccessKind.Alu, AluOp.Sub);
        Set(GroupAlu1, 6, AccessKind.Alu, AluOp.Xor);
        Set(GroupAlu1, 7, AccessKind.Alu, AluOp.Cmp);
        // Group 3 (F6/F7): only TEST /0 reads without writing; /1 is an undocumented alias left to Iced.
        Set(GroupTest3, 0, AccessKind.Alu, AluOp.Test);
        // Group 11 (C6/C7): /0 MOV; the rest is #UD or XABORT/XBEGIN.
        Set(GroupMov11, 0, AccessKind.WriteImm, AluOp.None);
        // Group 8 (0F BA): /4 BT; BTS/BTR/BTC write memory and are not modelled.
        Set(GroupBt8, 4, AccessKind.Bt, AluOp.None);
        return g;
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

// Design note — Iced as the oracle.
//
// Iced decides the instruction; this file states, independently of Copra's tables, what a DecodedAccess for it must
// contain (Copra's conventions: scale 1 without an index, ModRM displacement sign-extended from the address size,
// moffs zero-extended, RIP-relative displacement relative to the next instruction, ES/CS/SS/DS overrides ignored in
// 64-bit mode, the rDI side of string forms in ES). One Iced Decoder per thread and mode, fed through a resettable
// CodeReader, so the campaign does not allocate a decoder per case.
using Copra.Hot.Decode;
using Iced.Intel;
using IcedDecoder = Iced.Intel.Decoder;

namespace Copra.Fuzz.Targets;

/// <summary>What Iced says the access is; Covered is false when the instruction is not an emulated form.</summary>
public struct Expected
{
    public bool Valid, Covered, DeliberateGap, NoMoreBytes;
    public int Length;
    public AccessKind Kind;
    public AluOp Op;
    public byte Cond;
    public int Size, Reg, RegSize, Base, Index, Scale, AddressSize, Segment, SrcSegment, Port;
    public bool RegHigh8, HasImm, Rep, RepNe, HasMemory, MemIsDest, PortIsDx;
    public long Imm, Disp;
    public string Text;
}

public static class IcedOracle
{
    sealed class ResettableReader : CodeReader
    {
        public byte[] Data = new byte[16];
        public int Length, Pos;
        public override int ReadByte() => Pos < Length ? Data[Pos++] : -1;
    }

    [ThreadStatic] static ResettableReader? t_reader;
    [ThreadStatic] static IcedDecoder?[]? t_decoders;
    [ThreadStatic] static Formatter? t_formatter;

    public static Instruction Decode(ReadOnlySpan<byte> bytes, CpuMode mode, out DecoderError error)
    {
        t_reader ??= new ResettableReader();
        t_decoders ??= new IcedDecoder?[3];
        var r = t_reader;
        int n = Math.Min(bytes.Length, 15);
        bytes[..n].CopyTo(r.Data);
        r.Length = n;
        r.Pos = 0;
        var dec = t_decoders[(int)mode] ??= IcedDecoder.Create(Core.Modes.Bits(mode), r, 0, DecoderOptions.None);
        dec.IP = 0;
        dec.Decode(out Instruction ins);
        error = dec.LastError;
        return ins;
    }

    public static string Format(in Instruction ins)
    {
        if (ins.IsInvalid) return "(invalid)";
        t_formatter ??= new IntelFormatter();
        var o = new StringOutput();
        t_formatter.Format(ins, o);
        return $"{o.ToStringAndReset()} [{ins.Code}, len {ins.Length}]";
    }

    public static Expected Expect(ReadOnlySpan<byte> bytes, CpuMode mode)
    {
        var e = new Expected { Reg = -1, Base = -1, Index = -1, Scale = 1 };
        Instruction ins = Decode(bytes, mode, out var error);
        e.NoMoreBytes = error == Iced.Intel.DecoderError.NoMoreBytes;
        e.Text = Format(ins);
        if (ins.IsInvalid) return e;
        e.Valid = true;
        e.Length = ins.Length;
        // The documented gaps left to the Iced fallback: F6/F7 /1 (undocumented TEST alias) and 82 (80 alias).
        e.DeliberateGap = ins.Code.ToString().EndsWith("r1", StringComparison.Ordinal) || ins.Code.ToString().EndsWith("_82", StringComparison.Ordinal);
        e.Kind = IcedForms.Classify(ins, out e.Op, out e.Cond);
        if (e.Kind == AccessKind.Unsupported) return e;
        bool port = e.Kind is AccessKind.In or AccessKind.Out or AccessKind.Ins or AccessKind.Outs;

        int memOp = -1;
        for (int k = 0; k < ins.OpCount; k++)
            if (IcedForms.IsMemory(ins.GetOpKind(k))) { memOp = k; break; }
        e.HasMemory = memOp >= 0;
        if (!e.HasMemory && e.Kind is not (AccessKind.In or AccessKind.Out)) return e; // a register form: no exit
        for (int k = 0; k < ins.OpCount; k++)
        {
            OpKind ok = ins.GetOpKind(k);
            if (ok == OpKind.Register)
            {
                if (IcedForms.IsCountRegister(ins, k)) continue;
                Register r = ins.GetOpRegister(k);
                if (r.IsXMM() && e.Kind is AccessKind.ReadVec or AccessKind.WriteVec) { e.Reg = r - Register.XMM0; e.RegSize = 16; continue; }
                if (r.IsMM() && e.Kind is AccessKind.MmxRead or AccessKind.MmxWrite) { e.Reg = r - Register.MM0; e.RegSize = 8; continue; }
                if (!r.IsGPR()) return e; // MOV Sreg, CRn and friends are not emulated forms
                if (port && r == Register.DX) { e.PortIsDx = true; continue; }
                if (r is >= Register.AH and <= Register.BH) { e.Reg = r - Register.AH; e.RegHigh8 = true; }
                else e.Reg = r.GetFullRegister() - Register.RAX;
                e.RegSize = r.GetSize();
            }
            else if (ok is OpKind.Immediate8 or OpKind.Immediate16 or OpKind.Immediate32 or OpKind.Immediate8to16
                     or OpKind.Immediate8to32 or OpKind.Immediate8to64 or OpKind.Immediate32to64)
            {
                if (port) { e.Port = (int)ins.GetImmediate(k); continue; }
                e.HasImm = true;
                e.Imm = (long)ins.GetImmediate(k); // masked to the operand size below
            }
        }
        if (e.Kind is AccessKind.Ins or AccessKind.Outs) e.PortIsDx = true;
        e.Covered = true;
        e.Size = e.HasMemory ? ins.MemorySize.GetSize() : e.RegSize;
        if (e.HasImm) e.Imm = (long)((ulong)e.Imm & Mask(e.Kind == AccessKind.Bt ? 1 : e.Size));
        e.MemIsDest = e.Kind == AccessKind.Alu && memOp == 0;
        e.Rep = IcedForms.IsString(e.Kind) && (ins.HasRepPrefix || ins.HasRepnePrefix);
        e.RepNe = e.Rep && e.Kind is AccessKind.Cmps or AccessKind.Scas && ins.HasRepnePrefix;
        if (e.HasMemory) FillMemory(ref e, ins, memOp, mode == CpuMode.Bits64);
        return e;
    }

    static void FillMemory(ref Expected e, in Instruction ins, int memOp, bool is64)
    {
        OpKind ok = ins.GetOpKind(memOp);
        if (ok != OpKind.Memory)
        {
            e.AddressSize = ok is OpKind.MemorySegSI or OpKind.MemoryESDI ? 2 : ok is OpKind.MemorySegESI or OpKind.MemoryESEDI ? 4 : 8;
            int src = SegOf(ins.MemorySegment);
            if (is64 && src < Seg.FS) src = Seg.DS;
            e.Base = IcedForms.StringReadsSi(e.Kind) ? Gpr.Rsi : Gpr.Rdi;
            e.Segment = IcedForms.StringReadsSi(e.Kind) ? src : Seg.ES;
            e.SrcSegment = IcedForms.StringHasSource(e.Kind) ? src : e.Segment;
            return;
        }
        Register b = ins.MemoryBase, x = ins.MemoryIndex;
        if (b is Register.RIP or Register.EIP)
        {
            e.Base = Gpr.Rip;
            e.AddressSize = b == Register.RIP ? 8 : 4;
            ulong rel = ins.MemoryDisplacement64 - (ulong)ins.Length; // decoded at IP 0: Iced reports the target
            e.Disp = b == Register.RIP ? (long)rel : (int)(uint)rel;
        }
        else
        {
            if (b != Register.None) e.Base = b.GetFullRegister() - Register.RAX;
            if (x != Register.None) { e.Index = x.GetFullRegister() - Register.RAX; e.Scale = ins.MemoryIndexScale; }
            Register sized = b != Register.None ? b : x;
            e.AddressSize = sized != Register.None ? sized.GetSize() : ins.MemoryDisplSize;
            ulong disp = ins.MemoryDisplacement64;
            bool moffs = ins.Code is Code.Mov_AL_moffs8 or Code.Mov_AX_moffs16 or Code.Mov_EAX_moffs32 or Code.Mov_RAX_moffs64
                or Code.Mov_moffs8_AL or Code.Mov_moffs16_AX or Code.Mov_moffs32_EAX or Code.Mov_moffs64_RAX;
            e.Disp = moffs ? (long)(disp & Mask(e.AddressSize)) : e.AddressSize switch { 2 => (short)disp, 4 => (int)disp, _ => (long)disp };
        }
        int seg = SegOf(ins.MemorySegment);
        if (is64 && seg < Seg.FS) seg = e.Base is Gpr.Rsp or Gpr.Rbp ? Seg.SS : Seg.DS;
        e.Segment = e.SrcSegment = seg;
        if (e.Kind == AccessKind.Movdir64b) e.Segment = Seg.ES;   // the destination ES:[reg]; the ModRM operand is the source
    }

    static int SegOf(Register r) => r switch
    {
        Register.ES => Seg.ES, Register.CS => Seg.CS, Register.SS => Seg.SS,
        Register.FS => Seg.FS, Register.GS => Seg.GS, _ => Seg.DS,
    };

    static ulong Mask(int size) => size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;


}

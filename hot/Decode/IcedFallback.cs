// Design note — the cold-path decoder.
//
// Callers: the exit path after X86Decoder refused, and the tests, which use it as a second, independent decoder
// (Iced decides the instruction; this file only maps Iced's answer onto DecodedAccess). It allocates (an Iced
// Decoder per call) and is therefore never on the steady-state path. It accepts exactly the instructions the
// exit path can emulate — including encodings the fast path leaves out on purpose (F6/F7 /1 TEST, 82 in 16/32-bit
// mode) — and refuses everything else with a reason. Normalisations match X86Decoder's conventions: scale 1
// without an index, ModRM displacement sign-extended from the address size, RIP-relative displacement relative to
// the next instruction, null segment prefixes ignored in 64-bit mode.

using Iced.Intel;
using IcedDecoder = Iced.Intel.Decoder;

namespace Copra.Hot.Decode;

/// <summary>Iced-backed decoder for whatever <see cref="X86Decoder"/> refuses.</summary>
public static class IcedFallback
{
    /// <summary>Decodes with Iced; returns an access only if Iced's instruction is an emulated form.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> bytes, CpuMode mode, out DecodedAccess d)
    {
        d = default;
        d.Mode = mode;
        d.Reg = -1;
        d.Base = -1;
        d.Index = -1;
        d.Scale = 1;
        int n = Math.Min(bytes.Length, X86Decoder.MaxLength);
        int bitness = mode switch { CpuMode.Bits16 => 16, CpuMode.Bits32 => 32, _ => 64 };
        var decoder = IcedDecoder.Create(bitness, new ByteArrayCodeReader(bytes[..n].ToArray()), 0, DecoderOptions.None);
        decoder.Decode(out Instruction ins);
        if (ins.IsInvalid) return Refuse(ref d, InvalidReason(bytes[..n], bitness, decoder.LastError, ins.Length));

        AccessKind kind = IcedForms.Classify(ins, out AluOp op, out byte cond);
        if (kind == AccessKind.Unsupported) return Refuse(ref d, RefuseReason.UnsupportedOp);

        // The operand loops stop at OpCount with != (Iced reports the slot after the last operand as a register).
        int memOp = -1;
        for (int k = 0; k != ins.OpCount; k++)
        {
            if (IcedForms.IsMemory(ins.GetOpKind(k)))
            {
                memOp = k;
                // Stryker disable once Statement: only MOVS and CMPS have a second memory operand, of the same address size (all FillMemory takes from it)
                break;
            }
        }
        bool portForm = kind is AccessKind.In or AccessKind.Out;
        if (memOp < 0 && !portForm) return Refuse(ref d, RefuseReason.RegisterOperand);

        // The register operand, if any (DX of INS/OUTS and the port of IN/OUT are not register operands).
        bool vec = kind is AccessKind.ReadVec or AccessKind.WriteVec;
        for (int k = 0; k < ins.OpCount; k++)
        {
            if (ins.GetOpKind(k) != OpKind.Register || IcedForms.IsCountRegister(ins, k)) continue;
            Register r = ins.GetOpRegister(k);
            if (r.IsSegmentRegister() && IcedForms.IsSystem(kind)) continue;   // MOV Sreg: the segment is SysReg, not a GPR
            // Stryker disable once Logical: only the SSE moves are vec kinds, and their register operand is always an XMM register
            if (vec && r.IsXMM()) { d.Reg = (sbyte)(r - Register.XMM0); d.RegSize = 16; continue; }
            // Stryker disable once Logical: only MOVQ mm is an MMX kind, and no other accepted form has an MM register operand
            if (r.IsMM() && kind is AccessKind.MmxRead or AccessKind.MmxWrite) { d.Reg = (sbyte)(r - Register.MM0); d.RegSize = 8; continue; }
            if (!r.IsGPR()) return Refuse(ref d, RefuseReason.UnsupportedOp);
            if (kind is AccessKind.Ins or AccessKind.Outs) continue;
            // IN and OUT: DX is the port (their data register is AL, AX or EAX, never DX).
            if (portForm && r == Register.DX) continue;
            SetReg(ref d, r);
        }

        int opSize = d.RegSize;
        if (memOp >= 0)
        {
            d.Size = (byte)ins.MemorySize.GetSize();
            if (opSize == 0) opSize = d.Size;
        }
        else
        {
            d.Size = d.RegSize;
        }

        for (int k = 0; k != ins.OpCount; k++)
        {
            OpKind ok = ins.GetOpKind(k);
            if (ok is OpKind.Immediate8 or OpKind.Immediate16 or OpKind.Immediate32 or OpKind.Immediate8to16
                or OpKind.Immediate8to32 or OpKind.Immediate8to64 or OpKind.Immediate32to64)
            {
                if (portForm)
                {
                    d.Port = (ushort)ins.GetImmediate(k);
                    continue;
                }
                d.HasImm = true;
                // Operand-size values like X86Decoder's. BT's imm8, a bit number (0-255), passes the mask unchanged: BT's
                // operand is at least 2 bytes.
                d.Imm = (long)(ins.GetImmediate(k) & X86Decoder.SizeMask(opSize));
            }
        }

        bool is64 = mode == CpuMode.Bits64;
        if (memOp >= 0) FillMemory(ref d, ins, memOp, kind, is64);
        else d.AddressSize = (byte)(is64 ? 8 : mode == CpuMode.Bits32 ? 4 : 2);

        d.Kind = kind;
        d.Op = op;
        d.MemIsDest = kind == AccessKind.Alu && memOp == 0;
        d.PortIsDx = kind is AccessKind.Ins or AccessKind.Outs || (portForm && ins.GetOpKind(kind == AccessKind.In ? 1 : 0) == OpKind.Register);
        d.Rep = IcedForms.IsString(kind) && (ins.HasRepPrefix || ins.HasRepnePrefix);
        d.RepNe = d.Rep && kind is AccessKind.Cmps or AccessKind.Scas && ins.HasRepnePrefix;
        if (kind is AccessKind.Setcc or AccessKind.Cmov) d.Cond = cond;
        if (kind is AccessKind.Fxsave or AccessKind.Fxrstor)
        {
            // The exit path moves the 512-byte image in 64-byte pieces (X86Decoder's convention); FXSAVE64/FXRSTOR64 in Imm.
            d.Size = 64;
            d.Imm = ins.Code is Code.Fxsave64_m512byte or Code.Fxrstor64_m512byte ? 1 : 0;
        }
        d.Lock = ins.HasLockPrefix || kind == AccessKind.Xchg;
        d.Align = (byte)(op == AluOp.Cmpxchg16b || kind is AccessKind.Fxsave or AccessKind.Fxrstor ? 16 : kind == AccessKind.Movdir64b ? 64 : AlignedSse(ins.Mnemonic) ? 16 : 0);
        // MOVDIR64B writes ES:[reg]; its ModRM operand (and any segment override) is the source.
        if (kind == AccessKind.Movdir64b) { d.SrcSegment = d.Segment; d.Segment = Seg.ES; }
        if (IcedForms.IsSystem(kind))
        {
            (d.SysReg, int osz) = IcedForms.SystemOperand(ins);
            d.RegSize = (byte)osz;
        }
        d.Length = (byte)ins.Length;
        return true;
    }

    /// <summary>The legacy SSE moves that raise #GP(0) on a memory operand that is not 16-byte aligned.</summary>
    static bool AlignedSse(Mnemonic m) => m is Mnemonic.Movaps or Mnemonic.Movapd or Mnemonic.Movdqa
        or Mnemonic.Movntps or Mnemonic.Movntpd or Mnemonic.Movntdq;

    static RefuseReason InvalidReason(ReadOnlySpan<byte> bytes, int bitness, DecoderError error, int length)
    {
        if (bytes.Length >= X86Decoder.MaxLength && (error == DecoderError.NoMoreBytes || length >= X86Decoder.MaxLength))
        {
            // Iced calls both "needs a 16th byte" (the CPU's #GP) and "undefined at the 15th" (#UD) invalid at 15 bytes.
            // A repeated legacy prefix changes nothing but the length: decide on the bytes without one; with none to
            // drop, the instruction is too long.
            int dup = RepeatedPrefix(bytes);
            if (dup < 0) return RefuseReason.TooLong;
            byte[] shorter = [.. bytes[..dup], .. bytes[(dup + 1)..]];
            var dec = IcedDecoder.Create(bitness, new ByteArrayCodeReader(shorter), 0, DecoderOptions.None);
            dec.Decode(out Instruction ins);
            if (!ins.IsInvalid) return RefuseReason.TooLong;
            var reason = InvalidReason(shorter, bitness, dec.LastError, ins.Length);
            return reason == RefuseReason.Truncated ? RefuseReason.TooLong : reason;
        }
        // Iced reads a byte past some undefined opcodes (06 in 64-bit mode, D6, 0F 04): running out there is not the
        // CPU's answer, which is #UD from the bytes it has. Truncated only when some next byte would not be invalid.
        if (error == DecoderError.NoMoreBytes && !InvalidWhateverFollows(bytes, bitness)) return RefuseReason.Truncated;
        // Re-decode without Iced's validity checks: if that succeeds with LOCK, the LOCK was the problem.
        var lax = IcedDecoder.Create(bitness, new ByteArrayCodeReader(bytes.ToArray()), 0, DecoderOptions.NoInvalidCheck);
        lax.Decode(out Instruction again);
        return !again.IsInvalid && again.HasLockPrefix ? RefuseReason.LockInvalid : RefuseReason.UnknownOpcode;
    }

    /// <summary>True when every byte appended to <paramref name="bytes"/> still decodes invalid, and not for want of more bytes.</summary>
    static bool InvalidWhateverFollows(ReadOnlySpan<byte> bytes, int bitness)
    {
        byte[] probe = [.. bytes, 0];
        for (int x = 0; x != 256; x++)
        {
            probe[^1] = (byte)x;
            var dec = IcedDecoder.Create(bitness, new ByteArrayCodeReader(probe), 0, DecoderOptions.None);
            dec.Decode(out Instruction ins);
            if (!ins.IsInvalid || dec.LastError == DecoderError.NoMoreBytes) return false;
        }
        return true;
    }

    /// <summary>The index of a legacy prefix that the same prefix repeats later in the prefix run, or -1.</summary>
    static int RepeatedPrefix(ReadOnlySpan<byte> bytes)
    {
        int run = 0;
        while (run < bytes.Length && IsLegacyPrefix(bytes[run])) run++;
        for (int i = 0; i < run; i++)
            if (bytes[(i + 1)..run].Contains(bytes[i])) return i;
        return -1;
    }

    static bool IsLegacyPrefix(byte b) => b is 0x26 or 0x2E or 0x36 or 0x3E or 0x64 or 0x65 or 0x66 or 0x67 or 0xF0 or 0xF2 or 0xF3;

    static void FillMemory(ref DecodedAccess d, in Instruction ins, int memOp, AccessKind kind, bool is64)
    {
        OpKind ok = ins.GetOpKind(memOp);
        if (ok != OpKind.Memory)
        {
            // String forms: the rDI side is ES, the rSI side takes the (non-null) prefix or DS.
            d.AddressSize = (byte)(ok switch
            {
                OpKind.MemorySegSI or OpKind.MemoryESDI => 2,
                OpKind.MemorySegESI or OpKind.MemoryESEDI => 4,
                _ => 8,
            });
            byte src = NormaliseSegment(ins.MemorySegment, is64, Seg.DS);
            d.Base = IcedForms.StringReadsSi(kind) ? Gpr.Rsi : Gpr.Rdi;
            d.Segment = IcedForms.StringReadsSi(kind) ? src : Seg.ES;
            d.SrcSegment = IcedForms.StringHasSource(kind) ? src : d.Segment;
            return;
        }

        Register b = ins.MemoryBase, x = ins.MemoryIndex;
        if (b is Register.RIP or Register.EIP)
        {
            d.Base = Gpr.Rip;
            d.AddressSize = (byte)(b == Register.RIP ? 8 : 4);
            // Iced (decoding at IP 0) reports the target; the encoded displacement is relative to the next RIP and is a
            // sign-extended 32-bit value in both forms.
            d.Disp = (int)(uint)(ins.MemoryDisplacement64 - (ulong)ins.Length);
        }
        else
        {
            if (b != Register.None) d.Base = (sbyte)(b.GetFullRegister() - Register.RAX);
            if (x != Register.None)
            {
                d.Index = (sbyte)(x.GetFullRegister() - Register.RAX);
                d.Scale = (byte)ins.MemoryIndexScale;
            }
            // Without a base (an index alone, or a bare displacement) Iced's displacement size is the address size.
            d.AddressSize = (byte)(b != Register.None ? b.GetSize() : ins.MemoryDisplSize);
            ulong disp = ins.MemoryDisplacement64;
            d.Disp = IsMoffs(ins.Code)
                ? (long)(disp & X86Decoder.SizeMask(d.AddressSize))
                : d.AddressSize switch { 2 => (short)disp, 4 => (int)disp, _ => (long)disp };
        }
        byte dflt = d.Base is Gpr.Rsp or Gpr.Rbp ? Seg.SS : Seg.DS;
        d.Segment = NormaliseSegment(ins.MemorySegment, is64, dflt);
        // Iced's MemorySegment already applies the SS default, so only 64-bit null prefixes need undoing.
        d.SrcSegment = d.Segment;
    }

    static byte NormaliseSegment(Register seg, bool is64, byte dflt)
    {
        byte s = seg switch
        {
            Register.ES => Seg.ES,
            Register.CS => Seg.CS,
            Register.SS => Seg.SS,
            Register.FS => Seg.FS,
            Register.GS => Seg.GS,
            _ => Seg.DS,
        };
        // Why: in 64-bit mode ES/CS/SS/DS prefixes are null prefixes; Iced still reports them.
        return is64 && s < Seg.FS ? dflt : s;
    }


    static void SetReg(ref DecodedAccess d, Register r)
    {
        if (r is >= Register.AH and <= Register.BH)
        {
            d.Reg = (sbyte)(r - Register.AH);
            d.RegHigh8 = true;
        }
        else
        {
            d.Reg = (sbyte)(r.GetFullRegister() - Register.RAX);
        }
        d.RegSize = (byte)r.GetSize();
    }

    static bool IsMoffs(Code c) => c is Code.Mov_AL_moffs8 or Code.Mov_AX_moffs16 or Code.Mov_EAX_moffs32 or Code.Mov_RAX_moffs64
        or Code.Mov_moffs8_AL or Code.Mov_moffs16_AX or Code.Mov_moffs32_EAX or Code.Mov_moffs64_RAX;


    static bool Refuse(ref DecodedAccess d, RefuseReason why) => X86Decoder.Refuse(ref d, why);
}

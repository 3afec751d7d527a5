// Design note — the hardware check, independent of the decoder it checks.
//
// KVM reports an MMIO write (and, on this host, an OUT) after the instruction has run: RIP is past it. To show the
// kernel the instruction, the backend must find where it started. Finding it with the kernel's own decoder and then
// comparing that same decode with KVM's report proves nothing: a wrong decoder picks a wrong candidate or none, and
// agrees with itself. Here the instruction is found by Iced, decoding the guest's own bytes before RIP, with Iced's
// own effective-address computation, and kept only if it ends exactly at KVM's RIP and writes KVM's address with
// KVM's size (and, for stores of a register or immediate, KVM's data). The decoder under test is then checked
// against that independent answer: same start, same length, same size, same address, same data; reads are checked
// the same way at KVM's RIP (which is before the instruction). Everything here is a pure function of the guest's
// bytes and registers (through IGuestView) and KVM's exit, so the tests run it without /dev/kvm.
using Copra.Hot.Decode;
using Copra.Kernel.Kvm;
using Iced.Intel;
using IcedDecoder = Iced.Intel.Decoder;

namespace Copra.Kernel.Backends;

/// <summary>The guest as the hardware check sees it: its instruction bytes and its page tables.</summary>
public interface IGuestView
{
    /// <summary>Copies up to dest.Length bytes of guest code at a linear address; returns how many were readable.</summary>
    int Fetch(ulong linear, Span<byte> dest);
    /// <summary>Translates a data address for a read or a write; false where it does not translate.</summary>
    bool Translate(ulong linear, bool write, out ulong gpa);
}

/// <summary>A decoder under test: the kernel's <see cref="X86Decoder"/> in production, a planted bug in the tests.</summary>
public delegate bool DecoderUnderTest(ReadOnlySpan<byte> bytes, out DecodedAccess d);

/// <summary>Where the instruction behind an exit starts, and its length, as found by Iced.</summary>
/// <param name="Start">The instruction's address.</param>
/// <param name="Length">Its length in bytes.</param>
/// <param name="Running">A REP string with elements left: RIP still points at it, RSI/RDI/RCX moved one element.</param>
/// <param name="Step">For string instructions, how far RSI/RDI moved for one element (negative with DF set).</param>
public readonly record struct LocatedInstruction(ulong Start, int Length, bool Running, long Step, bool IsString, bool Movs, bool Rep);

public static class WriteExitCheck
{
    const int MaxLength = 15;
    const ulong RflagsDf = 1ul << 10;

    /// <summary>
    /// Finds, with Iced, the instruction behind an MMIO write or an OUT exit: a REP string still running at RIP,
    /// else the shortest instruction ending at RIP that matches, else (OUT, or a write KVM reported before
    /// finishing) one at RIP. <paramref name="gprs"/> and <paramref name="rip"/> are KVM's, after the instruction.
    /// </summary>
    public static LocatedInstruction? Locate(IGuestView g, ulong rip, ReadOnlySpan<ulong> gprs, ulong rflags, in KvmExit e)
    {
        if (!e.IsWrite || e.Reason is not (KvmExitReason.Mmio or KvmExitReason.Io)) return null;
        bool port = e.Reason == KvmExitReason.Io;
        Span<byte> buf = stackalloc byte[MaxLength];
        buf.Clear();   // SkipLocalsInit: a short read leaves the rest zero
        if (!port && Match(g, rip, 0, gprs, rflags, e, buf, runningString: true) is { } running) return running;
        if (port && Match(g, rip, 0, gprs, rflags, e, buf, runningString: false) is { } here) return here;
        for (int len = 1; len <= MaxLength; len++)
            if (rip >= (ulong)len && Match(g, rip - (ulong)len, len, gprs, rflags, e, buf, runningString: false) is { } l)
            {
                // Why the longest: the bytes of `lock xadd` or `movdqu` (F3 0F 7F) without their first prefix are an
                // instruction too (`xadd`, MMX `movq`) that ends at RIP and writes the same place. A byte before the
                // shorter match that Iced takes as a prefix of it makes the longer one; that longer one is kept (if the
                // byte was the tail of the instruction before, the decoders still agree on the access, and only the
                // prefix's meaning, e.g. LOCK, is misattributed).
                for (int more = len + 1; more <= MaxLength && rip >= (ulong)more; more++)
                {
                    if (Match(g, rip - (ulong)more, more, gprs, rflags, e, buf, runningString: false) is not { } longer) break;
                    l = longer;
                }
                return l;
            }
        if (!port && Match(g, rip, 0, gprs, rflags, e, buf, runningString: false) is { } at) return at;
        return null;
    }

    static LocatedInstruction? Match(IGuestView g, ulong start, int len, ReadOnlySpan<ulong> gprs, ulong rflags, in KvmExit e, Span<byte> buf, bool runningString)
    {
        int got = g.Fetch(start, buf[..(len == 0 ? MaxLength : len)]);
        if (got == 0 || !TryIced(buf[..got], start, out var ins) || (len != 0 && ins.Length != len)) return null;
        ulong ones = Ones(e.Size);
        if (e.Reason == KvmExitReason.Io)
        {
            if (ins.Mnemonic != Mnemonic.Out) return null;
            int size = ins.GetOpRegister(1).GetSize();
            ushort p = ins.GetOpKind(0) == OpKind.Register ? (ushort)gprs[2] : (ushort)ins.GetImmediate(0);
            if (size != e.Size || p != e.Port || (gprs[0] & ones) != (e.Data & ones)) return null;
            return new LocatedInstruction(start, ins.Length, false, 0, false, false, false);
        }
        bool isString = ins.Mnemonic is Mnemonic.Stosb or Mnemonic.Stosw or Mnemonic.Stosd or Mnemonic.Stosq
            or Mnemonic.Movsb or Mnemonic.Movsw or Mnemonic.Movsd or Mnemonic.Movsq;
        bool movs = isString && ins.Mnemonic is Mnemonic.Movsb or Mnemonic.Movsw or Mnemonic.Movsd or Mnemonic.Movsq;
        bool rep = ins.HasRepPrefix || ins.HasRepePrefix;
        int addrBits = ins.Op0Kind switch { OpKind.MemoryESEDI => 32, OpKind.MemoryESDI => 16, _ => 64 };
        if (runningString && !(isString && rep && Mask(gprs[1], addrBits) != 0)) return null;
        // Iced reports no used memory for REP strings (the count is not known): ES:[RDI] is the destination there.
        UsedMemory mem = default;
        if (!isString && !TryWrittenMemory(ins, out mem)) return null;
        int msize = isString ? ins.MemorySize.GetSize() : mem.MemorySize.GetSize();
        if (msize != (int)e.Size && !(msize > 8 && e.Size == 8)) return null;
        ulong[] before = gprs.ToArray();
        long step = 0;
        if (isString)
        {
            step = (rflags & RflagsDf) != 0 ? -(long)e.Size : e.Size;
            before[7] = gprs[7] - (ulong)step;
            if (movs) before[6] = gprs[6] - (ulong)step;
            if (rep) before[1] = gprs[1] + 1;
        }
        ulong linear = Mask(before[7], addrBits);
        if (!isString && !mem.TryGetVirtualAddress(0, out linear, (Register r, int _, int _, out ulong v) => Reg(before, r, out v))) return null;
        // BT/BTS/BTR/BTC with a register bit offset address the operand-sized unit the offset falls in (signed, any
        // distance from the operand); Iced reports the operand's own address.
        if (ins.Mnemonic is Mnemonic.Bts or Mnemonic.Btr or Mnemonic.Btc && ins.GetOpKind(1) == OpKind.Register)
        {
            int bits = msize * 8;
            ulong raw = RegValue(before, ins.GetOpRegister(1));
            long offset = bits switch { 16 => (short)raw, 32 => (int)raw, _ => (long)raw };
            linear += (ulong)((offset >> System.Numerics.BitOperations.Log2((uint)bits)) * msize);
        }
        if (!g.Translate(linear, write: true, out ulong gpa) || !IsPiece(gpa, (uint)msize, e)) return null;
        // A store of a register or an immediate: the data must be the guest's own (Iced's immediate, KVM's register).
        if (ins.Mnemonic == Mnemonic.Mov && ins.OpCount == 2 && ins.GetOpKind(0) == OpKind.Memory)
        {
            ulong value = ins.GetOpKind(1) == OpKind.Register ? RegValue(before, ins.GetOpRegister(1)) : ins.GetImmediate(1);
            if ((value & ones) != (e.Data & ones)) return null;
        }
        return new LocatedInstruction(start, ins.Length, runningString, step, isString, movs, rep);
    }

    /// <summary>
    /// The hardware check: the decoder under test, run on the guest's bytes, must describe the access KVM reported.
    /// For writes and OUT the instruction is the one <see cref="Locate"/> found (null: not found, itself a failure);
    /// for reads and IN it is at KVM's RIP. <paramref name="before"/> are the registers before the instruction.
    /// Returns null when they agree, else what differs.
    /// </summary>
    public static string? Check(DecoderUnderTest decoder, IGuestView g, ulong rip, ReadOnlySpan<ulong> before, in KvmExit e, LocatedInstruction? located)
    {
        if (e.Reason is not (KvmExitReason.Mmio or KvmExitReason.Io)) return null;
        bool write = e.IsWrite;
        ulong start = rip;
        int expectLength;
        Span<byte> buf = stackalloc byte[MaxLength];
        buf.Clear();   // SkipLocalsInit: a short read leaves the rest zero
        if (write)
        {
            if (located is not { } l) return $"no instruction before rip 0x{rip:x} matches the reported {(e.Reason == KvmExitReason.Io ? "OUT" : "write")}";
            start = l.Start;
            expectLength = l.Length;
        }
        else
        {
            int n = g.Fetch(rip, buf);
            if (n == 0 || !TryIced(buf[..n], rip, out var ins)) return $"Iced cannot decode the bytes at rip 0x{rip:x}";
            expectLength = ins.Length;
        }
        int got = g.Fetch(start, buf);
        if (got == 0 || !decoder(buf[..got], out var d)) return $"the decoder refuses the instruction at 0x{start:x}";
        if (d.Length != expectLength) return $"length {d.Length}, the instruction is {expectLength} bytes";
        if (d.Size != e.Size && !(d.Size > 8 && e.Size == 8)) return $"size {d.Size}, the hardware accessed {e.Size}";
        ulong ones = Ones(e.Size);
        if (e.Reason == KvmExitReason.Io)
        {
            bool isOut = d.Kind is AccessKind.Out or AccessKind.Outs;
            if (isOut != write || !(d.Kind is AccessKind.In or AccessKind.Out or AccessKind.Ins or AccessKind.Outs)) return $"kind {d.Kind} for a port {(write ? "write" : "read")}";
            ushort p = d.PortIsDx ? (ushort)before[2] : d.Port;
            if (p != e.Port) return $"port 0x{p:x}, the hardware used 0x{e.Port:x}";
            if (write && d.Kind == AccessKind.Out && (WriteBack.StoreValue(d, before) & ones) != (e.Data & ones)) return "OUT data differs";
            return null;
        }
        if (write ? !Writes(in d) : !Reads(in d)) return $"kind {d.Kind} does not {(write ? "write" : "read")} memory";
        int bits = d.AddressSize * 8;
        ulong linear = d.Kind switch
        {
            AccessKind.Stos or AccessKind.Scas => Mask(before[7], bits),
            AccessKind.Lods or AccessKind.Cmps => Mask(before[6], bits),   // CMPS: rSI's operand, else (below) ES:rDI's
            AccessKind.Movs => Mask(write ? before[7] : before[6], bits),
            AccessKind.Movdir64b when write => Mask(before[d.Reg], bits),
            _ => EffectiveAddress.Compute(d, before, start + d.Length, 0),
        };
        bool at = g.Translate(linear, write, out ulong gpa) && IsPiece(gpa, d.Size, e);
        // CMPS reads both operands; the hardware exits for each that is not RAM: the access may be ES:rDI's.
        if (!at && d.Kind == AccessKind.Cmps) at = g.Translate(linear = Mask(before[7], bits), false, out gpa) && IsPiece(gpa, d.Size, e);
        if (!at) return $"address 0x{linear:x} (gpa {(g.Translate(linear, write, out ulong x) ? $"0x{x:x}" : "none")}), the hardware accessed 0x{e.Gpa:x}";
        if (write && d.Kind is AccessKind.Write or AccessKind.WriteImm && (WriteBack.StoreValue(d, before) & ones) != (e.Data & ones)) return "store data differs";
        return null;
    }

    /// <summary>
    /// KVM's access is the operand at <paramref name="gpa"/> of <paramref name="size"/> bytes, or one 8-byte piece of it
    /// (KVM hands a wider access to user space in pieces of at most 8 bytes: kvm_run.mmio.data).
    /// </summary>
    static bool IsPiece(ulong gpa, uint size, in KvmExit e) =>
        e.Size == size ? e.Gpa == gpa : size > 8 && e.Size == 8 && e.Gpa - gpa < size && (e.Gpa - gpa) % 8 == 0;

    /// <summary>The decoder's claim that the instruction writes memory (its memory operand, a string's or MOVDIR64B's destination).</summary>
    static bool Writes(in DecodedAccess d) => Hot.Emulate.Executor.MemoryDirection(in d) is "write" or "rmw";

    /// <summary>The decoder's claim that the instruction reads memory.</summary>
    static bool Reads(in DecodedAccess d) => Hot.Emulate.Executor.MemoryDirection(in d) is "read" or "rmw";

    /// <summary>The registers before a located instruction: string registers stepped back one element.</summary>
    public static void Rewind(in LocatedInstruction l, Span<ulong> gprs)
    {
        if (!l.IsString) return;
        gprs[7] -= (ulong)l.Step;
        if (l.Movs) gprs[6] -= (ulong)l.Step;
        if (l.Rep) gprs[1] += 1;
    }

    static bool TryIced(ReadOnlySpan<byte> bytes, ulong ip, out Instruction ins)
    {
        var dec = IcedDecoder.Create(64, new ByteArrayCodeReader(bytes.ToArray()), ip, DecoderOptions.None);
        dec.Decode(out ins);
        return !ins.IsInvalid;
    }

    static bool TryWrittenMemory(in Instruction ins, out UsedMemory mem)
    {
        foreach (var m in new InstructionInfoFactory().GetInfo(ins).GetUsedMemory())
        {
            if (m.Access is OpAccess.Write or OpAccess.CondWrite or OpAccess.ReadWrite or OpAccess.ReadCondWrite)
            {
                mem = m;
                return true;
            }
        }
        mem = default;
        return false;
    }

    /// <summary>An address register's value for Iced's effective-address callback (64-bit mode: ES/CS/SS/DS base 0).</summary>
    internal static bool Reg(ulong[] gprs, Register r, out ulong v)
    {
        v = 0;
        if (r is Register.ES or Register.CS or Register.SS or Register.DS) return true;   // 64-bit mode: base 0
        if (!r.IsGPR()) return false;
        v = RegValue(gprs, r);
        return true;
    }

    static ulong RegValue(ulong[] gprs, Register r)
    {
        Register full = r.GetFullRegister();
        int i = full - Register.RAX;
        ulong x = gprs[i];
        if (r is Register.AH or Register.CH or Register.DH or Register.BH) return (gprs[r - Register.AH] >> 8) & 0xFF;
        return r.GetSize() switch { 1 => x & 0xFF, 2 => x & 0xFFFF, 4 => x & 0xFFFF_FFFF, _ => x };
    }

    static ulong Mask(ulong x, int bits) => bits switch { 16 => x & 0xFFFF, 32 => x & 0xFFFF_FFFF, _ => x };
    static ulong Ones(uint size) => size >= 8 ? ulong.MaxValue : (1UL << (int)(size * 8)) - 1;
}

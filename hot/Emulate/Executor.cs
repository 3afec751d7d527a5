// Design note — the executor: the state update of an emulated instruction.
//
// X86Decoder says what the instruction is; this unit says what it does. Given the decoded access, the 16 GPRs,
// RFLAGS and the old value of the memory operand, it produces the new registers, the new flags, the value to write
// back to memory (if any) and the fault the CPU would raise (#DE). It is pure and allocation-free: no state, no
// I/O, no exceptions, so the exit path, the replay tests and the CPU-oracle property (fuzz/, which runs the same
// bytes natively on the host and compares) all call the same code.
//
// Scope: every non-string form up to 8 bytes of memory (the exit path's ulong), CMPXCHG16B through Execute16, the SSE
// moves and MOVDIR64B through ExecuteVector (16 and 64 bytes as spans), and one element of LODS/SCAS/CMPS (the string loop, its REP bound and the register stepping live in StringOps).
// Architecture choices where the SDM leaves a result undefined are the ones the host CPU showed the oracle; the
// oracle compares only SDM-defined flags (UndefinedFlags) so a different CPU cannot turn them into failures.
//
// Memory on a failed CMPXCHG*: the CPU writes the old value back (a locked read is paired with a write); for MMIO
// that would be a second device write with side effects, so the executor writes nothing (x86emu does the same).

using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using Copra.Hot.Decode;

namespace Copra.Hot.Emulate;

/// <summary>What the instruction did with its memory operand, or the fault it raised instead.</summary>
public enum ExecResult : byte
{
    /// <summary>Registers and flags updated; memory is not written.</summary>
    NoWrite,
    /// <summary>Registers and flags updated; write the returned value to the memory operand.</summary>
    Write,
    /// <summary>#DE (DIV/IDIV by zero or quotient overflow): nothing was changed.</summary>
    DivideError,
    /// <summary>The access is not a form this unit executes (a caller bug): nothing was changed.</summary>
    NotExecutable,
}

/// <summary>The pure state update of every emulated non-string form.</summary>
public static class Executor
{
    public const ulong CF = 1UL << 0, PF = 1UL << 2, AF = 1UL << 4, ZF = 1UL << 6, SF = 1UL << 7, TF = 1UL << 8,
        DF = 1UL << 10, OF = 1UL << 11, AC = 1UL << 18;
    public const ulong StatusFlags = CF | PF | AF | ZF | SF | OF;

    /// <summary>
    /// Executes <paramref name="d"/> (memory operand at most 8 bytes) over <paramref name="gprs"/> and
    /// <paramref name="rflags"/>, with <paramref name="mem"/> the memory operand's old value (ignored by SETcc).
    /// </summary>
    public static ExecResult Execute(in DecodedAccess d, Span<ulong> gprs, ref ulong rflags, ulong mem, out ulong memWrite)
    {
        memWrite = 0;
        int size = d.Size;
        ulong m = X86Decoder.SizeMask(size);
        mem &= m;
        switch (d.Kind)
        {
            case AccessKind.Read: case AccessKind.ReadZx: case AccessKind.ReadSx: case AccessKind.In: case AccessKind.Lods:
                WriteBack.ApplyRead(in d, gprs, mem);
                return ExecResult.NoWrite;
            case AccessKind.Write: case AccessKind.WriteImm: case AccessKind.Out:
                memWrite = WriteBack.StoreValue(in d, gprs);
                return ExecResult.Write;
            case AccessKind.Stos:
                memWrite = gprs[Gpr.Rax] & m;
                return ExecResult.Write;
            case AccessKind.Pop:   // the value popped from the stack goes to the operand
                memWrite = mem;
                return ExecResult.Write;
            case AccessKind.Push: case AccessKind.Call: case AccessKind.Jmp:
                return ExecResult.NoWrite;   // the value read is pushed or branched to: StackOps and the exit path's stack side
            case AccessKind.Xchg:
                memWrite = WriteBack.Xchg(in d, gprs, mem);
                return ExecResult.Write;
            case AccessKind.Setcc:
                memWrite = Condition(d.Cond, rflags) ? 1UL : 0UL;
                return ExecResult.Write;
            case AccessKind.Cmov:
                if (Condition(d.Cond, rflags)) WriteBack.WriteReg(gprs, d.Reg, false, size, mem);
                else if (size == 4) gprs[d.Reg] &= 0xFFFF_FFFFUL; // a 32-bit CMOV writes its destination even when false
                return ExecResult.NoWrite;
            case AccessKind.Scas:
                rflags = Arith(rflags, ReadReg(in d, gprs) & m, mem, 0, size, subtract: true, out _);
                return ExecResult.NoWrite;
            case AccessKind.Bt:
                return BitTest(in d, gprs, ref rflags, mem, out memWrite);
            case AccessKind.Alu:
                return Alu(in d, gprs, ref rflags, mem, out memWrite);
            default:
                return ExecResult.NotExecutable;
        }
    }

    /// <summary>CMPS: flags of <c>source - destination</c> (the rSI element minus the ES:rDI element).</summary>
    public static void Cmps(in DecodedAccess d, ref ulong rflags, ulong source, ulong destination)
    {
        ulong m = X86Decoder.SizeMask(d.Size);
        rflags = Arith(rflags, source & m, destination & m, 0, d.Size, subtract: true, out _);
    }

    /// <summary>CMPXCHG16B: compares RDX:RAX with <paramref name="mem"/>; equal stores RCX:RBX, else loads RDX:RAX.</summary>
    public static ExecResult Execute16(Span<ulong> gprs, ref ulong rflags, UInt128 mem, out UInt128 memWrite)
    {
        UInt128 expected = new(gprs[Gpr.Rdx], gprs[Gpr.Rax]);
        memWrite = 0;
        if (expected == mem)
        {
            rflags |= ZF;
            memWrite = new UInt128(gprs[Gpr.Rcx], gprs[Gpr.Rbx]);
            return ExecResult.Write;
        }
        rflags &= ~ZF;
        gprs[Gpr.Rax] = (ulong)mem;
        gprs[Gpr.Rdx] = (ulong)(mem >> 64);
        return ExecResult.NoWrite;
    }

    /// <summary>
    /// The SSE moves and MOVDIR64B, whose memory image moves whole: ReadVec loads XMM[Reg] from the 16 bytes of
    /// <paramref name="mem"/>; WriteVec stores XMM[Reg] into <paramref name="memWrite"/>; MOVDIR64B copies the 64-byte
    /// source <paramref name="mem"/> to <paramref name="memWrite"/> (one write of the destination). No flags change.
    /// </summary>
    public static ExecResult ExecuteVector(in DecodedAccess d, Span<UInt128> xmm, ReadOnlySpan<byte> mem, Span<byte> memWrite)
    {
        switch (d.Kind)
        {
            case AccessKind.ReadVec:
                xmm[d.Reg] = BinaryPrimitives.ReadUInt128LittleEndian(mem);
                return ExecResult.NoWrite;
            case AccessKind.WriteVec:
                BinaryPrimitives.WriteUInt128LittleEndian(memWrite, xmm[d.Reg]);
                return ExecResult.Write;
            case AccessKind.Movdir64b:
                mem[..64].CopyTo(memWrite);
                return ExecResult.Write;
            default:
                return ExecResult.NotExecutable;
        }
    }

    /// <summary>
    /// True when <paramref name="linear"/> meets the form's alignment rule (<see cref="DecodedAccess.Align"/>: MOVAPS/APD/DQA,
    /// MOVNTPS/NTPD/NTDQ and CMPXCHG16B on their memory operand, MOVDIR64B on its destination); false means #GP(0).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Aligned(in DecodedAccess d, ulong linear) => d.Align == 0 || (linear & (ulong)(d.Align - 1)) == 0;

    /// <summary>The sixteen condition codes (the low nibble of Jcc/SETcc/CMOVcc).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Condition(int cond, ulong f)
    {
        bool cf = (f & CF) != 0, zf = (f & ZF) != 0, sf = (f & SF) != 0, of = (f & OF) != 0, pf = (f & PF) != 0;
        bool r = (cond >> 1) switch
        {
            0 => of,
            1 => cf,
            2 => zf,
            3 => cf || zf,
            4 => sf,
            5 => pf,
            6 => sf != of,
            _ => zf || sf != of,
        };
        return r ^ ((cond & 1) != 0);
    }

    static ExecResult BitTest(in DecodedAccess d, Span<ulong> gprs, ref ulong rflags, ulong mem, out ulong memWrite)
    {
        int bits = d.Size * 8;
        ulong n = d.HasImm ? (ulong)d.Imm : WriteBack.ReadReg(gprs, d.Reg, false, d.RegSize);
        ulong bit = 1UL << (int)(n & (ulong)(bits - 1));
        rflags = (mem & bit) != 0 ? rflags | CF : rflags & ~CF;
        switch (d.Op)
        {
            case AluOp.Bts: memWrite = mem | bit; return ExecResult.Write;
            case AluOp.Btr: memWrite = mem & ~bit; return ExecResult.Write;
            case AluOp.Btc: memWrite = mem ^ bit; return ExecResult.Write;
            default: memWrite = 0; return ExecResult.NoWrite;
        }
    }

    static ExecResult Alu(in DecodedAccess d, Span<ulong> gprs, ref ulong rflags, ulong mem, out ulong memWrite)
    {
        int size = d.Size;
        ulong m = X86Decoder.SizeMask(size);
        memWrite = 0;
        ulong other = d.HasImm ? (ulong)d.Imm & m : d.Reg >= 0 ? ReadReg(in d, gprs) & m : 0;
        ulong a = d.MemIsDest ? mem : other;
        ulong b = d.MemIsDest ? other : mem;
        ulong cf = rflags & CF;
        ulong r;
        switch (d.Op)
        {
            case AluOp.Add: rflags = Arith(rflags, a, b, 0, size, false, out r); break;
            case AluOp.Adc: rflags = Arith(rflags, a, b, cf, size, false, out r); break;
            case AluOp.Sub: case AluOp.Cmp: rflags = Arith(rflags, a, b, 0, size, true, out r); break;
            case AluOp.Sbb: rflags = Arith(rflags, a, b, cf, size, true, out r); break;
            case AluOp.And: case AluOp.Test: r = a & b; rflags = Logic(rflags, r, size); break;
            case AluOp.Or: r = a | b; rflags = Logic(rflags, r, size); break;
            case AluOp.Xor: r = a ^ b; rflags = Logic(rflags, r, size); break;
            case AluOp.Inc: rflags = (Arith(rflags, mem, 1, 0, size, false, out r) & ~CF) | cf; break;
            case AluOp.Dec: rflags = (Arith(rflags, mem, 1, 0, size, true, out r) & ~CF) | cf; break;
            case AluOp.Neg: rflags = Arith(rflags, 0, mem, 0, size, true, out r); break;
            case AluOp.Not: r = ~mem & m; break;
            case AluOp.Xadd:
                rflags = Arith(rflags, mem, other, 0, size, false, out r);
                WriteBack.WriteReg(gprs, d.Reg, d.RegHigh8, d.RegSize, mem);
                break;
            case AluOp.Cmpxchg:
            {
                ulong acc = gprs[Gpr.Rax] & m;
                rflags = Arith(rflags, acc, mem, 0, size, true, out _);
                if (acc == mem) { memWrite = other; return ExecResult.Write; }
                WriteBack.WriteReg(gprs, Gpr.Rax, false, size, mem);
                return ExecResult.NoWrite;
            }
            case AluOp.Cmpxchg8b:
            {
                ulong expected = (gprs[Gpr.Rdx] & 0xFFFF_FFFFUL) << 32 | (gprs[Gpr.Rax] & 0xFFFF_FFFFUL);
                if (expected == mem)
                {
                    rflags |= ZF;
                    memWrite = (gprs[Gpr.Rcx] & 0xFFFF_FFFFUL) << 32 | (gprs[Gpr.Rbx] & 0xFFFF_FFFFUL);
                    return ExecResult.Write;
                }
                rflags &= ~ZF;
                gprs[Gpr.Rax] = mem & 0xFFFF_FFFFUL;
                gprs[Gpr.Rdx] = mem >> 32;
                return ExecResult.NoWrite;
            }
            case AluOp.Mul: case AluOp.Imul:
                if (d.Reg < 0) { MulWide(in d, gprs, ref rflags, mem); return ExecResult.NoWrite; }
                rflags = ImulTruncating(rflags, other, mem, size, out r); // reg * mem, or mem * imm
                WriteBack.WriteReg(gprs, d.Reg, d.RegHigh8, d.RegSize, r);
                return ExecResult.NoWrite;
            case AluOp.Div: case AluOp.Idiv:
                return Divide(in d, gprs, mem) ? ExecResult.NoWrite : ExecResult.DivideError;
            case AluOp.Bsf: case AluOp.Bsr:
                // Why: a zero source sets ZF and leaves the destination as it was (AMD documents it; Intel parts do the
                // same, which the oracle checks); CF, OF, SF, AF, PF are undefined and kept.
                if (mem == 0) { rflags |= ZF; return ExecResult.NoWrite; }
                rflags &= ~ZF;
                r = (ulong)(d.Op == AluOp.Bsf ? BitOperations.TrailingZeroCount(mem) : 63 - BitOperations.LeadingZeroCount(mem));
                WriteBack.WriteReg(gprs, d.Reg, d.RegHigh8, d.RegSize, r);
                return ExecResult.NoWrite;
            case AluOp.Rol: case AluOp.Ror: case AluOp.Rcl: case AluOp.Rcr:
            case AluOp.Shl: case AluOp.Shr: case AluOp.Sar: case AluOp.Shld: case AluOp.Shrd:
                return Shift(in d, gprs, ref rflags, mem, out memWrite);
            default:
                return ExecResult.NotExecutable;
        }
        if (d.Op is AluOp.Cmp or AluOp.Test) return ExecResult.NoWrite;
        if (d.MemIsDest) { memWrite = r; return ExecResult.Write; }
        WriteBack.WriteReg(gprs, d.Reg, d.RegHigh8, d.RegSize, r);
        return ExecResult.NoWrite;
    }

    /// <summary>ADD/ADC (subtract false) or SUB/SBB/CMP/NEG (true) at a width: result and all six status flags.</summary>
    static ulong Arith(ulong rflags, ulong a, ulong b, ulong carryIn, int size, bool subtract, out ulong r)
    {
        int top = size * 8 - 1;
        ulong m = X86Decoder.SizeMask(size);
        bool carry;
        ulong of;
        if (!subtract)
        {
            r = (a + b + carryIn) & m;
            carry = size == 8 ? r < a || (carryIn != 0 && r == a) : ((a + b + carryIn) >> (top + 1)) != 0;
            of = ((a ^ r) & (b ^ r)) >> top & 1;
        }
        else
        {
            r = (a - b - carryIn) & m;
            carry = a < b || (carryIn != 0 && a == b);
            of = ((a ^ b) & (a ^ r)) >> top & 1;
        }
        ulong f = (carry ? CF : 0) | (of != 0 ? OF : 0) | ((a ^ b ^ r) & AF) | ResultFlags(r, size);
        return (rflags & ~StatusFlags) | f;
    }

    /// <summary>AND/OR/XOR/TEST: CF = OF = 0, AF cleared (undefined in the SDM; what Intel and AMD parts do).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]   // three ALU cases: its frame cost as much as its body
    static ulong Logic(ulong rflags, ulong r, int size) => (rflags & ~StatusFlags) | ResultFlags(r, size);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong ResultFlags(ulong r, int size) =>
        (r == 0 ? ZF : 0) | ((r >> (size * 8 - 1) & 1) != 0 ? SF : 0) | ((BitOperations.PopCount(r & 0xFF) & 1) == 0 ? PF : 0);

    /// <summary>SF, ZF and PF of the result; CF, OF and AF kept (the SDM leaves them undefined where this is used).</summary>
    static ulong WithResult(ulong rflags, ulong r, int size) => (rflags & ~(ZF | SF | PF)) | ResultFlags(r, size);

    static ulong ReadReg(in DecodedAccess d, ReadOnlySpan<ulong> gprs) => WriteBack.ReadReg(gprs, d.Reg, d.RegHigh8, d.RegSize);

    static long SignExtend(ulong v, int size) => size >= 8 ? (long)v : ((long)v << (64 - size * 8)) >> (64 - size * 8);

    /// <summary>One-operand MUL/IMUL: rDX:rAX (AX for bytes) = accumulator * operand; CF = OF = high half significant.</summary>
    static void MulWide(in DecodedAccess d, Span<ulong> gprs, ref ulong rflags, ulong mem)
    {
        int size = d.Size;
        ulong m = X86Decoder.SizeMask(size);
        ulong acc = gprs[Gpr.Rax] & m;
        ulong lo, hi;
        bool wide;
        if (d.Op == AluOp.Mul)
        {
            hi = Math.BigMul(acc, mem, out lo);
            if (size < 8) { ulong p = lo; lo = p & m; hi = p >> (size * 8); }
            wide = hi != 0;
        }
        else
        {
            long p1 = SignExtend(acc, size), p2 = SignExtend(mem, size);
            if (size < 8)
            {
                long p = p1 * p2;
                lo = (ulong)p & m;
                hi = (ulong)(p >> (size * 8)) & m;
                wide = p != SignExtend((ulong)p & m, size);
            }
            else
            {
                hi = (ulong)Math.BigMul(p1, p2, out long l);
                lo = (ulong)l;
                wide = (long)hi != (l >> 63);
            }
        }
        if (size == 1) WriteBack.WriteReg(gprs, Gpr.Rax, false, 2, (hi << 8) | lo);
        else
        {
            WriteBack.WriteReg(gprs, Gpr.Rax, false, size, lo);
            WriteBack.WriteReg(gprs, Gpr.Rdx, false, size, hi);
        }
        ulong f = wide ? CF | OF : 0;
        rflags = WithResult((rflags & ~(CF | OF)) | f, lo, size);
    }

    /// <summary>Two- and three-operand IMUL: the truncated product; CF = OF = the product did not fit.</summary>
    static ulong ImulTruncating(ulong rflags, ulong a, ulong b, int size, out ulong r)
    {
        ulong m = X86Decoder.SizeMask(size);
        long x = SignExtend(a, size), y = SignExtend(b, size);
        bool wide;
        if (size < 8)
        {
            long p = x * y;
            r = (ulong)p & m;
            wide = p != SignExtend(r, size);
        }
        else
        {
            long hi = Math.BigMul(x, y, out long lo);
            r = (ulong)lo;
            wide = hi != (lo >> 63);
        }
        ulong f = wide ? CF | OF : 0;
        return WithResult((rflags & ~(CF | OF)) | f, r, size);
    }

    /// <summary>DIV/IDIV: false (#DE, nothing written) on a zero divisor or a quotient that does not fit.</summary>
    static bool Divide(in DecodedAccess d, Span<ulong> gprs, ulong divisor)
    {
        int size = d.Size, bits = size * 8;
        ulong m = X86Decoder.SizeMask(size);
        if (divisor == 0) return false;
        ulong lowIn = size == 1 ? gprs[Gpr.Rax] & 0xFF : gprs[Gpr.Rax] & m;
        ulong highIn = size == 1 ? (gprs[Gpr.Rax] >> 8) & 0xFF : gprs[Gpr.Rdx] & m;
        ulong q, rem;
        if (d.Op == AluOp.Div)
        {
            UInt128 n = ((UInt128)highIn << bits) | lowIn;
            UInt128 qq = n / divisor;
            if (qq > m) return false;
            q = (ulong)qq;
            rem = (ulong)(n % divisor);
        }
        else
        {
            // The dividend is the signed 2*bits-wide value highIn:lowIn.
            Int128 n = (Int128)(((UInt128)highIn << bits) | lowIn);
            if (bits < 64) n = (n << (128 - 2 * bits)) >> (128 - 2 * bits);
            Int128 dv = SignExtend(divisor, size);
            // Why: -2^127 / -1 overflows Int128 (and throws); its quotient does not fit in 64 bits either: #DE.
            // Found by the CPU-oracle campaign (idiv qword with RDX:RAX = 2^127, divisor -1).
            if (n == Int128.MinValue && dv == Int128.NegativeOne) return false;
            Int128 qq = n / dv;
            Int128 lim = Int128.One << (bits - 1);
            if (qq >= lim || qq < -lim) return false;
            q = (ulong)(long)qq & m;
            rem = (ulong)(long)(n % dv) & m;
        }
        if (size == 1) WriteBack.WriteReg(gprs, Gpr.Rax, false, 2, (rem << 8) | q);
        else
        {
            WriteBack.WriteReg(gprs, Gpr.Rax, false, size, q);
            WriteBack.WriteReg(gprs, Gpr.Rdx, false, size, rem);
        }
        return true;
    }

    /// <summary>The shift/rotate count: imm8 or CL, masked to 5 bits (6 for 64-bit operands) as the CPU does.</summary>
    public static int MaskedCount(in DecodedAccess d, ReadOnlySpan<ulong> gprs)
    {
        ulong raw = d.HasImm ? (ulong)d.Imm : gprs[Gpr.Rcx];
        return (int)(raw & (d.Size == 8 ? 0x3FUL : 0x1FUL));
    }

    static ExecResult Shift(in DecodedAccess d, Span<ulong> gprs, ref ulong rflags, ulong a, out ulong memWrite)
    {
        int size = d.Size, bits = size * 8, top = bits - 1;
        ulong m = X86Decoder.SizeMask(size);
        int c = MaskedCount(in d, gprs);
        memWrite = a;
        if (c == 0) return ExecResult.NoWrite; // no change, flags kept: nothing to write to the device either
        ulong f = rflags;
        ulong r;
        bool cf;
        switch (d.Op)
        {
            case AluOp.Shl:
                r = c >= bits ? 0 : (a << c) & m;
                cf = c <= bits && ((a >> (bits - c)) & 1) != 0;
                f = WithResult(f, r, size) & ~AF;
                f = Set(f, OF, ((r >> top) & 1) != 0 != cf);
                break;
            case AluOp.Shr:
                r = c >= bits ? 0 : a >> c;
                cf = c <= bits && ((a >> (c - 1)) & 1) != 0;
                f = WithResult(f, r, size) & ~AF;
                f = Set(f, OF, ((a >> top) & 1) != 0);
                break;
            case AluOp.Sar:
            {
                long s = SignExtend(a, size);
                r = (ulong)(s >> Math.Min(c, top)) & m;
                cf = ((s >> Math.Min(c - 1, top)) & 1) != 0;
                f = WithResult(f, r, size) & ~(AF | OF);
                break;
            }
            case AluOp.Rol:
            {
                int k = c % bits;
                r = k == 0 ? a : ((a << k) | (a >> (bits - k))) & m;
                cf = (r & 1) != 0;
                f = Set(f, OF, ((r >> top) & 1) != 0 != cf);
                break;
            }
            case AluOp.Ror:
            {
                int k = c % bits;
                r = k == 0 ? a : ((a >> k) | (a << (bits - k))) & m;
                cf = ((r >> top) & 1) != 0;
                f = Set(f, OF, (((r >> top) ^ (r >> (top - 1))) & 1) != 0);
                break;
            }
            case AluOp.Rcl:
            {
                int k = size <= 2 ? c % (bits + 1) : c;
                r = a;
                cf = (f & CF) != 0;
                for (int i = 0; i < k; i++)
                {
                    bool outBit = ((r >> top) & 1) != 0;
                    r = ((r << 1) | (cf ? 1UL : 0)) & m;
                    cf = outBit;
                }
                f = Set(f, OF, ((r >> top) & 1) != 0 != cf);
                break;
            }
            case AluOp.Rcr:
            {
                int k = size <= 2 ? c % (bits + 1) : c;
                r = a;
                cf = (f & CF) != 0;
                f = Set(f, OF, ((a >> top) & 1) != 0 != cf);
                for (int i = 0; i < k; i++)
                {
                    bool outBit = (r & 1) != 0;
                    r = (r >> 1) | (cf ? 1UL << top : 0);
                    cf = outBit;
                }
                break;
            }
            case AluOp.Shld:
            {
                ulong src = ReadReg(in d, gprs) & m;
                // Why: a 16-bit count above 16 leaves the result undefined; the CPU shifts through the 32-bit
                // concatenation dest:src:dest, which is what this computes (and the oracle skips comparing).
                if (c > bits) { r = Shld16Wide(a, src, c); cf = ((((ulong)a << 32 | src << 16 | a) >> (48 - c)) & 1) != 0; }
                else
                {
                    r = c == bits ? src : ((a << c) | (src >> (bits - c))) & m;
                    cf = ((a >> (bits - c)) & 1) != 0;
                }
                f = WithResult(f, r, size) & ~AF;
                f = Set(f, OF, ((r ^ a) >> top & 1) != 0);
                break;
            }
            case AluOp.Shrd:
            {
                ulong src = ReadReg(in d, gprs) & m;
                if (c > bits) { r = Shrd16Wide(a, src, c); cf = ((((ulong)a << 32 | src << 16 | a) >> (c - 1)) & 1) != 0; }
                else
                {
                    r = c == bits ? src : ((a >> c) | (src << (bits - c))) & m;
                    cf = ((a >> (c - 1)) & 1) != 0;
                }
                f = WithResult(f, r, size) & ~AF;
                f = Set(f, OF, ((r ^ a) >> top & 1) != 0);
                break;
            }
            default:
                return ExecResult.NotExecutable;
        }
        rflags = Set(f, CF, cf);
        memWrite = r;
        return ExecResult.Write;
    }

    static ulong Shld16Wide(ulong a, ulong src, int c) => ((a << 32 | src << 16 | a) << c >> 32) & 0xFFFF;

    static ulong Shrd16Wide(ulong a, ulong src, int c) => ((a << 32 | src << 16 | a) >> c) & 0xFFFF;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong Set(ulong f, ulong flag, bool on) => on ? f | flag : f & ~flag;

    /// <summary>
    /// The status flags the SDM leaves undefined after <paramref name="d"/> with these registers (before execution):
    /// a differential check against a real CPU must not compare them. <paramref name="resultUndefined"/> is set when
    /// the destination itself is undefined (SHLD/SHRD of a 16-bit operand by more than 16).
    /// </summary>
    public static ulong UndefinedFlags(in DecodedAccess d, ReadOnlySpan<ulong> gprs, out bool resultUndefined)
    {
        resultUndefined = false;
        if (d.Kind == AccessKind.Bt) return OF | SF | AF | PF;
        if (d.Kind != AccessKind.Alu) return 0;
        switch (d.Op)
        {
            case AluOp.Bsf: case AluOp.Bsr: return CF | OF | SF | AF | PF;
            case AluOp.And: case AluOp.Or: case AluOp.Xor: case AluOp.Test: return AF;
            case AluOp.Mul: case AluOp.Imul: return SF | ZF | AF | PF;
            case AluOp.Div: case AluOp.Idiv: return StatusFlags;
            case AluOp.Rol: case AluOp.Ror: case AluOp.Rcl: case AluOp.Rcr:
            {
                int c = MaskedCount(in d, gprs);
                return c == 1 || c == 0 ? 0 : OF;
            }
            case AluOp.Shl: case AluOp.Shr: case AluOp.Sar: case AluOp.Shld: case AluOp.Shrd:
            {
                int c = MaskedCount(in d, gprs), bits = d.Size * 8;
                if (c == 0) return 0;
                ulong u = AF | (c == 1 ? 0 : OF);
                if (c > bits)
                {
                    u |= CF;
                    if (d.Op is AluOp.Shld or AluOp.Shrd) { resultUndefined = true; u = StatusFlags; }
                }
                return u;
            }
            default: return 0;
        }
    }

    /// <summary>
    /// After one element of a string form: moves rSI (MOVS, OUTS, LODS, CMPS) and rDI (MOVS, STOS, INS, CMPS, SCAS) by
    /// the element size (down when DF is set) and, with REP, counts rCX down, all at the address size. True when the
    /// instruction is complete: no REP, rCX reached 0, or CMPS/SCAS ended a REPE (ZF clear) or REPNE (ZF set) run.
    /// </summary>
    public static bool StringStep(in DecodedAccess d, Span<ulong> gprs, ulong rflags)
    {
        ulong delta = (rflags & DF) != 0 ? (ulong)-(long)d.Size : d.Size;
        int asz = d.AddressSize;
        if (d.Kind is AccessKind.Movs or AccessKind.Outs or AccessKind.Lods or AccessKind.Cmps)
            WriteBack.WriteReg(gprs, Gpr.Rsi, false, asz, gprs[Gpr.Rsi] + delta);
        if (d.Kind is AccessKind.Movs or AccessKind.Stos or AccessKind.Ins or AccessKind.Cmps or AccessKind.Scas)
            WriteBack.WriteReg(gprs, Gpr.Rdi, false, asz, gprs[Gpr.Rdi] + delta);
        if (!d.Rep) return true;
        WriteBack.WriteReg(gprs, Gpr.Rcx, false, asz, gprs[Gpr.Rcx] - 1);
        if ((gprs[Gpr.Rcx] & X86Decoder.SizeMask(asz)) == 0) return true;
        if (d.Kind is AccessKind.Cmps or AccessKind.Scas) return ((rflags & ZF) != 0) == d.RepNe;
        return false;
    }

    /// <summary>REP with rCX = 0 at the address size: the instruction does nothing but advance RIP.</summary>
    public static bool RepSkips(in DecodedAccess d, ReadOnlySpan<ulong> gprs) =>
        d.Rep && (gprs[Gpr.Rcx] & X86Decoder.SizeMask(d.AddressSize)) == 0;

    /// <summary>
    /// What the instruction does to memory: "read", "write", "rmw" (reads and writes it: read-modify-write, XCHG, and
    /// MOVS, which reads one location and writes another) or "none" (IN/OUT, refusals).
    /// </summary>
    public static string MemoryDirection(in DecodedAccess d) => d.Kind switch
    {
        AccessKind.Unsupported or AccessKind.In or AccessKind.Out => "none",
        AccessKind.Read or AccessKind.ReadZx or AccessKind.ReadSx or AccessKind.Cmov or AccessKind.Lods or AccessKind.Scas
            or AccessKind.Cmps or AccessKind.Outs or AccessKind.ReadVec or AccessKind.MmxRead or AccessKind.Fxrstor => "read",
        AccessKind.Write or AccessKind.WriteImm or AccessKind.Stos or AccessKind.Setcc or AccessKind.Ins or AccessKind.WriteVec or AccessKind.Pop
            or AccessKind.Fnstcw or AccessKind.Fnstsw or AccessKind.MmxWrite or AccessKind.Fxsave => "write",
        AccessKind.Push or AccessKind.Call or AccessKind.Jmp => "read",
        AccessKind.SysLoad or AccessKind.SegLoad or AccessKind.FarJmp or AccessKind.FarCall or AccessKind.LoadFarPtr => "read",
        AccessKind.SysStore => "write",
        AccessKind.Bt => d.Op == AluOp.None ? "read" : "rmw",
        AccessKind.Alu => d.Op is AluOp.Cmp or AluOp.Test or AluOp.Mul or AluOp.Imul or AluOp.Div or AluOp.Idiv || !d.MemIsDest ? "read" : "rmw",
        _ => "rmw",
    };
}

// Design note — the host CPU as the oracle for the executor.
//
// Iced is the oracle for the decode; the processor itself is the oracle for the state update. Each case is one
// instruction of one family, with random prefixes (66, 67, LOCK, REX), ModRM/SIB/displacement forms, registers,
// RFLAGS and memory. Check decodes it with X86Decoder, points its memory operand into a host buffer (base register
// chosen so the effective address lands there), then runs it twice: through Copra's Executor over a model copy of
// the buffer, and natively (NativeCpu) over the buffer itself. It compares all GPRs but RSP, every status flag the
// SDM defines for the instruction (Executor.UndefinedFlags says which are not), DF, and every byte of the buffer.
// DIV/IDIV cases whose quotient faults are decided independently (BigInteger) and never run natively: the executor
// must report #DE and change nothing. The Vector family (SSE moves, MOVDIRI, MOVDIR64B) also loads and compares
// XMM0..15; its aligned forms get aligned operands (the misaligned #GP cannot run natively: unit tests check it).
using System.Buffers.Binary;
using System.Numerics;
using Copra.Fuzz.Core;
using Copra.Hot.Decode;
using Copra.Hot.Emulate;

namespace Copra.Fuzz.Targets;

/// <summary>Instruction families of the CPU-oracle campaign (one target each).</summary>
public enum OracleFamily { Alu, Unary, Exchange, MulDiv, Shift, Bit, Cond, String, Mov, Vector }

public sealed record CpuCase(OracleFamily Family, byte[] Bytes, ulong[] Gprs, ulong Rflags, ulong MemSeed, int Offset, int MemPattern);

/// <summary>The executor under test (Executor.Execute, or a planted bug).</summary>
public delegate ExecResult ExecFn(in DecodedAccess d, Span<ulong> gprs, ref ulong rflags, ulong mem, out ulong memWrite);

/// <summary>The vector executor under test (Executor.ExecuteVector, or a planted bug).</summary>
public delegate ExecResult VectorExecFn(in DecodedAccess d, Span<UInt128> xmm, ReadOnlySpan<byte> mem, Span<byte> memWrite);

/// <summary>The linear address of the memory operand (EffectiveAddress.Compute, or a planted bug).</summary>
public delegate ulong AddressFn(in DecodedAccess d, ReadOnlySpan<ulong> gprs);

public sealed class CpuOracleTarget(OracleFamily family, ExecFn? exec = null, AddressFn? address = null, string? name = null,
    VectorExecFn? vector = null)
    : FuzzTarget<CpuCase>
{
    readonly VectorExecFn _vector = vector ?? Executor.ExecuteVector;
    public const int DataSize = 8192, Centre = 4096;
    readonly ExecFn _exec = exec ?? Executor.Execute;
    readonly AddressFn _address = address ?? ((in DecodedAccess d, ReadOnlySpan<ulong> g) => EffectiveAddress.Compute(in d, g, 0, 0));

    [ThreadStatic] static NativeCpu? t_cpu;
    // Why: a harness bug that makes the CPU fault kills the process; COPRA_ORACLE_TRACE=1 names the case first.
    static readonly bool s_trace = Environment.GetEnvironmentVariable("COPRA_ORACLE_TRACE") == "1";

    public OracleFamily Family => family;
    public override string Name => name ?? "cpu-oracle-" + family.ToString().ToLowerInvariant();
    public override string Description => $"Executor vs the host CPU, {family} family (64-bit mode)";
    public override long? CampaignCases => 1_000_000;

    static readonly ulong[] Edges =
    [
        0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
        0x1_0000_0000, long.MaxValue, 1UL << 63, ulong.MaxValue, ulong.MaxValue - 1,
    ];

    // ---- generation ------------------------------------------------------------------------------------------

    public override CpuCase Generate(Rng r)
    {
        for (int attempt = 0; ; attempt++)
        {
            byte[] bytes = Instruction(r);
            if (!X86Decoder.TryDecode(bytes, CpuMode.Bits64, out DecodedAccess d)) continue;
            if (!Addressable(in d)) continue;
            bytes = bytes[..d.Length];
            var g = new ulong[16];
            for (int i = 0; i < 16; i++) g[i] = r.Chance(35) ? r.Pick(Edges) : r.Chance(15) ? (ulong)r.Next(70) : r.Next64();
            ulong fl = (r.Next64() & Executor.StatusFlags) | (r.Chance(20) ? Executor.DF : 0);
            int offset = d.Op == AluOp.Cmpxchg16b || d.Align == 16 ? 16 * r.Next(4) : r.Next(64);
            return new CpuCase(family, bytes, g, fl, r.Next64(), offset, r.Next(100));
        }
    }

    /// <summary>Forms the harness can run: a base register (not RIP) to point into the buffer, no base=index, no RSP.</summary>
    static bool Addressable(in DecodedAccess d)
    {
        if (IcedForms.IsString(d.Kind)) return true;
        // RSP as a register operand would move the harness's own stack under it (an XMM number is not a GPR).
        if (d.Reg == Gpr.Rsp && !d.RegHigh8 && d.Kind is not (AccessKind.ReadVec or AccessKind.WriteVec)) return false;
        // MOVDIR64B's destination register is placed on its own 64-byte slot; it cannot double as the source's.
        if (d.Kind == AccessKind.Movdir64b && (d.Reg == d.Base || d.Reg == d.Index)) return false;
        if (d.Base < 0 || d.Base == Gpr.Rip || d.Base == Gpr.Rsp || d.Index == Gpr.Rsp) return false;
        if (d.Index >= 0 && d.Index == d.Base) return false;
        // A register bit offset must not be the address register itself (it would address far outside the buffer).
        if (d.Kind == AccessKind.Bt && d.Reg >= 0 && (d.Reg == d.Base || d.Reg == d.Index)) return false;
        return true;
    }

    byte[] Instruction(Rng r)
    {
        var b = new List<byte>(16);
        if (family == OracleFamily.Vector) return VectorInstruction(r, b);
        if (r.Chance(25)) b.Add(0x66);
        if (r.Chance(10)) b.Add(0x67);
        bool lockable = family is OracleFamily.Alu or OracleFamily.Unary or OracleFamily.Exchange or OracleFamily.Bit;
        if (lockable && r.Chance(30)) b.Add(0xF0);
        if (family == OracleFamily.String)
        {
            if (r.Chance(60)) b.Add(r.Chance(50) ? (byte)0xF3 : (byte)0xF2);
            if (r.Chance(40)) b.Add((byte)(0x40 | (r.Chance(50) ? 8 : 0)));
            b.Add(r.Pick(new byte[] { 0xA4, 0xA5, 0xAA, 0xAB, 0xAC, 0xAD, 0xA6, 0xA7, 0xAE, 0xAF }));
            return [.. b];
        }
        if (r.Chance(80)) b.Add((byte)(0x40 | r.Next(16)));
        int reg = r.Next(8);
        switch (family)
        {
            case OracleFamily.Alu:
            {
                int k = r.Next(10);
                if (k < 6) b.Add((byte)(r.Next(8) << 3 | r.Next(4)));
                else if (k < 8) b.Add(r.Pick(new byte[] { 0x80, 0x81, 0x83 }));
                else if (k < 9) b.Add(r.Chance(50) ? (byte)0x84 : (byte)0x85);
                else { b.Add(r.Chance(50) ? (byte)0xF6 : (byte)0xF7); reg = 0; }
                break;
            }
            case OracleFamily.Unary:
                if (r.Chance(50)) { b.Add(r.Chance(50) ? (byte)0xFE : (byte)0xFF); reg = r.Next(2); }
                else { b.Add(r.Chance(50) ? (byte)0xF6 : (byte)0xF7); reg = 2 + r.Next(2); }
                break;
            case OracleFamily.Exchange:
                switch (r.Next(4))
                {
                    case 0: b.Add(r.Chance(50) ? (byte)0x86 : (byte)0x87); break;
                    case 1: b.Add(0x0F); b.Add(r.Chance(50) ? (byte)0xC0 : (byte)0xC1); break;
                    case 2: b.Add(0x0F); b.Add(r.Chance(50) ? (byte)0xB0 : (byte)0xB1); break;
                    default: b.Add(0x0F); b.Add(0xC7); reg = 1; break;
                }
                break;
            case OracleFamily.MulDiv:
                switch (r.Next(4))
                {
                    case 0: case 1: b.Add(r.Chance(50) ? (byte)0xF6 : (byte)0xF7); reg = 4 + r.Next(4); break;
                    case 2: b.Add(0x0F); b.Add(0xAF); break;
                    default: b.Add(r.Chance(50) ? (byte)0x69 : (byte)0x6B); break;
                }
                break;
            case OracleFamily.Shift:
                if (r.Chance(70)) b.Add(r.Pick(new byte[] { 0xC0, 0xC1, 0xD0, 0xD1, 0xD2, 0xD3 }));
                else { b.Add(0x0F); b.Add(r.Pick(new byte[] { 0xA4, 0xA5, 0xAC, 0xAD })); }
                break;
            case OracleFamily.Bit:
                b.Add(0x0F);
                if (r.Chance(50)) b.Add(r.Pick(new byte[] { 0xA3, 0xAB, 0xB3, 0xBB, 0xBC, 0xBD }));
                else { b.Add(0xBA); reg = 4 + r.Next(4); }
                break;
            case OracleFamily.Cond:
                b.Add(0x0F);
                b.Add((byte)((r.Chance(50) ? 0x90 : 0x40) + r.Next(16)));
                break;
            default: // Mov
                switch (r.Next(5))
                {
                    case 0: case 1: b.Add(r.Pick(new byte[] { 0x88, 0x89, 0x8A, 0x8B, 0x63 })); break;
                    case 2: b.Add(r.Chance(50) ? (byte)0xC6 : (byte)0xC7); reg = 0; break;
                    case 3: b.Add(0x0F); b.Add(r.Pick(new byte[] { 0xB6, 0xB7, 0xBE, 0xBF })); break;
                    default: b.Add(0x0F); b.Add(0xC3); break;
                }
                break;
        }
        int mod = r.Next(3);
        int rm = r.Next(8);
        if (mod == 0 && rm == 5) rm = 3;
        b.Add((byte)(mod << 6 | reg << 3 | rm));
        if (rm == 4) b.Add((byte)(r.Next(4) << 6 | r.Next(8) << 3 | r.Next(8)));
        for (int i = 0; i < 10; i++) b.Add(r.Chance(30) ? r.Pick(new byte[] { 0, 1, 0x7F, 0x80, 0xFF, 0x1F, 0x20, 0x3F, 0x40, 0x10, 0x11 }) : r.Byte());
        return [.. b];
    }

    /// <summary>An SSE move (mandatory prefix as the form needs), MOVDIRI or MOVDIR64B, with a memory ModRM.</summary>
    static byte[] VectorInstruction(Rng r, List<byte> b)
    {
        if (r.Chance(10)) b.Add(0x67);
        (byte Prefix, byte[] Op)[] forms =
        [
            (0, [0x0F, 0x10]), (0x66, [0x0F, 0x10]), (0, [0x0F, 0x11]), (0x66, [0x0F, 0x11]),
            (0, [0x0F, 0x28]), (0x66, [0x0F, 0x28]), (0, [0x0F, 0x29]), (0x66, [0x0F, 0x29]),
            (0, [0x0F, 0x2B]), (0x66, [0x0F, 0x2B]), (0x66, [0x0F, 0x6F]), (0xF3, [0x0F, 0x6F]),
            (0x66, [0x0F, 0x7F]), (0xF3, [0x0F, 0x7F]), (0x66, [0x0F, 0xE7]),
            (0, [0x0F, 0x38, 0xF9]), (0x66, [0x0F, 0x38, 0xF8]),
        ];
        // MOVDIRI and MOVDIR64B only where this processor has them (NativeCpu.HasMovdiri): elsewhere they would raise #UD natively.
        forms = [.. forms.Where(x => !(x.Op is [0x0F, 0x38, 0xF9] && !NativeCpu.HasMovdiri) && !(x.Op is [0x0F, 0x38, 0xF8] && !NativeCpu.HasMovdir64b))];
        var f = r.Pick(forms);
        if (f.Prefix != 0) b.Add(f.Prefix);
        if (r.Chance(60)) b.Add((byte)(0x40 | r.Next(16)));
        b.AddRange(f.Op);
        int mod = r.Next(3), rm = r.Next(8);
        if (mod == 0 && rm == 5) rm = 3;
        b.Add((byte)(mod << 6 | r.Next(8) << 3 | rm));
        if (rm == 4) b.Add((byte)(r.Next(4) << 6 | r.Next(8) << 3 | r.Next(8)));
        for (int i = 0; i < 8; i++) b.Add(r.Chance(30) ? r.Pick(new byte[] { 0, 1, 0x10, 0x20, 0x40, 0x7F, 0x80, 0xF0 }) : r.Byte());
        return [.. b];
    }

    /// <summary>The XMM registers a case starts with (from its memory seed, so a replay has them too).</summary>
    static UInt128[] StartXmm(in CpuCase c)
    {
        var r = new Rng(c.MemSeed ^ 0x5EED_0F_C0DE);
        var x = new UInt128[16];
        for (int i = 0; i < 16; i++) x[i] = new UInt128(r.Next64(), r.Next64());
        return x;
    }

    // ---- checking --------------------------------------------------------------------------------------------

    /// <summary>The initial buffer: random, with the operand's bytes sometimes zero, all-ones or a copy of RAX.</summary>
    static void FillMemory(in CpuCase c, Span<byte> mem)
    {
        var r = new Rng(c.MemSeed);
        for (int i = 0; i + 8 <= mem.Length; i += 8) BinaryPrimitives.WriteUInt64LittleEndian(mem[i..], r.Next64());
        Span<byte> at = mem.Slice(Centre + c.Offset - 16, 48);
        if (c.MemPattern < 20) at.Clear();
        else if (c.MemPattern < 30) at.Fill(0xFF);
        else if (c.MemPattern < 40) at.Fill(0x80);
    }

    /// <summary>Points the operand(s) into the buffer at <paramref name="baseAddress"/> + Centre + Offset.</summary>
    static void PlaceOperands(in DecodedAccess d, in CpuCase c, Span<ulong> g, ulong baseAddress, ReadOnlySpan<byte> mem)
    {
        ulong target = baseAddress + Centre + (ulong)c.Offset;
        ulong amask = Mask(d.AddressSize);
        if (IcedForms.IsString(d.Kind))
        {
            g[Gpr.Rsi] = (g[Gpr.Rsi] & ~amask) | (target & amask);
            g[Gpr.Rdi] = (g[Gpr.Rdi] & ~amask) | ((target + 512 + (g[Gpr.Rdi] & 7)) & amask);
            g[Gpr.Rcx] = (g[Gpr.Rcx] & ~amask) | (g[Gpr.Rcx] & 7);
            return;
        }
        if (d.Kind == AccessKind.Bt && d.Reg >= 0)
        {
            // A signed bit offset within +-2047 bits at the register's width: often past the operand, both ways.
            ulong off = (ulong)(long)(short)((g[d.Reg] & 0xFFF) - 0x800);
            g[d.Reg] = (g[d.Reg] & ~Mask(d.RegSize)) | (off & Mask(d.RegSize));
        }
        ulong index = 0;
        if (d.Index >= 0) { index = g[d.Index] & 15; g[d.Index] = index; }
        long btOff = d.Kind == AccessKind.Bt ? WriteBack.BtByteOffset(in d, g) : 0;
        ulong baseValue = target - (ulong)d.Disp - index * d.Scale - (ulong)btOff;
        g[d.Base] = (g[d.Base] & ~amask) | (baseValue & amask);
        // MOVDIR64B writes ES:[reg]: a 64-byte aligned slot 1 KiB above the source.
        if (d.Kind == AccessKind.Movdir64b)
            g[d.Reg] = (g[d.Reg] & ~amask) | ((baseAddress + Centre + 1024 + 64 * (ulong)(c.MemPattern & 7)) & amask);
        // Compare-exchange: half the cases expect what memory holds, so both outcomes are exercised.
        bool regsFree = d.Base is not (Gpr.Rax or Gpr.Rdx) && d.Index is not (Gpr.Rax or Gpr.Rdx);
        if (regsFree && (c.MemPattern & 1) == 0)
        {
            int at = Centre + c.Offset;
            if (d.Op == AluOp.Cmpxchg)
                g[Gpr.Rax] = (g[Gpr.Rax] & ~Mask(d.Size)) | (BinaryPrimitives.ReadUInt64LittleEndian(mem[at..]) & Mask(d.Size));
            else if (d.Op is AluOp.Cmpxchg8b)
            {
                ulong v = BinaryPrimitives.ReadUInt64LittleEndian(mem[at..]);
                g[Gpr.Rax] = (uint)v; g[Gpr.Rdx] = v >> 32;
            }
            else if (d.Op is AluOp.Cmpxchg16b)
            {
                g[Gpr.Rax] = BinaryPrimitives.ReadUInt64LittleEndian(mem[at..]);
                g[Gpr.Rdx] = BinaryPrimitives.ReadUInt64LittleEndian(mem[(at + 8)..]);
            }
            else if (d.Op is AluOp.Div or AluOp.Idiv)
                g[Gpr.Rdx] = d.Size == 1 ? g[Gpr.Rdx] : 0; // a small high half: the quotient usually fits
        }
        if (regsFree && d.Op is AluOp.Div or AluOp.Idiv && d.Size == 1 && (c.MemPattern & 2) == 0) g[Gpr.Rax] &= ~0xFF00UL;
    }

    /// <summary>The instruction needs a feature this processor lacks (a replayed case from another host), else null.</summary>
    static string? MissingFeature(byte[] bytes)
    {
        var dec = Iced.Intel.Decoder.Create(64, new Iced.Intel.ByteArrayCodeReader(bytes));
        dec.Decode(out var ins);
        return ins.Mnemonic switch
        {
            Iced.Intel.Mnemonic.Movdiri when !NativeCpu.HasMovdiri => "MOVDIRI (CPUID.7.0:ECX[27])",
            Iced.Intel.Mnemonic.Movdir64b when !NativeCpu.HasMovdir64b => "MOVDIR64B (CPUID.7.0:ECX[28])",
            _ => null,
        };
    }

    public override string? Check(CpuCase c)
    {
        if (!NativeCpu.IsSupported) return null;
        if (!X86Decoder.TryDecode(c.Bytes, CpuMode.Bits64, out DecodedAccess d)) return "generator produced a refused form";
        if (MissingFeature(c.Bytes) is { } missing) return $"this host's processor has no {missing}: the case cannot run natively here";
        var cpu = t_cpu ??= new NativeCpu(DataSize);
        Span<byte> native = cpu.Data;
        FillMemory(in c, native);
        var start = (ulong[])c.Gprs.Clone();
        start[Gpr.Rsp] = 0;
        PlaceOperands(in d, in c, start, cpu.DataAddress, native);
        byte[] model = native.ToArray();

        var mg = (ulong[])start.Clone();
        ulong mf = c.Rflags;
        UInt128[] mx = StartXmm(in c);
        string? err = RunModel(in d, mg, ref mf, mx, model, cpu.DataAddress, out bool divideError);
        if (err is not null) return err;

        if (DivideFaults(in d, start, model, cpu.DataAddress))
        {
            if (!divideError) return "the CPU raises #DE here (quotient does not fit or divisor 0); Copra did not";
            for (int i = 0; i < 16; i++) if (mg[i] != start[i]) return $"#DE but register {i} changed";
            return mf == c.Rflags ? null : "#DE but RFLAGS changed";
        }
        if (divideError) return "Copra raised #DE; the CPU does not";

        var ng = (ulong[])start.Clone();
        ulong nf = c.Rflags;
        if (s_trace) Console.Error.WriteLine($"native: {Show(c)}");
        UInt128[] nx = StartXmm(in c);
        cpu.Run(c.Bytes, ng, ref nf, nx);
        for (int i = 0; i < 16; i++)
            if (mx[i] != nx[i]) return $"xmm{i}: Copra 0x{mx[i]:x32}, CPU 0x{nx[i]:x32}";

        ulong undefined = Executor.UndefinedFlags(in d, start, out bool resultUndefined);
        for (int i = 0; i < 16; i++)
            if (i != Gpr.Rsp && mg[i] != ng[i]) return $"register {RegName(i)}: Copra 0x{mg[i]:x}, CPU 0x{ng[i]:x}";
        ulong compare = (Executor.StatusFlags | Executor.DF) & ~undefined;
        if ((mf & compare) != (nf & compare)) return $"RFLAGS: Copra 0x{mf & compare:x}, CPU 0x{nf & compare:x} (compared bits 0x{compare:x})";
        if (!resultUndefined)
            for (int i = 0; i < DataSize; i++)
                if (model[i] != native[i]) return $"memory byte {i - Centre - c.Offset:+0;-0} from the operand: Copra 0x{model[i]:x2}, CPU 0x{native[i]:x2}";
        return null;
    }

    /// <summary>Copra's side: the executor over the model buffer. Null on success, else why the harness failed.</summary>
    string? RunModel(in DecodedAccess d, Span<ulong> g, ref ulong f, Span<UInt128> xmm, byte[] mem, ulong baseAddress, out bool divideError)
    {
        divideError = false;
        if (IcedForms.IsString(d.Kind))
        {
            if (Executor.RepSkips(in d, g)) return null;
            ulong amask = Mask(d.AddressSize);
            for (int n = 0; n < 64; n++)
            {
                int si = (int)((g[Gpr.Rsi] & amask) - baseAddress), di = (int)((g[Gpr.Rdi] & amask) - baseAddress);
                switch (d.Kind)
                {
                    case AccessKind.Movs: Store(mem, di, d.Size, Load(mem, si, d.Size)); break;
                    case AccessKind.Stos: Store(mem, di, d.Size, g[Gpr.Rax]); break;
                    case AccessKind.Lods: _exec(in d, g, ref f, Load(mem, si, d.Size), out _); break;
                    case AccessKind.Scas: _exec(in d, g, ref f, Load(mem, di, d.Size), out _); break;
                    case AccessKind.Cmps: Executor.Cmps(in d, ref f, Load(mem, si, d.Size), Load(mem, di, d.Size)); break;
                }
                if (Executor.StringStep(in d, g, f)) return null;
            }
            return "string form did not finish in 64 elements";
        }
        ulong linear = _address(in d, g);
        long at = (long)(linear - baseAddress);
        if (at < 0 || at + d.Size > mem.Length) return $"Copra's address 0x{linear:x} is outside the buffer";
        if (!Executor.Aligned(in d, d.Kind == AccessKind.Movdir64b ? g[d.Reg] & Mask(d.AddressSize) : linear))
            return "the harness placed an aligned form's operand misaligned";
        if (d.Kind is AccessKind.ReadVec or AccessKind.WriteVec or AccessKind.Movdir64b)
        {
            int to = d.Kind == AccessKind.Movdir64b ? (int)((g[d.Reg] & Mask(d.AddressSize)) - baseAddress) : (int)at;
            Span<byte> wide = stackalloc byte[64];
            var vres = _vector(in d, xmm, mem.AsSpan((int)at, d.Size), wide);
            if (vres == ExecResult.NotExecutable) return $"Copra's executor cannot execute {d.Kind}";
            if (vres == ExecResult.Write) wide[..d.Size].CopyTo(mem.AsSpan(to));
            return null;
        }
        if (d.Op == AluOp.Cmpxchg16b)
        {
            UInt128 m128 = BinaryPrimitives.ReadUInt128LittleEndian(mem.AsSpan((int)at));
            if (Executor.Execute16(g, ref f, m128, out UInt128 w) == ExecResult.Write)
                BinaryPrimitives.WriteUInt128LittleEndian(mem.AsSpan((int)at), w);
            return null;
        }
        ExecResult res = _exec(in d, g, ref f, Load(mem, (int)at, d.Size), out ulong write);
        if (res == ExecResult.DivideError) { divideError = true; return null; }
        if (res == ExecResult.NotExecutable) return $"Copra's executor cannot execute {d.Kind}/{d.Op}";
        if (res == ExecResult.Write) Store(mem, (int)at, d.Size, write);
        return null;
    }

    /// <summary>Whether DIV/IDIV faults, decided with BigInteger, independently of the executor.</summary>
    static bool DivideFaults(in DecodedAccess d, ReadOnlySpan<ulong> g, byte[] mem, ulong baseAddress)
    {
        if (d.Kind != AccessKind.Alu || d.Op is not (AluOp.Div or AluOp.Idiv)) return false;
        int bits = d.Size * 8;
        ulong at = EffectiveAddress.Compute(in d, g, 0, 0) - baseAddress;
        BigInteger divisor = Load(mem, (int)at, d.Size);
        BigInteger lo = d.Size == 1 ? g[0] & 0xFF : g[0] & Mask(d.Size);
        BigInteger hi = d.Size == 1 ? (g[0] >> 8) & 0xFF : g[2] & Mask(d.Size);
        BigInteger dividend = (hi << bits) | lo;
        if (d.Op == AluOp.Idiv)
        {
            if (dividend >= BigInteger.One << (2 * bits - 1)) dividend -= BigInteger.One << (2 * bits);
            if (divisor >= BigInteger.One << (bits - 1)) divisor -= BigInteger.One << bits;
        }
        if (divisor.IsZero) return true;
        BigInteger q = BigInteger.Divide(dividend, divisor); // truncates toward zero, as IDIV does
        return d.Op == AluOp.Div ? q >= BigInteger.One << bits : q >= BigInteger.One << (bits - 1) || q < -(BigInteger.One << (bits - 1));
    }

    static ulong Mask(int size) => size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;

    static ulong Load(byte[] mem, int at, int size)
    {
        ulong v = 0;
        for (int i = 0; i < size; i++) v |= (ulong)mem[at + i] << (8 * i);
        return v;
    }

    static void Store(byte[] mem, int at, int size, ulong v)
    {
        for (int i = 0; i < size; i++) mem[at + i] = (byte)(v >> (8 * i));
    }

    static readonly string[] Names = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];
    static string RegName(int i) => Names[i];

    public override string Show(CpuCase c) =>
        $"{Modes.Hex(c.Bytes)} ({IcedOracle.Format(IcedOracle.Decode(c.Bytes, CpuMode.Bits64, out _))}) rflags 0x{c.Rflags:x} " +
        $"offset {c.Offset} pattern {c.MemPattern} memseed {c.MemSeed} gprs [{string.Join(' ', c.Gprs.Select(g => g.ToString("x")))}]";

    public override int SizeOf(CpuCase c) => c.Gprs.Count(g => g != 0) + (c.Rflags != 0 ? 1 : 0);

    public override IEnumerable<CpuCase> Shrink(CpuCase c)
    {
        if (c.Rflags != 0) yield return c with { Rflags = 0 };
        for (int i = 0; i < 16; i++)
            if (c.Gprs[i] != 0) { var g = (ulong[])c.Gprs.Clone(); g[i] = 0; yield return c with { Gprs = g }; }
    }
}

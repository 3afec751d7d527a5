// Design note — the Linux corpus check (`./build.sh corpus`, docs/emulation.md).
//
// Input: a directory holding a decompressed kernel image (ELF vmlinux) and modules (*.ko), as build.sh's corpus verb
// leaves them. Every executable section (SHF_EXECINSTR) of every ELF file is swept linearly with Iced in 64-bit mode
// (an undecodable byte is skipped, as a disassembler does). An instruction is in scope when one of the four anchors
// emulates its form and it can reach an MMIO or port exit: it has a memory operand, or it is IN/OUT. The anchors:
// x86emu (its dispatch list, X86emuCodes.cs), Linux insn_decode_mmio (MOV 88/89/8A/8B/C6/C7, MOVZX, MOVSX, MOVS,
// STOS), COCONUT-SVSM's decoder (MOV 88/89/8A/8B/C6/C7/A0..A3, IN/OUT/INS/OUTS), and KVM's emulate.c (its dispatch list
// read off its opcode tables, KvmCodes.cs: besides the integer and SSE forms, PUSH/POP m, CALL/JMP m, MOVBE, BSF/BSR,
// MMX MOVQ, the system-table and segment forms). Memory-operand forms no anchor emulates are counted and shown.
//
// Each in-scope instruction (its up-to-15 bytes, as the exit path would fetch them) goes through X86Decoder. A refusal
// is a finding; an accepted decode is compared with Iced field by field by the decoder target's own check (length,
// kind, operation, size, registers, immediate, memory operand, segment, address size). Exit 1 on any refusal or
// disagreement; 2 for a bad directory or a file that is not ELF64 little-endian x86-64.

using System.Buffers.Binary;
using Copra.Fuzz.Targets;
using Copra.Hot.Decode;
using Copra.Kernel;
using Iced.Intel;
using IcedDecoder = Iced.Intel.Decoder;

namespace Copra.Fuzz.Corpus;

/// <summary>One executable section of an ELF file.</summary>
public sealed record ExecSection(string Name, ulong Address, byte[] Bytes);

/// <summary>The executable sections of an ELF64 x86-64 file.</summary>
public static class Elf64
{
    const uint ShfExecInstr = 0x4, ShtProgbits = 1;

    /// <summary>The SHF_EXECINSTR PROGBITS sections, or a one-line reason the file cannot be read as ELF64 x86-64.</summary>
    public static List<ExecSection> ExecutableSections(ReadOnlySpan<byte> f, out string? error)
    {
        var list = new List<ExecSection>();
        error = null;
        if (f.Length < 64 || f[0] != 0x7F || !f[1..4].SequenceEqual("ELF"u8))
        { error = "not an ELF file"; return list; }
        if (f[4] != 2 || f[5] != 1) { error = "not ELF64 little-endian"; return list; }
        if (BinaryPrimitives.ReadUInt16LittleEndian(f[18..]) != 62) { error = "not x86-64 (e_machine != 62)"; return list; }
        ulong shoff = BinaryPrimitives.ReadUInt64LittleEndian(f[40..]);
        int shentsize = BinaryPrimitives.ReadUInt16LittleEndian(f[58..]);
        int shnum = BinaryPrimitives.ReadUInt16LittleEndian(f[60..]);
        int shstrndx = BinaryPrimitives.ReadUInt16LittleEndian(f[62..]);
        if (shentsize < 64 || shoff == 0 || shoff + (ulong)(shnum * shentsize) > (ulong)f.Length || shstrndx >= shnum)
        { error = "section header table out of bounds"; return list; }
        var strs = f.Slice((int)shoff + shstrndx * shentsize, 64);
        ulong strOff = BinaryPrimitives.ReadUInt64LittleEndian(strs[24..]), strSize = BinaryPrimitives.ReadUInt64LittleEndian(strs[32..]);
        if (strOff + strSize > (ulong)f.Length) { error = "section name table out of bounds"; return list; }
        for (int i = 0; i < shnum; i++)
        {
            var h = f.Slice((int)shoff + i * shentsize, 64);
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(h[4..]);
            ulong flags = BinaryPrimitives.ReadUInt64LittleEndian(h[8..]);
            if (type != ShtProgbits || (flags & ShfExecInstr) == 0) continue;
            ulong addr = BinaryPrimitives.ReadUInt64LittleEndian(h[16..]);
            ulong off = BinaryPrimitives.ReadUInt64LittleEndian(h[24..]), size = BinaryPrimitives.ReadUInt64LittleEndian(h[32..]);
            if (off + size > (ulong)f.Length) { error = $"section {i} out of bounds"; return list; }
            uint nameAt = BinaryPrimitives.ReadUInt32LittleEndian(h);
            string name = nameAt < strSize ? CString(f.Slice((int)(strOff + nameAt), (int)(strSize - nameAt))) : $"#{i}";
            list.Add(new ExecSection(name, addr, f.Slice((int)off, (int)size).ToArray()));
        }
        return list;
    }

    static string CString(ReadOnlySpan<byte> s)
    {
        int n = s.IndexOf((byte)0);
        return System.Text.Encoding.ASCII.GetString(n < 0 ? s : s[..n]);
    }
}

/// <summary>The anchors' forms, grouped into the families of docs/emulation.md's coverage table.</summary>
public static class Anchors
{
    [Flags] public enum Who : byte { None = 0, X86emu = 1, Kvm = 2, Linux = 4, Coconut = 8 }

    static readonly Dictionary<Code, Who> s_codes = Build();

    static Dictionary<Code, Who> Build()
    {
        var d = new Dictionary<Code, Who>();
        void Add(Code c, Who w) => d[c] = d.GetValueOrDefault(c) | w;
        foreach (string n in X86emuCodes.Names.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            Add(Enum.Parse<Code>(n), Who.X86emu);
        Code[] linux =
        [
            Code.Mov_rm8_r8, Code.Mov_rm16_r16, Code.Mov_rm32_r32, Code.Mov_rm64_r64, Code.Mov_r8_rm8, Code.Mov_r16_rm16,
            Code.Mov_r32_rm32, Code.Mov_r64_rm64, Code.Mov_rm8_imm8, Code.Mov_rm16_imm16, Code.Mov_rm32_imm32, Code.Mov_rm64_imm32,
            Code.Movzx_r16_rm8, Code.Movzx_r32_rm8, Code.Movzx_r64_rm8, Code.Movzx_r16_rm16, Code.Movzx_r32_rm16, Code.Movzx_r64_rm16,
            Code.Movsx_r16_rm8, Code.Movsx_r32_rm8, Code.Movsx_r64_rm8, Code.Movsx_r16_rm16, Code.Movsx_r32_rm16, Code.Movsx_r64_rm16,
            Code.Movsb_m8_m8, Code.Movsw_m16_m16, Code.Movsd_m32_m32, Code.Movsq_m64_m64,
            Code.Stosb_m8_AL, Code.Stosw_m16_AX, Code.Stosd_m32_EAX, Code.Stosq_m64_RAX,
        ];
        foreach (var c in linux) Add(c, Who.Linux);
        Code[] coconut =
        [
            Code.Mov_rm8_r8, Code.Mov_rm16_r16, Code.Mov_rm32_r32, Code.Mov_rm64_r64, Code.Mov_r8_rm8, Code.Mov_r16_rm16,
            Code.Mov_r32_rm32, Code.Mov_r64_rm64, Code.Mov_rm8_imm8, Code.Mov_rm16_imm16, Code.Mov_rm32_imm32, Code.Mov_rm64_imm32,
            Code.Mov_AL_moffs8, Code.Mov_AX_moffs16, Code.Mov_EAX_moffs32, Code.Mov_RAX_moffs64,
            Code.Mov_moffs8_AL, Code.Mov_moffs16_AX, Code.Mov_moffs32_EAX, Code.Mov_moffs64_RAX,
            Code.In_AL_imm8, Code.In_AX_imm8, Code.In_EAX_imm8, Code.In_AL_DX, Code.In_AX_DX, Code.In_EAX_DX,
            Code.Out_imm8_AL, Code.Out_imm8_AX, Code.Out_imm8_EAX, Code.Out_DX_AL, Code.Out_DX_AX, Code.Out_DX_EAX,
            Code.Insb_m8_DX, Code.Insw_m16_DX, Code.Insd_m32_DX, Code.Outsb_DX_m8, Code.Outsw_DX_m16, Code.Outsd_DX_m32,
        ];
        foreach (var c in coconut) Add(c, Who.Coconut);
        // KVM: its emulate.c dispatch list (KvmCodes.cs): x86emu's forms but MOVDIRI/MOVDIR64B, and its own extras.
        foreach (string n in X86emuCodes.Names.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            if (KvmCodes.SharedWithX86emu(n)) Add(Enum.Parse<Code>(n), Who.Kvm);
        foreach (string n in KvmCodes.Extra.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            Add(Enum.Parse<Code>(n), Who.Kvm);
        return d;
    }

    /// <summary>Which anchors emulate <paramref name="c"/> (None: outside the family list).</summary>
    public static Who Of(Code c) => s_codes.GetValueOrDefault(c);

    /// <summary>The coverage-table row of an instruction form.</summary>
    public static string Family(Code c)
    {
        string m = c.Mnemonic().ToString();
        // Why: MOVSD and CMPSD are also the SSE2 scalar-double forms (Iced gives them the same mnemonic).
        if (m is "Movsd" or "Cmpsd" && c.ToString().Contains("xmm", StringComparison.Ordinal)) return m.ToLowerInvariant() + " (SSE2 scalar)";
        if (c.ToString().Contains("Sreg", StringComparison.Ordinal)) return "MOV m16, Sreg; MOV Sreg, m16";
        return m switch
        {
            "Mov" or "Movzx" or "Movsx" or "Movsxd" => "MOV, MOVZX, MOVSX, MOVSXD",
            "Movnti" => "MOVNTI",
            "Movdiri" or "Movdir64b" => "MOVDIRI, MOVDIR64B",
            "Movups" or "Movupd" or "Movdqu" or "Movntdq" or "Movntps" or "Movntpd" or "Movaps" or "Movapd" or "Movdqa" => "SSE moves",
            "Add" or "Or" or "And" or "Sub" or "Xor" or "Cmp" or "Test" => "ADD, OR, AND, SUB, XOR, CMP, TEST",
            "Adc" or "Sbb" => "ADC, SBB",
            "Inc" or "Dec" or "Neg" or "Not" => "INC, DEC, NEG, NOT",
            "Xchg" => "XCHG",
            "Xadd" or "Cmpxchg" => "XADD, CMPXCHG",
            "Cmpxchg8b" or "Cmpxchg16b" => "CMPXCHG8B, CMPXCHG16B",
            "Mul" or "Imul" or "Div" or "Idiv" => "MUL, IMUL, DIV, IDIV",
            "Shl" or "Sal" or "Shr" or "Sar" or "Rol" or "Ror" or "Rcl" or "Rcr" => "shifts and rotates",
            "Shld" or "Shrd" => "SHLD, SHRD",
            "Bt" or "Bts" or "Btr" or "Btc" => "BT, BTS, BTR, BTC",
            "Movsb" or "Movsw" or "Movsd" or "Movsq" or "Stosb" or "Stosw" or "Stosd" or "Stosq" => "MOVS, STOS",
            "Lodsb" or "Lodsw" or "Lodsd" or "Lodsq" or "Scasb" or "Scasw" or "Scasd" or "Scasq" => "LODS, SCAS",
            "Cmpsb" or "Cmpsw" or "Cmpsd" or "Cmpsq" => "CMPS",
            "In" or "Out" or "Insb" or "Insw" or "Insd" or "Outsb" or "Outsw" or "Outsd" => "IN, OUT, INS, OUTS",
            "Push" or "Pop" => "PUSH m, POP m",
            "Call" or "Jmp" => c.ToString().Contains("_m16", StringComparison.Ordinal) ? "CALL m, JMP m (far)" : "CALL m, JMP m (near)",
            "Bsf" or "Bsr" => "BSF, BSR",
            "Movbe" => "MOVBE",
            "Movq" => "MOVQ (MMX)",
            "Sgdt" or "Sidt" or "Lgdt" or "Lidt" or "Sldt" or "Str" or "Lldt" or "Ltr" or "Smsw" or "Lmsw" => "system-table forms",
            "Les" or "Lds" or "Lss" or "Lfs" or "Lgs" => "far pointer loads",
            "Fxsave" or "Fxsave64" or "Fxrstor" or "Fxrstor64" or "Fnstcw" or "Fnstsw" => "x87/FXSAVE state",
            _ when m.StartsWith("Set", StringComparison.Ordinal) => "SETcc",
            _ when m.StartsWith("Cmov", StringComparison.Ordinal) => "CMOVcc",
            _ => m.ToLowerInvariant(),
        };
    }

    public static string Names(Who w) => w == Who.None ? "-" : string.Join(" ", Enum.GetValues<Who>().Where(x => x != Who.None && (w & x) != 0).Select(x => x.ToString().ToLowerInvariant()));
}

/// <summary>The corpus check itself.</summary>
public static class KernelCorpus
{
    sealed class Row { public long Found, Decoded, Refused, Disagree; public Anchors.Who Who; }

    /// <summary>Runs the check over the ELF files under <paramref name="dir"/>; returns the exit code. <paramref name="decode"/>
    /// replaces X86Decoder (the planted-bug tests).</summary>
    public static int Run(Cli.Io io, string dir, string? sampleOut, DecodeFn? decode = null)
    {
        if (!Directory.Exists(dir)) { io.Err.WriteLine($"fuzz: --corpus: directory '{dir}' does not exist"); return ExitCodes.Usage; }
        var files = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
            .Where(p => Path.GetFileName(p) == "vmlinux" || p.EndsWith(".ko", StringComparison.Ordinal)).OrderBy(p => p, StringComparer.Ordinal).ToList();
        if (files.Count == 0) { io.Err.WriteLine($"fuzz: --corpus: no vmlinux or *.ko under '{dir}'"); return ExitCodes.Usage; }

        var rows = new SortedDictionary<string, Row>(StringComparer.Ordinal);
        var outside = new Dictionary<string, long>();
        var refusals = new Dictionary<string, (long Count, string Example)>();
        var disagreements = new Dictionary<string, (long Count, string Example)>();
        var sample = sampleOut is null ? null : new HashSet<string>();
        decode ??= X86Decoder.TryDecode;
        var checker = new DecoderTarget(CpuMode.Bits64, decoder: decode);
        long instructions = 0, memOperand = 0, bytesSwept = 0;
        int elfFiles = 0;
        Span<byte> window = stackalloc byte[X86Decoder.MaxLength];
        foreach (var path in files)
        {
            var secs = Elf64.ExecutableSections(File.ReadAllBytes(path), out string? error);
            if (error is not null) { io.Err.WriteLine($"fuzz: --corpus: {path}: {error}"); return ExitCodes.Usage; }
            elfFiles++;
            foreach (var s in secs)
            {
                bytesSwept += s.Bytes.Length;
                var dec = IcedDecoder.Create(64, new ByteArrayCodeReader(s.Bytes), s.Address, DecoderOptions.None);
                ulong end = s.Address + (ulong)s.Bytes.Length;
                while (dec.IP < end)
                {
                    ulong ip = dec.IP;
                    dec.Decode(out Instruction ins);
                    if (ins.IsInvalid) continue;   // the decoder has moved past the bad byte(s)
                    instructions++;
                    bool mem = false;
                    for (int k = 0; k < ins.OpCount; k++) mem |= IcedForms.IsMemory(ins.GetOpKind(k));
                    var who = Anchors.Of(ins.Code);
                    string family = Anchors.Family(ins.Code);
                    if (mem && ins.Mnemonic != Mnemonic.Lea && !ins.Mnemonic.ToString().StartsWith("Nop", StringComparison.Ordinal)) memOperand++;
                    bool port = family == "IN, OUT, INS, OUTS";
                    if (who == Anchors.Who.None || !(mem || port))
                    {
                        if (mem && ins.Mnemonic != Mnemonic.Lea && !ins.Mnemonic.ToString().StartsWith("Nop", StringComparison.Ordinal) && !ins.Mnemonic.ToString().StartsWith("Prefetch", StringComparison.Ordinal))
                            outside[family] = outside.GetValueOrDefault(family) + 1;
                        continue;
                    }
                    int off = (int)(ip - s.Address);
                    int n = Math.Min(X86Decoder.MaxLength, s.Bytes.Length - off);
                    var bytes = s.Bytes.AsSpan(off, n);
                    if (!rows.TryGetValue(family, out var row)) rows[family] = row = new Row();
                    row.Found++;
                    row.Who |= who;
                    string hex = Convert.ToHexString(bytes[..ins.Length]).ToLowerInvariant();
                    if (!decode(bytes, CpuMode.Bits64, out var d))
                    {
                        row.Refused++;
                        string key = $"{ins.Code} ({d.Error})";
                        var (c, ex) = refusals.GetValueOrDefault(key);
                        refusals[key] = (c + 1, ex ?? $"{hex}  {IcedOracle.Format(ins)} in {Path.GetFileName(path)} {s.Name}+0x{off:x}: Copra refused it ({d.Error})");
                        continue;
                    }
                    row.Decoded++;
                    sample?.Add(hex);
                    string? diff = checker.Check(new DecoderCase(CpuMode.Bits64, bytes.ToArray()));
                    if (diff is not null)
                    {
                        row.Disagree++;
                        var (c, ex) = disagreements.GetValueOrDefault(ins.Code.ToString());
                        disagreements[ins.Code.ToString()] = (c + 1, ex ?? $"{hex}  {IcedOracle.Format(ins)}: {diff.Replace('\n', ' ')}");
                    }
                }
            }
        }

        var o = io.Out;
        o.WriteLine($"corpus: {elfFiles} ELF files, {bytesSwept:N0} bytes of executable sections, {instructions:N0} instructions, {memOperand:N0} with a memory operand (LEA and NOP excluded)");
        o.WriteLine();
        o.WriteLine($"{"family",-36} {"anchors",-26} {"found",10} {"decoded",10} {"refused",9} {"disagree",9}");
        long found = 0, refused = 0, disagree = 0;
        foreach (var (fam, r) in rows)
        {
            o.WriteLine($"{fam,-36} {Anchors.Names(r.Who),-26} {r.Found,10:N0} {r.Decoded,10:N0} {r.Refused,9:N0} {r.Disagree,9:N0}");
            found += r.Found; refused += r.Refused; disagree += r.Disagree;
        }
        o.WriteLine($"{"total",-36} {"",-26} {found,10:N0} {found - refused,10:N0} {refused,9:N0} {disagree,9:N0}");
        if (refusals.Count > 0)
        {
            o.WriteLine();
            o.WriteLine("refused (one example per form):");
            foreach (var (k, (c, ex)) in refusals.OrderByDescending(x => x.Value.Count)) o.WriteLine($"  {c,8:N0}  {k}: {ex}");
        }
        if (disagreements.Count > 0)
        {
            o.WriteLine();
            o.WriteLine("disagreements with Iced (one example per form):");
            foreach (var (k, (c, ex)) in disagreements.OrderByDescending(x => x.Value.Count)) o.WriteLine($"  {c,8:N0}  {k}: {ex}");
        }
        o.WriteLine();
        o.WriteLine("memory-operand forms no anchor emulates (not checked):");
        o.WriteLine("  " + string.Join(", ", outside.OrderByDescending(x => x.Value).Take(16).Select(x => $"{x.Key} {x.Value:N0}")));
        if (sample is not null)
        {
            File.WriteAllLines(sampleOut!, sample.Order(StringComparer.Ordinal));
            o.WriteLine($"sample: {sample.Count:N0} distinct decoded forms written to {sampleOut}");
        }
        return refused > 0 || disagree > 0 ? ExitCodes.NotClean : ExitCodes.Ok;
    }
}

// Design note — `copra decode`.
//
// One instruction per input line as hex bytes (spaces, commas and 0x prefixes allowed; blank lines and # comments
// skipped), one JSON object per output line. The fast decoder answers first; if it refuses, the Iced fallback gets
// a chance, and "decoder" says which one produced the line. A line that is not hex gets a JSON line with
// "error":"bad_hex"; the command never stops on bad input. JSON is written with Utf8JsonWriter (AOT-safe).
//
// Field conventions: register names carry their width ("eax", "ah", "r9w"); base/index are named at the address
// size ("bx", "esi", "rip"); disp is signed for base/index forms and the unsigned address for absolute forms
// (moffs, [disp32]); memory fields are null for IN/OUT and refusals; "src_seg" is the rSI segment of MOVS/CMPS.
// "mnemonic" is Iced's Mnemonic in lower case (null where Iced finds no valid instruction), "mem_dir" is
// read/write/rmw/none (Executor.MemoryDirection) and "mem_size" the bytes per memory access (null without one);
// "op" names the operation of ALU and BTS/BTR/BTC forms and "cond" the condition of SETcc/CMOVcc.

using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Copra.Hot.Decode;

namespace Copra.Kernel;

/// <summary>The <c>copra decode</c> command: hex instruction bytes in, decoded accesses out as JSON lines.</summary>
public static class DecodeCommand
{
    /// <summary>Parses <c>--mode</c>: "16", "32" or "64" (default 64 when absent).</summary>
    public static CpuMode ParseMode(string? s) => s switch
    {
        null or "64" => CpuMode.Bits64,
        "32" => CpuMode.Bits32,
        "16" => CpuMode.Bits16,
        _ => throw new CliException($"--mode must be 16, 32 or 64, not '{s}'"),
    };

    /// <summary>Decodes every instruction line of <paramref name="input"/>; returns 0.</summary>
    public static int Run(TextReader input, TextWriter output, CpuMode mode)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using var json = new Utf8JsonWriter(buffer);
        Span<byte> bytes = stackalloc byte[64];
        bytes.Clear();   // SkipLocalsInit
        string? line;
        while ((line = input.ReadLine()) is not null)
        {
            int hash = line.IndexOf('#');
            ReadOnlySpan<char> text = (hash >= 0 ? line.AsSpan(0, hash) : line.AsSpan()).Trim();
            if (text.IsEmpty) continue;

            buffer.ResetWrittenCount();
            json.Reset(buffer);
            int n = ParseHex(text, bytes);
            if (n <= 0) WriteBadHex(json);
            else if (X86Decoder.TryDecode(bytes[..n], mode, out DecodedAccess d)) Write(json, in d, "copra", bytes[..n]);
            else if (IcedFallback.TryDecode(bytes[..n], mode, out DecodedAccess f)) Write(json, in f, "iced", bytes[..n]);
            else Write(json, in d, "copra", bytes[..n]);
            json.Flush();
            output.WriteLine(Encoding.UTF8.GetString(buffer.WrittenSpan));
        }
        output.Flush();
        return 0;
    }

    /// <summary>Hex digits to bytes; -1 on anything that is not hex, an odd digit count, or more than the buffer holds.</summary>
    static int ParseHex(ReadOnlySpan<char> text, Span<byte> dest)
    {
        int n = 0, hi = -1;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsWhiteSpace(c) || c == ',') continue;
            if (c == '0' && hi < 0 && i + 1 < text.Length && (text[i + 1] == 'x' || text[i + 1] == 'X')) { i++; continue; }
            int v = HexValue(c);
            if (v < 0) return -1;
            if (hi < 0) { hi = v; continue; }
            if (n == dest.Length) return -1;
            dest[n++] = (byte)(hi << 4 | v);
            hi = -1;
        }
        return hi >= 0 ? -1 : n;
    }

    static int HexValue(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        >= 'A' and <= 'F' => c - 'A' + 10,
        _ => -1,
    };

    static void WriteBadHex(Utf8JsonWriter w)
    {
        DecodedAccess d = default;
        d.Reg = -1;
        d.Base = -1;
        d.Index = -1;
        WriteFields(w, in d, "copra", "bad_hex", null);
    }

    static void Write(Utf8JsonWriter w, in DecodedAccess d, string decoder, ReadOnlySpan<byte> bytes) =>
        WriteFields(w, in d, decoder, d.Kind == AccessKind.Unsupported ? ErrorName(d.Error) : null, Mnemonic(bytes, d.Mode));

    /// <summary>Iced's mnemonic for the bytes, lower case; null when Iced decodes no valid instruction.</summary>
    static string? Mnemonic(ReadOnlySpan<byte> bytes, CpuMode mode)
    {
        int bitness = mode switch { CpuMode.Bits16 => 16, CpuMode.Bits32 => 32, _ => 64 };
        var dec = Iced.Intel.Decoder.Create(bitness, new Iced.Intel.ByteArrayCodeReader(bytes[..Math.Min(bytes.Length, 15)].ToArray()));
        dec.Decode(out Iced.Intel.Instruction ins);
        return ins.IsInvalid ? null : ins.Mnemonic.ToString().ToLowerInvariant();
    }

    static readonly string[] s_condNames = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"];

    static void WriteFields(Utf8JsonWriter w, in DecodedAccess d, string decoder, string? error, string? mnemonic)
    {
        bool ok = error is null;
        bool mem = ok && d.HasMemory;
        w.WriteStartObject();
        w.WriteNumber("len", d.Length);
        if (mnemonic is not null) w.WriteString("mnemonic", mnemonic); else w.WriteNull("mnemonic");
        w.WriteString("mem_dir", ok ? Hot.Emulate.Executor.MemoryDirection(in d) : "none");
        if (mem) w.WriteNumber("mem_size", d.Size); else w.WriteNull("mem_size");
        w.WriteString("kind", KindName(d.Kind));
        if (ok) w.WriteNumber("size", d.Size); else w.WriteNull("size");
        if (ok && d.Reg >= 0) w.WriteString("reg", d.RegSize == 16 ? $"xmm{d.Reg}" : RegName(d.Reg, d.RegHigh8, d.RegSize)); else w.WriteNull("reg");
        if (ok && d.HasImm) w.WriteNumber("imm", d.Imm); else w.WriteNull("imm");
        w.WriteBoolean("rep", d.Rep);
        if (mem)
        {
            w.WriteString("seg", SegName(d.Segment));
            if (d.Kind is AccessKind.Movs or AccessKind.Cmps) w.WriteString("src_seg", SegName(d.SrcSegment));
            if (d.Base == Gpr.Rip) w.WriteString("base", d.AddressSize == 8 ? "rip" : "eip");
            else if (d.Base >= 0) w.WriteString("base", RegName(d.Base, false, d.AddressSize));
            else w.WriteNull("base");
            if (d.Index >= 0) w.WriteString("index", RegName(d.Index, false, d.AddressSize)); else w.WriteNull("index");
            w.WriteNumber("scale", d.Scale);
            // Why: an absolute form's displacement is an address, so print it unsigned; otherwise it is an offset.
            if (d.Base < 0 && d.Index < 0) w.WriteNumber("disp", (ulong)d.Disp & AddressMask(d.AddressSize));
            else w.WriteNumber("disp", d.Disp);
        }
        else
        {
            w.WriteNull("seg");
            w.WriteNull("base");
            w.WriteNull("index");
            w.WriteNull("scale");
            w.WriteNull("disp");
        }
        if (ok && d.Kind is AccessKind.In or AccessKind.Out or AccessKind.Ins or AccessKind.Outs)
        {
            if (d.PortIsDx) w.WriteString("port", "dx"); else w.WriteNumber("port", d.Port);
        }
        else w.WriteNull("port");
        if (ok && d.Op != AluOp.None) w.WriteString("op", d.Op.ToString().ToLowerInvariant()); else w.WriteNull("op");
        if (ok && d.Kind is AccessKind.Setcc or AccessKind.Cmov) w.WriteString("cond", s_condNames[d.Cond]);
        if (error is not null) w.WriteString("error", error);
        w.WriteString("decoder", decoder);
        w.WriteEndObject();
    }

    static ulong AddressMask(int size) => size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;

    static string KindName(AccessKind k) => k switch
    {
        AccessKind.Read => "read",
        AccessKind.Write => "write",
        AccessKind.WriteImm => "write_imm",
        AccessKind.ReadZx => "read_zx",
        AccessKind.ReadSx => "read_sx",
        AccessKind.Movs => "movs",
        AccessKind.Stos => "stos",
        AccessKind.In => "in",
        AccessKind.Out => "out",
        AccessKind.Ins => "ins",
        AccessKind.Outs => "outs",
        AccessKind.Alu => "alu",
        AccessKind.Xchg => "xchg",
        AccessKind.Bt => "bt",
        AccessKind.Setcc => "setcc",
        AccessKind.Cmov => "cmov",
        AccessKind.Lods => "lods",
        AccessKind.Cmps => "cmps",
        AccessKind.Scas => "scas",
        AccessKind.ReadVec => "read_vec",
        AccessKind.WriteVec => "write_vec",
        AccessKind.Movdir64b => "movdir64b",
        AccessKind.Push => "push",
        AccessKind.Pop => "pop",
        AccessKind.Call => "call",
        AccessKind.Jmp => "jmp",
        AccessKind.SysStore => "sys_store",
        AccessKind.SysLoad => "sys_load",
        AccessKind.SegLoad => "seg_load",
        AccessKind.FarJmp => "jmp_far",
        AccessKind.FarCall => "call_far",
        AccessKind.LoadFarPtr => "load_far_ptr",
        _ => "unsupported",
    };

    static string ErrorName(RefuseReason r) => r switch
    {
        RefuseReason.Truncated => "truncated",
        RefuseReason.TooLong => "too_long",
        RefuseReason.UnknownOpcode => "unknown_opcode",
        RefuseReason.RegisterOperand => "register_operand",
        RefuseReason.InvalidInMode => "invalid_in_mode",
        RefuseReason.LockInvalid => "lock_invalid",
        RefuseReason.UnsupportedOp => "unsupported_op",
        _ => r.ToString().ToLowerInvariant(),
    };

    static readonly string[] s_segNames = ["es", "cs", "ss", "ds", "fs", "gs"];
    static string SegName(byte s) => s < s_segNames.Length ? s_segNames[s] : s.ToString(CultureInfo.InvariantCulture);

    static readonly string[] s_reg64 = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];
    static readonly string[] s_legacy = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"];
    static readonly string[] s_low8 = ["al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil"];
    static readonly string[] s_high8 = ["ah", "ch", "dh", "bh"];

    /// <summary>Intel register name for a register number at a width (r8b/r8w/r8d for the extended ones).</summary>
    public static string RegName(int reg, bool high8, int size)
    {
        if (high8) return s_high8[reg & 3];
        if (reg >= 8)
        {
            return size switch { 1 => s_reg64[reg] + "b", 2 => s_reg64[reg] + "w", 4 => s_reg64[reg] + "d", _ => s_reg64[reg] };
        }
        return size switch { 1 => s_low8[reg], 2 => s_legacy[reg], 4 => "e" + s_legacy[reg], _ => s_reg64[reg] };
    }
}

// Design note — `copra decodebench`: the decoder's work, counted rather than timed.
//
// Time per decoded instruction is worthless on a shared, loaded host (bench/DecodeBench's figures moved ±30 % between
// runs). Instructions are not: this command decodes one of the two fixed sets the BenchmarkDotNet suites decode (the
// 16-instruction MMIO mix of bench/DecodeBench.cs, the 4,112-form Linux corpus sample bench/corpus-sample.hex) --reps
// times with one decoder, untimed, and bench/instructions.sh runs it twice under valgrind (cachegrind, --cache-sim=no)
// with different --reps: the difference of the two totals over the difference of the decodes is the decoder's
// instructions per decoded instruction, start-up and table building cancelled. The loops are the ones the
// BenchmarkDotNet suites time (DecodeLoops, shared), so the counted code is the timed code.
// The copra binary has TieredCompilation off (kernel/Copra.Kernel.csproj), so under the JIT the loop is compiled once,
// fully optimised, and counts are as repeatable as NativeAOT's; instructions.sh counts the NativeAOT build.

using System.CommandLine;
using System.Runtime.CompilerServices;
using Copra.Hot.Decode;
using Iced.Intel;

namespace Copra.Kernel;

/// <summary>The instruction sets the decoder benchmarks and <c>copra decodebench</c> decode.</summary>
public static class DecodeSets
{
    /// <summary>Forms in the embedded Linux corpus sample.</summary>
    public const int CorpusForms = 4112;
    /// <summary>Instructions in the MMIO mix.</summary>
    public const int MixForms = 16;

    /// <summary>The MMIO/port-I/O mix, one instruction a string, as Iced assembles bench/DecodeBench.cs's MmioMix
    /// (a test checks the two agree byte for byte).</summary>
    static readonly string[] s_mix =
    [
        "8B06",               // mov eax, [rsi]
        "8906",               // mov [rsi], eax
        "C70634120000",       // mov dword [rsi], 0x1234
        "0FB606",             // movzx eax, byte [rsi]
        "0FBF06",             // movsx eax, word [rsi]
        "830E01",             // or dword [rsi], 1
        "488B4310",           // mov rax, [rbx+0x10]
        "898C8B00010000",     // mov [rbx+rcx*4+0x100], ecx
        "668906",             // mov [rsi], ax
        "458B4108",           // mov r8d, [r9+8]
        "F3A5",               // rep movsd
        "AB",                 // stosd
        "EE",                 // out dx, al
        "EC",                 // in al, dx
        "8706",               // xchg [rsi], eax
        "0FBA2603",           // bt dword [rsi], 3
    ];

    /// <summary>The MMIO mix as one code buffer and the start of each instruction.</summary>
    public static (byte[] Code, int[] Starts) Mix() => Join(s_mix);

    /// <summary>The Linux corpus sample (embedded from bench/corpus-sample.hex) as one code buffer and the start of each form.</summary>
    public static (byte[] Code, int[] Starts) Corpus()
    {
        using var s = typeof(DecodeSets).Assembly.GetManifestResourceStream("corpus-sample.hex")
            ?? throw new InvalidOperationException("corpus-sample.hex is not embedded in copra");
        using var r = new StreamReader(s);
        var lines = new List<string>();
        while (r.ReadLine() is { } line)
            if (line.Length != 0) lines.Add(line);
        return Join(lines);
    }

    static (byte[] Code, int[] Starts) Join(IReadOnlyList<string> hex)
    {
        var code = new List<byte>();
        var starts = new int[hex.Count];
        for (int i = 0; i < hex.Count; i++)
        {
            starts[i] = code.Count;
            code.AddRange(Convert.FromHexString(hex[i]));
        }
        return (code.ToArray(), starts);
    }
}

/// <summary>
/// The loops the decoder benchmarks time and <c>copra decodebench</c> counts: each decoder over the same instruction
/// starts, summing the lengths so no call can be elided. Inlined into the caller so a benchmark times the loop, not a call.
/// </summary>
public static class DecodeLoops
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Iced(Decoder iced, ByteArrayCodeReader reader, int[] starts)
    {
        int sum = 0;
        for (int i = 0; i < starts.Length; i++)
        {
            reader.Position = starts[i];
            iced.IP = 0x1000UL + (ulong)starts[i];
            iced.Decode(out Instruction insn);
            sum += insn.Length;
        }
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Copra(ReadOnlySpan<byte> code, int[] starts)
    {
        int sum = 0;
        for (int i = 0; i < starts.Length; i++)
        {
            X86Decoder.TryDecode(code[starts[i]..], CpuMode.Bits64, out var d);
            sum += d.Length;
        }
        return sum;
    }
}

/// <summary><c>copra decodebench --set mix|corpus --decoder copra|iced --reps N</c>: decodes a set N times, untimed, and
/// prints what it decoded (for instruction counts; bench/instructions.sh).</summary>
public static class DecodeBenchCommand
{
    public static Command Build(Cli.Io io)
    {
        var cmd = new Command("decodebench", "Decode the MMIO mix or the Linux corpus sample N times with Copra's decoder or Iced's, untimed (for instruction counts: bench/instructions.sh).");
        var set = Cli.Choice("--set", "Instructions to decode", "mix", "mix", "corpus");
        var decoder = Cli.Choice("--decoder", "Decoder to run", "copra", "copra", "iced");
        var reps = Cli.Int("--reps", "Passes over the set", 0, 10_000_000, 1000);
        foreach (var o in new Option[] { set, decoder, reps }) cmd.Options.Add(o);
        cmd.SetAction(pr => Run(io, pr.GetValue(set)!, pr.GetValue(decoder)!, (int)pr.GetValue(reps)));
        return cmd;
    }

    /// <summary>Decodes <paramref name="set"/> <paramref name="reps"/> times; refuses (exit 1) a set whose lengths the two
    /// decoders do not both reproduce, so a count is never of a decoder that refused its input.</summary>
    public static int Run(Cli.Io io, string set, string decoder, int reps)
    {
        var (code, starts) = set == "corpus" ? DecodeSets.Corpus() : DecodeSets.Mix();
        var reader = new ByteArrayCodeReader(code);
        var iced = Decoder.Create(64, reader);
        long expected = 0;
        for (int i = 0; i < starts.Length; i++)
        {
            int len = (i + 1 < starts.Length ? starts[i + 1] : code.Length) - starts[i];
            reader.Position = starts[i];
            iced.Decode(out Instruction ins);
            if (!X86Decoder.TryDecode(code.AsSpan(starts[i]), CpuMode.Bits64, out var d) || d.Length != len || ins.Length != len)
            {
                io.Err.WriteLine($"copra decodebench: {set} form {i} ({Convert.ToHexString(code, starts[i], len)}): Copra {d.Error}/{d.Length}, Iced {ins.Length}, expected {len}");
                return ExitCodes.NotClean;
            }
            expected += len;
        }
        bool copra = decoder == "copra";
        long sum = 0;
        for (int r = 0; r < reps; r++)
            sum += copra ? DecodeLoops.Copra(code, starts) : DecodeLoops.Iced(iced, reader, starts);
        if (sum != expected * reps)
        {
            io.Err.WriteLine($"copra decodebench: {decoder} decoded {sum} bytes, expected {expected * reps}");
            return ExitCodes.NotClean;
        }
        io.Out.WriteLine($"{decoder} {set}: {(long)starts.Length * reps} decodes ({starts.Length} forms x {reps}), {sum} bytes (untimed)");
        return ExitCodes.Ok;
    }
}

using BenchmarkDotNet.Attributes;
using Copra.Hot.Decode;
using Copra.Kernel;
using Iced.Intel;

namespace Copra.Bench;

/// <summary>
/// Copra's decoder against Iced's (the baseline), per instruction, on forms a real kernel uses on memory: a fixed
/// sample (bench/corpus-sample.hex, embedded) of the distinct anchor-emulated memory-operand instructions the Linux
/// corpus check found in a Debian kernel and its modules (every 172nd line of the check's --sample output, sorted, for
/// linux-image-6.1.0-57-amd64 6.1.192-3; regenerate: ./build.sh corpus, then awk 'NR % 172 == 1' artifacts/corpus/sample.hex).
/// Every form is checked to decode to Iced's length in both decoders before either is timed.
/// </summary>
[MemoryDiagnoser]
public class CorpusDecodeBench
{
    byte[] _code = [];
    int[] _starts = [];
    ByteArrayCodeReader _reader = null!;
    Decoder _iced = null!;
    public const int Forms = DecodeSets.CorpusForms;

    /// <summary>The embedded sample, one instruction after another, and where each starts.</summary>
    public static (byte[] Code, int[] Starts) Load() => DecodeSets.Corpus();

    [GlobalSetup]
    public void Setup()
    {
        (_code, _starts) = Load();
        if (_starts.Length != Forms) throw new InvalidOperationException($"the corpus sample has {_starts.Length} forms, expected {Forms}");
        _reader = new ByteArrayCodeReader(_code);
        _iced = Decoder.Create(64, _reader);
        for (int i = 0; i < _starts.Length; i++)
        {
            int len = (i + 1 < _starts.Length ? _starts[i + 1] : _code.Length) - _starts[i];
            _reader.Position = _starts[i];
            _iced.Decode(out Instruction ins);
            if (!X86Decoder.TryDecode(_code.AsSpan(_starts[i]), CpuMode.Bits64, out var d) || d.Length != len || ins.Length != len)
                throw new InvalidOperationException($"sample form {i} ({Convert.ToHexString(_code, _starts[i], len)}): Copra {d.Error}/{d.Length}, Iced {ins.Length}, expected {len}");
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Forms, Description = "Iced Decoder, Linux corpus sample (per insn)")]
    public int Iced()
    {
        return DecodeLoops.Iced(_iced, _reader, _starts);
    }

    [Benchmark(OperationsPerInvoke = Forms, Description = "Copra X86Decoder, Linux corpus sample (per insn)")]
    public int Copra()
    {
        return DecodeLoops.Copra(_code, _starts);
    }
}

using Copra.Bench;
using Copra.Hot.Decode;
using Copra.Kernel;
using Copra.Tests.CommandLine;
using Iced.Intel;
using Xunit;

namespace Copra.Tests.Bench;

/// <summary>
/// <c>copra decodebench</c>, the instruction-count harness of the decoder (bench/instructions.sh): it decodes exactly the
/// sets the BenchmarkDotNet suites time, as often as asked, with the decoder asked for, and refuses bad options and a set
/// either decoder does not size as the other does.
/// </summary>
public class DecodeBenchCommandTests
{
    [Fact]
    public void The_mix_is_the_benchmarks_mix_byte_for_byte()
    {
        var (code, starts) = DecodeSets.Mix();
        var (benchCode, benchStarts) = MmioMix.Build();
        Assert.Equal(benchCode, code);
        Assert.Equal(benchStarts, starts);
        Assert.Equal(DecodeSets.MixForms, starts.Length);
    }

    [Fact]
    public void The_corpus_sample_has_its_forms_and_each_start_is_an_instruction_iced_sizes()
    {
        var (code, starts) = DecodeSets.Corpus();
        Assert.Equal(DecodeSets.CorpusForms, starts.Length);
        Assert.Equal(CorpusDecodeBench.Forms, starts.Length);
        var reader = new ByteArrayCodeReader(code);
        var iced = Decoder.Create(64, reader);
        for (int i = 0; i < starts.Length; i++)
        {
            reader.Position = starts[i];
            iced.Decode(out Instruction ins);
            Assert.Equal((i + 1 < starts.Length ? starts[i + 1] : code.Length) - starts[i], ins.Length);
        }
    }

    [Theory]
    [InlineData("mix", "copra", 3, 48), InlineData("mix", "iced", 3, 48), InlineData("corpus", "copra", 2, 0), InlineData("corpus", "iced", 1, 0)]
    public void It_decodes_the_set_reps_times_with_the_decoder_asked_for(string set, string decoder, int reps, int bytesPerPass)
    {
        var (code, starts) = set == "mix" ? DecodeSets.Mix() : DecodeSets.Corpus();
        if (bytesPerPass == 0) bytesPerPass = code.Length;
        var r = CopraCli.Run("decodebench", "--set", set, "--decoder", decoder, "--reps", reps.ToString());
        Assert.Equal(ExitCodes.Ok, r.Code);
        Assert.Equal("", r.Err);
        Assert.Equal($"{decoder} {set}: {starts.Length * reps} decodes ({starts.Length} forms x {reps}), {bytesPerPass * reps} bytes (untimed)", r.Out.Trim());
    }

    [Fact]
    public void Both_loops_sum_the_same_lengths_as_one_decode_each()
    {
        var (code, starts) = DecodeSets.Mix();
        var reader = new ByteArrayCodeReader(code);
        int expected = 0;
        foreach (int s in starts)
        {
            Assert.True(X86Decoder.TryDecode(code.AsSpan(s), CpuMode.Bits64, out var d));
            expected += d.Length;
        }
        Assert.Equal(expected, DecodeLoops.Copra(code, starts));
        Assert.Equal(expected, DecodeLoops.Iced(Decoder.Create(64, reader), reader, starts));
    }

    [Theory]
    [InlineData("--reps", "-1", "--reps: -1 is out of range"), InlineData("--set", "all", "--set: 'all' is not one of mix, corpus"),
     InlineData("--decoder", "xed", "--decoder: 'xed' is not one of copra, iced")]
    public void Bad_options_are_one_line_and_exit_2(string option, string value, string message)
    {
        var r = CopraCli.Run("decodebench", option, value);
        Assert.Equal(ExitCodes.Usage, r.Code);
        var lines = r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.Contains(message, lines[0]);
        Assert.DoesNotContain("Exception", r.Err);
        Assert.Equal("", r.Out);
    }

    [Fact]
    public void Zero_reps_checks_the_set_and_decodes_nothing()
    {
        var r = CopraCli.Run("decodebench", "--reps", "0");
        Assert.Equal(ExitCodes.Ok, r.Code);
        Assert.Equal("copra mix: 0 decodes (16 forms x 0), 0 bytes (untimed)", r.Out.Trim());
    }
}

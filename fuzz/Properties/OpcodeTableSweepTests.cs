// The targeted strategy for OpcodeTable's static initialiser (which Stryker cannot mutate: its mutants do not compile
// into the mutant switch): every one-byte and 0F opcode under every ModRM, without a prefix and with the operand-size
// and REX.W prefixes, is checked against Iced in the ordinary test run. A changed table entry (a wrong kind, size,
// immediate width or ModRM flag) changes the decode of some opcode and fails here.
using Copra.Fuzz.Targets;
using Copra.Hot.Decode;
using Xunit;

namespace Copra.Fuzz.Properties;

public class OpcodeTableSweepTests
{
    [Theory]
    [InlineData(CpuMode.Bits16)]
    [InlineData(CpuMode.Bits32)]
    [InlineData(CpuMode.Bits64)]
    public void Every_opcode_and_ModRM_decodes_as_Iced_says(CpuMode mode)
    {
        var t = new DecoderSweepTarget(mode);
        var failures = new List<string>();
        // Prefix sets 0 (none), 1 (0x66) and 8 (0x48, REX.W in 64-bit mode, DEC/INC outside it).
        foreach (int set in new[] { 0, 1, 8 })
        {
            for (long i = (long)set * DecoderSweepTarget.PerPrefix; i < (set + 1L) * DecoderSweepTarget.PerPrefix && failures.Count < 5; i++)
                if (t.SafeCheck(t.At(i)) is { } m) failures.Add($"seed {i}: {t.Show(t.At(i))}\n  {m}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}

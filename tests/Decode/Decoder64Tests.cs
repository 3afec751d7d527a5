using Copra.Hot.Decode;
using Xunit;

namespace Copra.Tests.Decode;

/// <summary>Vectors/Decoder/Decoder64.txt against <see cref="X86Decoder"/> in 64-bit mode.</summary>
public class Decoder64Tests
{
    const string File = "Decoder64.txt";

    public static TheoryData<string, int> Vectors => DecoderVectors.Theory(File);

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Decodes(string file, int line) => DecoderVectors.Check(DecoderVectors.Get(file, line), CpuMode.Bits64);
}

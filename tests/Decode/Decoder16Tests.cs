using Copra.Hot.Decode;
using Xunit;

namespace Copra.Tests.Decode;

/// <summary>Vectors/Decoder/Decoder16.txt against <see cref="X86Decoder"/> in 16-bit mode.</summary>
public class Decoder16Tests
{
    const string File = "Decoder16.txt";

    public static TheoryData<string, int> Vectors => DecoderVectors.Theory(File);

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Decodes(string file, int line) => DecoderVectors.Check(DecoderVectors.Get(file, line), CpuMode.Bits16);
}

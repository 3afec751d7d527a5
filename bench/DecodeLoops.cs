using System.Runtime.CompilerServices;
using Copra.Hot.Decode;
using Iced.Intel;

namespace Copra.Bench;

/// <summary>
/// The timed loops DecodeBench and CorpusDecodeBench share: each decoder over the same instruction starts, summing the
/// lengths so neither call can be elided. Inlined into the benchmark so the suites time the loop, not a call.
/// </summary>
static class DecodeLoops
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

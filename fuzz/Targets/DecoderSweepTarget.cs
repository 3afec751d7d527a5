// Exhaustive sweep of the decoder's neighbourhood: every (prefix, opcode, ModRM) for the one-byte and 0F maps, with
// a fixed tail of SIB/displacement/immediate bytes, checked by the same differential as DecoderTarget. The seed is
// the index into the sweep, so a failure replays like any other case.
using Copra.Fuzz.Core;
using Copra.Hot.Decode;

namespace Copra.Fuzz.Targets;

public sealed class DecoderSweepTarget(CpuMode mode) : FuzzTarget<DecoderCase>
{
    static readonly byte[][] PrefixSets = [[], [0x66], [0x67], [0xF0], [0xF3], [0xF2], [0x2E], [0x64], [0x48], [0x41], [0x66, 0x67], [0x4F, 0x66]];
    static readonly byte[] Tail = [0x24, 0x80, 0xFF, 0x7F, 0x01, 0x00, 0x80, 0xFE, 0xFF, 0xFF, 0x7F];
    public const int PerPrefix = 2 * 256 * 256;
    public static int Count => PrefixSets.Length * PerPrefix;
    readonly DecoderTarget _check = new(mode);

    public override string Name => "decoder-sweep";
    public override string Description => $"X86Decoder vs Iced, {Modes.Bits(mode)}-bit, every prefix x opcode x ModRM";

    public override DecoderCase Generate(Rng rng) => throw new NotSupportedException("the sweep is indexed, not random");

    public DecoderCase At(long i)
    {
        int p = (int)(i / PerPrefix) % PrefixSets.Length, rest = (int)(i % PerPrefix);
        bool twoByte = rest >= 65536;
        int op = (rest >> 8) & 0xFF, modrm = rest & 0xFF;
        var b = new List<byte>(PrefixSets[p]);
        if (twoByte) b.Add(0x0F);
        b.Add((byte)op);
        b.Add((byte)modrm);
        b.AddRange(Tail);
        return new DecoderCase(mode, [.. b.Take(15)]);
    }

    public override DecoderCase Generate(ulong seed) => At((long)(seed % (ulong)Count));
    public override long? SweepCount => Count;
    public override string? Check(DecoderCase c) => _check.Check(c);
    public override IEnumerable<DecoderCase> Shrink(DecoderCase c) => _check.Shrink(c);
    public override string ReplayArgs => $" --mode {Modes.Bits(mode)}";
    public override string Show(DecoderCase c) => _check.Show(c);
    public override int SizeOf(DecoderCase c) => c.Bytes.Length;
}

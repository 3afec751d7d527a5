using System.Reflection;
using Copra.Hot.Decode;
using Xunit;

namespace Copra.Tests.Decode;

/// <summary>
/// X86Decoder.TryDecode's form-row path (a precomputed DecodedAccess per form, mode and operand size, then the operands
/// the bytes name) against the full decoder alone (TryDecodeFull): every field equal for every input, accepted or
/// refused. The inputs reach every opcode of the one-byte and 0F maps (and 0F 38), with random legacy prefixes, REX,
/// ModRM, SIB, displacements and immediates, cut at random lengths, in every mode; then every vector file and the
/// Linux corpus sample.
/// </summary>
public class DecoderFormRowTests
{
    static readonly FieldInfo[] Fields = typeof(DecodedAccess).GetFields(BindingFlags.Public | BindingFlags.Instance);
    static readonly byte[] Prefixes = [0x66, 0x67, 0xF2, 0xF3, 0xF0, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65];

    static string Diff(in DecodedAccess a, in DecodedAccess b)
    {
        object x = a, y = b;
        var diffs = Fields.Where(f => !Equals(f.GetValue(x), f.GetValue(y))).Select(f => $"{f.Name}: rows {f.GetValue(x)}, full {f.GetValue(y)}");
        return string.Join("; ", diffs);
    }

    static void AssertSame(byte[] bytes, CpuMode mode)
    {
        bool fast = X86Decoder.TryDecode(bytes, mode, out DecodedAccess d);
        bool full = X86Decoder.TryDecodeFull(bytes, mode, out DecodedAccess f);
        string diff = Diff(d, f);
        Assert.True(fast == full && diff.Length == 0, $"{mode} {Convert.ToHexString(bytes)}: rows {fast}, full {full}; {diff}");
        // The row path on its own: where it accepts, exactly the full decoder's access (TryDecode above would hide a
        // wrong row behind a fallback only if the row path refused, so this checks the rows themselves).
        if (X86Decoder.TryDecodeRows(bytes, mode, out DecodedAccess r))
        {
            string rowDiff = Diff(r, f);
            Assert.True(full && rowDiff.Length == 0, $"{mode} {Convert.ToHexString(bytes)}: the rows accept, full {full}; {rowDiff}");
        }
    }

    static byte[] RandomInstruction(Random rng)
    {
        var b = new List<byte>();
        int prefixes = rng.Next(5) == 0 ? rng.Next(1, 5) : 0;
        for (int i = 0; i < prefixes; i++) b.Add(Prefixes[rng.Next(Prefixes.Length)]);
        if (rng.Next(2) == 0) b.Add((byte)(0x40 + rng.Next(16)));
        int map = rng.Next(3);
        if (map > 0) b.Add(0x0F);
        if (map == 2 && rng.Next(4) == 0) b.Add(0x38);
        b.Add((byte)rng.Next(256));
        // ModRM: mostly memory forms, every mod and rm; then SIB, displacement and immediate bytes at random.
        b.Add((byte)(rng.Next(8) == 0 ? 0xC0 | rng.Next(64) : rng.Next(0xC0)));
        int tail = rng.Next(14);
        for (int i = 0; i < tail; i++) b.Add((byte)rng.Next(256));
        return [.. b];
    }

    [Theory]
    [InlineData(CpuMode.Bits16, 11)]
    [InlineData(CpuMode.Bits32, 12)]
    [InlineData(CpuMode.Bits64, 13)]
    public void RowsAndFullDecoderAgreeOnRandomInstructions(CpuMode mode, int seed)
    {
        var rng = new Random(seed);
        int accepted = 0;
        for (int n = 0; n < 60_000; n++)
        {
            byte[] bytes = RandomInstruction(rng);
            AssertSame(bytes, mode);
            if (X86Decoder.TryDecodeFull(bytes, mode, out _)) accepted++;
        }
        Assert.True(accepted > 5_000, $"only {accepted} accepted: the generator no longer exercises the decoder");
    }

    [Fact]
    public void RowsAndFullDecoderAgreeOnEveryVectorAndTheCorpusSample()
    {
        foreach (var (file, mode) in new[] { ("Decoder16.txt", CpuMode.Bits16), ("Decoder32.txt", CpuMode.Bits32), ("Decoder64.txt", CpuMode.Bits64) })
            foreach (var v in DecoderVectors.Load(file))
                foreach (CpuMode m in new[] { mode, CpuMode.Bits16, CpuMode.Bits32, CpuMode.Bits64 })
                    AssertSame(v.Bytes, m);
        var (code, starts) = Copra.Kernel.DecodeSets.Corpus();
        for (int i = 0; i < starts.Length; i++)
        {
            int end = i + 1 < starts.Length ? starts[i + 1] : code.Length;
            byte[] form = code[starts[i]..end];
            // Each form whole, with the following bytes, and cut one byte short (Truncated through the full decoder).
            foreach (CpuMode m in new[] { CpuMode.Bits16, CpuMode.Bits32, CpuMode.Bits64 })
            {
                AssertSame(form, m);
                AssertSame(code[starts[i]..Math.Min(code.Length, starts[i] + 15)], m);
                AssertSame(form[..^1], m);
            }
        }
    }

    [Fact]
    public void TheRowsDecodeEveryFormOfTheMixAndTheCorpusSampleThemselves()
    {
        // What the rows are for: the common forms never reach the full decoder (a row that stopped existing, or a check
        // that sent every instruction to Decode, would still decode correctly and only show in the instruction counts).
        foreach (var (code, starts) in new[] { Copra.Kernel.DecodeSets.Mix(), Copra.Kernel.DecodeSets.Corpus() })
            for (int i = 0; i < starts.Length; i++)
            {
                int end = i + 1 < starts.Length ? starts[i + 1] : code.Length;
                byte[] form = code[starts[i]..end];
                Assert.True(X86Decoder.TryDecodeRows(form, CpuMode.Bits64, out DecodedAccess d), $"{Convert.ToHexString(form)}: not decoded by the rows");
                Assert.Equal(form.Length, d.Length);
            }
    }

    [Fact]
    public void TheRowsLeaveTheirGapsToTheFullDecoder()
    {
        // Forms and cases the rows do not hold: 16-bit addressing, SSE (mandatory prefix), 0F 38, moffs, port imm8, x87,
        // system forms, MOVNTI, BSF with F3, LOCK on a form that refuses it, mod = 3, bytes that end early.
        (string Hex, CpuMode Mode)[] gaps =
        [
            ("8B07", CpuMode.Bits16), ("0F1006", CpuMode.Bits64), ("660F38F806", CpuMode.Bits64), ("A100000000", CpuMode.Bits32),
            ("E460", CpuMode.Bits64), ("D93E", CpuMode.Bits64), ("0F0116", CpuMode.Bits64), ("0FC306", CpuMode.Bits64),
            ("F30FBC06", CpuMode.Bits64), ("F08B06", CpuMode.Bits64), ("8BC0", CpuMode.Bits64), ("8B46", CpuMode.Bits64),
        ];
        foreach (var (hex, mode) in gaps)
        {
            byte[] bytes = Convert.FromHexString(hex);
            Assert.False(X86Decoder.TryDecodeRows(bytes, mode, out _), $"{mode} {hex}: the rows decoded it");
            AssertSame(bytes, mode);
        }
    }

    [Fact]
    public void EveryPrefixOrderOnTheMixAgrees()
    {
        // Every pair of legacy prefixes (and LOCK, REP, REX around them) on the forms the rows cover most.
        byte[][] forms = [[0x8B, 0x06], [0x89, 0x44, 0x24, 0x08], [0xC7, 0x06, 0x34, 0x12, 0, 0], [0x83, 0x0E, 0x01], [0x0F, 0xB6, 0x06],
            [0x87, 0x06], [0xA5], [0xAB], [0xA7], [0xAE], [0x0F, 0xBA, 0x2E, 0x03], [0x0F, 0xB1, 0x0E], [0x0F, 0xC7, 0x0E], [0x8F, 0x06],
            [0xFF, 0x36], [0xFF, 0x16], [0xD3, 0x26], [0xD1, 0x26], [0x0F, 0x95, 0x06], [0x63, 0x06], [0x0F, 0xA5, 0x06], [0xEC], [0x6D]];
        byte[] extra = [.. Prefixes, 0x40, 0x44, 0x48, 0x4C, 0x41, 0x42];
        foreach (byte[] f in forms)
            foreach (byte p in extra)
                foreach (byte q in extra)
                    foreach (CpuMode m in new[] { CpuMode.Bits16, CpuMode.Bits32, CpuMode.Bits64 })
                    {
                        AssertSame([p, q, .. f], m);
                        AssertSame([p, .. f], m);
                    }
    }

    [Fact]
    public void AValueThatIsNotAModeDecodesAsTheFullDecoderDoes()
    {
        foreach (byte m in new byte[] { 3, 7, 130, 255 })
        {
            AssertSame([0x8B, 0x06], (CpuMode)m);
            AssertSame([0x48, 0x89, 0x44, 0x24, 0x08], (CpuMode)m);
        }
    }
}

using Copra.Hot.Decode;
using Iced.Intel;
using Xunit;
using IcedDecoder = Iced.Intel.Decoder;

namespace Copra.Tests.Decode;

/// <summary>
/// Every decoder vector, checked against Iced as the oracle: for an accepted vector Iced must agree on the length and
/// on the memory operand (base, index, scale, displacement, segment), and the Iced-backed fallback must produce the
/// identical access. For a refusal, Iced must agree that the bytes are not an emulated form (or, for vectors marked
/// iced=accept, that the fallback takes them).
/// </summary>
public class DecoderDifferentialTests
{
    public static TheoryData<string, int> Vectors
    {
        get
        {
            var data = new TheoryData<string, int>();
            foreach (string f in new[] { "Decoder16.txt", "Decoder32.txt", "Decoder64.txt" })
                foreach (var v in DecoderVectors.Load(f)) data.Add(f, v.Line);
            return data;
        }
    }

    static CpuMode ModeOf(string file) => file switch
    {
        "Decoder16.txt" => CpuMode.Bits16,
        "Decoder32.txt" => CpuMode.Bits32,
        _ => CpuMode.Bits64,
    };

    [Theory]
    [MemberData(nameof(Vectors))]
    public void IcedAgrees(string file, int line)
    {
        var v = DecoderVectors.Get(file, line);
        CpuMode mode = ModeOf(file);
        bool ours = X86Decoder.TryDecode(v.Bytes, mode, out DecodedAccess d);
        bool fallback = IcedFallback.TryDecode(v.Bytes, mode, out DecodedAccess f);
        int bitness = mode switch { CpuMode.Bits16 => 16, CpuMode.Bits32 => 32, _ => 64 };
        byte[] fifteen = v.Bytes.Length > 15 ? v.Bytes[..15] : v.Bytes;
        var decoder = IcedDecoder.Create(bitness, new ByteArrayCodeReader(fifteen));
        decoder.Decode(out Instruction ins);

        if (!ours)
        {
            bool expectAccept = v.Expected.TryGetValue("iced", out string? iced) && iced == "accept";
            Assert.True(expectAccept == fallback, $"{v}: fallback {(fallback ? "accepted" : "refused")}");
            switch (d.Error)
            {
                case RefuseReason.Truncated:
                    Assert.True(ins.IsInvalid && decoder.LastError == DecoderError.NoMoreBytes, $"{v}: Iced decoded {ins}");
                    break;
                case RefuseReason.TooLong:
                case RefuseReason.LockInvalid:
                    Assert.True(ins.IsInvalid, $"{v}: Iced decoded {ins}");
                    break;
                case RefuseReason.RegisterOperand:
                    Assert.False(ins.IsInvalid, $"{v}: Iced says invalid");
                    Assert.DoesNotContain(OpKind.Memory, Enumerable.Range(0, ins.OpCount).Select(ins.GetOpKind));
                    break;
            }
            return;
        }

        Assert.False(ins.IsInvalid, $"{v}: Iced says invalid ({decoder.LastError})");
        Assert.Equal(ins.Length, d.Length);
        Assert.True(fallback, $"{v}: fallback refused with {f.Error}");
        Assert.Equal(Canonical(d), Canonical(f));

        // The memory operand straight from Iced, independent of the fallback's mapping.
        int memOp = Enumerable.Range(0, ins.OpCount).FirstOrDefault(k => ins.GetOpKind(k) == OpKind.Memory, -1);
        if (memOp < 0) return;
        ulong mask = d.AddressSize == 8 ? ulong.MaxValue : (1UL << (d.AddressSize * 8)) - 1;
        if (ins.IsIPRelativeMemoryOperand)
        {
            Assert.Equal(Gpr.Rip, d.Base);
            Assert.Equal(ins.IPRelativeMemoryAddress & mask, ((ulong)d.Disp + ins.NextIP) & mask);
        }
        else
        {
            Assert.Equal(ins.MemoryBase == Register.None ? -1 : ins.MemoryBase.GetFullRegister() - Register.RAX, d.Base);
            Assert.Equal(ins.MemoryIndex == Register.None ? -1 : ins.MemoryIndex.GetFullRegister() - Register.RAX, d.Index);
            if (d.Index >= 0) Assert.Equal(ins.MemoryIndexScale, d.Scale);
            Assert.Equal(ins.MemoryDisplacement64 & mask, (ulong)d.Disp & mask);
        }
        Assert.Equal(ins.MemorySize.GetSize(), d.OperandBytes);
        // MOVDIR64B: Iced's memory operand is the source (SrcSegment); the destination is ES:[reg].
        if (d.Kind == AccessKind.Movdir64b) Assert.Equal(Seg.ES, d.Segment);
        int icedSeg = ins.MemorySegment - Register.ES;
        byte seg = d.Kind == AccessKind.Movdir64b ? d.SrcSegment : d.Segment;
        // Iced names 64-bit mode's null ES/CS/SS/DS prefixes; they all have base 0, as does the default.
        if (mode == CpuMode.Bits64 && icedSeg < Seg.FS) Assert.True(seg < Seg.FS, $"{v}: segment {seg}");
        else Assert.Equal(icedSeg, (int)seg);
    }

    /// <summary>Every field that means something for the kind, as text, so a mismatch names the field.</summary>
    static string Canonical(in DecodedAccess d)
    {
        bool mem = d.HasMemory;
        return $"len={d.Length} kind={d.Kind} size={d.Size} reg={d.Reg} high={d.RegHigh8} rsize={d.RegSize} imm={(d.HasImm ? d.Imm.ToString(System.Globalization.CultureInfo.InvariantCulture) : "-")} rep={d.Rep} "
            + (mem ? $"seg={d.Segment} src={d.SrcSegment} base={d.Base} index={d.Index} scale={d.Scale} disp={d.Disp} asz={d.AddressSize} " : "")
            + $"dx={d.PortIsDx} port={d.Port} op={d.Op} memdest={d.MemIsDest} mode={d.Mode} lock={d.Lock} align={d.Align}";
    }
}

using BenchmarkDotNet.Attributes;
using Copra.Hot.Decode;
using Copra.Kernel;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Bench;

/// <summary>
/// The MMIO/port-I/O instruction mix the exit path decodes, assembled once with Iced. Shared by the
/// decode suite and the allocation test.
/// </summary>
public static class MmioMix
{
    /// <summary>The instructions, one after another, and where each starts.</summary>
    public static (byte[] Code, int[] Starts) Build()
    {
        var a = new Assembler(64);
        a.mov(eax, __dword_ptr[rsi]);                    // read
        a.mov(__dword_ptr[rsi], eax);                    // write
        a.mov(__dword_ptr[rsi], 0x1234);                 // write imm
        a.movzx(eax, __byte_ptr[rsi]);                   // read zx
        a.movsx(eax, __word_ptr[rsi]);                   // read sx
        a.or(__dword_ptr[rsi], 1);                       // ALU
        a.mov(rax, __qword_ptr[rbx + 0x10]);             // REX.W + disp8
        a.mov(__dword_ptr[rbx + rcx * 4 + 0x100], ecx);  // SIB + disp32
        a.mov(__word_ptr[rsi], ax);                      // 66 prefix
        a.mov(r8d, __dword_ptr[r9 + 8]);                 // REX.RB
        a.rep.movsd();                                   // string with REP
        a.stosd();
        a.@out(dx, al);
        a.@in(al, dx);
        a.xchg(__dword_ptr[rsi], eax);
        a.bt(__dword_ptr[rsi], 3);
        var w = new ListWriter();
        var r = a.Assemble(w, 0x1000, BlockEncoderOptions.ReturnNewInstructionOffsets);
        // Re-decode to find instruction boundaries (the writer only has bytes).
        var code = w.Bytes.ToArray();
        var starts = new List<int>();
        var dec = Decoder.Create(64, new ByteArrayCodeReader(code));
        dec.IP = 0x1000;
        while (dec.IP < 0x1000UL + (ulong)code.Length) { starts.Add((int)(dec.IP - 0x1000)); dec.Decode(out _); }
        _ = r;
        return (code, starts.ToArray());
    }

    /// <summary>The bytes of `mov eax, [rsi]`, the exit-path suite's MMIO read.</summary>
    public static byte[] MovLoad() { var (c, s) = Build(); return c[s[0]..s[1]]; }

    sealed class ListWriter : CodeWriter
    {
        public readonly List<byte> Bytes = [];
        public override void WriteByte(byte value) => Bytes.Add(value);
    }
}

/// <summary>
/// Copra's table-driven decoder against Iced's full decoder (the baseline) on the same MMIO mix,
/// per instruction. The single-instruction pair is the yardstick the exit-path target is stated in.
/// </summary>
[MemoryDiagnoser]
public class DecodeBench
{
    byte[] _code = [];
    int[] _starts = [];
    int[] _ends = [];
    byte[] _movLoad = [];
    ByteArrayCodeReader _reader = null!;
    Decoder _iced = null!;
    ByteArrayCodeReader _singleReader = null!;
    Decoder _icedSingle = null!;
    const int MixOps = 16;

    [GlobalSetup]
    public void Setup()
    {
        (_code, _starts) = MmioMix.Build();
        if (_starts.Length != MixOps) throw new InvalidOperationException($"mix has {_starts.Length} instructions, expected {MixOps}");
        _ends = [.. _starts.Skip(1), _code.Length];
        _reader = new ByteArrayCodeReader(_code);
        _iced = Decoder.Create(64, _reader);
        _movLoad = MmioMix.MovLoad();
        _singleReader = new ByteArrayCodeReader(_movLoad);
        _icedSingle = Decoder.Create(64, _singleReader);
        // Both decoders must agree on every length before either is timed.
        for (int i = 0; i < _starts.Length; i++)
        {
            if (!X86Decoder.TryDecode(_code.AsSpan(_starts[i]), CpuMode.Bits64, out var d) || d.Length != _ends[i] - _starts[i])
                throw new InvalidOperationException($"Copra's decoder refused or mis-sized mix entry {i}: {d.Error}");
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = MixOps, Description = "Iced Decoder, MMIO mix (per insn)")]
    public int IcedMix()
    {
        return DecodeLoops.Iced(_iced, _reader, _starts);
    }

    [Benchmark(OperationsPerInvoke = MixOps, Description = "Copra X86Decoder, MMIO mix (per insn)")]
    public int CopraMix()
    {
        return DecodeLoops.Copra(_code, _starts);
    }

    [Benchmark(Description = "Iced Decoder, mov eax,[rsi]")]
    public int IcedMovLoad()
    {
        _singleReader.Position = 0;
        _icedSingle.IP = 0x1000;
        _icedSingle.Decode(out Instruction insn);
        return insn.Length;
    }

    [Benchmark(Description = "Copra X86Decoder, mov eax,[rsi]")]
    public int CopraMovLoad()
    {
        X86Decoder.TryDecode(_movLoad, CpuMode.Bits64, out var d);
        return d.Length;
    }
}

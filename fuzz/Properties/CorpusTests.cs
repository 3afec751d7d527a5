using System.Buffers.Binary;
using Copra.Fuzz.Corpus;
using Copra.Fuzz.Targets;
using Copra.Hot.Decode;
using Copra.Kernel;
using Xunit;

namespace Copra.Fuzz.Properties;

/// <summary>The corpus check on a hand-built ELF file: what it counts, that a refused anchor form fails it, bad input.</summary>
public class CorpusTests
{
    /// <summary>A minimal ELF64 x86-64 relocatable file: .text (ALLOC|EXEC) holding <paramref name="code"/> at 0x1000, a
    /// non-executable .data holding the same bytes (must not be swept), and .shstrtab.</summary>
    static byte[] Elf(byte[] code)
    {
        byte[] names = "\0.text\0.data\0.shstrtab\0"u8.ToArray();
        int textOff = 64, dataOff = textOff + code.Length, strOff = dataOff + code.Length, shOff = (strOff + names.Length + 7) & ~7;
        var f = new byte[shOff + 4 * 64];
        "\x7F"u8.CopyTo(f); "ELF"u8.CopyTo(f.AsSpan(1));
        f[4] = 2; f[5] = 1; f[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(16), 1);
        BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(18), 62);
        BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan(20), 1);
        BinaryPrimitives.WriteUInt64LittleEndian(f.AsSpan(40), (ulong)shOff);
        BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(52), 64);
        BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(58), 64);
        BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(60), 4);
        BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(62), 3);
        code.CopyTo(f, textOff); code.CopyTo(f, dataOff); names.CopyTo(f, strOff);
        void Sh(int i, uint name, uint type, ulong flags, ulong addr, int off, int size)
        {
            var h = f.AsSpan(shOff + i * 64);
            BinaryPrimitives.WriteUInt32LittleEndian(h, name);
            BinaryPrimitives.WriteUInt32LittleEndian(h[4..], type);
            BinaryPrimitives.WriteUInt64LittleEndian(h[8..], flags);
            BinaryPrimitives.WriteUInt64LittleEndian(h[16..], addr);
            BinaryPrimitives.WriteUInt64LittleEndian(h[24..], (ulong)off);
            BinaryPrimitives.WriteUInt64LittleEndian(h[32..], (ulong)size);
        }
        Sh(1, 1, 1, 0x6, 0x1000, textOff, code.Length);
        Sh(2, 7, 1, 0x3, 0x2000, dataOff, code.Length);
        Sh(3, 13, 3, 0, 0, strOff, names.Length);
        return f;
    }

    // mov eax,[rbx] | lock inc dword [rdi] | add eax,ebx (register: out of scope) | in al,dx | lea rax,[rbx] | 0x06 (invalid in 64-bit) | bts [rax],rcx
    static readonly byte[] Code = [0x8B, 0x03, 0xF0, 0xFF, 0x07, 0x01, 0xD8, 0xEC, 0x48, 0x8D, 0x03, 0x06, 0x48, 0x0F, 0xAB, 0x08];

    static (int Code, string Out, string Err) Run(byte[] file, DecodeFn? decode = null, string name = "vmlinux")
    {
        string dir = Path.Combine(Path.GetTempPath(), "copra-corpus-test-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllBytes(Path.Combine(dir, name), file);
            var o = new StringWriter();
            var e = new StringWriter();
            int rc = KernelCorpus.Run(new Cli.Io(o, e), dir, null, decode);
            return (rc, o.ToString(), e.ToString());
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    static string Row(string output, string family) => output.Split('\n').Single(l => l.StartsWith(family + " ", StringComparison.Ordinal));

    [Fact]
    public void Counts_each_anchor_form_of_the_executable_section_once()
    {
        var (rc, o, e) = Run(Elf(Code));
        Assert.Equal(ExitCodes.Ok, rc);
        Assert.Equal("", e);
        Assert.Contains("1 ELF files, 16 bytes of executable sections, 6 instructions", o);   // .data not swept; 0x06 skipped
        Assert.Matches(@"MOV, MOVZX, MOVSX, MOVSXD\s+x86emu kvm linux coconut\s+1\s+1\s+0\s+0", Row(o, "MOV, MOVZX, MOVSX, MOVSXD"));
        Assert.Matches(@"\s1\s+1\s+0\s+0\s*$", Row(o, "INC, DEC, NEG, NOT"));
        Assert.Matches(@"\s1\s+1\s+0\s+0\s*$", Row(o, "IN, OUT, INS, OUTS"));
        Assert.Matches(@"\s1\s+1\s+0\s+0\s*$", Row(o, "BT, BTS, BTR, BTC"));
        Assert.Matches(@"total\s+4\s+4\s+0\s+0", Row(o, "total"));
        Assert.DoesNotContain("ADD, OR", o);   // the register-form ADD cannot exit
    }

    [Fact]
    public void A_refused_anchor_form_fails_the_check_with_its_bytes_and_reason()
    {
        static bool NoInc(ReadOnlySpan<byte> b, CpuMode m, out DecodedAccess d)
        {
            bool ok = X86Decoder.TryDecode(b, m, out d);
            if (ok && d.Op == AluOp.Inc) { d = default; d.Error = RefuseReason.UnsupportedOp; return false; }
            return ok;
        }
        var (rc, o, _) = Run(Elf(Code), NoInc);
        Assert.Equal(ExitCodes.NotClean, rc);
        Assert.Matches(@"\s1\s+0\s+1\s+0\s*$", Row(o, "INC, DEC, NEG, NOT"));
        Assert.Contains("Inc_rm32 (UnsupportedOp): f0ff07", o);
    }

    [Fact]
    public void A_decode_that_differs_from_iced_fails_the_check()
    {
        static bool WrongBase(ReadOnlySpan<byte> b, CpuMode m, out DecodedAccess d)
        {
            bool ok = X86Decoder.TryDecode(b, m, out d);
            if (ok && d.Kind == AccessKind.Read) d.Base = Gpr.Rcx;
            return ok;
        }
        var (rc, o, _) = Run(Elf(Code), WrongBase);
        Assert.Equal(ExitCodes.NotClean, rc);
        Assert.Matches(@"\s1\s+1\s+0\s+1\s*$", Row(o, "MOV, MOVZX, MOVSX, MOVSXD"));
        Assert.Contains("Mov_r32_rm32", o);
    }

    [Fact]
    public void Bad_input_is_one_line_and_exit_code_2()
    {
        var (rc, _, e) = Run([0x7F, (byte)'E', (byte)'L', (byte)'F', 1, 1]);
        Assert.Equal(ExitCodes.Usage, rc);
        Assert.Single(e.Trim().Split('\n'));
        Assert.Contains("not an ELF file", e);
        var (rc2, _, e2) = Run(Elf(Code), name: "notes.txt");
        Assert.Equal(ExitCodes.Usage, rc2);
        Assert.Contains("no vmlinux or *.ko", e2);
        var o = new StringWriter();
        var err = new StringWriter();
        Assert.Equal(ExitCodes.Usage, KernelCorpus.Run(new Cli.Io(o, err), "/nonexistent/copra", null));
        Assert.Contains("does not exist", err.ToString());
    }
}

// The form-row path's boundaries (X86Decoder.TryRows, reached alone through TryDecodeRows): where the bytes end, the
// 15-byte limit, a 2-byte immediate, and the LOCK/REP tail. Written for the survivors of the row path's Stryker run of
// 2026-11-30 (docs/testing.md, "The form-row path's survivors"); each test names its rule and says which wrong line
// it catches.
using System.Runtime.InteropServices;
using Copra.Hot.Decode;
using Xunit;

namespace Copra.Tests.Decode;

public partial class DecoderFormRowBoundaryTests
{
    static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    /// <summary>Forms the rows hold, each ending in a different part: the opcode (string, IN/OUT DX), the 0F opcode, ModRM,
    /// SIB, a displacement (8 and 32 bits, RIP-relative, SIB without a base) and an immediate (8, 16 and 32 bits), with and
    /// without prefixes. 64-bit mode unless the mode says otherwise.</summary>
    public static readonly (string Hex, CpuMode Mode)[] Forms =
    [
        ("A5", CpuMode.Bits64), ("F3 AB", CpuMode.Bits64), ("EC", CpuMode.Bits32), ("66 6D", CpuMode.Bits64), ("F2 A7", CpuMode.Bits64),
        ("8B 06", CpuMode.Bits64), ("0F B6 06", CpuMode.Bits64), ("41 0F B7 00", CpuMode.Bits64), ("8B 04 24", CpuMode.Bits64),
        ("48 8B 04 25 78 56 34 12", CpuMode.Bits64), ("8B 46 08", CpuMode.Bits64), ("89 86 78 56 34 12", CpuMode.Bits32),
        ("8B 05 78 56 34 12", CpuMode.Bits64), ("8B 05 78 56 34 12", CpuMode.Bits32), ("0F B7 44 24 08", CpuMode.Bits64),
        ("83 06 01", CpuMode.Bits64), ("C6 44 24 08 7F", CpuMode.Bits64), ("C7 06 78 56 34 12", CpuMode.Bits64),
        ("66 C7 06 34 12", CpuMode.Bits64), ("66 81 44 24 08 FE FF", CpuMode.Bits64), ("C7 06 34 12", CpuMode.Bits16 /* 67 below */),
        ("F0 01 06", CpuMode.Bits64), ("64 48 C7 84 24 11 22 33 44 55 66 77 88", CpuMode.Bits64),
    ];

    static byte[] Bytes((string Hex, CpuMode Mode) f) => f.Mode == CpuMode.Bits16 ? [0x67, .. Hex(f.Hex)] : Hex(f.Hex);

    [Fact]
    public void Every_form_is_decoded_by_the_rows_whole_and_by_nobody_cut_short_even_when_the_bytes_after_the_cut_complete_it()
    {
        // Rule: an instruction is decoded from the bytes given, never from what lies after them; cut short, it is
        // Truncated (fewer than 15 bytes were supplied). The cut span is sliced from a buffer holding the whole
        // instruction twice, so a length check that let a read through would find the right byte there and decode.
        // Catches the row path's end checks after ModRM turned around or made one off: e.g. the SIB's no-base disp32
        // check `(end += 4) > length` made `<` (a cut one accepted) and the disp32-alone check `end > length` made `>=`
        // (the exact fit refused; both applied by hand). The checks before the 0F opcode and ModRM made one off read a
        // byte too far but still refuse: Neither_path_reads_a_byte_past_its_input catches those.
        foreach (var f in Forms)
        {
            byte[] whole = Bytes(f);
            byte[] buffer = [.. whole, .. whole];
            Assert.True(X86Decoder.TryDecodeRows(whole, f.Mode, out DecodedAccess r), $"{f.Mode} {f.Hex}: not decoded by the rows");
            Assert.Equal(whole.Length, r.Length);
            Assert.True(X86Decoder.TryDecodeFull(whole, f.Mode, out DecodedAccess full));
            Assert.Equal(full, r);
            for (int k = 0; k < whole.Length; k++)
            {
                ReadOnlySpan<byte> cut = buffer.AsSpan(0, k);
                Assert.False(X86Decoder.TryDecodeRows(cut, f.Mode, out DecodedAccess rc), $"{f.Mode} {f.Hex} cut to {k}: the rows decoded length {rc.Length}");
                Assert.False(X86Decoder.TryDecode(cut, f.Mode, out DecodedAccess dc), $"{f.Mode} {f.Hex} cut to {k}: decoded length {dc.Length}");
                Assert.Equal(RefuseReason.Truncated, dc.Error);
            }
        }
    }

    [Fact]
    public void Every_form_followed_by_more_bytes_is_decoded_by_the_rows_as_itself()
    {
        // Rule: the bytes after an instruction (the next one, or whatever the fetch brought) change nothing: same access,
        // same length, still decoded by the rows. Catches the string and IN/OUT forms' end check `end > length` made
        // `end < length` (they have no ModRM: the rows then refused every one that was not the last byte given), and the
        // ModRM forms' checks made the same way.
        foreach (var f in Forms)
        {
            byte[] whole = Bytes(f);
            foreach (byte[] after in new byte[][] { [0x90], [0xA5, 0x8B, 0x06], [0x0F, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF] })
            {
                byte[] bytes = [.. whole, .. after];
                Assert.True(X86Decoder.TryDecodeRows(bytes, f.Mode, out DecodedAccess r), $"{f.Mode} {f.Hex} + {Convert.ToHexString(after)}: not decoded by the rows");
                Assert.True(X86Decoder.TryDecodeFull(whole, f.Mode, out DecodedAccess full));
                Assert.Equal(full, r);
            }
        }
    }

    [Theory]
    [InlineData(CpuMode.Bits64, "64 64 64 48 C7 84 24 11 22 33 44 55 66 77 88")]   // mov qword fs:[rsp+0x44332211], 0x88776655
    [InlineData(CpuMode.Bits32, "3E 3E 26 26 C7 84 24 11 22 33 44 55 66 77 88")]   // mov dword es:[esp+0x44332211], 0x88776655
    [InlineData(CpuMode.Bits64, "F0 F0 F0 F0 81 04 25 01 02 03 04 05 06 07 08")]   // lock add dword [0x04030201], 0x08070605
    public void The_rows_decode_a_15_byte_instruction_and_leave_a_16_byte_one_to_the_full_decoder(CpuMode mode, string hex)
    {
        // Rule: 15 bytes is the architectural maximum; an instruction of exactly 15 is legal (the rows decode it, as the
        // full decoder does) and one more prefix makes it 16, which the CPU refuses with #GP (TooLong, from the full
        // decoder: the rows leave it). Catches the row path's `i > MaxLength` made `i >= MaxLength` (a 15-byte
        // instruction sent to the full decoder: same answer through TryDecode, a refusal through the rows) and the check
        // removed or loosened (16 bytes decoded by the rows).
        byte[] fifteen = Hex(hex);
        Assert.Equal(15, fifteen.Length);
        Assert.True(X86Decoder.TryDecodeFull(fifteen, mode, out DecodedAccess full), $"{hex}: the full decoder refused it ({full.Error})");
        Assert.Equal(15, full.Length);
        Assert.True(X86Decoder.TryDecodeRows(fifteen, mode, out DecodedAccess r), $"{mode} {hex}: the rows left a 15-byte instruction");
        Assert.Equal(full, r);

        byte[] sixteen = [fifteen[0], .. fifteen];
        Assert.False(X86Decoder.TryDecodeRows(sixteen, mode, out _), $"{mode} {hex}: the rows decoded 16 bytes");
        Assert.False(X86Decoder.TryDecode(sixteen, mode, out DecodedAccess d));
        Assert.Equal(RefuseReason.TooLong, d.Error);
    }

    [Theory]
    [InlineData(CpuMode.Bits64, "66 C7 06 34 12", 0x1234)]                // mov word [rsi], 0x1234
    [InlineData(CpuMode.Bits64, "66 81 44 24 08 FE FF", 0xFFFE)]          // add word [rsp+8], 0xFFFE
    [InlineData(CpuMode.Bits64, "66 F7 06 01 80", 0x8001)]                // test word [rsi], 0x8001
    [InlineData(CpuMode.Bits64, "66 69 06 FF 7F", 0x7FFF)]                // imul ax, [rsi], 0x7FFF
    [InlineData(CpuMode.Bits32, "66 C7 05 78 56 34 12 CD AB", 0xABCD)]    // mov word [0x12345678], 0xABCD
    [InlineData(CpuMode.Bits32, "C7 06 34 12 78 56", 0x56781234)]        // mov dword [esi], imm32 (the 4-byte arm beside it)
    public void A_form_with_a_16_bit_operand_reads_a_2_byte_immediate(CpuMode mode, string hex, long imm)
    {
        // Rule: with a 16-bit operand (66 in 32/64-bit mode) an imm16/32 form's immediate is 2 bytes, not 4: the
        // instruction ends after them and the value is those two bytes. The bytes after it (A5, then 8B 06) are
        // there to be misread. Reading 4 bytes and masking gives the same value: that is caught only by
        // Neither_path_reads_a_byte_past_its_input, where the 2 bytes after the immediate are not mapped.
        byte[] bytes = Hex(hex);
        byte[] buffer = [.. bytes, 0xA5, 0x8B, 0x06];
        Assert.True(X86Decoder.TryDecodeRows(buffer, mode, out DecodedAccess r), $"{mode} {hex}: not decoded by the rows");
        Assert.Equal(bytes.Length, r.Length);
        Assert.True(r.HasImm);
        Assert.Equal(imm, r.Imm);
        Assert.True(X86Decoder.TryDecodeFull(buffer, mode, out DecodedAccess full));
        Assert.Equal(full, r);
    }

    [Theory]
    [InlineData("F0 01 06", true, false, false)]        // lock add [rsi], eax: LOCK, no REP
    [InlineData("F0 F3 01 06", true, false, false)]     // F3 on a form that is not a string form: ignored
    [InlineData("F3 F0 0F B1 0E", true, false, false)]  // lock cmpxchg: the same, REP before LOCK
    [InlineData("F3 8B 06", false, false, false)]       // REP on MOV: ignored
    [InlineData("F3 A5", false, true, false)]           // rep movsd
    [InlineData("F2 A5", false, true, false)]           // F2 on MOVS: REP, not REPNE (only CMPS/SCAS test ZF)
    [InlineData("F2 A7", false, true, true)]            // repne cmpsd
    [InlineData("F2 F3 AE", false, true, false)]        // the last of F2/F3 wins: repe scasb
    [InlineData("F3 F2 AE", false, true, true)]         // repne scasb
    public void LOCK_and_REP_are_reported_only_where_the_form_takes_them(string hex, bool lk, bool rep, bool repNe)
    {
        // Rule: LOCK is reported on a lockable form, REP only on a string form and REPNE only on CMPS/SCAS; every other
        // F2/F3 is ignored, as the full decoder does. Catches the tail's `ctl & CRep` or `ctl & CRepNe` made `|` (REP on
        // MOV, REPNE on MOVS; DecoderFormRowTests' comparisons catch them too, this names the rule). The tail's entry
        // test `pf & (PfLock | PfRep)` made `|` and `pf & PfRep` made `|` are equivalent (docs/testing.md): the tail
        // tests each bit again, and no row is both lockable and a string form, so a LOCK never reaches the REP test with
        // a form that takes REP.
        byte[] bytes = Hex(hex);
        Assert.True(X86Decoder.TryDecodeRows(bytes, CpuMode.Bits64, out DecodedAccess r), $"{hex}: not decoded by the rows");
        Assert.Equal((lk, rep, repNe), (r.Lock, r.Rep, r.RepNe));
        Assert.True(X86Decoder.TryDecodeFull(bytes, CpuMode.Bits64, out DecodedAccess full));
        Assert.Equal(full, r);
    }

    [Fact]
    public void Neither_path_reads_a_byte_past_its_input()
    {
        // Rule: the decoder reads only the bytes it is given (both paths read through unchecked references, so the
        // length checks are all that stand between a short input and the memory after it). Each form, whole and cut at
        // every length, is placed at the very end of a readable page followed by an inaccessible one: a read past the
        // input faults there, and the fault ends the test host (the run is reported aborted, naming this test with
        // --blame). Catches the row path's `i >= length` made `i > length` before the 0F map's opcode and before ModRM
        // (the byte after the input is read, then the later end checks refuse: the same answer, so only the fault shows
        // it) and its 2-byte immediate read as 4 bytes (`n == 2` made false: the value is masked to 16 bits, the same);
        // and, through TryDecodeFull (the forms the rows take never reach Decode otherwise), the full decoder's ImmZ
        // read the same way (`n == 2 ? … : …` made false).
        using var guarded = new GuardedPage();
        foreach (var f in Forms)
        {
            byte[] whole = Bytes(f);
            for (int k = 0; k <= whole.Length; k++)
            {
                byte[] cut = whole[..k];
                ReadOnlySpan<byte> atEnd = guarded.AtEnd(cut);
                bool rows = X86Decoder.TryDecodeRows(atEnd, f.Mode, out DecodedAccess r);
                bool any = X86Decoder.TryDecode(atEnd, f.Mode, out DecodedAccess d);
                bool full = X86Decoder.TryDecodeFull(atEnd, f.Mode, out DecodedAccess fd);
                // The same answers as from the same bytes on the heap (so the page changes nothing but what a stray read meets).
                Assert.Equal(X86Decoder.TryDecodeRows(cut, f.Mode, out DecodedAccess r2), rows);
                Assert.Equal(r2, r);
                Assert.Equal(X86Decoder.TryDecode(cut, f.Mode, out DecodedAccess d2), any);
                Assert.Equal(d2, d);
                Assert.Equal(any, full);
                Assert.Equal(d, fd);
                Assert.Equal(k == whole.Length, rows);
            }
        }
    }

    /// <summary>Two pages: the first readable and writable, the second inaccessible (mmap/mprotect, or VirtualAlloc/VirtualProtect
    /// on Windows). AtEnd copies bytes to the first page's end, so the byte after them is the second page's first.</summary>
    sealed partial class GuardedPage : IDisposable
    {
        readonly nint _base;
        readonly int _page = Environment.SystemPageSize;

        public GuardedPage()
        {
            nuint size = (nuint)(2 * _page);
            if (OperatingSystem.IsWindows())
            {
                _base = VirtualAlloc(0, size, MemCommit | MemReserve, PageReadWrite);
                Assert.True(_base != 0 && VirtualProtect(_base + _page, (nuint)_page, PageNoAccess, out _) != 0, "VirtualAlloc/VirtualProtect failed");
            }
            else
            {
                int anonymous = OperatingSystem.IsLinux() ? 0x20 : 0x1000;   // MAP_ANONYMOUS (Linux), MAP_ANON (macOS, BSD)
                _base = Mmap(0, size, ProtRead | ProtWrite, MapPrivate | anonymous, -1, 0);
                Assert.True(_base != -1, $"mmap failed: errno {Marshal.GetLastPInvokeError()}");
                Assert.True(Mprotect(_base + _page, (nuint)_page, ProtNone) == 0, $"mprotect failed: errno {Marshal.GetLastPInvokeError()}");
            }
        }

        public unsafe ReadOnlySpan<byte> AtEnd(byte[] bytes)
        {
            var target = new Span<byte>((void*)(_base + _page - bytes.Length), bytes.Length);
            bytes.CopyTo(target);
            return target;
        }

        public void Dispose()
        {
            if (OperatingSystem.IsWindows()) _ = VirtualFree(_base, 0, MemRelease);
            else _ = Munmap(_base, (nuint)(2 * _page));
        }

        const int ProtNone = 0, ProtRead = 1, ProtWrite = 2, MapPrivate = 2;
        const uint MemCommit = 0x1000, MemReserve = 0x2000, MemRelease = 0x8000, PageNoAccess = 1, PageReadWrite = 4;

        [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
        private static partial nint Mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);

        [LibraryImport("libc", EntryPoint = "mprotect", SetLastError = true)]
        private static partial int Mprotect(nint addr, nuint length, int prot);

        [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
        private static partial int Munmap(nint addr, nuint length);

        [LibraryImport("kernel32", EntryPoint = "VirtualAlloc", SetLastError = true)]
        private static partial nint VirtualAlloc(nint addr, nuint size, uint type, uint protect);

        [LibraryImport("kernel32", EntryPoint = "VirtualProtect", SetLastError = true)]
        private static partial int VirtualProtect(nint addr, nuint size, uint protect, out uint old);

        [LibraryImport("kernel32", EntryPoint = "VirtualFree", SetLastError = true)]
        private static partial int VirtualFree(nint addr, nuint size, uint type);
    }
}

using Copra.Hot.Decode;
using Copra.Hot.Guest;
using Copra.Kernel.Report;
using Xunit;

namespace Copra.Tests.Guest;

/// <summary>
/// The exit path's per-vCPU caches (issue 13): the data TLB answers as the walker does and with a TLB's rules, the
/// decode cache answers as the decoder does and never for other bytes or another mode, and the report histogram
/// keeps HdrHistogram's 0.1 % bound.
/// </summary>
public sealed class ExitCacheTests : IDisposable
{
    const ulong MiB = 1UL << 20;
    readonly GuestMemory _mem = new(8 * MiB);
    readonly PageTableBuilder _pt;
    readonly PagingMode _mode = GuestCpuState.LongMode(0, 0, 0, 0).Mode;
    const ulong DataPage = 0x60_0000, ReadOnlyPage = 0x60_1000, Phys1 = 0x30_2000, Phys2 = 0x30_5000;

    public ExitCacheTests()
    {
        _pt = new PageTableBuilder(_mem, PagingKind.Level4, MiB, MiB);
        _pt.Map(DataPage, Phys1, 0x1000, PageSize.Size4K, writable: true, executable: false);
        _pt.Map(ReadOnlyPage, Phys2, 0x1000, PageSize.Size4K, writable: false, executable: false);
    }

    public void Dispose() => _mem.Dispose();

    [Fact]
    public void Data_tlb_translates_as_the_walker_and_keeps_the_offset()
    {
        var tlb = new DataTlb(2);
        for (int round = 0; round < 2; round++)   // a miss (walk) then a hit
        {
            var r = tlb.Translate(1, _mem, _mode, _pt.Cr3, DataPage + 0x123, AccessType.Read, out ulong gpa);
            Assert.True(r.IsOk);
            Assert.Equal(Phys1 + 0x123, gpa);
            tlb.Translate(1, _mem, _mode, _pt.Cr3, DataPage + 0xFF8, AccessType.Write, out gpa);
            Assert.Equal(Phys1 + 0xFF8, gpa);
        }
    }

    [Fact]
    public void Data_tlb_does_not_serve_a_write_from_a_read_filled_entry()
    {
        var tlb = new DataTlb(1);
        Assert.True(tlb.Translate(0, _mem, _mode, _pt.Cr3, ReadOnlyPage + 8, AccessType.Read, out _).IsOk);
        var w = tlb.Translate(0, _mem, _mode, _pt.Cr3, ReadOnlyPage + 8, AccessType.Write, out _);
        Assert.False(w.IsOk);
        Assert.Equal(WalkStatus.PageFault, w.Status);
    }

    [Fact]
    public void Data_tlb_keeps_a_translation_until_invalidated_or_cr3_changes()
    {
        var tlb = new DataTlb(1);
        tlb.Translate(0, _mem, _mode, _pt.Cr3, DataPage, AccessType.Read, out ulong before);
        // Point the PTE elsewhere behind the cache's back, as a guest would without a CR3 write.
        ulong pte = _pt.EntryAddress(DataPage, 1);
        _mem.WriteU64(pte, (_mem.ReadU64(pte) & ~0x000F_FFFF_FFFF_F000UL) | Phys2);
        tlb.Translate(0, _mem, _mode, _pt.Cr3, DataPage, AccessType.Read, out ulong stale);
        Assert.Equal(before, stale);                                   // a TLB is not snooped
        tlb.Translate(0, _mem, _mode, _pt.Cr3 ^ 0x1000_0000, DataPage, AccessType.Read, out _);   // another CR3 never hits
        tlb.Invalidate(0);
        tlb.Translate(0, _mem, _mode, _pt.Cr3, DataPage, AccessType.Read, out ulong after);
        Assert.Equal(Phys2, after);
    }

    [Fact]
    public void Data_tlb_keeps_a_read_and_a_write_entry_for_each_of_four_consecutive_pages()
    {
        // A driver's loop reads and writes its registers: neither access may evict the other's entry (a hit is visible
        // as the stale translation after the PTEs are pointed elsewhere behind the TLB's back).
        const ulong Base = 0x64_0000, Phys = 0x34_0000;
        _pt.Map(Base, Phys, 4 * 0x1000, PageSize.Size4K, writable: true, executable: false);
        var tlb = new DataTlb(1);
        for (ulong i = 0; i < 4; i++)
            foreach (var access in new[] { AccessType.Read, AccessType.Write })
                Assert.True(tlb.Translate(0, _mem, _mode, _pt.Cr3, Base + i * 0x1000 + 8, access, out _).IsOk);
        for (ulong i = 0; i < 4; i++)
        {
            ulong pte = _pt.EntryAddress(Base + i * 0x1000, 1);
            _mem.WriteU64(pte, (_mem.ReadU64(pte) & ~0x000F_FFFF_FFFF_F000UL) | Phys2);
        }
        for (ulong i = 0; i < 4; i++)
            foreach (var access in new[] { AccessType.Read, AccessType.Write })
            {
                tlb.Translate(0, _mem, _mode, _pt.Cr3, Base + i * 0x1000 + 8, access, out ulong gpa);
                Assert.Equal(Phys + i * 0x1000 + 8, gpa);
            }
    }

    [Fact]
    public void Data_tlb_walks_again_when_the_hardware_named_another_page()
    {
        var tlb = new DataTlb(1);
        tlb.Translate(0, _mem, _mode, _pt.Cr3, DataPage + 8, AccessType.Read, out ulong before);
        Assert.Equal(Phys1 + 8, before);
        // The guest remaps the page (and flushes with INVLPG, which the paravisor never sees); the next exit names Phys2.
        ulong pte = _pt.EntryAddress(DataPage, 1);
        _mem.WriteU64(pte, (_mem.ReadU64(pte) & ~0x000F_FFFF_FFFF_F000UL) | Phys2);
        tlb.Translate(0, _mem, _mode, _pt.Cr3, DataPage + 8, AccessType.Read, out ulong witnessed, witnessPage: Phys2);
        Assert.Equal(Phys2 + 8, witnessed);
        // The walk refilled the entry: without a witness it now serves the new page.
        tlb.Translate(0, _mem, _mode, _pt.Cr3, DataPage + 8, AccessType.Read, out ulong after);
        Assert.Equal(Phys2 + 8, after);
    }

    [Fact]
    public void Data_tlb_reports_faults_every_time()
    {
        var tlb = new DataTlb(1);
        for (int i = 0; i < 2; i++)
            Assert.False(tlb.Translate(0, _mem, _mode, _pt.Cr3, 0x70_0000, AccessType.Read, out _).IsOk);
    }

    static byte[] Buffer(params byte[] insn)
    {
        var b = new byte[DecodeCache.BufferLength];
        insn.CopyTo(b, 0);
        return b;
    }

    [Fact]
    public void Decode_cache_hit_equals_a_fresh_decode()
    {
        var cache = new DecodeCache(2);
        byte[] movLoad = Buffer(0x8B, 0x46, 0x10);   // mov eax, [rsi+0x10]
        Assert.True(X86Decoder.TryDecode(movLoad.AsSpan(0, 3), CpuMode.Bits64, out var fresh));
        for (int i = 0; i < 2; i++)
        {
            Assert.True(cache.TryDecode(1, 0x1000, movLoad, 3, CpuMode.Bits64, out var d));
            Assert.Equal(fresh.Kind, d.Kind); Assert.Equal(fresh.Length, d.Length); Assert.Equal(fresh.Disp, d.Disp); Assert.Equal(fresh.Reg, d.Reg);
        }
    }

    [Fact]
    public void Decode_cache_never_answers_for_other_bytes_or_another_mode()
    {
        var cache = new DecodeCache(1);
        Assert.True(cache.TryDecode(0, 0x1000, Buffer(0x8B, 0x46, 0x10), 3, CpuMode.Bits64, out _));
        // The displacement byte changed (code rewritten in place): decoded afresh.
        Assert.True(cache.TryDecode(0, 0x1000, Buffer(0x8B, 0x46, 0x20), 3, CpuMode.Bits64, out var d));
        Assert.Equal(0x20, (long)d.Disp);
        // A different first byte: a store, not the cached load.
        Assert.True(cache.TryDecode(0, 0x1000, Buffer(0x89, 0x46, 0x20), 3, CpuMode.Bits64, out d));
        Assert.Equal(AccessKind.Write, d.Kind);
        // 66 prefix means 16-bit operands in 64-bit mode and 32-bit ones in 16-bit mode: the mode is part of the key.
        var b = Buffer(0x66, 0x8B, 0x07);
        Assert.True(cache.TryDecode(0, 0x1000, b, 3, CpuMode.Bits64, out d));
        Assert.Equal(2, d.Size);
        Assert.True(cache.TryDecode(0, 0x1000, b, 3, CpuMode.Bits16, out d));
        Assert.Equal(4, d.Size);
        // Fewer bytes fetched than the cached instruction's length: decoded (and refused as truncated), never served.
        Assert.True(cache.TryDecode(0, 0x2000, Buffer(0x8B, 0x46, 0x10), 3, CpuMode.Bits64, out _));
        Assert.False(cache.TryDecode(0, 0x2000, Buffer(0x8B, 0x46), 2, CpuMode.Bits64, out _));
    }

    [Fact]
    public void Decode_cache_hit_on_words_answers_as_the_buffer_path_and_only_for_the_same_bytes_and_mode()
    {
        var cache = new DecodeCache(2);
        // Nothing decoded yet: a miss.
        Assert.False(cache.TryHit(0, 0x1000, 0x10468B, 0, CpuMode.Bits64, out _));
        Assert.True(cache.TryDecode(0, 0x1000, Buffer(0x8B, 0x46, 0x10, 0x90, 0x90), 15, CpuMode.Bits64, out var viaBuffer));
        // The instruction's bytes agree; the bytes after it (here 0x90s, there 0xCC) are not part of the key.
        Assert.True(cache.TryHit(0, 0x1000, 0xCCCC_CCCC_CC10_468BUL, 0x00CC_CCCC_CCCC_CCCCUL, CpuMode.Bits64, out var viaWords));
        Assert.Equal(viaBuffer, viaWords);
        Assert.False(cache.TryHit(0, 0x1000, 0x20468B, 0, CpuMode.Bits64, out _));   // another displacement
        Assert.False(cache.TryHit(0, 0x1000, 0x10468B, 0, CpuMode.Bits32, out _));   // another mode
        Assert.False(cache.TryHit(1, 0x1000, 0x10468B, 0, CpuMode.Bits64, out _));   // another vCPU
        Assert.False(cache.TryHit(0, 0x1001, 0x10468B, 0, CpuMode.Bits64, out _));   // another slot
        cache.Invalidate(0);
        Assert.False(cache.TryHit(0, 0x1000, 0x10468B, 0, CpuMode.Bits64, out _));
    }

    [Fact]
    public void Decode_cache_keeps_every_instruction_of_a_64_byte_window()
    {
        // A loop's exiting instructions, four bytes apart over 64 bytes (the window starts off a 64-byte boundary),
        // each a different displacement: none evicts another.
        var cache = new DecodeCache(1);
        const ulong Start = 0x40_1234;
        for (uint i = 0; i < 16; i++)
            Assert.True(cache.TryDecode(0, Start + 4 * i, Buffer(0x8B, 0x46, (byte)(0x10 + i)), 3, CpuMode.Bits64, out _));
        for (uint i = 0; i < 16; i++)
        {
            Assert.True(cache.TryHit(0, Start + 4 * i, 0x46_8B | (ulong)(0x10 + i) << 16, 0, CpuMode.Bits64, out var d), $"instruction {i}");
            Assert.Equal(0x10 + i, (ulong)d.Disp);
        }
    }

    [Fact]
    public void Both_caches_refuse_a_table_for_no_vcpus()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new DecodeCache(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DataTlb(0));
    }

    [Fact]
    public void An_empty_decode_cache_hits_in_no_mode_even_for_zero_bytes()
    {
        var cache = new DecodeCache(1);
        foreach (var mode in Enum.GetValues<CpuMode>())
            for (ulong linear = 0; linear < DecodeCache.Ways; linear++)
                Assert.False(cache.TryHit(0, linear, 0, 0, mode, out _), $"{mode} at {linear}");
    }

    [Fact]
    public void A_fifteen_byte_instruction_hits_on_the_words_that_hold_all_of_it()
    {
        // 66 x11, then mov word [rsi+0x11223344], 0x5566: 66 C7 86 44 33 22 11 66 55 is 9 bytes; 6 more 66 prefixes make 15.
        byte[] insn = [0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0xC7, 0x86, 0x44, 0x33, 0x22, 0x11, 0x66, 0x55];
        var cache = new DecodeCache(1);
        var b = Buffer(insn);
        Assert.True(cache.TryDecode(0, 0x3000, b, 15, CpuMode.Bits64, out var d));
        Assert.Equal(15, d.Length);
        Assert.True(cache.TryHit(0, 0x3000, BitConverter.ToUInt64(b, 0), BitConverter.ToUInt64(b, 8), CpuMode.Bits64, out _));
    }

    [Theory]
    [InlineData(8)]    // mov qword [rsi+0x11223344], rax: 48 89 86 44 33 22 11 .. (7 bytes) with a segment prefix: 8
    [InlineData(10)]   // mov dword [rbx+0x100], 0x11223344: C7 83 00 01 00 00 44 33 22 11
    public void The_key_is_every_byte_of_the_instruction_and_none_after_it(int length)
    {
        byte[] insn = length == 8
            ? [0x3E, 0x48, 0x89, 0x86, 0x44, 0x33, 0x22, 0x11]
            : [0xC7, 0x83, 0x00, 0x01, 0x00, 0x00, 0x44, 0x33, 0x22, 0x11];
        var cache = new DecodeCache(1);
        var b = Buffer([.. insn, 0xAA, 0xBB, 0xCC]);
        Assert.True(cache.TryDecode(0, 0x5000, b, 15, CpuMode.Bits64, out var d));
        Assert.Equal(length, d.Length);
        ulong lo = BitConverter.ToUInt64(b, 0), hi = BitConverter.ToUInt64(b, 8);
        Assert.True(cache.TryHit(0, 0x5000, lo, hi, CpuMode.Bits64, out _));
        // Other bytes after the instruction (in the high word, or all of it for 8 bytes): still the same instruction.
        ulong after = length == 8 ? 0x1234_5678_9ABC_DEF0UL : (hi & 0xFFFF) | 0x0012_3456_7800_0000UL;
        Assert.True(cache.TryHit(0, 0x5000, lo, after, CpuMode.Bits64, out _));
        // Any byte of the instruction itself changed: a miss (the first, the eighth, and for 10 bytes the last).
        for (int i = 0; i < 8; i++)
            Assert.False(cache.TryHit(0, 0x5000, lo ^ (0x01UL << (8 * i)), hi, CpuMode.Bits64, out _), $"byte {i}");
        for (int i = 8; i < length; i++)
            Assert.False(cache.TryHit(0, 0x5000, lo, hi ^ (0x01UL << (8 * (i - 8))), CpuMode.Bits64, out _), $"byte {i}");
    }

    [Fact]
    public void Report_histogram_percentiles_are_within_a_thousandth_of_the_exact_ones()
    {
        var rng = new Random(13);
        var samples = new long[20_001];
        for (int i = 0; i < samples.Length; i++) samples[i] = (long)Math.Exp(rng.NextDouble() * 20);   // 1 .. ~5e8, log-spread
        var d = Distribution.Of(samples);
        var sorted = samples.Order().ToArray();
        long Exact(double q) => sorted[Math.Max(0, (int)Math.Ceiling(q / 100 * sorted.Length) - 1)];
        foreach (var (got, q) in new[] { (d.P50, 50.0), (d.P90, 90.0), (d.P99, 99.0), (d.P999, 99.9), (d.P25, 25.0) })
        {
            long e = Exact(q);
            Assert.InRange(got, e, e + e / 1024 + 1);
        }
        Assert.Equal(sorted[0], d.Min);
        Assert.Equal(sorted[^1], d.Max);
        Assert.Equal(samples.Average(), d.Mean, 3);
    }
}

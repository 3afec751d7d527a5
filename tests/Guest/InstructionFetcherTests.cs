using Copra.Hot.Guest;
using Xunit;

namespace Copra.Tests.Guest;

/// <summary>Instruction fetch: straddling pages, faults on either page, and the per-vCPU code-page cache.</summary>
public sealed class InstructionFetcherTests : IDisposable
{
    const ulong MiB = 1UL << 20;
    readonly GuestMemory _mem = new(8 * MiB);
    readonly PageTableBuilder _pt;
    readonly PagingMode _mode = GuestCpuState.LongMode(0, 0, 0, 0).Mode;
    readonly InstructionFetcher _fetch = new(4);

    // Code at linear 0x40_0000 (page A -> phys 0x20_3000) and 0x40_1000 (page B -> phys 0x20_1000): not contiguous.
    const ulong PageA = 0x40_0000, PageB = 0x40_1000, PhysA = 0x20_3000, PhysB = 0x20_1000;

    public InstructionFetcherTests()
    {
        _pt = new PageTableBuilder(_mem, PagingKind.Level4, MiB, MiB);
        _pt.Map(PageA, PhysA, 0x1000, PageSize.Size4K, false, true);
        _pt.Map(PageB, PhysB, 0x1000, PageSize.Size4K, false, true);
        for (int i = 0; i < 0x1000; i++)
        {
            _mem.WriteU8(PhysA + (ulong)i, (byte)i);
            _mem.WriteU8(PhysB + (ulong)i, (byte)(0x80 | i));
        }
    }

    public void Dispose() => _mem.Dispose();

    [Fact]
    public void Fetch_inside_one_page_returns_fifteen_bytes()
    {
        Span<byte> dest = stackalloc byte[15];
        Assert.Equal(FetchResult.Complete, _fetch.Fetch(0, _mem, _mode, _pt.Cr3, PageA + 0x10, dest, out int n, out WalkResult f));
        Assert.Equal(15, n);
        Assert.True(f.IsOk);
        for (int i = 0; i < 15; i++) Assert.Equal((byte)(0x10 + i), dest[i]);
    }

    [Fact]
    public void Straddling_fetch_joins_two_separately_translated_pages()
    {
        Span<byte> dest = stackalloc byte[15];
        Assert.Equal(FetchResult.Complete, _fetch.Fetch(0, _mem, _mode, _pt.Cr3, PageA + 0xFFD, dest, out int n, out _));
        Assert.Equal(15, n);
        Assert.Equal(new byte[] { 0xFD, 0xFE, 0xFF, 0x80, 0x81 }, dest[..5].ToArray());
        Assert.Equal(0x8B, dest[14]);
        Assert.Equal(2, _fetch.Misses[0]); // both pages walked
    }

    [Fact]
    public void Straddling_fetch_with_unmapped_second_page_returns_first_page_and_its_fault()
    {
        Span<byte> dest = stackalloc byte[15];
        const ulong rip = PageB + 0xFFE; // page C (0x40_2000) is not mapped
        Assert.Equal(FetchResult.Partial, _fetch.Fetch(1, _mem, _mode, _pt.Cr3, rip, dest, out int n, out WalkResult f));
        Assert.Equal(2, n);
        Assert.Equal(new byte[] { 0x80 | 0xFE, 0x80 | 0xFF }, dest[..2].ToArray());
        Assert.Equal(WalkResult.PageFault(PageFaultError.Fetch, 0x40_2000, 1), f);
    }

    [Fact]
    public void First_page_fault_fetches_nothing()
    {
        Span<byte> dest = stackalloc byte[15];
        Assert.Equal(FetchResult.Fault, _fetch.Fetch(0, _mem, _mode, _pt.Cr3, 0x50_0000, dest, out int n, out WalkResult f));
        Assert.Equal(0, n);
        Assert.Equal(PageFaultError.Fetch, f.ErrorCode);
        Assert.Equal(0x50_0000UL, f.Address);
        Assert.False(_fetch.IsCached(0));
    }

    [Fact]
    public void Code_mapped_outside_guest_memory_is_not_backed()
    {
        _pt.Map(0x60_0000, 0x1_0000_0000, 0x1000, PageSize.Size4K, false, true);
        Span<byte> dest = stackalloc byte[15];
        Assert.Equal(FetchResult.NotBacked, _fetch.Fetch(0, _mem, _mode, _pt.Cr3, 0x60_0000, dest, out int n, out _));
        Assert.Equal(0, n);
        _pt.Map(0x61_0000, 0x20_4000, 0x1000, PageSize.Size4K, false, true);
        _pt.Map(0x61_1000, 0x1_0000_1000, 0x1000, PageSize.Size4K, false, true);
        Assert.Equal(FetchResult.PartialNotBacked, _fetch.Fetch(0, _mem, _mode, _pt.Cr3, 0x61_0FFC, dest, out n, out WalkResult f));
        Assert.Equal(4, n);
        Assert.True(f.IsOk);
    }

    [Fact]
    public void Second_fetch_from_the_same_page_hits_the_cache()
    {
        Span<byte> dest = stackalloc byte[15];
        _fetch.Fetch(2, _mem, _mode, _pt.Cr3, PageA + 0x100, dest, out _, out _);
        _fetch.Fetch(2, _mem, _mode, _pt.Cr3, PageA + 0x200, dest, out _, out _);
        _fetch.Fetch(2, _mem, _mode, _pt.Cr3, PageA + 0x300, dest, out _, out _);
        Assert.Equal(1, _fetch.Misses[2]);
        Assert.Equal(2, _fetch.Hits[2]);
        Assert.Equal(0, _fetch.Hits[0] + _fetch.Misses[0]); // per-vCPU counters
    }

    [Fact]
    public void Cr3_change_misses_even_without_invalidate()
    {
        Span<byte> dest = stackalloc byte[15];
        var other = new PageTableBuilder(_mem, PagingKind.Level4, 4 * MiB, MiB);
        other.Map(PageA, PhysB, 0x1000, PageSize.Size4K, false, true); // same linear page, other physical page
        _fetch.Fetch(0, _mem, _mode, _pt.Cr3, PageA, dest, out _, out _);
        _fetch.Fetch(0, _mem, _mode, other.Cr3, PageA, dest, out _, out _);
        Assert.Equal(2, _fetch.Misses[0]);
        Assert.Equal(0x80, dest[0]); // read through the new tables, not the cached translation
    }

    [Fact]
    public void Mode_change_and_invalidate_force_a_walk()
    {
        Span<byte> dest = stackalloc byte[15];
        _fetch.Fetch(0, _mem, _mode, _pt.Cr3, PageA, dest, out _, out _);
        PagingMode noWp = PagingMode.From(GuestCpuState.Cr0Pe | GuestCpuState.Cr0Pg, GuestCpuState.Cr4Pae, GuestCpuState.EferLma | GuestCpuState.EferNxe);
        _fetch.Fetch(0, _mem, noWp, _pt.Cr3, PageA, dest, out _, out _);
        Assert.Equal(2, _fetch.Misses[0]);
        _fetch.Invalidate(0);
        Assert.False(_fetch.IsCached(0));
        _fetch.Fetch(0, _mem, noWp, _pt.Cr3, PageA, dest, out _, out _);
        Assert.Equal(3, _fetch.Misses[0]);
        Assert.Equal(0, _fetch.Hits[0]);
    }

    [Fact]
    public void Straddle_walk_of_the_second_page_does_not_evict_the_cached_first_page()
    {
        Span<byte> dest = stackalloc byte[15];
        _fetch.Fetch(0, _mem, _mode, _pt.Cr3, PageA + 0xFFA, dest, out _, out _); // miss A, miss B
        _fetch.Fetch(0, _mem, _mode, _pt.Cr3, PageA + 0xFFA, dest, out _, out _); // hit A, miss B
        Assert.Equal(3, _fetch.Misses[0]);
        Assert.Equal(1, _fetch.Hits[0]);
    }

    [Fact]
    public void Fetch_in_steady_state_allocates_nothing()
    {
        byte[] dest = new byte[15];
        Assert.Equal(0, Support.SteadyState.BytesPerRound(() =>
        {
            for (int i = 0; i < 1000; i++) _fetch.Fetch(3, _mem, _mode, _pt.Cr3, PageA + (ulong)(i & 0xFFF), dest, out _, out _);
        }));
    }
    // ---- TryFetchWords: the exit path's one-step fetch (issue 13) -------------------------------------------------

    [Fact]
    public void Fetch_words_need_the_code_page_entry_and_then_are_the_fetch_bytes_with_the_16th_zeroed()
    {
        // Nothing cached yet: no words, and nothing counted (the caller's Fetch counts the walk).
        Assert.False(_fetch.TryFetchWords(0, _mem, _mode, _pt.Cr3, PageA + 0x10, AccessType.Execute, out _, out _));
        Assert.Equal(0, _fetch.Hits[0] + _fetch.Misses[0]);
        Span<byte> dest = stackalloc byte[15];
        _fetch.Fetch(0, _mem, _mode, _pt.Cr3, PageA + 0x10, dest, out _, out _);
        Assert.True(_fetch.TryFetchWords(0, _mem, _mode, _pt.Cr3, PageA + 0x10, AccessType.Execute, out ulong lo, out ulong hi));
        Assert.Equal(0x17161514_13121110UL, lo);
        Assert.Equal(0x001E1D1C_1B1A1918UL, hi);   // byte 15 (0x1F in memory) is the key's zero
        Assert.Equal(1, _fetch.Hits[0]);
        // The last offset whose 16 bytes stay in the page, and the first that does not (Fetch straddles then).
        Assert.True(_fetch.TryFetchWords(0, _mem, _mode, _pt.Cr3, PageA + 0xFF0, AccessType.Execute, out lo, out _));
        Assert.Equal(0xF7F6F5F4_F3F2F1F0UL, lo);
        Assert.False(_fetch.TryFetchWords(0, _mem, _mode, _pt.Cr3, PageA + 0xFF1, AccessType.Execute, out _, out _));
    }

    [Fact]
    public void Fetch_words_miss_on_another_page_cr3_or_access_key()
    {
        Span<byte> dest = stackalloc byte[15];
        _fetch.Fetch(0, _mem, _mode, _pt.Cr3, PageA, dest, out _, out _);
        Assert.True(_fetch.TryFetchWords(0, _mem, _mode, _pt.Cr3, PageA + 8, AccessType.Execute, out _, out _));
        Assert.False(_fetch.TryFetchWords(0, _mem, _mode, _pt.Cr3, PageB + 8, AccessType.Execute, out _, out _));
        Assert.False(_fetch.TryFetchWords(0, _mem, _mode, _pt.Cr3 + 0x1000, PageA + 8, AccessType.Execute, out _, out _));
        Assert.False(_fetch.TryFetchWords(0, _mem, _mode, _pt.Cr3, PageA + 8, AccessType.Execute | AccessType.User, out _, out _));
        Assert.False(_fetch.TryFetchWords(1, _mem, _mode, _pt.Cr3, PageA + 8, AccessType.Execute, out _, out _));   // per vCPU
        _fetch.Invalidate(0);
        Assert.False(_fetch.TryFetchWords(0, _mem, _mode, _pt.Cr3, PageA + 8, AccessType.Execute, out _, out _));
    }

    [Fact]
    public void Fetch_words_read_the_bytes_now_not_when_the_entry_was_filled()
    {
        Span<byte> dest = stackalloc byte[15];
        _fetch.Fetch(2, _mem, _mode, _pt.Cr3, PageA + 0x40, dest, out _, out _);
        _mem.WriteU8(PhysA + 0x41, 0xEE);   // code rewritten in place
        Assert.True(_fetch.TryFetchWords(2, _mem, _mode, _pt.Cr3, PageA + 0x40, AccessType.Execute, out ulong lo, out _));
        Assert.Equal(0xEE, (byte)(lo >> 8));
    }
}

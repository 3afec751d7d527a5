using Copra.Hot.Lookup;
using Xunit;

namespace Copra.Tests.Lookup;

/// <summary>
/// Who owns a guest-physical address (hot/Lookup/MmioRangeTable.cs): the owner inside a range, nobody between ranges,
/// a straddle into or past a range, and the per-vCPU caches (the last range hit, the last gap missed) never answering
/// for a table that has changed since, or for another vCPU.
/// </summary>
public sealed class MmioRangeTableTests
{
    static (int Owner, ulong Start, bool Straddles) Find(MmioRangeTable t, ulong gpa, uint size, int vcpu = 0)
    {
        int owner = t.Lookup(vcpu, gpa, size, out ulong start, out bool straddles);
        return (owner, start, straddles);
    }

    static MmioRangeTable Two()
    {
        var t = new MmioRangeTable(2);
        Assert.True(t.TryAdd(0x1000, 0x1000, 7));   // [0x1000, 0x2000)
        Assert.True(t.TryAdd(0x4000, 0x100, 9));    // [0x4000, 0x4100)
        return t;
    }

    /// <summary>
    /// TryFind (the memo's one read of an owner, ExitPipeline.Plain.cs): the range holding an address with its bounds and
    /// owner, nothing in a gap, below every range, at a range's exclusive end or above every range, the current version
    /// either way, and no count and no cache touched.
    /// </summary>
    [Theory]
    [InlineData(0x1000UL, true, 0x1000UL, 0x2000UL, 7)]   // a range's first byte
    [InlineData(0x1FFFUL, true, 0x1000UL, 0x2000UL, 7)]   // its last
    [InlineData(0x40FFUL, true, 0x4000UL, 0x4100UL, 9)]
    [InlineData(0x2000UL, false, 0UL, 0UL, 0)]            // the end is exclusive
    [InlineData(0x3FFFUL, false, 0UL, 0UL, 0)]            // a gap between ranges
    [InlineData(0x0FFFUL, false, 0UL, 0UL, 0)]            // below every range
    [InlineData(0x4100UL, false, 0UL, 0UL, 0)]            // above every range
    public void TryFind_names_the_range_holding_an_address_and_the_tables_version(ulong gpa, bool found, ulong start, ulong end, int owner)
    {
        var t = Two();
        Assert.Equal(found, t.TryFind(gpa, out int version, out ulong s, out ulong e, out int o));
        Assert.Equal((start, end, owner), (s, e, o));
        Assert.Equal(t.Version, version);
        Assert.Equal((0L, 0L), (t.Hits, t.Misses));
    }

    [Fact]
    public void Every_registration_and_removal_publishes_a_new_version_and_a_refused_one_does_not()
    {
        var t = new MmioRangeTable(1);
        int v0 = t.Version;
        Assert.True(t.TryAdd(0x1000, 0x1000, 7));
        int v1 = t.Version;
        Assert.NotEqual(v0, v1);
        Assert.False(t.TryAdd(0x1800, 0x10, 8));   // overlaps: refused
        Assert.Equal(v1, t.Version);
        Assert.Equal(0, t.RemoveOwner(99));        // nothing of it
        Assert.Equal(v1, t.Version);
        Assert.Equal(1, t.RemoveOwner(7));
        Assert.NotEqual(v1, t.Version);
        Assert.NotEqual(v0, t.Version);
    }

    [Theory]
    [InlineData(0x1000UL, 4U, 7, 0x1000UL, false)]
    [InlineData(0x1FFCUL, 4U, 7, 0x1000UL, false)]    // the last dword of the range
    [InlineData(0x1FFEUL, 4U, 7, 0x1000UL, true)]     // runs past its end
    [InlineData(0x0FFEUL, 4U, 7, 0x1000UL, true)]     // starts below it and runs in
    [InlineData(0x0FFCUL, 4U, 0, 0UL, false)]         // ends where it starts: nobody's
    [InlineData(0x2000UL, 4U, 0, 0UL, false)]         // the range's end is exclusive
    [InlineData(0x40FFUL, 1U, 9, 0x4000UL, false)]
    [InlineData(0x3FFFUL, 2U, 9, 0x4000UL, true)]
    [InlineData(0x4100UL, 8U, 0, 0UL, false)]         // above every range
    [InlineData(0x0UL, 8U, 0, 0UL, false)]            // below every range
    public void An_access_is_owned_nobodys_or_a_straddle_the_same_cold_and_from_each_cache(ulong gpa, uint size, int owner, ulong start, bool straddles)
    {
        var t = Two();
        // Cold (the search), then again (each cache: the last range, or the last gap), then after the vCPU looked
        // elsewhere (its caches name another range or gap).
        Assert.Equal((owner, start, straddles), Find(t, gpa, size));
        Assert.Equal((owner, start, straddles), Find(t, gpa, size));
        Find(t, 0x1800, 4); Find(t, 0x3000, 4);
        Assert.Equal((owner, start, straddles), Find(t, gpa, size));
        Find(t, 0x4000, 4); Find(t, 0x3000, 4);   // the last range above the gap, not below it
        Assert.Equal((owner, start, straddles), Find(t, gpa, size));
    }

    [Fact]
    public void A_second_access_in_the_gap_is_served_from_the_cache_and_one_that_runs_into_a_range_is_not()
    {
        var t = Two();
        Assert.Equal(0, Find(t, 0x3000, 4).Owner);
        long misses = t.Misses;
        Assert.Equal(0, Find(t, 0x2004, 4).Owner);          // in the gap [0x2000, 0x4000)
        Assert.Equal(misses, t.Misses);
        Assert.Equal((9, 0x4000UL, true), Find(t, 0x3FFE, 4));   // starts in the gap, ends in the range
        Assert.Equal(misses + 1, t.Misses);
    }

    [Fact]
    public void A_range_registered_in_a_gap_a_vcpu_cached_is_found_by_its_next_lookup()
    {
        var t = Two();
        Assert.Equal(0, Find(t, 0x3000, 4).Owner);
        Assert.Equal(0, Find(t, 0x3000, 4).Owner);
        Assert.True(t.TryAdd(0x3000, 0x10, 11));
        Assert.Equal((11, 0x3000UL, false), Find(t, 0x3000, 4));
    }

    [Fact]
    public void A_removed_range_a_vcpu_last_hit_is_nobodys_at_its_next_lookup()
    {
        var t = Two();
        Assert.Equal(7, Find(t, 0x1800, 4).Owner);
        Assert.Equal(7, Find(t, 0x1800, 4).Owner);
        Assert.Equal(1, t.RemoveOwner(7));
        Assert.Equal(0, Find(t, 0x1800, 4).Owner);
        Assert.Equal(0, Find(t, 0x1800, 4).Owner);
    }

    [Fact]
    public void Each_vcpu_has_its_own_caches()
    {
        var t = Two();
        Assert.Equal(0, Find(t, 0x3000, 4, vcpu: 0).Owner);
        Assert.Equal(7, Find(t, 0x1000, 4, vcpu: 1).Owner);
        long misses = t.Misses;
        Assert.Equal(0, Find(t, 0x3004, 4, vcpu: 0).Owner);
        Assert.Equal(7, Find(t, 0x1004, 4, vcpu: 1).Owner);
        Assert.Equal(misses, t.Misses);
        // vCPU 1 has not missed in the gap: its lookup there searches.
        Assert.Equal(0, Find(t, 0x3008, 4, vcpu: 1).Owner);
        Assert.Equal(misses + 1, t.Misses);
    }

    [Fact]
    public void The_top_of_the_address_space_is_nobodys_and_an_empty_table_owns_nothing()
    {
        var empty = new MmioRangeTable(1);
        Assert.Equal((0, 0UL, false), Find(empty, 0x1000, 4));
        Assert.Equal((0, 0UL, false), Find(empty, 0x1000, 4));
        var t = Two();
        Assert.Equal((0, 0UL, false), Find(t, ulong.MaxValue - 3, 4));
        Assert.Equal((0, 0UL, false), Find(t, ulong.MaxValue - 3, 4));
        Assert.Equal((0, 0UL, false), Find(t, ulong.MaxValue, 1));
    }

    [Fact]
    public void Each_lookup_counts_once_as_a_hit_or_a_search_and_the_gaps_edges_are_hits()
    {
        var t = Two();
        Assert.Equal((0L, 0L), (t.Hits, t.Misses));
        Assert.Equal(7, Find(t, 0x1800, 4).Owner);         // the first lookup searches (the caches name no snapshot yet)
        Assert.Equal((0L, 1L), (t.Hits, t.Misses));
        Assert.Equal(7, Find(t, 0x1000, 4).Owner);
        Assert.Equal((1L, 1L), (t.Hits, t.Misses));
        Assert.Equal(0, Find(t, 0x3000, 4).Owner);         // a search: the gap [0x2000, 0x4000)
        Assert.Equal((1L, 2L), (t.Hits, t.Misses));
        Assert.Equal(0, Find(t, 0x2000, 4).Owner);         // the gap's first byte
        Assert.Equal(0, Find(t, 0x3FFC, 4).Owner);         // ends on the next range's first byte, not in it
        Assert.Equal((3L, 2L), (t.Hits, t.Misses));
        Assert.Equal(9, Find(t, 0x4000, 4, vcpu: 1).Owner);   // another vCPU's lookups are counted too
        Assert.Equal(9, Find(t, 0x4000, 4, vcpu: 1).Owner);
        Assert.Equal((4L, 3L), (t.Hits, t.Misses));
    }

    [Fact]
    public void A_table_whose_remove_found_nothing_keeps_its_caches()
    {
        var t = Two();
        Find(t, 0x1800, 4);
        Assert.Equal(0, t.RemoveOwner(99));
        Assert.Equal(7, Find(t, 0x1800, 4).Owner);
        Assert.Equal((1L, 1L), (t.Hits, t.Misses));
    }

    [Fact]
    public void A_gap_cached_before_an_add_and_a_remove_is_not_taken_for_the_table_after_them()
    {
        // Every change names a new snapshot: a version that went back to an earlier one's would make that one's gap valid.
        // The last range hit stays the first one, which the address below is not in, so only the gap could answer.
        var t = new MmioRangeTable(1);
        Assert.True(t.TryAdd(0x0100, 0x100, 5));
        Assert.True(t.TryAdd(0x1000, 0x1000, 7));
        Assert.Equal(5, Find(t, 0x0100, 4).Owner);
        Assert.Equal(0, Find(t, 0x3000, 4).Owner);          // the gap [0x2000, top)
        Assert.True(t.TryAdd(0x3000, 0x10, 11));
        Assert.Equal(1, t.RemoveOwner(7));
        Assert.Equal((11, 0x3000UL, false), Find(t, 0x3000, 4));
        Assert.Equal((11, 0x3000UL, false), Find(t, 0x3008, 4));
    }

    [Fact]
    public void The_first_lookup_after_the_first_range_searches()
    {
        // The caches start naming no snapshot at all (not the first one's version).
        var t = new MmioRangeTable(1);
        Assert.True(t.TryAdd(0x1000, 0x1000, 7));
        Assert.Equal(7, Find(t, 0x1000, 4).Owner);
        Assert.Equal((0L, 1L), (t.Hits, t.Misses));
    }

    [Fact]
    public void Overlapping_empty_wrapping_and_ownerless_ranges_are_refused()
    {
        var t = Two();
        Assert.False(t.TryAdd(0x1800, 0x1000, 3));
        Assert.False(t.TryAdd(0x0800, 0x1000, 3));
        Assert.False(t.TryAdd(0x5000, 0, 3));
        Assert.False(t.TryAdd(ulong.MaxValue - 1, 4, 3));
        Assert.False(t.TryAdd(0x5000, 0x10, 0));
        Assert.True(t.TryAdd(0x2000, 0x2000, 3));   // exactly between the two
        Assert.Equal(3, t.Count);
    }
}

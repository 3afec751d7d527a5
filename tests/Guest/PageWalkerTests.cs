using Copra.Hot.Guest;
using Xunit;

namespace Copra.Tests.Guest;

/// <summary>The software page walk: every paging mode and page size, and every fault with its exact #PF error code.</summary>
public sealed class PageWalkerTests : IDisposable
{
    const ulong MiB = 1UL << 20;
    const ulong Tables = 1 * MiB;       // table pages live in [1 MiB, 2 MiB)
    readonly GuestMemory _mem = new(16 * MiB);

    public void Dispose() => _mem.Dispose();

    static readonly PagingMode Long4 = PagingMode.From(GuestCpuState.Cr0Pe | GuestCpuState.Cr0Pg | GuestCpuState.Cr0Wp,
        GuestCpuState.Cr4Pae, GuestCpuState.EferLme | GuestCpuState.EferLma | GuestCpuState.EferNxe);
    static readonly PagingMode Long5 = PagingMode.From(GuestCpuState.Cr0Pe | GuestCpuState.Cr0Pg | GuestCpuState.Cr0Wp,
        GuestCpuState.Cr4Pae | GuestCpuState.Cr4La57, GuestCpuState.EferLme | GuestCpuState.EferLma | GuestCpuState.EferNxe);
    static readonly PagingMode Pae = PagingMode.From(GuestCpuState.Cr0Pe | GuestCpuState.Cr0Pg | GuestCpuState.Cr0Wp,
        GuestCpuState.Cr4Pae, GuestCpuState.EferNxe);
    static readonly PagingMode Legacy = PagingMode.From(GuestCpuState.Cr0Pe | GuestCpuState.Cr0Pg | GuestCpuState.Cr0Wp,
        GuestCpuState.Cr4Pse, 0);

    PageTableBuilder Tables4() => new(_mem, PagingKind.Level4, Tables, MiB);

    static WalkResult Walk(GuestMemory m, PagingMode mode, ulong cr3, ulong linear, AccessType a, out ulong gpa) =>
        PageWalker.Translate(m, mode, cr3, linear, a, out gpa);

    [Fact]
    public void Mode_is_derived_from_cr0_cr4_efer()
    {
        Assert.Equal(PagingKind.Level4, Long4.Kind);
        Assert.Equal(PagingKind.Level5, Long5.Kind);
        Assert.Equal(PagingKind.Pae, Pae.Kind);
        Assert.Equal(PagingKind.Legacy32, Legacy.Kind);
        Assert.True(Long4.NoExecute && Long4.WriteProtect && Long4.LongMode);
        Assert.True(Legacy.Pse && !Legacy.NoExecute);
        Assert.Equal(PagingKind.None, PagingMode.From(GuestCpuState.Cr0Pe, GuestCpuState.Cr4Pae, 0).Kind);
        Assert.Equal(PagingKind.None, PagingMode.From(GuestCpuState.Cr0Pg, 0, 0).Kind); // PG without PE is not paging
    }

    [Fact]
    public void Without_paging_linear_is_physical_truncated_to_32_bits()
    {
        PagingMode none = PagingMode.From(GuestCpuState.Cr0Pe, 0, 0);
        Assert.True(Walk(_mem, none, 0, 0x1_0000_1234, AccessType.Execute, out ulong gpa).IsOk);
        Assert.Equal(0x1234UL, gpa);
    }

    [Theory]
    [InlineData(PageSize.Size4K, 0x0000_7F12_3456_7000UL, 0x0020_0000UL, 0xABCUL)]
    [InlineData(PageSize.Size2M, 0xFFFF_8000_0020_0000UL, 0x0040_0000UL, 0x1_2345UL)]
    [InlineData(PageSize.Size1G, 0xFFFF_FFFF_C000_0000UL, 0x40_0000_0000UL, 0x3ABC_DEF0UL)]
    public void Four_level_translates_every_page_size(PageSize size, ulong linear, ulong phys, ulong offset)
    {
        PageTableBuilder pt = Tables4();
        ulong len = size switch { PageSize.Size4K => 0x1000UL, PageSize.Size2M => 2 * MiB, _ => 1UL << 30 };
        pt.Map(linear, phys, len, size, writable: true, executable: true);
        Assert.True(Walk(_mem, Long4, pt.Cr3, linear + offset, AccessType.Write, out ulong gpa).IsOk);
        Assert.Equal(phys + offset, gpa);
    }

    [Fact]
    public void Five_level_translates_addresses_above_48_bits()
    {
        var pt = new PageTableBuilder(_mem, PagingKind.Level5, Tables, MiB);
        const ulong linear = 0x00AB_CDEF_1234_5000UL; // bit 56 clear: canonical under LA57, not under 4-level
        pt.Map(linear, 0x30_0000, 0x1000, PageSize.Size4K, true, true);
        pt.Map(0xFF00_0000_0000_0000UL, 0x40_0000, 2 * MiB, PageSize.Size2M, true, true);
        Assert.True(Walk(_mem, Long5, pt.Cr3, linear + 0x10, AccessType.Read, out ulong gpa).IsOk);
        Assert.Equal(0x30_0010UL, gpa);
        Assert.True(Walk(_mem, Long5, pt.Cr3, 0xFF00_0000_0010_0000UL, AccessType.Read, out gpa).IsOk);
        Assert.Equal(0x50_0000UL, gpa);
    }

    [Theory]
    [InlineData(PageSize.Size4K, 0xC000_1000UL, 0x0023_4000UL, 0x123UL)]
    [InlineData(PageSize.Size2M, 0x8060_0000UL, 0x1_0000_0000UL, 0x1_5678UL)]
    public void Pae_translates_4k_and_2m_pages(PageSize size, ulong linear, ulong phys, ulong offset)
    {
        var pt = new PageTableBuilder(_mem, PagingKind.Pae, Tables, MiB);
        pt.Map(linear, phys, size == PageSize.Size4K ? 0x1000UL : 2 * MiB, size, true, true);
        Assert.True(Walk(_mem, Pae, pt.Cr3, linear + offset, AccessType.Execute, out ulong gpa).IsOk);
        Assert.Equal(phys + offset, gpa);
    }

    [Theory]
    [InlineData(PageSize.Size4K, 0xC000_1000UL, 0x0023_4000UL, 0x123UL)]
    [InlineData(PageSize.Size4M, 0x8040_0000UL, 0x12_0080_0000UL, 0x31_2345UL)] // PSE-36: physical bits 39:32 from PDE 20:13
    public void Legacy_32_bit_translates_4k_and_4m_pages(PageSize size, ulong linear, ulong phys, ulong offset)
    {
        var pt = new PageTableBuilder(_mem, PagingKind.Legacy32, Tables, MiB);
        pt.Map(linear, phys, size == PageSize.Size4K ? 0x1000UL : 4 * MiB, size, true, true);
        Assert.True(Walk(_mem, Legacy, pt.Cr3, linear + offset, AccessType.Write, out ulong gpa).IsOk);
        Assert.Equal(phys + offset, gpa);
    }

    [Fact]
    public void Legacy_ps_bit_without_cr4_pse_points_at_a_page_table()
    {
        var pt = new PageTableBuilder(_mem, PagingKind.Legacy32, Tables, MiB);
        pt.Map(0x0040_0000, 0x0080_0000, 4 * MiB, PageSize.Size4M, true, true);
        PagingMode noPse = PagingMode.From(GuestCpuState.Cr0Pe | GuestCpuState.Cr0Pg, 0, 0);
        // The PDE's address field (0x0080_0000) now names a page table, which is zero: not present at level 1.
        WalkResult r = Walk(_mem, noPse, pt.Cr3, 0x0040_0000, AccessType.Read, out _);
        Assert.Equal(WalkResult.PageFault(0, 0x0040_0000, 1), r);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(3)]
    [InlineData(2)]
    [InlineData(1)]
    public void Not_present_at_each_level_is_a_pf_with_p_clear(int level)
    {
        PageTableBuilder pt = Tables4();
        const ulong linear = 0x0000_1234_5678_9000UL;
        pt.Map(linear, 0x20_0000, 0x1000, PageSize.Size4K, true, true);
        ulong entry = pt.EntryAddress(linear, level);
        _mem.WriteU64(entry, _mem.ReadU64(entry) & ~1UL);
        Assert.Equal(WalkResult.PageFault(PageFaultError.Write, linear + 8, level),
            Walk(_mem, Long4, pt.Cr3, linear + 8, AccessType.Write, out ulong gpa));
        Assert.Equal(0UL, gpa);
        Assert.Equal(WalkResult.PageFault(PageFaultError.Fetch | PageFaultError.User, linear, level),
            Walk(_mem, Long4, pt.Cr3, linear, AccessType.Execute | AccessType.User, out _));
    }

    [Fact]
    public void Write_to_read_only_faults_for_supervisor_only_with_cr0_wp()
    {
        PageTableBuilder pt = Tables4();
        pt.Map(0x40_0000, 0x40_0000, 0x1000, PageSize.Size4K, writable: false, executable: true, user: true);
        Assert.Equal(WalkResult.PageFault(PageFaultError.Present | PageFaultError.Write, 0x40_0010),
            Walk(_mem, Long4, pt.Cr3, 0x40_0010, AccessType.Write, out _));
        PagingMode noWp = PagingMode.From(GuestCpuState.Cr0Pe | GuestCpuState.Cr0Pg, GuestCpuState.Cr4Pae,
            GuestCpuState.EferLma | GuestCpuState.EferNxe);
        Assert.True(Walk(_mem, noWp, pt.Cr3, 0x40_0010, AccessType.Write, out _).IsOk);
        Assert.Equal(WalkResult.PageFault(PageFaultError.Present | PageFaultError.Write | PageFaultError.User, 0x40_0010),
            Walk(_mem, noWp, pt.Cr3, 0x40_0010, AccessType.Write | AccessType.User, out _));
    }

    [Fact]
    public void User_access_to_supervisor_page_faults_with_p_and_u()
    {
        PageTableBuilder pt = Tables4();
        pt.Map(0x40_0000, 0x40_0000, 0x1000, PageSize.Size4K, true, true, user: false);
        Assert.Equal(WalkResult.PageFault(PageFaultError.Present | PageFaultError.User, 0x40_0000),
            Walk(_mem, Long4, pt.Cr3, 0x40_0000, AccessType.Read | AccessType.User, out _));
        Assert.True(Walk(_mem, Long4, pt.Cr3, 0x40_0000, AccessType.Read, out _).IsOk);
    }

    [Fact]
    public void Fetch_from_xd_page_faults_with_p_and_id_when_nxe()
    {
        PageTableBuilder pt = Tables4();
        pt.Map(0x40_0000, 0x40_0000, 2 * MiB, PageSize.Size2M, writable: true, executable: false);
        Assert.Equal(WalkResult.PageFault(PageFaultError.Present | PageFaultError.Fetch, 0x40_0100),
            Walk(_mem, Long4, pt.Cr3, 0x40_0100, AccessType.Execute, out _));
        Assert.True(Walk(_mem, Long4, pt.Cr3, 0x40_0100, AccessType.Read, out _).IsOk);
    }

    [Fact]
    public void Xd_bit_without_nxe_is_a_reserved_bit_fault()
    {
        PageTableBuilder pt = Tables4();
        pt.Map(0x40_0000, 0x40_0000, 0x1000, PageSize.Size4K, writable: true, executable: false);
        PagingMode noNxe = PagingMode.From(GuestCpuState.Cr0Pe | GuestCpuState.Cr0Pg, GuestCpuState.Cr4Pae, GuestCpuState.EferLma);
        // Without NXE the I/D bit is not reported.
        Assert.Equal(WalkResult.PageFault(PageFaultError.Present | PageFaultError.Reserved, 0x40_0000, 1),
            Walk(_mem, noNxe, pt.Cr3, 0x40_0000, AccessType.Execute, out _));
    }

    [Fact]
    public void Ps_in_pml4e_is_reserved()
    {
        PageTableBuilder pt = Tables4();
        pt.Map(0x40_0000, 0x40_0000, 0x1000, PageSize.Size4K, true, true);
        ulong e = pt.EntryAddress(0x40_0000, 4);
        _mem.WriteU64(e, _mem.ReadU64(e) | 0x80);
        Assert.Equal(WalkResult.PageFault(PageFaultError.Present | PageFaultError.Reserved, 0x40_0000, 4),
            Walk(_mem, Long4, pt.Cr3, 0x40_0000, AccessType.Read, out _));
    }

    [Theory]
    [InlineData(PageSize.Size2M, 2, 13)]
    [InlineData(PageSize.Size2M, 2, 20)]
    [InlineData(PageSize.Size1G, 3, 13)]
    [InlineData(PageSize.Size1G, 3, 29)]
    public void Large_page_alignment_bits_are_reserved(PageSize size, int level, int bit)
    {
        PageTableBuilder pt = Tables4();
        pt.Map(0x4000_0000, 0x4000_0000, size == PageSize.Size2M ? 2 * MiB : 1UL << 30, size, true, true);
        ulong e = pt.EntryAddress(0x4000_0000, level);
        _mem.WriteU64(e, _mem.ReadU64(e) | (1UL << bit));
        Assert.Equal(WalkResult.PageFault(PageFaultError.Present | PageFaultError.Reserved | PageFaultError.Write, 0x4000_0000, level),
            Walk(_mem, Long4, pt.Cr3, 0x4000_0000, AccessType.Write, out _));
    }

    [Fact]
    public void Pae_reserves_bits_62_to_52_and_pdpte_rw()
    {
        var pt = new PageTableBuilder(_mem, PagingKind.Pae, Tables, MiB);
        pt.Map(0x40_0000, 0x40_0000, 0x1000, PageSize.Size4K, true, true);
        ulong pte = pt.EntryAddress(0x40_0000, 1);
        _mem.WriteU64(pte, _mem.ReadU64(pte) | (1UL << 52));
        Assert.Equal(WalkResult.PageFault(PageFaultError.Present | PageFaultError.Reserved, 0x40_0000, 1),
            Walk(_mem, Pae, pt.Cr3, 0x40_0000, AccessType.Read, out _));
        ulong pdpte = pt.EntryAddress(0x40_0000, 3);
        _mem.WriteU64(pdpte, _mem.ReadU64(pdpte) | 2);
        Assert.Equal(WalkResult.PageFault(PageFaultError.Present | PageFaultError.Reserved, 0x40_0000, 3),
            Walk(_mem, Pae, pt.Cr3, 0x40_0000, AccessType.Read, out _));
    }

    [Fact]
    public void Legacy_4m_page_bit_21_is_reserved()
    {
        var pt = new PageTableBuilder(_mem, PagingKind.Legacy32, Tables, MiB);
        pt.Map(0x0040_0000, 0x0040_0000, 4 * MiB, PageSize.Size4M, true, true);
        ulong pde = pt.EntryAddress(0x0040_0000, 2);
        _mem.WriteU32(pde, _mem.ReadU32(pde) | (1u << 21));
        Assert.Equal(WalkResult.PageFault(PageFaultError.Present | PageFaultError.Reserved, 0x0040_0000, 2),
            Walk(_mem, Legacy, pt.Cr3, 0x0040_0000, AccessType.Execute, out _));
    }

    [Fact]
    public void Table_pointer_past_guest_memory_is_a_guest_fault_not_a_kernel_error()
    {
        PageTableBuilder pt = Tables4();
        pt.Map(0x40_0000, 0x40_0000, 0x1000, PageSize.Size4K, true, true);
        ulong pde = pt.EntryAddress(0x40_0000, 2);
        _mem.WriteU64(pde, 0x7_0000_0000UL | 0x7); // a page table at 28 GiB, far outside 16 MiB of RAM
        WalkResult r = Walk(_mem, Long4, pt.Cr3, 0x40_0000, AccessType.Read, out _);
        Assert.Equal(WalkResult.PageFault(PageFaultError.Present | PageFaultError.Reserved, 0x40_0000, 1, tableOutsideMemory: true), r);

        r = Walk(_mem, Long4, 0xFFFF_F000UL, 0x40_0000, AccessType.Read, out _); // CR3 itself outside memory
        Assert.True(r.TableOutsideMemory);
        Assert.Equal(4, r.Level);
        r = Walk(_mem, Legacy, 0xFFFF_F000UL, 0x40_0000, AccessType.Read, out _);
        Assert.True(r.TableOutsideMemory);
    }

    [Theory]
    [InlineData(0x0000_8000_0000_0000UL)]
    [InlineData(0xFFFF_7FFF_FFFF_F000UL)]
    [InlineData(0x0100_0000_0000_0000UL)]
    public void Non_canonical_address_is_a_general_protection_fault(ulong linear)
    {
        PageTableBuilder pt = Tables4();
        Assert.Equal(WalkResult.GeneralProtection(linear), Walk(_mem, Long4, pt.Cr3, linear, AccessType.Execute, out _));
    }

    [Fact]
    public void La57_widens_the_canonical_range()
    {
        Assert.True(PageWalker.IsCanonical(0x0000_8000_0000_0000UL, 57));
        Assert.False(PageWalker.IsCanonical(0x0000_8000_0000_0000UL, 48));
        Assert.False(PageWalker.IsCanonical(0x0100_0000_0000_0000UL, 57));
        Assert.True(PageWalker.IsCanonical(0xFF00_0000_0000_0000UL, 57));
    }

    [Fact]
    public void Rights_combine_across_levels()
    {
        PageTableBuilder pt = Tables4();
        pt.Map(0x40_0000, 0x40_0000, 0x1000, PageSize.Size4K, writable: true, executable: true, user: true);
        ulong pdpte = pt.EntryAddress(0x40_0000, 3);
        _mem.WriteU64(pdpte, _mem.ReadU64(pdpte) & ~2UL);            // R/W clear one level up
        Assert.Equal(WalkResult.PageFault(PageFaultError.Present | PageFaultError.Write, 0x40_0000),
            Walk(_mem, Long4, pt.Cr3, 0x40_0000, AccessType.Write, out _));
        ulong pde = pt.EntryAddress(0x40_0000, 2);
        _mem.WriteU64(pde, _mem.ReadU64(pde) | (1UL << 63));         // XD on a non-leaf
        Assert.Equal(WalkResult.PageFault(PageFaultError.Present | PageFaultError.Fetch, 0x40_0000),
            Walk(_mem, Long4, pt.Cr3, 0x40_0000, AccessType.Execute, out _));
    }
}

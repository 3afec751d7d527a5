// PageTableBuilder: writes page tables into guest memory the way a guest
// kernel would, so both the software walker and real hardware (the KVM
// backend) accept them.
//
// Table pages come from a caller-given region, bump-allocated and zeroed.
// Intermediate entries are P|RW|US (long mode / PAE PD level) so permissions
// are decided by the leaf alone; PAE PDPTEs are P only, because R/W and U/S are
// reserved there and a CPU would refuse the CR3 load. Leaves carry A and D so
// the CPU never has to write them. Mapping over an existing large page, or a
// large page over an existing table, is a builder misuse and throws.
namespace Copra.Hot.Guest;

/// <summary>Size of a mapping made by <see cref="PageTableBuilder.Map"/>.</summary>
public enum PageSize : byte
{
    /// <summary>4 KiB (every paging kind).</summary>
    Size4K = 0,
    /// <summary>2 MiB (PAE, 4-level, 5-level).</summary>
    Size2M = 1,
    /// <summary>4 MiB (32-bit paging; the guest needs CR4.PSE).</summary>
    Size4M = 2,
    /// <summary>1 GiB (4-level, 5-level).</summary>
    Size1G = 3,
}

/// <summary>Builds 32-bit, PAE, 4-level or 5-level page tables in guest memory.</summary>
public sealed class PageTableBuilder
{
    const ulong P = 1UL << 0, RW = 1UL << 1, US = 1UL << 2, A = 1UL << 5, D = 1UL << 6, PS = 1UL << 7, XD = 1UL << 63;
    const ulong AddressMask = 0x000F_FFFF_FFFF_F000UL;
    const ulong Page = GuestMemory.PageSize;

    readonly GuestMemory _mem;
    readonly ulong _regionEnd;
    ulong _next;

    /// <summary>
    /// Creates a builder whose table pages come from [regionBase, regionBase+regionSize) and allocates the root
    /// table. The region must be page-aligned and inside guest memory.
    /// </summary>
    public PageTableBuilder(GuestMemory mem, PagingKind kind, ulong regionBase, ulong regionSize)
    {
        if (kind == PagingKind.None) throw new ArgumentException("no paging means no tables", nameof(kind));
        if ((regionBase & (Page - 1)) != 0 || (regionSize & (Page - 1)) != 0 || !mem.Contains(regionBase, regionSize))
            throw new ArgumentOutOfRangeException(nameof(regionBase), "table region must be page-aligned and inside guest memory");
        if (kind != PagingKind.Level4 && kind != PagingKind.Level5 && regionBase + regionSize > 0x1_0000_0000UL)
            throw new ArgumentOutOfRangeException(nameof(regionBase), "32-bit and PAE CR3 must point below 4 GiB");
        _mem = mem;
        Kind = kind;
        _next = regionBase;
        _regionEnd = regionBase + regionSize;
        Root = AllocatePage();
    }

    /// <summary>The paging kind these tables are for.</summary>
    public PagingKind Kind { get; }
    /// <summary>Guest-physical address of the root table (PML5/PML4/PDPT/PD).</summary>
    public ulong Root { get; }
    /// <summary>The CR3 value to load (the root address; PWT/PCD/PCID zero).</summary>
    public ulong Cr3 => Root;
    /// <summary>Table pages used so far, including the root.</summary>
    public int TablePages { get; private set; }

    /// <summary>Maps [linear, linear+length) to [phys, phys+length) with pages of <paramref name="size"/>.</summary>
    /// <remarks>linear, phys and length must be multiples of the page size. 32-bit paging has no XD bit, so
    /// executable must be true there. phys need not lie inside guest memory (MMIO may be mapped).</remarks>
    public PageTableBuilder Map(ulong linear, ulong phys, ulong length, PageSize size, bool writable, bool executable, bool user = false)
    {
        ulong pageBytes = Bytes(size);
        if (!Supports(size)) throw new ArgumentException($"{Kind} paging has no {size} pages", nameof(size));
        if (((linear | phys | length) & (pageBytes - 1)) != 0 || length == 0)
            throw new ArgumentException($"linear, phys and length must be non-zero multiples of {pageBytes:X}");
        if (!executable && Kind == PagingKind.Legacy32)
            throw new ArgumentException("32-bit paging cannot express a non-executable page", nameof(executable));
        for (ulong off = 0; off < length; off += pageBytes)
            MapOne(linear + off, phys + off, size, writable, executable, user);
        return this;
    }

    /// <summary>Identity-maps [phys, phys+length) writable and executable.</summary>
    public PageTableBuilder Identity(ulong phys, ulong length, PageSize size) => Map(phys, phys, length, size, true, true);

    /// <summary>
    /// The guest-physical address of the entry that translates <paramref name="linear"/> at <paramref name="level"/>
    /// (top level = 5/4 in long mode, 3 = PDPTE in PAE, 2 = PDE in 32-bit paging; 1 = PTE). For tests that corrupt
    /// entries. Throws when the table at that level does not exist.
    /// </summary>
    public ulong EntryAddress(ulong linear, int level)
    {
        int top = TopLevel;
        if (level < 1 || level > top) throw new ArgumentOutOfRangeException(nameof(level));
        ulong table = Root;
        for (int l = top; ; l--)
        {
            ulong addr = table + Index(linear, l) * EntrySize;
            if (l == level) return addr;
            ulong e = ReadEntry(addr);
            if ((e & P) == 0 || IsLargeLeaf(e, l))
                throw new InvalidOperationException($"no table below level {l} for {linear:X}");
            table = EntryTable(e);
        }
    }

    int TopLevel => Kind switch { PagingKind.Level5 => 5, PagingKind.Level4 => 4, PagingKind.Pae => 3, _ => 2 };
    int LargeLevelMax => Kind switch { PagingKind.Legacy32 or PagingKind.Pae => 2, _ => 3 };

    /// <summary>A present entry at <paramref name="level"/> that maps a large page rather than pointing at a table.</summary>
    bool IsLargeLeaf(ulong e, int level) => level > 1 && level <= LargeLevelMax && (e & PS) != 0;
    ulong EntrySize => Kind == PagingKind.Legacy32 ? 4UL : 8UL;

    bool Supports(PageSize size) => size switch
    {
        PageSize.Size4K => true,
        PageSize.Size2M => Kind != PagingKind.Legacy32,
        PageSize.Size4M => Kind == PagingKind.Legacy32,
        PageSize.Size1G => Kind is PagingKind.Level4 or PagingKind.Level5,
        _ => false,
    };

    static ulong Bytes(PageSize size) => size switch
    {
        PageSize.Size2M => 1UL << 21,
        PageSize.Size4M => 1UL << 22,
        PageSize.Size1G => 1UL << 30,
        _ => Page,
    };

    static int LeafLevel(PageSize size) => size switch
    {
        PageSize.Size4K => 1,
        PageSize.Size1G => 3,
        _ => 2,
    };

    ulong Index(ulong linear, int level) => Kind switch
    {
        PagingKind.Legacy32 => (linear >> (12 + 10 * (level - 1))) & 0x3FF,
        PagingKind.Pae when level == 3 => (linear >> 30) & 3,
        _ => (linear >> (12 + 9 * (level - 1))) & 511,
    };

    ulong ReadEntry(ulong addr) => Kind == PagingKind.Legacy32 ? _mem.ReadU32(addr) : _mem.ReadU64(addr);

    void WriteEntry(ulong addr, ulong e)
    {
        if (Kind == PagingKind.Legacy32) _mem.WriteU32(addr, (uint)e);
        else _mem.WriteU64(addr, e);
    }

    ulong EntryTable(ulong e) => Kind == PagingKind.Legacy32 ? e & 0xFFFF_F000UL : e & AddressMask;

    void MapOne(ulong linear, ulong phys, PageSize size, bool writable, bool executable, bool user)
    {
        switch (Kind)
        {
            case PagingKind.Level4 when !PageWalker.IsCanonical(linear, 48):
            case PagingKind.Level5 when !PageWalker.IsCanonical(linear, 57):
                throw new ArgumentOutOfRangeException(nameof(linear), $"{linear:X} is not canonical");
            case PagingKind.Pae or PagingKind.Legacy32 when linear > 0xFFFF_FFFFUL:
                throw new ArgumentOutOfRangeException(nameof(linear), "32-bit linear addresses only");
            case PagingKind.Legacy32 when size == PageSize.Size4K && phys > 0xFFFF_FFFFUL:
            case PagingKind.Legacy32 when phys >= 1UL << 40:
                throw new ArgumentOutOfRangeException(nameof(phys), "32-bit paging reaches 4 GiB with 4 KiB pages, 1 TiB with 4 MiB pages");
        }
        if (phys > AddressMask) throw new ArgumentOutOfRangeException(nameof(phys), "beyond MAXPHYADDR 52");

        int leaf = LeafLevel(size);
        ulong table = Root;
        for (int level = TopLevel; level > leaf; level--)
        {
            ulong addr = table + Index(linear, level) * EntrySize;
            ulong e = ReadEntry(addr);
            if ((e & P) == 0)
            {
                ulong next = AllocatePage();
                e = Kind == PagingKind.Pae && level == 3 ? next | P : next | P | RW | US;
                WriteEntry(addr, e);
            }
            else if (IsLargeLeaf(e, level))
            {
                throw new InvalidOperationException($"{linear:X} is already inside a large page at level {level}");
            }
            table = EntryTable(e);
        }

        ulong leafAddr = table + Index(linear, leaf) * EntrySize;
        ulong old = ReadEntry(leafAddr);
        if (leaf > 1 && (old & P) != 0 && (old & PS) == 0)
            throw new InvalidOperationException($"{linear:X} already has a page table below level {leaf}; a large page would orphan it");

        ulong entry = P | A | D | (writable ? RW : 0) | (user ? US : 0);
        if (leaf > 1) entry |= PS;
        if (Kind == PagingKind.Legacy32)
        {
            // 4 MiB PDE: bits 31:22 = phys 31:22, bits 20:13 = phys 39:32 (PSE-36).
            entry |= size == PageSize.Size4M ? (phys & 0xFFC0_0000UL) | (((phys >> 32) & 0xFF) << 13) : phys & 0xFFFF_F000UL;
        }
        else
        {
            entry |= phys & AddressMask;
            if (!executable) entry |= XD;
        }
        WriteEntry(leafAddr, entry);
    }

    ulong AllocatePage()
    {
        if (_next >= _regionEnd) throw new InvalidOperationException("page-table region exhausted");
        ulong page = _next;
        _next += Page;
        _mem.Clear(page, (int)Page);
        TablePages++;
        return page;
    }
}

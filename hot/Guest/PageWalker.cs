// PageWalker: a software walk of the guest's own page tables, done when the
// kernel must read the instruction behind an exit (and for string MMIO, the
// memory operand). It follows SDM vol. 3 chapter 4 for supervisor and user
// accesses:
//
//   no paging   linear (32-bit) = physical
//   32-bit      CR3 -> PD (1024 x 4 B) -> PT, or a 4 MiB page when CR4.PSE and PDE.PS (PSE-36, M = 40)
//   PAE         CR3 -> PDPT (4 x 8 B) -> PD -> PT, or 2 MiB pages
//   4-level     CR3 -> PML4 -> PDPT (1 GiB) -> PD (2 MiB) -> PT (4 KiB)
//   5-level     CR3 -> PML5 -> PML4 -> ...
//
// Faults are reported in SDM order: a not-present entry (P=0) or a present entry
// with reserved bits (P=1, RSVD=1) stops the walk at that level; access rights
// (R/W with CR0.WP, U/S, XD with EFER.NXE) are checked on the combined rights of
// all levels once the leaf is reached. MAXPHYADDR is 52, so in long mode the only
// reserved bits are PS in PML4E/PML5E, XD without NXE and the alignment bits of
// large pages; PAE additionally reserves bits 62:52.
//
// Deliberate differences from silicon, each harmless for the kernel's use:
// - Accessed/dirty bits are not set: the CPU already fetched the instruction (and
//   set them) before it exited; the kernel only re-reads.
// - PAE PDPTEs are read at walk time, not cached at CR3 load; a reserved bit in one
//   is a #PF with RSVD rather than a #GP at MOV CR3.
// - A paging-structure entry whose address lies outside guest memory is a #PF with
//   P|RSVD (as if it read all-ones), never a kernel error.
// No allocation; the walk is a loop over at most five 8-byte loads.
using System.Runtime.CompilerServices;

namespace Copra.Hot.Guest;

/// <summary>Translates guest linear addresses through the guest's page tables.</summary>
public static unsafe class PageWalker
{
    const ulong P = 1UL << 0, RW = 1UL << 1, US = 1UL << 2, PS = 1UL << 7, XD = 1UL << 63;
    /// <summary>Bits 51:12: physical-address field of a 64-bit entry with MAXPHYADDR 52.</summary>
    const ulong AddressMask = 0x000F_FFFF_FFFF_F000UL;
    /// <summary>PAE PDE/PTE bits 62:52 are reserved (4-level ignores them).</summary>
    const ulong PaeHighReserved = 0x7FF0_0000_0000_0000UL;
    /// <summary>PAE PDPTE: bits 2:1, 8:5 and 63:52 are reserved.</summary>
    const ulong PdpteReserved = 0xFFF0_0000_0000_01E6UL;
    /// <summary>Bits 20:13 of a 2 MiB leaf (the PAT bit is 12).</summary>
    const ulong Large2MReserved = 0x0000_0000_001F_E000UL;
    /// <summary>Bits 29:13 of a 1 GiB leaf.</summary>
    const ulong Large1GReserved = 0x0000_0000_3FFF_E000UL;
    /// <summary>32-bit 4 MiB PDE: bit 21 is reserved when M = 40 (bits 20:13 hold physical bits 39:32).</summary>
    const uint Pde4MReserved = 1u << 21;

    /// <summary>
    /// Translates <paramref name="linear"/> for <paramref name="access"/>. On Ok, <paramref name="gpa"/> is the
    /// guest-physical address (not checked against guest memory: it may be MMIO). Otherwise the result is the
    /// exception the guest must see and gpa is 0. Never throws for any guest-controlled input.
    /// </summary>
    public static WalkResult Translate(GuestMemory mem, in PagingMode mode, ulong cr3, ulong linear, AccessType access, out ulong gpa)
    {
        switch (mode.Kind)
        {
            case PagingKind.None:
                gpa = linear & 0xFFFF_FFFFUL;
                return WalkResult.Ok;
            case PagingKind.Legacy32:
                return Walk32(mem, mode, cr3, (uint)linear, access, out gpa);
            default:
                return Walk64(mem, mode, cr3, linear, access, out gpa);
        }
    }

    /// <summary>True when <paramref name="linear"/> is canonical for a linear width of <paramref name="bits"/> (48 or 57).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsCanonical(ulong linear, int bits)
    {
        int shift = 64 - bits;
        return (ulong)((long)(linear << shift) >> shift) == linear;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static uint BaseError(AccessType access, bool reportFetch)
    {
        uint e = 0;
        if ((access & AccessType.Write) != 0) e |= PageFaultError.Write;
        if ((access & AccessType.User) != 0) e |= PageFaultError.User;
        if (reportFetch && (access & AccessType.Execute) != 0) e |= PageFaultError.Fetch;
        return e;
    }

    static WalkResult Walk64(GuestMemory mem, in PagingMode mode, ulong cr3, ulong linear, AccessType access, out ulong gpa)
    {
        gpa = 0;
        bool nxe = mode.NoExecute;
        uint err = BaseError(access, nxe || (access & AccessType.Smep) != 0);
        ulong reserved = nxe ? 0 : XD;
        ulong table;
        int level;
        byte* b = mem.Base;

        if (mode.Kind == PagingKind.Pae)
        {
            linear &= 0xFFFF_FFFFUL;
            ulong pdpteAddr = (cr3 & 0xFFFF_FFE0UL) + ((linear >> 30) & 3) * 8;
            if (!mem.Contains(pdpteAddr, 8))
                return WalkResult.PageFault(err | PageFaultError.Present | PageFaultError.Reserved, linear, 3, true);
            // SAFETY: Contains proved the 8 bytes at pdpteAddr lie inside guest memory.
            ulong pdpte = Unsafe.ReadUnaligned<ulong>(b + pdpteAddr);
            if ((pdpte & P) == 0) return WalkResult.PageFault(err, linear, 3);
            if ((pdpte & PdpteReserved) != 0)
                return WalkResult.PageFault(err | PageFaultError.Present | PageFaultError.Reserved, linear, 3);
            table = pdpte & AddressMask;
            level = 2;
            reserved |= PaeHighReserved;
        }
        else
        {
            int bits = mode.Kind == PagingKind.Level5 ? 57 : 48;
            if (!IsCanonical(linear, bits)) return WalkResult.GeneralProtection(linear);
            table = cr3 & AddressMask;
            level = mode.Kind == PagingKind.Level5 ? 5 : 4;
        }

        bool writable = true, user = true, noExec = false;
        for (; ; level--)
        {
            int shift = 12 + 9 * (level - 1);
            ulong entryAddr = table + ((linear >> shift) & 511) * 8;
            if (!mem.Contains(entryAddr, 8))
                return WalkResult.PageFault(err | PageFaultError.Present | PageFaultError.Reserved, linear, level, true);
            // SAFETY: Contains proved the 8 bytes at entryAddr lie inside guest memory.
            ulong e = Unsafe.ReadUnaligned<ulong>(b + entryAddr);
            if ((e & P) == 0) return WalkResult.PageFault(err, linear, level);

            bool leaf = level == 1 || (level <= 3 && (e & PS) != 0);
            ulong rsvd = reserved;
            if (level >= 4) rsvd |= PS;
            else if (leaf && level == 2) rsvd |= Large2MReserved;
            else if (leaf && level == 3) rsvd |= Large1GReserved;
            if ((e & rsvd) != 0)
                return WalkResult.PageFault(err | PageFaultError.Present | PageFaultError.Reserved, linear, level);

            writable &= (e & RW) != 0;
            user &= (e & US) != 0;
            noExec |= nxe && (e & XD) != 0;
            if (leaf)
            {
                ulong offsetMask = (1UL << shift) - 1;
                gpa = (e & AddressMask & ~offsetMask) | (linear & offsetMask);
                break;
            }
            table = e & AddressMask;
        }

        WalkResult rights = CheckRights(mode, access, err, linear, writable, user, noExec);
        if (!rights.IsOk) gpa = 0;
        return rights;
    }

    static WalkResult Walk32(GuestMemory mem, in PagingMode mode, ulong cr3, uint linear, AccessType access, out ulong gpa)
    {
        gpa = 0;
        uint err = BaseError(access, reportFetch: (access & AccessType.Smep) != 0);
        byte* b = mem.Base;

        ulong pdeAddr = (cr3 & 0xFFFF_F000UL) + (linear >> 22) * 4UL;
        if (!mem.Contains(pdeAddr, 4))
            return WalkResult.PageFault(err | PageFaultError.Present | PageFaultError.Reserved, linear, 2, true);
        // SAFETY: Contains proved the 4 bytes at pdeAddr lie inside guest memory.
        uint pde = Unsafe.ReadUnaligned<uint>(b + pdeAddr);
        if ((pde & P) == 0) return WalkResult.PageFault(err, linear, 2);

        bool writable = (pde & RW) != 0, user = (pde & US) != 0;
        ulong phys;
        if ((pde & PS) != 0 && mode.Pse)
        {
            if ((pde & Pde4MReserved) != 0)
                return WalkResult.PageFault(err | PageFaultError.Present | PageFaultError.Reserved, linear, 2);
            phys = ((ulong)((pde >> 13) & 0xFF) << 32) | (pde & 0xFFC0_0000u) | (linear & 0x003F_FFFFu);
        }
        else
        {
            ulong pteAddr = (pde & 0xFFFF_F000u) + ((linear >> 12) & 0x3FF) * 4UL;
            if (!mem.Contains(pteAddr, 4))
                return WalkResult.PageFault(err | PageFaultError.Present | PageFaultError.Reserved, linear, 1, true);
            // SAFETY: Contains proved the 4 bytes at pteAddr lie inside guest memory.
            uint pte = Unsafe.ReadUnaligned<uint>(b + pteAddr);
            if ((pte & P) == 0) return WalkResult.PageFault(err, linear, 1);
            writable &= (pte & RW) != 0;
            user &= (pte & US) != 0;
            phys = (pte & 0xFFFF_F000u) | (linear & 0xFFFu);
        }

        WalkResult rights = CheckRights(mode, access, err, linear, writable, user, noExec: false);
        if (rights.IsOk) gpa = phys;
        return rights;
    }

    /// <summary>Access rights on the combined entry bits (SDM §4.6), supervisor and user; SMEP and SMAP (§4.6.1) for a
    /// supervisor access to a user page when the caller set their bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static WalkResult CheckRights(in PagingMode mode, AccessType access, uint err, ulong linear, bool writable, bool user, bool noExec)
    {
        bool isUser = (access & AccessType.User) != 0;
        bool fetch = (access & AccessType.Execute) != 0;
        bool denied =
            (isUser && !user) ||
            ((access & AccessType.Write) != 0 && !writable && (isUser || mode.WriteProtect)) ||
            (fetch && noExec) ||
            (!isUser && user && (access & (fetch ? AccessType.Smep : AccessType.Smap)) != 0);
        return denied ? WalkResult.PageFault(err | PageFaultError.Present, linear) : WalkResult.Ok;
    }
}

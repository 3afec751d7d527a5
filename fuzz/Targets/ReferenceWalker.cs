// The slow reference walker: SDM vol. 3 §4.3 (32-bit), §4.4 (PAE), §4.5 (4- and 5-level), §4.6 (rights), §4.7 (#PF
// error code), over a plain byte array. Nothing is shared with PageWalker. The two conventions the model adds to the
// SDM (documented in PageWalker.cs) are taken as spec: a paging-structure entry outside guest memory reads as a
// present entry with reserved bits set (P|RSVD, TableOutsideMemory), and PAE PDPTEs are read at walk time.
using System.Buffers.Binary;
using Copra.Hot.Guest;

namespace Copra.Fuzz.Targets;

public static class ReferenceWalker
{
    public static (WalkResult Result, ulong Gpa) Walk(byte[] mem, PagingKind kind, bool wp, bool nxe, bool pse, ulong cr3, ulong linear, AccessType access)
    {
        bool write = (access & AccessType.Write) != 0, user = (access & AccessType.User) != 0, fetch = (access & AccessType.Execute) != 0;
        // SDM §4.6.1: a supervisor fetch from a user page with CR4.SMEP, or a supervisor data access to one with CR4.SMAP and
        // no AC exemption, is a protection fault; §4.7: CR4.SMEP makes the error code report I/D for every fetch (any CPL).
        s_fetchBit = fetch && (access & AccessType.Smep) != 0;
        s_smep = !user && s_fetchBit;
        s_smap = !user && !fetch && (access & AccessType.Smap) != 0;
        switch (kind)
        {
            case PagingKind.None:
                return (WalkResult.Ok, linear & 0xFFFF_FFFF);
            case PagingKind.Legacy32:
                return Walk32(mem, pse, wp, cr3, (uint)linear, write, user, fetch);
            case PagingKind.Pae:
                return WalkPae(mem, nxe, wp, cr3, linear & 0xFFFF_FFFF, write, user, fetch);
            default:
                return WalkLong(mem, kind == PagingKind.Level5 ? 5 : 4, nxe, wp, cr3, linear, write, user, fetch);
        }
    }

    [ThreadStatic] static bool s_smep, s_smap, s_fetchBit;

    static uint ErrorBase(bool write, bool user, bool fetchBit) => (write ? 2u : 0) | (user ? 4u : 0) | (fetchBit || s_fetchBit ? 16u : 0);

    static bool Read32(byte[] mem, ulong a, out uint v)
    {
        v = 0;
        if (a > (ulong)mem.Length - 4) return false;
        v = BinaryPrimitives.ReadUInt32LittleEndian(mem.AsSpan((int)a));
        return true;
    }

    static bool Read64(byte[] mem, ulong a, out ulong v)
    {
        v = 0;
        if (a > (ulong)mem.Length - 8) return false;
        v = BinaryPrimitives.ReadUInt64LittleEndian(mem.AsSpan((int)a));
        return true;
    }

    static (WalkResult, ulong) Walk32(byte[] mem, bool pse, bool wp, ulong cr3, uint lin, bool write, bool user, bool fetch)
    {
        uint err = ErrorBase(write, user, false);
        ulong pdeAddr = (cr3 & 0xFFFF_F000) | ((ulong)(lin >> 22) << 2);
        if (!Read32(mem, pdeAddr, out uint pde)) return (WalkResult.PageFault(err | 1 | 8, lin, 2, true), 0);
        if ((pde & 1) == 0) return (WalkResult.PageFault(err, lin, 2), 0);
        bool rw = (pde & 2) != 0, us = (pde & 4) != 0;
        ulong gpa;
        if (pse && (pde & 0x80) != 0)
        {
            // 4 MiB page, PSE-36 with M = 40: PDE bits 20:13 are physical bits 39:32, bit 21 is reserved.
            if ((pde & (1u << 21)) != 0) return (WalkResult.PageFault(err | 1 | 8, lin, 2), 0);
            ulong high = (pde >> 13) & 0xFF;
            gpa = (high << 32) + (pde & 0xFFC0_0000) + (lin & 0x3F_FFFF);
        }
        else
        {
            ulong pteAddr = (pde & 0xFFFF_F000) | (((lin >> 12) & 0x3FF) << 2);
            if (!Read32(mem, pteAddr, out uint pte)) return (WalkResult.PageFault(err | 1 | 8, lin, 1, true), 0);
            if ((pte & 1) == 0) return (WalkResult.PageFault(err, lin, 1), 0);
            rw = rw && (pte & 2) != 0;
            us = us && (pte & 4) != 0;
            gpa = (pte & 0xFFFF_F000) + (lin & 0xFFF);
        }
        if (RightsFault(write, user, fetch, wp, rw, us, false)) return (WalkResult.PageFault(err | 1, lin), 0);
        return (WalkResult.Ok, gpa);
    }

    static (WalkResult, ulong) WalkPae(byte[] mem, bool nxe, bool wp, ulong cr3, ulong lin, bool write, bool user, bool fetch)
    {
        uint err = ErrorBase(write, user, fetch && nxe);
        ulong pdpteAddr = (cr3 & 0xFFFF_FFE0) + 8 * ((lin >> 30) & 3);
        if (!Read64(mem, pdpteAddr, out ulong pdpte)) return (WalkResult.PageFault(err | 1 | 8, lin, 3, true), 0);
        if ((pdpte & 1) == 0) return (WalkResult.PageFault(err, lin, 3), 0);
        // PDPTE reserved: bits 2:1, 8:5, 63:52 (MAXPHYADDR 52).
        if ((pdpte & 0x6) != 0 || (pdpte & 0x1E0) != 0 || (pdpte >> 52) != 0) return (WalkResult.PageFault(err | 1 | 8, lin, 3), 0);
        return Lower(mem, 2, pdpte & 0x000F_FFFF_FFFF_F000, lin, nxe, wp, write, user, fetch, err, pae: true);
    }

    static (WalkResult, ulong) WalkLong(byte[] mem, int levels, bool nxe, bool wp, ulong cr3, ulong lin, bool write, bool user, bool fetch)
    {
        int bits = levels == 5 ? 57 : 48;
        long s = (long)(lin << (64 - bits)) >> (64 - bits);
        if ((ulong)s != lin) return (WalkResult.GeneralProtection(lin), 0);
        uint err = ErrorBase(write, user, fetch && nxe);
        return Lower(mem, levels, cr3 & 0x000F_FFFF_FFFF_F000, lin, nxe, wp, write, user, fetch, err, pae: false);
    }

    /// <summary>Levels <paramref name="top"/>..1 with 8-byte entries (PAE from the PD down, long mode from the root).</summary>
    static (WalkResult, ulong) Lower(byte[] mem, int top, ulong table, ulong lin, bool nxe, bool wp, bool write, bool user, bool fetch, uint err, bool pae)
    {
        bool rw = true, us = true, xd = false;
        for (int level = top; level >= 1; level--)
        {
            int shift = level switch { 5 => 48, 4 => 39, 3 => 30, 2 => 21, _ => 12 };
            ulong addr = table + 8 * ((lin >> shift) & 0x1FF);
            if (!Read64(mem, addr, out ulong e)) return (WalkResult.PageFault(err | 1 | 8, lin, level, true), 0);
            if ((e & 1) == 0) return (WalkResult.PageFault(err, lin, level), 0);
            bool ps = (e & 0x80) != 0;
            bool reserved = false;
            if (!nxe && (e >> 63) != 0) reserved = true;                        // XD without EFER.NXE
            if (pae && ((e >> 52) & 0x7FF) != 0) reserved = true;              // PAE: bits 62:52
            if (level >= 4 && ps) reserved = true;                             // PML4E/PML5E.PS
            if (level == 3 && ps && ((e >> 13) & 0x1FFFF) != 0) reserved = true; // 1 GiB: bits 29:13
            if (level == 2 && ps && ((e >> 13) & 0xFF) != 0) reserved = true;    // 2 MiB: bits 20:13
            if (reserved) return (WalkResult.PageFault(err | 1 | 8, lin, level), 0);
            rw &= (e & 2) != 0;
            us &= (e & 4) != 0;
            if (nxe && (e >> 63) != 0) xd = true;
            bool leaf = level == 1 || ((level == 2 || level == 3) && ps);
            ulong frame = e & 0x000F_FFFF_FFFF_F000;
            if (leaf)
            {
                ulong pageSize = 1UL << shift;
                ulong gpa = (frame & ~(pageSize - 1)) + (lin & (pageSize - 1));
                if (RightsFault(write, user, fetch, wp, rw, us, xd)) return (WalkResult.PageFault(err | 1, lin), 0);
                return (WalkResult.Ok, gpa);
            }
            table = frame;
        }
        throw new InvalidOperationException("unreachable");
    }

    /// <summary>SDM §4.6: user pages need U/S at every level; writes need R/W everywhere when CPL 3 or CR0.WP; fetches fail on XD;
    /// §4.6.1: a supervisor access to a user page fails under SMEP (fetch) or SMAP (data).</summary>
    static bool RightsFault(bool write, bool user, bool fetch, bool wp, bool rw, bool us, bool xd) =>
        (user && !us) || (write && !rw && (user || wp)) || (fetch && xd) || (us && (s_smep || s_smap));
}

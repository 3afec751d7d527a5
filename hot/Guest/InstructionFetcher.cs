// InstructionFetcher: reads the (at most 15) bytes at the guest's CS:RIP so the
// decoder can see the instruction that caused an exit.
//
// Each vCPU keeps a one-entry software TLB for its code page, struct-of-arrays
// with the vCPU index as identity: linear page, guest-physical page, and the
// CR3 and mode key (PagingMode bits | CPL-3 flag in bit 7) it was filled under.
// A lookup hits only when all of them match, so a CR3 write or a mode change
// can never hit a stale entry even if the kernel forgets to call Invalidate;
// the kernel still calls Invalidate on CR3/mode writes it performs, so the
// entry does not linger.
//
// Like a hardware TLB the entry is not snooped: if the guest rewrites a code
// PTE under the same CR3 and flushes only with INVLPG (which the paravisor does
// not see), the entry is stale until the next CR3/mode change or Invalidate.
//
// An instruction may straddle two pages: the first page comes from the entry
// (or a walk, which refills it); the second page is looked up in the entry and
// otherwise walked without refilling, so a loop crossing a page boundary does
// not thrash the entry. If the second page faults, the bytes of the first page
// are returned with Partial and the second page's fault; the decoder says
// whether it needed them (Truncated), and the kernel then injects that #PF.
//
// One vCPU is fetched for by one CPU at a time (the vCPU's CPU), so the per-vCPU
// slots need no synchronisation; each vCPU's slot of a column is on its own cache-line
// pair (hot/Layout/VcpuColumn.cs), so two CPUs never write one line. No allocation after construction.
using System.Runtime.CompilerServices;
using Copra.Hot.Layout;

namespace Copra.Hot.Guest;

/// <summary>Outcome of <see cref="InstructionFetcher.Fetch(int, GuestMemory, in PagingMode, ulong, ulong, Span{byte}, out int, out WalkResult, bool)"/>.</summary>
public enum FetchResult : byte
{
    /// <summary>All requested bytes (min(dest.Length, 15)) were fetched.</summary>
    Complete = 0,
    /// <summary>The bytes up to the end of the first page were fetched; the second page faulted (see the fault).</summary>
    Partial = 1,
    /// <summary>The first page faulted; nothing was fetched. Inject the fault.</summary>
    Fault = 2,
    /// <summary>The code page translated to a guest-physical address outside guest memory; nothing was fetched.</summary>
    NotBacked = 3,
    /// <summary>The first page was fetched; the second page translated to an address outside guest memory.</summary>
    PartialNotBacked = 4,
}

/// <summary>Per-vCPU instruction fetch with a one-entry code-page cache.</summary>
public sealed unsafe class InstructionFetcher
{
    /// <summary>The architectural maximum instruction length.</summary>
    public const int MaxInstructionLength = 15;
    const ulong PageMask = GuestMemory.PageSize - 1;

    // The entry's fields together (one line per lookup); the key is the paging-mode bits and the fetch's access type
    // (User, Smep): a hit needs both to match.
    readonly VcpuColumn<TlbEntry> _e;
    readonly VcpuColumn<long> _hits;
    readonly VcpuColumn<long> _misses;

    /// <summary>Creates slots for vCPUs 0..vcpuCount-1, all invalid.</summary>
    public InstructionFetcher(int vcpuCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vcpuCount);
        _e = new(vcpuCount);
        _hits = new(vcpuCount);
        _misses = new(vcpuCount);
    }

    /// <summary>Number of vCPU slots.</summary>
    public int VcpuCount => _e.Count;
    /// <summary>Per-vCPU count of page translations served from the cache.</summary>
    public VcpuColumn<long> Hits => _hits;
    /// <summary>Per-vCPU count of page walks (cache misses, including second pages of straddling instructions).</summary>
    public VcpuColumn<long> Misses => _misses;

    /// <summary>Drops vCPU <paramref name="vcpu"/>'s entry. Call on every CR3 or CR0/CR4/EFER write for that vCPU.</summary>
    public void Invalidate(int vcpu) => _e[vcpu].Valid = false;

    /// <summary>Drops every entry (e.g. after the guest's memory was rewritten behind its back).</summary>
    public void InvalidateAll() { for (int v = 0; v < _e.Count; v++) _e[v].Valid = false; }

    /// <summary>True when vCPU <paramref name="vcpu"/> holds an entry.</summary>
    public bool IsCached(int vcpu) => _e[vcpu].Valid;

    /// <summary>Fetches for a supervisor-mode (CPL 0-2) instruction.</summary>
    public FetchResult Fetch(int vcpu, GuestMemory mem, in PagingMode mode, ulong cr3, ulong rip, Span<byte> dest, out int fetched, out WalkResult fault) =>
        Fetch(vcpu, mem, mode, cr3, rip, dest, out fetched, out fault, user: false);

    /// <summary>
    /// Fetches up to min(dest.Length, 15) bytes at linear address <paramref name="rip"/> (CS base + RIP; outside long
    /// mode only the low 32 bits count). <paramref name="user"/> is true when the guest runs at CPL 3.
    /// <paramref name="fetched"/> is the number of bytes written to dest; <paramref name="fault"/> is the fault to
    /// inject for Fault and Partial (Ok otherwise).
    /// </summary>
    public FetchResult Fetch(int vcpu, GuestMemory mem, in PagingMode mode, ulong cr3, ulong rip, Span<byte> dest,
        out int fetched, out WalkResult fault, bool user) =>
        Fetch(vcpu, mem, mode, cr3, rip, dest, out fetched, out fault, user ? AccessType.Execute | AccessType.User : AccessType.Execute);

    /// <summary>
    /// As above, with the fetch's access type spelled out (<see cref="SupervisorProtection.Fetch"/>: User at CPL 3, so a
    /// supervisor page is #PF with P|U; Smep at CPL 0-2 under CR4.SMEP, so a user page is #PF). The code-page cache is
    /// keyed by it: a translation checked for one CPL or SMEP setting is never reused for another.
    /// </summary>
    public FetchResult Fetch(int vcpu, GuestMemory mem, in PagingMode mode, ulong cr3, ulong rip, Span<byte> dest,
        out int fetched, out WalkResult fault, AccessType access)
    {
        fetched = 0;
        fault = WalkResult.Ok;
        int want = Math.Min(dest.Length, MaxInstructionLength);
        if (!mode.LongMode) rip &= 0xFFFF_FFFFUL;
        access |= AccessType.Execute;
        ushort key = (ushort)(mode.Bits | (int)access << 8);

        ulong page = rip & ~PageMask;
        ulong gpaPage;
        if (Hit(vcpu, page, cr3, key))
        {
            _hits[vcpu]++;
            gpaPage = _e[vcpu].GpaPage;
        }
        else
        {
            _misses[vcpu]++;
            WalkResult r = PageWalker.Translate(mem, mode, cr3, rip, access, out ulong gpa);
            if (!r.IsOk) { fault = r; return FetchResult.Fault; }
            gpaPage = gpa & ~PageMask;
            _e[vcpu] = new TlbEntry { LinearPage = page, GpaPage = gpaPage, Cr3 = cr3, Key = key, Valid = true };
        }

        int offset = (int)(rip & PageMask);
        int first = Math.Min(want, GuestMemory.PageSize - offset);
        if (!Copy(mem, gpaPage + (ulong)offset, dest[..first])) return FetchResult.NotBacked;
        fetched = first;
        if (first == want) return FetchResult.Complete;

        ulong page2 = page + GuestMemory.PageSize;
        if (!mode.LongMode) page2 &= 0xFFFF_FFFFUL;
        ulong gpaPage2;
        if (Hit(vcpu, page2, cr3, key))
        {
            _hits[vcpu]++;
            gpaPage2 = _e[vcpu].GpaPage;
        }
        else
        {
            _misses[vcpu]++;
            WalkResult r2 = PageWalker.Translate(mem, mode, cr3, page2, access, out ulong gpa2);
            if (!r2.IsOk) { fault = r2; return FetchResult.Partial; }
            gpaPage2 = gpa2 & ~PageMask;
        }
        if (!Copy(mem, gpaPage2, dest[first..want])) return FetchResult.PartialNotBacked;
        fetched = want;
        return FetchResult.Complete;
    }

    /// <summary>
    /// The common fetch in one step: when vCPU <paramref name="vcpu"/>'s code-page entry maps <paramref name="rip"/>
    /// (same page, CR3 and key as <see cref="Fetch(int, GuestMemory, in PagingMode, ulong, ulong, Span{byte}, out int, out WalkResult, AccessType)"/>
    /// would test) and the 16 bytes from there lie in that page and in guest memory, returns them as two words, the
    /// 16th byte zeroed (the decoder's buffer: the 15 fetchable bytes and one zero), and counts a hit. Otherwise
    /// false, nothing counted: the caller takes <c>Fetch</c>. Why: the exit path fetches on every exit, and the span
    /// copy into a stack buffer that the decode cache then reads back as two words cost ~60 instructions a hit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryFetchWords(int vcpu, GuestMemory mem, in PagingMode mode, ulong cr3, ulong rip, AccessType access, out ulong lo, out ulong hi)
    {
        if (!mode.LongMode) rip &= 0xFFFF_FFFFUL;
        return TryFetchWords(vcpu, mem, cr3, rip, FetchKey(in mode, access), out lo, out hi);
    }

    /// <summary>The code-page entry's key for a fetch in <paramref name="mode"/> with <paramref name="access"/>.</summary>
    public static ushort FetchKey(in PagingMode mode, AccessType access) => (ushort)(mode.Bits | (int)(access | AccessType.Execute) << 8);

    /// <summary><see cref="TryFetchWords(int, GuestMemory, in PagingMode, ulong, ulong, AccessType, out ulong, out ulong)"/>
    /// with its key made already (<see cref="FetchKey"/>) and <paramref name="rip"/> a long-mode one: the plain memo keeps
    /// both with its entry.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryFetchWords(int vcpu, GuestMemory mem, ulong cr3, ulong rip, ushort key, out ulong lo, out ulong hi)
    {
        ref TlbEntry e = ref _e[vcpu];
        ulong offset = rip & PageMask;
        if (offset > GuestMemory.PageSize - DecodeWords || !e.Hits(rip & ~PageMask, cr3, key) || !mem.Contains(e.GpaPage + offset, DecodeWords))
        {
            lo = hi = 0;
            return false;
        }
        _hits[vcpu]++;
        // SAFETY: Contains proved [GpaPage + offset, +16) lies inside guest memory.
        byte* p = mem.Base + e.GpaPage + offset;
        lo = Unsafe.ReadUnaligned<ulong>(p);
        hi = Unsafe.ReadUnaligned<ulong>(p + 8) & 0x00FF_FFFF_FFFF_FFFFUL;
        return true;
    }

    /// <summary>Bytes <see cref="TryFetchWords"/> reads: the 15 an instruction may have and the one the decode key zeroes.</summary>
    const int DecodeWords = 16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    bool Hit(int vcpu, ulong page, ulong cr3, ushort key) =>
        _e[vcpu].Hits(page, cr3, key);

    static bool Copy(GuestMemory mem, ulong gpa, Span<byte> dest)
    {
        if (!mem.Contains(gpa, (ulong)dest.Length)) return false;
        // SAFETY: Contains proved [gpa, gpa + dest.Length) lies inside guest memory.
        new ReadOnlySpan<byte>(mem.Base + gpa, dest.Length).CopyTo(dest);
        return true;
    }
}

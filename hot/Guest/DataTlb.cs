// DataTlb: a small software TLB per vCPU for the data side of an exit (the page the instruction's memory operand is
// on): Ways entries, direct-mapped by the linear page, struct-of-arrays with vCPU * Ways + slot as identity, beside
// InstructionFetcher's entry for the code page. A device register is read over and over at the same address, so
// after the first exit the data side costs a compare instead of a four-level walk.
//
// Same rules as the code-page entry: a hit needs the linear page, CR3 and the key (paging-mode bits and the access
// type: a read-filled entry never serves a write, whose walk checks R/W) to match, so a CR3 or mode change can never
// hit a stale entry; the kernel drops the entry on state writes it performs (SET_STATE, VMSA import). Like a hardware
// TLB the entry is not snooped, and the guest's INVLPG never reaches the paravisor, so a guest that rewrites a PTE
// under the same CR3 (iounmap, then ioremap of another device at the same address) would keep the old translation.
// What catches that is the exit itself: the hardware names the faulting GPA, so the exit's own access passes it as a
// witness and a hit that disagrees is walked afresh (and the entry refilled). The walker sets no accessed/dirty bits, so skipping
// a walk skips no memory write. Only successful walks are kept; a fault is walked (and reported) every time.
//
// One vCPU is handled by one CPU at a time (the vCPU's CPU), so the slots need no synchronisation; each vCPU's ways
// of a column sit on their own cache-line pair (hot/Layout/VcpuColumn.cs).
using Copra.Hot.Layout;

namespace Copra.Hot.Guest;

/// <summary>Per-vCPU translation cache for data accesses.</summary>
public sealed class DataTlb
{
    const ulong PageMask = GuestMemory.PageSize - 1;
    /// <summary>Entries per vCPU. Why 8: an exit touches at most two data pages (MOVS), a driver's loop a few more, and
    /// each page may be both read and written (<see cref="Slot"/>).</summary>
    public const int Ways = 8;

    // One entry's fields together (TlbEntry, 24 bytes; a vCPU's four ways fill one 128-byte block): a lookup reads
    // all of them, so this touches one line where five columns touched five. The vCPU index is still the identity.
    readonly VcpuWays<TlbEntry> _e;

    public DataTlb(int vcpuCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vcpuCount);
        _e = new(vcpuCount, Ways);
    }

    /// <summary>
    /// The way of a data access to <paramref name="page"/>: the page's low bits and the access's write bit, so four
    /// consecutive pages, each read and written, take eight distinct ways. Why the write bit: a read-filled entry never
    /// serves a write (the key holds the access type), and with the page alone a loop that reads and writes one device
    /// register evicted its own entry on every exit and walked four levels each time (~220 instructions per exit of the
    /// default run mix, counted).
    /// </summary>
    public static int Slot(ulong page, AccessType access) => (int)((((page >> 12) << 1) | ((ulong)access & (ulong)AccessType.Write)) & (Ways - 1));

    /// <summary>Drops vCPU <paramref name="vcpu"/>'s entries. Call on every CR3 or CR0/CR4/EFER write for that vCPU.</summary>
    public void Invalidate(int vcpu) => _e.Row(vcpu).Clear();

    /// <summary>No witness: a hit is trusted (an element the hardware did not name, e.g. a later REP iteration).</summary>
    public const ulong NoWitness = ulong.MaxValue;

    /// <summary>
    /// <see cref="PageWalker.Translate"/> through vCPU <paramref name="vcpu"/>'s entry: a hit returns at once, a miss
    /// walks and, when the walk succeeds, refills the entry. Same contract as the walker. <paramref name="witnessPage"/>
    /// is the page of the GPA the hardware reported for this access (or <see cref="NoWitness"/>): a hit on another
    /// page is stale or another side of the instruction, and is walked.
    /// </summary>
    public WalkResult Translate(int vcpu, GuestMemory mem, in PagingMode mode, ulong cr3, ulong linear, AccessType access, out ulong gpa,
        ulong witnessPage = NoWitness)
    {
        ushort key = (ushort)(mode.Bits | (int)access << 8);
        ulong page = linear & ~PageMask;
        ref TlbEntry e = ref _e.At(vcpu, Slot(page, access));
        if (e.Hits(page, cr3, key) && (witnessPage == NoWitness || e.GpaPage == witnessPage))
        {
            gpa = e.GpaPage | (linear & PageMask);
            return WalkResult.Ok;
        }
        var r = PageWalker.Translate(mem, mode, cr3, linear, access, out gpa);
        if (!r.IsOk) return r;
        e = new TlbEntry { LinearPage = page, GpaPage = gpa & ~PageMask, Cr3 = cr3, Key = key, Valid = true };
        return r;
    }
}

/// <summary>
/// One software-TLB entry (the data TLB's ways, the fetcher's code page): the linear page, the guest-physical page it
/// maps to, and the CR3 and key (paging-mode bits | access type) it was filled under.
/// </summary>
public struct TlbEntry
{
    public ulong LinearPage, GpaPage, Cr3;
    public ushort Key;
    public bool Valid;

    /// <summary>The entry maps <paramref name="page"/> under this CR3 and key.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public readonly bool Hits(ulong page, ulong cr3, ushort key) => Valid && LinearPage == page && Cr3 == cr3 && Key == key;
}

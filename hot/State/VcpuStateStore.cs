// VcpuStateStore: every vCPU's architectural state, struct-of-arrays with the
// vCPU index as identity, plus the accounting of what reading and writing that
// state costs on the platform.
//
// The arrays are the platform's copy of the state (the VMSA on SNP, the L2 VMCS
// on TDX): the model does not keep a second copy. What differs by platform is
// what an access costs, tracked per vCPU in two masks over the "tracked" fields
// (every field other than the GPRs, RIP and RFLAGS, one bit each because a
// TDG.VP.RD/WR moves one field):
//
//   valid  the kernel holds the field's current value (it paid for it, or wrote it)
//   dirty  the kernel changed it and must push it at the next entry
//
//   SNP   state is a VMSA page in memory: valid = all ones forever, dirty never set,
//         nothing is counted.
//   TDX   GPRs/RIP/RFLAGS come with every exit (free both ways). OnExit(v) clears
//         valid; the first read of a field that is not valid costs one TDG.VP.RD
//         and makes it valid; a write makes it valid and dirty without a read;
//         OnEntry(v) costs one TDG.VP.WR per dirty field and clears dirty.
//
// Both platforms run the same instructions (the SNP masks simply never change),
// so the accessors have no platform branch. The kernel's own exit handling reads
// through the typed accessors (Cr0(v), Cr3(v), ...) so its TDCALLs are counted
// like user space's GET_STATE.
//
// Concurrency: a vCPU's slots are touched by one CPU at a time (the vCPU's CPU,
// or the VMM thread holding the stopped vCPU), so nothing is synchronised. The
// per-vCPU masks and counters, written on every access on TDX, sit in 128-byte
// slots so two vCPUs on two CPUs never share a cache line for them, and so do the
// value columns (VcpuColumn/VcpuWays: each vCPU's entries on their own cache-line
// pair; dense arrays made two VMs on two CPUs bounce the lines on every exit).
//
// No allocation after construction.
using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Copra.Abi;
using Copra.Hot.Guest;
using Copra.Hot.Layout;

namespace Copra.Hot.State;

/// <summary>How state access is charged.</summary>
public enum StateAccessCost : byte
{
    /// <summary>SEV-SNP: state is in the VMSA page; reads and writes are memory accesses, not counted.</summary>
    Snp = 0,
    /// <summary>TDX partitioned TD: non-GPR fields cost a TDG.VP.RD on first read after an exit and a TDG.VP.WR at entry if written.</summary>
    Tdx = 1,
}

/// <summary>Per-vCPU architectural state with TDX field-access accounting.</summary>
public sealed partial class VcpuStateStore
{
    /// <summary>
    /// Bit of each tracked field in the valid/dirty masks.
    /// <code>
    ///  63      57 56          41  40  39          30  29  28                 5   4    3    2    1    0
    /// +----------+--------------+-----+--------------+----+--------------------+----+----+----+----+----+
    /// | (unused) | XMM 15..0    | DR6 | MSR slot 9..0| PE | seg 5..0 x part 3..0| EFER| CR4| CR3| CR2| CR0|
    /// +----------+--------------+-----+--------------+----+--------------------+----+----+----+----+----+
    /// </code>
    /// seg bit = SegFirst + seg*4 + part (part 0 selector, 1 base, 2 limit, 3 attributes);
    /// PE = pending event; MSR slots in <see cref="PassThroughMsrs"/> order. An XMM register is one bit but two
    /// TDCALLs (<see cref="XmmTdcalls"/>): TDG.VP.RD/WR move 64 bits, and its two halves are read and written together.
    /// Bits 64 and up live in a second word of the masks (<see cref="ValidMaskHigh"/>), bit b at b - 64 there:
    /// <code>
    ///  64+12   64+11 64+10  64+9   64+8   64+7 .. 64+4   64+3 .. 64+0
    /// +--------+------+------+------+------+------------+------------+
    /// | inter- | IDTR | IDTR | GDTR | GDTR | TR part 3..0| LDTR part 3..0|
    /// | ruptib.| limit| base | limit| base |            |            |
    /// +--------+------+------+------+------+------------+------------+
    /// </code>
    /// </summary>
    public static class Bit
    {
        public const int Cr0 = 0, Cr2 = 1, Cr3 = 2, Cr4 = 3, Efer = 4;
        public const int SegFirst = 5;
        public const int SegCount = 6 * 4;
        public const int PendingEvent = SegFirst + SegCount;
        public const int MsrFirst = PendingEvent + 1;
        public const int Dr6 = MsrFirst + MsrSlotCount;
        public const int XmmFirst = Dr6 + 1;
        public const int Count = XmmFirst + XmmCount;
        /// <summary>The sixteen XMM bits.</summary>
        public const ulong XmmMask = ((1UL << XmmCount) - 1) << XmmFirst;
        /// <summary>Every tracked field.</summary>
        public const ulong All = (1UL << Count) - 1;

        /// <summary>Segment register <paramref name="seg"/> (0..5 ES..GS, 6 LDTR, 7 TR), part 0..3.</summary>
        public static int Seg(int seg, int part) => seg < 6 ? SegFirst + seg * 4 + part : SysFirst + (seg - 6) * 4 + part;

        // ---- the system registers (second mask word) ----
        /// <summary>First bit of the second mask word: LDTR's four parts, then TR's.</summary>
        public const int SysFirst = 64;
        public const int GdtrBase = SysFirst + 8, GdtrLimit = SysFirst + 9, IdtrBase = SysFirst + 10, IdtrLimit = SysFirst + 11;
        /// <summary>The interruptibility state (the MOV SS/STI shadow; on TDX the L2 VMCS's guest-interruptibility field).</summary>
        public const int Interruptibility = SysFirst + 12;
        /// <summary>Every tracked field of the second word.</summary>
        public const ulong AllHigh = (1UL << (Interruptibility + 1 - SysFirst)) - 1;
    }

    /// <summary>Segment registers with storage per vCPU: ES CS SS DS FS GS, LDTR (6), TR (7).</summary>
    public const int SegCount = 8;
    /// <summary>LDTR and TR as segment numbers (StateField.Seg(6/7, part)).</summary>
    public const int Ldtr = 6, Tr = 7;

    /// <summary>Number of MSRs with their own storage.</summary>
    public const int MsrSlotCount = 10;
    /// <summary>XMM0..XMM15.</summary>
    public const int XmmCount = 16;
    /// <summary>TDG.VP.RD (or WR) per XMM register: the TDX module moves 64 bits per call.</summary>
    public const int XmmTdcalls = 2;

    // Index of each MSR's slot; keep in step with PassThroughMsrs and MsrSlot().
    const int MsrStar = 0, MsrLstar = 1, MsrCstar = 2, MsrSfmask = 3, MsrKernelGsBase = 4, MsrTscAux = 5;
    const int MsrSysenterCs = 6, MsrSysenterEsp = 7, MsrSysenterEip = 8, MsrPat = 9;

    /// <summary>MSR numbers.</summary>
    public static class MsrIndex
    {
        public const uint Efer = 0xC000_0080, Star = 0xC000_0081, Lstar = 0xC000_0082, Cstar = 0xC000_0083, Sfmask = 0xC000_0084;
        public const uint FsBase = 0xC000_0100, GsBase = 0xC000_0101, KernelGsBase = 0xC000_0102, TscAux = 0xC000_0103;
        public const uint SysenterCs = 0x174, SysenterEsp = 0x175, SysenterEip = 0x176, Pat = 0x277;
    }

    static readonly uint[] s_passThrough =
    [
        MsrIndex.Star, MsrIndex.Lstar, MsrIndex.Cstar, MsrIndex.Sfmask, MsrIndex.KernelGsBase, MsrIndex.TscAux,
        MsrIndex.SysenterCs, MsrIndex.SysenterEsp, MsrIndex.SysenterEip, MsrIndex.Pat,
        MsrIndex.Efer, MsrIndex.FsBase, MsrIndex.GsBase,
    ];

    /// <summary>
    /// The MSRs that pass through to the guest and are reachable as <c>StateField.Msr(n)</c>: the first
    /// <see cref="MsrSlotCount"/> have their own slot (syscall MSRs, KERNEL_GS_BASE, TSC_AUX, SYSENTER, PAT — all in
    /// the VMSA and guest-owned under SNP and TDX); EFER, FS_BASE and GS_BASE are aliases of the EFER field and the
    /// FS/GS segment bases (the same hardware register). Not included: APIC_BASE and the x2APIC range (the APIC is
    /// emulated, not state), TSC (the platform owns it), SPEC_CTRL and the like (host-managed).
    /// </summary>
    public static ReadOnlySpan<uint> PassThroughMsrs => s_passThrough;

    [StructLayout(LayoutKind.Explicit, Size = 128)]
    internal struct Accounting
    {
        // Fields at 64..127 of a 128-byte slot: whatever the array's base alignment, two slots' fields are
        // at least 64 bytes apart and never share a 64-byte line.
        [FieldOffset(64)] public ulong Valid;
        [FieldOffset(72)] public ulong Dirty;
        [FieldOffset(80)] public long Reads;
        [FieldOffset(88)] public long Writes;
        // The x87/MMX/MXCSR fields' own valid/dirty pair (VcpuStateStore.X87.cs): the first mask has no room left.
        [FieldOffset(96)] public ulong X87Valid;
        [FieldOffset(104)] public ulong X87Dirty;
        // The system registers' pair (GDTR/IDTR/LDTR/TR, Bit.SysFirst and up). Why a second word rather than UInt128
        // masks: the common fields' charge stays one 64-bit test and the JIT folds the word choice away for the typed
        // accessors (their bit is a constant). Fields at 64..127: two slots' fields stay at least 64 bytes apart.
        [FieldOffset(112)] public ulong ValidHigh;
        [FieldOffset(120)] public ulong DirtyHigh;
    }

    readonly Accounting[] _acct;
    readonly ulong _dirtyTrack;     // Bit.All on TDX, 0 on SNP: which writes become dirty
    readonly ulong _keepOnExit;     // 0 on TDX, Bit.All on SNP: which valid bits survive an exit
    readonly ulong _dirtyTrackHigh, _keepOnExitHigh;   // the same for the second word (Bit.AllHigh)

    // Each vCPU's entry of a column on its own cache-line pair (hot/Layout/VcpuColumn.cs).
    readonly VcpuWays<ulong> _gpr;          // (v, r)
    readonly VcpuColumn<ulong> _rip, _rflags;
    readonly VcpuColumn<ulong> _cr0, _cr2, _cr3, _cr4, _efer, _pendingEvent, _dr6;
    readonly VcpuWays<ushort> _segSelector; // (v, s), s < SegCount
    readonly VcpuWays<ulong> _segBase;
    readonly VcpuWays<uint> _segLimit;
    readonly VcpuWays<ushort> _segAttributes;
    readonly VcpuWays<ulong> _msr;          // (v, slot)
    readonly VcpuColumn<ulong> _exitReason, _exitQualification, _exitGpa, _exitLength;
    readonly VcpuWays<UInt128> _xmm;        // (v, n)
    readonly VcpuWays<ulong> _dtBase;       // (v, t), t 0 GDTR, 1 IDTR
    readonly VcpuWays<ushort> _dtLimit;
    readonly VcpuColumn<ulong> _interruptibility;

    /// <summary>Creates zeroed state for vCPUs 0..vcpuCount-1 charged as <paramref name="cost"/>.</summary>
    public VcpuStateStore(int vcpuCount, StateAccessCost cost)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vcpuCount);
        VcpuCount = vcpuCount;
        Cost = cost;
        bool tdx = cost == StateAccessCost.Tdx;
        _dirtyTrack = tdx ? Bit.All : 0;
        _keepOnExit = tdx ? 0 : Bit.All;
        _dirtyTrackHigh = tdx ? Bit.AllHigh : 0;
        _keepOnExitHigh = tdx ? 0 : Bit.AllHigh;
        _acct = new Accounting[vcpuCount];
        if (!tdx) for (int v = 0; v < vcpuCount; v++) { _acct[v].Valid = Bit.All; _acct[v].X87Valid = X87Bit.All; _acct[v].ValidHigh = Bit.AllHigh; }

        _gpr = new(vcpuCount, 16);
        _rip = new(vcpuCount);
        _rflags = new(vcpuCount);
        _cr0 = new(vcpuCount);
        _cr2 = new(vcpuCount);
        _cr3 = new(vcpuCount);
        _cr4 = new(vcpuCount);
        _efer = new(vcpuCount);
        _pendingEvent = new(vcpuCount);
        _dr6 = new(vcpuCount);
        _segSelector = new(vcpuCount, SegCount);
        _segBase = new(vcpuCount, SegCount);
        _segLimit = new(vcpuCount, SegCount);
        _segAttributes = new(vcpuCount, SegCount);
        _msr = new(vcpuCount, MsrSlotCount);
        _exitReason = new(vcpuCount);
        _exitQualification = new(vcpuCount);
        _exitGpa = new(vcpuCount);
        _exitLength = new(vcpuCount);
        _xmm = new(vcpuCount, XmmCount);
        _dtBase = new(vcpuCount, 2);
        _dtLimit = new(vcpuCount, 2);
        _interruptibility = new(vcpuCount);
        for (int v = 0; v < vcpuCount; v++)
        {
            _rflags[v] = 0x2; _dr6[v] = Dr6Reset; // RFLAGS bit 1 is always set
            // The SDM's power-up values (vol. 3 table 10-1): GDTR/IDTR base 0 limit 0xFFFF; LDTR and TR selector 0, base 0,
            // limit 0xFFFF, present; their types as KVM's reset gives them (LDT 2, busy 16-bit TSS 3).
            _dtLimit.At(v, 0) = _dtLimit.At(v, 1) = 0xFFFF;
            _segLimit.At(v, Ldtr) = _segLimit.At(v, Tr) = 0xFFFF;
            _segAttributes.At(v, Ldtr) = SegmentAttributes.P | SegmentAttributes.TypeLdt;
            _segAttributes.At(v, Tr) = SegmentAttributes.P | SegmentAttributes.TypeBusyTss16;
        }
        _x87 = new X87Arrays(vcpuCount);
    }

    /// <summary>Number of vCPUs.</summary>
    public int VcpuCount { get; }
    /// <summary>The platform's charging rule.</summary>
    public StateAccessCost Cost { get; }

    // ---- accounting -------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void ChargeRead(int v, int bit)
    {
        ref Accounting a = ref Unchecked.At(_acct, v);   // v < the store's vCPUs, as for its columns (VcpuColumn)
        if (bit >= Bit.SysFirst)
        {
            ulong h = 1UL << (bit - Bit.SysFirst);
            if ((a.ValidHigh & h) == 0) { a.ValidHigh |= h; a.Reads++; }
            return;
        }
        ulong m = 1UL << bit;
        if ((a.Valid & m) == 0) { a.Valid |= m; a.Reads += (m & Bit.XmmMask) != 0 ? XmmTdcalls : 1; }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void ChargeWrite(int v, int bit)
    {
        ref Accounting a = ref Unchecked.At(_acct, v);   // v < the store's vCPUs, as for its columns (VcpuColumn)
        if (bit >= Bit.SysFirst)
        {
            ulong h = 1UL << (bit - Bit.SysFirst);
            a.ValidHigh |= h;
            a.DirtyHigh |= h & _dirtyTrackHigh;
            return;
        }
        ulong m = 1UL << bit;
        a.Valid |= m;
        a.Dirty |= m & _dirtyTrack;
    }

    /// <summary>The vCPU left the guest: on TDX every tracked field becomes stale (GPRs, RIP, RFLAGS came with the exit).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void OnExit(int v)
    {
        if (_keepOnExit == Bit.All) return;   // SNP: every valid bit survives an exit, so there is nothing to drop (no call per exit)
        ref Accounting a = ref Unchecked.At(_acct, v);   // v < the store's vCPUs, as for its columns (VcpuColumn)
        a.Valid &= _keepOnExit;
        a.X87Valid &= _keepOnExit;
        a.ValidHigh &= _keepOnExitHigh;
    }

    /// <summary>The vCPU is about to enter the guest: on TDX one TDG.VP.WR per dirty field. Returns the number charged.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int OnEntry(int v) => _dirtyTrack == 0 ? 0 : ChargeEntry(v);   // SNP tracks nothing dirty: no call per entry

    int ChargeEntry(int v)
    {
        ref Accounting a = ref Unchecked.At(_acct, v);   // v < the store's vCPUs, as for its columns (VcpuColumn)
        if ((a.Dirty | a.X87Dirty | a.DirtyHigh) == 0) return 0;   // always on SNP, and on TDX after an exit that wrote nothing
        int n = BitOperations.PopCount(a.Dirty) + (XmmTdcalls - 1) * BitOperations.PopCount(a.Dirty & Bit.XmmMask)
            + X87Tdcalls(a.X87Dirty) + BitOperations.PopCount(a.DirtyHigh);
        a.Writes += n;
        a.Dirty = 0;
        a.X87Dirty = 0;
        a.DirtyHigh = 0;
        return n;
    }

    /// <summary>Per-vCPU TDG.VP.RD count: <c>store.TdReads[v]</c>.</summary>
    public TdCounter TdReads => new(_acct, writes: false);
    /// <summary>Per-vCPU TDG.VP.WR count: <c>store.TdWrites[v]</c>.</summary>
    public TdCounter TdWrites => new(_acct, writes: true);
    /// <summary>TDG.VP.RD over all vCPUs.</summary>
    public long TotalTdReads { get { long s = 0; foreach (ref readonly Accounting a in _acct.AsSpan()) s += a.Reads; return s; } }
    /// <summary>TDG.VP.WR over all vCPUs.</summary>
    public long TotalTdWrites { get { long s = 0; foreach (ref readonly Accounting a in _acct.AsSpan()) s += a.Writes; return s; } }
    /// <summary>Tracked fields the kernel currently holds for vCPU v (see <see cref="Bit"/>).</summary>
    public ulong ValidMask(int v) => _acct[v].Valid;
    /// <summary>Tracked fields written since the last entry (always 0 on SNP).</summary>
    public ulong DirtyMask(int v) => _acct[v].Dirty;
    /// <summary>The second word of the valid mask (bits 64 and up of <see cref="Bit"/>, at bit - 64).</summary>
    public ulong ValidMaskHigh(int v) => _acct[v].ValidHigh;
    /// <summary>The second word of the dirty mask.</summary>
    public ulong DirtyMaskHigh(int v) => _acct[v].DirtyHigh;

    /// <summary>A read-only per-vCPU view of one counter; a struct, so reading it allocates nothing.</summary>
    public readonly struct TdCounter
    {
        readonly Accounting[] _a;
        readonly bool _writes;
        internal TdCounter(Accounting[] a, bool writes) { _a = a; _writes = writes; }
        /// <summary>The count for vCPU v.</summary>
        public long this[int v] => _writes ? _a[v].Writes : _a[v].Reads;
    }

    // ---- free fields: GPRs, RIP, RFLAGS, exit information ------------------------------------

    /// <summary>GPR <paramref name="r"/> (x86 encoding order, RAX=0 .. R15=15). Free on both platforms.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref ulong Gpr(int v, int r) => ref _gpr.At(v, r);
    /// <summary>All sixteen GPRs of vCPU v.</summary>
    public Span<ulong> Gprs(int v) => _gpr.Row(v);
    /// <summary>RIP. Free on both platforms.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref ulong Rip(int v) => ref _rip[v];
    /// <summary>RFLAGS. Free on both platforms.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref ulong Rflags(int v) => ref _rflags[v];

    /// <summary>Exit information, delivered with the exit (free): reason, qualification, GPA, instruction length.</summary>
    public ulong ExitReason(int v) => _exitReason[v];
    public ulong ExitQualification(int v) => _exitQualification[v];
    public ulong ExitGpa(int v) => _exitGpa[v];
    public ulong ExitInstructionLength(int v) => _exitLength[v];

    /// <summary>Platform side: records the exit information of vCPU v (the only writer of those fields).</summary>
    public void SetExitInfo(int v, ulong reason, ulong qualification, ulong gpa, ulong instructionLength)
    {
        _exitReason[v] = reason;
        _exitQualification[v] = qualification;
        _exitGpa[v] = gpa;
        _exitLength[v] = instructionLength;
    }

    // ---- tracked fields: typed accessors with accounting -------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Cr0(int v) { ChargeRead(v, Bit.Cr0); return _cr0[v]; }
    public ulong Cr2(int v) { ChargeRead(v, Bit.Cr2); return _cr2[v]; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Cr3(int v) { ChargeRead(v, Bit.Cr3); return _cr3[v]; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Cr4(int v) { ChargeRead(v, Bit.Cr4); return _cr4[v]; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Efer(int v) { ChargeRead(v, Bit.Efer); return _efer[v]; }
    /// <summary>Pending event in SVM EVENTINJ form: bits 7:0 vector, 10:8 type, 11 error code valid, 31 valid, 63:32 error code.</summary>
    public ulong PendingEvent(int v) { ChargeRead(v, Bit.PendingEvent); return _pendingEvent[v]; }
    public ulong Dr6(int v) { ChargeRead(v, Bit.Dr6); return _dr6[v]; }
    public void SetDr6(int v, ulong value) { ChargeWrite(v, Bit.Dr6); _dr6[v] = value; }

    /// <summary>DR6 at reset and after a clean #DB handler: the reserved bits that read as one (SDM vol. 3 §18.2.3).</summary>
    public const ulong Dr6Reset = 0xFFFF_0FF0;

    public void SetCr0(int v, ulong value) { ChargeWrite(v, Bit.Cr0); _cr0[v] = value; }
    public void SetCr2(int v, ulong value) { ChargeWrite(v, Bit.Cr2); _cr2[v] = value; }
    public void SetCr3(int v, ulong value) { ChargeWrite(v, Bit.Cr3); _cr3[v] = value; }
    public void SetCr4(int v, ulong value) { ChargeWrite(v, Bit.Cr4); _cr4[v] = value; }
    public void SetEfer(int v, ulong value) { ChargeWrite(v, Bit.Efer); _efer[v] = value; }
    public void SetPendingEvent(int v, ulong value) { ChargeWrite(v, Bit.PendingEvent); _pendingEvent[v] = value; }

    /// <summary>Segment <paramref name="seg"/> (StateField.Es..Gs, or <see cref="Ldtr"/>, <see cref="Tr"/>) selector.</summary>
    public ushort SegSelector(int v, int seg) { ChargeRead(v, Bit.Seg(seg, StateField.Selector)); return _segSelector.At(v, seg); }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong SegBase(int v, int seg) { ChargeRead(v, Bit.Seg(seg, StateField.Base)); return _segBase.At(v, seg); }
    /// <summary>Byte-granular limit.</summary>
    public uint SegLimit(int v, int seg) { ChargeRead(v, Bit.Seg(seg, StateField.Limit)); return _segLimit.At(v, seg); }
    /// <summary>Packed attributes (see <see cref="SegmentAttributes"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ushort SegAttributes(int v, int seg) { ChargeRead(v, Bit.Seg(seg, StateField.Attributes)); return _segAttributes.At(v, seg); }

    /// <summary>Accounting bits of the five fields the exit's front end keys on (<see cref="FrontKey"/>).</summary>
    const ulong FrontBits = 1UL << Bit.Cr0 | 1UL << Bit.Cr4 | 1UL << Bit.Efer | 1UL << Bit.Cr3
        | 1UL << (Bit.SegFirst + StateField.Cs * 4 + StateField.Attributes);

    /// <summary>
    /// CR0, CR4, EFER, CR3 and CS's attributes: what the exit's front end reads first on every exit (the paging mode, the
    /// code bitness, the memo's key). Charged exactly as the five getters would charge them (a TDG.VP.RD for each not yet
    /// read since the exit), with one test of the accounting row when all five are already known, as on SNP always.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void FrontKey(int v, out ulong cr0, out ulong cr4, out ulong efer, out ulong cr3, out ushort csAttr)
    {
        if ((Unchecked.At(_acct, v).Valid & FrontBits) != FrontBits) ChargeFront(v);
        cr0 = _cr0[v]; cr4 = _cr4[v]; efer = _efer[v]; cr3 = _cr3[v];
        csAttr = _segAttributes.At(v, StateField.Cs);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    void ChargeFront(int v)
    {
        ChargeRead(v, Bit.Cr0); ChargeRead(v, Bit.Cr4); ChargeRead(v, Bit.Efer); ChargeRead(v, Bit.Cr3);
        ChargeRead(v, Bit.Seg(StateField.Cs, StateField.Attributes));
    }

    public void SetSegSelector(int v, int seg, ushort value) { ChargeWrite(v, Bit.Seg(seg, StateField.Selector)); _segSelector.At(v, seg) = value; }
    public void SetSegBase(int v, int seg, ulong value) { ChargeWrite(v, Bit.Seg(seg, StateField.Base)); _segBase.At(v, seg) = value; }
    public void SetSegLimit(int v, int seg, uint value) { ChargeWrite(v, Bit.Seg(seg, StateField.Limit)); _segLimit.At(v, seg) = value; }
    public void SetSegAttributes(int v, int seg, ushort value) { ChargeWrite(v, Bit.Seg(seg, StateField.Attributes)); _segAttributes.At(v, seg) = (ushort)(value & SegmentAttributes.Mask); }

    // ---- GDTR and IDTR (c14a: the system-table forms) ----
    /// <summary>GDTR base (linear).</summary>
    public ulong GdtrBase(int v) { ChargeRead(v, Bit.GdtrBase); return _dtBase.At(v, 0); }
    public ushort GdtrLimit(int v) { ChargeRead(v, Bit.GdtrLimit); return _dtLimit.At(v, 0); }
    public ulong IdtrBase(int v) { ChargeRead(v, Bit.IdtrBase); return _dtBase.At(v, 1); }
    public ushort IdtrLimit(int v) { ChargeRead(v, Bit.IdtrLimit); return _dtLimit.At(v, 1); }
    public void SetGdtrBase(int v, ulong value) { ChargeWrite(v, Bit.GdtrBase); _dtBase.At(v, 0) = value; }
    public void SetGdtrLimit(int v, ushort value) { ChargeWrite(v, Bit.GdtrLimit); _dtLimit.At(v, 0) = value; }
    public void SetIdtrBase(int v, ulong value) { ChargeWrite(v, Bit.IdtrBase); _dtBase.At(v, 1) = value; }
    public void SetIdtrLimit(int v, ushort value) { ChargeWrite(v, Bit.IdtrLimit); _dtLimit.At(v, 1) = value; }

    /// <summary>The interruptibility state (<see cref="StateField.Interruptibility"/>: blocking by STI, by MOV SS).</summary>
    public ulong Interruptibility(int v) { ChargeRead(v, Bit.Interruptibility); return _interruptibility[v]; }
    public void SetInterruptibility(int v, ulong value) { ChargeWrite(v, Bit.Interruptibility); _interruptibility[v] = value; }
    /// <summary>The defined bits of the interruptibility field (a write with any other is refused).</summary>
    public const ulong InterruptibilityMask = StateField.BlockingBySti | StateField.BlockingByMovSs;

    /// <summary>XMM register <paramref name="n"/> (0..15): one charged read of both halves on TDX.</summary>
    public UInt128 Xmm(int v, int n) { ChargeRead(v, Bit.XmmFirst + n); return _xmm.At(v, n); }
    /// <summary>Writes XMM register <paramref name="n"/> (both halves; dirty until the next entry on TDX).</summary>
    public void SetXmm(int v, int n, UInt128 value) { ChargeWrite(v, Bit.XmmFirst + n); _xmm.At(v, n) = value; }

    /// <summary>The paging mode from CR0, CR4 and EFER (three charged reads on TDX the first time after an exit).</summary>
    public PagingMode PagingMode(int v) => Guest.PagingMode.From(Cr0(v), Cr4(v), Efer(v));

    // ---- by field id ---------------------------------------------------------------------------

    /// <summary>Reads field <paramref name="field"/> (a <see cref="StateField"/> id) with accounting. False for unknown fields.</summary>
    public bool TryRead(int v, ulong field, out ulong value)
    {
        if (field < 16) { value = _gpr.At(v, (int)field); return true; }
        switch (field)
        {
            case StateField.Rip: value = _rip[v]; return true;
            case StateField.Rflags: value = _rflags[v]; return true;
            case StateField.Cr0: value = Cr0(v); return true;
            case StateField.Cr2: value = Cr2(v); return true;
            case StateField.Cr3: value = Cr3(v); return true;
            case StateField.Cr4: value = Cr4(v); return true;
            case StateField.Efer: value = Efer(v); return true;
            case StateField.Dr6: value = Dr6(v); return true;
            case StateField.Interruptibility: value = Interruptibility(v); return true;
            case >= StateField.SegBase and < StateField.SegBase + 4 * SegCount:
                value = ReadSeg(v, (int)(field - StateField.SegBase));
                return true;
            case StateField.GdtrBase: value = GdtrBase(v); return true;
            case StateField.GdtrLimit: value = GdtrLimit(v); return true;
            case StateField.IdtrBase: value = IdtrBase(v); return true;
            case StateField.IdtrLimit: value = IdtrLimit(v); return true;
            case StateField.ExitReason: value = _exitReason[v]; return true;
            case StateField.ExitQualification: value = _exitQualification[v]; return true;
            case StateField.ExitGpa: value = _exitGpa[v]; return true;
            case StateField.ExitInstructionLength: value = _exitLength[v]; return true;
            case StateField.PendingEvent: value = PendingEvent(v); return true;
            case >= StateField.XmmBase and < StateField.XmmBase + 2 * XmmCount:
            {
                int x = (int)(field - StateField.XmmBase);
                UInt128 q = Xmm(v, x >> 1);
                value = (x & 1) == 0 ? (ulong)q : (ulong)(q >> 64);
                return true;
            }
        }
        if (IsX87Field(field)) return TryReadX87(v, field, out value);
        if ((field & ~0xFFFF_FFFFUL) == StateField.MsrSpace) return TryReadMsr(v, (uint)field, out value);
        value = 0;
        return false;
    }

    /// <summary>
    /// Writes field <paramref name="field"/> with accounting. False for unknown or read-only fields (the exit
    /// information) and for values wider than the field (selector 16 bits, limit 32, attributes 12, TSC_AUX 32, pending
    /// event with bits 30:12 set).
    /// </summary>
    public bool TryWrite(int v, ulong field, ulong value)
    {
        if (field < 16) { _gpr.At(v, (int)field) = value; return true; }
        switch (field)
        {
            case StateField.Rip: _rip[v] = value; return true;
            case StateField.Rflags: _rflags[v] = value; return true;
            case StateField.Cr0: SetCr0(v, value); return true;
            case StateField.Cr2: SetCr2(v, value); return true;
            case StateField.Cr3: SetCr3(v, value); return true;
            case StateField.Cr4: SetCr4(v, value); return true;
            case StateField.Efer: SetEfer(v, value); return true;
            case StateField.Dr6:
                if (value > uint.MaxValue) return false;   // bits 63:32 of DR6 are reserved (must be zero)
                SetDr6(v, value);
                return true;
            case StateField.Interruptibility:
                if ((value & ~InterruptibilityMask) != 0) return false;
                SetInterruptibility(v, value);
                return true;
            case >= StateField.SegBase and < StateField.SegBase + 4 * SegCount:
                return WriteSeg(v, (int)(field - StateField.SegBase), value);
            case StateField.GdtrBase: SetGdtrBase(v, value); return true;
            case StateField.IdtrBase: SetIdtrBase(v, value); return true;
            case StateField.GdtrLimit or StateField.IdtrLimit:
                if (value > ushort.MaxValue) return false;   // the table limits are 16 bits
                if (field == StateField.GdtrLimit) SetGdtrLimit(v, (ushort)value); else SetIdtrLimit(v, (ushort)value);
                return true;
            case StateField.PendingEvent:
                if ((value & PendingEventReserved) != 0) return false;
                SetPendingEvent(v, value);
                return true;
            case >= StateField.XmmBase and < StateField.XmmBase + 2 * XmmCount:
            {
                // Why: a write of one half keeps the other: the store holds both, so no TDG.VP.RD is needed for it.
                int x = (int)(field - StateField.XmmBase), n = x >> 1;
                UInt128 q = _xmm.At(v, n);
                q = (x & 1) == 0 ? (q & ((UInt128)ulong.MaxValue << 64)) | value : (q & ulong.MaxValue) | ((UInt128)value << 64);
                SetXmm(v, n, q);
                return true;
            }
        }
        if (IsX87Field(field)) return TryWriteX87(v, field, value);
        if ((field & ~0xFFFF_FFFFUL) == StateField.MsrSpace) return TryWriteMsr(v, (uint)field, value);
        return false;
    }

    /// <summary>Bits 30:12 of EVENTINJ are reserved.</summary>
    const ulong PendingEventReserved = 0x7FFF_F000UL;

    /// <summary>The valid/dirty bit that field id <paramref name="field"/> is charged to, or -1 when it is free or unknown.</summary>
    public static int TrackedBit(ulong field)
    {
        switch (field)
        {
            case StateField.Cr0: return Bit.Cr0;
            case StateField.Cr2: return Bit.Cr2;
            case StateField.Cr3: return Bit.Cr3;
            case StateField.Cr4: return Bit.Cr4;
            case StateField.Efer: return Bit.Efer;
            case StateField.Dr6: return Bit.Dr6;
            case StateField.Interruptibility: return Bit.Interruptibility;
            case >= StateField.SegBase and < StateField.SegBase + 4 * SegCount:
                return Bit.Seg((int)(field - StateField.SegBase) >> 2, (int)(field - StateField.SegBase) & 3);
            case StateField.GdtrBase: return Bit.GdtrBase;
            case StateField.GdtrLimit: return Bit.GdtrLimit;
            case StateField.IdtrBase: return Bit.IdtrBase;
            case StateField.IdtrLimit: return Bit.IdtrLimit;
            case StateField.PendingEvent: return Bit.PendingEvent;
            case >= StateField.XmmBase and < StateField.XmmBase + 2 * XmmCount: return Bit.XmmFirst + (int)(field - StateField.XmmBase) / 2;
        }
        if ((field & ~0xFFFF_FFFFUL) != StateField.MsrSpace) return -1;
        return (uint)field switch
        {
            MsrIndex.Efer => Bit.Efer,
            MsrIndex.FsBase => Bit.Seg(StateField.Fs, StateField.Base),
            MsrIndex.GsBase => Bit.Seg(StateField.Gs, StateField.Base),
            _ when MsrSlot((uint)field) is int s and >= 0 => Bit.MsrFirst + s,
            _ => -1,
        };
    }

    ulong ReadSeg(int v, int index)
    {
        int seg = index >> 2;
        return (index & 3) switch
        {
            StateField.Selector => SegSelector(v, seg),
            StateField.Base => SegBase(v, seg),
            StateField.Limit => SegLimit(v, seg),
            _ => SegAttributes(v, seg),
        };
    }

    bool WriteSeg(int v, int index, ulong value)
    {
        int seg = index >> 2;
        switch (index & 3)
        {
            case StateField.Selector:
                if (value > ushort.MaxValue) return false;
                SetSegSelector(v, seg, (ushort)value);
                return true;
            case StateField.Base:
                SetSegBase(v, seg, value);
                return true;
            case StateField.Limit:
                if (value > uint.MaxValue) return false;
                SetSegLimit(v, seg, (uint)value);
                return true;
            default:
                if (value > SegmentAttributes.Mask) return false;
                SetSegAttributes(v, seg, (ushort)value);
                return true;
        }
    }

    /// <summary>Slot of an MSR with its own storage, or -1.</summary>
    static int MsrSlot(uint msr) => msr switch
    {
        MsrIndex.Star => MsrStar,
        MsrIndex.Lstar => MsrLstar,
        MsrIndex.Cstar => MsrCstar,
        MsrIndex.Sfmask => MsrSfmask,
        MsrIndex.KernelGsBase => MsrKernelGsBase,
        MsrIndex.TscAux => MsrTscAux,
        MsrIndex.SysenterCs => MsrSysenterCs,
        MsrIndex.SysenterEsp => MsrSysenterEsp,
        MsrIndex.SysenterEip => MsrSysenterEip,
        MsrIndex.Pat => MsrPat,
        _ => -1,
    };

    /// <summary>Reads a pass-through MSR with accounting. False when the MSR does not pass through.</summary>
    public bool TryReadMsr(int v, uint msr, out ulong value)
    {
        switch (msr)
        {
            case MsrIndex.Efer: value = Efer(v); return true;
            case MsrIndex.FsBase: value = SegBase(v, StateField.Fs); return true;
            case MsrIndex.GsBase: value = SegBase(v, StateField.Gs); return true;
        }
        int slot = MsrSlot(msr);
        if (slot < 0) { value = 0; return false; }
        ChargeRead(v, Bit.MsrFirst + slot);
        value = _msr.At(v, slot);
        return true;
    }

    /// <summary>Writes a pass-through MSR with accounting. False when it does not pass through or the value is too wide.</summary>
    public bool TryWriteMsr(int v, uint msr, ulong value)
    {
        switch (msr)
        {
            case MsrIndex.Efer: SetEfer(v, value); return true;
            case MsrIndex.FsBase: SetSegBase(v, StateField.Fs, value); return true;
            case MsrIndex.GsBase: SetSegBase(v, StateField.Gs, value); return true;
        }
        int slot = MsrSlot(msr);
        if (slot < 0 || (slot == MsrTscAux && value > uint.MaxValue)) return false;
        ChargeWrite(v, Bit.MsrFirst + slot);
        _msr.At(v, slot) = value;
        return true;
    }

    // ---- platform side: no accounting ----------------------------------------------------------

    /// <summary>
    /// Platform side (backends, initial state): writes a field as the hardware would, without charging the kernel
    /// and without touching valid/dirty. Same field ids and width rules as <see cref="TryWrite"/>, except the exit
    /// information fields are writable here.
    /// </summary>
    public bool TryPoke(int v, ulong field, ulong value)
    {
        ref Accounting a = ref Unchecked.At(_acct, v);   // v < the store's vCPUs, as for its columns (VcpuColumn)
        (ulong valid, ulong dirty) = (a.Valid, a.Dirty);
        bool ok;
        switch (field)
        {
            case StateField.ExitReason: _exitReason[v] = value; return true;
            case StateField.ExitQualification: _exitQualification[v] = value; return true;
            case StateField.ExitGpa: _exitGpa[v] = value; return true;
            case StateField.ExitInstructionLength: _exitLength[v] = value; return true;
            default: ok = TryWrite(v, field, value); break;
        }
        (a.Valid, a.Dirty) = (valid, dirty);
        return ok;
    }

    /// <summary>Platform side: the pending event without charging (the hardware's view; the replay backend's per-exit check).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong PeekPendingEvent(int v) => _pendingEvent[v];

    /// <summary>Platform side: reads a field without charging (traces, tests, the KVM backend's own sync).</summary>
    public bool TryPeek(int v, ulong field, out ulong value)
    {
        ref Accounting a = ref Unchecked.At(_acct, v);   // v < the store's vCPUs, as for its columns (VcpuColumn)
        (ulong valid, long reads) = (a.Valid, a.Reads);
        bool ok = TryRead(v, field, out value);
        (a.Valid, a.Reads) = (valid, reads);
        return ok;
    }

    // ---- VMSA page (SNP) -----------------------------------------------------------------------

    /// <summary>
    /// Writes vCPU v's whole state into <paramref name="page"/> (at least 4096 bytes) in the <see cref="VmsaLayout"/>.
    /// False on TDX (there is no VMSA) or when the page is too small.
    /// </summary>
    public bool TryExportVmsa(int v, Span<byte> page)
    {
        if (Cost != StateAccessCost.Snp || page.Length < VmsaLayout.Size) return false;
        page = page[..VmsaLayout.Size];
        page.Clear();
        for (int s = 0; s < SegCount; s++)
        {
            Span<byte> seg = page[VmsaLayout.Segment(s)..];
            BinaryPrimitives.WriteUInt16LittleEndian(seg[VmsaLayout.SegSelector..], _segSelector.At(v, s));
            BinaryPrimitives.WriteUInt16LittleEndian(seg[VmsaLayout.SegAttributes..], _segAttributes.At(v, s));
            BinaryPrimitives.WriteUInt32LittleEndian(seg[VmsaLayout.SegLimit..], _segLimit.At(v, s));
            BinaryPrimitives.WriteUInt64LittleEndian(seg[VmsaLayout.SegBase..], _segBase.At(v, s));
        }
        for (int t = 0; t < 2; t++)
        {
            Span<byte> dt = page[(t == 0 ? VmsaLayout.Gdtr : VmsaLayout.Idtr)..];
            BinaryPrimitives.WriteUInt32LittleEndian(dt[VmsaLayout.SegLimit..], _dtLimit.At(v, t));
            BinaryPrimitives.WriteUInt64LittleEndian(dt[VmsaLayout.SegBase..], _dtBase.At(v, t));
        }
        for (int r = 0; r < 16; r++) Put(page, VmsaLayout.Gpr(r), _gpr.At(v, r));
        Put(page, VmsaLayout.Rip, _rip[v]);
        Put(page, VmsaLayout.Rflags, _rflags[v]);
        Put(page, VmsaLayout.Cr0, _cr0[v]);
        Put(page, VmsaLayout.Cr2, _cr2[v]);
        Put(page, VmsaLayout.Cr3, _cr3[v]);
        Put(page, VmsaLayout.Cr4, _cr4[v]);
        Put(page, VmsaLayout.Efer, _efer[v]);
        Put(page, VmsaLayout.EventInj, _pendingEvent[v]);
        Put(page, VmsaLayout.Dr6, _dr6[v]);
        // Why: SVM keeps one shadow bit for STI and MOV SS alike; an import gives it back as blocking by MOV SS.
        Put(page, VmsaLayout.VintrCtrl, _interruptibility[v] != 0 ? 1UL << VmsaLayout.IntShadowBit : 0);
        Put(page, VmsaLayout.Star, _msr.At(v, MsrStar));
        Put(page, VmsaLayout.Lstar, _msr.At(v, MsrLstar));
        Put(page, VmsaLayout.Cstar, _msr.At(v, MsrCstar));
        Put(page, VmsaLayout.Sfmask, _msr.At(v, MsrSfmask));
        Put(page, VmsaLayout.KernelGsBase, _msr.At(v, MsrKernelGsBase));
        Put(page, VmsaLayout.SysenterCs, _msr.At(v, MsrSysenterCs));
        Put(page, VmsaLayout.SysenterEsp, _msr.At(v, MsrSysenterEsp));
        Put(page, VmsaLayout.SysenterEip, _msr.At(v, MsrSysenterEip));
        Put(page, VmsaLayout.GPat, _msr.At(v, MsrPat));
        BinaryPrimitives.WriteUInt32LittleEndian(page[VmsaLayout.TscAux..], (uint)_msr.At(v, MsrTscAux));
        Put(page, VmsaLayout.ExitCode, _exitReason[v]);
        Put(page, VmsaLayout.ExitInfo1, _exitQualification[v]);
        Put(page, VmsaLayout.ExitInfo2, _exitGpa[v]);
        for (int n = 0; n < XmmCount; n++)
            BinaryPrimitives.WriteUInt128LittleEndian(page[VmsaLayout.Xmm(n)..], _xmm.At(v, n));
        ExportX87(v, page);
        return true;
    }

    /// <summary>
    /// Loads vCPU v's state from a <see cref="VmsaLayout"/> page. False (and nothing changed) on TDX, for a short page,
    /// for attributes wider than 12 bits, a pending event with reserved bits or DR6 with bits 63:32 set. Exit fields in the page are ignored.
    /// </summary>
    public bool TryImportVmsa(int v, ReadOnlySpan<byte> page)
    {
        if (Cost != StateAccessCost.Snp || page.Length < VmsaLayout.Size) return false;
        for (int s = 0; s < SegCount; s++)
            if (BinaryPrimitives.ReadUInt16LittleEndian(page[(VmsaLayout.Segment(s) + VmsaLayout.SegAttributes)..]) > SegmentAttributes.Mask)
                return false;
        if (BinaryPrimitives.ReadUInt32LittleEndian(page[(VmsaLayout.Gdtr + VmsaLayout.SegLimit)..]) > ushort.MaxValue
            || BinaryPrimitives.ReadUInt32LittleEndian(page[(VmsaLayout.Idtr + VmsaLayout.SegLimit)..]) > ushort.MaxValue)
            return false;
        if ((Get(page, VmsaLayout.EventInj) & PendingEventReserved) != 0) return false;
        if (Get(page, VmsaLayout.Dr6) > uint.MaxValue) return false;
        if (!X87PageValid(page)) return false;

        for (int s = 0; s < SegCount; s++)
        {
            ReadOnlySpan<byte> seg = page[VmsaLayout.Segment(s)..];
            _segSelector.At(v, s) = BinaryPrimitives.ReadUInt16LittleEndian(seg[VmsaLayout.SegSelector..]);
            _segAttributes.At(v, s) = BinaryPrimitives.ReadUInt16LittleEndian(seg[VmsaLayout.SegAttributes..]);
            _segLimit.At(v, s) = BinaryPrimitives.ReadUInt32LittleEndian(seg[VmsaLayout.SegLimit..]);
            _segBase.At(v, s) = BinaryPrimitives.ReadUInt64LittleEndian(seg[VmsaLayout.SegBase..]);
        }
        for (int t = 0; t < 2; t++)
        {
            ReadOnlySpan<byte> dt = page[(t == 0 ? VmsaLayout.Gdtr : VmsaLayout.Idtr)..];
            _dtLimit.At(v, t) = (ushort)BinaryPrimitives.ReadUInt32LittleEndian(dt[VmsaLayout.SegLimit..]);
            _dtBase.At(v, t) = BinaryPrimitives.ReadUInt64LittleEndian(dt[VmsaLayout.SegBase..]);
        }
        for (int r = 0; r < 16; r++) _gpr.At(v, r) = Get(page, VmsaLayout.Gpr(r));
        _rip[v] = Get(page, VmsaLayout.Rip);
        _rflags[v] = Get(page, VmsaLayout.Rflags);
        _cr0[v] = Get(page, VmsaLayout.Cr0);
        _cr2[v] = Get(page, VmsaLayout.Cr2);
        _cr3[v] = Get(page, VmsaLayout.Cr3);
        _cr4[v] = Get(page, VmsaLayout.Cr4);
        _efer[v] = Get(page, VmsaLayout.Efer);
        _pendingEvent[v] = Get(page, VmsaLayout.EventInj);
        _dr6[v] = Get(page, VmsaLayout.Dr6);
        _interruptibility[v] = (Get(page, VmsaLayout.VintrCtrl) >> VmsaLayout.IntShadowBit & 1) != 0 ? StateField.BlockingByMovSs : 0;
        _msr.At(v, MsrStar) = Get(page, VmsaLayout.Star);
        _msr.At(v, MsrLstar) = Get(page, VmsaLayout.Lstar);
        _msr.At(v, MsrCstar) = Get(page, VmsaLayout.Cstar);
        _msr.At(v, MsrSfmask) = Get(page, VmsaLayout.Sfmask);
        _msr.At(v, MsrKernelGsBase) = Get(page, VmsaLayout.KernelGsBase);
        _msr.At(v, MsrSysenterCs) = Get(page, VmsaLayout.SysenterCs);
        _msr.At(v, MsrSysenterEsp) = Get(page, VmsaLayout.SysenterEsp);
        _msr.At(v, MsrSysenterEip) = Get(page, VmsaLayout.SysenterEip);
        _msr.At(v, MsrPat) = Get(page, VmsaLayout.GPat);
        _msr.At(v, MsrTscAux) = BinaryPrimitives.ReadUInt32LittleEndian(page[VmsaLayout.TscAux..]);
        for (int n = 0; n < XmmCount; n++)
            _xmm.At(v, n) = BinaryPrimitives.ReadUInt128LittleEndian(page[VmsaLayout.Xmm(n)..]);
        ImportX87(v, page);
        return true;
    }

    static void Put(Span<byte> page, int offset, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(page[offset..], value);
    static ulong Get(ReadOnlySpan<byte> page, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(page[offset..]);
}

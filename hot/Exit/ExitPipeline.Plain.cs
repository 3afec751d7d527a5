using System.Runtime.CompilerServices;
using Copra.Abi;
using Copra.Hot.Decode;
using Copra.Hot.Emulate;
using Copra.Hot.Guest;

namespace Copra.Hot.Exit;

/// <summary>
/// One memo entry (<see cref="InFlight.Memo"/>: per vCPU, one per instruction address's low bits): a plain MOV, IN or OUT
/// at <see cref="Rip"/>, the inputs its front end read (the control registers, CS's attributes, the RFLAGS bits such an
/// instruction's checks read, the instruction's bytes, the exit's kind and reported port) with what it derived from them
/// (the decode, the paging mode, the fault context), the page its operand was on with the guest-physical page it
/// mapped to, and the device range that owned it with the range table's version. The RIP names the entry; nothing the
/// front end derives depends on it beyond the bytes (a RIP-relative operand is computed from this exit's RIP).
/// </summary>
public struct PlainMemo
{
    public ulong Rip, Cr0, Cr4, Efer, Cr3, RflagsKey;
    /// <summary>The instruction's bytes as <see cref="InstructionFetcher.TryFetchWords"/> reads them (the 16th zeroed).</summary>
    public ulong CodeLo, CodeHi;
    /// <summary>The operand's linear page and the guest-physical page the walk gave (the hardware's GPA agreed).</summary>
    public ulong LinearPage, GpaPage;
    /// <summary>The device that owned the operand (0: none recorded): its range's first GPA, the span from there in which
    /// an access of this size stays inside the range, and the range table's version it was read from.</summary>
    public ulong OwnerLo, OwnerSpan;
    /// <summary>The decode's address-size mask (<see cref="EffectiveAddress.Linear64"/>), kept with the derivation.</summary>
    public ulong AddressMask;
    public int Owner, MmioVersion;
    public ushort CsAttr;
    /// <summary>The exit's kind, and for port I/O the port and width the hardware reported (the fault context holds them).</summary>
    public ExitReason Reason;
    public ushort Port;
    public byte Size;
    /// <summary>The code-page entry's key for the fetch (the paging mode's bits and the fetch's access type: CPL, CR4.SMEP).</summary>
    public ushort FetchKey;
    /// <summary>Key, derivation and pages are complete.</summary>
    public bool Valid;
    /// <summary>What the front end derived: the columns <see cref="InFlight.Acc"/>, <c>Mode</c> and <c>Fault</c> take these on a replay.</summary>
    public DecodedAccess Acc;
    public PagingMode Mode;
    public FaultContext Fault;
}

/// <summary>
/// The fused stage for the exit of nearly every driver's register access: a plain MOV load or store (Read, ReadZx,
/// ReadSx, Write, WriteImm), IN or OUT that exited before at the same RIP, exiting again in the same context. The front
/// end's work (paging mode, code bitness, fault context, decode, the element checks' verdict) is a function of the state
/// it reads and of the instruction's bytes; when all of those equal what the instruction's memo entry was derived from
/// (<see cref="PlainMemo"/>), the entry's derivation is right for this exit, the columns (<see cref="InFlight.Acc"/>,
/// <c>Mode</c>, <c>Cr3</c>, <c>Fault</c>, <c>CheckElements</c>, <c>SegBase</c>, <c>EsBase</c>) take it (or already hold
/// it: <see cref="InFlightRow.MemoHeld"/>), and the exit goes from the compare straight to its operand; when the operand is
/// on the page it was on then and the hardware's GPA names the page the walk gave then, the translation is known too,
/// and the side goes straight to the owner lookup; and when the VM's range table is still the version the entry read its
/// owner from and the operand lies inside that owner's range, the side goes straight to the owner (the table's answer
/// for any address of the range until a registration or removal publishes a new version).
///
/// Why exact: the key holds every input the front end reads for such an instruction in 64-bit mode (CR0, CR4, EFER,
/// CS's attributes, CR3, RFLAGS' TF, IOPL and AC, the exit's kind and for port I/O its reported port and width; SS's attributes are not read for a non-conforming CS, and a
/// conforming CS is never memoised; FS and GS operands, whose base is state, are never memoised), and the bytes are
/// read from guest memory on every exit through the same code-page entry the full path uses (self-modifying code
/// misses). An entry holds its own derivation, so nothing the full front end does to the columns in between can make it
/// wrong; <see cref="InvalidateCaches"/> clears the entries anyway. An entry is armed only when the decode came from the decode cache (an
/// Iced fallback is counted on every exit, so it is never skipped), and a followed or hardware-completed exit never
/// takes it. The RFLAGS copy in the fault context may then differ from RFLAGS in the status flags, which no check of a
/// plain MOV reads. The data TLB's entry that gave the pages is not touched in between (the walker sets no
/// accessed or dirty bits), so skipping its lookup changes nothing either. Every counter the full path moves, this
/// path moves the same (the code-page hit; the TLB and decode cache count nothing), except the range table's own
/// per-vCPU hits, which count the lookups it is asked (a diagnostic of its cache that no report reads).
/// </summary>
public sealed partial class ExitPipeline<THost>
{
    /// <summary>RFLAGS bits the front end's derivation reads for a plain MOV, IN or OUT in 64-bit mode (TF, IOPL, AC; VM is ignored there).</summary>
    const ulong MemoRflags = FaultContext.RflagsTf | FaultContext.RflagsIoplMask | FaultContext.RflagsAc;

    /// <summary>
    /// The fused stage: true when vCPU <paramref name="v"/>'s exit is the memoised instruction in the memoised context
    /// and has been run from here (to its device, the host, RAM or a fault); false, having written nothing, otherwise.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]   // its one caller is BeginAccess, itself inlined into HandleExit
    bool ReplayPlain(int cpu, int v)
    {
        ref var row = ref _f.Row[v];
        ref readonly var rec = ref _f.Exit[v];
        if (row.HardwareCompletes || row.Follow != 0) return false;
        ulong rip = State.Rip(v);
        int slot = InFlight.MemoSlot(rip);
        ref var m = ref _f.Memo.At(v, slot);
        if (!m.Valid || rip != m.Rip || rec.Reason != m.Reason) return false;
        if (rec.Reason == ExitReason.Io && (rec.Port != m.Port || rec.Size != m.Size)) return false;
        // All five read (and, on TDX, charged) even when the first differs: the full front end reads them all next.
        State.FrontKey(v, out ulong cr0, out ulong cr4, out ulong efer, out ulong cr3, out ushort csAttr);
        if (cr3 != m.Cr3 || cr0 != m.Cr0 || cr4 != m.Cr4 || efer != m.Efer || csAttr != m.CsAttr || (State.Rflags(v) & MemoRflags) != m.RflagsKey)
            return false;
        if (!Fetcher.TryFetchWords(v, _memory, m.Cr3, rip, m.FetchKey, out ulong lo, out ulong hi) || lo != m.CodeLo || hi != m.CodeHi)
            return false;
        // The entry's derivation into the columns, unless they hold it already (the same instruction as the last exit's).
        if (row.MemoHeld != slot + 1)
        {
            _f.Acc[v] = m.Acc;
            _f.Mode[v] = m.Mode;
            row.Cr3 = m.Cr3;
            _f.Fault[v] = m.Fault;
            row.SegBase = 0;   // 64-bit mode, not FS or GS
            row.EsBase = 0;
            row.CheckElements = false;
            row.MemoHeld = slot + 1;
        }

        // BeginAccess's per-instruction stores, then PlainElement's. Not RepElements: only a string form reads it, and the
        // memo takes none (the full front end zeroes it for each instruction it begins).
        ref readonly var d = ref _f.Acc[v];
        row.FirstElement = true;
        row.LockRetries = 0;
        if (rec.Reason == ExitReason.Io)
        {
            // StartElement and AfterRead's OUT case: IN reads the port; OUT has no read side and stores its register.
            if (d.Kind == AccessKind.Out)
            {
                row.Value = 0;
                ulong store = WriteBack.StoreValue(in d, State.Gprs(v));
                row.Phase = ElementPhase.Write;
                row.WriteValue = store;
                PortSide(cpu, v, write: true, store);
            }
            else
            {
                row.Phase = ElementPhase.Read;
                PortSide(cpu, v, write: false, 0);
            }
            return true;
        }
        // A store's one side is its write; a load's and an ALU form's first is a read (the RMW's write comes
        // after the model's answer, to the GPA its read went to: AfterRead, from RmwGpa).
        bool write = d.Kind is AccessKind.Write or AccessKind.WriteImm;
        ulong data = 0;
        if (write)
        {
            row.Value = 0;
            data = WriteBack.StoreValue(in d, State.Gprs(v));
            row.WriteValue = data;
        }
        row.Phase = write ? ElementPhase.Write : ElementPhase.Read;
        ulong linear = EffectiveAddress.Linear64(d, State.Gprs(v), rip + d.Length, m.AddressMask);   // 64-bit, not FS/GS, not BT (the memo's forms)
        if (CanonicalFaults(cpu, v, linear)) return true;
        ulong offset = linear & Page.Mask;
        // No RAM test: the page led to a device when the entry was made, and a VM's RAM is whole pages fixed for its life
        // (VmObject's constructor), so no byte of it is RAM now. RmwGpa is left as StartElement and MemorySide leave it,
        // for a memoised read-modify-write (MemoAlu), whose write goes where its read goes; a load's or a store's is
        // never read (AfterRead ends them first), so it is stored for any form: a store costs less than the test.
        if ((linear & ~(ulong)Page.Mask) != m.LinearPage || (rec.Gpa & ~(ulong)Page.Mask) != m.GpaPage || offset + d.Size > Page.Size)
        {
            // Another page: the general side, which records the new pages when it reaches a device.
            row.MemoArmed = slot + 1;
            _f.RmwGpa[v] = InFlight.NoGpa;
            MemorySide(cpu, v, linear, write, data);
            return true;
        }
        ulong gpa = m.GpaPage | offset;
        _f.RmwGpa[v] = gpa;
        // The owner the entry recorded, while the VM's ranges are the snapshot it was read from and the access lies inside
        // its range: the range table's answer, without its lookup. Otherwise the side asks the table.
        if (m.Owner != 0 && gpa - m.OwnerLo <= m.OwnerSpan && _host.Mmio(v).Version == m.MmioVersion)
            _host.Request(cpu, v, m.Owner, EventKind.Mmio, gpa, write, data);
        else MmioSide(cpu, v, gpa, d.Size, write, data);
        return true;
    }

    /// <summary>
    /// The ALU forms the memo takes beside the plain MOV: any with its memory operand at a device (ADD, OR, CMP, the shifts,
    /// MUL, DIV, XADD, CMPXCHG, ..., locked or not: a device's LOCK is its request's, held by the event object, as on the
    /// general side). Their first side is a read, to the memoised page like a load's; the general AfterRead computes, and a
    /// read-modify-write's write goes to the GPA its read went to. Not CMPXCHG16B: its operand must be aligned
    /// (DecodedAccess.Align), a check the replay does not make.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static bool MemoAlu(in DecodedAccess d) => d.Kind == AccessKind.Alu && d.Align == 0;

    /// <summary>
    /// The full front end dispatches a plain MOV, IN or OUT decoded from the cache in 64-bit mode: stores the key it was
    /// derived from, so the element's MMIO side (<see cref="RecordPlainPages"/>) or port side (<see cref="RecordPlainPort"/>)
    /// can complete the memo.
    /// </summary>
    void ArmPlain(int v, in ExitRecord rec, ulong rip, ulong cr0, ulong cr4, ulong efer, ushort csAttr, ulong cr3, AccessType fetch, ulong lo, ulong hi)
    {
        int slot = InFlight.MemoSlot(rip);
        ref var m = ref _f.Memo.At(v, slot);
        // Why only at the second exit at one RIP: a vCPU that runs many instructions once (a driver's setup sequence)
        // would pay the entry's stores on every exit for an entry it never uses; a poll or a loop pays them once.
        if (m.Rip != rip) { m.Rip = rip; m.Valid = false; return; }
        ref readonly var d = ref _f.Acc[v];
        if (FaultContext.CplNeedsSs(SegMode.Long64, csAttr) || d.SrcSegment is Seg.FS or Seg.GS) return;
        m.Valid = false;   // until its side completes it
        m.Reason = rec.Reason; m.Port = rec.Port; m.Size = rec.Size;
        m.Cr0 = cr0; m.Cr4 = cr4; m.Efer = efer; m.CsAttr = csAttr; m.Cr3 = cr3;
        m.RflagsKey = _f.Fault[v].Rflags & MemoRflags;
        m.FetchKey = InstructionFetcher.FetchKey(_f.Mode[v], fetch); m.CodeLo = lo; m.CodeHi = hi;
        m.Acc = d; m.Mode = _f.Mode[v]; m.Fault = _f.Fault[v]; m.AddressMask = X86Decoder.SizeMask(d.AddressSize);
        _f.Row[v].MemoArmed = slot + 1;
    }

    /// <summary>The armed plain element reached a device (or nobody) at <paramref name="gpa"/> through <paramref name="linear"/>'s page: the entry is complete.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void RecordPlainPages(int v, ulong linear, ulong gpa)
    {
        int armed = _f.Row[v].MemoArmed;
        ref var m = ref _f.Memo.At(v, armed - 1);
        m.LinearPage = linear & ~(ulong)Page.Mask;
        m.GpaPage = gpa & ~(ulong)Page.Mask;
        RecordPlainOwner(v, ref m, gpa);
        Complete(v, ref m, armed);
    }

    /// <summary>The device that owns <paramref name="gpa"/> now, for the entry's replays (none when nobody does, or when its
    /// range is shorter than the access: the side then finds the straddle itself). Out of line: once per entry.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    void RecordPlainOwner(int v, ref PlainMemo m, ulong gpa)
    {
        m.Owner = 0;
        uint size = _f.Acc[v].Size;
        if (!_host.Mmio(v).TryFind(gpa, out int version, out ulong start, out ulong end, out int owner) || end - start < size) return;
        m.OwnerLo = start;
        m.OwnerSpan = end - size - start;
        m.MmioVersion = version;
        m.Owner = owner;
    }

    /// <summary>The armed IN or OUT reached its port's owner (or nobody): the entry is complete.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void RecordPlainPort(int v)
    {
        int armed = _f.Row[v].MemoArmed;
        Complete(v, ref _f.Memo.At(v, armed - 1), armed);
    }

    /// <summary>The entry is complete, and the columns hold its derivation (the full front end's or a replay's).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void Complete(int v, ref PlainMemo m, int armed)
    {
        ref var row = ref _f.Row[v];
        m.Valid = true;
        row.MemoArmed = 0;
        row.MemoHeld = armed;
    }
}

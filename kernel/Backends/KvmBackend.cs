using Copra.Abi;
using Copra.Hot.Decode;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Hot.Layout;
using Copra.Hot.State;
using Copra.Hot.Timing;
using Copra.Kernel.Exit;
using Copra.Kernel.Kvm;

namespace Copra.Kernel.Backends;

/// <summary>
/// Real guest code under /dev/kvm. Each Copra VM becomes one KVM VM whose memory is the VM's range of
/// <see cref="Core.Kernel.Memory"/>, mapped identity (guest-physical = physical); device ranges are
/// simply unmapped, so accesses there exit as KVM_EXIT_MMIO. Per <see cref="Run"/>: the state store's
/// GPRs, RIP and RFLAGS go into KVM through the sync-regs area and a pending interrupt through
/// KVM_INTERRUPT; KVM_RUN (timed with the TSC); the exit becomes an <see cref="ExitRecord"/> flagged
/// <see cref="ExitFlags.HardwareCompletes"/>; KVM's registers (GPRs, RIP, RFLAGS, CR0/3/4, EFER,
/// segments) go back into the store with TryPoke (the hardware's doing, not charged).
///
/// Where the instruction is. KVM reports an MMIO write after its emulator has finished the instruction:
/// RIP already points past it (and for one element of an unfinished REP string, RIP stays but RSI/RDI/RCX
/// have moved). The kernel decodes from RIP, so for write exits the backend shows the store the state as
/// it was before the instruction: it finds the instruction that ends at RIP (or, for a REP string still
/// running, the one at RIP), rewinds RIP and the string registers one element, and remembers KVM's real
/// values; at the next entry, if the kernel left those registers as shown, KVM gets its own values back.
/// The instruction is found by Iced, not by the kernel's decoder (<see cref="WriteExitCheck"/>): the shortest one
/// ending at RIP whose address, size and data match what KVM reported; the kernel's decoder is then checked
/// against it. It affects only what the kernel is shown, never what the guest executes. This host's KVM also
/// skips an OUT before exiting (<see cref="LocateAndCheck"/>);
/// reads and IN need none of this: KVM reports them before the instruction. See docs/kvm.md.
/// </summary>
public sealed unsafe class KvmBackend : IGuestBackend, IHardwareTimedBackend
{
    readonly Core.Kernel _k;
    readonly VcpuStateStore _s;
    readonly KvmSystem _sys;
    readonly KvmVm[] _vms;
    readonly KvmVcpu[] _vcpus;
    // Per vCPU, each vCPU's entry on its own cache-line pair (hot/Layout/VcpuColumn.cs): written on every exit.
    readonly VcpuColumn<long> _lastRun;
    readonly VcpuColumn<ulong> _runStart;
    readonly VcpuColumn<KvmExit> _last;
    readonly VcpuColumn<KvmRegs> _pulled;
    readonly VcpuColumn<bool> _pulledValid;
    // The rewind shown to the kernel for a write exit, and KVM's own values to restore.
    readonly VcpuColumn<bool> _rewound;
    readonly VcpuColumn<ulong> _shownRip, _shownRsi, _shownRdi, _shownRcx, _realRip, _realRsi, _realRdi, _realRcx;
    // Full cycles (KVM_RUN start to the next KVM_RUN start) per vCPU and KVM exit kind, for the bare-loop comparison:
    // each vCPU's thread appends only to its own lists, so two vCPUs on two CPUs never share one.
    readonly List<long>[][] _cycles;

    /// <summary>What the backend counts, per vCPU (written by that vCPU's CPU only; summed when read).</summary>
    struct Counts
    {
        public long OutsRewound, RegsLoaded, RegsSkipped, Exits, InterruptWindows, InterruptsInjected, ExceptionsDropped,
            LocateFailures, ShutdownExits, IndependentMismatches, IndependentWriteMismatches, KernelCompleted;
    }
    readonly VcpuColumn<Counts> _counts;
    DecoderUnderTest _decoder = Decode;
    /// <summary>Each vCPU's VM's RAM (what KVM maps; everything else exits as MMIO).</summary>
    readonly (ulong Base, ulong Length)[] _ram;
    bool IsVmRam(int v, ulong gpa) => gpa - _ram[v].Base < _ram[v].Length;
    long Sum(Func<Counts, long> field)
    {
        long n = 0;
        for (int v = 0; v < _counts.Count; v++) n += field(_counts[v]);
        return n;
    }

    static readonly bool s_debug = Environment.GetEnvironmentVariable("COPRA_KVM_DEBUG") == "1";
    public string Name => "kvm";
    public long OutsRewound => Sum(c => c.OutsRewound);
    public long RegsLoaded => Sum(c => c.RegsLoaded);
    public long RegsSkipped => Sum(c => c.RegsSkipped);
    public long Exits => Sum(c => c.Exits);
    public long InterruptWindows => Sum(c => c.InterruptWindows);
    public long InterruptsInjected => Sum(c => c.InterruptsInjected);
    public long ExceptionsDropped => Sum(c => c.ExceptionsDropped);
    public long LocateFailures => Sum(c => c.LocateFailures);
    public long ShutdownExits => Sum(c => c.ShutdownExits);
    /// <summary>MMIO instructions KVM's emulator could not finish (KVM_EXIT_INTERNAL_ERROR, emulation) that the kernel finished instead.</summary>
    public long KernelCompleted => Sum(c => c.KernelCompleted);
    /// <summary>Exits where the kernel's decoder disagreed with the instruction Iced found and KVM's report (WriteExitCheck).</summary>
    public long IndependentMismatches => Sum(c => c.IndependentMismatches);
    /// <summary>Of those, the ones on MMIO write and OUT exits (the rest are on reads and IN).</summary>
    public long IndependentWriteMismatches => Sum(c => c.IndependentWriteMismatches);
    public readonly List<string> Problems = [];

    /// <summary>Full cycle kinds: what the bare loop measures.</summary>
    public enum CycleKind { MmioRead, MmioWrite, PortIn, PortOut }

    KvmBackend(Core.Kernel k, KvmSystem sys)
    {
        _k = k;
        _s = k.State;
        _sys = sys;
        int n = k.State.VcpuCount;
        _vms = new KvmVm[k.Vms.Count];
        _vcpus = new KvmVcpu[n];
        _lastRun = new(n); _runStart = new(n); _last = new(n);
        _pulled = new(n); _pulledValid = new(n);
        _counts = new(n);
        _ram = new (ulong, ulong)[n];
        _cycles = [.. Enumerable.Range(0, n).Select(_ => new List<long>[] { [], [], [], [] })];
        _rewound = new(n);
        _shownRip = new(n); _shownRsi = new(n); _shownRdi = new(n); _shownRcx = new(n);
        _realRip = new(n); _realRsi = new(n); _realRdi = new(n); _realRcx = new(n);
    }

    /// <summary>
    /// Builds the KVM guests (<see cref="KvmGuestBuilder"/>) into the kernel's memory, creates one KVM VM per
    /// Copra VM and its vCPUs, and loads the long-mode start state into both KVM and the state store.
    /// </summary>
    /// <param name="decoder">The decoder the hardware check holds against KVM and Iced: the kernel's (null), or a planted
    /// bug (tests show the check catching it on reads and writes alike).</param>
    public static KvmBackend Create(Core.Kernel k, IReadOnlyList<VmLayout> layouts, WorkloadSpec workload, IReadOnlyList<byte> irqVectors,
        DecoderUnderTest? decoder = null)
    {
        var sys = KvmSystem.Open();
        var b = new KvmBackend(k, sys);
        b._decoder = decoder ?? Decode;
        try
        {
            for (int i = 0; i < k.Vms.Count; i++)
            {
                var vm = k.Vms[i];
                var l = layouts[i];
                var kvm = sys.CreateVm();
                b._vms[i] = kvm;
                kvm.MapMemory((nint)(k.Memory.Base + l.MemBase), l.MemLength, l.MemBase);
                var gb = new KvmGuestBuilder(k.Memory, l, irqVectors[i]);
                for (int v = 0; v < vm.VcpuCount; v++)
                {
                    int g = vm.VcpuBase + v;
                    var st = gb.Build(workload, v);
                    st.ApplyTo(k.State, g);
                    k.State.OnEntry(g);   // the platform loaded this state; it is not the kernel's to pay for
                    var cpu = kvm.CreateVcpu((uint)v);
                    b._vcpus[g] = cpu;
                    b._ram[g] = (l.MemBase, l.MemLength);
                    cpu.LoadLongMode(new LongModeState(st.Cr3, st.GdtBase, st.GdtLimit, Gdt.Code64, Gdt.Data, st.IdtBase, st.IdtLimit,
                        Cr0: st.Cr0, Cr4: st.Cr4, Efer: st.Efer));
                }
            }
            k.StateBaseline = (k.State.TotalTdReads, k.State.TotalTdWrites);
            k.Stats.EnableHardware();
            return b;
        }
        catch
        {
            b.Dispose();
            throw;
        }
    }

    public KvmVcpu Vcpu(int v) => _vcpus[v];
    public long LastRunTicks(int vcpu) => _lastRun[vcpu];
    public IReadOnlyList<long> Cycles(CycleKind kind) => [.. _cycles.SelectMany(perVcpu => perVcpu[(int)kind])];

    public void Run(int v, ref ExitRecord exit)
    {
        var cpu = _vcpus[v];
        ulong now = Tsc.Read();
        if (_runStart[v] != 0 && CycleOf(_last[v]) is int ck) _cycles[v][ck].Add((long)(now - _runStart[v]));
        _runStart[v] = now;
        PushState(v, cpu);
        KvmExit e;
        while (true)
        {
            ulong t0 = Tsc.Read();
            e = cpu.Run();
            ulong t1 = Tsc.Read();
            _lastRun[v] = (long)(t1 - t0);
            if (e.Reason != KvmExitReason.IrqWindowOpen) break;
            _counts[v].InterruptWindows++;   // the guest can take the queued interrupt now: KvmVcpu.Run injects it
        }
        _last[v] = e;
        _counts[v].Exits++;
        if (s_debug) Console.Error.WriteLine($"[kvm] v{v} {e} rip=0x{cpu.GetRegs().Rip:x}");
        PullState(v, cpu);
        exit = default;
        exit.Vcpu = v;
        switch (e.Reason)
        {
            case KvmExitReason.Mmio:
                exit.Reason = ExitReason.Mmio;
                exit.Gpa = e.Gpa;
                exit.Size = (byte)e.Size;
                exit.Data = e.Data;
                exit.Flags = ExitFlags.HardwareCompletes | (e.IsWrite ? ExitFlags.Write : 0);
                LocateAndCheck(v, e);
                break;
            case KvmExitReason.Io:
                exit.Reason = ExitReason.Io;
                exit.Port = e.Port;
                exit.Size = (byte)e.Size;
                exit.Data = e.Data;
                exit.Flags = ExitFlags.HardwareCompletes | (e.IsWrite ? ExitFlags.Write : 0) | (e.Count > 1 ? ExitFlags.String | ExitFlags.Rep : 0);
                if (e.Count == 1) LocateAndCheck(v, e);
                if (e.Count > 1) Note($"vcpu {v}: a {e.Count}-element string I/O exit; the kernel completes one element (not used by the Copra guests)");
                break;
            case KvmExitReason.Hlt:
                exit.Reason = ExitReason.Hlt;
                break;
            case KvmExitReason.InternalError when e.Suberror == KvmRunInternal.SuberrorEmulation && KernelCompletes(v, ref exit):
                _counts[v].KernelCompleted++;
                break;
            default:
                // Shutdown (triple fault), internal errors, entry failures and anything unexpected end the vCPU.
                _counts[v].ShutdownExits++;
                if (e.Reason != KvmExitReason.Shutdown) Note($"vcpu {v}: KVM exit {e} at rip 0x{_s.Rip(v):x}");
                exit.Reason = ExitReason.Shutdown;
                break;
        }
    }

    static int? CycleOf(in KvmExit e) => e.Reason switch
    {
        KvmExitReason.Mmio => e.IsWrite ? (int)CycleKind.MmioWrite : (int)CycleKind.MmioRead,
        KvmExitReason.Io => e.IsWrite ? (int)CycleKind.PortOut : (int)CycleKind.PortIn,
        _ => null,
    };

    public void CompleteAccess(int vcpu, ulong readValue)
    {
        var cpu = _vcpus[vcpu];
        ref readonly var e = ref _last[vcpu];
        if (s_debug) Console.Error.WriteLine($"[kvm] v{vcpu} complete 0x{readValue:x}");
        if (e.IsWrite) return;   // KVM has the data already; the next KVM_RUN finishes the instruction
        if (e.Reason == KvmExitReason.Mmio) cpu.CompleteMmioRead(readValue);
        else if (e.Reason == KvmExitReason.Io && e.Count == 1) cpu.CompleteIn(readValue);
        else if (e.Reason == KvmExitReason.Io)
        {
            var data = cpu.IoData;
            for (int i = 0; i < data.Length; i++) data[i] = (byte)(readValue >> (8 * (i % (int)e.Size)));
        }
    }

    // ---- state store <-> KVM -----------------------------------------------------------------

    void PushState(int v, KvmVcpu cpu)
    {
        var gpr = _s.Gprs(v);
        if (_rewound[v])
        {
            _rewound[v] = false;
            if (_s.Rip(v) == _shownRip[v] && gpr[6] == _shownRsi[v] && gpr[7] == _shownRdi[v] && gpr[1] == _shownRcx[v])
            {
                _s.Rip(v) = _realRip[v]; gpr[6] = _realRsi[v]; gpr[7] = _realRdi[v]; gpr[1] = _realRcx[v];
            }
        }
        var regs = new KvmRegs
        {
            Rax = gpr[0], Rcx = gpr[1], Rdx = gpr[2], Rbx = gpr[3], Rsp = gpr[4], Rbp = gpr[5], Rsi = gpr[6], Rdi = gpr[7],
            R8 = gpr[8], R9 = gpr[9], R10 = gpr[10], R11 = gpr[11], R12 = gpr[12], R13 = gpr[13], R14 = gpr[14], R15 = gpr[15],
            Rip = _s.Rip(v), Rflags = _s.Rflags(v),
        };
        // Only what changed since the exit goes back: KVM finishes a pending IN itself at the next KVM_RUN, and
        // loading the registers it reported (dirty sync regs) ahead of that completion loses the IN's data
        // (seen on this host: the guest re-read LSR as 0 forever). Unchanged registers need no load anyway.
        if (_pulledValid[v] && SameRegs(regs, _pulled[v])) { _counts[v].RegsSkipped++; }
        else { cpu.SetRegs(regs); _counts[v].RegsLoaded++; }
        _s.TryPeek(v, StateField.PendingEvent, out ulong pe);
        if ((pe & Core.Kernel.PendingEventValid) == 0) return;
        _s.TryPoke(v, StateField.PendingEvent, 0);
        uint type = (uint)(pe >> 8) & 7;
        if (type == 0)
        {
            if (!cpu.InterruptPending) { cpu.InjectInterrupt((byte)pe); _counts[v].InterruptsInjected++; }
            return;
        }
        // Exceptions would go through KVM_SET_VCPU_EVENTS, which the P/Invoke layer does not wrap yet. The
        // kernel raises them only for accesses it refuses; the Copra guests make none. Counted and reported.
        _counts[v].ExceptionsDropped++;
        if (s_debug) Console.Error.WriteLine($"[kvm] v{v} dropped exception 0x{pe:x}");
        Note($"vcpu {v}: exception vector {pe & 0xFF} not injected (KVM_SET_VCPU_EVENTS not wrapped)");
    }

    static bool SameRegs(in KvmRegs a, in KvmRegs b) =>
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<KvmRegs>(in a))
            .SequenceEqual(System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<KvmRegs>(in b)));

    void PullState(int v, KvmVcpu cpu)
    {
        var r = cpu.GetRegs();
        _pulled[v] = r;
        _pulledValid[v] = true;
        var gpr = _s.Gprs(v);
        gpr[0] = r.Rax; gpr[1] = r.Rcx; gpr[2] = r.Rdx; gpr[3] = r.Rbx; gpr[4] = r.Rsp; gpr[5] = r.Rbp; gpr[6] = r.Rsi; gpr[7] = r.Rdi;
        gpr[8] = r.R8; gpr[9] = r.R9; gpr[10] = r.R10; gpr[11] = r.R11; gpr[12] = r.R12; gpr[13] = r.R13; gpr[14] = r.R14; gpr[15] = r.R15;
        _s.Rip(v) = r.Rip;
        _s.Rflags(v) = r.Rflags;
        var s = cpu.GetSregs();
        _s.TryPoke(v, StateField.Cr0, s.Cr0);
        _s.TryPoke(v, StateField.Cr3, s.Cr3);
        _s.TryPoke(v, StateField.Cr4, s.Cr4);
        _s.TryPoke(v, StateField.Efer, s.Efer);
        Seg(v, StateField.Es, s.Es); Seg(v, StateField.Cs, s.Cs); Seg(v, StateField.Ss, s.Ss);
        Seg(v, StateField.Ds, s.Ds); Seg(v, StateField.Fs, s.Fs); Seg(v, StateField.Gs, s.Gs);
        Seg(v, StateField.Ldtr, s.Ldt); Seg(v, StateField.Tr, s.Tr);
        _s.TryPoke(v, StateField.GdtrBase, s.Gdt.Base); _s.TryPoke(v, StateField.GdtrLimit, s.Gdt.Limit);
        _s.TryPoke(v, StateField.IdtrBase, s.Idt.Base); _s.TryPoke(v, StateField.IdtrLimit, s.Idt.Limit);
    }

    void Seg(int v, int seg, in KvmSegment k)
    {
        ushort attr = k.Unusable != 0 ? (ushort)0 : (ushort)(
            (k.Type & 0xF) << SegmentAttributes.TypeShift | (k.S & 1) << SegmentAttributes.SShift | (k.Dpl & 3) << SegmentAttributes.DplShift |
            (k.Present & 1) << SegmentAttributes.PShift | (k.Avl & 1) << SegmentAttributes.AvlShift | (k.L & 1) << SegmentAttributes.LShift |
            (k.Db & 1) << SegmentAttributes.DbShift | (k.G & 1) << SegmentAttributes.GShift);
        _s.TryPoke(v, StateField.Seg(seg, StateField.Selector), k.Selector);
        _s.TryPoke(v, StateField.Seg(seg, StateField.Base), k.Base);
        _s.TryPoke(v, StateField.Seg(seg, StateField.Limit), k.Limit);
        _s.TryPoke(v, StateField.Seg(seg, StateField.Attributes), attr);
    }

    /// <summary>
    /// KVM's emulator gave up on an instruction (KVM_EXIT_INTERNAL_ERROR, emulation: on this host MOVDIRI, MOVDIR64B and
    /// CMPXCHG16B on MMIO). RIP is still at it and nothing of it has happened. If its memory operand is MMIO (not the
    /// VM's RAM), the exit goes to the kernel as an MMIO exit the kernel completes itself, as a paravisor does for what
    /// the host will not: the kernel-emulated pipeline decodes it, performs its sides through the device model, and
    /// writes registers, flags and RIP into the store, which the next entry loads into KVM (PushState). False (the vCPU
    /// ends, as before) for anything else. Iced finds the operand, independently of the decoder the kernel then runs.
    /// </summary>
    bool KernelCompletes(int v, ref ExitRecord exit)
    {
        var view = new GuestView(this, v);
        Span<byte> bytes = stackalloc byte[15];
        bytes.Clear();
        int got = view.Fetch(_s.Rip(v), bytes);
        if (got == 0) return false;
        var dec = Iced.Intel.Decoder.Create(64, new Iced.Intel.ByteArrayCodeReader(bytes[..got].ToArray()), _s.Rip(v));
        dec.Decode(out var ins);
        if (ins.IsInvalid) return false;
        // Why: only GPRs, RIP and RFLAGS travel between the store and KVM (PushState, PullState); an instruction with an
        // XMM, MMX or x87 operand would be completed against state KVM does not see.
        for (int k = 0; k < ins.OpCount; k++)
            if (ins.GetOpKind(k) == Iced.Intel.OpKind.Register && !Iced.Intel.RegisterExtensions.IsGPR(ins.GetOpRegister(k))) return false;
        var gpr = _s.Gprs(v).ToArray();
        foreach (var m in new Iced.Intel.InstructionInfoFactory().GetInfo(ins).GetUsedMemory())
        {
            if (!m.TryGetVirtualAddress(0, out ulong linear, (Iced.Intel.Register r, int _, int _, out ulong x) => WriteExitCheck.Reg(gpr, r, out x))) continue;
            bool write = m.Access is not (Iced.Intel.OpAccess.Read or Iced.Intel.OpAccess.CondRead);
            if (!view.Translate(linear, write, out ulong gpa) || IsVmRam(v, gpa)) continue;
            exit.Reason = ExitReason.Mmio;
            exit.Gpa = gpa;
            exit.Size = (byte)Math.Min(Iced.Intel.MemorySizeExtensions.GetSize(m.MemorySize), 8);
            exit.Flags = write ? ExitFlags.Write : 0;   // not HardwareCompletes: the kernel finishes it
            if (s_debug) Console.Error.WriteLine($"[kvm] v{v} KVM could not emulate {ins} at rip 0x{_s.Rip(v):x}: the kernel completes it (gpa 0x{gpa:x})");
            return true;
        }
        return false;
    }

    // ---- where a write exit's instruction is ---------------------------------------------------

    /// <summary>
    /// For an MMIO write or OUT exit: find, independently of the kernel's decoder (<see cref="WriteExitCheck.Locate"/>,
    /// Iced on the guest's bytes), the instruction KVM just ran, and show the kernel the registers as they were before
    /// it (see the class comment). Then the hardware check: the kernel's decoder must describe the same instruction
    /// and access (<see cref="WriteExitCheck.Check"/>); a disagreement is counted in <see cref="IndependentMismatches"/>.
    /// Reads and IN are checked the same way at RIP, where KVM reports them.
    /// </summary>
    void LocateAndCheck(int v, in KvmExit e)
    {
        var view = new GuestView(this, v);
        ulong rip = _s.Rip(v);
        var gpr = _s.Gprs(v);
        Span<ulong> before = stackalloc ulong[16];
        gpr.CopyTo(before);
        LocatedInstruction? located = null;
        if (e.IsWrite)
        {
            located = WriteExitCheck.Locate(view, rip, gpr, _s.Rflags(v), e);
            if (located is { } l)
            {
                WriteExitCheck.Rewind(l, before);
                if (l.Start != rip || !before.SequenceEqual(gpr))
                {
                    Rewind(v, l, before);
                    if (e.Reason == KvmExitReason.Io) _counts[v].OutsRewound++;
                }
            }
            else
            {
                _counts[v].LocateFailures++;
                Note($"vcpu {v}: no instruction at or before rip 0x{rip:x} matches the {e}");
            }
        }
        if (located is null && e.IsWrite) return;   // counted above; nothing for the decoder to be checked against
        if (WriteExitCheck.Check(_decoder, view, rip, before, e, located) is { } why)
        {
            _counts[v].IndependentMismatches++;
            if (e.IsWrite) _counts[v].IndependentWriteMismatches++;
            Note($"vcpu {v}: the kernel's decoder disagrees with the hardware on {e}: {why}");
        }
    }

    static bool Decode(ReadOnlySpan<byte> bytes, out DecodedAccess d) => X86Decoder.TryDecode(bytes, CpuMode.Bits64, out d);

    void Rewind(int v, in LocatedInstruction l, ReadOnlySpan<ulong> before)
    {
        var gpr = _s.Gprs(v);
        _realRip[v] = _s.Rip(v); _realRsi[v] = gpr[6]; _realRdi[v] = gpr[7]; _realRcx[v] = gpr[1];
        _s.Rip(v) = l.Start; gpr[6] = before[6]; gpr[7] = before[7]; gpr[1] = before[1];
        _shownRip[v] = l.Start; _shownRsi[v] = before[6]; _shownRdi[v] = before[7]; _shownRcx[v] = before[1];
        _rewound[v] = true;
    }

    /// <summary>The guest through its page tables, as the hardware check reads it.</summary>
    readonly struct GuestView(KvmBackend b, int v) : IGuestView
    {
        public int Fetch(ulong linear, Span<byte> dest)
        {
            var mode = PagingMode.From(b.PeekU(v, StateField.Cr0), b.PeekU(v, StateField.Cr4), b.PeekU(v, StateField.Efer));
            return b.Fetch(mode, b.PeekU(v, StateField.Cr3), linear, dest.Length, dest);
        }

        public bool Translate(ulong linear, bool write, out ulong gpa)
        {
            var mode = PagingMode.From(b.PeekU(v, StateField.Cr0), b.PeekU(v, StateField.Cr4), b.PeekU(v, StateField.Efer));
            return PageWalker.Translate(b._k.Memory, mode, b.PeekU(v, StateField.Cr3), linear, write ? AccessType.Write : AccessType.Read, out gpa).IsOk;
        }
    }

    ulong PeekU(int v, ulong field) => _s.TryPeek(v, field, out ulong x) ? x : 0;


    int Fetch(in PagingMode mode, ulong cr3, ulong linear, int count, Span<byte> bytes)
    {
        for (int i = 0; i < count; i++)
        {
            if (!PageWalker.Translate(_k.Memory, mode, cr3, linear + (ulong)i, AccessType.Execute, out ulong gpa).IsOk) return i;
            if (!_k.Memory.Contains(gpa, 1)) return i;
            bytes[i] = _k.Memory.ReadU8(gpa);
        }
        return count;
    }

    void Note(string what) { lock (Problems) if (Problems.Count < 20) Problems.Add(what); }

    public void Dispose()
    {
        foreach (var vm in _vms) vm?.Dispose();
        _sys.Dispose();
    }
}

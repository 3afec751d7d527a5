// A vCPU: its fd and its mmapped kvm_run. One host thread drives it at a time (KVM_RUN,
// register access and completions are not safe to interleave from several threads; KVM
// itself serializes vCPU ioctls, but the kvm_run page and the state caches here are not
// guarded).
//
// Register access and the sync-regs area. With KVM_CAP_SYNC_REGS, kvm_run.kvm_valid_regs
// names the register classes KVM copies into kvm_run.s on every exit, and kvm_dirty_regs
// the classes it loads from there at the next entry (then clears the bit). So after Run
// returns, GetRegs/GetSregs read the page instead of issuing KVM_GET_REGS/SREGS, and
// SetRegs writes the page and marks it dirty instead of KVM_SET_REGS. Before the first
// run the page holds nothing, so reads go to the ioctls. SetSregs always uses the ioctl,
// so a bad control-register combination fails at the call rather than at the next run.
//
// Interrupt injection without an in-kernel irqchip: KVM_INTERRUPT may only be issued when
// the last exit said ready_for_interrupt_injection; otherwise we set
// request_interrupt_window and KVM exits with IrqWindowOpen once the guest can take one.
// InjectInterrupt only queues the vector; Run does the protocol before each entry.
using System.Runtime.CompilerServices;

namespace Copra.Kernel.Kvm;

/// <summary>A KVM vCPU (KVM_CREATE_VCPU) with its kvm_run mapping.</summary>
public sealed unsafe class KvmVcpu : IDisposable
{
    readonly KvmVm _vm;
    readonly nuint _mmapSize;
    KvmRun* _run;
    int _fd;
    KvmSyncRegsMask _sync;
    bool _regsFresh;
    bool _sregsFresh;
    int _pendingVector = -1;
    KvmExit _last;

    internal KvmVcpu(KvmVm vm, uint id)
    {
        _vm = vm;
        Id = id;
        _fd = KvmNative.Ioctl(vm.Fd, KvmIoctls.CreateVcpu, id);
        if (_fd < 0) throw KvmException.Last($"KVM_CREATE_VCPU({id})");
        try
        {
            _mmapSize = (nuint)vm.System.VcpuMmapSize;
            nint p = KvmNative.Mmap(0, _mmapSize, KvmNative.PROT_READ | KvmNative.PROT_WRITE, KvmNative.MAP_SHARED, _fd, 0);
            if (p == KvmNative.MAP_FAILED) throw KvmException.Last("mmap(vcpu)");
            _run = (KvmRun*)p;
            SetCpuid(vm.System.SupportedCpuid);
            SyncRegsAvailable = (KvmSyncRegsMask)vm.System.CheckExtension(KvmCap.SyncRegs)
                & (KvmSyncRegsMask.Regs | KvmSyncRegsMask.Sregs | KvmSyncRegsMask.Events);
            SyncRegs = SyncRegsAvailable & (KvmSyncRegsMask.Regs | KvmSyncRegsMask.Sregs);
        }
        catch
        {
            Release();
            throw;
        }
    }

    ~KvmVcpu() => Release();

    /// <summary>The vCPU id given to KVM_CREATE_VCPU.</summary>
    public uint Id { get; }

    /// <summary>The VM this vCPU belongs to.</summary>
    public KvmVm Vm => _vm;

    /// <summary>How many KVM_RUN calls returned EINTR (a host signal, e.g. the runtime's own) and were re-issued.</summary>
    public long InterruptedRuns { get; private set; }

    /// <summary>The last exit <see cref="Run"/> returned.</summary>
    public KvmExit LastExit => _last;

    /// <summary>The register classes this KVM can sync through kvm_run (KVM_CAP_SYNC_REGS).</summary>
    public KvmSyncRegsMask SyncRegsAvailable { get; }

    /// <summary>
    /// The register classes KVM copies into kvm_run on every exit (default: Regs and Sregs where supported).
    /// Each class costs KVM a copy per exit and saves user space an ioctl per access; set None to measure without.
    /// </summary>
    public KvmSyncRegsMask SyncRegs
    {
        get => _sync;
        set
        {
            if ((value & ~SyncRegsAvailable) != 0) throw new ArgumentException($"KVM cannot sync {value & ~SyncRegsAvailable}", nameof(value));
            FlushDirty();
            _sync = value;
            Shared.KvmValidRegs = (ulong)value;
            _regsFresh = _sregsFresh = false;
        }
    }

    /// <summary>The kvm_run page itself, for fields this class does not wrap. Valid until disposal.</summary>
    public ref KvmRun Shared
    {
        get
        {
            var run = _run;
            if (run == null) ThrowDisposed();
            // SAFETY: _run is the live MAP_SHARED mapping of at least KvmRun.Size bytes until Release.
            return ref *run;
        }
    }

    int Fd => _fd >= 0 ? _fd : ThrowDisposed();

    // ---- registers -------------------------------------------------------------------------

    /// <summary>The general registers, RIP and RFLAGS (from the sync area after a run, else KVM_GET_REGS).</summary>
    public KvmRegs GetRegs()
    {
        if (_regsFresh) return Shared.S.Regs;
        KvmRegs regs;
        // SAFETY: &regs is a live stack struct of the size KVM_GET_REGS encodes.
        if (KvmNative.Ioctl(Fd, KvmIoctls.GetRegs, &regs) < 0) throw KvmException.Last("KVM_GET_REGS");
        return regs;
    }

    /// <summary>Sets the general registers, RIP and RFLAGS (through the sync area when enabled, else KVM_SET_REGS).</summary>
    public void SetRegs(in KvmRegs regs)
    {
        if ((_sync & KvmSyncRegsMask.Regs) != 0)
        {
            ref var run = ref Shared;
            run.S.Regs = regs;
            run.KvmDirtyRegs |= (ulong)KvmSyncRegsMask.Regs;
            _regsFresh = true;
            return;
        }
        fixed (KvmRegs* p = &regs)
        {
            // SAFETY: p points at a KvmRegs of the size KVM_SET_REGS encodes, pinned for the call.
            if (KvmNative.Ioctl(Fd, KvmIoctls.SetRegs, p) < 0) throw KvmException.Last("KVM_SET_REGS");
        }
    }

    /// <summary>Segments, descriptor tables, control registers and EFER (from the sync area after a run, else KVM_GET_SREGS).</summary>
    public KvmSregs GetSregs()
    {
        if (_sregsFresh) return Shared.S.Sregs;
        KvmSregs sregs;
        // SAFETY: &sregs is a live stack struct of the size KVM_GET_SREGS encodes.
        if (KvmNative.Ioctl(Fd, KvmIoctls.GetSregs, &sregs) < 0) throw KvmException.Last("KVM_GET_SREGS");
        return sregs;
    }

    /// <summary>KVM_SET_SREGS. Always an ioctl, so an invalid combination (e.g. LMA without paging) fails here.</summary>
    public void SetSregs(in KvmSregs sregs)
    {
        fixed (KvmSregs* p = &sregs)
        {
            // SAFETY: p points at a KvmSregs of the size KVM_SET_SREGS encodes, pinned for the call.
            if (KvmNative.Ioctl(Fd, KvmIoctls.SetSregs, p) < 0) throw KvmException.Last("KVM_SET_SREGS");
        }
        _sregsFresh = false;
    }

    /// <summary>
    /// Loads a flat 64-bit CPL-0 state: CR0/CR3/CR4/EFER, GDTR/IDTR, CS as a 64-bit code segment and
    /// DS/ES/FS/GS/SS as flat data segments with the given selectors. TR and LDT keep their reset values
    /// (a busy TSS and an unused LDT), which is what VMX and SVM accept. General registers are untouched.
    /// </summary>
    public void LoadLongMode(in LongModeState state)
    {
        var s = GetSregs();
        s.Cr0 = state.Cr0;
        s.Cr3 = state.Cr3;
        s.Cr4 = state.Cr4;
        s.Efer = state.Efer;
        s.Gdt = new KvmDtable { Base = state.GdtBase, Limit = state.GdtLimit };
        s.Idt = new KvmDtable { Base = state.IdtBase, Limit = state.IdtLimit };
        s.Cs = new KvmSegment
        {
            Base = 0, Limit = 0xFFFF_FFFF, Selector = state.CodeSelector,
            Type = 11, Present = 1, Dpl = 0, Db = 0, S = 1, L = 1, G = 1,
        };
        var data = new KvmSegment
        {
            Base = 0, Limit = 0xFFFF_FFFF, Selector = state.DataSelector,
            Type = 3, Present = 1, Dpl = 0, Db = 1, S = 1, L = 0, G = 1,
        };
        s.Ds = s.Es = s.Fs = s.Gs = s.Ss = data;
        SetSregs(s);
    }

    /// <summary>KVM_SET_CPUID2. Must happen before the first run; the constructor installs the host-supported table.</summary>
    public void SetCpuid(ReadOnlySpan<KvmCpuidEntry2> entries)
    {
        int bytes = KvmCpuid2Header.Size + entries.Length * KvmCpuidEntry2.Size;
        byte[] buffer = new byte[bytes];
        fixed (byte* p = buffer)
        {
            // SAFETY: p addresses `bytes` bytes: the header, then entries.Length entries as nent says.
            ((KvmCpuid2Header*)p)->Nent = (uint)entries.Length;
            entries.CopyTo(new Span<KvmCpuidEntry2>(p + KvmCpuid2Header.Size, entries.Length));
            if (KvmNative.Ioctl(Fd, KvmIoctls.SetCpuid2, p) < 0) throw KvmException.Last("KVM_SET_CPUID2");
        }
    }

    /// <summary>The guest TSC frequency in kHz (KVM_GET_TSC_KHZ; the host's unless scaling was set).</summary>
    public uint GetTscKhz()
    {
        int khz = KvmNative.Ioctl(Fd, KvmIoctls.GetTscKhz, 0);
        if (khz <= 0) throw KvmException.Last("KVM_GET_TSC_KHZ");
        return (uint)khz;
    }

    // ---- running ---------------------------------------------------------------------------

    /// <summary>
    /// Enters the guest (KVM_RUN) until it exits to user space and returns why. A queued interrupt is
    /// injected first if the guest can take it, else an interrupt window is requested. EINTR (a host
    /// signal) re-enters and counts in <see cref="InterruptedRuns"/>. Completions for the previous exit
    /// (<see cref="CompleteIn"/>, <see cref="CompleteMmioRead"/>) must be written before calling this.
    /// </summary>
    public KvmExit Run()
    {
        ref var run = ref Shared;
        if (_pendingVector >= 0) DeliverPending(ref run);
        int fd = Fd;
        while (KvmNative.Ioctl(fd, KvmIoctls.Run, 0) < 0)
        {
            int errno = KvmNative.Errno;
            if (errno != KvmNative.EINTR && errno != KvmNative.EAGAIN) throw new KvmException("KVM_RUN", errno);
            InterruptedRuns++;
        }
        _regsFresh = (_sync & KvmSyncRegsMask.Regs) != 0;
        _sregsFresh = (_sync & KvmSyncRegsMask.Sregs) != 0;
        _last = Decode(ref run);
        return _last;
    }

    KvmExit Decode(ref KvmRun run)
    {
        var reason = (KvmExitReason)run.ExitReason;
        switch (reason)
        {
            case KvmExitReason.Io:
            {
                ref var io = ref run.Io;
                bool write = io.Direction == KvmRunIo.Out;
                return new KvmExit
                {
                    Reason = reason, Address = io.Port, Size = io.Size, Count = io.Count, IsWrite = write,
                    Data = write ? ReadLittleEndian(IoData[..io.Size]) : 0,
                };
            }
            case KvmExitReason.Mmio:
            {
                ref var m = ref run.Mmio;
                uint len = Math.Min(m.Len, 8u);
                bool write = m.IsWrite != 0;
                return new KvmExit
                {
                    Reason = reason, Address = m.PhysAddr, Size = len, Count = 1, IsWrite = write,
                    Data = write ? ReadLittleEndian(((ReadOnlySpan<byte>)m.Data)[..(int)len]) : 0,
                };
            }
            case KvmExitReason.InternalError:
                return new KvmExit { Reason = reason, Suberror = run.Internal.Suberror };
            case KvmExitReason.FailEntry:
                return new KvmExit { Reason = reason, HardwareReason = run.FailEntry.HardwareEntryFailureReason, Cpu = run.FailEntry.Cpu };
            case KvmExitReason.Unknown:
                return new KvmExit { Reason = reason, HardwareReason = run.Hw.HardwareExitReason };
            case KvmExitReason.SystemEvent:
                return new KvmExit { Reason = reason, Suberror = run.SystemEvent.Type };
            default:
                return new KvmExit { Reason = reason };
        }
    }

    static ulong ReadLittleEndian(ReadOnlySpan<byte> bytes)
    {
        ulong v = 0;
        for (int i = bytes.Length - 1; i >= 0; i--) v = v << 8 | bytes[i];
        return v;
    }

    /// <summary>
    /// The data of the current Io exit, inside the kvm_run mapping: <c>Size * Count</c> bytes. For OUT/OUTS
    /// it holds what the guest wrote; for IN/INS write the result here before the next <see cref="Run"/>.
    /// </summary>
    public Span<byte> IoData
    {
        get
        {
            ref var run = ref Shared;
            if (run.ExitReason != (uint)KvmExitReason.Io) throw new InvalidOperationException("the last exit was not Io");
            ulong offset = run.Io.DataOffset;
            ulong length = (ulong)run.Io.Size * run.Io.Count;
            if (offset < (ulong)KvmRun.Size || offset > _mmapSize || length > _mmapSize - offset)
                throw new InvalidOperationException($"KVM reported I/O data at {offset}+{length}, outside the {_mmapSize}-byte mapping");
            // SAFETY: [offset, offset + length) was just checked to lie inside the live vCPU mapping.
            return new Span<byte>((byte*)_run + offset, (int)length);
        }
    }

    /// <summary>Completes a single-element IN: the low <c>Size</c> bytes of <paramref name="value"/> become the guest's result.</summary>
    public void CompleteIn(ulong value)
    {
        if (_last.Reason != KvmExitReason.Io || _last.IsWrite) throw new InvalidOperationException("the last exit was not an IN");
        if (_last.Count != 1) throw new InvalidOperationException("a string IN (INS) is completed by writing IoData");
        WriteLittleEndian(IoData, value);
    }

    /// <summary>Completes an MMIO read: the low <c>Size</c> bytes of <paramref name="value"/> become the loaded value.</summary>
    public void CompleteMmioRead(ulong value)
    {
        if (_last.Reason != KvmExitReason.Mmio || _last.IsWrite) throw new InvalidOperationException("the last exit was not an MMIO read");
        WriteLittleEndian(((Span<byte>)Shared.Mmio.Data)[..(int)_last.Size], value);
    }

    static void WriteLittleEndian(Span<byte> bytes, ulong value)
    {
        for (int i = 0; i < bytes.Length; i++, value >>= 8) bytes[i] = (byte)value;
    }

    // ---- interrupts ------------------------------------------------------------------------

    /// <summary>True while a vector queued by <see cref="InjectInterrupt"/> has not been handed to KVM.</summary>
    public bool InterruptPending => _pendingVector >= 0;

    /// <summary>
    /// Queues an external interrupt. The next <see cref="Run"/> issues KVM_INTERRUPT if the guest is ready
    /// (IF set, no interrupt shadow), otherwise requests an interrupt window and injects on a later run.
    /// One vector can be queued at a time, as with a single INTR line.
    /// </summary>
    public void InjectInterrupt(byte vector)
    {
        if (_pendingVector >= 0) throw new InvalidOperationException($"vector {_pendingVector} is still pending");
        _pendingVector = vector;
    }

    void DeliverPending(ref KvmRun run)
    {
        if (run.ReadyForInterruptInjection != 0)
        {
            uint irq = (uint)_pendingVector;
            // SAFETY: &irq is a live stack u32, the struct kvm_interrupt KVM_INTERRUPT encodes.
            if (KvmNative.Ioctl(Fd, KvmIoctls.Interrupt, &irq) < 0) throw KvmException.Last("KVM_INTERRUPT");
            _pendingVector = -1;
            run.RequestInterruptWindow = 0;
        }
        else
        {
            run.RequestInterruptWindow = 1;
        }
    }

    // ---- lifetime --------------------------------------------------------------------------

    void FlushDirty()
    {
        // Turning sync off with dirty registers pending would lose them: push them with the ioctl.
        if (_run == null || (Shared.KvmDirtyRegs & (ulong)KvmSyncRegsMask.Regs) == 0) return;
        var regs = Shared.S.Regs;
        Shared.KvmDirtyRegs &= ~(ulong)KvmSyncRegsMask.Regs;
        // SAFETY: &regs is a live stack struct of the size KVM_SET_REGS encodes.
        if (KvmNative.Ioctl(Fd, KvmIoctls.SetRegs, &regs) < 0) throw KvmException.Last("KVM_SET_REGS");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    static int ThrowDisposed() => throw new ObjectDisposedException(nameof(KvmVcpu));

    public void Dispose()
    {
        Release();
        _vm.Forget(this);
        GC.SuppressFinalize(this);
    }

    void Release()
    {
        var run = _run;
        _run = null;
        if (run != null) KvmNative.Munmap((nint)run, _mmapSize);
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) KvmNative.Close(fd);
    }
}

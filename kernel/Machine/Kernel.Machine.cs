using System.Runtime.InteropServices;
using Copra.Abi;
using Copra.Cold;
using Copra.Hot.Guest;
using Copra.Hot.State;
using Copra.Kernel.Machine;

namespace Copra.Kernel.Core;

/// <summary>One VM the platform offers at boot, with the guest it runs.</summary>
public sealed record VmSpec(int Vcpus, ulong MemoryBase, ulong MemoryLength);

/// <summary>
/// The machine half of the kernel: guest memory, VMs and vCPUs, device registrations, and the
/// class-2/3/4 calls. The exit path itself is in Exit/.
/// </summary>
public sealed partial class Kernel
{
    GuestMemory _memory = null!;
    KernelPages _pages = null!;
    readonly List<VmObject> _vms = [];
    VcpuObject[] _vcpus = [];

    public GuestMemory Memory => _memory;
    public VcpuStateStore State { get; private set; } = null!;
    public CostModel Cost { get; private set; } = CostModel.Snp;
    public IReadOnlyList<VmObject> Vms => _vms;
    public VcpuObject Vcpu(int global) => _vcpus[global];
    public int VcpuTotal => _vcpus.Length;

    partial void InitMachine()
    {
        Cost = Config.Cost ?? CostModel.For(Config.Platform);
        _memory = new GuestMemory(Config.MemoryBytes);
        int total = Config.Vms.Sum(v => v.Vcpus);
        _pages = new KernelPages(Math.Max(64, total + Config.MaxEventObjects));
        State = new VcpuStateStore(Math.Max(1, total), Config.Platform == PlatformType.Tdp ? StateAccessCost.Tdx : StateAccessCost.Snp);
        _vcpus = new VcpuObject[total];
        int g = 0;
        for (int i = 0; i < Config.Vms.Count; i++)
        {
            var spec = Config.Vms[i];
            if (!Phys.IsGuestRange(spec.MemoryBase, spec.MemoryLength)) throw new ArgumentException($"VM {i + 1} memory overlaps the kernel or runs past memory");
            var vm = new VmObject(i + 1, g, spec.Vcpus, [(spec.MemoryBase, spec.MemoryLength)], Math.Max(1, total));
            for (int v = 0; v < spec.Vcpus; v++, g++)
            {
                vm.Vcpus[v] = new VcpuObject(_pages, vm, v, g, g % Cpus.Length);
                _vcpus[g] = vm.Vcpus[v];
            }
            _vms.Add(vm);
        }
        InitExitPath(total);
    }

    partial void DisposeMachine()
    {
        Backend?.Dispose();
        _pages.Dispose();
        _memory.Dispose();
    }

    /// <summary>Class 2, 3 and 4, and unknown numbers (EINVAL).</summary>
    internal long MachineCall(KThread t, in Abi.SysCallRegs r)
    {
        var p = t.Process;
        switch (r.Rax)
        {
            case SysNr.OpenPhysMem:
                return p.Handles.Add(new PhysMemObject(_memory, Phys));
            case SysNr.Mmap: return Mmap(p, r.Rdi, r.Rsi, r.R8, r.R9);
            case SysNr.Munmap:
            {
                var region = p.Space.Unmap(r.Rdi, r.Rsi);
                region.Source!.Unmapped(p, region.SourceOffset, region.Length);
                return 0;
            }
            case SysNr.SetMemState:
                p.Handles.Get<PhysMemObject>(r.Rdi);
                Phys.SetState(r.Rsi, r.R8, r.R9);
                return 0;
            case SysNr.Capabilities: return Capability(r.Rdi);
            case SysNr.VmOpen:
            {
                if (r.Rdi == 0 || r.Rdi > (ulong)_vms.Count) throw KernelError.NotFound($"no VM {r.Rdi}");
                return p.Handles.Add(_vms[(int)r.Rdi - 1]);
            }
            case SysNr.VmCapabilities: return VmCapability(p.Handles.Get<VmObject>(r.Rdi), r.Rsi);
            case SysNr.VcpuCreate:
            {
                var vm = p.Handles.Get<VmObject>(r.Rdi);
                if (r.Rsi >= (ulong)vm.VcpuCount) throw KernelError.NotFound($"VM {vm.Index} has no vCPU {r.Rsi}");
                return p.Handles.Add(vm.Vcpus[(int)r.Rsi]);
            }
            case SysNr.GetState: return GetState(t, r.Rdi, r.Rsi, r.R8, r.R9);
            case SysNr.SetState: return SetState(t, r.Rdi, r.Rsi, r.R8, r.R9);
            case SysNr.VmControl: return VmControl(p.Handles.Get<VmObject>(r.Rdi), r.Rsi, r.R8);
            case SysNr.MmioEvent: return RegisterEvent(p, p.Handles.Get<VmObject>(r.Rdi), EventKind.Mmio, r.Rsi, r.R8);
            case SysNr.IoioEvent: return RegisterEvent(p, p.Handles.Get<VmObject>(r.Rdi), EventKind.Ioio, r.Rsi, r.R8);
            case SysNr.IrqEvent:
            {
                var vm = p.Handles.Get<VmObject>(r.Rdi);
                if (r.Rsi is < 32 or > 255) throw KernelError.Inval("IRQ vectors are 32..255");
                return p.Handles.Add(new IrqObject(vm, (byte)r.Rsi));
            }
            case SysNr.EventSignal: return EventSignal(t, r.Rdi);
            default: throw KernelError.Inval($"unknown syscall 0x{r.Rax:x}");
        }
    }

    long Capability(ulong index)
    {
        ulong bitmap = 0;
        foreach (var vm in _vms) bitmap |= 1UL << vm.Index;   // bit 0 (the kernel's own level) never set
        return index switch
        {
            Cap.Count => 2,
            Cap.VmBitmap => (long)bitmap,
            Cap.Features => (long)((ulong)Config.Platform & Cap.PlatformMask),
            _ => throw KernelError.NotFound($"no capability {index}"),
        };
    }

    static long VmCapability(VmObject vm, ulong index)
    {
        ulong count = 3 + 2 * (ulong)vm.Ranges.Count;   // indices 0..count-1
        // Index 0 counts the capabilities after it, as CAPABILITIES' index 0 does (COCONUT: 2 for indices 1..2).
        if (index == VmCap.Count) return (long)count - 1;
        if (index == VmCap.VcpuCount) return vm.VcpuCount;
        if (index == VmCap.RangeCount) return vm.Ranges.Count;
        if (index < count)
        {
            var (b, l) = vm.Ranges[(int)((index - 3) / 2)];
            return (long)((index - 3) % 2 == 0 ? b : l);
        }
        throw KernelError.NotFound($"no VM capability {index}");
    }

    long Mmap(Process p, ulong handle, ulong offset, ulong length, ulong flags)
    {
        if ((flags & ~MapFlags.Write) != 0) throw KernelError.Inval("unknown MMAP flags");
        var m = p.Handles.Get(handle).AsMappable() ?? throw KernelError.NotSupp("object is not mappable");
        if (length == 0 || ((offset | length) & Page.Mask) != 0) throw KernelError.Inval("offset and length must be page-aligned and non-zero");
        if (length > m.MappableLength || offset > m.MappableLength - length) throw KernelError.Inval("range outside the object");
        bool write = (flags & MapFlags.Write) != 0;
        var window = m.Map(p, offset, length, write);
        try { return (long)p.Space.Map(length, window, write, m, offset); }
        catch { m.Unmapped(p, offset, length); throw; }
    }

    long VmControl(VmObject vm, ulong op, ulong value)
    {
        switch (op)
        {
            case VmCtl.Unhandled:
                if (value > VmCtl.UnhandledReinject) throw KernelError.Inval("policy is 0 (forward) or 1 (re-inject)");
                vm.Unhandled = value;
                return 0;
            case VmCtl.Stop:
                StopVm(vm);
                return 0;
            default: throw KernelError.Inval($"unknown VM_CONTROL op {op}");
        }
    }

    long RegisterEvent(Process p, VmObject vm, EventKind kind, ulong start, ulong length)
    {
        EventObject e;
        lock (vm.Owners)
        {
            int owner = vm.Owners.Count;
            e = new EventObject(_pages, vm, kind, start, length, owner, Math.Max(1, _vcpus.Length)) { OnClosed = UnregisterEvent };
            bool ok = kind == EventKind.Mmio ? vm.Mmio.TryAdd(start, length, owner) : vm.Ports.TryAdd(start, length, owner);
            if (!ok)
            {
                _pages.Free(e.PageOffset);
                if (length == 0 || start + length < start || (kind == EventKind.Ioio && start + length > 0x10000))
                    throw KernelError.Inval("empty or out-of-range range");
                throw KernelError.Exists("range overlaps a registered one");
            }
            vm.Owners.Add(e);
            vm.OwnerTable = [.. vm.Owners];
        }
        return p.Handles.Add(e);
    }

    /// <summary>The last handle of an event object closed (or its process died): unregister it and answer what it held.</summary>
    void UnregisterEvent(EventObject e)
    {
        lock (e.Vm.Owners)
        {
            if (e.EventKind == EventKind.Mmio) e.Vm.Mmio.RemoveOwner(e.OwnerId); else e.Vm.Ports.RemoveOwner(e.OwnerId);
            e.Vm.Owners[e.OwnerId] = null;
            e.Vm.OwnerTable = [.. e.Vm.Owners];
        }
        DeviceLost(e);
    }

    long EventSignal(KThread t, ulong handle)
    {
        var o = t.Process.Handles.Get(handle);
        switch (o)
        {
            case IrqObject irq:
                RaiseIrq(irq);
                return 0;
            case EventObject e:
                CompleteIfDone(e);
                return 0;
            default: throw KernelError.NotSupp("EVENT_SIGNAL needs an IRQ or event object");
        }
    }

    /// <summary>WAIT_FOR_EVENT: on a vCPU, enter the guest on its CPU; on an event object, complete the last access and wait for the next.</summary>
    internal ValueTask<long> WaitForEvent(KThread t, ulong handle)
    {
        var o = t.Process.Handles.Get(handle);
        return o switch
        {
            VcpuObject v => WaitVcpu(t, v),
            EventObject e => WaitEvent(t, e),
            Batch.PolledRingObject ring => WaitRing(t, ring),
            _ => throw KernelError.NotSupp("not an event source"),
        };
    }

    // ---- GET_STATE / SET_STATE -------------------------------------------------------------

    VcpuObject StoppedVcpu(KThread t, ulong handle)
    {
        var v = t.Process.Handles.Get<VcpuObject>(handle);
        if (v.Run is VcpuRun.Runnable or VcpuRun.WaitingDevice || (v.Run == VcpuRun.Halted && v.Waiter is not null))
            throw KernelError.Busy("vCPU is running");
        return v;
    }

    long GetState(KThread t, ulong handle, ulong fieldsVa, ulong valuesVa, ulong count)
    {
        var v = StoppedVcpu(t, handle);
        if (count == 0 || count > 512) throw KernelError.Inval("1..512 fields per call");
        var fields = MemoryMarshal.Cast<byte, ulong>(SysCallGate.UserSpan(t, fieldsVa, count * 8, write: false));
        if (count == 1 && fields[0] == Abi.StateField.VmsaPage) return GetVmsa(t, v, valuesVa);
        var values = MemoryMarshal.Cast<byte, ulong>(SysCallGate.UserSpan(t, valuesVa, count * 8, write: true));
        Span<ulong> tmp = stackalloc ulong[(int)count];
        for (int i = 0; i < (int)count; i++)
            if (!State.TryRead(v.Global, fields[i], out tmp[i])) throw KernelError.Inval($"unknown state field 0x{fields[i]:x}");
        tmp.CopyTo(values);   // all or nothing: no partial write on a bad field
        return (long)count;
    }

    long SetState(KThread t, ulong handle, ulong fieldsVa, ulong valuesVa, ulong count)
    {
        var v = StoppedVcpu(t, handle);
        if (count == 0 || count > 512) throw KernelError.Inval("1..512 fields per call");
        var fields = MemoryMarshal.Cast<byte, ulong>(SysCallGate.UserSpan(t, fieldsVa, count * 8, write: false));
        if (count == 1 && fields[0] == Abi.StateField.VmsaPage) return SetVmsa(t, v, valuesVa);
        var values = MemoryMarshal.Cast<byte, ulong>(SysCallGate.UserSpan(t, valuesVa, count * 8, write: false));
        for (int i = 0; i < (int)count; i++)
            if (!IsWritableField(v.Global, fields[i])) throw KernelError.Inval($"unknown state field 0x{fields[i]:x}");
        for (int i = 0; i < (int)count; i++) State.TryWrite(v.Global, fields[i], values[i]);
        Fetcher.Invalidate(v.Global);   // CR3 or mode may have changed
        return (long)count;
    }

    bool IsWritableField(int v, ulong field) =>
        field is not (Abi.StateField.ExitReason or Abi.StateField.ExitQualification or Abi.StateField.ExitGpa or Abi.StateField.ExitInstructionLength)
        && State.TryPeek(v, field, out _);

    void ExportVmsa(int v, Span<byte> page)
    {
        if (!State.TryExportVmsa(v, page)) throw KernelError.Inval("VMSA export failed");
    }

    void ImportVmsa(int v, ReadOnlySpan<byte> page)
    {
        if (!State.TryImportVmsa(v, page)) throw KernelError.Inval("malformed VMSA page");
    }

    long GetVmsa(KThread t, VcpuObject v, ulong va)
    {
        if (Config.Platform != PlatformType.Snp) throw KernelError.NotSupp("the VMSA page exists on SNP only");
        ExportVmsa(v.Global, SysCallGate.UserSpan(t, va, Page.Size, write: true));
        return 1;
    }

    long SetVmsa(KThread t, VcpuObject v, ulong va)
    {
        if (Config.Platform != PlatformType.Snp) throw KernelError.NotSupp("the VMSA page exists on SNP only");
        ImportVmsa(v.Global, SysCallGate.UserSpan(t, va, Page.Size, write: false));
        Fetcher.Invalidate(v.Global);
        return 1;
    }
}

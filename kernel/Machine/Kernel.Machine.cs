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
/// The machine half of the kernel: guest memory, VMs and vCPUs, device registrations, and the bodies of
/// Copra's class-2/3/4 calls (their numbers and decoding are in Core/SysCallTable.cs). The exit path is in Exit/.
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
    /// <summary><see cref="Cost"/>'s three per-exit constants as fields of the kernel (the model is immutable and set once):
    /// the exit path and the gate read one field, not the model's reference and then its field.</summary>
    internal long ExitCyclesNow, TdcallCyclesNow, SyscallCyclesNow;
    public IReadOnlyList<VmObject> Vms => _vms;
    public VcpuObject Vcpu(int global) => _vcpus[global];

    /// <summary>
    /// vCPU <paramref name="v"/>'s object without a bounds check, for the exit path: <paramref name="v"/> is an index the
    /// kernel made (the record RunGuest stamped after its checked lookup, a request row's, an event object's Inflight).
    /// Why: the exit path looks a vCPU up ~8 times per MMIO exit, each checked lookup a compare and a branch.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal VcpuObject VcpuAt(int v) => Hot.Layout.Unchecked.At(_vcpus, v);
    public int VcpuTotal => _vcpus.Length;

    partial void InitMachine()
    {
        Cost = Config.Cost ?? CostModel.For(Config.Platform);
        (ExitCyclesNow, TdcallCyclesNow, SyscallCyclesNow) = (Cost.ExitCycles, Cost.TdcallCycles, Cost.SyscallCycles);
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

    // ---- Copra's class-2/3/4 calls (numbers and decoding in Core/SysCallTable.cs) ------------------

    internal long OpenPhysMem(KThread t) => t.Process.Handles.Add(new PhysMemObject(_memory, Phys));

    internal long SetMemState(KThread t, uint physmem, ulong pa, ulong length, ulong state)
    {
        t.Process.Handles.Get<PhysMemObject>(physmem);
        Phys.SetState(pa, length, state);
        return 0;
    }

    internal long VmOpen(KThread t, ulong index)
    {
        if (index == 0 || index > (ulong)_vms.Count) throw KernelError.NotFound($"no VM {index}");
        return t.Process.Handles.Add(_vms[(int)index - 1]);
    }

    internal long VcpuCreate(KThread t, uint vmHandle, ulong index)
    {
        var vm = t.Process.Handles.Get<VmObject>(vmHandle);
        if (index >= (ulong)vm.VcpuCount) throw KernelError.NotFound($"VM {vm.Index} has no vCPU {index}");
        return t.Process.Handles.Add(vm.Vcpus[(int)index]);
    }

    internal long IrqEvent(KThread t, uint vmHandle, ulong vector)
    {
        var vm = t.Process.Handles.Get<VmObject>(vmHandle);
        if (vector is < 32 or > 255) throw KernelError.Inval("IRQ vectors are 32..255");
        return t.Process.Handles.Add(new IrqObject(vm, (byte)vector));
    }

    /// <summary>CAPABILITIES(index as u32), as upstream's sys_capabilities: 0 the count, 1.. the values, past the end ENOTFOUND.</summary>
    internal long Capability(uint index)
    {
        ulong bitmap = 0;
        foreach (var vm in _vms) bitmap |= 1UL << vm.Index;   // bit 0 (the kernel's own level) never set
        return (ulong)index switch
        {
            Cap.Count => 2,
            Cap.VmBitmap => (long)bitmap,
            Cap.Features => (long)((ulong)Config.Platform & Cap.PlatformMask),
            _ => throw KernelError.NotFound($"no capability {index}"),
        };
    }

    internal long VmCapability(KThread t, uint vmHandle, ulong index)
    {
        var vm = t.Process.Handles.Get<VmObject>(vmHandle);
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

    internal long VmControl(KThread t, uint vmHandle, ulong op, ulong value)
    {
        var vm = t.Process.Handles.Get<VmObject>(vmHandle);
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

    internal long RegisterEvent(KThread t, uint vmHandle, EventKind kind, ulong start, ulong length)
    {
        var p = t.Process;
        var vm = p.Handles.Get<VmObject>(vmHandle);
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

    internal long EventSignal(KThread t, uint handle)
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
    internal ValueTask<long> WaitForEvent(KThread t, uint handle) => WaitForEvent(t, handle, CurrentCpu);

    /// <param name="here">The CPU this host thread steps (<see cref="CurrentCpu"/>), or null outside the drivers.</param>
    internal ValueTask<long> WaitForEvent(KThread t, uint handle, Cpu? here)
    {
        long now = WaitForEventNow(t, handle, here);
        return now != WaitNotNow ? new(now) : WaitForEventLater(t);
    }

    /// <summary><see cref="WaitForEventNow"/>'s answer when the call does not complete in place (<see cref="WaitForEventLater"/>
    /// finishes it): no syscall returns it, an ABI error being a small negative number.</summary>
    internal const long WaitNotNow = long.MinValue;

    /// <summary>
    /// WAIT_FOR_EVENT's part that completes in place: on an event object, the answer of the access in flight, the vCPU
    /// entered again from here when nothing else is ready on this CPU, and the next access handed over when it is already
    /// in the area (1). Anything else is <see cref="WaitNotNow"/>, with the handle's object looked up (<see cref="KThread.WaitObject"/>).
    /// A long, not a ValueTask: the gate builds the one ValueTask it returns, where a ValueTask returned through these
    /// inlined frames was copied through the stack at each (−13 per device model call, with the gate's part).
    /// </summary>
    /// <param name="here">The CPU this host thread steps (<see cref="CurrentCpu"/>; the gate has read it already), or null outside the drivers.</param>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]   // into the gate: one frame fewer per model call (−13)
    internal long WaitForEventNow(KThread t, uint handle, Cpu? here)
    {
        var handles = t.Process.Handles;
        int removals = handles.Removals;
        var e = t.WaitEvent;
        if (t.WaitObject is null || t.WaitHandle != handle || t.WaitRemovals != removals)
        {
            // Read the removal count before the lookup: a close after it makes the next wait look up again.
            var o = handles.Get(handle);
            e = o as EventObject;
            t.WaitHandle = handle; t.WaitObject = o; t.WaitEvent = e; t.WaitRemovals = removals;
        }
        return e is not null ? WaitEventNow(t, e, here) : WaitNotNow;
    }

    /// <summary>The rest of WAIT_FOR_EVENT after <see cref="WaitForEventNow"/> (on the object it looked up): the thread
    /// parks on its event object, or waits on a vCPU or a polled ring. Out of line: its ValueTasks would otherwise be
    /// stack slots the model's every call zeroes on entry.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    internal ValueTask<long> WaitForEventLater(KThread t)
    {
        var o = t.WaitObject!;
        return o is EventObject e ? WaitEventClaimed(t, e) : WaitOther(t, o);
    }

    /// <summary>WAIT_FOR_EVENT on anything but an event object. Out of line, as <see cref="WaitEventClaimed"/> is.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    ValueTask<long> WaitOther(KThread t, object o)
    {
        return o switch
        {
            VcpuObject v => WaitVcpu(t, v),
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

    internal long GetState(KThread t, uint handle, ulong fieldsVa, ulong valuesVa, ulong count)
    {
        var v = StoppedVcpu(t, handle);
        if (count == 0 || count > 512) throw KernelError.Inval("1..512 fields per call");
        var fields = MemoryMarshal.Cast<byte, ulong>(UserMemory.Span(t, fieldsVa, count * 8, write: false));
        if (count == 1 && fields[0] == Abi.StateField.VmsaPage) return GetVmsa(t, v, valuesVa);
        var values = MemoryMarshal.Cast<byte, ulong>(UserMemory.Span(t, valuesVa, count * 8, write: true));
        Span<ulong> tmp = stackalloc ulong[(int)count];
        for (int i = 0; i < (int)count; i++)
            if (!State.TryRead(v.Global, fields[i], out tmp[i])) throw KernelError.Inval($"unknown state field 0x{fields[i]:x}");
        tmp.CopyTo(values);   // all or nothing: no partial write on a bad field
        return (long)count;
    }

    internal long SetState(KThread t, uint handle, ulong fieldsVa, ulong valuesVa, ulong count)
    {
        var v = StoppedVcpu(t, handle);
        if (count == 0 || count > 512) throw KernelError.Inval("1..512 fields per call");
        var fields = MemoryMarshal.Cast<byte, ulong>(UserMemory.Span(t, fieldsVa, count * 8, write: false));
        if (count == 1 && fields[0] == Abi.StateField.VmsaPage) return SetVmsa(t, v, valuesVa);
        var values = MemoryMarshal.Cast<byte, ulong>(UserMemory.Span(t, valuesVa, count * 8, write: false));
        for (int i = 0; i < (int)count; i++)
            if (!IsWritableField(v.Global, fields[i])) throw KernelError.Inval($"unknown state field 0x{fields[i]:x}");
        for (int i = 0; i < (int)count; i++) State.TryWrite(v.Global, fields[i], values[i]);
        InvalidateCaches(v.Global);   // CR3 or mode may have changed
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
        ExportVmsa(v.Global, UserMemory.Span(t, va, Page.Size, write: true));
        return 1;
    }

    long SetVmsa(KThread t, VcpuObject v, ulong va)
    {
        if (Config.Platform != PlatformType.Snp) throw KernelError.NotSupp("the VMSA page exists on SNP only");
        ImportVmsa(v.Global, UserMemory.Span(t, va, Page.Size, write: false));
        InvalidateCaches(v.Global);
        return 1;
    }
}

using System.Text;
using Copra.Abi;

namespace Copra.User.Programs;

/// <summary>
/// The VM manager: opens the next free VM, registers its devices, hands each device range to a
/// device-model process by EXEC, then runs one thread per vCPU. A vCPU thread loops on
/// WAIT_FOR_EVENT(vcpu) and answers the exits the kernel leaves in the run page: CPUID, MSRs it
/// does not handle, HLT. A HLT with interrupts off is the guest saying it is done.
/// </summary>
public sealed class Vmm : IUserProgram
{
    int _running;
    VmmConfig _conf = new(0, 0, 0, false);

    public async Task Main(IUserContext ctx)
    {
        ulong bitmap = Sys.Capabilities(ctx, Cap.VmBitmap);
        uint vm = 0;
        ulong index = 0;
        for (int i = 1; i < 64 && vm == 0; i++)
        {
            if ((bitmap & (1UL << i)) == 0) continue;
            long h = Sys.Call(ctx, SysNr.VmOpen, (ulong)i);
            if (h == Errno.EBUSY) continue;      // another VMM has it
            vm = (uint)Sys.Check(SysNr.VmOpen, h);
            index = (ulong)i;
        }
        if (vm == 0) { Sys.Print(ctx, "vmm: no free VM\n"); return; }

        var conf = _conf = VmmConfig.Parse(Encoding.UTF8.GetString(Sys.Read(ctx, Sys.Open(ctx, $"/etc/vm{index}.conf", OpenMode.Read), 4096)));
        ulong vcpus = Sys.VmCapabilities(ctx, vm, VmCap.VcpuCount);
        ulong memBase = Sys.VmCapabilities(ctx, vm, VmCap.RangeBase(0)), memLen = Sys.VmCapabilities(ctx, vm, VmCap.RangeLength(0));
        Sys.Print(ctx, $"vmm: VM {index}: {vcpus} vCPU(s), memory 0x{memBase:x}+0x{memLen:x}\n");
        if (conf.Reinject) Sys.VmControl(ctx, vm, VmCtl.Unhandled, VmCtl.UnhandledReinject);

        if (conf.UartPort != 0)
            Sys.Exec(ctx, Paths.Uart, Sys.IoioEvent(ctx, vm, conf.UartPort, 8));
        if (conf.TestDeviceBase != 0)
            Sys.Exec(ctx, Paths.TestDevice, Sys.MmioEvent(ctx, vm, conf.TestDeviceBase, TestDeviceRegs.RangeSize), Sys.IrqEvent(ctx, vm, conf.IrqVector));

        _running = (int)vcpus;
        for (ulong i = 0; i < vcpus; i++)
        {
            uint vcpu = Sys.VcpuCreate(ctx, vm, i);
            Sys.ThreadCreate(ctx, VcpuThread, i << 32 | vcpu);   // the thread's argument: vCPU index and handle
        }
        await Task.CompletedTask;
    }

    async Task VcpuThread(IUserContext ctx, ulong arg)
    {
        uint vcpu = (uint)arg;
        ulong index = arg >> 32;
        ulong page = Sys.Mmap(ctx, vcpu, 0, Page.Size);
        var work = _conf.StateFields > 0 ? new StateWork(ctx, vcpu, _conf.StateFields, _conf.Batch) : null;
        while (true)
        {
            long why = Sys.Check(SysNr.WaitForEvent, await Sys.WaitForEvent(ctx, vcpu));
            ref var run = ref Sys.Ref<RunPage>(ctx, page);
            if (work is not null && (RunExit)why is RunExit.Cpuid or RunExit.MsrRead or RunExit.MsrWrite
                || work is not null && (RunExit)why == RunExit.Hlt && (run.Flags & RunPage.FlagInterruptsEnabled) != 0)
                work.OnExit();
            switch ((RunExit)why)
            {
                case RunExit.Cpuid:
                    // A small, fixed CPUID: enough for a guest to identify the platform.
                    run.CpuidEax = run.CpuidLeaf == 0 ? 0xDu : 0u;
                    run.CpuidEbx = 0x72706F43; run.CpuidEdx = 0x2061; run.CpuidEcx = 0;   // "Copra "
                    continue;
                case RunExit.MsrRead:
                    run.MsrValue = 0;
                    continue;
                case RunExit.MsrWrite:
                    continue;
                case RunExit.Hlt when (run.Flags & RunPage.FlagInterruptsEnabled) != 0:
                    continue;   // wait for an interrupt: the kernel keeps the vCPU halted until one is pending
                default:
                    Sys.Print(ctx, $"vmm: vcpu {index} stopped: {(RunExit)why} at rip 0x{run.Rip:x}" +
                                   (run.LostCount > 0 ? $", {run.LostCount} access(es) lost with a device at 0x{run.LostAddress:x}" : "") + "\n");
                    Sys.Munmap(ctx, page, Page.Size);
                    Sys.Close(ctx, vcpu);
                    if (Interlocked.Decrement(ref _running) == 0) await Sys.Exit(ctx, 0);
                    return;
            }
        }
    }
}

/// <summary>
/// The tuning workload's per-exit state traffic: GET_STATE of <c>fields</c> fields, one call each, then SET_STATE of
/// every fourth of them (the value just read), one call each, submitted <c>batch</c> calls per BATCH (1 = plain
/// syscalls). Field ids, values and the batch arrays live in the process's memory, allocated once.
/// </summary>
public sealed class StateWork
{
    /// <summary>Tracked (non-GPR) fields in the order the tuning VMM touches them: on TDX each costs a TDG.VP.RD.</summary>
    public static readonly ulong[] Fields =
    [
        StateField.Cr0, StateField.Cr3, StateField.Cr4, StateField.Efer,
        StateField.Seg(StateField.Cs, StateField.Attributes), StateField.Seg(StateField.Cs, StateField.Base),
        StateField.Seg(StateField.Ss, StateField.Attributes), StateField.Seg(StateField.Ds, StateField.Base),
        StateField.Seg(StateField.Es, StateField.Base), StateField.Seg(StateField.Fs, StateField.Base),
        StateField.Seg(StateField.Gs, StateField.Base), StateField.Cr2,
        StateField.Msr(0xC000_0082), StateField.Msr(0xC000_0081), StateField.Msr(0xC000_0102), StateField.Msr(0x277),
    ];

    /// <summary>Written back after reading: every fourth field read.</summary>
    public static int WritesFor(int fields) => (fields + 3) / 4;

    readonly IUserContext _ctx;
    readonly uint _vcpu;
    readonly int _fields, _batchSize;
    readonly ulong _ids, _values;
    readonly SysBatch? _batch;

    public StateWork(IUserContext ctx, uint vcpu, int fields, int batch)
    {
        if (fields < 1 || fields > Fields.Length) throw new ArgumentOutOfRangeException(nameof(fields), $"1..{Fields.Length} fields");
        _ctx = ctx; _vcpu = vcpu; _fields = fields; _batchSize = Math.Max(1, batch);
        _ids = Sys.Alloc(ctx, fields * 8);
        _values = Sys.Alloc(ctx, fields * 8);
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(Fields.AsSpan(0, fields)).CopyTo(ctx.Memory(_ids, fields * 8));
        if (_batchSize > 1) _batch = new SysBatch(ctx, _batchSize);
    }

    /// <summary>Calls per exit: the reads and the writes.</summary>
    public int CallsPerExit => _fields + WritesFor(_fields);

    public void OnExit()
    {
        for (int i = 0; i < _fields; i++) Call(SysNr.GetState, i);
        for (int i = 0; i < _fields; i += 4) Call(SysNr.SetState, i);
        Flush();
    }

    void Call(ulong nr, int i)
    {
        ulong id = _ids + (ulong)i * 8, value = _values + (ulong)i * 8;
        if (_batch is null) { Sys.CallChecked(_ctx, nr, _vcpu, id, value, 1); return; }
        _batch.Push(nr, _vcpu, id, value, 1, userData: nr << 8 | (uint)i);
        if (_batch.IsFull) Flush();
    }

    void Flush()
    {
        if (_batch is null || _batch.Count == 0) return;
        _batch.Submit();
        foreach (var c in _batch.Completions)
            if (c.Result != 1) throw new SysCallException(c.UserData >> 8, c.Result);
    }
}

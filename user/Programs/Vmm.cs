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

        var conf = VmmConfig.Parse(Encoding.UTF8.GetString(Sys.Read(ctx, Sys.Open(ctx, $"/etc/vm{index}.conf", OpenMode.Read), 4096)));
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
            Sys.ThreadCreate(ctx, VcpuThread, vcpu);
        }
        await Task.CompletedTask;
    }

    async Task VcpuThread(IUserContext ctx, ulong arg)
    {
        uint vcpu = (uint)arg;
        ulong page = Sys.Mmap(ctx, vcpu, 0, Page.Size);
        while (true)
        {
            long why = Sys.Check(SysNr.WaitForEvent, await Sys.WaitForEvent(ctx, vcpu));
            ref var run = ref Sys.Ref<RunPage>(ctx, page);
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
                    Sys.Print(ctx, $"vmm: vcpu {arg} stopped: {(RunExit)why} at rip 0x{run.Rip:x}" +
                                   (run.LostCount > 0 ? $", {run.LostCount} access(es) lost with a device at 0x{run.LostAddress:x}" : "") + "\n");
                    Sys.Munmap(ctx, page, Page.Size);
                    Sys.Close(ctx, vcpu);
                    if (Interlocked.Decrement(ref _running) == 0) await Sys.Exit(ctx, 0);
                    return;
            }
        }
    }
}

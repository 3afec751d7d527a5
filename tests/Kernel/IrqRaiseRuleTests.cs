using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Kernel.Machine;
using Copra.User;
using Xunit;
using static Iced.Intel.AssemblerRegisters;
using KernelT = Copra.Kernel.Core.Kernel;

namespace Copra.Tests.Kernel;

/// <summary>
/// EVENT_SIGNAL on an IRQ object (kernel/Exit/Kernel.Devices.cs RaiseIrq): the vector becomes pending and stays pending
/// however often it is signalled before the vCPU takes it; only a halted vCPU is woken, so a vCPU waiting on a device
/// stays where it is (not made runnable, not queued on its CPU). Through <see cref="VmmRig"/>.
/// </summary>
public sealed class IrqRaiseRuleTests
{
    const ulong If = 0x202, NoIf = 0x2;
    const ushort Port = 0x510;

    [Fact]
    public void A_vector_signalled_twice_before_the_vcpu_takes_it_is_pending_and_injected_once()
    {
        using var rig = new VmmRig();
        rig.K.State.Rflags(0) = NoIf;
        rig.Guest.Add(0, new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: If), new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: If));
        rig.Run(after: (ctx, vm) =>
        {
            uint irq = Sys.IrqEvent(ctx, vm, 0x44);
            Sys.EventSignal(ctx, irq);
            Sys.EventSignal(ctx, irq);
            return Task.CompletedTask;
        });
        Assert.Equal([0, KernelT.PendingEventValid | 0x44, 0], rig.Guest.Of(0).Select(e => e.PendingEvent).ToArray());
    }

    [Fact]
    public void An_irq_for_a_vcpu_waiting_on_a_device_neither_makes_it_runnable_nor_queues_it()
    {
        // vCPU 0 (CPU 0) reads a port the model holds; vCPU 1's VMM thread (CPU 1) raises an IRQ for vCPU 0, then answers
        // the read itself.
        using var rig = new VmmRig(vcpus: 2, cpus: 2);
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Silent);
        ulong inb = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(0, new GuestExit(ExitReason.Io, [(2, Port)], Rip: inb, Port: Port, Size: 1, Rflags: NoIf));
        for (int i = 0; i < 20; i++) rig.Guest.Add(1, new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf));
        var vcpus = rig.K.Vms[0].Vcpus;
        uint irq = 0;
        (long Wakes, VcpuRun Run, int Entries)? at = null;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            if (at is null && why == RunExit.Cpuid && vcpus[0].Run == VcpuRun.WaitingDevice)
            {
                long before = rig.K.Stats.CrossCpuWakes;
                Sys.EventSignal(ctx, irq);
                at = (rig.K.Stats.CrossCpuWakes - before, vcpus[0].Run, rig.Guest.Of(0).Count());
                ref var a = ref Sys.Ref<EventArea>(ctx, rig.DeviceAreas[0]);
                a.Data = 0x42;
                a.PublishState(EventState.Done);
                Sys.EventSignal(ctx, rig.DeviceHandles[0]);
            }
            return VmmRig.Continue(ctx, why, ref p);
        }, after: (ctx, vm) => { irq = Sys.IrqEvent(ctx, vm, 0x41); return Task.CompletedTask; });
        Assert.Equal((0L, VcpuRun.WaitingDevice, 1), at);
        Assert.Equal(0x42UL, rig.Guest.Of(0).Last().Rax & 0xFF);   // the read finished as the answer said
        Assert.Equal(inb + 1, rig.Guest.Of(0).Last().Rip);
    }
}

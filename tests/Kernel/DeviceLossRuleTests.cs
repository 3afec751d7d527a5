using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Kernel.Machine;
using Copra.User;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// A model that goes away, and an answer that comes too late (kernel/Exit/Kernel.Devices.cs DeviceLost, AnswerLost,
/// CompleteIfDone): the access a lost model held is answered all ones where its vCPU runs, directly when the loss is
/// found on that CPU and through that CPU's inbox (charged the cross-CPU wake) when another CPU found it; the loss is
/// counted in the lane of the CPU that found it (a lane has one writer); and an answer a model writes into an access
/// VM_CONTROL Stop already abandoned completes nothing. Through <see cref="VmmRig"/>.
/// </summary>
public sealed class DeviceLossRuleTests
{
    const ushort Port = 0x510;
    const ulong NoIf = 0x2;

    static GuestExit In(ulong rip) => new(ExitReason.Io, [(2, Port)], Rip: rip, Port: Port, Size: 1, Rflags: NoIf);
    static GuestExit Cpuid => new(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf);

    /// <summary>Two vCPUs: <paramref name="reader"/> runs IN AL, DX on the silent model's port (it waits there); the other
    /// exits on CPUID twenty times, so its VMM thread gets the turns a test acts in.</summary>
    static VmmRig SilentPortRead(int reader, int cpus, out ulong inb)
    {
        var rig = new VmmRig(vcpus: 2, cpus: cpus);
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Silent);
        inb = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(reader, In(inb));
        for (int i = 0; i < 20; i++) rig.Guest.Add(1 - reader, Cpuid);
        return rig;
    }

    [Fact]
    public void A_model_that_dies_on_its_vcpus_cpu_is_answered_there_without_a_cross_cpu_wake()
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Dies);
        ulong inb = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(0, In(inb));
        rig.Run();
        Assert.Equal(1, rig.K.Stats.DevicesLost);
        Assert.Equal(0xFFUL, rig.Guest.Entries[1].Rax & 0xFF);
        Assert.Equal(inb + 1, rig.Guest.Entries[1].Rip);
        Assert.Equal(0, rig.K.Stats.CrossCpuWakes);
        var c = rig.K.Cost;
        Assert.Equal([c.ExitCycles + c.SyscallCycles], rig.K.Stats.ModelledSamples(ExitKind.PortIn).ToArray());
    }

    [Fact]
    public void A_device_closed_on_another_cpu_answers_the_access_it_held_through_the_vcpus_inbox_and_counts_the_loss_where_it_was_found()
    {
        // vCPU 1 (CPU 1) reads the silent model's port; vCPU 0's VMM thread (CPU 0) closes the device while that access
        // waits in it.
        using var rig = SilentPortRead(reader: 1, cpus: 2, out ulong inb);
        var vcpus = rig.K.Vms[0].Vcpus;
        bool closed = false;
        long wakesAtClose = -1;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            if (!closed && vcpus[1].Run == VcpuRun.WaitingDevice)
            {
                closed = true;
                long before = rig.K.Stats.CrossCpuWakes;
                Sys.Close(ctx, rig.DeviceHandles[0]);
                wakesAtClose = rig.K.Stats.CrossCpuWakes - before;
            }
            return VmmRig.Continue(ctx, why, ref p);
        });
        Assert.True(closed);
        Assert.Equal(1, wakesAtClose);   // the answer went to CPU 1's inbox
        Assert.Equal((1L, 0L), (rig.K.Stats.GetOn(0, Counter.DevicesLost), rig.K.Stats.GetOn(1, Counter.DevicesLost)));
        Assert.Equal(0xFFUL, rig.Guest.Of(1).Last().Rax & 0xFF);
        Assert.Equal(inb + 1, rig.Guest.Of(1).Last().Rip);
        // The exit is charged two wakes: the model's (parked on CPU 0, the access on CPU 1) and the posted answer's.
        var c = rig.K.Cost;
        Assert.Equal([c.ExitCycles + c.SyscallCycles + 2 * c.CrossCpuWakeCycles], rig.K.Stats.ModelledSamples(ExitKind.PortIn).ToArray());
    }

    [Fact]
    public void An_answer_written_into_an_access_the_vm_stop_abandoned_completes_nothing()
    {
        // The silent model holds vCPU 0's read; vCPU 1's VMM thread stops the VM (the access is abandoned), then writes an
        // answer into the area as a late model would, and signals the object.
        using var rig = SilentPortRead(reader: 0, cpus: 1, out ulong inb);
        var vcpus = rig.K.Vms[0].Vcpus;
        uint vm = 0;
        long signalled = -1;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            if (signalled < 0 && why == RunExit.Cpuid && vcpus[0].Run == VcpuRun.WaitingDevice)
            {
                Sys.VmControl(ctx, vm, VmCtl.Stop, 0);
                ref var a = ref Sys.Ref<EventArea>(ctx, rig.DeviceAreas[0]);
                a.Data = 0x99;
                a.PublishState(EventState.Done);
                signalled = Sys.EventSignal(ctx, rig.DeviceHandles[0]);
            }
            return VmmRig.Continue(ctx, why, ref p);
        }, after: (ctx, h) => { vm = h; return Task.CompletedTask; });
        Assert.Equal(0, signalled);
        Assert.Equal(1, rig.K.Stats.GetOn(0, Counter.Aborted));   // the abandoned access, in the stopping CPU's lane
        var e = rig.DeviceObjects[0];
        Assert.Equal((0L, -1, 0), (e.Completed, e.Inflight, e.Queued));
        Assert.Single(rig.Guest.Of(0));   // never entered again
        var zero = Assert.Single(rig.Exits, x => x.Vcpu == 0);
        Assert.Equal(RunExit.Stopped, zero.Why);
        Assert.Equal(VcpuRun.Idle, vcpus[0].Run);
    }
    [Fact]
    public void A_closed_device_leaves_no_claim_behind_so_the_thread_still_parked_on_it_can_die_with_its_process()
    {
        // The silent model's thread is parked on the object, holding vCPU 0's read, when vCPU 1's VMM thread closes the
        // device (the read is answered all ones); at vCPU 1's next CPUID the VMM process exits, and the parked thread with it.
        using var rig = SilentPortRead(reader: 0, cpus: 1, out ulong inb);
        var vcpus = rig.K.Vms[0].Vcpus;
        var e = rig.DeviceObjects;
        int stage = 0;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            if (stage == 0 && why == RunExit.Cpuid && vcpus[0].Run == VcpuRun.WaitingDevice && e[0].Waiter is not null)
            {
                stage = 1;
                Sys.Close(ctx, rig.DeviceHandles[0]);
            }
            else if (stage == 1 && why == RunExit.Cpuid)
            {
                stage = 2;
                _ = Sys.Exit(ctx, 0);
                return false;
            }
            return VmmRig.Continue(ctx, why, ref p);
        });
        Assert.Equal(2, stage);
        Assert.Equal(1, rig.K.Stats.DevicesLost);
        Assert.Equal(0xFFUL, rig.Guest.Of(0).Last().Rax & 0xFF);
        Assert.Equal(0, e[0].Slot & EventObject.SlotBusy);   // published: nobody holds the claim
        Assert.Null(e[0].Waiter);
    }
}

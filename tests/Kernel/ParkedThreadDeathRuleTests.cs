using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Kernel.Machine;
using Copra.User;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// A thread that dies while it waits (kernel/Exit/Kernel.Devices.cs ThreadGone, WaitVcpu): it stops being the waiter of
/// what it waited on, so an object that outlives its process is free for the next thread's WAIT_FOR_EVENT. An object
/// outlives the process whose thread waits on it when another thread of that process moved its handle to a child with
/// EXEC (docs/abi.md: the listed handles move, and the waiter keeps waiting on the object). And a vCPU whose thread died
/// while its access waited in a device is busy, not idle: a thread of the process it moved to may not enter it then.
/// </summary>
public sealed class ParkedThreadDeathRuleTests
{
    /// <summary>
    /// Runs a process whose main thread waits on the object <paramref name="open"/> gives it, while a second thread moves
    /// the object's handle to a child (<c>/g</c>) and ends the process; the child then waits on it (its handle 1).
    /// Returns whether the child's wait was still pending, and its result if not.
    /// </summary>
    static (bool Pending, long Result, bool ChildRan) WaitAfterTheWaitersDeath(Func<IUserContext, uint> open)
    {
        using var k = KernelHarness.Boot(cpus: 1);
        bool childRan = false, pending = false;
        long result = 0;
        k.Install("/g", () => new LambdaProgram(ctx =>
        {
            childRan = true;
            var r = Sys.WaitForEvent(ctx, 1);
            pending = !r.IsCompleted;
            if (r.IsCompleted) result = r.Result;
            return Task.CompletedTask;
        }));
        KernelHarness.Run(k, async ctx =>
        {
            uint h = open(ctx);
            Sys.ThreadCreate(ctx, async (c, _) =>
            {
                Sys.Exec(c, "/g", h);
                await Sys.Exit(c, 0);
            }, 0);
            await Sys.WaitForEvent(ctx, h);   // nothing comes: this thread is parked on the object when its process ends
        });
        return (pending, result, childRan);
    }

    [Fact]
    public void An_event_object_whose_waiter_died_with_its_process_is_free_for_the_next_waiter()
    {
        var (pending, result, ran) = WaitAfterTheWaitersDeath(ctx => Sys.IoioEvent(ctx, Sys.VmOpen(ctx, 1), 0x510, 4));
        Assert.True(ran);
        Assert.True(pending, $"the child's wait returned {result}: the dead thread still counted as the object's waiter");
    }

    [Fact]
    public void A_polled_ring_whose_waiter_died_with_its_process_is_free_for_the_next_waiter()
    {
        var (pending, result, ran) = WaitAfterTheWaitersDeath(ctx => PolledRing.Create(ctx, 4, cpu: 0).Handle);
        Assert.True(ran);
        Assert.True(pending, $"the child's wait returned {result}: the dead thread still counted as the ring's waiter");
    }

    [Fact]
    public void A_vcpu_whose_thread_died_while_its_access_waits_in_a_device_is_busy_for_the_process_it_moved_to()
    {
        // vCPU 0 reads the silent model's port and waits there. At vCPU 1's next CPUID its VMM thread moves vCPU 0 and the
        // device (so the access stays in flight) to a child and ends the VMM process: vCPU 0 has no thread and is not idle.
        using var rig = new VmmRig(vcpus: 2);
        rig.Device(EventKind.Ioio, 0x510, 4, VmmRig.Silent);
        ulong inb = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(0, new GuestExit(ExitReason.Io, [(2, 0x510)], Rip: inb, Port: 0x510, Size: 1, Rflags: 0x2));
        for (int i = 0; i < 4; i++) rig.Guest.Add(1, new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: 0x2));
        var vcpus = rig.K.Vms[0].Vcpus;
        bool moved = false, childRan = false, pending = false;
        long result = 0;
        VcpuRun runThen = VcpuRun.Idle;
        rig.K.Install("/g", () => new LambdaProgram(ctx =>
        {
            childRan = true;
            runThen = vcpus[0].Run;
            var r = Sys.WaitForEvent(ctx, 1);
            pending = !r.IsCompleted;
            if (r.IsCompleted) result = r.Result;
            return Task.CompletedTask;
        }));
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            if (!moved && why == RunExit.Cpuid && vcpus[0].Run == VcpuRun.WaitingDevice)
            {
                moved = true;
                Sys.Exec(ctx, "/g", rig.VcpuHandles[0], rig.DeviceHandles[0]);
                _ = Sys.Exit(ctx, 0);
                return false;
            }
            return VmmRig.Continue(ctx, why, ref p);
        });
        Assert.True(moved);
        Assert.True(childRan);
        Assert.Equal(VcpuRun.WaitingDevice, runThen);
        Assert.False(pending, "the child's thread entered a vCPU whose access is still with the device");
        Assert.Equal(Errno.EBUSY, result);
        Assert.Single(rig.Guest.Of(0));   // never entered again
    }
}

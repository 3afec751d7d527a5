using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Kernel.Machine;
using Copra.User;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// VM_CONTROL Stop and the vCPUs it finds (kernel/Exit/Kernel.Devices.cs StopVm, WaitVcpu): a vCPU in the guest (its
/// thread in it) is left to its CPU and leaves with Stopped at its next entry, and the run page of an exit the VMM is
/// still handling is not overwritten; a halted vCPU's Stopped is counted in the lane of the CPU that stopped the VM; and
/// a second thread waiting on a vCPU another thread is still in is EBUSY even once the VM is stopped. Through
/// <see cref="VmmRig"/>.
/// </summary>
public sealed class VmStopRuleTests
{
    const ulong NoIf = 0x2, If = 0x202;

    static GuestExit Post(ulong rip, int i) => new(ExitReason.Io, [(0, (ulong)i)], Rip: rip, Port: 0x80, Size: 1, Write: true, Rflags: NoIf);
    static GuestExit Cpuid => new(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf);

    [Fact]
    public void A_stop_leaves_a_vcpu_in_the_guest_to_its_cpu_and_the_page_of_an_exit_being_handled_as_it_was()
    {
        // vCPU 0 writes the POST port (forwarded: it stays in the guest) forty times; vCPU 1's VMM thread, handling its
        // CPUID, stops the VM.
        using var rig = new VmmRig(vcpus: 2, cpus: 2);
        ulong outp = rig.Code(a => a.@out(0x80, Iced.Intel.AssemblerRegisters.al));
        for (int i = 0; i < 40; i++) rig.Guest.Add(0, Post(outp, i));
        rig.Guest.Add(1, Cpuid);
        var vcpus = rig.K.Vms[0].Vcpus;
        uint vm = 0;
        (VcpuRun Run, bool Waiter, RunExit Page, RunExit Pending)? zeroAfter = null, oneAfter = null;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            if (why == RunExit.Cpuid && zeroAfter is null)
            {
                Sys.VmControl(ctx, vm, VmCtl.Stop, 0);
                zeroAfter = (vcpus[0].Run, vcpus[0].Waiter is not null, vcpus[0].Page.ExitReason, vcpus[0].PendingRunExit);
                oneAfter = (vcpus[1].Run, vcpus[1].Waiter is not null, p.ExitReason, vcpus[1].PendingRunExit);
            }
            return VmmRig.Continue(ctx, why, ref p);
        }, after: (ctx, h) => { vm = h; return Task.CompletedTask; });
        Assert.Equal((VcpuRun.Runnable, true, RunExit.None, RunExit.None), zeroAfter);
        Assert.Equal((VcpuRun.Idle, false, RunExit.Cpuid, RunExit.Cpuid), oneAfter);
        // vCPU 0 then left at its next entry, once.
        Assert.Equal(RunExit.Stopped, Assert.Single(rig.Exits, x => x.Vcpu == 0).Why);
        Assert.Equal(VcpuRun.Idle, vcpus[0].Run);
    }

    [Fact]
    public void A_halted_vcpus_Stopped_is_counted_in_the_lane_of_the_cpu_that_stopped_the_vm()
    {
        // vCPU 0 (CPU 0) halts with interrupts on, its thread asleep in it; vCPU 1's VMM thread (CPU 1) stops the VM.
        using var rig = new VmmRig(vcpus: 2, cpus: 2);
        rig.Guest.Add(0, new GuestExit(ExitReason.Hlt, Rip: 0x50_0000, Rflags: If));
        for (int i = 0; i < 6; i++) rig.Guest.Add(1, Cpuid);
        var vcpus = rig.K.Vms[0].Vcpus;
        uint vm = 0;
        (long Cpu0, long Cpu1)? added = null;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            if (added is null && why == RunExit.Cpuid && vcpus[0].Run == VcpuRun.Halted)
            {
                var st = rig.K.Stats;
                long b0 = st.GetOn(0, Counter.ToVmm), b1 = st.GetOn(1, Counter.ToVmm);
                Sys.VmControl(ctx, vm, VmCtl.Stop, 0);
                added = (st.GetOn(0, Counter.ToVmm) - b0, st.GetOn(1, Counter.ToVmm) - b1);
            }
            return VmmRig.Continue(ctx, why, ref p);
        }, after: (ctx, h) => { vm = h; return Task.CompletedTask; });
        Assert.Equal((0L, 1L), added);
        Assert.Equal(RunExit.Stopped, rig.Exits.Last(x => x.Vcpu == 0).Why);
    }

    [Fact]
    public void A_second_thread_waiting_on_a_vcpu_another_thread_is_in_is_EBUSY_after_the_stop_too()
    {
        // vCPU 0 is in the guest (forwarded POST writes), its thread in it. vCPU 1's VMM thread stops the VM, then waits on
        // vCPU 0: that thread is still in vCPU 0 (it gets Stopped at vCPU 0's next entry), so the second wait is EBUSY, not Stopped.
        using var rig = new VmmRig(vcpus: 2, cpus: 2);
        ulong outp = rig.Code(a => a.@out(0x80, Iced.Intel.AssemblerRegisters.al));
        for (int i = 0; i < 40; i++) rig.Guest.Add(0, Post(outp, i));
        rig.Guest.Add(1, Cpuid);
        uint vm = 0;
        long second = 0;
        bool pending = true;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            if (why == RunExit.Cpuid)
            {
                Sys.VmControl(ctx, vm, VmCtl.Stop, 0);
                var r = Sys.WaitForEvent(ctx, rig.VcpuHandles[0]);
                pending = !r.IsCompleted;
                if (r.IsCompleted) second = r.Result;
            }
            return VmmRig.Continue(ctx, why, ref p);
        }, after: (ctx, h) => { vm = h; return Task.CompletedTask; });
        Assert.False(pending);
        Assert.Equal(Errno.EBUSY, second);
        Assert.Equal(RunExit.Stopped, Assert.Single(rig.Exits, x => x.Vcpu == 0).Why);
    }
    [Fact]
    public void The_watchdogs_stop_outside_the_drivers_counts_the_abandoned_access_in_the_shared_lane()
    {
        // vCPU 1 reads a port the model never answers; the run goes quiet with it waiting. The harness's watchdog then
        // stops the VM from the test's thread, which steps no CPU: its count goes to the shared (atomic) lane, not to a CPU's.
        using var rig = new VmmRig(vcpus: 2, cpus: 2);
        rig.Device(EventKind.Ioio, 0x510, 4, VmmRig.Silent);
        rig.Guest.Add(1, new GuestExit(ExitReason.Io, [(2, 0x510)], Rip: rig.Code(a => a.@in(Iced.Intel.AssemblerRegisters.al, Iced.Intel.AssemblerRegisters.dx)), Port: 0x510, Size: 1, Rflags: NoIf));
        rig.Run();
        Assert.Equal(VcpuRun.WaitingDevice, rig.K.Vms[0].Vcpus[1].Run);
        Assert.Equal(1, rig.K.StopStuckVms());
        var st = rig.K.Stats;
        Assert.Equal((0L, 0L, 1L), (st.GetOn(0, Counter.Aborted), st.GetOn(1, Counter.Aborted), st.GetOn(2, Counter.Aborted)));
        KernelHarness.Drive(rig.K);
        Assert.Equal(RunExit.Stopped, rig.Exits.Last(x => x.Vcpu == 1).Why);
    }
}

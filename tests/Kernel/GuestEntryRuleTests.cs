using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Kernel.Core;
using Copra.Kernel.Machine;
using Copra.User;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// Entering the guest and putting a vCPU back on its CPU (kernel/Exit/Kernel.Exit.cs RunGuest, QueueVcpu): a runnable vCPU
/// of a VM stopped meanwhile leaves with Stopped at its next entry instead of entering; a vCPU woken from another CPU goes
/// through its own CPU's inbox and is counted as a cross-CPU wake, in the waking CPU's lane; no entry is made once the VM is
/// stopped, nor for a vCPU whose thread is gone; and every run-page exit is a record of the hashed trace. Through <see cref="VmmRig"/>.
/// </summary>
public sealed class GuestEntryRuleTests
{
    const ulong NoIf = 0x2, If = 0x202;

    [Fact]
    public void A_runnable_vcpu_of_a_vm_stopped_meanwhile_leaves_with_Stopped_at_its_next_entry()
    {
        // vCPU 0 writes the POST port (forwarded: it never stops being runnable) forty times; at vCPU 1's first CPUID its
        // VMM thread stops the VM.
        using var rig = new VmmRig(vcpus: 2, cpus: 2);
        ulong outp = rig.Code(a => a.@out(0x80, Iced.Intel.AssemblerRegisters.al));
        for (int i = 0; i < 40; i++)
            rig.Guest.Add(0, new GuestExit(ExitReason.Io, [(0, (ulong)i)], Rip: outp, Port: 0x80, Size: 1, Write: true, Rflags: NoIf));
        rig.Guest.Add(1, new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf));
        uint vm = 0;
        int entriesAtStop = -1, enteredStopped = 0;
        rig.Guest.OnEntry = _ => { if (rig.K.Vms[0].Stopped) enteredStopped++; };
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            if (why == RunExit.Cpuid && entriesAtStop < 0)
            {
                entriesAtStop = rig.Guest.Of(0).Count();
                Sys.VmControl(ctx, vm, VmCtl.Stop, 0);
            }
            return VmmRig.Continue(ctx, why, ref p);
        }, after: (ctx, h) => { vm = h; return Task.CompletedTask; });
        Assert.InRange(entriesAtStop, 1, 30);
        Assert.InRange(rig.Guest.Of(0).Count(), entriesAtStop, entriesAtStop + 1);
        Assert.Equal(0, enteredStopped);   // the entry that found the VM stopped reported Stopped instead of entering
        var zero = Assert.Single(rig.Exits, x => x.Vcpu == 0);
        Assert.Equal(RunExit.Stopped, zero.Why);
        Assert.Equal(RunExit.Stopped, zero.Page.ExitReason);
        Assert.Equal(VcpuRun.Idle, rig.K.Vms[0].Vcpus[0].Run);
    }

    [Fact]
    public void A_vcpu_woken_from_another_cpu_is_queued_through_its_cpus_inbox_and_counted_as_a_cross_cpu_wake()
    {
        // vCPU 0 (CPU 0) halts with interrupts on; vCPU 1's VMM thread (CPU 1) raises an IRQ, which wakes it.
        using var rig = new VmmRig(vcpus: 2, cpus: 2);
        rig.Guest.Add(0, new GuestExit(ExitReason.Hlt, Rip: 0x50_0000, Rflags: If));
        for (int i = 0; i < 6; i++) rig.Guest.Add(1, new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf));
        var vcpus = rig.K.Vms[0].Vcpus;
        uint irq = 0;
        long wakes = -1, onCpu1 = -1;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            if (wakes < 0 && why == RunExit.Cpuid && vcpus[0].Run == VcpuRun.Halted)
            {
                long before = rig.K.Stats.CrossCpuWakes, before1 = rig.K.Stats.GetOn(1, Counter.CrossCpuWakes);
                Sys.EventSignal(ctx, irq);
                wakes = rig.K.Stats.CrossCpuWakes - before;
                onCpu1 = rig.K.Stats.GetOn(1, Counter.CrossCpuWakes) - before1;
            }
            return VmmRig.Continue(ctx, why, ref p);
        }, after: (ctx, vm) => { irq = Sys.IrqEvent(ctx, vm, 0x41); return Task.CompletedTask; });
        Assert.Equal(1, wakes);
        Assert.Equal(1, onCpu1);   // in the lane of the CPU that woke it (a lane has one writer)
        Assert.Equal(2, rig.Guest.Of(0).Count());   // it ran again after the IRQ
    }
    [Fact]
    public void Every_run_page_exit_is_a_record_of_the_hashed_trace()
    {
        using var rig = new VmmRig(keepTrace: true);
        rig.Guest.Add(0, new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf));
        rig.Run();
        var pageExits = rig.K.Trace.Records.Where(r => r.Kind == TraceKind.RunPageExit).Select(r => (r.A, r.B)).ToArray();
        // The CPUID, then the HLT with interrupts off that ends the script.
        Assert.Equal([(0L, (long)RunExit.Cpuid), (0L, (long)RunExit.Hlt)], pageExits);
    }
}

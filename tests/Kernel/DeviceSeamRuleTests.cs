using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Kernel.Machine;
using Copra.User;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// The device seam (kernel/Exit/Kernel.Devices.cs): what a delivery writes into the event area, what the model's
/// answer does to the guest, a model that dies with accesses in flight and queued (answered all ones, reported on the
/// run page), and VM_CONTROL Stop and the watchdog abandoning an access a silent model holds. Through <see cref="VmmRig"/>.
/// </summary>
public sealed class DeviceSeamRuleTests
{
    const ushort Port = 0x510;
    const ulong NoIf = 0x2;

    static GuestExit In(ulong rip, ushort port, byte size, ulong rax) =>
        new(ExitReason.Io, [(0, rax), (2, port)], Rip: rip, Port: port, Size: size, Rflags: NoIf);

    [Fact]
    public void A_port_write_is_delivered_with_its_port_size_data_rip_vcpu_and_cpu_and_one_element()
    {
        using var rig = new VmmRig(vcpus: 2, cpus: 2);
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Answers(0));
        ulong outb = rig.Code(a => a.@out(dx, al));
        ulong outd = rig.Code(a => a.@out(dx, eax));
        rig.Guest.Add(0, new GuestExit(ExitReason.Io, [(0, 0x1234_56AB), (2, Port + 1)], Rip: outb, Port: Port + 1, Size: 1, Write: true));
        rig.Guest.Add(1, new GuestExit(ExitReason.Io, [(0, 0xFFFF_FFFF_8765_4321), (2, Port)], Rip: outd, Port: Port, Size: 4, Write: true));
        rig.Run();
        Assert.Equal(2, rig.Deliveries.Count);
        var b = rig.Deliveries.Single(d => d.Area.Vcpu == 0).Area;
        Assert.Equal((EventKind.Ioio, (ulong)Port + 1, 1u, AccessDirection.Write, 0xABUL, 0u, outb, (EventFlags)0, 1u),
            (b.Kind, b.Address, b.Size, b.Direction, b.Data, b.Cpu, b.Rip, b.Flags, b.Count));
        var d4 = rig.Deliveries.Single(d => d.Area.Vcpu == 1).Area;
        Assert.Equal(((ulong)Port, 4u, 0x8765_4321UL, 1u, outd), (d4.Address, d4.Size, d4.Data, d4.Cpu, d4.Rip));
        Assert.Equal([1L, 2L], rig.Deliveries.Select(d => d.Seq).Order());   // the area's sequence counts deliveries
        Assert.Equal(2, rig.K.Stats.DeviceRoundTrips);
        var e = rig.DeviceObjects[0];
        Assert.Equal((2L, 2L, -1), (e.Delivered, e.Completed, e.Inflight));
        // Both vCPUs went on past their OUT to their halt.
        Assert.Equal(outb + 1, rig.Guest.Of(0).Last().Rip);
        Assert.Equal(outd + 1, rig.Guest.Of(1).Last().Rip);
    }

    [Fact]
    public void A_port_read_carries_no_data_and_its_answer_is_cut_to_the_access_size()
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Answers(0x1234_5678_9ABC_DEF0));
        ulong inw = rig.Code(a => a.@in(ax, dx));
        rig.Guest.Add(0, In(inw, Port, 2, 0x7777_8888_9999_AAAA));
        rig.Run();
        var a = Assert.Single(rig.Deliveries).Area;
        Assert.Equal((AccessDirection.Read, 0UL, 2u), (a.Direction, a.Data, a.Size));
        var after = rig.Guest.Entries[1];
        Assert.Equal(0x7777_8888_9999_DEF0UL, after.Rax);
        Assert.Equal(inw + 2, after.Rip);
    }

    [Fact]
    public void A_rep_string_access_is_flagged_and_counts_the_elements_left()
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Answers(0));
        ulong outs = rig.Code(a => a.rep.outsb());
        rig.K.Memory.WriteU8(rig.Layout.Data, 0x61);
        rig.K.Memory.WriteU8(rig.Layout.Data + 1, 0x62);
        rig.K.Memory.WriteU8(rig.Layout.Data + 2, 0x63);
        ulong once = rig.Code(a => a.outsb());
        rig.Guest.Add(0, new GuestExit(ExitReason.Io, [(1, 3), (2, Port), (6, rig.Layout.Data)], Rip: outs, Port: Port, Size: 1, Write: true, Rflags: NoIf),
            new GuestExit(ExitReason.Io, [(1, 5), (2, Port), (6, rig.Layout.Data)], Rip: once, Port: Port, Size: 1, Write: true, Rflags: NoIf));
        rig.Run();
        Assert.Equal([3u, 2u, 1u, 1u], rig.Deliveries.Select(d => d.Area.Count));   // without REP, one element whatever RCX holds
        Assert.Equal([0x61UL, 0x62UL, 0x63UL, 0x61UL], rig.Deliveries.Select(d => d.Area.Data));
        Assert.All(rig.Deliveries.Take(3), d => Assert.Equal(EventFlags.String | EventFlags.Rep, d.Area.Flags));
        Assert.Equal(EventFlags.String, rig.Deliveries[3].Area.Flags);
    }

    [Fact]
    public void A_model_that_dies_with_a_read_in_flight_answers_all_ones_and_the_run_page_says_what_was_lost()
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Dies);
        ulong inb = rig.Code(a => a.@in(al, dx));
        ulong inb2 = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(0, In(inb, Port + 2, 1, 0x1111_2222), new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf), In(inb2, Port + 3, 1, 0x3333_4444));
        rig.Run();
        var e = rig.Guest.Entries;
        Assert.Equal(0x1111_22FFUL, e[1].Rax);    // the lost read: all ones in AL, the rest of RAX kept
        Assert.Equal(inb + 1, e[1].Rip);
        var page = rig.Exits[0].Page;            // the CPUID after it: the VMM learns of the loss
        Assert.Equal(RunExit.Cpuid, page.ExitReason);
        Assert.Equal(((ulong)Port + 2, EventKind.Ioio, 1u), (page.LostAddress, page.LostKind, page.LostCount));
        // The range is unregistered: the later read goes to the host (all ones there too), and is no loss.
        Assert.Equal(0x3333_44FFUL, e[3].Rax);
        Assert.Equal(1u, rig.Exits[1].Page.LostCount);
        Assert.Equal(1, rig.K.Stats.DevicesLost);
        Assert.Equal(1, rig.K.Stats.Forwarded);
    }

    [Fact]
    public void A_model_that_dies_answers_the_access_in_flight_and_those_queued_behind_it_on_every_cpu()
    {
        // vCPU 0 (CPU 0) holds the silent model; vCPU 1 (CPU 1) queues behind it; vCPU 2's VMM thread (CPU 0) closes the
        // model's object once both wait. vCPU 1's answer is posted to CPU 1's inbox.
        using var rig = new VmmRig(vcpus: 3, cpus: 2);
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Silent);
        ulong in0 = rig.Code(a => a.@in(al, dx)), in1 = rig.Code(a => a.@in(eax, dx));
        rig.Guest.Add(0, In(in0, Port, 1, 0xAAAA_0000));
        rig.Guest.Add(1, In(in1, Port + 1, 4, 0xBBBB_BBBB_0000_0000));
        for (int i = 0; i < 20; i++) rig.Guest.Add(2, new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf));
        var vcpus = rig.K.Vms[0].Vcpus;
        bool closed = false;
        long wakesBefore = 0;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            if (!closed && vcpus[0].Run == VcpuRun.WaitingDevice && vcpus[1].Run == VcpuRun.WaitingDevice)
            {
                closed = true;
                wakesBefore = rig.K.Stats.CrossCpuWakes;
                Sys.Close(ctx, rig.DeviceHandles[0]);
            }
            return VmmRig.Continue(ctx, why, ref p);
        });
        Assert.True(closed, "the two accesses never waited together");
        Assert.Equal(2, rig.K.Stats.DevicesLost);
        Assert.Single(rig.Deliveries);   // the queued one was never handed to the model
        Assert.Equal(0xAAAA_00FFUL, rig.Guest.Of(0).Last().Rax);
        Assert.Equal(0xFFFF_FFFFUL, rig.Guest.Of(1).Last().Rax);
        Assert.Equal(in0 + 1, rig.Guest.Of(0).Last().Rip);
        Assert.Equal(in1 + 1, rig.Guest.Of(1).Last().Rip);
        var halt0 = rig.Exits.Single(x => x.Vcpu == 0).Page;
        var halt1 = rig.Exits.Single(x => x.Vcpu == 1).Page;
        Assert.Equal(((ulong)Port, EventKind.Ioio, 1u), (halt0.LostAddress, halt0.LostKind, halt0.LostCount));
        Assert.Equal(((ulong)Port + 1, EventKind.Ioio, 1u), (halt1.LostAddress, halt1.LostKind, halt1.LostCount));
        Assert.True(rig.K.Stats.CrossCpuWakes > wakesBefore, "vCPU 1's answer did not cross to its CPU");
        var e = rig.K.Vms[0].Owners.Count > 0 ? rig.K.Vms[0].Owners[0] : null;
        Assert.Null(e);   // unregistered
    }

    [Fact]
    public void The_watchdog_stops_only_a_vm_with_a_vcpu_stuck_on_a_device_and_the_stop_abandons_the_access()
    {
        using var rig = new VmmRig(vcpus: 2, cpus: 2);
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Silent);
        ulong in0 = rig.Code(a => a.@in(al, dx)), in1 = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(0, In(in0, Port, 1, 0));
        rig.Guest.Add(1, In(in1, Port, 1, 0));
        rig.Run();
        var vcpus = rig.K.Vms[0].Vcpus;
        Assert.All(vcpus, vc => Assert.Equal(VcpuRun.WaitingDevice, vc.Run));
        Assert.Empty(rig.Exits);
        Assert.Equal(1, rig.K.StopStuckVms());
        KernelHarness.Drive(rig.K);
        Assert.True(rig.K.Vms[0].Stopped);
        Assert.Equal(2, rig.K.Stats.Aborted);   // the one in flight and the one queued behind it
        Assert.Equal(0, rig.K.Stats.DevicesLost);
        Assert.Equal([RunExit.Stopped, RunExit.Stopped], rig.Exits.OrderBy(x => x.Vcpu).Select(x => x.Page.ExitReason));
        Assert.Equal([0, 1], rig.Exits.Select(x => x.Vcpu).Order());
        Assert.All(vcpus, vc => Assert.Equal(VcpuRun.Idle, vc.Run));
        Assert.Equal(in0, rig.Exits.Single(x => x.Vcpu == 0).Page.Rip);   // the access was not done
        Assert.Equal(2, rig.Guest.Entries.Count);
        var e = rig.DeviceObjects[0];
        Assert.Equal((-1, 0), (e.Inflight, e.Queued));
        Assert.Equal(EventState.Idle, e.Area.State);
        Assert.Equal(0, rig.K.StopStuckVms());   // stopped already
    }

    [Fact]
    public void The_watchdog_leaves_a_vm_whose_devices_answer_alone()
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Answers(7));
        rig.Guest.Add(0, In(rig.Code(a => a.@in(al, dx)), Port, 1, 0));
        rig.Run();
        Assert.Equal(0, rig.K.StopStuckVms());
        Assert.False(rig.K.Vms[0].Stopped);
        Assert.Equal(0, rig.K.Stats.Aborted);
    }

    [Fact]
    public void VM_CONTROL_Stop_wakes_a_halted_vcpu_with_Stopped_and_every_later_wait_answers_Stopped()
    {
        // vCPU 0 halts with interrupts on (asleep, its thread waiting); vCPU 1's VMM thread stops the VM.
        using var rig = new VmmRig(vcpus: 2, cpus: 2);
        rig.Guest.Add(0, new GuestExit(ExitReason.Hlt, Rip: 0x50_0000, Rflags: 0x202));
        for (int i = 0; i < 10; i++) rig.Guest.Add(1, new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf));
        uint vmHandle = 0;
        bool stopped = false;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            int self = rig.Exits[^1].Vcpu;   // the exit just noted is this thread's
            if (why == RunExit.Stopped) return rig.Exits.Count(x => x.Vcpu == self && x.Why == RunExit.Stopped) < 3;   // wait again: Stopped at once each time
            if (why == RunExit.Cpuid && !stopped && rig.Exits.Any(x => x.Vcpu == 0 && x.Why == RunExit.Hlt))
            {
                stopped = true;
                Sys.VmControl(ctx, vmHandle, VmCtl.Stop, 0);
            }
            return VmmRig.Continue(ctx, why, ref p);
        }, after: (ctx, vm) => { vmHandle = vm; return Task.CompletedTask; });
        Assert.True(stopped);
        var zero = rig.Exits.Where(x => x.Vcpu == 0).ToList();
        Assert.Equal(RunExit.Stopped, zero[1].Why);
        Assert.Equal(RunExit.Stopped, zero[1].Page.ExitReason);
        Assert.Equal(2UL, zero[1].Page.Sequence);
        Assert.Equal(0x50_0001UL, zero[1].Page.Rip);   // the HLT was finished by the VMM's answer: it slept after it
        Assert.Single(rig.Guest.Of(0));
        Assert.Equal(4, zero.Count);   // the HLT, the stop, two waits after it
        Assert.All(zero.Skip(1), x => Assert.Equal(RunExit.Stopped, x.Why));
        Assert.All(zero.Skip(2), x => Assert.Equal(2UL, x.Page.Sequence));   // the waits after it are answered at once: no exit, no entry
        Assert.Equal(RunExit.Stopped, rig.Exits.Last(x => x.Vcpu == 1).Why);
        Assert.True(rig.Guest.Of(1).Count() < 11, "vCPU 1 ran its whole script after the stop");
    }

    [Fact]
    public void An_untimed_answer_given_through_EVENT_SIGNAL_puts_its_vcpu_back_and_the_vcpu_runs_on()
    {
        // One CPU, no exit timed: vCPU 0 reads the silent model's port twice; vCPU 1's VMM thread answers what the area
        // holds, through EVENT_SIGNAL. The answer is a plain IN's on its vCPU's own CPU, so the common completion ends the
        // exit and hands the vCPU back to its caller, EVENT_SIGNAL, which must queue it: vCPU 0 then takes its second exit.
        using var rig = new VmmRig(vcpus: 2, cpus: 1, timeEvery: ExitStats.MaxTimeEvery);
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Silent);
        ulong in0 = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(0, In(in0, Port, 1, 0xAAAA_0000), In(in0, Port, 1, 0xBBBB_0000));
        for (int i = 0; i < 20; i++) rig.Guest.Add(1, new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf));
        int answers = 0;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            ref var a = ref Sys.Ref<EventArea>(ctx, rig.DeviceAreas[0]);
            if (a.State == EventState.Pending)
            {
                a.Data = 0x40 + (ulong)answers++;
                a.PublishState(EventState.Done);
                Sys.EventSignal(ctx, rig.DeviceHandles[0]);
            }
            return VmmRig.Continue(ctx, why, ref p);
        });
        Assert.Equal(2, answers);
        // Entered three times (the second IN, then the script's end): each IN's answer in AL and RIP past it at the next entry.
        var entries = rig.Guest.Of(0).ToList();
        Assert.Equal(3, entries.Count);
        Assert.Equal((0xAAAA_0040UL, in0 + 1), (entries[1].Rax, entries[1].Rip));
        Assert.Equal((0xBBBB_0041UL, in0 + 1), (entries[2].Rax, entries[2].Rip));
        Assert.Equal(2, rig.K.Stats.DeviceRoundTrips);
    }

    [Fact]
    public void An_access_queued_behind_another_is_delivered_when_the_first_is_answered_and_an_answer_from_another_cpu_goes_through_its_inbox()
    {
        // vCPU 0 (CPU 0) and vCPU 1 (CPU 1) read the silent model's ports; vCPU 2's VMM thread (CPU 0) answers whatever
        // the area holds, through EVENT_SIGNAL, once both wait: vCPU 0's answer is taken on its own CPU, vCPU 1's is
        // posted to CPU 1. The one that came second was queued and is delivered by the first one's completion.
        using var rig = new VmmRig(vcpus: 3, cpus: 2);
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Silent);
        ulong in0 = rig.Code(a => a.@in(al, dx)), in1 = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(0, In(in0, Port, 1, 0xAAAA_0000));
        rig.Guest.Add(1, In(in1, Port + 1, 1, 0xBBBB_0000));
        for (int i = 0; i < 20; i++) rig.Guest.Add(2, new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf));
        var vcpus = rig.K.Vms[0].Vcpus;
        var answered = new List<(uint Vcpu, ulong Address, ulong Sequence, long CrossWakes)>();
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            ref var a = ref Sys.Ref<EventArea>(ctx, rig.DeviceAreas[0]);
            if (answered.Count < 2 && a.State == EventState.Pending
                && (answered.Count > 0 || vcpus[0].Run == VcpuRun.WaitingDevice && vcpus[1].Run == VcpuRun.WaitingDevice))
            {
                answered.Add((a.Vcpu, a.Address, a.Sequence, rig.K.Stats.CrossCpuWakes));
                a.Data = 0x40 + a.Vcpu;
                a.PublishState(EventState.Done);
                Sys.EventSignal(ctx, rig.DeviceHandles[0]);
            }
            return VmmRig.Continue(ctx, why, ref p);
        });
        // Whichever came first is answered first; the other was queued and delivered next.
        Assert.Equal([1UL, 2UL], answered.Select(x => x.Sequence));
        Assert.Equal([0u, 1u], answered.Select(x => x.Vcpu).Order());
        Assert.All(answered, x => Assert.Equal(Port + x.Vcpu, x.Address));
        Assert.Equal(0xAAAA_0040UL, rig.Guest.Of(0).Last().Rax);
        Assert.Equal(0xBBBB_0041UL, rig.Guest.Of(1).Last().Rax);
        Assert.Equal(in1 + 1, rig.Guest.Of(1).Last().Rip);
        Assert.True(rig.K.Stats.CrossCpuWakes > answered[1].CrossWakes, "vCPU 1's answer did not cross to CPU 1");
        var e = rig.DeviceObjects[0];
        Assert.Equal((2L, 2L, -1, 0), (e.Delivered, e.Completed, e.Inflight, e.Queued));
        Assert.Equal(2, rig.K.Stats.DeviceRoundTrips);
        // Each exit's round trip in the lane of the CPU that took it.
        Assert.Equal((1L, 1L), (rig.K.Stats.GetOn(0, Counter.DeviceRoundTrips), rig.K.Stats.GetOn(1, Counter.DeviceRoundTrips)));
    }
}

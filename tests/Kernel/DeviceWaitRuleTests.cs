using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Kernel.Core;
using Copra.Kernel.Machine;
using Copra.User;
using Xunit;
using static Iced.Intel.AssemblerRegisters;
using KernelT = Copra.Kernel.Core.Kernel;

namespace Copra.Tests.Kernel;

/// <summary>
/// WAIT_FOR_EVENT on event objects and vCPUs (kernel/Exit/Kernel.Devices.cs WaitEvent, Hand, WaitVcpu, Request's wake):
/// one waiter per object (a second is EBUSY), a model thread handed an access of another CPU's vCPU answers it where it
/// runs and the answer crosses to that CPU, a parked model woken from another CPU is charged the cross-CPU wake in the exit's modelled cost, and an access
/// queued behind one that another thread answers (EVENT_SIGNAL) is handed to the model parked on the object.
/// Through <see cref="VmmRig"/>.
/// </summary>
public sealed class DeviceWaitRuleTests
{
    const ushort Port = 0x510;
    const ulong NoIf = 0x2, If = 0x202;

    static GuestExit In(ulong rip, ushort port) => new(ExitReason.Io, [(2, port)], Rip: rip, Port: port, Size: 1, Rflags: NoIf);
    static GuestExit Cpuid => new(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf);

    [Fact]
    public void A_second_thread_waiting_on_an_event_object_another_thread_waits_on_is_EBUSY()
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Answers(0x42));
        ulong inb = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(0, Cpuid, In(inb, Port));
        long second = 0;
        bool pending = true;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            if (why == RunExit.Cpuid && rig.DeviceObjects[0].Waiter is not null)
            {
                var r = Sys.WaitForEvent(ctx, rig.DeviceHandles[0]);
                pending = !r.IsCompleted;
                if (r.IsCompleted) second = r.Result;
            }
            return VmmRig.Continue(ctx, why, ref p);
        });
        Assert.False(pending, "the second waiter blocked");
        Assert.Equal(Errno.EBUSY, second);
        // The model still waits on it and takes the next access.
        Assert.Single(rig.Deliveries);
        Assert.Equal(0x42UL, rig.Guest.Entries[^1].Rax & 0xFF);
    }

    [Fact]
    public void A_second_thread_waiting_on_a_vcpu_another_thread_is_in_is_EBUSY_and_a_waiter_alone_runs_it()
    {
        // vCPU 0 halts with interrupts on: its thread stays in it, asleep. vCPU 1's thread then waits on vCPU 0.
        using var rig = new VmmRig(vcpus: 2, cpus: 2);
        rig.Guest.Add(0, new GuestExit(ExitReason.Hlt, Rip: 0x50_0000, Rflags: If));
        for (int i = 0; i < 6; i++) rig.Guest.Add(1, Cpuid);
        var vcpus = rig.K.Vms[0].Vcpus;
        long second = 0;
        bool tried = false, pending = false;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            if (!tried && why == RunExit.Cpuid && vcpus[0].Run == VcpuRun.Halted && vcpus[0].Waiter is not null)
            {
                tried = true;
                var r = Sys.WaitForEvent(ctx, rig.VcpuHandles[0]);
                pending = !r.IsCompleted;
                if (r.IsCompleted) second = r.Result;
            }
            return VmmRig.Continue(ctx, why, ref p);
        });
        Assert.True(tried, "vCPU 0 never slept with its thread in it");
        Assert.False(pending, "the second thread entered a vCPU another thread is in");
        Assert.Equal(Errno.EBUSY, second);
        Assert.Equal(VcpuRun.Halted, vcpus[0].Run);
        Assert.Single(rig.Guest.Of(0));
        Assert.Equal(7, rig.Guest.Of(1).Count());   // vCPU 1's own thread went on
    }

    [Fact]
    public void A_parked_model_woken_from_another_cpu_runs_on_the_exits_cpu_and_that_exit_is_charged_the_wake()
    {
        // The model's thread parks on CPU 0 (where the VMM made it). vCPU 1 (CPU 1) reads its port twice: the first
        // delivery wakes it across CPUs and moves it to CPU 1; the second finds it parked there.
        using var rig = new VmmRig(vcpus: 2, cpus: 2);
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Answers(0x42));
        ulong in1 = rig.Code(a => a.@in(al, dx)), in2 = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(1, In(in1, Port), In(in2, Port));
        rig.Run();
        Assert.Equal(2, rig.Deliveries.Count);
        var c = rig.K.Cost;
        var samples = rig.K.Stats.ModelledSamples(ExitKind.PortIn).ToArray();
        Assert.Equal([c.ExitCycles + c.SyscallCycles, c.ExitCycles + c.SyscallCycles + c.CrossCpuWakeCycles], samples.Order());
        var model = rig.DeviceObjects[0].Waiter;
        Assert.NotNull(model);
        Assert.Equal(1, model.Cpu);
        // Counted too: the two cross-CPU wakes are vCPU 1's first entry (queued from CPU 0, where its VMM thread started)
        // and the model's.
        Assert.Equal(2, rig.K.Stats.CrossCpuWakes);
    }

    [Fact]
    public void A_model_handed_an_access_of_another_cpus_vcpu_answers_where_it_runs_and_the_answer_crosses_to_that_cpu()
    {
        // vCPU 0 (CPU 0) and vCPU 1 (CPU 1) each read the model's port eight times, a CPUID (the VMM's) after each: under
        // the deterministic driver an access comes while the other vCPU's is in flight, and queues. The model's answer
        // (its next WAIT_FOR_EVENT) delivers the queued one, which it is handed at once on the CPU it runs on; an answer
        // for the other CPU's vCPU goes to that CPU's inbox, is charged to its exit as a cross-CPU wake, and completes there.
        using var rig = new VmmRig(vcpus: 2, cpus: 2);
        var vcpus = rig.K.Vms[0].Vcpus;
        var answers = new List<(uint Vcpu, int VcpuCpu, int ModelCpu)>();
        rig.Device(EventKind.Ioio, Port, 4, (IUserContext _, uint _, ref EventArea a) =>
        {
            answers.Add((a.Vcpu, vcpus[(int)a.Vcpu].Cpu, KernelT.CurrentCpu!.Index));
            a.Data = 0x40 + a.Vcpu;
            a.PublishState(EventState.Done);
            return true;
        });
        for (int v = 0; v < 2; v++)
            for (int i = 0; i < 8; i++) rig.Guest.Add(v, In(rig.Code(a => a.@in(al, dx)), Port), Cpuid);
        rig.Run();
        Assert.Equal(16, answers.Count);
        // The schedule did queue one behind the other, and the model took it where it was: it did not move.
        int crossed = answers.Count(x => x.ModelCpu != x.VcpuCpu);
        Assert.True(crossed > 0, "every answer was made on its vCPU's CPU: the model moved to the exits");
        // Each answer reached its own vCPU: the entry after each IN holds that vCPU's value in AL.
        for (int v = 0; v < 2; v++)
        {
            var entries = rig.Guest.Of(v).ToArray();
            Assert.Equal(8, entries.Count(e => (e.Rax & 0xFF) == 0x40u + (uint)v));
        }
        // Each answer that crossed was charged to its exit, and so was each exit that woke the parked model on the other
        // CPU (the model's CPU changed between two answers, or from CPU 0, where the VMM made it): no exit twice, none else.
        int woken = answers.Where((x, i) => x.ModelCpu != (i == 0 ? 0 : answers[i - 1].ModelCpu)).Count();
        var c = rig.K.Cost;
        int charged = rig.K.Stats.ModelledSamples(ExitKind.PortIn).ToArray().Count(m => m == c.ExitCycles + c.SyscallCycles + c.CrossCpuWakeCycles);
        Assert.Equal(crossed + woken, charged);
    }

    [Fact]
    public void An_access_queued_behind_one_another_thread_answers_is_handed_to_the_model_parked_on_the_object()
    {
        // The model lets its first access sit (it waits again without answering, and parks). vCPU 2's VMM thread answers
        // that one with EVENT_SIGNAL once the other vCPU's access is queued behind it; the queued access is then in the
        // area, and the parked model must be woken to take it.
        using var rig = new VmmRig(vcpus: 3, cpus: 2);
        var vcpus = rig.K.Vms[0].Vcpus;
        int handed = 0;
        var answeredOn = new List<(uint Vcpu, int Cpu)>();
        rig.Device(EventKind.Ioio, Port, 4, (IUserContext _, uint _, ref EventArea a) =>
        {
            if (handed++ == 0) return true;   // hold the first: park on the object
            answeredOn.Add((a.Vcpu, KernelT.CurrentCpu!.Index));
            a.Data = 0x50 + a.Vcpu;
            a.PublishState(EventState.Done);
            return true;
        });
        ulong in0 = rig.Code(a => a.@in(al, dx)), in1 = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(0, In(in0, Port));
        rig.Guest.Add(1, Cpuid, Cpuid, In(in1, Port + 1));   // after vCPU 0's: the queued access is the one on CPU 1
        for (int i = 0; i < 20; i++) rig.Guest.Add(2, Cpuid);
        uint first = uint.MaxValue;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            ref var a = ref Sys.Ref<EventArea>(ctx, rig.DeviceAreas[0]);
            if (first == uint.MaxValue && a.State == EventState.Pending && rig.DeviceObjects[0].Queued == 1 && rig.DeviceObjects[0].Waiter is not null)
            {
                first = a.Vcpu;
                a.Data = 0x40 + a.Vcpu;
                a.PublishState(EventState.Done);
                Sys.EventSignal(ctx, rig.DeviceHandles[0]);
            }
            return VmmRig.Continue(ctx, why, ref p);
        });
        Assert.Equal(0u, first);
        uint second = 1 - first;
        Assert.Equal(2, handed);
        Assert.Equal(0x40UL + first, rig.Guest.Of((int)first).Last().Rax & 0xFF);
        Assert.Equal(0x50UL + second, rig.Guest.Of((int)second).Last().Rax & 0xFF);
        Assert.All(vcpus.Take(2), vc => Assert.NotEqual(VcpuRun.WaitingDevice, vc.Run));
        // The parked model was woken on the queued vCPU's CPU, as a delivery's wake would (and answered there).
        Assert.Equal([(second, vcpus[(int)second].Cpu)], answeredOn);
    }

    [Fact]
    public void A_vcpu_whose_thread_died_with_its_process_does_not_enter_the_guest_again()
    {
        // vCPU 0 writes the POST port (forwarded to the host: no run-page exit) forty times; at vCPU 1's first CPUID its
        // VMM thread ends the VMM process. vCPU 0's thread dies in it, so vCPU 0 leaves the guest at its next entry.
        using var rig = new VmmRig(vcpus: 2, cpus: 2);
        ulong outp = rig.Code(a => a.@out(0x80, al));
        for (int i = 0; i < 40; i++)
            rig.Guest.Add(0, new GuestExit(ExitReason.Io, [(0, (ulong)i)], Rip: outp, Port: 0x80, Size: 1, Write: true, Rflags: NoIf));
        rig.Guest.Add(1, Cpuid);
        int before = -1, withoutThread = 0;
        var vc0 = rig.K.Vms[0].Vcpus[0];
        rig.Guest.OnEntry = v => { if (v == 0 && vc0.Waiter is null) withoutThread++; };
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            before = rig.Guest.Of(0).Count();
            _ = Sys.Exit(ctx, 0);
            return false;
        });
        Assert.InRange(before, 1, 30);   // it was still running when the VMM went
        Assert.InRange(rig.Guest.Of(0).Count(), before, before + 1);
        Assert.Equal(0, withoutThread);
        var vc = rig.K.Vms[0].Vcpus[0];
        Assert.Null(vc.Waiter);
        Assert.Equal(VcpuRun.Idle, vc.Run);
    }

    [Fact]
    public void An_answer_taken_on_another_cpu_is_charged_the_cross_cpu_wake_in_the_exits_modelled_cost()
    {
        // vCPU 1 (CPU 1) reads the model's port twice. The first moves the model's thread to CPU 1 (charged the wake) and
        // is answered there; the model holds the second, and vCPU 0's VMM thread (CPU 0) answers it with EVENT_SIGNAL:
        // that answer is posted to CPU 1, and charged the wake too.
        using var rig = new VmmRig(vcpus: 2, cpus: 2);
        int handed = 0;
        rig.Device(EventKind.Ioio, Port, 4, (IUserContext _, uint _, ref EventArea a) =>
        {
            if (handed++ > 0) return true;
            a.Data = 0x41;
            a.PublishState(EventState.Done);
            return true;
        });
        ulong in1 = rig.Code(a => a.@in(al, dx)), in2 = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(1, In(in1, Port), In(in2, Port));
        for (int i = 0; i < 20; i++) rig.Guest.Add(0, Cpuid);
        var vcpus = rig.K.Vms[0].Vcpus;
        bool answered = false;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            ref var a = ref Sys.Ref<EventArea>(ctx, rig.DeviceAreas[0]);
            if (!answered && handed == 2 && a.State == EventState.Pending)
            {
                answered = true;
                a.Data = 0x42;
                a.PublishState(EventState.Done);
                Sys.EventSignal(ctx, rig.DeviceHandles[0]);
            }
            return VmmRig.Continue(ctx, why, ref p);
        });
        Assert.True(answered);
        Assert.Equal(0x42UL, rig.Guest.Of(1).Last().Rax & 0xFF);
        var c = rig.K.Cost;
        long one = c.ExitCycles + c.SyscallCycles + c.CrossCpuWakeCycles;
        Assert.Equal([one, one], rig.K.Stats.ModelledSamples(ExitKind.PortIn).ToArray());
    }
}

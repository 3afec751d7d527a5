using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Kernel.Core;
using Copra.Kernel.Exit;
using Copra.Kernel.Machine;
using Copra.User;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// What <c>copra trace</c> tells of the kernel's side of an exit (kernel/Exit/Kernel.Exit.cs FollowExit, Kernel.Devices.cs
/// NarrateDelivery and NarrateAnswer): the exit line, the delivery into the event area (who is woken), and the model's
/// answer (where it completes), word for word. Through <see cref="VmmRig"/> with a tracer that follows every exit.
/// </summary>
public sealed class DeviceNarrationRuleTests
{
    sealed class Every : IExitTracer
    {
        public readonly List<string> Lines = [];
        public bool Follow(int vcpu, long ordinal) => true;
        public bool Narrates => true;
        public void Step(int vcpu, string text) => Lines.Add($"{vcpu}| {text}");
        public void Mark(Cpu cpu, long clock, TraceKind kind, int vcpu, long a) { }
    }

    [Fact]
    public void A_device_write_and_read_are_told_from_the_exit_through_the_delivery_to_the_answer()
    {
        using var rig = new VmmRig();
        var t = new Every();
        rig.K.Tracer = t;
        rig.Device(EventKind.Ioio, 0x510, 4, VmmRig.Answers(0x1234_5678_9ABC));
        ulong outb = rig.Code(a => a.@out(dx, al)), inb = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(0,
            new GuestExit(ExitReason.Io, [(0, 0xAB), (2, 0x511)], Rip: outb, Port: 0x511, Size: 1, Write: true, Rflags: 2),
            new GuestExit(ExitReason.Io, [(0, 0), (2, 0x512)], Rip: inb, Port: 0x512, Size: 1, Rflags: 2));
        rig.Run();
        var l = t.Lines;
        Assert.Equal($"0| exit #1 on cpu 0: vcpu 0 Io gpa=0x0 port=0x511 size=1 flags=Write; RIP=0x{outb:x} (snp exit+entry 1750 modelled cycles)", l[0]);
        // The model's thread already waits when the first access comes; it is woken on the vCPU's CPU.
        Assert.Contains(l, s => s.StartsWith("0| deliver: ioio 0x510+4 (vm 1) event area seq 1: write 0x511 size 1 data 0xab; waking thread ", StringComparison.Ordinal)
            && s.EndsWith(" on cpu 0", StringComparison.Ordinal));
        Assert.Contains("0| the device model answered (state Done, data 0xab) and called WAIT_FOR_EVENT: completing on cpu 0", l);   // a write's area keeps its data
        Assert.Contains($"0| exit #2 on cpu 0: vcpu 0 Io gpa=0x0 port=0x512 size=1 flags=None; RIP=0x{inb:x} (snp exit+entry 1750 modelled cycles)", l);
        Assert.Contains(l, s => s.StartsWith("0| deliver: ioio 0x510+4 (vm 1) event area seq 2: read 0x512 size 1; ", StringComparison.Ordinal));
        Assert.Contains("0| the device model answered (state Done, data 0x123456789abc) and called WAIT_FOR_EVENT: completing on cpu 0", l);
    }

    [Fact]
    public void An_answer_taken_on_another_cpu_says_it_was_posted_to_the_vcpus_inbox()
    {
        // vCPU 0 (CPU 0) and vCPU 1 (CPU 1) read the silent model's ports; vCPU 2's VMM thread (CPU 0) answers what the
        // area holds, twice, and signals: vCPU 1's answer crosses to CPU 1.
        using var rig = new VmmRig(vcpus: 3, cpus: 2);
        var t = new Every();
        rig.K.Tracer = t;
        rig.Device(EventKind.Ioio, 0x510, 4, VmmRig.Silent);
        ulong in0 = rig.Code(a => a.@in(al, dx)), in1 = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(0, new GuestExit(ExitReason.Io, [(2, 0x510)], Rip: in0, Port: 0x510, Size: 1, Rflags: 2));
        rig.Guest.Add(1, new GuestExit(ExitReason.Io, [(2, 0x511)], Rip: in1, Port: 0x511, Size: 1, Rflags: 2));
        for (int i = 0; i < 20; i++) rig.Guest.Add(2, new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: 2));
        var vcpus = rig.K.Vms[0].Vcpus;
        int answered = 0;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            ref var a = ref Sys.Ref<EventArea>(ctx, rig.DeviceAreas[0]);
            if (answered < 2 && a.State == EventState.Pending
                && (answered > 0 || vcpus[0].Run == VcpuRun.WaitingDevice && vcpus[1].Run == VcpuRun.WaitingDevice))
            {
                answered++;
                a.Data = 0x77;
                a.PublishState(EventState.Done);
                Sys.EventSignal(ctx, rig.DeviceHandles[0]);
            }
            return VmmRig.Continue(ctx, why, ref p);
        });
        Assert.Equal(2, answered);
        Assert.Contains("1| the device model answered (state Done, data 0x77) and called WAIT_FOR_EVENT: completing on cpu 1 (posted from cpu 0 to its inbox)", t.Lines);
        // vCPU 0's access, queued behind vCPU 1's, is completed by the model's own next wait on CPU 1 (the deterministic
        // driver's order): posted the other way.
        Assert.Contains("0| the device model answered (state Done, data 0x77) and called WAIT_FOR_EVENT: completing on cpu 0 (posted from cpu 1 to its inbox)", t.Lines);
    }
    [Fact]
    public void A_delivery_with_no_model_thread_waiting_says_so()
    {
        // The model answers its first access itself (Done, then EVENT_SIGNAL) and its thread ends: the second access is
        // delivered into the area with nobody waiting on the object.
        using var rig = new VmmRig();
        var t = new Every();
        rig.K.Tracer = t;
        rig.Device(EventKind.Ioio, 0x510, 4, (IUserContext c, uint h, ref EventArea a) =>
        {
            a.Data = 0x12;
            a.PublishState(EventState.Done);
            Sys.EventSignal(c, h);
            return false;
        });
        ulong in1 = rig.Code(a => a.@in(al, dx)), in2 = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(0,
            new GuestExit(ExitReason.Io, [(2, 0x510)], Rip: in1, Port: 0x510, Size: 1, Rflags: 2),
            new GuestExit(ExitReason.Io, [(2, 0x511)], Rip: in2, Port: 0x511, Size: 1, Rflags: 2));
        rig.Run();
        Assert.Contains("0| deliver: ioio 0x510+4 (vm 1) event area seq 2: read 0x511 size 1; no thread waiting yet (it will find it)", t.Lines);
    }
    sealed class FollowsSilently : IExitTracer
    {
        public readonly List<string> Lines = [];
        public bool Follow(int vcpu, long ordinal) => true;
        public bool Narrates => false;
        public void Step(int vcpu, string text) => Lines.Add(text);
        public void Mark(Cpu cpu, long clock, TraceKind kind, int vcpu, long a) { }
    }

    [Fact]
    public void A_tracer_that_follows_without_narrating_is_told_nothing()
    {
        using var rig = new VmmRig();
        var t = new FollowsSilently();
        rig.K.Tracer = t;
        rig.Device(EventKind.Ioio, 0x510, 4, VmmRig.Answers(0x12));
        rig.Guest.Add(0, new GuestExit(ExitReason.Io, [(2, 0x510)], Rip: rig.Code(a => a.@in(al, dx)), Port: 0x510, Size: 1, Rflags: 2));
        rig.Run();
        Assert.Equal(0x12UL, rig.Guest.Entries[1].Rax & 0xFF);
        Assert.Empty(t.Lines);
    }
}

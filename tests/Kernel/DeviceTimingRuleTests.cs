using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.Timing;
using Copra.User;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// The measured part of an exit that waits on a device more than once (kernel/Exit/Kernel.Devices.cs ContinueAfterDevice;
/// hot/Exit/ExitPipeline.cs EndSegment): each kernel segment ends when the exit goes back to waiting, so the time the
/// model takes to answer the next side is never measured as the kernel's, also when that answer comes through the
/// vCPU's inbox from another CPU. Through <see cref="VmmRig"/>.
/// </summary>
public sealed class DeviceTimingRuleTests
{
    const ulong NoIf = 0x2;
    const ulong At = VmmRig.Dev + 0x40;

    [Fact]
    public void A_models_time_on_the_write_side_of_a_read_modify_write_is_not_measured_as_the_kernels()
    {
        // vCPU 1 (CPU 1) runs ADD [dev], EAX. The model answers the read at once and holds the write; vCPU 0's VMM thread
        // (CPU 0) answers the write half a second later (posted to CPU 1's inbox).
        using var rig = new VmmRig(vcpus: 2, cpus: 2);
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, (IUserContext _, uint _, ref EventArea a) =>
        {
            if (a.Direction == AccessDirection.Write) return true;   // hold it
            a.Data = 0x100;
            a.PublishState(EventState.Done);
            return true;
        });
        ulong add = rig.Code(a => a.add(__dword_ptr[rbx], eax));
        rig.Guest.Add(1, new GuestExit(ExitReason.Mmio, [(3, At), (0, 0x23)], Rip: add, Gpa: At, Size: 4, Rflags: NoIf));
        for (int i = 0; i < 40; i++) rig.Guest.Add(0, new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf));
        const int SleepMs = 500;
        bool answered = false;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            ref var a = ref Sys.Ref<EventArea>(ctx, rig.DeviceAreas[0]);
            if (!answered && a.State == EventState.Pending && a.Direction == AccessDirection.Write)
            {
                answered = true;
                Thread.Sleep(SleepMs);
                a.PublishState(EventState.Done);
                Sys.EventSignal(ctx, rig.DeviceHandles[0]);
            }
            return VmmRig.Continue(ctx, why, ref p);
        });
        Assert.True(answered);
        Assert.Equal(0x123UL, rig.Deliveries[^1].Area.Data);
        Assert.Equal(add + 2, rig.Guest.Of(1).Last().Rip);
        long slowest = Enum.GetValues<ExitKind>().SelectMany(k => rig.K.Stats.MeasuredSamples(k).ToArray()).Max();
        Assert.True(slowest < (long)(Tsc.Hz * SleepMs / 2 / 1000), $"an exit measured {Tsc.ToNanoseconds(slowest) / 1e6:F1} ms: the model's wait was counted");
    }
    [Fact]
    public void The_kernels_work_after_an_answer_posted_from_another_cpu_is_measured_as_the_exits()
    {
        // vCPU 1 (CPU 1) reads the silent model's port; vCPU 0's VMM thread (CPU 0) answers and signals, so the answer is
        // posted to CPU 1's inbox. What CPU 1 does with it (the read's write-back, the instruction's end) is kernel work of
        // the exit: a tracer told of the read's value there holds that segment for 200 ms, which the exit's measured
        // time must then include. A lower bound: the segment is at least as long as the hold, whatever the host's load.
        using var rig = new VmmRig(vcpus: 2, cpus: 2);
        rig.Device(EventKind.Ioio, 0x510, 4, VmmRig.Silent);
        ulong inb = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(1, new GuestExit(ExitReason.Io, [(2, 0x510)], Rip: inb, Port: 0x510, Size: 1, Rflags: NoIf));
        for (int i = 0; i < 20; i++) rig.Guest.Add(0, new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf));
        long hold = (long)(Tsc.Hz / 5);
        bool posted = false, held = false;
        rig.K.Tracer = new Told((cpu, v, text) =>
        {
            if (v != 1) return;
            if (text.Contains("(posted from cpu 0 to its inbox)", StringComparison.Ordinal)) { posted = true; return; }
            if (!posted || held) return;
            held = true;
            long end = (long)Tsc.Read() + hold;
            while ((long)Tsc.Read() < end) Thread.SpinWait(100);
        });
        bool answered = false;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            ref var a = ref Sys.Ref<EventArea>(ctx, rig.DeviceAreas[0]);
            if (!answered && a.State == EventState.Pending)
            {
                answered = true;
                a.Data = 0x77;
                a.PublishState(EventState.Done);
                Sys.EventSignal(ctx, rig.DeviceHandles[0]);
            }
            return VmmRig.Continue(ctx, why, ref p);
        });
        Assert.True(posted && held);
        Assert.Equal(0x77UL, rig.Guest.Of(1).Last().Rax & 0xFF);
        long measured = Assert.Single(rig.K.Stats.MeasuredSamples(ExitKind.PortIn).ToArray());
        Assert.True(measured >= hold, $"the exit measured {Tsc.ToNanoseconds(measured) / 1e6:F1} ms: the work after the posted answer was left out");
    }

    [Fact]
    public void A_completions_kernel_work_is_measured_from_its_claim_on()
    {
        // One CPU: the model answers the vCPU's read where it runs, so its wait completes the access there. The completion
        // is the exit's kernel work from the moment it claims the answered access: a tracer told of the answer (after the
        // claim, before the vCPU goes on) holds it 200 ms, which the exit's measured time must then include. A lower bound.
        using var rig = new VmmRig();
        rig.Device(EventKind.Ioio, 0x510, 4, VmmRig.Answers(0x77));
        ulong inb = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(0, new GuestExit(ExitReason.Io, [(2, 0x510)], Rip: inb, Port: 0x510, Size: 1, Rflags: NoIf));
        long hold = (long)(Tsc.Hz / 5);
        bool held = false;
        rig.K.Tracer = new Told((_, v, text) =>
        {
            if (held || !text.StartsWith("the device model answered", StringComparison.Ordinal)) return;
            held = true;
            long end = (long)Tsc.Read() + hold;
            while ((long)Tsc.Read() < end) Thread.SpinWait(100);
        });
        rig.Run();
        Assert.True(held);
        Assert.Equal(0x77UL, rig.Guest.Entries[^1].Rax & 0xFF);
        long measured = Assert.Single(rig.K.Stats.MeasuredSamples(ExitKind.PortIn).ToArray());
        Assert.True(measured >= hold, $"the exit measured {Tsc.ToNanoseconds(measured) / 1e6:F1} ms: the completion's work before the vCPU went on was left out");
    }

    sealed class Told(Action<int, int, string> step) : Copra.Kernel.Exit.IExitTracer
    {
        public bool Follow(int vcpu, long ordinal) => true;
        public bool Narrates => true;
        public void Step(int vcpu, string text) => step(-1, vcpu, text);
        public void Mark(Copra.Kernel.Core.Cpu cpu, long clock, Copra.Kernel.Core.TraceKind kind, int vcpu, long a) { }
    }
}

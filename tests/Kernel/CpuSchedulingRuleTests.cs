using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Kernel.Core;
using Copra.User;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// One simulated CPU (kernel/Core/Cpu.cs): a step with nothing to do, the inbox's bound, the order of its run queue and
/// of its runnable vCPUs past their first capacity (the owner-only FIFOs grow), and its counters.
/// </summary>
public sealed class CpuSchedulingRuleTests
{
    [Fact]
    public void A_step_with_nothing_to_do_is_idle_and_says_so()
    {
        using var k = KernelHarness.Boot(cpus: 1);
        var cpu = k.Cpus[0];
        Assert.False(cpu.HasWork);
        Assert.False(cpu.Step());
        Assert.Equal((1L, 1L, 0L, 0L), (cpu.Steps, cpu.IdleSteps, cpu.ThreadSlices, cpu.GuestRuns));
        Assert.False(cpu.Step());
        Assert.Equal((2L, 2L), (cpu.Steps, cpu.IdleSteps));
    }

    [Fact]
    public void The_inbox_holds_sixteen_thousand_messages_and_refuses_the_next_with_a_clear_error()
    {
        using var k = KernelHarness.Boot(cpus: 1);
        var cpu = k.Cpus[0];
        const int capacity = 1 << 14;
        for (int i = 0; i < capacity; i++) cpu.Post(new CpuMessage(CpuMessageKind.RunVcpu, 0));
        Assert.Equal(capacity, cpu.InboxDepth);
        Assert.True(cpu.HasWork);
        var e = Assert.Throws<InvalidOperationException>(() => cpu.Post(new CpuMessage(CpuMessageKind.RunVcpu, 0)));
        Assert.Equal("cpu 0 inbox full: a wake-up was queued twice", e.Message);
    }

    [Fact]
    public void Threads_run_in_the_order_they_were_made_ready_past_the_run_queues_first_capacity()
    {
        using var k = KernelHarness.Boot(cpus: 1);
        var order = new List<int>();
        KernelHarness.Run(k, ctx =>
        {
            for (int i = 0; i < 150; i++)
                Sys.ThreadCreate(ctx, (c, arg) => { order.Add((int)arg); return Task.CompletedTask; }, (ulong)i);
        });
        Assert.Equal(Enumerable.Range(0, 150), order);
        Assert.True(k.Cpus[0].ThreadSlices >= 151, $"{k.Cpus[0].ThreadSlices} slices");
    }

    [Fact]
    public void Vcpus_enter_in_the_order_they_became_runnable_past_the_vcpu_queues_first_capacity_and_each_entry_is_a_guest_run()
    {
        // 40 vCPUs on one CPU: their threads all wait (threads are preferred to guests) before any is entered.
        using var rig = new VmmRig(vcpus: 40, cpus: 1);
        for (int v = 0; v < 40; v++) rig.Guest.Add(v, new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: 2));
        rig.Run();
        var first = rig.Guest.Entries.Take(40).Select(e => e.Vcpu);
        Assert.Equal(Enumerable.Range(0, 40), first);
        Assert.Equal(80, rig.Guest.Entries.Count);
        Assert.Equal(rig.Guest.Entries.Count, rig.K.Cpus.Sum(c => c.GuestRuns));
    }
    [Fact]
    public void A_vcpu_a_models_answer_ended_does_not_enter_ahead_of_one_already_queued_on_its_cpu()
    {
        // One CPU: vCPU 0 reads a port the model answers (the common completion hands vCPU 0 back unqueued), vCPU 1 writes
        // the POST port (forwarded: it is queued again after every exit). When the model's WAIT_FOR_EVENT ends vCPU 0's
        // exit, vCPU 1 is already in the CPU's queue: it is entered first, as the queue's order says, and vCPU 0 after it.
        // No exit timed: a timed answer takes the general completion, which queues its vCPU itself.
        using var rig = new VmmRig(vcpus: 2, cpus: 1, timeEvery: ExitStats.MaxTimeEvery);
        rig.Device(EventKind.Ioio, 0x510, 4, VmmRig.Answers(0x42));
        ulong inp = rig.Code(a => a.@in(Iced.Intel.AssemblerRegisters.al, Iced.Intel.AssemblerRegisters.dx));
        ulong outp = rig.Code(a => a.@out(0x80, Iced.Intel.AssemblerRegisters.al));
        for (int i = 0; i < 4; i++)
        {
            rig.Guest.Add(0, new GuestExit(ExitReason.Io, [(2, 0x510)], Rip: inp, Port: 0x510, Size: 1, Rflags: 2));
            rig.Guest.Add(1, new GuestExit(ExitReason.Io, [(0, (ulong)i)], Rip: outp, Port: 0x80, Size: 1, Write: true, Rflags: 2));
        }
        rig.Run();
        Assert.Equal([0, 1, 0, 1, 0, 1, 0, 1, 0, 1], rig.Guest.Entries.Take(10).Select(e => e.Vcpu));
        Assert.Equal(rig.Guest.Entries.Count, rig.K.Cpus.Sum(c => c.GuestRuns));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_polled_ring_on_the_cpu_keeps_a_models_answer_from_entering_its_vcpu_directly(bool poller)
    {
        // One CPU, no exit timed: the model answers four port reads. Entered from the model's WAIT_FOR_EVENT, a vCPU's
        // entries share the scheduler step of the model's slice; with a polled ring open on the CPU (its pass is owed
        // every step) each entry is a step of its own.
        using var rig = new VmmRig(timeEvery: ExitStats.MaxTimeEvery);
        rig.Device(EventKind.Ioio, 0x510, 4, VmmRig.Answers(0x42));
        ulong inp = rig.Code(a => a.@in(Iced.Intel.AssemblerRegisters.al, Iced.Intel.AssemblerRegisters.dx));
        for (int i = 0; i < 4; i++) rig.Guest.Add(0, new GuestExit(ExitReason.Io, [(2, 0x510)], Rip: inp, Port: 0x510, Size: 1, Rflags: 2));
        var steps = new List<long>();
        rig.Guest.OnEntry = _ => steps.Add(rig.K.Cpus[0].Steps);
        rig.Run(after: (ctx, _) =>
        {
            if (poller) PolledRing.Create(ctx, 4, cpu: 0);   // left open and idle
            return Task.CompletedTask;
        });
        Assert.Equal(5, steps.Count);
        if (poller) Assert.Equal(steps.Count, steps.Distinct().Count());
        else Assert.True(steps.Distinct().Count() < steps.Count, "no entry was made from the model's wait");
    }

    [Theory]
    [InlineData(1)]                        // every exit timed: the general completion queues the vCPU, the wait takes it
    [InlineData(ExitStats.MaxTimeEvery)]   // none timed: the common completion hands it back and the wait enters it
    public void A_vcpu_entered_directly_from_a_models_wait_is_a_guest_run_too(int timeEvery)
    {
        // One CPU: the model answers from WAIT_FOR_EVENT with nothing else ready, so the vCPU is entered from that call
        // (the IPC fast path), not by a scheduler step.
        using var rig = new VmmRig(timeEvery: timeEvery);
        rig.Device(EventKind.Ioio, 0x510, 4, VmmRig.Answers(0x42));
        for (int i = 0; i < 3; i++)
            rig.Guest.Add(0, new GuestExit(ExitReason.Io, [(2, 0x510)], Rip: rig.Code(a => a.@in(Iced.Intel.AssemblerRegisters.al, Iced.Intel.AssemblerRegisters.dx)), Port: 0x510, Size: 1, Rflags: 2));
        rig.Run();
        Assert.Equal(4, rig.Guest.Entries.Count);
        Assert.Equal(rig.Guest.Entries.Count, rig.K.Cpus.Sum(c => c.GuestRuns));
    }

    [Fact]
    public void The_kept_traces_queue_depth_counts_the_threads_and_vcpus_waiting_to_run()
    {
        using var rig = new VmmRig(vcpus: 2, cpus: 1, keepTrace: true);
        for (int v = 0; v < 2; v++) rig.Guest.Add(v, new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: 2));
        rig.Run();
        var depths = rig.K.Trace.Records.Where(r => r.Kind == TraceKind.QueueDepth).Select(r => r.B).ToArray();
        Assert.NotEmpty(depths);
        Assert.All(depths, d => Assert.InRange(d, 0, 8));
        Assert.Contains(depths, d => d > 0);
    }
}

using Copra.Abi;
using Copra.Kernel.Backends;
using Copra.Kernel.Core;
using Copra.Kernel.Machine;
using Copra.Kernel.Run;
using Copra.User;
using Xunit;
using KernelT = Copra.Kernel.Core.Kernel;

namespace Copra.Tests.Kernel;

/// <summary>
/// Event objects without a lock (issue 13): the slot word's rare cases. Contending vCPUs on two host threads (the
/// queue, a locked read-modify-write holding the object, answers from the other CPU), a model that dies with accesses
/// in flight and queued, and a resolved view of an event area that outlives its mapping. After each, every event
/// object must be unclaimed and its word must say what its fields say.
/// </summary>
public sealed class EventObjectOwnershipTests
{
    /// <summary>The slot word agrees with the fields, and nobody holds the claim.</summary>
    static void AssertSettled(VmObject vm)
    {
        foreach (var e in vm.Owners)
        {
            if (e is null) continue;
            int s = Volatile.Read(ref e.Slot);
            Assert.True((s & EventObject.SlotBusy) == 0, $"{e.Describe()}: claimed after the run (0x{s:x})");
            Assert.Equal(e.Inflight + 1, s & EventObject.SlotInflight);
            Assert.Equal(e.Waiter is not null, (s & EventObject.SlotParked) != 0);
            Assert.Equal(e.Dead || e.HeldBy >= 0 || e.Queued > 0, (s & EventObject.SlotRare) != 0);
            Assert.Equal(-1, e.HeldBy);
            Assert.Equal(0, e.Queued);
            if (!e.Dead) Assert.Equal(e.Delivered, e.Completed + (e.Inflight >= 0 ? 1 : 0));   // a live object lost nothing
        }
    }

    [Theory]
    [InlineData(2, 4)]
    [InlineData(2, 2)]
    public void Contending_vCPUs_on_two_host_threads_leave_every_event_object_settled(int cpus, int vcpus)
    {
        // Every emulated family, LOCK'd compare-and-write and XCHG on the shared test device included, from several
        // vCPUs at once: accesses queue behind each other and behind a held locked read, and answers cross CPUs.
        var sc = Scenario.Default() with
        {
            Cpus = cpus, Driver = "parallel",
            Vms = [Scenario.Default().Vms[0] with { Vcpus = vcpus }],
            Workload = new WorkloadSpec { Iterations = 30, EmulatedFamilies = true },
        };
        using var sys = new CopraSystem(sc);
        var r = sys.Run(parallelLimit: TimeSpan.FromMinutes(2));
        var k = sys.Kernel;
        Assert.True(r.Quiescent, $"not quiescent: taken {k.Stats.Taken}, in flight {k.Stats.InFlight}");
        Assert.True(k.InternalErrors == 0, $"internal error: {k.LastInternalError}");
        Assert.Equal(0, k.Stats.InFlight);
        Assert.True(k.Stats.DeviceRoundTrips > 0);
        Assert.True(sys.Replay!.Desyncs == 0, string.Join("\n", sys.Replay.Problems));
        foreach (var vm in k.Vms) AssertSettled(vm);
        foreach (var p in k.Processes)
            Assert.False(p.ExitReason?.StartsWith("crash", StringComparison.Ordinal) ?? false, $"{p}: {p.ExitReason}");
    }

    [Theory]
    [InlineData("parallel")]
    [InlineData("deterministic")]
    public void A_model_that_dies_mid_access_answers_all_ones_and_leaves_its_object_dead_and_settled(string driver)
    {
        // The test device crashes with an access in flight while the VM's other vCPU may be queued behind it (two
        // vCPUs on two CPUs): every access it held is answered all ones, as a bus with no device, from whichever CPU
        // the process died on, and the object stays dead.
        using var sys = new CopraSystem(TwoVcpus(driver), faults: new FaultSpec { DeviceCrashAt = 25 });
        var r = sys.Run(parallelLimit: TimeSpan.FromMinutes(2));
        var k = sys.Kernel;
        Assert.True(r.Quiescent);
        Assert.True(k.InternalErrors == 0, $"internal error: {k.LastInternalError}");
        Assert.True(k.Stats.DevicesLost >= 1, "the access in flight was not answered as lost");
        Assert.Equal(0, k.Stats.InFlight);
        Assert.DoesNotContain(k.Vms[0].Owners, e => e is { Dead: true });   // unregistered when its process died
        foreach (var vm in k.Vms) AssertSettled(vm);
    }

    [Theory]
    [InlineData("parallel")]
    [InlineData("deterministic")]
    public void VM_CONTROL_Stop_abandons_an_access_a_silent_model_holds_and_leaves_the_object_settled(string driver)
    {
        using var sys = new CopraSystem(TwoVcpus(driver), faults: new FaultSpec { DeviceSilentFrom = 30 });
        var r = sys.Run(parallelLimit: TimeSpan.FromMinutes(2));
        var k = sys.Kernel;
        Assert.True(r.Quiescent);
        Assert.True(k.InternalErrors == 0, $"internal error: {k.LastInternalError}");
        Assert.True(k.Vms[0].Stopped);
        Assert.True(k.Stats.Aborted >= 1);
        Assert.Equal(0, k.Stats.InFlight);
        foreach (var vm in k.Vms)
            foreach (var e in vm.Owners)
                if (e is not null) Assert.True((Volatile.Read(ref e.Slot) & EventObject.SlotBusy) == 0, $"{e.Describe()} left claimed");
    }

    static Scenario TwoVcpus(string driver) => Scenario.Default() with
    {
        Cpus = 2, Driver = driver,
        Vms = [Scenario.Default().Vms[0] with { Vcpus = 2 }],
        Workload = new WorkloadSpec { Iterations = 40 },
    };

    [Fact]
    public void A_view_of_an_event_area_reads_the_mapping_directly_and_faults_once_it_is_unmapped()
    {
        using var k = OneCpuOneVm();
        ulong seenThroughMemory = 0, sequenceAfterRemap = 1;
        bool faulted = false;
        k.Install("/t", () => new Prog(ctx =>
        {
            uint vm = Sys.VmOpen(ctx, 1);
            uint ev = Sys.MmioEvent(ctx, vm, 0xFEB0_0000, 0x1000);
            ulong va = Sys.Mmap(ctx, ev, 0, Page.Size);
            var view = ctx.View<EventArea>(va);
            view.Value.Data = 0x1234_5678_9ABC;   // through the kept pointer
            seenThroughMemory = BitConverter.ToUInt64(ctx.Memory(va + 32, 8));
            Sys.Munmap(ctx, va, Page.Size);
            try { _ = view.Value.Sequence; } catch (UserFaultException) { faulted = true; }
            // Mapped again (elsewhere): a view of the new address sees the same page, a fresh area.
            var again = ctx.View<EventArea>(Sys.Mmap(ctx, ev, 0, Page.Size));
            sequenceAfterRemap = again.Value.Sequence;
            return Task.CompletedTask;
        }));
        k.Spawn("/t", null, 0);
        Assert.True(k.RunDeterministic(1_000_000).Quiescent);
        Assert.Equal(0, k.InternalErrors);
        Assert.Equal(0x1234_5678_9ABCUL, seenThroughMemory);
        Assert.True(faulted, "a view of an unmapped area did not fault");
        Assert.Equal(0UL, sequenceAfterRemap);
    }

    [Fact]
    public void A_view_is_writable_so_a_view_of_a_read_only_mapping_faults_and_a_dead_threads_view_throws_it_out()
    {
        using var k = OneCpuOneVm();
        bool readOnlyFaulted = false, killed = false, readBefore = false;
        k.Install("/t", () => new Prog(ctx =>
        {
            uint vm = Sys.VmOpen(ctx, 1);
            uint ev = Sys.MmioEvent(ctx, vm, 0xFEB0_0000, 0x1000);
            // A view hands out a writable reference: a read-only mapping of the area is no place for one.
            var ro = ctx.View<EventArea>(Sys.Mmap(ctx, ev, 0, Page.Size, write: false));
            try { _ = ro.Value.Sequence; } catch (UserFaultException) { readOnlyFaulted = true; }
            // A view resolved while the thread lived (its pointer kept, the layout unchanged) is not read once the thread
            // is dead, though its process lives on in another thread (parked on the object for good).
            var view = ctx.View<EventArea>(Sys.Mmap(ctx, ev, 0, Page.Size));
            _ = view.Value.Sequence;
            readBefore = true;
            Sys.ThreadCreate(ctx, async (c, _) => await Sys.WaitForEvent(c, ev), 0);
            _ = Sys.ThreadExit(ctx);   // not awaited: this thread goes on running, dead
            try { _ = view.Value.Sequence; } catch (ThreadKilledException) { killed = true; }
            return Task.CompletedTask;
        }));
        k.Spawn("/t", null, 0);
        Assert.True(k.RunDeterministic(1_000_000).Quiescent);
        Assert.True(readOnlyFaulted, "a view of a read-only mapping did not fault");
        Assert.True(readBefore);
        Assert.True(killed, "a dead thread read through its kept view");
    }

    [Fact]
    public void WAIT_FOR_EVENT_does_not_reuse_its_last_lookup_once_that_handle_is_closed()
    {
        using var k = OneCpuOneVm();
        long first = 0, afterClose = 0, other = 0;
        k.Install("/t", () => new Prog(ctx =>
        {
            uint vm = Sys.VmOpen(ctx, 1);
            uint irq = Sys.IrqEvent(ctx, vm, 0x40);
            first = Sys.WaitForEvent(ctx, irq).Result;        // an IRQ object is no event source: the lookup is kept
            Sys.Close(ctx, irq);
            afterClose = Sys.WaitForEvent(ctx, irq).Result;   // the kept lookup must not answer for a closed handle
            other = Sys.WaitForEvent(ctx, 0x7777).Result;     // nor for another value
            return Task.CompletedTask;
        }));
        k.Spawn("/t", null, 0);
        Assert.True(k.RunDeterministic(1_000_000).Quiescent);
        Assert.Equal(0, k.InternalErrors);
        Assert.Equal(Errno.ENOTSUPP, first);
        Assert.Equal(Errno.ENOTFOUND, afterClose);
        Assert.Equal(Errno.ENOTFOUND, other);
    }

    /// <summary>A kernel with one CPU and one VM of one vCPU, for a program that opens the VM and works its objects.</summary>
    static KernelT OneCpuOneVm() => new(new KernelConfig
    {
        Cpus = 1,
        Vms = [new VmSpec(1, 8UL << 20, 8UL << 20)],
        MemoryBytes = 18UL << 20,
    });

    sealed class Prog(Func<IUserContext, Task> body) : IUserProgram
    {
        public Task Main(IUserContext ctx) => body(ctx);
    }
}

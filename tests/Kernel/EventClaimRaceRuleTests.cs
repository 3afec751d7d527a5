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
/// An event object claimed by another party at the moment the kernel acts on it (kernel/Exit/Kernel.Devices.cs Request,
/// WaitEvent, CompleteIfDone, DeviceLost, StopVm, ThreadGone; kernel/Machine/Objects.cs EventObject's slot word): the
/// kernel changes the object only under its own claim, waits while another party holds it, and decides again from what
/// that party left (docs/design.md, "Ownership"). The deterministic driver runs one CPU's step at a time, so the test
/// plays the other CPU: it takes the claim (<see cref="EventObject.Seize"/>, uncontended) just before the kernel acts,
/// and <see cref="EventObject.Contended"/>, called when the kernel's own Seize finds the claim held, is where the other
/// CPU's work happens (its stores, or a close or stop it runs after publishing). One thread; handshakes, no timing.
/// Through <see cref="VmmRig"/>.
/// </summary>
public sealed class EventClaimRaceRuleTests
{
    const ushort Port = 0x510;
    const ulong NoIf = 0x2;

    static GuestExit In(ulong rip) => new(ExitReason.Io, [(2, Port)], Rip: rip, Port: Port, Size: 1, Rflags: NoIf);
    static GuestExit Cpuid => new(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf);

    /// <summary>
    /// The other CPU: holds <paramref name="e"/>'s claim from <see cref="Claim"/> until the kernel's Seize finds it held,
    /// then notes what the object looked like (<paramref name="look"/>), publishes, and runs <paramref name="after"/> (a
    /// close or stop that takes the claim itself). In a run with no other party, a Seize that finds the claim held a
    /// second time found one the kernel left behind (it would spin for ever): that throws instead.
    /// </summary>
    sealed class OtherCpu(EventObject e, Func<string>? look = null, Action? after = null)
    {
        public int Contended;
        public string? Seen;
        bool _held;

        public void Claim()
        {
            Assert.Equal(0, e.Slot & EventObject.SlotBusy);
            e.Seize();
            _held = true;
            e.Contended = () =>
            {
                if (!_held) throw new InvalidOperationException("an event object's claim was left held: Seize would spin for ever");
                Contended++;
                Seen = look?.Invoke();
                _held = false;
                e.Publish();
                after?.Invoke();
            };
        }

        /// <summary>Ends a claim the kernel never contended (so the test can finish and report it).</summary>
        public void ReleaseIfHeld()
        {
            if (!_held) return;
            _held = false;
            e.Publish();
        }
    }

    [Fact]
    public void A_delivery_that_finds_the_object_claimed_waits_and_answers_as_lost_if_the_device_was_closed_meanwhile()
    {
        // Request looked up the owner, then found the object claimed: the other CPU is closing the device (UnregisterEvent,
        // DeviceLost). After the claim the object is dead, so the access is answered all ones, never delivered.
        using var rig = new VmmRig();
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Answers(0x5A));
        ulong inb = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(0, In(inb));
        OtherCpu? other = null;
        rig.Guest.OnEntry = v =>
        {
            var e = rig.DeviceObjects[0];
            if (other is not null || e.Waiter is null) return;   // the model parked first, so only the delivery can contend
            other = new OtherCpu(e, () => $"dead {e.Dead}, delivered {e.Delivered}", () => e.OnClosed!(e));
            other.Claim();
        };
        rig.Run();
        var e = rig.DeviceObjects[0];
        other?.ReleaseIfHeld();
        Assert.NotNull(other);
        Assert.Equal(1, other.Contended);
        Assert.Equal("dead False, delivered 0", other.Seen);
        Assert.Equal(0, e.Slot & EventObject.SlotBusy);   // the delivery published what it claimed
        Assert.True(e.Dead);
        Assert.Equal((0L, -1), (e.Delivered, e.Inflight));   // never put into the dead object's area
        Assert.Empty(rig.Deliveries);
        Assert.Equal(1, rig.K.Stats.DevicesLost);
        Assert.Equal(0xFFUL, rig.Guest.Entries[^1].Rax & 0xFF);   // answered as a bus with no device
        Assert.Equal(inb + 1, rig.Guest.Entries[^1].Rip);
        Assert.Equal(1u, rig.K.Vms[0].Vcpus[0].Page.LostCount);
    }

    [Fact]
    public void A_delivery_whose_owner_is_gone_by_the_time_it_looks_it_up_is_an_access_to_no_device()
    {
        // UnregisterEvent removes the range, then the owner: an exit that found the range before the first store and looks
        // the owner up after the second sees no object. The test makes the second store alone (the range stays), so the
        // lookup finds what such an exit finds: the access is forwarded as one nobody registered (here: all ones).
        using var rig = new VmmRig();
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Answers(0x5A));
        ulong inb = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(0, In(inb));
        var vm = rig.K.Vms[0];
        EventObject?[]? kept = null;
        rig.Guest.OnEntry = v =>
        {
            if (kept is not null || rig.DeviceObjects.Count == 0) return;
            kept = vm.OwnerTable;
            vm.OwnerTable = new EventObject?[kept.Length];
        };
        rig.Run();
        Assert.NotNull(kept);
        vm.OwnerTable = kept;
        var e = rig.DeviceObjects[0];
        Assert.Equal((0L, -1, false), (e.Delivered, e.Inflight, e.Dead));
        Assert.Empty(rig.Deliveries);
        Assert.Equal((1L, 0L), (rig.K.Stats.Forwarded, rig.K.Stats.DevicesLost));
        Assert.Equal(2, rig.Guest.Entries.Count);
        Assert.Equal(0xFFUL, rig.Guest.Entries[^1].Rax & 0xFF);   // the forwarded read: a bus with no device
        Assert.Equal(inb + 1, rig.Guest.Entries[^1].Rip);
    }

    sealed class OnDelivery(Action<int, string> step) : IExitTracer
    {
        public bool Follow(int vcpu, long ordinal) => true;
        public bool Narrates => true;
        public void Step(int vcpu, string text) => step(vcpu, text);
        public void Mark(Cpu cpu, long clock, TraceKind kind, int vcpu, long a) { }
    }

    [Fact]
    public void A_model_wait_that_finds_the_object_claimed_waits_for_the_claim_then_takes_the_access_in_the_area()
    {
        // The model answers the first read and waits again; its answer enters the vCPU from that call (the direct switch),
        // whose second read lands in the area before the model's wait looks at it. Just after that delivery publishes,
        // another party claims the object (here it changes nothing, as a completion that finds nothing Done). The wait
        // must not take the access while the claim is held: it waits for it, then hands the model the access.
        using var rig = new VmmRig();
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Answers(0x5A));
        ulong in1 = rig.Code(a => a.@in(al, dx)), in2 = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(0, In(in1), In(in2));
        OtherCpu? other = null;
        rig.K.Tracer = new OnDelivery((v, text) =>
        {
            if (other is not null || !text.StartsWith("deliver: ", StringComparison.Ordinal) || !text.Contains(" seq 2:", StringComparison.Ordinal)) return;
            var e = rig.DeviceObjects[0];
            other = new OtherCpu(e, () => $"model saw {rig.Deliveries.Count}, waiter {e.Waiter is not null}");
            other.Claim();
        });
        rig.Run();
        var e = rig.DeviceObjects[0];
        other?.ReleaseIfHeld();
        Assert.NotNull(other);
        Assert.Equal(1, other.Contended);
        Assert.Equal("model saw 1, waiter False", other.Seen);   // the wait, not the next answer, met the claim
        Assert.Equal(0, e.Slot & EventObject.SlotBusy);
        Assert.Equal([1L, 2L], rig.Deliveries.Select(d => d.Seq));
        Assert.Equal((2L, 2L), (e.Delivered, e.Completed));
        Assert.Equal(0x5AUL, rig.Guest.Entries[^1].Rax & 0xFF);
        Assert.Equal(in2 + 1, rig.Guest.Entries[^1].Rip);
    }

    [Fact]
    public void A_completion_that_finds_the_object_claimed_waits_and_completes_nothing_the_other_cpu_took_away()
    {
        // The model marks its answer Done; before its wait completes it, another CPU claims the object: it is closing the
        // device, so DeviceLost answers the access all ones (the area still says Done). The completion waits for the claim,
        // finds nothing in flight, and leaves: no second answer, nothing completed.
        using var rig = new VmmRig();
        OtherCpu? other = null;
        rig.Device(EventKind.Ioio, Port, 4, (IUserContext _, uint _, ref EventArea a) =>
        {
            a.Data = 0x5A;
            a.PublishState(EventState.Done);
            var e = rig.DeviceObjects[0];
            other = new OtherCpu(e, () => $"inflight {e.Inflight}, completed {e.Completed}", () => e.OnClosed!(e));
            other.Claim();
            return true;
        });
        ulong inb = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(0, In(inb));
        rig.Run();
        var e = rig.DeviceObjects[0];
        other?.ReleaseIfHeld();
        Assert.NotNull(other);
        Assert.Equal(1, other.Contended);
        Assert.Equal("inflight 0, completed 0", other.Seen);
        Assert.Equal(0, e.Slot & EventObject.SlotBusy);
        Assert.Equal((0L, -1, true), (e.Completed, e.Inflight, e.Dead));
        Assert.Equal(1, rig.K.Stats.DevicesLost);
        Assert.Equal(2, rig.Guest.Entries.Count);   // resumed once, by the loss
        Assert.Equal(0xFFUL, rig.Guest.Entries[^1].Rax & 0xFF);
        Assert.Equal(inb + 1, rig.Guest.Entries[^1].Rip);
    }

    /// <summary>Two vCPUs: vCPU 0 reads the silent model's port (it waits there); vCPU 1 exits on CPUID, so its VMM thread
    /// gets turns to act in while the read waits.</summary>
    static VmmRig SilentRead(out ulong inb)
    {
        var rig = new VmmRig(vcpus: 2);
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Silent);
        inb = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(0, In(inb));
        for (int i = 0; i < 8; i++) rig.Guest.Add(1, Cpuid);
        return rig;
    }

    [Fact]
    public void A_vm_stop_changes_an_event_object_only_under_its_claim()
    {
        // vCPU 1's VMM thread stops the VM while another CPU holds the claim of the object vCPU 0's read waits in: the stop
        // waits for the claim before it abandons the access.
        using var rig = SilentRead(out _);
        var vcpus = rig.K.Vms[0].Vcpus;
        uint vm = 0;
        OtherCpu? other = null;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            if (other is null && why == RunExit.Cpuid && vcpus[0].Run == VcpuRun.WaitingDevice)
            {
                var e = rig.DeviceObjects[0];
                other = new OtherCpu(e, () => $"inflight {e.Inflight}, state {e.Area.State}");
                other.Claim();
                Sys.VmControl(ctx, vm, VmCtl.Stop, 0);
            }
            return VmmRig.Continue(ctx, why, ref p);
        }, after: (ctx, h) => { vm = h; return Task.CompletedTask; });
        var e = rig.DeviceObjects[0];
        other?.ReleaseIfHeld();
        Assert.NotNull(other);
        Assert.Equal(1, other.Contended);
        Assert.Equal("inflight 0, state Pending", other.Seen);   // nothing abandoned before the stop held the claim
        Assert.Equal(0, e.Slot & EventObject.SlotBusy);
        Assert.Equal((-1, EventState.Idle), (e.Inflight, e.Area.State));
        Assert.Equal(1, rig.K.Stats.Get(Counter.Aborted));
    }

    [Fact]
    public void A_device_close_changes_its_event_object_only_under_its_claim()
    {
        // vCPU 1's VMM thread closes the device while another CPU holds its claim: DeviceLost waits for the claim before it
        // marks the object dead and answers vCPU 0's read.
        using var rig = SilentRead(out ulong inb);
        var vcpus = rig.K.Vms[0].Vcpus;
        OtherCpu? other = null;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            if (other is null && why == RunExit.Cpuid && vcpus[0].Run == VcpuRun.WaitingDevice)
            {
                var e = rig.DeviceObjects[0];
                other = new OtherCpu(e, () => $"dead {e.Dead}, inflight {e.Inflight}, waiter {e.Waiter is not null}");
                other.Claim();
                Sys.Close(ctx, rig.DeviceHandles[0]);
            }
            return VmmRig.Continue(ctx, why, ref p);
        });
        var e = rig.DeviceObjects[0];
        other?.ReleaseIfHeld();
        Assert.NotNull(other);
        Assert.Equal(1, other.Contended);
        Assert.Equal("dead False, inflight 0, waiter True", other.Seen);
        Assert.Equal(0, e.Slot & EventObject.SlotBusy);
        Assert.True(e.Dead);
        Assert.Equal(1, rig.K.Stats.DevicesLost);
        Assert.Equal(0xFFUL, rig.Guest.Of(0).Last().Rax & 0xFF);
        Assert.Equal(inb + 1, rig.Guest.Of(0).Last().Rip);
    }

    [Fact]
    public void A_thread_that_dies_parked_on_an_event_object_leaves_it_only_under_its_claim()
    {
        // The silent model's thread stays parked on the object after vCPU 1's VMM thread closed the device (the close
        // answers the read and forgets the waiter; the thread still waits). At the next CPUID another CPU holds the
        // object's claim when the VMM process exits: the parked thread's death (ThreadGone) waits for the claim.
        using var rig = SilentRead(out _);
        var vcpus = rig.K.Vms[0].Vcpus;
        OtherCpu? other = null;
        int stage = 0;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            var e = rig.DeviceObjects[0];
            if (stage == 0 && why == RunExit.Cpuid && vcpus[0].Run == VcpuRun.WaitingDevice && e.Waiter is not null)
            {
                stage = 1;
                Sys.Close(ctx, rig.DeviceHandles[0]);
            }
            else if (stage == 1 && why == RunExit.Cpuid)
            {
                stage = 2;
                other = new OtherCpu(e, () => $"waiter {e.Waiter is not null}");
                other.Claim();
                _ = Sys.Exit(ctx, 0);
                return false;
            }
            return VmmRig.Continue(ctx, why, ref p);
        });
        var e = rig.DeviceObjects[0];
        other?.ReleaseIfHeld();
        Assert.Equal(2, stage);
        Assert.NotNull(other);
        Assert.Equal(1, other.Contended);
        Assert.Equal("waiter False", other.Seen);
        Assert.Equal(0, e.Slot & EventObject.SlotBusy);
    }
    [Fact]
    public void A_locked_write_answered_Applied_frees_the_device_in_the_claim_that_completes_it()
    {
        // LOCK XADD on the device: its read holds the object for the vCPU until the write is answered. The completion of the
        // write publishes the object free (not held, nothing rare), so another CPU's access from then on is delivered, not
        // queued behind an instruction that is only finishing; each answer is looked at where it is told, just after
        // the completion's publish and before the vCPU goes on.
        using var rig = new VmmRig();
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, VmmRig.Answers(0x100));
        ulong xadd = rig.Code(a => a.@lock.xadd(__dword_ptr[rbx], eax));
        rig.Guest.Add(0, new GuestExit(ExitReason.Mmio, [(3, VmmRig.Dev + 0x40), (0, 0x23)], Rip: xadd, Gpa: VmmRig.Dev + 0x40, Size: 4, Rflags: NoIf));
        var seen = new List<string>();
        rig.K.Tracer = new OnDelivery((v, text) =>
        {
            if (!text.StartsWith("the device model answered", StringComparison.Ordinal)) return;
            var e = rig.DeviceObjects[0];
            seen.Add($"held by {e.HeldBy}, rare {(e.Slot & EventObject.SlotRare) != 0}");
        });
        rig.Run();
        Assert.Equal(["held by 0, rare True", "held by -1, rare False"], seen);   // the read holds it; the applied write frees it
        Assert.Equal(0x100UL, rig.Guest.Entries[^1].Rax);
        Assert.Equal(0x123UL, rig.Deliveries[1].Area.Data);
    }
    [Theory]
    [InlineData(3, 1, 0, 2)]   // the holder on CPU 1; vCPU 0's VMM thread answers on CPU 0, where vCPU 2 is queued
    [InlineData(4, 0, 1, 3)]   // the holder is vCPU 0 (a HeldBy test that took 0 for "nobody" would let the read in)
    public void An_access_of_another_vcpu_queues_behind_a_locked_read_modify_write_that_holds_the_device(int n, int holder, int answerer, int reader)
    {
        // vCPU `holder` runs LOCK XADD on the silent model's device. vCPU `answerer`'s VMM thread (the other CPU) answers the
        // locked read and waits on the device itself: the completion posts the answer to the holder's CPU (the device is now
        // held for the holder until its write), and the wait's direct switch enters vCPU `reader`, queued on the answerer's
        // CPU, whose next exit reads the device, all before the holder's CPU applies the answer. That read must queue
        // behind the hold, not go into the area.
        using var rig = new VmmRig(vcpus: n, cpus: 2);
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, VmmRig.Silent);
        ulong xadd = rig.Code(a => a.@lock.xadd(__dword_ptr[rbx], eax));
        ulong ld = rig.Code(a => a.mov(ecx, __dword_ptr[rsi]));
        rig.Guest.Add(holder, new GuestExit(ExitReason.Mmio, [(3, VmmRig.Dev + 0x40), (0, 0x23)], Rip: xadd, Gpa: VmmRig.Dev + 0x40, Size: 4, Rflags: NoIf));
        var load = new GuestExit(ExitReason.Mmio, [(6, VmmRig.Dev + 0x80)], Rip: ld, Gpa: VmmRig.Dev + 0x80, Size: 4, Rflags: NoIf);
        bool armed = false, loaded = false;
        rig.Guest.NextExit = v =>
        {
            if (v != reader) return null;
            if (armed && !loaded) { loaded = true; return load; }
            return Cpuid;
        };
        for (int i = 0; i < 40; i++) rig.Guest.Add(answerer, Cpuid);
        var vcpus = rig.K.Vms[0].Vcpus;
        string? after = null;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            if (after is not null || why != RunExit.Cpuid) return VmmRig.Continue(ctx, why, ref p);
            var e = rig.DeviceObjects[0];
            ref var a = ref Sys.Ref<EventArea>(ctx, rig.DeviceAreas[0]);
            if (a.State == EventState.Pending && a.Direction == AccessDirection.Read && (a.Flags & EventFlags.Locked) != 0
                && vcpus[reader].Run == VcpuRun.Runnable && rig.Guest.Entries.Count > 0)
            {
                armed = true;
                a.Data = 0x100;
                a.PublishState(EventState.Done);
                _ = Sys.WaitForEvent(ctx, rig.DeviceHandles[0]);
                after = $"loaded {loaded}, held by {e.HeldBy}, inflight {e.Inflight}, queued {e.Queued}, vcpu {holder} {vcpus[holder].Run}";
            }
            return VmmRig.Continue(ctx, why, ref p);
        });
        Assert.Equal($"loaded True, held by {holder}, inflight -1, queued 1, vcpu {holder} WaitingDevice", after);
    }
}

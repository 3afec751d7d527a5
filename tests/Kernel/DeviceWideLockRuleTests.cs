using Copra.Abi;
using Copra.Hot.Exit;
using Copra.User;
using Xunit;
using static Iced.Intel.AssemblerRegisters;
using KernelT = Copra.Kernel.Core.Kernel;

namespace Copra.Tests.Kernel;

/// <summary>
/// The device seam's wide and locked accesses (kernel/Exit/Kernel.Devices.cs FillArea, CompleteIfDone, AnswerLost;
/// Kernel.Wide.cs): a 16-byte access carries its bytes in the event area's payload, in memory order, both ways; a wide
/// read a dead model held is all ones; both sides of a locked read-modify-write are flagged Locked, the write carries what
/// the read returned as Expected (both halves for CMPXCHG16B), the kernel sets Result to Applied before every delivery,
/// and a Mismatch answer makes the kernel recompute from the value the model reports and write again.
/// Through <see cref="VmmRig"/> with an MMIO device at <see cref="VmmRig.Dev"/>.
/// </summary>
public sealed class DeviceWideLockRuleTests
{
    const ulong NoIf = 0x2;
    const ulong At = VmmRig.Dev + 0x40;

    static GuestExit Mmio(ulong rip, byte size, bool write, int addrReg = 3, params (int, ulong)[] regs) =>
        new(ExitReason.Mmio, [(addrReg, At), .. regs], Rip: rip, Gpa: At, Size: size, Write: write, Rflags: NoIf);

    static UInt128 Bytes(byte first) // first, first+1, ..., first+15 in memory order
    {
        UInt128 x = 0;
        for (int i = 15; i >= 0; i--) x = x << 8 | (byte)(first + i);
        return x;
    }

    /// <summary>A model that answers a read with the payload 0xA0, 0xA1, … (and Data 0x5A5A) and takes every write.</summary>
    static DeviceAnswer WideAnswers => (IUserContext _, uint _, ref EventArea a) =>
    {
        if (a.Direction == AccessDirection.Read)
        {
            for (int i = 0; i < (int)a.Size; i++) a.Payload[i] = (byte)(0xA0 + i);
            a.Data = 0x5A5A;
        }
        a.PublishState(EventState.Done);
        return true;
    };

    /// <summary>A model that answers a read with 0x100 and every write Mismatch, its current value moving each time.</summary>
    static DeviceAnswer MismatchEveryWrite => (IUserContext _, uint _, ref EventArea a) =>
    {
        if (a.Direction == AccessDirection.Read) a.Data = 0x100;
        else { a.Result = LockResult.Mismatch; a.Data = 0x200 + (ulong)a.Sequence; }
        a.PublishState(EventState.Done);
        return true;
    };

    [Fact]
    public void A_16_byte_store_to_a_device_carries_its_bytes_in_the_payload_in_memory_order()
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, WideAnswers);
        ulong st = rig.Code(a => a.movdqu(__xmmword_ptr[rbx], xmm2));
        rig.K.State.SetXmm(0, 2, Bytes(0x30));
        rig.Guest.Add(0, Mmio(st, 16, true));
        rig.Run();
        var a = Assert.Single(rig.Deliveries).Area;
        Assert.Equal((16u, AccessDirection.Write, At), (a.Size, a.Direction, a.Address));
        Assert.Equal(Enumerable.Range(0x30, 16).Select(i => (byte)i).ToArray(), ((ReadOnlySpan<byte>)a.Payload)[..16].ToArray());
        Assert.Equal(st + 4, rig.Guest.Entries[1].Rip);
    }

    [Fact]
    public void A_16_byte_load_from_a_device_takes_the_models_payload_whole()
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, WideAnswers);
        ulong ld = rig.Code(a => a.movdqu(xmm1, __xmmword_ptr[rbx]));
        rig.K.State.SetXmm(0, 1, 0);
        rig.Guest.Add(0, Mmio(ld, 16, false));
        rig.Run();
        var a = Assert.Single(rig.Deliveries).Area;
        Assert.Equal((16u, AccessDirection.Read), (a.Size, a.Direction));
        Assert.Equal(Bytes(0xA0), rig.K.State.Xmm(0, 1));   // the payload, not Data
        Assert.Equal(ld + 4, rig.Guest.Entries[1].Rip);
    }

    [Fact]
    public void A_16_byte_load_a_dead_model_held_is_all_ones()
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, VmmRig.Dies);
        ulong ld = rig.Code(a => a.movdqu(xmm1, __xmmword_ptr[rbx]));
        rig.K.State.SetXmm(0, 1, 0x1234);
        rig.Guest.Add(0, Mmio(ld, 16, false));
        rig.Run();
        Assert.Equal(1, rig.K.Stats.DevicesLost);
        Assert.Equal(UInt128.MaxValue, rig.K.State.Xmm(0, 1));
        Assert.Equal(ld + 4, rig.Guest.Entries[1].Rip);
    }

    [Fact]
    public void Both_sides_of_a_locked_read_modify_write_are_flagged_Locked_and_the_write_expects_what_the_read_returned()
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, VmmRig.Answers(0x100));
        ulong xadd = rig.Code(a => a.@lock.xadd(__dword_ptr[rbx], eax));
        ulong plain = rig.Code(a => a.xadd(__dword_ptr[rbx], eax));
        rig.Guest.Add(0, Mmio(xadd, 4, false, 3, (0, 0x23)), Mmio(plain, 4, false, 3, (0, 0x5)));
        rig.Run();
        Assert.Equal(4, rig.Deliveries.Count);
        var (r, w) = (rig.Deliveries[0].Area, rig.Deliveries[1].Area);
        Assert.Equal((AccessDirection.Read, EventFlags.Locked, 0UL), (r.Direction, r.Flags, r.Data));
        Assert.Equal((AccessDirection.Write, EventFlags.Locked, 0x123UL, 0x100UL, 0UL), (w.Direction, w.Flags, w.Data, w.Expected, w.ExpectedHigh));
        Assert.Equal(0x100UL, rig.Guest.Entries[1].Rax);   // XADD: the old value
        Assert.Equal(xadd + 4, rig.Guest.Entries[1].Rip);
        // Without LOCK the same form is two plain sides.
        Assert.All(rig.Deliveries.Skip(2), d => Assert.Equal((EventFlags)0, d.Area.Flags));
        Assert.Equal(0x105UL, rig.Deliveries[3].Area.Data);
        Assert.Equal(0, rig.K.Stats.LockRetries);
        // The object is given up once the write is answered Applied: nothing holds or queues on it.
        var e = rig.DeviceObjects[0];
        Assert.Equal((-1, -1, 0, 4L), (e.HeldBy, e.Inflight, e.Queued, e.Completed));
    }

    [Fact]
    public void A_locked_write_answered_Mismatch_is_recomputed_from_the_models_current_value_and_each_delivery_starts_Applied()
    {
        // The model's location moved from 0x100 to 0x200 after the read: it answers the first write Mismatch with 0x200
        // and leaves Result alone from then on (as a model that only ever writes Mismatch does).
        using var rig = new VmmRig();
        var results = new List<LockResult>();
        int writes = 0;
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, (IUserContext _, uint _, ref EventArea a) =>
        {
            results.Add(a.Result);
            if (a.Direction == AccessDirection.Read) a.Data = 0x100;
            else if (writes++ == 0) { a.Result = LockResult.Mismatch; a.Data = 0x200; }
            a.PublishState(EventState.Done);
            return true;
        });
        ulong xadd = rig.Code(a => a.@lock.xadd(__dword_ptr[rbx], eax));
        rig.Guest.Add(0, Mmio(xadd, 4, false, 3, (0, 0x23)));
        rig.Run();
        Assert.Equal([AccessDirection.Read, AccessDirection.Write, AccessDirection.Write], rig.Deliveries.Select(d => d.Area.Direction));
        Assert.Equal([LockResult.Applied, LockResult.Applied, LockResult.Applied], results);
        var retry = rig.Deliveries[2].Area;
        Assert.Equal((0x223UL, 0x200UL, EventFlags.Locked), (retry.Data, retry.Expected, retry.Flags));
        Assert.Equal(1, rig.K.Stats.LockRetries);
        Assert.Equal(0x200UL, rig.Guest.Entries[1].Rax);   // XADD returns the value its write replaced
        Assert.Equal(xadd + 4, rig.Guest.Entries[1].Rip);
        Assert.Equal(-1, rig.DeviceObjects[0].HeldBy);
    }

    [Fact]
    public void A_locked_compare_exchange_whose_retry_no_longer_matches_fails_with_the_flags_of_that_compare()
    {
        // The read returns 0x100, which EAX holds: the compare matches (ZF set) and ECX is written. The model answers that
        // write Mismatch with 0x300: the kernel compares again, fails (no second write), loads EAX with 0x300 and clears ZF.
        // Nothing of the first compare is left behind: its registers and flags were pending and are dropped.
        using var rig = new VmmRig();
        int writes = 0;
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, (IUserContext _, uint _, ref EventArea a) =>
        {
            if (a.Direction == AccessDirection.Read) a.Data = 0x100;
            else if (writes++ == 0) { a.Result = LockResult.Mismatch; a.Data = 0x300; }
            a.PublishState(EventState.Done);
            return true;
        });
        ulong cx = rig.Code(a => a.@lock.cmpxchg(__dword_ptr[rbx], ecx));
        rig.Guest.Add(0, Mmio(cx, 4, false, 3, (0, 0x100), (1, 0x777)));
        var flags = new List<ulong>();
        rig.Guest.OnEntry = v => flags.Add(rig.K.State.Rflags(v));
        rig.Run();
        Assert.Equal(1, rig.K.Stats.LockRetries);
        Assert.Equal(2, rig.Deliveries.Count);   // the read and the one write: the failed compare writes nothing
        var after = rig.Guest.Entries[1];
        Assert.Equal((cx + 4, 0x300UL), (after.Rip, after.Rax));
        Assert.Equal(0UL, flags[1] & (1UL << 6));   // ZF clear: the second compare's
    }

    [Fact]
    public void A_locked_16_byte_compare_and_exchange_on_a_device_expects_both_halves_of_what_it_read()
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, WideAnswers);
        ulong cx = rig.Code(a => a.@lock.cmpxchg16b(__xmmword_ptr[rsi]));
        UInt128 read = Bytes(0xA0);
        ulong lo = (ulong)read, hi = (ulong)(read >> 64);
        // RDX:RAX holds what the device holds: RCX:RBX is written.
        rig.Guest.Add(0, Mmio(cx, 16, false, 6, (0, lo), (2, hi), (3, 0x1111_2222_3333_4444), (1, 0x5555_6666_7777_8888)));
        rig.Run();
        Assert.Equal(2, rig.Deliveries.Count);
        var w = rig.Deliveries[1].Area;
        Assert.Equal((AccessDirection.Write, 16u, EventFlags.Locked), (w.Direction, w.Size, w.Flags));
        Assert.Equal((lo, hi), (w.Expected, w.ExpectedHigh));
        Assert.Equal(0x1111_2222_3333_4444UL, BitConverter.ToUInt64(((ReadOnlySpan<byte>)w.Payload)[..8]));
        Assert.Equal(0x5555_6666_7777_8888UL, BitConverter.ToUInt64(((ReadOnlySpan<byte>)w.Payload)[8..16]));
        Assert.Equal(cx + 5, rig.Guest.Entries[1].Rip);
    }

    [Fact]
    public void A_locked_16_byte_write_answered_Mismatch_takes_the_models_current_payload()
    {
        // CMPXCHG16B: the first write is answered Mismatch with the location's current 16 bytes (0xC0, 0xC1, …). The
        // kernel compares again with those: they differ from RDX:RAX, so the instruction fails (no second write) and RDX:RAX
        // gets them.
        using var rig = new VmmRig();
        int writes = 0;
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, (IUserContext _, uint _, ref EventArea a) =>
        {
            if (a.Direction == AccessDirection.Read) for (int i = 0; i < 16; i++) a.Payload[i] = (byte)(0xA0 + i);
            else if (writes++ == 0) { a.Result = LockResult.Mismatch; for (int i = 0; i < 16; i++) a.Payload[i] = (byte)(0xC0 + i); }
            a.PublishState(EventState.Done);
            return true;
        });
        ulong cx = rig.Code(a => a.@lock.cmpxchg16b(__xmmword_ptr[rsi]));
        UInt128 read = Bytes(0xA0), now = Bytes(0xC0);
        rig.Guest.Add(0, Mmio(cx, 16, false, 6, (0, (ulong)read), (2, (ulong)(read >> 64)), (3, 1), (1, 2)));
        rig.Run();
        Assert.Equal(1, rig.K.Stats.LockRetries);
        Assert.Equal(2, rig.Deliveries.Count);   // a compare that fails writes nothing
        var after = rig.Guest.Entries[1];
        Assert.Equal(((ulong)now, (ulong)(now >> 64)), (after.Rax, after.Rdx));
        Assert.Equal(cx + 5, after.Rip);
    }

    [Fact]
    public void A_locked_write_answered_Mismatch_every_time_gives_up_after_the_retry_bound_commits_nothing_and_frees_the_device()
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, MismatchEveryWrite);
        ulong xadd = rig.Code(a => a.@lock.xadd(__dword_ptr[rbx], eax));
        ulong inb = rig.Code(a => a.mov(al, __byte_ptr[rbx]));
        rig.Guest.Add(0, Mmio(xadd, 4, false, 3, (0, 0x23)), new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf), Mmio(inb, 1, false, 3, (0, 0x23)));
        int heldAtCpuid = -2;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            if (why == RunExit.Cpuid) heldAtCpuid = rig.DeviceObjects[0].HeldBy;   // the exit that gave up is over
            return VmmRig.Continue(ctx, why, ref p);
        });
        Assert.Equal(-1, heldAtCpuid);
        int bound = KernelT.MaxLockRetries;
        // The read, the first write and one write per retry (the retry past the bound is not made), then the MOV's read.
        Assert.Equal(1 + 1 + bound + 1, rig.Deliveries.Count);
        Assert.Equal(bound + 1, rig.K.Stats.LockRetries);
        var after = rig.Guest.Entries[1];
        Assert.Equal((xadd, 0x23UL), (after.Rip, after.Rax));   // the guest runs the instruction again; EAX as it was
        // The device is free: the next access is delivered and answered.
        Assert.Equal((AccessDirection.Read, (EventFlags)0), (rig.Deliveries[^1].Area.Direction, rig.Deliveries[^1].Area.Flags));
        Assert.Equal(inb + 2, rig.Guest.Entries[3].Rip);
        Assert.Equal((-1, -1, 0), (rig.DeviceObjects[0].HeldBy, rig.DeviceObjects[0].Inflight, rig.DeviceObjects[0].Queued));
    }
    [Fact]
    public void An_xchg_whose_write_gives_up_leaves_its_register_as_it_was()
    {
        // XCHG with memory is locked: its register takes the device's value only when the write is applied. Every write
        // answered Mismatch: past the retry bound the guest runs the instruction again with EAX as it was.
        using var rig = new VmmRig();
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, MismatchEveryWrite);
        ulong xchg = rig.Code(a => a.xchg(__dword_ptr[rbx], eax));
        rig.Guest.Add(0, Mmio(xchg, 4, false, 3, (0, 0x23)), new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf));
        rig.Run();
        Assert.Equal(KernelT.MaxLockRetries + 1, rig.K.Stats.LockRetries);
        Assert.Equal((xchg, 0x23UL), (rig.Guest.Entries[1].Rip, rig.Guest.Entries[1].Rax));
    }

    [Fact]
    public void A_locked_write_that_gives_up_ends_its_exit_as_completed_and_leaves_none_in_flight()
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, MismatchEveryWrite);
        ulong xadd = rig.Code(a => a.@lock.xadd(__dword_ptr[rbx], eax));
        rig.Guest.Add(0, Mmio(xadd, 4, false, 3, (0, 0x23)), new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf));
        rig.Run();
        Assert.Equal(KernelT.MaxLockRetries + 1, rig.K.Stats.LockRetries);   // it did give up
        // The exit is over (the guest runs the instruction again): taken = completed, nothing left in flight.
        Assert.Equal((1L, 1L, 0L), (rig.K.Stats.Mmio, rig.K.Stats.Completed, rig.K.Stats.InFlight));
    }

    [Fact]
    public void An_access_carries_in_its_payload_only_its_own_bytes_never_another_devices_wide_data()
    {
        // A 16-byte store to device A, then an 8-byte store and a 4-byte load on device B: B's area payload stays as the
        // VMM mapped it (zero), since neither access is wider than 8 bytes (their data is in Data).
        using var rig = new VmmRig();
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, WideAnswers);
        rig.Device(EventKind.Mmio, VmmRig.Dev + 0x1000, 0x1000, VmmRig.Answers(0x66));
        ulong b = VmmRig.Dev + 0x1040;
        ulong wide = rig.Code(a => a.movdqu(__xmmword_ptr[rbx], xmm2));
        ulong st8 = rig.Code(a => a.mov(__qword_ptr[rsi], rax));
        ulong ld4 = rig.Code(a => a.mov(ecx, __dword_ptr[rsi]));
        rig.K.State.SetXmm(0, 2, Bytes(0x30));
        rig.Guest.Add(0, Mmio(wide, 16, true),
            new GuestExit(ExitReason.Mmio, [(6, b), (0, 0x1122_3344_5566_7788)], Rip: st8, Gpa: b, Size: 8, Write: true, Rflags: NoIf),
            new GuestExit(ExitReason.Mmio, [(6, b)], Rip: ld4, Gpa: b, Size: 4, Rflags: NoIf));
        rig.Run();
        Assert.Equal(3, rig.Deliveries.Count);
        Assert.Equal(0x30, rig.Deliveries[0].Area.Payload[0]);   // A's store did carry its bytes
        var (w8, r4) = (rig.Deliveries[1].Area, rig.Deliveries[2].Area);
        Assert.Equal((8u, AccessDirection.Write, 0x1122_3344_5566_7788UL), (w8.Size, w8.Direction, w8.Data));
        Assert.Equal((4u, AccessDirection.Read), (r4.Size, r4.Direction));
        Assert.All([w8, r4], a => Assert.Equal(new byte[16], ((ReadOnlySpan<byte>)a.Payload)[..16].ToArray()));
        Assert.Equal(0x66UL, rig.Guest.Entries[3].Rcx);
    }

    [Fact]
    public void An_access_carries_in_expected_nothing_but_its_own_locked_read_never_another_devices_answer()
    {
        // Device B answers an 8-byte load with 0x1122334455667788; then LOCK XADD on device A. A's read side is delivered
        // with `expected` as A's area had it (zero: no locked write yet), not B's answer; only the write side carries
        // what A's read returned (docs/abi.md: `expected` is the kernel's on a locked write).
        using var rig = new VmmRig();
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, VmmRig.Answers(0x100));
        rig.Device(EventKind.Mmio, VmmRig.Dev + 0x1000, 0x1000, VmmRig.Answers(0x1122_3344_5566_7788));
        ulong b = VmmRig.Dev + 0x1040;
        ulong ld8 = rig.Code(a => a.mov(rcx, __qword_ptr[rsi]));
        ulong xadd = rig.Code(a => a.@lock.xadd(__dword_ptr[rbx], eax));
        rig.Guest.Add(0, new GuestExit(ExitReason.Mmio, [(6, b)], Rip: ld8, Gpa: b, Size: 8, Rflags: NoIf),
            Mmio(xadd, 4, false, 3, (0, 0x23)));
        rig.Run();
        Assert.Equal(3, rig.Deliveries.Count);
        Assert.Equal(0x1122_3344_5566_7788UL, rig.Guest.Entries[1].Rcx);   // B's answer reached the vCPU
        var (r, w) = (rig.Deliveries[1].Area, rig.Deliveries[2].Area);
        Assert.Equal((AccessDirection.Read, EventFlags.Locked), (r.Direction, r.Flags));
        Assert.Equal((0UL, 0UL), (r.Expected, r.ExpectedHigh));
        Assert.Equal((AccessDirection.Write, 0x100UL), (w.Direction, w.Expected));
    }

    [Fact]
    public void A_locked_8_byte_read_modify_write_expects_the_8_bytes_it_read()
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, VmmRig.Answers(0x1122_3344_5566_7788));
        ulong xadd = rig.Code(a => a.@lock.xadd(__qword_ptr[rbx], rax));
        rig.Guest.Add(0, Mmio(xadd, 8, false, 3, (0, 0x10)));
        rig.Run();
        Assert.Equal(2, rig.Deliveries.Count);
        var w = rig.Deliveries[1].Area;
        Assert.Equal((AccessDirection.Write, 8u, EventFlags.Locked), (w.Direction, w.Size, w.Flags));
        Assert.Equal((0x1122_3344_5566_7798UL, 0x1122_3344_5566_7788UL, 0UL), (w.Data, w.Expected, w.ExpectedHigh));
        Assert.Equal(0x1122_3344_5566_7788UL, rig.Guest.Entries[1].Rax);
    }
    [Fact]
    public void A_read_modify_write_without_LOCK_does_not_hold_the_device_between_its_read_and_its_write()
    {
        // vCPU 0 (CPU 0) runs ADD [dev], EAX; the model lets its read sit until vCPU 1's (CPU 1) read has queued behind
        // it, then vCPU 2's VMM thread (CPU 0) answers the held read. Without LOCK nothing holds the device: the queued
        // read goes into the area first, and the ADD's write queues behind it.
        using var rig = new VmmRig(vcpus: 3, cpus: 2);
        int handed = 0;
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, (IUserContext _, uint _, ref EventArea a) =>
        {
            if (handed++ == 0) return true;   // hold the first: park on the object
            if (a.Direction == AccessDirection.Read) a.Data = 0x50;
            a.PublishState(EventState.Done);
            return true;
        });
        ulong add = rig.Code(a => a.add(__dword_ptr[rbx], eax));
        ulong ld = rig.Code(a => a.mov(ecx, __dword_ptr[rsi]));
        var cpuid = new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf);
        rig.Guest.Add(0, Mmio(add, 4, false, 3, (0, 0x23)));
        rig.Guest.Add(1, cpuid, cpuid, new GuestExit(ExitReason.Mmio, [(6, At + 8)], Rip: ld, Gpa: At + 8, Size: 4, Rflags: NoIf));
        for (int i = 0; i < 20; i++) rig.Guest.Add(2, cpuid);
        bool answered = false;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            ref var a = ref Sys.Ref<EventArea>(ctx, rig.DeviceAreas[0]);
            if (!answered && a.State == EventState.Pending && rig.DeviceObjects[0].Queued == 1 && rig.DeviceObjects[0].Waiter is not null)
            {
                answered = true;
                a.Data = 0x100;
                a.PublishState(EventState.Done);
                Sys.EventSignal(ctx, rig.DeviceHandles[0]);
            }
            return VmmRig.Continue(ctx, why, ref p);
        });
        Assert.True(answered);
        Assert.Equal([(0u, AccessDirection.Read), (1u, AccessDirection.Read), (0u, AccessDirection.Write)],
            rig.Deliveries.Select(d => (d.Area.Vcpu, d.Area.Direction)));
        Assert.Equal(0x123UL, rig.Deliveries[2].Area.Data);
        Assert.Equal(0x50UL, rig.Guest.Of(1).Last().Rcx);
        Assert.Equal((-1, -1, 0), (rig.DeviceObjects[0].HeldBy, rig.DeviceObjects[0].Inflight, rig.DeviceObjects[0].Queued));
    }
    [Fact]
    public void A_locked_read_whose_write_never_comes_gives_the_device_up_at_its_exits_end_and_hands_on_what_queued_behind_it()
    {
        // vCPU 0 (CPU 0) runs LOCK CMPXCHG [dev], ECX with EAX = 0x11; the device holds 0x22, so no write follows the
        // locked read. The model lets that read sit until vCPU 1's read (CPU 1) has queued behind it; vCPU 2's VMM thread
        // (CPU 0) answers it. The read's hold ends with the exit, and the queued read is handed to the model parked on the
        // object, once: the model lets it sit too, and vCPU 2's thread answers that one as well.
        using var rig = new VmmRig(vcpus: 3, cpus: 2);
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, VmmRig.Silent);
        ulong cx = rig.Code(a => a.@lock.cmpxchg(__dword_ptr[rbx], ecx));
        ulong ld = rig.Code(a => a.mov(ecx, __dword_ptr[rsi]));
        var cpuid = new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf);
        rig.Guest.Add(0, Mmio(cx, 4, false, 3, (0, 0x11), (1, 0x99)));
        rig.Guest.Add(1, cpuid, cpuid, new GuestExit(ExitReason.Mmio, [(6, At + 8)], Rip: ld, Gpa: At + 8, Size: 4, Rflags: NoIf));
        for (int i = 0; i < 30; i++) rig.Guest.Add(2, cpuid);
        var e = rig.DeviceObjects;
        int answered = 0;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            ref var a = ref Sys.Ref<EventArea>(ctx, rig.DeviceAreas[0]);
            if (a.State == EventState.Pending && e[0].Waiter is not null
                && (answered == 0 && e[0].Queued == 1 || answered == 1 && a.Vcpu == 1))
            {
                a.Data = answered++ == 0 ? 0x22UL : 0x33UL;
                a.PublishState(EventState.Done);
                Sys.EventSignal(ctx, rig.DeviceHandles[0]);
            }
            return VmmRig.Continue(ctx, why, ref p);
        });
        Assert.Equal(2, answered);
        Assert.Equal([(0u, AccessDirection.Read, EventFlags.Locked), (1u, AccessDirection.Read, (EventFlags)0)],
            rig.Deliveries.Select(d => (d.Area.Vcpu, d.Area.Direction, d.Area.Flags)));   // the model was handed each once
        Assert.Equal((cx + 4, 0x22UL), (rig.Guest.Of(0).Last().Rip, rig.Guest.Of(0).Last().Rax));   // failed: EAX = what it read
        Assert.Equal(0x33UL, rig.Guest.Of(1).Last().Rcx);
        Assert.Equal((-1, -1, 0), (e[0].HeldBy, e[0].Inflight, e[0].Queued));
    }
}

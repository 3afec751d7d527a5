using Copra.Abi;
using Copra.Hot.Exit;
using Copra.User;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// What the event area says of an access and of its end (kernel/Exit/Kernel.Devices.cs FillArea, CompleteIfDone,
/// DeviceLost): every string form (MOVS either way, STOS, INS, OUTS) is flagged String, and Rep with REP; a completed
/// access leaves the area Idle; a model's Mismatch on a write that was not locked is no compare-and-write (the write is
/// done once); a model whose object closes leaves it dead. Through <see cref="VmmRig"/>.
/// </summary>
public sealed class DeviceAreaRuleTests
{
    const ushort Port = 0x510;
    const ulong NoIf = 0x2;
    const ulong At = VmmRig.Dev + 0x40;

    [Fact]
    public void Every_string_form_is_flagged_String_and_Rep_with_REP()
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, VmmRig.Answers(0x77));
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Answers(0x66));
        ulong ram = rig.Layout.Data;
        ulong movsTo = rig.Code(a => a.movsb()), movsFrom = rig.Code(a => a.movsb()), stos = rig.Code(a => a.rep.stosb()), ins = rig.Code(a => a.insb()),
            outs = rig.Code(a => a.outsb());
        rig.Guest.Add(0,
            new GuestExit(ExitReason.Mmio, [(6, ram), (7, At)], Rip: movsTo, Gpa: At, Size: 1, Write: true, Rflags: NoIf),
            new GuestExit(ExitReason.Mmio, [(6, At), (7, ram + 8)], Rip: movsFrom, Gpa: At, Size: 1, Rflags: NoIf),
            new GuestExit(ExitReason.Mmio, [(7, At), (1, 1), (0, 0x12)], Rip: stos, Gpa: At, Size: 1, Write: true, Rflags: NoIf),
            new GuestExit(ExitReason.Io, [(2, Port), (7, ram + 16)], Rip: ins, Port: Port, Size: 1, Rflags: NoIf),
            new GuestExit(ExitReason.Io, [(2, Port), (6, ram + 8)], Rip: outs, Port: Port, Size: 1, Write: true, Rflags: NoIf));
        rig.Run();
        Assert.Equal(5, rig.Deliveries.Count);
        Assert.Equal([AccessDirection.Write, AccessDirection.Read, AccessDirection.Write, AccessDirection.Read, AccessDirection.Write], rig.Deliveries.Select(d => d.Area.Direction));
        Assert.Equal([EventFlags.String, EventFlags.String, EventFlags.String | EventFlags.Rep, EventFlags.String, EventFlags.String], rig.Deliveries.Select(d => d.Area.Flags));
        Assert.Equal(0x77UL, rig.Deliveries[4].Area.Data);   // OUTS wrote the byte MOVS had stored
        // The delivery tests the four string kinds as bits of one word (Kernel.Devices.cs StringKinds): fewer than 64 kinds.
        Assert.True((int)Enum.GetValues<Copra.Hot.Decode.AccessKind>().Max() < 64);
        Assert.Equal(0x77, rig.K.Memory.ReadU8(ram + 8));    // MOVS from the device stored its byte
        Assert.Equal(0x66, rig.K.Memory.ReadU8(ram + 16));   // INS stored the port's byte
    }

    [Fact]
    public void A_completed_access_leaves_the_area_Idle()
    {
        using var rig = new VmmRig();
        var seenAtNextExit = new List<EventState>();
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Answers(0x11));
        ulong inb = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(0, new GuestExit(ExitReason.Io, [(2, Port)], Rip: inb, Port: Port, Size: 1, Rflags: NoIf),
            new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf));
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            seenAtNextExit.Add(Sys.Ref<EventArea>(ctx, rig.DeviceAreas[0]).State);   // what a polling model would see now
            return VmmRig.Continue(ctx, why, ref p);
        });
        Assert.Equal(EventState.Idle, seenAtNextExit[0]);   // at the CPUID right after the IN
        Assert.Equal(EventState.Idle, rig.DeviceObjects[0].Area.State);
        Assert.Equal(0x11UL, rig.Guest.Entries[1].Rax & 0xFF);
    }

    [Fact]
    public void A_Mismatch_answer_to_a_write_that_was_not_locked_is_ignored_and_the_write_done_once()
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, (IUserContext _, uint _, ref EventArea a) =>
        {
            if (a.Direction == AccessDirection.Read) a.Data = 0x100;
            else { a.Result = LockResult.Mismatch; a.Data = 0x999; }
            a.PublishState(EventState.Done);
            return true;
        });
        ulong add = rig.Code(a => a.add(__dword_ptr[rbx], eax));
        ulong mov = rig.Code(a => a.mov(__dword_ptr[rbx], eax));
        rig.Guest.Add(0, new GuestExit(ExitReason.Mmio, [(3, At), (0, 0x23)], Rip: add, Gpa: At, Size: 4, Rflags: NoIf),
            new GuestExit(ExitReason.Mmio, [(3, At), (0, 0x45)], Rip: mov, Gpa: At, Size: 4, Write: true, Rflags: NoIf));
        rig.Run();
        Assert.Equal([AccessDirection.Read, AccessDirection.Write, AccessDirection.Write], rig.Deliveries.Select(d => d.Area.Direction));
        Assert.Equal([0x123UL, 0x45UL], rig.Deliveries.Skip(1).Select(d => d.Area.Data));
        Assert.Equal(0, rig.K.Stats.LockRetries);
        Assert.Equal(add + 2, rig.Guest.Entries[1].Rip);
        Assert.Equal(mov + 2, rig.Guest.Entries[2].Rip);
    }

    [Fact]
    public void A_model_whose_object_closes_leaves_it_dead_and_unregistered()
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Ioio, Port, 4, VmmRig.Dies);
        rig.Guest.Add(0, new GuestExit(ExitReason.Io, [(2, Port)], Rip: rig.Code(a => a.@in(al, dx)), Port: Port, Size: 1, Rflags: NoIf));
        rig.Run();
        var e = rig.DeviceObjects[0];
        Assert.True(e.Dead);
        Assert.Null(e.Waiter);
        Assert.Equal((-1, 0), (e.Inflight, e.Queued));
        Assert.Null(rig.K.Vms[0].Owners[0]);
    }
    [Fact]
    public void A_read_the_hardware_completes_reaches_the_model_with_Data_zero_not_the_hardwares_stale_buffer()
    {
        // KVM's record of a read carries whatever its data buffer last held; the event area's Data of a read is 0.
        using var rig = new VmmRig();
        var seen = new List<ulong>();
        rig.Device(EventKind.Ioio, Port, 4, (IUserContext _, uint _, ref EventArea a) =>
        {
            seen.Add(a.Data);
            a.Data = 0x42;
            a.PublishState(EventState.Done);
            return true;
        });
        ulong inb = rig.Code(a => a.@in(al, dx));
        rig.Guest.Add(0, new GuestExit(ExitReason.Io, [(2, Port)], Rip: inb, Port: Port, Size: 1, Rflags: NoIf,
            HardwareCompletes: true, HwData: 0xBAD0_BAD0_BAD0_BAD0));
        rig.Run();
        Assert.Equal([0UL], seen);
        Assert.Equal([(0, 0x42UL)], rig.Guest.Completed);   // the model's answer went back to the hardware
    }
}

using Copra.Abi;
using Copra.Hot.Exit;
using Copra.User;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// What the kernel takes from a device model's answer: the answer (Data, the payload of a wide read, Result of a locked
/// write) and nothing else. The request's fields in the event area (Size, Direction, Flags) are the kernel's copy for the
/// model to read; a model that rewrites them before it answers changes nothing the kernel does with the answer: the
/// kernel completes the access it made, from its own record of it (kernel/Exit/Kernel.Devices.cs CompleteIfDone).
/// Through <see cref="VmmRig"/> with an MMIO device at <see cref="VmmRig.Dev"/>.
/// </summary>
public sealed class ModelAnswerTrustRuleTests
{
    const ulong NoIf = 0x2;
    const ulong At = VmmRig.Dev + 0x40;

    static GuestExit Mmio(ulong rip, byte size, bool write, params (int, ulong)[] regs) =>
        new(ExitReason.Mmio, [(3, At), .. regs], Rip: rip, Gpa: At, Size: size, Write: write, Rflags: NoIf);

    [Fact]
    public void A_plain_store_answered_as_a_locked_Mismatch_is_delivered_once_and_completes()
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, (IUserContext _, uint _, ref EventArea a) =>
        {
            a.Flags |= EventFlags.Locked;          // the model claims the store was locked
            a.Result = LockResult.Mismatch;        // and that the location moved
            a.Data = 0x77;
            a.PublishState(EventState.Done);
            return true;
        });
        ulong st = rig.Code(a => a.mov(__dword_ptr[rbx], eax));
        rig.Guest.Add(0, Mmio(st, 4, true, (0, 0x1234)));
        rig.Run();
        var w = Assert.Single(rig.Deliveries).Area;
        Assert.Equal((AccessDirection.Write, 0x1234UL), (w.Direction, w.Data & 0xFFFF));
        Assert.Equal(0, rig.K.Stats.LockRetries);
        Assert.Equal((st + 2, 0x1234UL), (rig.Guest.Entries[1].Rip, rig.Guest.Entries[1].Rax));
        Assert.Equal((-1, -1), (rig.DeviceObjects[0].HeldBy, rig.DeviceObjects[0].Inflight));
    }

    [Fact]
    public void A_plain_load_answered_as_a_locked_wide_write_takes_the_answers_Data_at_its_own_size()
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, (IUserContext _, uint _, ref EventArea a) =>
        {
            a.Data = 0x1122_3344_5566_7788;
            a.Size = 16;                           // the model rewrites the request as a 16-byte locked write
            a.Direction = AccessDirection.Write;
            a.Flags |= EventFlags.Locked;
            a.Result = LockResult.Mismatch;
            for (int i = 0; i < 16; i++) a.Payload[i] = 0xEE;
            a.PublishState(EventState.Done);
            return true;
        });
        ulong ld = rig.Code(a => a.mov(ecx, __dword_ptr[rbx]));
        rig.Guest.Add(0, Mmio(ld, 4, false, (1, 0xFFFF_FFFF_FFFF_FFFF)));
        rig.Run();
        Assert.Single(rig.Deliveries);
        Assert.Equal(0, rig.K.Stats.LockRetries);
        // A 32-bit load zero-extends into RCX: the low four bytes of Data, nothing of the payload.
        Assert.Equal((ld + 2, 0x5566_7788UL), (rig.Guest.Entries[1].Rip, rig.Guest.Entries[1].Rcx));
        Assert.Equal((-1, -1), (rig.DeviceObjects[0].HeldBy, rig.DeviceObjects[0].Inflight));
    }

    [Theory]
    [InlineData(4u)]
    [InlineData(64u)]
    [InlineData(200u)]
    [InlineData(uint.MaxValue)]
    public void A_16_byte_load_takes_16_bytes_of_the_payload_whatever_Size_the_model_wrote(uint size)
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, (IUserContext _, uint _, ref EventArea a) =>
        {
            for (int i = 0; i < 16; i++) a.Payload[i] = (byte)(0xA0 + i);
            a.Size = size;
            a.PublishState(EventState.Done);
            return true;
        });
        ulong ld = rig.Code(a => a.movdqu(xmm2, __xmmword_ptr[rbx]));
        rig.Guest.Add(0, Mmio(ld, 16, false));
        rig.Run();
        Assert.Single(rig.Deliveries);
        UInt128 want = 0;
        for (int i = 15; i >= 0; i--) want = want << 8 | (byte)(0xA0 + i);
        Assert.Equal(want, rig.K.State.Xmm(0, 2));
        Assert.Equal(ld + 4, rig.Guest.Entries[1].Rip);
        Assert.Equal(0, rig.K.InternalErrors);
    }
}

using Copra.Abi;
using Copra.Hot.Exit;
using Copra.User;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// A read-modify-write's write side goes where its read side went (hot/Exit/ExitPipeline.cs AfterRead: the GPA the read
/// took to a device, kept for the element's write, cleared when the next element starts), and only the registers such a
/// form writes wait for the write (ExitPipeline.Wide.cs Compute: XCHG, XADD, the CMPXCHGs). Through <see cref="VmmRig"/>.
/// </summary>
public sealed class RmwWriteSideRuleTests
{
    const ulong NoIf = 0x2;
    const ulong At = VmmRig.Dev + 0x40;

    [Fact]
    public void An_add_to_a_device_writes_the_sum_where_it_read()
    {
        using var rig = new VmmRig();
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, VmmRig.Answers(0x10));
        ulong add = rig.Code(a => a.add(__dword_ptr[rbx + 8], eax));
        rig.Guest.Add(0, new GuestExit(ExitReason.Mmio, [(3, At - 8), (0, 5)], Rip: add, Gpa: At, Size: 4, Rflags: NoIf),
            new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf));
        rig.Run();
        Assert.Equal([(AccessDirection.Read, At), (AccessDirection.Write, At)], rig.Deliveries.Select(d => (d.Area.Direction, d.Area.Address)));
        Assert.Equal(0x15UL, rig.Deliveries[1].Area.Data);
        Assert.Equal((add + 3, 5UL), (rig.Guest.Entries[1].Rip, rig.Guest.Entries[1].Rax));
    }

    [Fact]
    public void A_page_made_read_only_between_the_read_and_the_write_does_not_fault_the_write()
    {
        // The CPU translates a read-modify-write's operand once (for a write, at its read). The model's answer to the read
        // makes the page read-only and drops the vCPU's cached translations: the write still goes where the read went.
        using var rig = new VmmRig();
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, (IUserContext _, uint _, ref EventArea a) =>
        {
            if (a.Direction == AccessDirection.Read)
            {
                ulong pte = PlainMemoTests.Pte(rig.K.Memory, rig.K.State.Cr3(0), At);
                rig.K.Memory.WriteU64(pte, rig.K.Memory.ReadU64(pte) & ~2UL);
                rig.K.InvalidateCaches(0);
                a.Data = 0x10;
            }
            a.PublishState(EventState.Done);
            return true;
        });
        ulong add = rig.Code(a => a.add(__dword_ptr[rbx], eax));
        rig.Guest.Add(0, new GuestExit(ExitReason.Mmio, [(3, At), (0, 5)], Rip: add, Gpa: At, Size: 4, Rflags: NoIf),
            new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf));
        rig.Run();
        Assert.Equal([AccessDirection.Read, AccessDirection.Write], rig.Deliveries.Select(d => d.Area.Direction));
        Assert.Equal(0x15UL, rig.Deliveries[1].Area.Data);
        Assert.Equal((add + 2, 0UL), (rig.Guest.Entries[1].Rip, rig.Guest.Entries[1].PendingEvent));   // done, no #PF
    }

    [Fact]
    public void A_compare_with_a_device_leaves_no_write_target_for_the_next_instruction()
    {
        // CMP [dev], EAX reads the device and writes nothing; the ADD after it has its operand in RAM (the exit's GPA is
        // RAM). Its write is RAM's: neither the device nor the compare's GPA sees it.
        using var rig = new VmmRig();
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, VmmRig.Answers(0x10));
        ulong ram = rig.Layout.Data + 0x100;
        rig.K.Memory.WriteU32(ram, 0x1000);
        ulong cmp = rig.Code(a => a.cmp(__dword_ptr[rbx], eax));
        ulong add = rig.Code(a => a.add(__dword_ptr[rsi], eax));
        rig.Guest.Add(0,
            new GuestExit(ExitReason.Mmio, [(3, At), (0, 5)], Rip: cmp, Gpa: At, Size: 4, Rflags: NoIf),
            new GuestExit(ExitReason.Mmio, [(6, ram), (0, 5)], Rip: add, Gpa: ram, Size: 4, Rflags: NoIf),
            new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf));
        rig.Run();
        Assert.Equal([(AccessDirection.Read, At)], rig.Deliveries.Select(d => (d.Area.Direction, d.Area.Address)));
        Assert.Equal(0x1005u, rig.K.Memory.ReadU32(ram));
        Assert.Equal(add + 2, rig.Guest.Entries[2].Rip);
    }
}

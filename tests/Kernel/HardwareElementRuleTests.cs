using Xunit;
using static Copra.Tests.Kernel.HardwareRig;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// What the hardware pipeline (ExitPipeline.Hardware.cs, HardwareElement and HardwareDone) performs for a hardware exit:
/// the one side the record names, at the record's address, size and data (the hardware's values win over the decode's),
/// and what it hands back. Through <see cref="HardwareRig"/>; values are read back through later hardware reads.
/// </summary>
public class HardwareElementRuleTests
{
    const ulong Window = Dev + 0x1000, Scratch = Dev + 8;

    static HardwareRig Run(Action<Builder> build, Action<HardwareRig>? before = null)
    {
        var rig = new HardwareRig(build);
        before?.Invoke(rig);
        rig.Run();
        return rig;
    }

    [Fact]
    public void A_wide_store_reaches_the_device_as_the_hardwares_8_byte_fragments_and_a_wide_read_gets_them_back()
    {
        using var rig = Run(b =>
        {
            b.Add("movdqu [m], xmm0", a => a.movdqu(__xmmword_ptr[rbx + 0x1000], xmm0), [(3, Dev)],
                [HwSide.Store(Window, 8, 0x1111_2222_3333_4444), HwSide.Store(Window + 8, 8, 0x5555_6666_7777_8888)]);
            b.Add("movdqu xmm1, [m]", a => a.movdqu(xmm1, __xmmword_ptr[rbx + 0x1000]), [(3, Dev)], [HwSide.Read(Window, 8), HwSide.Read(Window + 8, 8)]);
            b.Add("mov rax, [m+4]", a => a.mov(rax, __qword_ptr[rbx + 0x1004]), [(3, Dev)], [HwSide.Read(Window + 4, 8)]);
        });
        Assert.All(rig.Outcomes, o => Assert.True(o.Mismatches == 0, o.ToString()));
        Assert.Equal([0UL, 0UL, 0x1111_2222_3333_4444UL, 0x5555_6666_7777_8888UL, 0x7777_8888_1111_2222UL], rig.Outcomes.Select(o => o.HandedBack ?? 1));
        Assert.Equal(5, rig.Stats.DeviceRoundTrips);
    }

    [Fact]
    public void Where_the_decodes_size_disagrees_the_device_gets_the_hardwares_size()
    {
        using var rig = Run(b =>
        {
            b.Add("mov [m], rax (the hardware says 4 bytes)", a => a.mov(__qword_ptr[rbx + 0x1000], rax), [(3, Dev), (0, 0x1111_2222_3333_4444)],
                [HwSide.Store(Window, 4, 0x1111_2222_3333_4444)]);
            b.Add("mov rax, [m]", a => a.mov(rax, __qword_ptr[rbx + 0x1000]), [(3, Dev)], [HwSide.Read(Window, 8)]);
            b.Add("mov eax, [m] (the hardware says 2 bytes)", a => a.mov(eax, __dword_ptr[rbx + 0x1000]), [(3, Dev)], [HwSide.Read(Window, 2)]);
        });
        Assert.Equal(1, rig.Outcomes[0].Size);
        Assert.Equal(0x3333_4444UL, rig.Outcomes[1].HandedBack);
        Assert.Equal(1, rig.Outcomes[2].Size);
        Assert.Equal(0x4444UL, rig.Outcomes[2].HandedBack);
    }

    [Fact]
    public void A_hardware_side_at_a_ram_address_writes_the_hardwares_data_at_its_size_and_a_read_hands_back_the_ram()
    {
        using var rig = Run(b =>
        {
            ulong ram = b.Layout.Data;
            b.Add("mov [m], eax", a => a.mov(__dword_ptr[rbx], eax), [(3, ram), (0, 0xCAFE_BABE)], [HwSide.Store(ram, 4, 0xCAFE_BABE)]);
            b.Add("mov [m], rax", a => a.mov(__qword_ptr[rbx + 0x10], rax), [(3, ram), (0, 0x0102_0304_0506_0708)], [HwSide.Store(ram + 0x10, 8, 0x0102_0304_0506_0708)]);
            b.Add("mov eax, [m]", a => a.mov(eax, __dword_ptr[rbx + 0x20]), [(3, ram)], [HwSide.Read(ram + 0x20, 4)]);
        }, r =>
        {
            r.Memory.WriteU64(r.Data, 0x7777_7777_7777_7777);
            r.Memory.WriteU64(r.Data + 0x18, 0x7777_7777_7777_7777);
            r.Memory.WriteU64(r.Data + 0x20, 0x9999_9999_8765_4321);
        });
        Assert.All(rig.Outcomes, o => Assert.True(o.Mismatches == 0, o.ToString()));
        Assert.Equal(0x7777_7777_CAFE_BABEUL, rig.Memory.ReadU64(rig.Data));
        Assert.Equal(0x0102_0304_0506_0708UL, rig.Memory.ReadU64(rig.Data + 0x10));
        Assert.Equal(0x7777_7777_7777_7777UL, rig.Memory.ReadU64(rig.Data + 0x18));
        Assert.Equal([0UL, 0UL, 0x8765_4321UL], rig.Outcomes.Select(o => o.HandedBack ?? 1));
        Assert.Equal(0, rig.Stats.DeviceRoundTrips);
        Assert.Equal(3, rig.Stats.Completed);
    }

    [Fact]
    public void A_port_write_gives_the_device_the_hardwares_data()
    {
        using var rig = Run(b =>
        {
            b.Add("out dx, al", a => a.@out(dx, al), [(2, UartScratch), (0, 0x11)], [HwSide.Out(UartScratch, 1, 0x66)]);
            b.Add("in al, dx", a => a.@in(al, dx), [(2, UartScratch)], [HwSide.In(UartScratch, 1)]);
        });
        Assert.Equal(1, rig.Outcomes[0].Data);
        Assert.Equal(0x66UL, rig.Outcomes[1].HandedBack);
    }

    [Fact]
    public void A_read_modify_writes_write_is_checked_against_what_its_read_returned()
    {
        using var rig = Run(b =>
        {
            b.Add("mov [m], eax", a => a.mov(__dword_ptr[rbx + 8], eax), [(3, Dev), (0, 5)], [HwSide.Store(Scratch, 4, 5)]);
            // ADD: the hardware reads 5, adds EAX (3) and writes 8; then XCHG reads 8 and writes EAX.
            b.Add("add [m], eax", a => a.add(__dword_ptr[rbx + 8], eax), [(3, Dev), (0, 3)], [HwSide.Read(Scratch, 4), HwSide.Store(Scratch, 4, 8)]);
            b.Add("xchg [m], eax", a => a.xchg(__dword_ptr[rbx + 8], eax), [(3, Dev), (0, 0x42)], [HwSide.Read(Scratch, 4), HwSide.Store(Scratch, 4, 0x42)]);
            // SUB reported with the value an ADD would write: a data mismatch.
            b.Add("sub [m], eax", a => a.sub(__dword_ptr[rbx + 8], eax), [(3, Dev), (0, 2)], [HwSide.Read(Scratch, 4), HwSide.Store(Scratch, 4, 0x44)]);
        });
        Assert.Equal(5UL, rig.Outcomes[1].HandedBack);
        Assert.Equal(8UL, rig.Outcomes[3].HandedBack);
        Assert.Equal([0L, 0, 0, 0, 0, 0, 1], rig.Outcomes.Select(o => o.Data));
        Assert.Equal(1, rig.Stats.DecodeMismatch);
    }

    [Fact]
    public void Nothing_the_hardware_pipeline_does_moves_rip_or_counts_more_than_one_completion_per_exit()
    {
        using var rig = Run(b =>
        {
            b.Add("add [m], eax", a => a.add(__dword_ptr[rbx + 8], eax), [(3, Dev), (0, 3)], [HwSide.Read(Scratch, 4), HwSide.Store(Scratch, 4, 3)]);
            b.Add("mov eax, [m]", a => a.mov(eax, __dword_ptr[rbx + 8]), [(3, Dev)], [HwSide.Read(Scratch, 4)]);
        });
        // The replay checked RIP after every exit: the read side left it at the instruction, the hardware moved it after the write.
        Assert.Equal(3, rig.Stats.Completed);
        Assert.Equal(3, rig.Stats.HardwareChecked);
        Assert.Equal(0, rig.Stats.InFlight);
        Assert.Equal(3UL, rig.Outcomes[2].HandedBack);
    }
}

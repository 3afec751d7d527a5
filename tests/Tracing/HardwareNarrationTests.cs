using Copra.Kernel.Exit;
using Copra.Tests.Kernel;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Tracing;

/// <summary>`copra trace` on a hardware-completed exit (ExitPipeline.Hardware.cs): the side is narrated as the hardware's, and
/// the end says what the hardware was handed (nothing for a write, the value for a read) and that it finishes the instruction.</summary>
public class HardwareNarrationTests
{
    static List<string> Narrate(long exit)
    {
        var lines = new List<string>();
        using var rig = new HardwareRig(b =>
        {
            b.Add("mov [m], eax", a => a.mov(__dword_ptr[rbx + 8], eax), [(3, HardwareRig.Dev), (0, 0x5AB)], [HwSide.Store(HardwareRig.Dev + 8, 4, 0x5AB)]);
            b.Add("mov eax, [m]", a => a.mov(eax, __dword_ptr[rbx + 8]), [(3, HardwareRig.Dev)], [HwSide.Read(HardwareRig.Dev + 8, 4)]);
            b.Add("mov [ram], eax", a => a.mov(__dword_ptr[rbx + 8], eax), [(3, b.Layout.Data), (0, 0x5AC)], [HwSide.Store(b.Layout.Data + 8, 4, 0x5AC)]);
        });
        rig.Sys.Kernel.Tracer = new ExitNarration(exit, lines.Add);
        rig.Run();
        return lines;
    }

    [Fact]
    public void A_hardware_write_is_narrated_as_the_hardwares_side_and_ends_with_the_hardware_finishing_it()
    {
        var lines = Narrate(1);
        Assert.Contains(lines, l => l.Contains("(the hardware's)"));
        Assert.Contains(lines, l => l.Contains("write done; the hardware finishes the instruction"));
        Assert.DoesNotContain(lines, l => l.Contains("in hand"));
    }

    [Fact]
    public void A_hardware_write_to_ram_ends_as_a_write_with_nothing_handed_back()
    {
        var lines = Narrate(3);
        Assert.Contains(lines, l => l.Contains("(the hardware's)"));
        Assert.Contains(lines, l => l.Contains("write done; the hardware finishes the instruction"));
        Assert.DoesNotContain(lines, l => l.Contains("in hand"));
    }

    [Fact]
    public void A_hardware_read_ends_with_the_value_handed_to_the_hardware()
    {
        var lines = Narrate(2);
        Assert.Contains(lines, l => l.Contains("(the hardware's)"));
        Assert.Contains(lines, l => l.Contains("value 0x5ab in hand; the hardware finishes the instruction"));
        Assert.DoesNotContain(lines, l => l.Contains("write done"));
    }
}

using Copra.Kernel.Machine;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// A VM's RAM is whole 4 KiB pages, fixed when the VM is made: the plain memo replays an access to a page that once led
/// to a device without asking whether it is RAM (hot/Exit/ExitPipeline.Plain.cs), which holds only if no page is part
/// RAM. The constructor is where that is enforced.
/// </summary>
public class VmRamRangeRuleTests
{
    static VmObject Vm(ulong b, ulong l) => new(1, 0, 1, [(b, l)], 1);

    [Theory]
    [InlineData(0x10_0000UL, 0x800UL)]        // ends mid-page
    [InlineData(0x10_0800UL, 0x1000UL)]       // starts mid-page
    [InlineData(0x10_0000UL, 0x1001UL)]       // one byte into the next page
    [InlineData(0x10_0000UL, 0UL)]            // empty
    public void A_ram_range_that_is_not_whole_pages_is_refused(ulong b, ulong l)
    {
        var e = Assert.Throws<ArgumentException>(() => Vm(b, l));
        Assert.Contains("not whole 4 KiB pages", e.Message);
    }

    [Fact]
    public void Whole_pages_are_taken_and_every_byte_of_them_is_ram()
    {
        var vm = Vm(0x10_0000, 0x2000);
        Assert.True(vm.IsRam(0x10_0000, 0x2000));
        Assert.True(vm.IsRam(0x10_1FFF, 1));
        Assert.False(vm.IsRam(0x10_2000, 1));
        Assert.False(vm.IsRam(0xF_FFFF, 1));
    }
}

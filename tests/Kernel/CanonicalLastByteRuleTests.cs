using Copra.Hot.Exit;
using Copra.Kernel.Backends;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// 64-bit mode, kernel-emulated: the whole operand must be canonical (hot/Exit/ExitPipeline.Faults.cs, CanonicalFaults),
/// not only its first byte. A word whose first byte is the lower half's last (0x7FFF_FFFF_FFFF) and whose second is the
/// first non-canonical address is #GP(0) from the check, before any walk (the page there is not mapped: a walk would
/// report #PF).
/// </summary>
public class CanonicalLastByteRuleTests
{
    const ulong Dev = 0xFEB0_0000;

    [Fact]
    public void An_operand_whose_last_byte_leaves_the_lower_canonical_half_is_GP_not_PF()
    {
        Step? load = null;
        using var sys = FaultSemanticsTests.Boot(
            (r, l) => load = r.Add("mov ax, [rbx] (rbx 0x7fffffffffff)", a => a.mov(ax, __word_ptr[rbx]), ExitReason.Mmio, Dev, 2, false, [(3, 0x7FFF_FFFF_FFFF)], []),
            longMode: true);
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        var e = Assert.Single(sys.Replay!.Exceptions);
        Assert.Equal(load!.Text, e.Step);
        Assert.Equal(13UL, e.Event & 0xFF);
        Assert.Equal(0UL, e.Event >> 32);
        Assert.Equal(1, sys.Kernel.Stats.SegmentFaults);
    }
}

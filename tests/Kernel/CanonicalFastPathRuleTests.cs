using Copra.Hot.Exit;
using Copra.Kernel.Backends;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// The canonical check's two-compare shortcut (hot/Exit/ExitPipeline.Faults.cs, CanonicalFaults) passes only an access
/// whose first and last bytes lie in the same canonical half: a non-SS operand wholly inside the non-canonical hole
/// (bits 63:47 neither all 0 nor all 1, the same for its first and last byte) is #GP(0) and reaches no device.
/// </summary>
public class CanonicalFastPathRuleTests
{
    const ulong Dev = 0xFEB0_0000;

    [Theory]
    [InlineData(0x8000_0000_0000_0000UL)]   // bits 63:47 = 1 0000 0000 0000 0000
    [InlineData(0xFFFF_0000_0000_0000UL)]   // bits 63:47 = 1 1111 1111 1111 1110
    [InlineData(0x0000_8000_0000_0000UL)]   // bits 63:47 = 0 0000 0000 0000 0001
    public void An_operand_inside_the_non_canonical_hole_is_GP(ulong address)
    {
        Step? hole = null;
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            hole = r.Add($"mov eax, [rbx] (0x{address:x})", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, address)], []);
            r.Add("mov eax, [rbx] (canonical: the device's ID)", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], [],
                expect: Copra.User.Programs.TestDeviceRegs.IdValue);
        }, longMode: true);
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        var e = Assert.Single(sys.Replay!.Exceptions);
        Assert.Equal(hole!.Text, e.Step);
        Assert.Equal(13UL, e.Event & 0xFF);
        Assert.Equal(0UL, e.Event >> 32);
        Assert.Equal(1, sys.Kernel.Stats.SegmentFaults);
        Assert.Equal(1, sys.Kernel.Stats.DeviceRoundTrips);
    }
}

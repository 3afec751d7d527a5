using Copra.Hot.Exit;
using Copra.Kernel.Backends;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// Every exit taken is counted once by its reason (hot/Exit/ExitPipeline.cs, HandleExit): an MMIO exit as Mmio, a port
/// exit as Io, the program's HLT as Hlt, each also as Taken. Through the replay guest in 32-bit protected mode.
/// </summary>
public class ExitKindCountRuleTests
{
    const ulong Dev = 0xFEB0_0000, Scratch = Dev + 0x08;
    const ushort UartScratch = 0x3F8 + 7;

    [Fact]
    public void Mmio_and_port_exits_are_counted_by_their_reason()
    {
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            r.Add("mov [ebx], eax", a => a.mov(__dword_ptr[ebx], eax), ExitReason.Mmio, Scratch, 4, true, [(3, Scratch), (0, 0x77)], []);
            r.Add("mov eax, [ebx]", a => a.mov(eax, __dword_ptr[ebx]), ExitReason.Mmio, Scratch, 4, false, [(3, Scratch)], [], expect: 0x77);
            r.Add("mov eax, [ebx] again", a => a.mov(eax, __dword_ptr[ebx]), ExitReason.Mmio, Scratch, 4, false, [(3, Scratch)], [], expect: 0x77);
            r.Add("out dx, al", a => a.@out(dx, al), ExitReason.Io, 0, 1, true, [(2, UartScratch), (0, 0x5A)], [], port: UartScratch);
        });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        var st = sys.Kernel.Stats;
        Assert.Equal(3, st.Mmio);
        Assert.Equal(1, st.Io);
        Assert.Equal(1, st.Hlt);
        Assert.Equal(5, st.Taken);
    }
}

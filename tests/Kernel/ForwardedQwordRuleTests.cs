using Copra.Hot.Exit;
using Copra.Kernel.Backends;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// A forwarded access of exactly 8 bytes goes to the host as one sized access, not as a wide one (hot/Exit/ExitPipeline.cs
/// Unowned: only more than 8 bytes take the wide path): a qword stored into the modelled host's scratch page comes back
/// whole from a qword load. Through the replay guest in long mode.
/// </summary>
public class ForwardedQwordRuleTests
{
    const ulong Scratch = Copra.Kernel.Exit.ModelledHost.ScratchBase + 0x40;

    [Fact]
    public void A_forwarded_qword_store_and_load_move_all_eight_bytes()
    {
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            r.Add("mov [rsi], rcx (nobody's: forwarded)", a => a.mov(__qword_ptr[rsi], rcx), ExitReason.Mmio, Scratch, 8, true, [(6, Scratch), (1, 0x1122_3344_5566_7788)], []);
            r.Add("mov rax, [rsi] (forwarded)", a => a.mov(rax, __qword_ptr[rsi]), ExitReason.Mmio, Scratch, 8, false, [(6, Scratch), (0, 0)], [],
                expect: 0x1122_3344_5566_7788).ExpectMask = ulong.MaxValue;
        }, longMode: true);
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(2, sys.Kernel.Stats.Forwarded);
        Assert.Equal(0, sys.Kernel.Stats.ForwardFailures);
    }
}

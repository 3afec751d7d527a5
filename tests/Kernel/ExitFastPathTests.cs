using Copra.Hot.Exit;
using Copra.Kernel.Backends;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// The exit path's common-case shortcuts (issue 13) through the real pipeline (replay backend, the test device on the
/// other side): each must give what the general path gives, and step aside when its cached inputs changed.
/// </summary>
public class ExitFastPathTests
{
    const ulong Scratch = 0xFEB0_0000 + 0x08;   // the test device's scratch register (reads back what was written)

    /// <summary>
    /// The fetch's shortcut reads the instruction's bytes as two words from the code-page entry and the decode cache
    /// answers on them: code rewritten in place between two exits at one RIP must be decoded afresh. The second
    /// exit's instruction is rewritten from <c>mov eax,[rbx]</c> (8B 03) to <c>mov ecx,[rbx]</c> (8B 0B) before the
    /// kernel fetches it: the value lands in ECX and EAX keeps what the step's glue set (0). A stale decode would load
    /// EAX and leave ECX 0.
    /// </summary>
    [Fact]
    public void Code_rewritten_in_place_between_two_exits_at_one_rip_is_decoded_afresh()
    {
        Step? load = null;
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            r.Add("mov dword [rbx], 0x5A5A1234 (the test device's scratch register)", a => a.mov(__dword_ptr[rbx], 0x5A5A_1234), ExitReason.Mmio, Scratch, 4, true, [(3, Scratch)], []);
            load = r.Add("mov eax, [rbx] (rewritten to mov ecx, [rbx] before the second exit)", a => a.mov(eax, __dword_ptr[rbx]),
                ExitReason.Mmio, Scratch, 4, false, [(3, Scratch), (0, 0), (1, 0)], []);
        }, longMode: true, program: p => { p.LoopStart = 1; p.LoopEnd = 2; p.Iterations = 2; });
        var k = sys.Kernel;
        int exits = 0;
        bool rewritten = false;
        k.OnExitTaken = v =>
        {
            if (++exits != 3) return;   // the write, the first load, then the load again at the same RIP
            Assert.Equal(0x03, k.Memory.ReadU8(load!.Rip + 1));   // the code is identity-mapped: its ModRM byte
            k.Memory.WriteU8(load.Rip + 1, 0x0B);
            rewritten = true;
        };
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.True(rewritten);
        Assert.Equal(0x5A5A_1234UL, k.State.Gpr(0, 1));
        Assert.Equal(0UL, k.State.Gpr(0, 0));
        Assert.Equal(3, k.Stats.Completed);
    }
}

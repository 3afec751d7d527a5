using Copra.Hot.Exit;
using Copra.Kernel.Backends;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// The exit must agree with the instruction the kernel decodes at RIP (hot/Exit/ExitPipeline.cs, BeginAccess): an MMIO
/// exit whose bytes are a port instruction, an I/O exit whose bytes access memory, and an immediate-port instruction
/// whose port is not the one the exit names are each #GP(0), counted as a decode mismatch, and reach no device. An I/O
/// exit that names no port (0), and a DX-port instruction (its port is DX, whatever the exit says), go through.
/// </summary>
public class ExitDecodeAgreementRuleTests
{
    const ulong Dev = 0xFEB0_0000;
    const ushort UartScratch = 0x3F8 + 7;

    [Fact]
    public void An_exit_that_disagrees_with_the_decoded_instruction_is_GP_and_counted_and_reaches_no_device()
    {
        Step? portBytes = null, memBytes = null, otherPort = null;
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            portBytes = r.Add("in al, dx behind an MMIO exit", a => a.@in(al, dx), ExitReason.Mmio, Dev + 8, 1, false, [(2, UartScratch)], []);
            memBytes = r.Add("mov [ebx+8], eax behind an I/O exit", a => a.mov(__dword_ptr[ebx + 8], eax), ExitReason.Io, 0, 4, true, [(3, Dev), (0, 0x66)], [], port: UartScratch);
            otherPort = r.Add("out 0x80, al behind an exit for port 0x3ff", a => a.@out(0x80, al), ExitReason.Io, 0, 1, true, [(0, 0x77)], [], port: UartScratch);
            // The same instructions where the exit agrees, or names no port, or the port is DX's: they go through.
            r.Add("mov dword [ebx+8], 0x99 (agrees)", a => a.mov(__dword_ptr[ebx + 8], 0x99), ExitReason.Mmio, Dev + 8, 4, true, [(3, Dev)], []);
            r.Add("out dx, al (DX names the UART scratch; the exit says 0x80)", a => a.@out(dx, al), ExitReason.Io, 0, 1, true, [(2, UartScratch), (0, 0x5C)], [], port: 0x80);
            r.Add("in al, 0x80 behind an exit that names no port", a => a.@in(al, 0x80), ExitReason.Io, 0, 1, false, [(0, 0)], [], port: 0);
            r.Add("in al, dx (UART scratch: 0x5c)", a => a.@in(al, dx), ExitReason.Io, 0, 1, false, [(2, UartScratch), (0, 0)], [], port: UartScratch, expect: 0x5C);
            r.Add("mov eax, [ebx+8] (0x99: nothing else was written)", a => a.mov(eax, __dword_ptr[ebx + 8]), ExitReason.Mmio, Dev + 8, 4, false, [(3, Dev)], [], expect: 0x99);
        });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        var k = sys.Kernel;
        foreach (var s in new[] { portBytes!, memBytes!, otherPort! })
        {
            var e = Assert.Single(sys.Replay!.Exceptions, x => x.Step == s.Text);
            Assert.Equal(13UL, e.Event & 0xFF);
            Assert.Equal(1UL << 11, e.Event & (1UL << 11));   // with an error code
            Assert.Equal(0UL, e.Event >> 32);                  // of 0
            Assert.Equal(s.Rip, e.Rip);
        }
        Assert.Equal(3, sys.Replay!.ExceptionsSeen);
        Assert.Equal(3, k.Stats.DecodeMismatch);
        Assert.Equal(3, k.Stats.Faulted);
        Assert.Equal(5, k.Stats.Completed + k.Stats.Forwarded);
    }
}

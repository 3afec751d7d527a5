using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Kernel.Backends;
using Copra.Kernel.Core;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// What <c>copra trace</c> tells of an element's sides (hot/Exit/ExitPipeline.cs MemorySide, AfterRead, Unowned): the memory
/// side's GPA and whether it is RAM, the value in hand after the read (a store form has read nothing: 0, even after a POP
/// left a stack value behind), the write the element goes on to, and an access nobody registered forwarded to the host with
/// its modelled cost; the forward is also the kernel trace's Forward record. Word for word, through the replay guest in
/// 32-bit protected mode with a tracer following every exit (StageNarrationRuleTests' rig).
/// </summary>
public sealed class SideNarrationRuleTests
{
    const ulong Dev = 0xFEB0_0000, Scratch = ModelledHostScratch + 0x10;
    const ulong ModelledHostScratch = Copra.Kernel.Exit.ModelledHost.ScratchBase;

    [Fact]
    public void The_sides_the_value_in_hand_the_write_and_a_forward_are_told_in_the_followed_exits_lines()
    {
        ulong top = 0;
        using var sys = StageNarrationRuleTests.Boot((r, l) =>
        {
            top = l.StackTop(0);
            var f = StageNarrationRuleTests.Flat();
            r.Add("mov dword [ebx+8], 0x77", a => a.mov(__dword_ptr[ebx + 8], 0x77), ExitReason.Mmio, Dev + 8, 4, true, [(3, Dev)], f);
            r.Add("push dword [ebx+8]", a => a.push(__dword_ptr[ebx + 8]), ExitReason.Mmio, Dev + 8, 4, false, [(3, Dev), (4, top)], f);
            r.Add("pop dword [ebx+8] (0x77 back; the stack value is left behind)", a => a.pop(__dword_ptr[ebx + 8]), ExitReason.Mmio, Dev + 8, 4, true, [(3, Dev)], f);
            r.Add("mov dword [ebx+8], 0x99", a => a.mov(__dword_ptr[ebx + 8], 0x99), ExitReason.Mmio, Dev + 8, 4, true, [(3, Dev)], f);
            r.Add("mov eax, [ebx+8]", a => a.mov(eax, __dword_ptr[ebx + 8]), ExitReason.Mmio, Dev + 8, 4, false, [(3, Dev)], f, expect: 0x99);
            r.Add("mov [ebx+8], ecx", a => a.mov(__dword_ptr[ebx + 8], ecx), ExitReason.Mmio, Dev + 8, 4, true, [(3, Dev), (1, 0x55)], f);
            r.Add("add [ebx+8], edx", a => a.add(__dword_ptr[ebx + 8], edx), ExitReason.Mmio, Dev + 8, 4, false, [(3, Dev), (2, 0x11)], f);
            r.Add("mov eax, [esi] (nobody's: forwarded)", a => a.mov(eax, __dword_ptr[esi]), ExitReason.Mmio, Scratch, 4, false, [(6, Scratch)], f);
        }, out var t);
        Assert.True(sys.Run().Quiescent);
        Assert.True(sys.Replay!.Desyncs == 0 && sys.Replay.DataMismatches == 0, string.Join("\n", sys.Replay.Problems));
        var l = t.Lines;
        Assert.Contains($"read side: GPA 0x{Dev + 8:x} (not RAM: device lookup)", l);
        Assert.Contains($"write side: GPA 0x{Dev + 8:x} (not RAM: device lookup)", l);
        // The immediate store after the POP: nothing read (0, not the popped 0x77), its immediate written next.
        Assert.Contains("value 0x0 in hand; write-back done, RAX now 0x0, RFLAGS 0x2; next: write 0x99", l);
        // The load: the value and RAX, no write after it (the only line with 0x99 in hand).
        Assert.Contains("value 0x99 in hand; write-back done, RAX now 0x99, RFLAGS 0x2", l);
        // The store of ECX: nothing read, the write of ECX next.
        Assert.Contains("value 0x0 in hand; write-back done, RAX now 0x99, RFLAGS 0x2; next: write 0x55", l);
        // The ADD: 0x55 read, 0x66 to write.
        Assert.Contains(l, s => s.StartsWith("value 0x55 in hand; write-back done, RAX now 0x99, RFLAGS 0x", StringComparison.Ordinal) && s.EndsWith("; next: write 0x66", StringComparison.Ordinal));
        long cycles = sys.Kernel.Cost.ForwardCycles;
        Assert.Contains($"nobody registered Mmio 0x{Scratch:x}: forwarded to the host (+{cycles} modelled cycles)", l);
        var fwd = Assert.Single(sys.Kernel.Trace.Records, x => x.Kind == TraceKind.Forward);
        Assert.Equal((0L, (long)Scratch), (fwd.A, fwd.B));
    }
}

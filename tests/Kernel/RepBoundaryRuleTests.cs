using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Kernel.Backends;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// The REP rules of the exit path's element loop (hot/Exit/ExitPipeline.cs, BeginAccess and AfterWrite), through the real
/// pipeline (replay backend, the test device's window on the memory side): one exit runs at most
/// <see cref="ExitRules.MaxRepPerExit"/> elements and leaves RIP at the instruction with the count where it stopped; a
/// count of zero at the address size does nothing but move RIP.
/// </summary>
public class RepBoundaryRuleTests
{
    const ulong Dev = 0xFEB0_0000, Window = Dev + 0x1000;

    /// <summary>
    /// 256 elements fit one exit; 257 do not: the first exit stops after exactly 256 with ECX = 1 and RIP at the
    /// instruction, the guest re-executes it and the second exit stores the last byte. The element count starts again at
    /// every instruction: the 256-element REP after the resumed one runs whole in its one exit.
    /// </summary>
    [Fact]
    public void One_exit_runs_at_most_MaxRepPerExit_elements_and_the_count_starts_again_per_instruction()
    {
        Assert.Equal(256, ExitRules.MaxRepPerExit);
        Step? longRep = null, fitRep = null;
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            longRep = r.Add("rep stosb (257 elements)", a => a.rep.stosb(), ExitReason.Mmio, Window + 0x100, 1, true, [(7, Window + 0x100), (1, 257), (0, 0x5A)], []);
            longRep.Flags |= ExitFlags.String | ExitFlags.Rep;
            fitRep = r.Add("rep stosb (256 elements)", a => a.rep.stosb(), ExitReason.Mmio, Window + 0x400, 1, true, [(7, Window + 0x400), (1, 256), (0, 0xA5)], []);
            fitRep.Flags |= ExitFlags.String | ExitFlags.Rep;
            // Bytes 0x1FE..0x200 of the window are the 256th and 257th stores' and the one before; 0x201 was never written.
            r.Add("mov eax, [ebx+0xfe] (the last stores and the byte after them)", a => a.mov(eax, __dword_ptr[ebx + 0xFE]), ExitReason.Mmio, Window + 0x1FE, 4, false,
                [(3, Window + 0x100)], [], expect: 0x005A_5A5A);
        });
        var k = sys.Kernel;
        var rcxAtExit = new List<ulong>();
        k.OnExitTaken = _ => rcxAtExit.Add(k.State.Gpr(0, 1));
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        // Exits: the 257-element REP (ECX 257), its resumption (ECX 1), the 256-element REP (ECX 256), the read, HLT.
        Assert.Equal(new ulong[] { 257, 1, 256 }, rcxAtExit.Take(3));
        Assert.Equal(1, sys.Replay!.RepResumes);
        Assert.Equal(1, k.Stats.RepResumed);
        Assert.Equal(0, sys.Replay.ExceptionsSeen);
    }

    /// <summary>
    /// A REP with a count of zero at its address size runs no element and moves RIP: ECX = 0, and with a 16-bit address
    /// size (67h in 32-bit code) CX = 0 while ECX = 0x10000. ES's base points both at the window, whose bytes stay 0,
    /// and no device sees an access.
    /// </summary>
    [Fact]
    public void A_rep_whose_count_at_its_address_size_is_zero_runs_no_element_and_moves_rip()
    {
        ulong esBase = StateField.Seg(StateField.Es, StateField.Base);
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            var zero = r.Add("rep stosd (ECX 0)", a => a.rep.stosd(), ExitReason.Mmio, Window + 0x600, 4, true, [(7, 0x600), (1, 0), (0, 0x1111_1111)], [(esBase, Window)]);
            zero.Flags |= ExitFlags.String | ExitFlags.Rep;
            var cx = r.Add("a16 rep stosb (CX 0, ECX 0x10000)", a => a.db(0x67, 0xF3, 0xAA), ExitReason.Mmio, Window + 0x700, 1, true, [(7, 0x700), (1, 0x1_0000), (0, 0x22)], [(esBase, Window)]);
            cx.Flags |= ExitFlags.String | ExitFlags.Rep;
            r.Add("mov eax, [ebx+0x600] (untouched)", a => a.mov(eax, __dword_ptr[ebx + 0x600]), ExitReason.Mmio, Window + 0x600, 4, false, [(3, Window)], [(esBase, 0)], expect: 0);
            r.Add("mov eax, [ebx+0x700] (untouched)", a => a.mov(eax, __dword_ptr[ebx + 0x700]), ExitReason.Mmio, Window + 0x700, 4, false, [(3, Window)], [], expect: 0);
        });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(0, sys.Replay!.RepResumes);
        Assert.Equal(0, sys.Replay.ExceptionsSeen);
        Assert.Equal(2, sys.Kernel.Stats.DeviceRoundTrips);   // the two reads only
        Assert.Equal(4, sys.Kernel.Stats.Completed);
    }
}

using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Kernel.Backends;
using Copra.Kernel.Run;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// A VM that asks for unregistered accesses to be re-injected (#VC on SNP) gets the exception only for an instruction
/// none of which was done yet (hot/Exit/ExitPipeline.cs, Unowned: re-injection hands the whole instruction to the guest).
/// A REP STOSB that starts on the test device's window and runs past the device's range into nobody's addresses is
/// forwarded from its third element on and completes; the same address as an instruction's first access is #VC.
/// </summary>
public class ReinjectFirstElementRuleTests
{
    const ulong Dev = 0xFEB0_0000, End = Dev + 0x2000;
    const byte VectorVc = 29;

    [Fact]
    public void Only_an_instruction_with_nothing_done_is_reinjected_a_later_element_is_forwarded()
    {
        Step? rep = null, first = null;
        using var sys = Boot(r =>
        {
            rep = r.Add("rep stosb (two bytes on the device, two past its range)", a => a.rep.stosb(), ExitReason.Mmio, End - 2, 1, true, [(7, End - 2), (1, 4), (0, 0x33)], []);
            rep.Flags |= ExitFlags.String | ExitFlags.Rep;
            first = r.Add("mov eax, [ebx] (past the range: the first access)", a => a.mov(eax, __dword_ptr[ebx]), ExitReason.Mmio, End, 4, false, [(3, End)], []);
            r.Add("mov eax, [ebx+0x1ffc] (the REP's two bytes on the device)", a => a.mov(eax, __dword_ptr[ebx + 0x1FFC]), ExitReason.Mmio, End - 4, 4, false, [(3, Dev)], [], expect: 0x3333_0000);
        });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        var e = Assert.Single(sys.Replay!.Exceptions);
        Assert.Equal(first!.Text, e.Step);
        Assert.Equal(VectorVc, (byte)e.Event);
        Assert.Equal(first.Rip, e.Rip);
        var st = sys.Kernel.Stats;
        Assert.Equal(1, st.Reinjected);
        Assert.Equal(1, st.Forwarded);   // the REP: part of it went to the host
        Assert.Equal(0, st.Faulted);
    }

    /// <summary>One vCPU in flat 32-bit protected mode (no paging), on a VM that re-injects unregistered accesses.</summary>
    static CopraSystem Boot(Action<ReplayRig> build)
    {
        var sc = Scenario.Default() with { Vms = [new VmScenario(Vcpus: 1)], Unhandled = "reinject" };
        return new CopraSystem(sc, backend: (k, layouts) =>
        {
            var l = layouts[0];
            var gb = new GuestBuilder(k.Memory);
            gb.WriteGdt(l.Gdt);
            var start = GuestCpuState.ProtectedMode(PagingKind.None, 0, l.Gdt, (uint)l.Code, (uint)l.StackTop(0));
            var rig = new ReplayRig(gb, l.Code, 32);
            build(rig);
            start.ApplyTo(k.State, 0);
            k.State.OnEntry(0);
            return new ReplayBackend(k.State, [rig.Program()]);
        });
    }
}

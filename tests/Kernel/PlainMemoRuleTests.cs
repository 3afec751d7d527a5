using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Kernel.Backends;
using Copra.Kernel.Run;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// Rules of the plain memo's replay (hot/Exit/ExitPipeline.Plain.cs, ReplayPlain) that PlainMemoTests does not name, through
/// the real pipeline: a long-mode replay guest whose one MOV exits four times at one RIP (memoised at the third exit,
/// replayed from the fourth), on a VM that re-injects unregistered accesses (#VC on SNP).
/// </summary>
public class PlainMemoRuleTests
{
    const ulong Dev = 0xFEB0_0000;
    const int Exits = 4;
    const byte VectorVc = 29;

    /// <summary>
    /// A replayed exit starts a new instruction: nothing of it is done yet, so an access nobody registered is re-injected
    /// (#VC) as on the full path, though the memoised instruction before it completed (and left its first-element flag
    /// cleared). The fourth exit's operand moved to the host's scratch page, which no device owns.
    /// </summary>
    [Fact]
    public void A_replayed_exit_is_a_first_element_so_an_unregistered_operand_is_reinjected_not_forwarded()
    {
        Step? load = null;
        var valid = new bool[Exits + 2];
        using var sys = Boot(r => load = r.Add("mov eax, [rbx]", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], []));
        var k = sys.Kernel;
        int n = 0;
        k.OnExitTaken = _ =>
        {
            valid[++n] = k.ExitInFlight.Memo[0].Valid;
            if (n == Exits - 1) load!.Gpa = VmLayout.HostScratch;   // the hardware's fourth exit names the scratch page
            if (n == Exits) k.State.Gpr(0, 3) = VmLayout.HostScratch;
        };
        Assert.True(sys.Run().Quiescent);
        Assert.True(valid[Exits]);   // the fourth exit found the memo (and took the replay)
        var e = Assert.Single(sys.Replay!.Exceptions);
        Assert.Equal(VectorVc, (byte)e.Event);
        Assert.Equal(load!.Rip, e.Rip);
        var st = k.Stats;
        Assert.Equal(1, st.Reinjected);
        Assert.Equal(0, st.Forwarded);
        Assert.Equal(Exits - 1, st.DeviceRoundTrips);
    }

    /// <summary>One vCPU in long mode (the workload's page tables), the loop of <see cref="Exits"/> iterations, re-injecting.</summary>
    static CopraSystem Boot(Action<ReplayRig> build)
    {
        var sc = Scenario.Default() with { Vms = [new VmScenario(Vcpus: 1)], Unhandled = "reinject" };
        return new CopraSystem(sc, backend: (k, layouts) =>
        {
            var l = layouts[0];
            var wb = new WorkloadBuilder(k.Memory, l);
            var start = wb.InitialState(l.Code, 0);
            var rig = new ReplayRig(new GuestBuilder(k.Memory), l.Code, 64);
            build(rig);
            start.ApplyTo(k.State, 0);
            k.State.OnEntry(0);
            var p = rig.Program();
            p.LoopStart = 0; p.LoopEnd = 1; p.Iterations = Exits;
            return new ReplayBackend(k.State, [p]);
        });
    }
}

using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Kernel.Backends;
using Copra.Kernel.Core;
using Copra.Kernel.Run;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// <c>copra run --trace</c> marks a re-injected exit (hot/Exit/ExitPipeline.cs Unowned): with the trace kept and re-injection
/// the VM's policy, an access nobody registered becomes #VC and the kept records hold one Reinject mark for the vCPU with
/// the address nobody claimed. Through the replay guest in 32-bit protected mode.
/// </summary>
public class ReinjectMarkRuleTests
{
    const ulong Nobody = 0xFEB0_0000 + 0x2000;   // just past the test device's range

    [Fact]
    public void A_reinjected_exit_is_marked_with_the_address_nobody_registered()
    {
        var sc = Scenario.Default() with { Vms = [new VmScenario(Vcpus: 1)], Unhandled = "reinject" };
        using var sys = new CopraSystem(sc, keepTrace: true, backend: (k, layouts) =>
        {
            var l = layouts[0];
            var gb = new GuestBuilder(k.Memory);
            gb.WriteGdt(l.Gdt);
            var start = GuestCpuState.ProtectedMode(PagingKind.None, 0, l.Gdt, (uint)l.Code, (uint)l.StackTop(0));
            var rig = new ReplayRig(gb, l.Code, 32);
            rig.Add("mov eax, [ebx] (nobody's)", a => a.mov(eax, __dword_ptr[ebx]), ExitReason.Mmio, Nobody + 4, 4, false, [(3, Nobody + 4)], []);
            start.ApplyTo(k.State, 0);
            k.State.OnEntry(0);
            return new ReplayBackend(k.State, [rig.Program()]);
        });
        Assert.True(sys.Run().Quiescent);
        Assert.Equal(1, sys.Kernel.Stats.Reinjected);
        var mark = Assert.Single(sys.Kernel.Trace.Records, x => x.Kind == TraceKind.Reinject);
        Assert.Equal((0L, (long)(Nobody + 4)), (mark.A, mark.B));
    }
}

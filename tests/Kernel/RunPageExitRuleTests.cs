using Copra.Hot.Exit;
using Copra.Kernel.Backends;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// The exits the VMM handles through the run page (hot/Exit/ExitPipeline.cs, HandleExit): RDMSR and WRMSR each go to the
/// VMM as their own kind (its RDMSR answer, 0, lands in EDX:EAX; WRMSR changes no register) and are counted as MSR exits;
/// a shutdown exit is counted, kills the vCPU (the VMM reports it stopped) and nothing after it runs.
/// </summary>
public class RunPageExitRuleTests
{
    [Fact]
    public void Rdmsr_and_wrmsr_reach_the_vmm_as_themselves_and_are_counted()
    {
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            r.Add("rdmsr (ECX 0x10)", a => a.rdmsr(), ExitReason.MsrRead, 0, 0, false, [(1, 0x10), (0, 0x1234), (2, 0x5678)], [], expect: 0)
                .ExpectFields = [(2, 0, ulong.MaxValue)];
            r.Add("wrmsr (ECX 0x10, EDX:EAX 2:1)", a => a.wrmsr(), ExitReason.MsrWrite, 0, 0, false, [(1, 0x10), (0, 1), (2, 2)], [], expect: 1)
                .ExpectFields = [(2, 2, ulong.MaxValue)];
        });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        var st = sys.Kernel.Stats;
        Assert.Equal(2, st.Msr);
        Assert.Equal(0, st.Shutdown);
        Assert.Equal(0, sys.Replay!.ExceptionsSeen);
    }

    [Fact]
    public void A_shutdown_exit_is_counted_and_stops_the_vcpu()
    {
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            r.Add("mov eax, [ebx] (the device's ID)", a => a.mov(eax, __dword_ptr[ebx]), ExitReason.Mmio, 0xFEB0_0000, 4, false, [(3, 0xFEB0_0000)], [],
                expect: Copra.User.Programs.TestDeviceRegs.IdValue);
            r.Add("nop (reported as a shutdown)", a => a.nop(), ExitReason.Shutdown, 0, 0, false, [], []);
            r.Add("mov eax, [ebx] (never reached)", a => a.mov(eax, __dword_ptr[ebx]), ExitReason.Mmio, 0xFEB0_0000, 4, false, [(3, 0xFEB0_0000)], []);
        });
        Assert.True(sys.Run().Quiescent);
        var st = sys.Kernel.Stats;
        Assert.Equal(1, st.Shutdown);
        Assert.Equal(1, st.DeviceRoundTrips);
        Assert.Equal(0, st.Hlt);
        Assert.Contains("stopped: Shutdown", sys.Kernel.ConsoleText);
        Assert.Equal(0, sys.Kernel.InternalErrors);
    }
}

using Copra.Abi;
using Copra.User;
using Xunit;
using static Copra.Tests.Kernel.KernelHarness;

namespace Copra.Tests.Kernel;

/// <summary>
/// WAIT_FOR_EVENT is dispatched before the gate's table (SysCallGate.Enter, issue 13): it must keep every rule of the
/// table's path: counted as a call and a transition, never run for a thread whose process has exited, and its errors
/// mapped to ABI codes (the mapping is checked in EventObjectOwnershipTests' kept-lookup test).
/// </summary>
public class GateWaitDispatchTests
{
    [Fact]
    public void A_wait_from_a_thread_whose_process_has_exited_never_returns()
    {
        using var k = Boot();
        bool exitReturned = true, waitReturned = true;
        Start(k, ctx =>
        {
            exitReturned = Sys.Exit(ctx, 4).IsCompleted;
            waitReturned = Sys.WaitForEvent(ctx, 0x7777).IsCompleted;   // an unknown handle: ENOTFOUND if it ran
            return Task.CompletedTask;
        }, "/quitter");
        Drive(k);
        Assert.False(exitReturned);
        Assert.False(waitReturned);
        Assert.Equal(4, k.Processes.Single(p => p.Path == "/quitter").ExitCode);
    }

    [Fact]
    public void A_wait_counts_as_one_call_and_one_transition_and_charges_its_cpu()
    {
        using var k = Boot(cpus: 2);
        long calls0 = k.Gate.Calls, transitions0 = k.Gate.Transitions;
        long got = 0;
        Run(k, ctx => { got = Sys.WaitForEvent(ctx, 0x7777).Result; }, cpu: 1);
        Assert.Equal(Errno.ENOTFOUND, got);
        Assert.Equal(1, k.Gate.Calls - calls0);
        Assert.Equal(1, k.Gate.Transitions - transitions0);
        Assert.Equal(k.Cost.SyscallCycles, k.Cpus[1].Clock);
    }
}

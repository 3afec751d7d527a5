using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Kernel.Run;
using Xunit;
using KernelT = Copra.Kernel.Core.Kernel;

namespace Copra.Tests.Kernel;

/// <summary>
/// The drivers step CPUs with the host thread's execution-context flow suppressed (kernel/Core/Kernel.cs NoContextFlow):
/// a user thread resumed after a blocking call runs its continuation without a captured context to restore (the
/// builder's ExecutionContext.RunInternal, ~70 instructions per block and resume, is skipped), and the caller's thread
/// is left as it was found.
/// </summary>
public sealed class DriverContextFlowRuleTests
{
    [Fact]
    public void A_vmm_thread_resumed_after_waiting_on_its_vcpu_runs_without_a_captured_context()
    {
        using var rig = new VmmRig();
        rig.Guest.Add(0, new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: 2), new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: 2));
        var seen = new List<bool>();
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            // Runs in the vCPU thread after its WAIT_FOR_EVENT on the vCPU blocked and was resumed by the exit.
            seen.Add(ExecutionContext.IsFlowSuppressed());
            return VmmRig.Continue(ctx, why, ref p);
        });
        Assert.True(seen.Count >= 2, $"{seen.Count} run-page exits");
        Assert.All(seen, Assert.True);
        Assert.False(ExecutionContext.IsFlowSuppressed(), "the driver left the test's thread with flow suppressed");
        Assert.Null(KernelT.CurrentCpu);
    }

    [Theory]
    [InlineData(ExitFlavor.Forwarded)]
    [InlineData(ExitFlavor.MmioRead)]
    public void The_exit_rig_steps_exactly_the_exits_asked_for_and_leaves_the_thread_as_it_found_it(ExitFlavor flavor)
    {
        using var rig = new ExitRig(flavor, warmExits: 64);
        long before = rig.Done;
        rig.StepExits(37);
        Assert.Equal(before + 37, rig.Done);
        Assert.Null(KernelT.CurrentCpu);
        Assert.False(ExecutionContext.IsFlowSuppressed(), "the rig left the test's thread with flow suppressed");
        rig.Check();
    }

    [Fact]
    public void A_caller_that_suppressed_flow_itself_keeps_it_suppressed_and_the_driver_runs()
    {
        using var k = KernelHarness.Boot(cpus: 1);
        int ran = 0;
        var control = ExecutionContext.SuppressFlow();
        try
        {
            KernelHarness.Run(k, _ => ran++);
            Assert.True(ExecutionContext.IsFlowSuppressed(), "the driver restored a flow it did not suppress");
        }
        finally { control.Undo(); }
        Assert.Equal(1, ran);
        Assert.False(ExecutionContext.IsFlowSuppressed());
    }
}

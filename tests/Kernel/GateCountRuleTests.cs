using Copra.Abi;
using Copra.User;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// The gate's totals (kernel/Core/SysCallGate.cs) for calls made outside the drivers, where no CPU is current (a test, a
/// VMM's synchronous setup): each gate entry is one transition and one call, and each BATCH entry one more call, in the
/// gate's own counters, summed into <see cref="Copra.Kernel.Core.SysCallGate.Calls"/> and Transitions with the CPUs'.
/// </summary>
public sealed class GateCountRuleTests
{
    [Fact]
    public void Calls_and_batch_entries_made_outside_the_drivers_are_counted_once_each()
    {
        using var k = KernelHarness.Boot(cpus: 1);
        IUserContext? kept = null;
        SysBatch? batch = null;
        KernelHarness.Run(k, async ctx =>
        {
            uint vm = Sys.VmOpen(ctx, 1);
            uint ev = Sys.IoioEvent(ctx, vm, 0x510, 1);
            batch = new SysBatch(ctx, 2);
            kept = ctx;
            await Sys.WaitForEvent(ctx, ev);   // parks: nothing is ever delivered, so the thread stays alive
        });
        var gate = k.Gate;
        long calls = gate.Calls, transitions = gate.Transitions;
        Assert.Equal(2, Sys.Call(kept!, SysNr.Capabilities, Cap.Count));
        Assert.Equal((calls + 1, transitions + 1), (gate.Calls, gate.Transitions));
        batch!.Push(SysNr.Capabilities, Cap.Count);
        batch.Push(SysNr.Capabilities, Cap.Count);
        batch.Submit();
        Assert.All(batch.Completions.ToArray(), c => Assert.Equal(2, c.Result));
        Assert.Equal((calls + 4, transitions + 2), (gate.Calls, gate.Transitions));   // BATCH itself and its two entries; one entry into the kernel
    }
}

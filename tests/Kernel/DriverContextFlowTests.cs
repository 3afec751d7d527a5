using Xunit;
using static Copra.Tests.Kernel.KernelHarness;

namespace Copra.Tests.Kernel;

/// <summary>
/// The drivers run user threads with the host thread's execution context not flowing (Kernel.NoContextFlow: a
/// blocked user thread's continuation then resumes without ExecutionContext.RunInternal), and hand the caller's
/// thread back as they found it.
/// </summary>
public sealed class DriverContextFlowTests
{
    [Fact]
    public void The_deterministic_driver_runs_programs_without_context_flow_and_restores_the_callers()
    {
        Assert.False(ExecutionContext.IsFlowSuppressed());
        using var k = Boot();
        bool inside = false;
        Run(k, _ => { inside = ExecutionContext.IsFlowSuppressed(); });
        Assert.True(inside);
        Assert.False(ExecutionContext.IsFlowSuppressed());   // undone: the test's own thread flows again
    }

    [Fact]
    public void The_deterministic_driver_leaves_a_callers_suppression_in_place()
    {
        using var k = Boot();
        var flow = ExecutionContext.SuppressFlow();
        try
        {
            bool inside = false;
            Run(k, _ => { inside = ExecutionContext.IsFlowSuppressed(); });   // no "already suppressed" throw
            Assert.True(inside);
            Assert.True(ExecutionContext.IsFlowSuppressed());
        }
        finally { flow.Undo(); }
    }

    [Fact]
    public void The_parallel_driver_runs_programs_without_context_flow()
    {
        using var k = Boot();
        int inside = -1;
        Start(k, _ => { inside = ExecutionContext.IsFlowSuppressed() ? 1 : 0; return Task.CompletedTask; }, "/t");
        Assert.True(k.RunParallel(TimeSpan.FromMinutes(1)).Quiescent);
        Assert.Equal(1, Volatile.Read(ref inside));
    }
}

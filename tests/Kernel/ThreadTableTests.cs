using Copra.Abi;
using Xunit;
using static Copra.Tests.Kernel.KernelHarness;

namespace Copra.Tests.Kernel;

/// <summary>The kernel's thread table (read without the process lock by every CPU's inbox): it grows past its first
/// capacity and every id names its own thread, and a thread created past it is started by the inbox.</summary>
public sealed class ThreadTableTests
{
    [Fact]
    public void Every_created_thread_is_found_by_its_id_after_the_table_grew()
    {
        using var k = Boot();
        var tids = new List<long>();
        int ran = 0;
        Run(k, ctx =>
        {
            ulong entry = ctx.DefineEntry((c, arg) => { Interlocked.Increment(ref ran); return Task.CompletedTask; });
            for (int i = 0; i < 40; i++) tids.Add(Call(ctx, SysNr.ThreadCreate, entry, (ulong)i));
        });
        Assert.Equal(40, ran);   // each was started through the inbox's lookup
        Assert.Equal(40, tids.Distinct().Count());
        foreach (long tid in tids) Assert.Equal((int)tid, k.Thread((int)tid).Id);
        Assert.Equal(k.Threads.Count, k.Threads.Select(t => k.Thread(t.Id)).Distinct().Count());
    }
}

using Copra.Kernel.Exit;
using Copra.Kernel.Run;
using Xunit;
using Copra.Hot.Exit;

namespace Copra.Tests.Accounting;

/// <summary>
/// Every modelled sample carries the whole platform cost of its exit, including the TDCALLs the
/// kernel's own handling made, whether the exit finished inside the exit handler (forwarded, faulted,
/// run-page) or after a device model answered.
/// </summary>
public class ModelledCostTests
{
    static CopraSystem Tdx() => new(Scenario.Default() with
    {
        Platform = "tdx",
        Workload = new global::Copra.Kernel.Backends.WorkloadSpec { Iterations = 20 },
    });

    [Fact]
    public void A_forwarded_exit_on_TDX_is_charged_the_TDG_VP_RDs_its_decode_made()
    {
        using var sys = Tdx();
        sys.Run();
        var k = sys.Kernel;
        var c = k.Cost;
        // Decoding needs CR0, CR4, EFER, CS attributes and CR3: five reads after the exit invalidated them.
        Assert.Equal(c.ExitCycles + 5 * c.TdcallCycles + c.ForwardCycles, k.Stats.ModelledMedian(ExitKind.Forwarded));
    }

    [Fact]
    public void A_device_model_exit_on_TDX_is_charged_its_reads_and_the_models_syscall()
    {
        using var sys = Tdx();
        sys.Run();
        var k = sys.Kernel;
        var c = k.Cost;
        // At least the exit, its five reads and the model's syscall (a cross-CPU wake may add to some).
        Assert.True(k.Stats.ModelledMedian(ExitKind.MmioWrite) >= c.ExitCycles + 5 * c.TdcallCycles + c.SyscallCycles);
        // Every TDG.VP.RD the state store counted was charged to some exit.
        Assert.Equal(k.State.TotalTdReads - k.StateBaseline.Reads, k.Stats.TdReads);
    }
    [Fact]
    public void Every_TDG_VP_WR_the_entries_made_on_TDX_is_counted()
    {
        using var sys = Tdx();
        sys.Run();
        var k = sys.Kernel;
        long writes = k.State.TotalTdWrites - k.StateBaseline.Writes;
        Assert.True(writes > 0, "the run made no TDG.VP.WR");
        Assert.Equal(writes, k.Stats.TdWrites);
    }
    [Fact]
    public void On_TDX_an_entrys_span_in_the_kept_trace_is_the_exit_and_entry_cost_plus_its_TDG_VP_WRs()
    {
        // The display trace marks each entry's start and the guest's entry at the clocks they had: the span between is
        // ExitCycles plus one TdcallCycles per field the entry wrote back, never less.
        using var sys = new CopraSystem(Scenario.Default() with
        {
            Platform = "tdx",
            Workload = new global::Copra.Kernel.Backends.WorkloadSpec { Iterations = 20 },
        }, keepTrace: true);
        sys.Run();
        var k = sys.Kernel;
        var c = k.Cost;
        var spans = new List<long>();
        for (int cpu = 0; cpu < k.Cpus.Length; cpu++)
        {
            var r = k.Trace.RecordsOf(cpu);
            for (int i = 0; i + 1 < r.Length; i++)
                if (r[i].Kind == Copra.Kernel.Core.TraceKind.EntryStart && r[i + 1].Kind == Copra.Kernel.Core.TraceKind.GuestEnter)
                    spans.Add(r[i + 1].Clock - r[i].Clock);
        }
        Assert.NotEmpty(spans);
        Assert.All(spans, d => Assert.True(d >= c.ExitCycles && (d - c.ExitCycles) % c.TdcallCycles == 0, $"span {d}"));
        Assert.Contains(spans, d => d > c.ExitCycles);   // some entry wrote fields back
    }

    /// <summary>
    /// With the syscall, forward and wake costs set to 0, a TDX run's modelled cycles are exactly its exits' cost plus one
    /// TDCALL per TDG.VP.RD and TDG.VP.WR: every write an entry made back lands in the exit after it, every read in the
    /// exit that made it, and nothing else is charged. (An entry's writes added with the wrong sign, or dropped, breaks it.)
    /// </summary>
    [Fact]
    public void On_TDX_the_modelled_cycles_are_the_exits_and_their_TDCALLs_when_the_other_costs_are_zero()
    {
        using var sys = new CopraSystem(Scenario.Default() with
        {
            Platform = "tdx",
            Workload = new global::Copra.Kernel.Backends.WorkloadSpec { Iterations = 20 },
            Costs = new Dictionary<string, long> { ["syscall"] = 0, ["forward"] = 0, ["wake"] = 0 },
        });
        Assert.True(sys.Run().Quiescent);
        var k = sys.Kernel;
        var st = k.Stats;
        long exits = 0, modelled = 0;
        for (int i = 0; i < ExitStats.KindCount; i++)
        {
            var kind = (ExitKind)i;
            Assert.Equal(st.Count[i], st.Samples(kind));   // every exit kept its sample (the run is far below the capacity)
            exits += st.Count[i];
            foreach (long m in st.ModelledSamples(kind)) modelled += m;
        }
        Assert.True(st.TdWrites > 0 && st.TdReads > 0, $"reads {st.TdReads}, writes {st.TdWrites}");
        Assert.Equal(exits * k.Cost.ExitCycles + (st.TdReads + st.TdWrites) * k.Cost.TdcallCycles, modelled);
    }
}

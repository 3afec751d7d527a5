using Copra.Kernel;
using Copra.Kernel.Core;
using Copra.Kernel.Run;
using Xunit;

namespace Copra.Tests.Tracing;

/// <summary>
/// The tracers that follow the exit path from outside its stages: <c>copra trace</c>'s narration follows exactly the
/// exit it names and no other; <c>copra run --trace</c>'s display marks follow every exit, land in the kept records
/// and never in the hash.
/// </summary>
public class ExitTracerTests
{
    static Scenario Small => Scenario.Default() with { Workload = new global::Copra.Kernel.Backends.WorkloadSpec { Iterations = 5 } };

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    public void The_narration_tells_the_exit_it_names_from_its_start_to_its_end_and_no_other(long n)
    {
        var lines = TraceCommand.Narrate(Small, n, out long taken);
        Assert.True(taken > n, $"the run took {taken} exits");
        Assert.StartsWith($"exit #{n} on cpu ", lines[0], StringComparison.Ordinal);
        Assert.Single(lines, l => l.StartsWith("exit #", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("decode: ", StringComparison.Ordinal));
        Assert.StartsWith("done as ", lines[^1], StringComparison.Ordinal);   // the narration ends where the exit does
    }

    [Fact]
    public void Past_the_runs_last_exit_nothing_is_narrated()
    {
        var lines = TraceCommand.Narrate(Small, 1_000_000, out long taken);
        Assert.Empty(lines);
        Assert.InRange(taken, 1, 999_999);
    }

    [Fact]
    public void Display_marks_ask_for_no_text_and_the_narration_does()
    {
        using var sys = new CopraSystem(Small, keepTrace: true);
        Assert.False(new global::Copra.Kernel.Exit.DisplayMarks(sys.Kernel.Trace).Narrates);   // the stages build no strings for --trace
        Assert.True(new global::Copra.Kernel.Exit.ExitNarration(1, _ => { }).Narrates);
    }

    [Fact]
    public void Display_marks_follow_every_exit_into_the_kept_records_and_leave_the_hash_alone()
    {
        using var plain = new CopraSystem(Small);
        plain.Run();
        using var kept = new CopraSystem(Small, keepTrace: true);
        kept.Run();
        Assert.Equal(plain.Kernel.Trace.Hash, kept.Kernel.Trace.Hash);
        var records = kept.Kernel.Trace.Records;
        long exits = kept.Kernel.Stats.Taken;
        Assert.True(exits > 0);
        // One GuestEnter, one Exit and one EntryStart mark per exit taken, whatever its kind.
        Assert.Equal(exits, records.Count(r => r.Kind == TraceKind.Exit));
        Assert.Equal(exits, records.Count(r => r.Kind == TraceKind.GuestEnter));
        Assert.Equal(exits, records.Count(r => r.Kind == TraceKind.EntryStart));
        // A mark sits at the clock of the exit it reports: the guest entered no later than it exited.
        foreach (var cpu in records.GroupBy(r => r.Cpu))
        {
            var list = cpu.ToList();
            for (int i = 0; i + 1 < list.Count; i++)
                if (list[i].Kind == TraceKind.GuestEnter && list[i + 1].Kind == TraceKind.Exit)
                    Assert.True(list[i].Clock <= list[i + 1].Clock);
        }
    }
}

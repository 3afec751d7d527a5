using System.Text.Json;
using Copra.Kernel.Run;
using Xunit;

namespace Copra.Tests.Tracing;

public class ChromeTraceTests
{
    static Scenario Small => Scenario.Default() with { Workload = new global::Copra.Kernel.Backends.WorkloadSpec { Iterations = 5 } };

    static List<JsonElement> Events(Scenario sc)
    {
        using var sys = new CopraSystem(sc, keepTrace: true);
        sys.Run();
        using var ms = new MemoryStream();
        ChromeTrace.Write(ms, sys.Kernel);
        using var doc = JsonDocument.Parse(ms.ToArray());
        return doc.RootElement.GetProperty("traceEvents").EnumerateArray().Select(e => e.Clone()).ToList();
    }

    static string Ph(JsonElement e) => e.GetProperty("ph").GetString()!;
    static long Ns(double us) => (long)Math.Round(us * 1000);

    /// <summary>
    /// What Perfetto needs, on every trace the default scenario produces (each platform, both unhandled policies,
    /// and the full default workload): every slice has a positive duration; on every (pid, tid) the slices nest or
    /// are disjoint; every pid has a process_name and every (pid, tid) with events a thread_name.
    /// </summary>
    [Theory]
    [InlineData("snp", "forward", false), InlineData("tdx", "forward", false), InlineData("native", "reinject", false), InlineData("snp", "forward", true)]
    public void Default_scenario_traces_nest_have_real_durations_and_name_every_track(string platform, string unhandled, bool full)
    {
        var sc = (full ? Scenario.Default() : Small) with { Platform = platform, Unhandled = unhandled };
        var events = Events(sc);
        var processNames = events.Where(e => Ph(e) == "M" && e.GetProperty("name").GetString() == "process_name")
            .ToDictionary(e => e.GetProperty("pid").GetInt32(), e => e.GetProperty("args").GetProperty("name").GetString()!);
        var threadNames = events.Where(e => Ph(e) == "M" && e.GetProperty("name").GetString() == "thread_name")
            .ToDictionary(e => (e.GetProperty("pid").GetInt32(), e.GetProperty("tid").GetInt32()), e => e.GetProperty("args").GetProperty("name").GetString()!);
        var slices = events.Where(e => Ph(e) == "X").ToList();
        Assert.NotEmpty(slices);
        foreach (var e in events.Where(e => Ph(e) != "M"))
        {
            int pid = e.GetProperty("pid").GetInt32();
            Assert.True(processNames.ContainsKey(pid), $"pid {pid} has no process_name");
            if (Ph(e) != "C") Assert.True(threadNames.ContainsKey((pid, e.GetProperty("tid").GetInt32())), $"pid {pid} tid {e.GetProperty("tid")} has no thread_name");
        }
        foreach (var s in slices) Assert.True(Ns(s.GetProperty("dur").GetDouble()) > 0, $"zero-length slice {s}");

        foreach (var track in slices.GroupBy(s => (s.GetProperty("pid").GetInt32(), s.GetProperty("tid").GetInt32())))
        {
            var open = new Stack<(long Start, long End)>();
            foreach (var s in track.Select(s => (Start: Ns(s.GetProperty("ts").GetDouble()), End: Ns(s.GetProperty("ts").GetDouble()) + Ns(s.GetProperty("dur").GetDouble())))
                         .OrderBy(x => x.Start).ThenByDescending(x => x.End))
            {
                while (open.Count > 0 && open.Peek().End <= s.Start) open.Pop();
                if (open.Count > 0 && s.End > open.Peek().End)
                    Assert.Fail($"track {track.Key}: slice {s.Start}..{s.End} ns partly overlaps {open.Peek().Start}..{open.Peek().End} ns");
                open.Push(s);
            }
        }
    }

    [Fact]
    public void Trace_has_a_process_per_cpu_and_per_user_process_guest_exit_and_thread_slices_and_queue_counters()
    {
        var events = Events(Small);
        var procs = events.Where(e => Ph(e) == "M" && e.GetProperty("name").GetString() == "process_name")
            .Select(e => e.GetProperty("args").GetProperty("name").GetString()!).ToList();
        Assert.Contains("cpu 0 (simulated)", procs);
        Assert.Contains("cpu 1 (simulated)", procs);
        Assert.Contains(procs, n => n.EndsWith("/bin/testdev"));
        Assert.Contains(procs, n => n.EndsWith("/bin/uart16550"));
        var spans = events.Where(e => Ph(e) == "X").Select(e => e.GetProperty("name").GetString()!).ToList();
        Assert.Contains(spans, n => n.StartsWith("vcpu ") && n.EndsWith("entry, guest, exit"));
        Assert.Contains("run", spans);
        var testdevPid = events.First(e => Ph(e) == "M" && e.GetProperty("args").TryGetProperty("name", out var n) && n.GetString()!.EndsWith("/bin/testdev")).GetProperty("pid").GetInt32();
        Assert.Contains(events, e => Ph(e) == "X" && e.GetProperty("pid").GetInt32() == testdevPid);
        Assert.Contains(events, e => Ph(e) == "C" && e.GetProperty("name").GetString() == "queues");
    }

    [Fact]
    public void Keeping_the_trace_does_not_change_the_trace_hash()
    {
        using var plain = new CopraSystem(Small);
        plain.Run();
        using var kept = new CopraSystem(Small, keepTrace: true);
        kept.Run();
        Assert.Equal(plain.Kernel.Trace.Hash, kept.Kernel.Trace.Hash);
        Assert.True(kept.Kernel.Trace.KeptCount > kept.Kernel.Trace.Count);   // display-only records were kept
    }
}

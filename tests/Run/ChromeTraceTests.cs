using System.Text.Json;
using Copra.Kernel.Run;
using Xunit;

namespace Copra.Tests.Run;

public class ChromeTraceTests
{
    static Scenario Small => Scenario.Default() with { Workload = new Kernel.Backends.WorkloadSpec { Iterations = 5 } };

    [Fact]
    public void Trace_file_has_cpu_and_thread_tracks_guest_and_exit_spans_and_queue_counters()
    {
        using var sys = new CopraSystem(Small, keepTrace: true);
        sys.Run();
        string path = Path.Combine(Path.GetTempPath(), $"copra-trace-{Environment.ProcessId}.json");
        ChromeTrace.Write(path, sys.Kernel);
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        File.Delete(path);
        var events = doc.RootElement.GetProperty("traceEvents").EnumerateArray().ToList();
        var names = events.Where(e => e.GetProperty("ph").GetString() == "M").Select(e => e.GetProperty("args").GetProperty("name").GetString()!).ToList();
        Assert.Contains("cpu 0", names);
        Assert.Contains("cpu 1", names);
        Assert.Contains(names, n => n.Contains("/bin/testdev"));
        var spans = events.Where(e => e.GetProperty("ph").GetString() == "X").Select(e => e.GetProperty("name").GetString()!).ToList();
        Assert.Contains(spans, n => n.StartsWith("guest vcpu"));
        Assert.Contains("exit handling", spans);
        Assert.Contains(spans, n => n.StartsWith("user code"));
        Assert.Contains(events, e => e.GetProperty("ph").GetString() == "C");
    }

    [Fact]
    public void Keeping_the_trace_does_not_change_the_trace_hash()
    {
        using var plain = new CopraSystem(Small);
        plain.Run();
        using var kept = new CopraSystem(Small, keepTrace: true);
        kept.Run();
        Assert.Equal(plain.Kernel.Trace.Hash, kept.Kernel.Trace.Hash);
        Assert.True(kept.Kernel.Trace.Records.Length > kept.Kernel.Trace.Count);   // display-only records were kept
    }
}

using System.Text.Json;
using Copra.Kernel.Core;

namespace Copra.Kernel.Run;

/// <summary>
/// Writes the kept trace in the Chrome trace-event format (open it in Perfetto or chrome://tracing).
/// Tracks: one per CPU (guest runs and exit handling as spans, kernel events as instants, a counter
/// of inbox depth and runnable work) and one per user thread (its slices as spans, named after its
/// process: device-model work shows up on the model's track). Timestamps are the deterministic
/// driver's virtual clock: modelled cycles, shown as microseconds at the cost model's GHz.
/// </summary>
public static class ChromeTrace
{
    const int ThreadTrackBase = 1000;

    public static void Write(string path, Core.Kernel k)
    {
        using var fs = File.Create(path);
        using var w = new Utf8JsonWriter(fs);
        double perUs = k.Cost.Ghz * 1000;
        w.WriteStartObject();
        w.WriteStartArray("traceEvents");
        foreach (var c in k.Cpus) Name(w, c.Index, $"cpu {c.Index}");
        foreach (var t in k.Threads) Name(w, ThreadTrackBase + t.Id, $"thread {t.Id} ({t.Process.Path})");

        var guestStart = new Dictionary<int, double>();
        var exitStart = new Dictionary<int, double>();
        var sliceStart = new Dictionary<long, double>();
        foreach (var r in k.Trace.Records)
        {
            double ts = r.Clock / perUs;
            switch (r.Kind)
            {
                case TraceKind.GuestEnter:
                    guestStart[r.Cpu] = ts;
                    continue;
                case TraceKind.Exit:
                    if (guestStart.Remove(r.Cpu, out double g)) Span(w, r.Cpu, $"guest vcpu {r.A}", g, ts);
                    exitStart[r.Cpu] = ts;
                    break;
                case TraceKind.Deliver or TraceKind.Complete or TraceKind.RunPageExit:
                    if (exitStart.Remove(r.Cpu, out double e)) Span(w, r.Cpu, "exit handling", e, ts);
                    break;
                case TraceKind.ThreadSlice:
                    sliceStart[r.A] = ts;
                    continue;
                case TraceKind.ThreadSliceEnd:
                    if (sliceStart.Remove(r.A, out double s)) Span(w, ThreadTrackBase + (int)r.A, $"user code (pid {r.B})", s, ts);
                    continue;
                case TraceKind.QueueDepth:
                    w.WriteStartObject();
                    w.WriteString("name", $"cpu {r.Cpu} queues"); w.WriteString("ph", "C"); w.WriteNumber("pid", 1); w.WriteNumber("ts", ts);
                    w.WritePropertyName("args"); w.WriteStartObject(); w.WriteNumber("inbox", r.A); w.WriteNumber("runnable", r.B); w.WriteEndObject();
                    w.WriteEndObject();
                    continue;
            }
            w.WriteStartObject();
            w.WriteString("name", r.Kind.ToString()); w.WriteString("ph", "i"); w.WriteString("s", "t");
            w.WriteNumber("pid", 1); w.WriteNumber("tid", r.Cpu); w.WriteNumber("ts", ts);
            w.WritePropertyName("args"); w.WriteStartObject(); w.WriteNumber("a", r.A); w.WriteNumber("b", r.B); w.WriteEndObject();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    static void Name(Utf8JsonWriter w, int tid, string name)
    {
        w.WriteStartObject();
        w.WriteString("name", "thread_name"); w.WriteString("ph", "M"); w.WriteNumber("pid", 1); w.WriteNumber("tid", tid);
        w.WritePropertyName("args"); w.WriteStartObject(); w.WriteString("name", name); w.WriteEndObject();
        w.WriteEndObject();
    }

    static void Span(Utf8JsonWriter w, int tid, string name, double start, double end)
    {
        w.WriteStartObject();
        w.WriteString("name", name); w.WriteString("ph", "X"); w.WriteNumber("pid", 1); w.WriteNumber("tid", tid);
        w.WriteNumber("ts", start); w.WriteNumber("dur", Math.Max(0.001, end - start));
        w.WriteEndObject();
    }
}

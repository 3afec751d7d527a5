using System.Text.Json;
using Copra.Kernel.Core;

namespace Copra.Kernel.Run;

/// <summary>
/// Writes the kept trace in the Chrome trace-event format (open it in Perfetto or chrome://tracing):
/// one track per CPU, instant events for each kernel event, a span per guest run ended by its exit,
/// timestamps in the deterministic driver's virtual clock (modelled cycles shown as microseconds at
/// the cost model's GHz).
/// </summary>
public static class ChromeTrace
{
    public static void Write(string path, Core.Kernel k)
    {
        using var fs = File.Create(path);
        using var w = new Utf8JsonWriter(fs);
        double perUs = k.Cost.Ghz * 1000;
        w.WriteStartObject();
        w.WriteStartArray("traceEvents");
        foreach (var c in k.Cpus)
        {
            w.WriteStartObject();
            w.WriteString("name", "thread_name"); w.WriteString("ph", "M"); w.WriteNumber("pid", 1); w.WriteNumber("tid", c.Index);
            w.WritePropertyName("args"); w.WriteStartObject(); w.WriteString("name", $"cpu {c.Index}"); w.WriteEndObject();
            w.WriteEndObject();
        }
        var open = new Dictionary<int, double>();
        foreach (var r in k.Trace.Records)
        {
            double ts = r.Clock / perUs;
            if (r.Kind == TraceKind.GuestEnter) { open[r.Cpu] = ts; continue; }
            if (r.Kind == TraceKind.Exit && open.Remove(r.Cpu, out double start))
            {
                w.WriteStartObject();
                w.WriteString("name", $"guest vcpu {r.A}"); w.WriteString("ph", "X"); w.WriteNumber("pid", 1); w.WriteNumber("tid", r.Cpu);
                w.WriteNumber("ts", start); w.WriteNumber("dur", Math.Max(0.001, ts - start));
                w.WriteEndObject();
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
}

using System.Text.Json;
using Copra.Kernel.Core;

namespace Copra.Kernel.Run;

/// <summary>
/// Writes the kept trace in the Chrome trace-event format (open it in Perfetto or chrome://tracing).
/// <list type="bullet">
/// <item>One process per simulated CPU (pid <see cref="CpuPidBase"/> + index, named "cpu N (simulated)"): a vCPU's
/// entry, guest run and exit as one slice (entry start to exit: the modelled exit+entry cost), exit handling as the
/// next slice (exit to completion or delivery), kernel events as instants, and a "queues" counter (inbox depth,
/// runnable work).</item>
/// <item>One process per user process (its kernel pid, named "pid N /path"), one thread per kernel thread (named):
/// each run of the thread as a slice.</item>
/// </list>
/// Timestamps are the driver's virtual clocks (modelled cycles, shown as microseconds at the cost model's GHz), one
/// clock per CPU. Slices are never given invented lengths: a span of zero modelled time is written as an instant.
/// Every thread's slices are disjoint: the CPUs' clocks are not synchronized, so a thread's run that starts, on its
/// CPU's clock, before the same thread's previous run ended (on another CPU's clock) is drawn from that end, its
/// modelled length kept; an exit-handling span still open when its CPU enters a guest again is closed there.
/// </summary>
public static class ChromeTrace
{
    public const int CpuPidBase = 100_000;

    public static void Write(string path, Core.Kernel k)
    {
        using var fs = File.Create(path);
        Write(fs, k);
    }

    public static void Write(Stream stream, Core.Kernel k)
    {
        using var w = new Utf8JsonWriter(stream);
        double nsPerCycle = 1.0 / k.Cost.Ghz;
        long Ns(long clock) => (long)Math.Round(clock * nsPerCycle);
        w.WriteStartObject();
        w.WriteString("displayTimeUnit", "ns");
        w.WriteStartArray("traceEvents");

        // Metadata: CPUs first (sort index), then user processes and their threads.
        foreach (var c in k.Cpus)
        {
            int pid = CpuPidBase + c.Index;
            Meta(w, "process_name", pid, null, $"cpu {c.Index} (simulated)");
            Meta(w, "process_sort_index", pid, null, null, c.Index);
            Meta(w, "thread_name", pid, 0, $"cpu {c.Index}");
        }
        var threads = k.Threads;
        foreach (var p in threads.Select(t => t.Process).DistinctBy(p => p.Pid))
        {
            Meta(w, "process_name", p.Pid, null, $"pid {p.Pid} {p.Path}");
            Meta(w, "process_sort_index", p.Pid, null, null, k.Cpus.Length + p.Pid);
        }
        var pidOf = new Dictionary<long, int>();
        foreach (var t in threads)
        {
            pidOf[t.Id] = t.Process.Pid;
            Meta(w, "thread_name", t.Process.Pid, t.Id, $"thread {t.Id} ({t.Process.Path})");
        }

        // CPU tracks: each CPU's records in its own order, on its own (monotonic) clock.
        for (int cpu = 0; cpu < k.Cpus.Length; cpu++)
        {
            int pid = CpuPidBase + cpu;
            (long Start, long Vcpu)? guest = null;
            long? exitStart = null;
            void CloseExit(long at)
            {
                if (exitStart is long e) Slice(w, pid, 0, "exit handling", Ns(e), Ns(at), null);
                exitStart = null;
            }
            foreach (var r in k.Trace.RecordsOf(cpu))
            {
                switch (r.Kind)
                {
                    case TraceKind.EntryStart:
                        CloseExit(r.Clock);
                        guest = (r.Clock, r.A);
                        continue;
                    case TraceKind.GuestEnter:
                        continue;   // inside the entry slice that EntryStart opened
                    case TraceKind.Exit:
                        CloseExit(r.Clock);
                        if (guest is { } g) Slice(w, pid, 0, $"vcpu {g.Vcpu}: entry, guest, exit", Ns(g.Start), Ns(r.Clock), $"exit reason {r.B}");
                        guest = null;
                        exitStart = r.Clock;
                        break;
                    case TraceKind.Deliver or TraceKind.Complete or TraceKind.RunPageExit:
                        CloseExit(r.Clock);
                        break;
                    case TraceKind.ThreadSlice or TraceKind.ThreadSliceEnd:
                        continue;   // drawn on the thread's own track below
                    case TraceKind.QueueDepth:
                        w.WriteStartObject();
                        w.WriteString("name", "queues"); w.WriteString("ph", "C"); w.WriteNumber("pid", pid); w.WriteNumber("ts", Ns(r.Clock) / 1000.0);
                        w.WritePropertyName("args"); w.WriteStartObject(); w.WriteNumber("inbox", r.A); w.WriteNumber("runnable", r.B); w.WriteEndObject();
                        w.WriteEndObject();
                        continue;
                }
                Instant(w, pid, 0, r.Kind.ToString(), Ns(r.Clock), r.A, r.B);
            }
        }

        // Thread tracks: each thread's runs, from every CPU, in start order; kept disjoint (see the summary).
        var runs = new List<(long Thread, long StartNs, long EndNs, int Cpu)>();
        for (int cpu = 0; cpu < k.Cpus.Length; cpu++)
        {
            var open = new Dictionary<long, long>();
            foreach (var r in k.Trace.RecordsOf(cpu))
            {
                if (r.Kind == TraceKind.ThreadSlice) open[r.A] = r.Clock;
                else if (r.Kind == TraceKind.ThreadSliceEnd && open.Remove(r.A, out long s)) runs.Add((r.A, Ns(s), Ns(r.Clock), cpu));
            }
        }
        foreach (var g in runs.GroupBy(x => x.Thread))
        {
            if (!pidOf.TryGetValue(g.Key, out int pid)) continue;
            long lastEnd = long.MinValue;
            foreach (var run in g.OrderBy(x => x.StartNs).ThenBy(x => x.Cpu))
            {
                long start = Math.Max(run.StartNs, lastEnd);
                long end = start + (run.EndNs - run.StartNs);
                if (end > start) { Slice(w, pid, (int)g.Key, "run", start, end, $"on cpu {run.Cpu}"); lastEnd = end; }
                else Instant(w, pid, (int)g.Key, "run (no modelled time)", start, run.Cpu, 0);
            }
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    static void Meta(Utf8JsonWriter w, string name, int pid, int? tid, string? label, int? sort = null)
    {
        w.WriteStartObject();
        w.WriteString("name", name); w.WriteString("ph", "M"); w.WriteNumber("pid", pid);
        if (tid is int t) w.WriteNumber("tid", t);
        w.WritePropertyName("args"); w.WriteStartObject();
        if (label is not null) w.WriteString("name", label);
        if (sort is int si) w.WriteNumber("sort_index", si);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>A complete slice; zero-length spans become instants (no invented durations).</summary>
    static void Slice(Utf8JsonWriter w, int pid, int tid, string name, long startNs, long endNs, string? detail)
    {
        if (endNs <= startNs) { Instant(w, pid, tid, name, startNs, 0, 0); return; }
        w.WriteStartObject();
        w.WriteString("name", name); w.WriteString("ph", "X"); w.WriteNumber("pid", pid); w.WriteNumber("tid", tid);
        w.WriteNumber("ts", startNs / 1000.0); w.WriteNumber("dur", (endNs - startNs) / 1000.0);
        if (detail is not null) { w.WritePropertyName("args"); w.WriteStartObject(); w.WriteString("detail", detail); w.WriteEndObject(); }
        w.WriteEndObject();
    }

    static void Instant(Utf8JsonWriter w, int pid, int tid, string name, long tsNs, long a, long b)
    {
        w.WriteStartObject();
        w.WriteString("name", name); w.WriteString("ph", "i"); w.WriteString("s", "t");
        w.WriteNumber("pid", pid); w.WriteNumber("tid", tid); w.WriteNumber("ts", tsNs / 1000.0);
        w.WritePropertyName("args"); w.WriteStartObject(); w.WriteNumber("a", a); w.WriteNumber("b", b); w.WriteEndObject();
        w.WriteEndObject();
    }
}

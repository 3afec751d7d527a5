// The campaign runner: `dotnet run --project fuzz -c Release -- [--minutes N] [--cases N] [--target NAME]
// [--replay SEED] [--mode 16|32|64] [--seed BASE] [--jobs N]`. Case i of a campaign uses seed Mix(BASE, i); a failure
// prints its seed, and --replay SEED re-runs exactly that case and shrinks it.
using System.Diagnostics;
using Copra.Fuzz.Core;
using Spectre.Console;

namespace Copra.Fuzz;

public static class Program
{
    public static int Main(string[] args)
    {
        double minutes = 0;
        long cases = 0;
        string target = "all";
        ulong? replay = null;
        int? mode = null;
        ulong baseSeed = (ulong)DateTime.UtcNow.Ticks;
        int jobs = Environment.ProcessorCount;
        string? hex = null;
        try
        {
            for (int i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                switch (args[i])
                {
                    case "--minutes": minutes = double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                    case "--cases": cases = long.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                    case "--target": target = Next(); break;
                    case "--replay": replay = ulong.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                    case "--mode": mode = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                    case "--seed": baseSeed = ulong.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                    case "--jobs": jobs = Math.Max(1, int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture)); break;
                    case "--bytes": hex = Next(); break;
                    case "--list":
                        foreach (var t in Registry.Create(null)) Console.WriteLine($"{t.Name,-22} {t.Description}");
                        return 0;
                    case "-h" or "--help": Usage(); return 0;
                    default: throw new ArgumentException($"unknown argument {args[i]}");
                }
            }
        }
        catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
        {
            Console.Error.WriteLine(e.Message);
            Usage();
            return 2;
        }

        if (hex is not null) return DecodeBytes(hex, mode ?? 64);
        var all = Registry.Create(mode);
        var targets = all.Where(t => target == "all" ? t.SweepCount is null && t.CampaignCases is null : t.Name == target).ToList();
        // Why: a name no target has exactly selects a family (--target cpu-oracle runs every cpu-oracle-* target).
        if (targets.Count == 0) targets = all.Where(t => t.Name.StartsWith(target + "-", StringComparison.Ordinal)).ToList();
        if (targets.Count == 0)
        {
            Console.Error.WriteLine($"no target '{target}' (try --list)");
            return 2;
        }
        if (replay is ulong seed) return Replay(targets, seed);
        if (minutes <= 0 && cases <= 0)
        {
            if (targets.All(t => t.SweepCount is not null)) cases = targets.Max(t => t.SweepCount!.Value);
            else if (targets.All(t => t.CampaignCases is not null)) cases = targets.Max(t => t.CampaignCases!.Value);
            else minutes = 1;
        }
        return Campaign(targets, minutes, cases, baseSeed, jobs);
    }

    static void Usage() => Console.Error.WriteLine(
        "usage: fuzz [--minutes N] [--cases N] [--target NAME|all] [--mode 16|32|64] [--seed BASE] [--jobs N] [--replay SEED] [--list]\n" +
        "       fuzz --bytes \"66 89 08\" [--mode 16|32|64]   (the decoder differential on bytes typed by hand)");

    /// <summary>The decoder differential on hand-typed bytes: what Copra says, what Iced says, and the verdict.</summary>
    static int DecodeBytes(string hex, int bits)
    {
        var m = Modes.Parse(bits);
        byte[] bytes = Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));
        bool ok = Hot.Decode.X86Decoder.TryDecode(bytes, m, out var d);
        Console.WriteLine($"mode {bits} bytes {Modes.Hex(bytes)}");
        Console.WriteLine($"  Copra: {(ok ? Targets.DecoderTarget.Describe(d) : $"refused ({d.Error})")}");
        Console.WriteLine($"  Iced:  {Targets.IcedOracle.Expect(bytes, m).Text}");
        string? verdict = new Targets.DecoderTarget(m).Check(new Targets.DecoderCase(m, bytes));
        Console.WriteLine(verdict is null ? "  agree" : $"  DISAGREE: {verdict}");
        return verdict is null ? 0 : 1;
    }

    static int Replay(List<IFuzzTarget> targets, ulong seed)
    {
        int rc = 0;
        foreach (var t in targets)
        {
            Console.WriteLine($"{t.Name} ({t.Description}) seed {seed}");
            Console.WriteLine($"  case: {t.ShowSeed(seed)}");
            string? m = t.RunSeed(seed);
            if (m is null) { Console.WriteLine("  passes"); continue; }
            Console.WriteLine($"  FAILS: {m}");
            Console.WriteLine($"  shrunk: {t.Minimise(seed)}");
            rc = 1;
        }
        return rc;
    }

    public static ulong CaseSeed(ulong baseSeed, long i)
    {
        ulong z = baseSeed + 0x9E37_79B9_7F4A_7C15UL * (ulong)(i + 1);
        z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EBUL;
        return z ^ (z >> 31);
    }

    sealed class Stats
    {
        public long Done, Failed;
        public readonly List<(ulong Seed, string Message)> Failures = [];
    }

    static int Campaign(List<IFuzzTarget> targets, double minutes, long cases, ulong baseSeed, int jobs)
    {
        var stats = targets.ToDictionary(t => t, _ => new Stats());
        var times = new Dictionary<IFuzzTarget, TimeSpan>();
        // Time budget is split evenly across targets; a case budget applies to each.
        TimeSpan perTarget = minutes > 0 ? TimeSpan.FromMinutes(minutes / targets.Count) : TimeSpan.MaxValue;
        AnsiConsole.MarkupLine($"[bold]Copra fuzz campaign[/] base seed {baseSeed}, {targets.Count} target(s), {(cases > 0 ? $"{cases:N0} cases each" : "")}{(minutes > 0 ? $" {minutes} min" : "")}, {jobs} job(s)");
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(ctx =>
            {
                foreach (var t in targets)
                {
                    var s = stats[t];
                    var task = ctx.AddTask(Markup.Escape(t.Description), maxValue: 1000);
                    var sw = Stopwatch.StartNew();
                    int workers = t.ParallelSafe ? jobs : 1;
                    long next = -1;
                    int Chunk = t.ParallelSafe ? 256 : 1;
                    var threads = new Thread[workers];
                    for (int w = 0; w < workers; w++)
                    {
                        threads[w] = new Thread(() =>
                        {
                            while (true)
                            {
                                long start = Interlocked.Add(ref next, Chunk) - Chunk + 1;
                                if (cases > 0 && start >= cases) return;
                                if (sw.Elapsed >= perTarget) return;
                                long end = cases > 0 ? Math.Min(cases, start + Chunk) : start + Chunk;
                                for (long i = start; i < end; i++)
                                {
                                    ulong seed = t.SweepCount is long total ? (ulong)(i % total) : CaseSeed(baseSeed, i);
                                    string? m = t.RunSeed(seed);
                                    if (m is not null)
                                    {
                                        Interlocked.Increment(ref s.Failed);
                                        lock (s.Failures) if (s.Failures.Count < 5) s.Failures.Add((seed, m));
                                    }
                                }
                                Interlocked.Add(ref s.Done, end - start);
                            }
                        }) { IsBackground = true };
                        threads[w].Start();
                    }
                    while (threads.Any(th => th.IsAlive))
                    {
                        threads.First(th => th.IsAlive).Join(250);   // wait on the workers; wake every 250 ms to refresh the display
                        double rate = s.Done / Math.Max(1e-3, sw.Elapsed.TotalSeconds);
                        double frac = cases > 0 ? (double)s.Done / cases : sw.Elapsed / perTarget;
                        task.Value = Math.Min(1000, frac * 1000);
                        task.Description = Markup.Escape($"{t.Description}: {s.Done:N0} cases, {rate:N0}/s, {s.Failed} failed");
                    }
                    task.Value = 1000;
                    times[t] = sw.Elapsed;
                    task.Description = Markup.Escape($"{t.Description}: {s.Done:N0} cases, {s.Done / Math.Max(1e-3, sw.Elapsed.TotalSeconds):N0}/s, {s.Failed} failed");
                }
            });

        var table = new Table().AddColumns("target", "cases", "seconds", "cases/s", "failures", "result");
        foreach (var t in targets)
        {
            var s = stats[t];
            double secs = times[t].TotalSeconds;
            table.AddRow(Markup.Escape(t.Description), s.Done.ToString("N0"), secs.ToString("F1"), (s.Done / Math.Max(1e-3, secs)).ToString("N0"),
                s.Failed.ToString("N0"), s.Failed == 0 ? "[green]pass[/]" : "[red]FAIL[/]");
        }
        AnsiConsole.Write(table);
        int rc = 0;
        foreach (var t in targets)
        {
            foreach (var (seed, msg) in stats[t].Failures.Take(3))
            {
                rc = 1;
                Console.WriteLine($"\n{t.Name} seed {seed}: {msg}");
                Console.WriteLine($"shrunk: {t.Minimise(seed)}");
            }
        }
        return rc;
    }
}

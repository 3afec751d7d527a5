// The campaign runner: `dotnet run --project fuzz -c Release -- [--minutes N] [--cases N] [--target NAME]
// [--replay SEED] [--mode 16|32|64] [--seed BASE] [--jobs N] [--json FILE|-]`. Case i of a campaign uses seed Mix(BASE, i);
// a failure prints its seed, and --replay SEED re-runs exactly that case and shrinks it. `--help` lists every option.
using System.CommandLine;
using System.Diagnostics;
using Copra.Fuzz.Core;
using Copra.Kernel;
using Spectre.Console;

namespace Copra.Fuzz;

public static class Program
{
    public static int Main(string[] args) => Run(args, Cli.Io.Console);

    /// <summary>The runner's command line, on the same library and error policy as copra (one line, exit code 2).</summary>
    public static int Run(string[] args, Cli.Io io)
    {
        var root = new RootCommand("Copra fuzz campaigns: decoder differential against Iced, page walks, rings, syscalls, state (docs/fuzzing.md).\n" +
            "exit codes: 0 no failures, 1 failures found, 2 usage error, 70 internal error, 130 interrupted (the summary and --json are still written)");
        var minutes = Cli.Real("--minutes", "Time budget, split evenly over the targets (default: 1 minute, or the sweep's size for sweep targets)", 0.01, 10_080);
        var cases = Cli.Int("--cases", "Cases per target (instead of a time budget)", 1, long.MaxValue);
        // "cpu-oracle" names the family of cpu-oracle-* targets (one per instruction family).
        var names = Registry.Create(null).Select(t => t.Name).Distinct().Prepend("cpu-oracle").Prepend("all").ToArray();
        var target = Cli.Choice("--target", "Which target (see --list); all = every non-sweep target", "all", names);
        var replay = Cli.U64("--replay", "Re-run exactly the case with this seed, and shrink it if it fails");
        var mode = Cli.Choice("--mode", "CPU mode for the decoder targets", null, "16", "32", "64");
        var seed = Cli.U64("--seed", "Base seed of the campaign (default: from the clock, printed)");
        var jobs = Cli.Int("--jobs", "Worker threads for targets that allow them", 1, 256, Environment.ProcessorCount);
        var bytes = new Option<string>("--bytes") { Description = "Run the decoder differential on hand-typed hex bytes, e.g. \"66 89 08\"", HelpName = "HEX" };
        bytes.Validators.Add(r =>
        {
            if (r.Tokens.Count == 0) return;
            if (ParseHex(r.Tokens[0].Value) is null) r.AddError($"--bytes: '{r.Tokens[0].Value}' is not hex bytes (pairs of 0-9a-f, spaces allowed, 1..15 bytes)");
        });
        var corpus = new Option<string>("--corpus") { Description = "Check the decoder on every anchor-emulated memory-operand instruction of the vmlinux and *.ko under DIR (./build.sh corpus fetches them)", HelpName = "DIR" };
        var sample = new Option<string>("--sample") { Description = "With --corpus: write the distinct decoded forms (hex, one a line) to FILE", HelpName = "FILE" };
        var list = Cli.Flag("--list", "List the targets and exit");
        var json = Cli.Output("--json", "Write the campaign's results as JSON (docs/json.md) to FILE, or stdout with '-'");
        foreach (var o in new Option[] { minutes, cases, target, replay, mode, seed, jobs, bytes, corpus, sample, list, json }) root.Options.Add(o);
        root.SetAction(pr =>
        {
            int? bits = pr.GetValue(mode) is { } m ? int.Parse(m, System.Globalization.CultureInfo.InvariantCulture) : null;
            if (pr.GetValue(list))
            {
                foreach (var t in Registry.Create(null)) io.Out.WriteLine($"{t.Name,-22} {t.Description}");
                return 0;
            }
            if (pr.GetValue(bytes) is { } hex) return DecodeBytes(io, ParseHex(hex)!, bits ?? 64);
            if (pr.GetValue(corpus) is { } dir) return Corpus.KernelCorpus.Run(io, dir, pr.GetValue(sample));
            string name = pr.GetValue(target)!;
            var all = Registry.Create(bits);
            var targets = all.Where(t => name == "all" ? t.SweepCount is null && t.CampaignCases is null : t.Name == name).ToList();
            // Why: a name no target has exactly selects a family (--target cpu-oracle runs every cpu-oracle-* target).
            if (targets.Count == 0) targets = all.Where(t => t.Name.StartsWith(name + "-", StringComparison.Ordinal)).ToList();
            if (Cli.Given(pr, replay) is ulong rs) return Replay(io, targets, rs);
            double min = Cli.Given(pr, minutes) ?? 0;
            long n = Cli.Given(pr, cases) ?? 0;
            if (min <= 0 && n <= 0)
            {
                if (targets.All(t => t.SweepCount is not null)) n = targets.Max(t => t.SweepCount!.Value);
                else if (targets.All(t => t.CampaignCases is not null)) n = targets.Max(t => t.CampaignCases!.Value);
                else min = 1;
            }
            return Campaign(io, targets, min, n, Cli.Given(pr, seed) ?? (ulong)DateTime.UtcNow.Ticks, (int)pr.GetValue(jobs), pr.GetValue(json));
        });
        return Cli.Invoke(root, "fuzz", args, io);
    }

    /// <summary>Hex bytes ("66 89 08", "668908", "0x66,0x89"), 1..15 of them, or null.</summary>
    public static byte[]? ParseHex(string text)
    {
        string h = text.Replace("0x", "", StringComparison.OrdinalIgnoreCase).Replace(" ", "", StringComparison.Ordinal).Replace(",", "", StringComparison.Ordinal);
        if (h.Length == 0 || h.Length % 2 != 0 || h.Length > 30 || !h.All(Uri.IsHexDigit)) return null;
        return Convert.FromHexString(h);
    }

    /// <summary>The decoder differential on hand-typed bytes: what Copra says, what Iced says, and the verdict.</summary>
    static int DecodeBytes(Cli.Io io, byte[] bytes, int bits)
    {
        var m = Modes.Parse(bits);
        bool ok = Hot.Decode.X86Decoder.TryDecode(bytes, m, out var d);
        io.Out.WriteLine($"mode {bits} bytes {Modes.Hex(bytes)}");
        io.Out.WriteLine($"  Copra: {(ok ? Targets.DecoderTarget.Describe(d) : $"refused ({d.Error})")}");
        io.Out.WriteLine($"  Iced:  {Targets.IcedOracle.Expect(bytes, m).Text}");
        string? verdict = new Targets.DecoderTarget(m).Check(new Targets.DecoderCase(m, bytes));
        io.Out.WriteLine(verdict is null ? "  agree" : $"  DISAGREE: {verdict}");
        return verdict is null ? 0 : 1;
    }

    static int Replay(Cli.Io io, List<IFuzzTarget> targets, ulong seed)
    {
        int rc = 0;
        foreach (var t in targets)
        {
            io.Out.WriteLine($"{t.Name} ({t.Description}) seed {seed}");
            io.Out.WriteLine($"  case: {t.ShowSeed(seed)}");
            string? m = t.RunSeed(seed);
            if (m is null) { io.Out.WriteLine("  passes"); continue; }
            io.Out.WriteLine($"  FAILS: {m}");
            io.Out.WriteLine($"  shrunk: {t.Minimise(seed)}");
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

    sealed record Outcome(IFuzzTarget Target, long Cases, TimeSpan Elapsed, long Failed, IReadOnlyList<(ulong Seed, string Message, string Shrunk)> Failures);

    static int Campaign(Cli.Io io, List<IFuzzTarget> targets, double minutes, long cases, ulong baseSeed, int jobs, string? json)
    {
        Kernel.Report.Human.Init();
        bool human = json != "-";
        // Time budget is split evenly across targets; a case budget applies to each.
        TimeSpan perTarget = minutes > 0 ? TimeSpan.FromMinutes(minutes / targets.Count) : TimeSpan.MaxValue;
        string header = $"Copra fuzz campaign: base seed {baseSeed}, {targets.Count} target(s), {(cases > 0 ? $"{cases:N0} cases each" : "")}{(minutes > 0 ? $" {minutes} min" : "")}, {jobs} job(s)";
        if (human) AnsiConsole.MarkupLine(Markup.Escape(header)); else io.Err.WriteLine(header);
        using var ctrlC = new Kernel.Report.CtrlC();
        var outcomes = new List<Outcome>();
        foreach (var t in targets)
        {
            if (ctrlC.Pressed) break;
            var s = new Stats();
            var sw = Stopwatch.StartNew();
            int workers = t.ParallelSafe ? jobs : 1;
            long next = -1;
            int chunk = t.ParallelSafe ? 256 : 1;
            var threads = new Thread[workers];
            for (int w = 0; w < workers; w++)
            {
                threads[w] = new Thread(() =>
                {
                    while (!ctrlC.Pressed)
                    {
                        long start = Interlocked.Add(ref next, chunk) - chunk + 1;
                        if (cases > 0 && start >= cases) return;
                        if (sw.Elapsed >= perTarget) return;
                        long end = cases > 0 ? Math.Min(cases, start + chunk) : start + chunk;
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
            long goal = cases > 0 ? cases : (long)Math.Min(1e12, perTarget.TotalMilliseconds);
            Kernel.Report.Human.WithProgress(true, io.Err, "fuzz", t.Name, goal, tick =>
            {
                while (threads.Any(th => th.IsAlive))
                {
                    threads.First(th => th.IsAlive).Join(250);   // wake every 250 ms to refresh the display
                    tick(cases > 0 ? Interlocked.Read(ref s.Done) : (long)sw.Elapsed.TotalMilliseconds);
                }
                return 0;
            });
            var failures = s.Failures.Take(3).Select(f => (f.Seed, f.Message, t.Minimise(f.Seed).ToString() ?? "")).ToList();
            outcomes.Add(new Outcome(t, s.Done, sw.Elapsed, s.Failed, failures));
        }

        if (human)
        {
            var table = new Table().AddColumn("target");
            foreach (var h in new[] { "cases", "seconds", "cases/s", "failures" }) table.AddColumn(new TableColumn(h).RightAligned());
            table.AddColumn("result");
            foreach (var o in outcomes)
            {
                double secs = o.Elapsed.TotalSeconds;
                table.AddRow(Markup.Escape(o.Target.Description), o.Cases.ToString("N0"), secs.ToString("F1"), (o.Cases / Math.Max(1e-3, secs)).ToString("N0"),
                    o.Failed.ToString("N0"), o.Failed == 0 ? "[green]pass[/]" : "[red]FAIL[/]");
            }
            AnsiConsole.Write(table);
            foreach (var o in outcomes)
                if (o.Target.Totals is { } totals) AnsiConsole.WriteLine($"{o.Target.Name}: {totals}");
            foreach (var o in outcomes)
                foreach (var (seed, msg, shrunk) in o.Failures)
                {
                    AnsiConsole.WriteLine();
                    AnsiConsole.WriteLine($"{o.Target.Name} seed {seed}: {msg}");
                    AnsiConsole.WriteLine($"shrunk: {shrunk}");
                }
        }
        if (json is not null) Cli.WriteOutput(io, json, Json(outcomes, minutes, cases, baseSeed, jobs, ctrlC.Pressed));
        if (ctrlC.Pressed) return ExitCodes.Interrupted;
        return outcomes.Any(o => o.Failed > 0) ? ExitCodes.NotClean : ExitCodes.Ok;
    }

    static string Json(List<Outcome> outcomes, double minutes, long cases, ulong baseSeed, int jobs, bool interrupted) => Kernel.Report.JsonOut.Document("fuzz", w =>
    {
        w.WriteStartObject("parameters");
        w.WriteNumber("base_seed", baseSeed);
        w.WriteNumber("budget_minutes", minutes);
        w.WriteNumber("cases_per_target_count", cases);
        w.WriteNumber("jobs_count", jobs);
        w.WriteEndObject();
        w.WriteBoolean("interrupted", interrupted);
        w.WriteStartArray("targets");
        foreach (var o in outcomes)
        {
            w.WriteStartObject();
            w.WriteString("target", o.Target.Name);
            w.WriteString("description", o.Target.Description);
            w.WriteNumber("cases_count", o.Cases);
            w.WriteNumber("elapsed_ms", Math.Round(o.Elapsed.TotalMilliseconds, 1));
            w.WriteNumber("cases_per_s", Math.Round(o.Cases / Math.Max(1e-3, o.Elapsed.TotalSeconds), 1));
            w.WriteNumber("failures_count", o.Failed);
            w.WriteStartArray("failures");
            foreach (var (seed, msg, shrunk) in o.Failures)
            {
                w.WriteStartObject();
                w.WriteNumber("seed", seed);
                w.WriteString("message", msg);
                w.WriteString("shrunk", shrunk);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
    });
}

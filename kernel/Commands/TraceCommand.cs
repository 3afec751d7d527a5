using System.CommandLine;
using Copra.Kernel.Run;

namespace Copra.Kernel;

/// <summary><c>copra trace [--exit N] [--platform snp|tdx|native] [--scenario FILE] [--seed S] [--json FILE|-]</c>: one exit, step by step.</summary>
public static class TraceCommand
{
    public static Command Build(Cli.Io io)
    {
        var cmd = new Command("trace", "Narrate one exit of a scenario step by step: decode, page walk, device model, completion.");
        var exit = Cli.Int("--exit", "Which exit to narrate, counting from 1", 1, 1_000_000_000, 100);
        var platform = Cli.Choice("--platform", "Platform cost model; overrides the scenario's", null, "snp", "tdx", "native");
        var scenario = Cli.Input("--scenario", "Scenario JSON file (docs/scenario.md). Default: the built-in scenario");
        var seed = Cli.U64("--seed", "Seed; overrides the scenario's");
        var json = Cli.Output("--json", "Write the steps as JSON (docs/json.md) to FILE, or stdout with '-'");
        foreach (var o in new Option[] { exit, platform, scenario, seed, json }) cmd.Options.Add(o);
        cmd.SetAction(pr =>
        {
            var sc = Scenario.Load(pr.GetValue(scenario));
            if (pr.GetValue(platform) is { } p) sc = sc with { Platform = p };
            if (Cli.Given(pr, seed) is ulong s) sc = sc with { Seed = s };
            sc.Validate();
            return Execute(io, sc, pr.GetValue(exit), pr.GetValue(scenario) is not null, pr.GetValue(json));
        });
        return cmd;
    }

    /// <summary>The narrated steps of exit <paramref name="n"/> (empty when the run had fewer exits).</summary>
    public static IReadOnlyList<string> Narrate(Scenario sc, long n, out long exitsTaken)
    {
        using var sys = new CopraSystem(sc);
        var lines = new List<string>();
        sys.Kernel.Tracer = new Exit.ExitNarration(n, lines.Add);
        sys.Run();
        exitsTaken = sys.Kernel.Stats.Taken;
        return lines;
    }

    static int Execute(Cli.Io io, Scenario sc, long n, bool given, string? json)
    {
        var lines = Narrate(sc, n, out long taken);
        if (lines.Count == 0)
        {
            io.Err.WriteLine($"copra trace: the run had only {taken:N0} exits; --exit {n} is past its end");
            return ExitCodes.NotClean;
        }
        if (json != "-")
        {
            io.Out.WriteLine($"copra trace: exit #{n} of the {(given ? "given" : "default")} scenario on {sc.Platform}");
            for (int i = 0; i < lines.Count; i++) io.Out.WriteLine($"  {i + 1,2}. {lines[i]}");
        }
        if (json is not null)
            Cli.WriteOutput(io, json, Report.JsonOut.Document("trace", w =>
            {
                w.WriteStartObject("parameters");
                w.WriteNumber("exit_number", n);
                w.WriteString("platform", sc.Platform);
                w.WriteNumber("seed", sc.Seed);
                w.WriteString("scenario", given ? "given" : "default");
                w.WriteEndObject();
                w.WriteNumber("run_exits_count", taken);
                w.WriteStartArray("steps");
                for (int i = 0; i < lines.Count; i++)
                {
                    w.WriteStartObject();
                    w.WriteNumber("step_number", i + 1);
                    w.WriteString("text", lines[i]);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }));
        return ExitCodes.Ok;
    }
}

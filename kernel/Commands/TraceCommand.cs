using Copra.Kernel.Run;

namespace Copra.Kernel;

/// <summary><c>copra trace [--exit N] [--platform snp|tdx] [--scenario FILE]</c>: one exit of the default scenario, step by step.</summary>
public static class TraceCommand
{
    public static int Run(string[] args)
    {
        var a = new CliArgs(args);
        a.RejectUnknown("exit", "platform", "scenario", "seed");
        var sc = a.Get("scenario") is { } path ? Scenario.Parse(File.ReadAllText(path)) : Scenario.Default();
        if (a.Get("platform") is { } p) sc = sc with { Platform = p };
        if (a.Has("seed")) sc = sc with { Seed = (ulong)a.GetLong("seed", 1) };
        sc.Validate();
        long n = a.GetLong("exit", 100);
        if (n < 1) throw new CliException("--exit counts from 1");
        using var sys = new CopraSystem(sc);
        int lines = 0;
        sys.Kernel.NarrateExit = n;
        sys.Kernel.Narrator = line => { Console.WriteLine($"  {++lines,2}. {line}"); };
        Console.WriteLine($"copra trace: exit #{n} of the {(a.Has("scenario") ? "given" : "default")} scenario on {sc.Platform}");
        sys.Run();
        if (lines == 0) { Console.Error.WriteLine($"the run had only {sys.Kernel.Stats.Taken} exits"); return 1; }
        return 0;
    }
}

// Copra.Bench: BenchmarkDotNet suites for the exit path and the pieces under it.
//
//   ./build.sh bench --list flat                 every benchmark
//   ./build.sh bench --filter '*Exit*'           the exit-path table (with the cycles column)
//   ./build.sh bench --filter '*'                everything (short jobs; about a quarter of an hour on 2 cores)
//   ./build.sh bench --dry                       every benchmark once, in process (CI: none may rot)
//   ./build.sh bench --inprocess --filter F      the short job in this process (no generated project to build)
//   ./build.sh bench --segments                  the kernel's own per-exit TSC segments and modelled cycles (no BenchmarkDotNet)
//
// Any other argument goes to BenchmarkSwitcher unchanged (--filter, --list, --job, --inProcess, ...).

using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;

namespace Copra.Bench;

public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Contains("--segments")) return ExitSegments.Run();
        bool dry = args.Contains("--dry");
        // --inprocess: the short job in this process. Why: on a loaded shared host the generated project's build can
        // pass BenchmarkDotNet's two-minute build timeout (it did on 2026-11-29), and nothing gets measured.
        bool inProcess = args.Contains("--inprocess");
        string[] rest = args.Where(a => a is not ("--dry" or "--inprocess")).ToArray();
        if (dry && !rest.Any(a => a is "--filter" or "-f")) rest = [.. rest, "--filter", "*"];
        IConfig config = dry ? BenchConfig.Dry() : BenchConfig.Short(inProcess);
        var summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(rest, config);
        // A benchmark that threw reports itself as a failed case; CI must see that as a failure.
        foreach (var s in summaries)
            if (s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) return 1;
        return 0;
    }
}

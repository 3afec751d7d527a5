using System.Text.RegularExpressions;
using Copra.Kernel.Run;
using Xunit;

namespace Copra.Tests.CommandLine;

/// <summary>docs/scenario.md lists exactly the keys the reader accepts, and its example is a valid scenario.</summary>
public class ScenarioDocTests
{
    static string Doc()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "docs", "scenario.md"))) return File.ReadAllText(Path.Combine(d.FullName, "docs", "scenario.md"));
        throw new FileNotFoundException("docs/scenario.md");
    }

    [Fact]
    public void Every_key_is_documented_and_every_documented_key_exists()
    {
        var documented = Regex.Matches(Doc(), @"^\| `([a-z_.\[\]]+)` \|", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToHashSet();
        var keys = Scenario.Keys.Select(k => k.Path).ToHashSet();
        Assert.Equal(keys.Order(), documented.Order());
    }

    [Fact]
    public void The_example_parses_with_its_values()
    {
        string json = Regex.Match(Doc(), "```json\n(.*?)```", RegexOptions.Singleline).Groups[1].Value;
        var sc = Scenario.Parse(json, "docs/scenario.md");
        Assert.Equal("tdx", sc.Platform);
        Assert.Equal(4, sc.Cpus);
        Assert.Equal(2, sc.Vms.Count);
        Assert.Equal(0xFEB0_0000UL, sc.Vms[0].TestDevice);
        Assert.Equal(8, sc.VmmBatch);
        Assert.Equal(1500, sc.Costs["tdcall"]);
    }

    [Theory]
    [InlineData("two-vms.json", 2, 2)]
    [InlineData("one-vm.json", 1, 1)]
    public void The_shipped_scaling_scenarios_parse_with_the_shape_bench_scaling_sh_assumes(string file, int cpus, int vms)
    {
        // bench/scaling.sh compares one-vm.json's one VM against two-vms.json's two: the VMs must be the same, and each
        // scenario must say the CPU count the script's comparison assumes.
        string dir = Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(DocPath()))!, "bench", "scenarios");
        var sc = Scenario.Load(Path.Combine(dir, file));
        Assert.Equal(cpus, sc.Cpus);
        Assert.Equal(vms, sc.Vms.Count);
        var two = Scenario.Load(Path.Combine(dir, "two-vms.json"));
        Assert.All(sc.Vms, vm => Assert.Equal(two.Vms[0], vm));
        Assert.Equal(two.Workload.Mix, sc.Workload.Mix);
        Assert.Equal(two.Workload with { Mix = sc.Workload.Mix }, sc.Workload);   // every other workload key
    }

    [Fact]
    public void The_shipped_alu_scenario_runs_the_alu_form_alone_on_one_cpu()
    {
        // PERF.md counts bench/scenarios/alu.json as the ALU read-modify-write exit alone: one CPU, one vCPU, and every
        // access exit an ALU one (the guest's HLT at the end is a run-page exit), answered by the device each time.
        string dir = Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(DocPath()))!, "bench", "scenarios");
        var sc = Scenario.Load(Path.Combine(dir, "alu.json"));
        Assert.Equal((1, 1, 1), (sc.Cpus, sc.Vms.Count, sc.Vms[0].Vcpus));
        Assert.Equal(["alu"], sc.Workload.Mix);
        using var sys = new CopraSystem(sc with { Workload = sc.Workload with { Iterations = 200 } });
        Assert.True(sys.Run().Quiescent);
        var stats = sys.Kernel.Stats;
        Assert.Equal(200, stats.Samples(Copra.Hot.Exit.ExitKind.MmioAlu));
        Assert.Equal(200, stats.Completed);
        Assert.Equal(400, stats.DeviceRoundTrips);   // a read and a write each
        Assert.Equal(0, sys.Kernel.InternalErrors);
    }

    static string DocPath()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "docs", "scenario.md"))) return Path.Combine(d.FullName, "docs", "scenario.md");
        throw new FileNotFoundException("docs/scenario.md");
    }

    [Fact]
    public void Every_known_key_is_accepted_by_the_reader()
    {
        // One file that sets every key: the unknown-key check and the typed reader agree on the key set.
        const string all = """
        { "platform": "snp", "cpus": 2, "seed": 3, "driver": "deterministic", "unhandled": "reinject", "backend": "replay",
          "vms": [{ "vcpus": 1, "memory_mb": 6, "uart": 1016, "testdev": "0xfeb00000", "irq": "0x41" }],
          "workload": { "greeting": "", "device_driver": false, "unregistered": false, "mix": ["read"], "pattern": "random", "iterations": 3 },
          "vmm": { "state_fields": 1, "batch": 2 },
          "costs": { "exit": 1, "tdcall": 2, "forward": 3, "syscall": 4, "wake": 5 } }
        """;
        var sc = Scenario.Parse(all, "all-keys");
        Assert.Equal(0x41UL, sc.Vms[0].IrqVector);
        Assert.Equal(1016UL, sc.Vms[0].Uart);
        Assert.Equal(5, sc.Costs.Count);
        Assert.Equal("reinject", sc.Unhandled);
    }
}

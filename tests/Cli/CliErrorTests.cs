using Copra.Kernel;
using Xunit;

namespace Copra.Tests.CommandLine;

/// <summary>
/// Every mistake issue 15 found, as a user would make it: one line on stderr naming the option, file or JSON path,
/// a documented exit code, nothing on stdout, and never a stack trace.
/// </summary>
public class CliErrorTests
{
    static void OneLine(CopraCli.Result r, int code, params string[] expected)
    {
        Assert.True(code == r.Code, $"exit code {r.Code}, expected {code}; stderr: {r.Err}");
        var lines = r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line on stderr, got: {r.Err}");
        foreach (var e in expected) Assert.Contains(e, lines[0]);
        Assert.DoesNotContain("   at ", r.Err);
        Assert.DoesNotContain("Exception", r.Err);
        Assert.Equal("", r.Out);
    }

    [Theory]
    [InlineData("run"), InlineData("decode"), InlineData("tune"), InlineData("trace"), InlineData("exitbench"), InlineData("kvmbench"), InlineData("decodebench")]
    public void Help_works_on_every_command_and_shows_options_with_ranges(string command)
    {
        var r = CopraCli.Run(command, "--help");
        Assert.Equal(ExitCodes.Ok, r.Code);
        Assert.Contains($" {command} [options]", r.Out);
        Assert.Contains("--help", r.Out);
        Assert.Equal("", r.Err);
        if (command is "run" or "tune" or "exitbench" or "kvmbench" or "decodebench") Assert.Contains("[range: ", r.Out);
    }

    [Fact]
    public void Top_level_help_lists_every_command_and_the_exit_codes()
    {
        var r = CopraCli.Run("--help");
        Assert.Equal(0, r.Code);
        foreach (var c in new[] { "run", "decode", "tune", "trace", "exitbench", "kvmbench", "decodebench" }) Assert.Contains($"  {c} ", r.Out);
        Assert.Contains("2 usage error", r.Out);
        Assert.Contains("130 interrupted", r.Out);
    }

    [Fact]
    public void Version_prints_the_version()
    {
        var r = CopraCli.Run("--version");
        Assert.Equal(0, r.Code);
        Assert.Matches(@"^\d+\.\d+\.\d+", r.Out);
    }

    [Fact] public void Unknown_option_is_named() => OneLine(CopraCli.Run("run", "--frob"), 2, "copra run:", "unknown option '--frob'");
    [Fact] public void Near_miss_option_suggests_the_option() => OneLine(CopraCli.Run("run", "--cpu", "3"), 2, "'--cpu'", "did you mean '--cpus'");
    [Fact] public void Unknown_command_is_named() => OneLine(CopraCli.Run("frob"), 2, "copra:", "unknown command 'frob'", "exitbench");
    [Fact] public void No_command_is_a_usage_error() => Assert.Equal(2, CopraCli.Run().Code);
    [Fact] public void Time_every_that_is_not_a_power_of_two_is_refused() => OneLine(CopraCli.Run("run", "--time-every", "3"), 2, "--time-every: 3 is not a power of two");
    [Fact] public void Time_every_out_of_range_is_refused() => OneLine(CopraCli.Run("run", "--time-every", "131072"), 2, "--time-every: 131072 is out of range 1..65,536");
    [Fact] public void Cpus_out_of_int_range_is_refused() => OneLine(CopraCli.Run("run", "--cpus", "4294967298"), 2, "--cpus: 4294967298 is out of range 1..64");
    [Fact] public void Negative_seed_is_refused() => OneLine(CopraCli.Run("run", "--seed", "-5"), 2, "--seed: '-5'");
    [Fact] public void Unknown_platform_lists_the_choices() => OneLine(CopraCli.Run("run", "--platform", "arm"), 2, "--platform: 'arm' is not one of snp, tdx, native");
    [Fact] public void Exits_past_the_ceiling_are_refused() => OneLine(CopraCli.Run("run", "--exits", "100000000", "--quiet"), 2, "--exits: 100000000 is out of range 1..10,000,000");
    [Fact] public void Bad_fault_value_is_refused() => OneLine(CopraCli.Run("run", "--faults", "device-crash=zz"), 2, "--faults: fault device-crash=zz");
    [Fact] public void Missing_scenario_file_is_named() => OneLine(CopraCli.Run("run", "--scenario", "/nonexistent.json"), 2, "--scenario: '/nonexistent.json' does not exist");
    [Fact] public void Json_into_a_missing_folder_is_refused_before_the_run() => OneLine(CopraCli.Run("run", "--json", "/nonexistent/dir/x.json"), 2, "--json: cannot write '/nonexistent/dir/x.json'", "does not exist");
    [Fact] public void Tune_plot_into_a_missing_folder_is_refused_before_the_sweep() => OneLine(CopraCli.Run("tune", "--plot", "/nope/t.png"), 2, "copra tune: --plot: cannot write '/nope/t.png'");
    [Fact] public void Tune_batch_out_of_range_is_refused() => OneLine(CopraCli.Run("tune", "--batch", "0,2"), 2, "--batch: 0 is out of range");
    [Fact] public void Trace_exit_zero_is_refused() => OneLine(CopraCli.Run("trace", "--exit", "0"), 2, "--exit: 0 is out of range");
    [Fact] public void Decode_mode_8_is_refused() => OneLine(CopraCli.Run("decode", "--mode", "8"), 2, "--mode: '8' is not one of 16, 32, 64");
    [Fact] public void Exitbench_negative_warmup_is_refused() => OneLine(CopraCli.Run("exitbench", "--warm-ms", "-1"), 2, "--warm-ms: -1 is out of range");

    [Fact]
    public void Kvmbench_without_kvm_says_so_with_exit_code_3()
    {
        if (global::Copra.Kernel.Kvm.KvmSystem.IsAvailable(out _)) return;   // with /dev/kvm it would run: the no-KVM path is what is tested
        OneLine(CopraCli.Run("kvmbench", "--exits", "100"), ExitCodes.NoKvm, "copra kvmbench: needs /dev/kvm");
    }

    [Theory]
    [InlineData("{\"cpu\": 3, \"platfrom\": \"tdx\"}", "$.cpu: unknown key; did you mean 'cpus'?")]
    [InlineData("{\"cpus\": 2, \"platfrom\": \"tdx\"}", "$.platfrom: unknown key; did you mean 'platform'?")]
    [InlineData("{\"cpus\": \"2\"}", "$.cpus (line 1): expected integer 1..64")]
    [InlineData("{\"cpus\": 2, \"vms\": [", "line 1: malformed JSON")]
    [InlineData("{\"workload\": {\"mix\": [\"read\", \"wrte\"]}}", "$.workload.mix[1]: unknown entry 'wrte'")]
    [InlineData("{\"vms\": [{\"testdev\": \"0xfeb00010\"}]}", "$.vms[0].testdev: 0xfeb00010 is not page-aligned")]
    [InlineData("{\"vms\": [{\"uart\": \"zz\"}]}", "$.vms[0].uart (line 1): expected port")]
    [InlineData("{\"cpus\": 65}", "$.cpus: 65 is out of range 1..64")]
    [InlineData("{\"vms\": [{\"vcpus\": 1, \"memory_mb\": 5}]}", "$.vms[0].memory_mb: 5 must be even")]
    [InlineData("{\"workload\": {\"iterations\": 0}}", "$.workload.iterations: 0 is out of range")]
    [InlineData("{\"costs\": {\"tdcal\": 5}}", "$.costs.tdcal: unknown key; did you mean 'tdcall'?")]
    [InlineData("{\"platform\": \"arm\"}", "$.platform: 'arm' is not one of snp, tdx, native")]
    [InlineData("[1, 2]", "$ (line 1): expected a JSON object")]
    public void Bad_scenario_files_are_one_line_naming_the_file_and_the_json_path(string json, string expected)
    {
        using var s = new CopraCli.Scratch();
        string path = s.File("sc.json", json);
        OneLine(CopraCli.Run("run", "--scenario", path, "--quiet"), 2, $"copra run: {path}: ", expected);
    }

    [Fact]
    public void Trace_reads_scenarios_through_the_same_checks()
    {
        using var s = new CopraCli.Scratch();
        string path = s.File("sc.json", "{\"cpus\": 2, \"seeed\": 1}");
        OneLine(CopraCli.Run("trace", "--scenario", path), 2, "$.seeed: unknown key; did you mean 'seed'?");
    }

    [Fact]
    public void Near_miss_suggestions_pick_the_closest_known_name()
    {
        Assert.Equal("cpus", Suggest.Nearest("cpu", ["cpus", "seed", "platform"]));
        Assert.Equal("platform", Suggest.Nearest("platfrom", ["cpus", "seed", "platform"]));
        Assert.Null(Suggest.Nearest("zzzzzz", ["cpus", "seed"]));
    }
}

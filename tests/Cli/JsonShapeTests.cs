using System.Text.Json;
using Copra.Kernel;
using Copra.Kernel.Report;
using Xunit;

namespace Copra.Tests.CommandLine;

/// <summary>
/// Each --json shape is pinned to docs/json.md both ways: every field written is documented in the command's
/// section (or the common frame), and every documented field that is not marked optional is written.
/// </summary>
public class JsonShapeTests
{
    public static string Docs()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "docs", "json.md"))) return File.ReadAllText(Path.Combine(d.FullName, "docs", "json.md"));
        throw new FileNotFoundException("docs/json.md not found above the test binary");
    }

    public static JsonElement AssertShape(string json, string command)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement.Clone();
        Assert.Equal(1, root.GetProperty("schema_version").GetInt32());
        Assert.Equal(command, root.GetProperty("command").GetString());
        string md = Docs();
        var documented = JsonPaths.Documented(md, "## Common frame (every document)").Concat(JsonPaths.Documented(md, $"## `{command}`")).ToList();
        Assert.NotEmpty(JsonPaths.Documented(md, $"## `{command}`"));
        var written = JsonPaths.Of(root);
        // Without an invariant TSC, measured figures are nanoseconds and their names say so (docs/json.md, measured_unit).
        if (root.TryGetProperty("cycles", out var cy) && cy.TryGetProperty("measured_unit", out var mu) && mu.GetString() == "ns")
            written = new SortedSet<string>(written.Select(p => p.Contains(".measured.") || p.Contains(".hardware_round_trip.") ? p.Replace("_ns", "_cycles") : p), StringComparer.Ordinal);
        var undocumented = written.Where(p => documented.All(d => d.Path != p)).ToList();
        Assert.True(undocumented.Count == 0, $"written but not in docs/json.md ({command}): {string.Join(", ", undocumented)}");
        var missing = documented.Where(d => !d.Optional && !written.Contains(d.Path)).Select(d => d.Path).ToList();
        Assert.True(missing.Count == 0, $"documented but not written ({command}): {string.Join(", ", missing)}");
        foreach (var p in written)
            Assert.Matches("^[a-z0-9_.<>\\[\\]]+$", p);   // snake_case throughout
        return root;
    }

    [Fact]
    public void Run_json_to_stdout_is_the_documented_shape_with_ordered_distributions()
    {
        var r = CopraCli.Run("run", "--exits", "400", "--faults", "device-crash", "--json", "-");
        Assert.Equal(ExitCodes.Ok, r.Code);
        var root = AssertShape(r.Out, "run");
        Assert.Equal(2, root.GetProperty("parameters").GetProperty("cpu_count").GetInt32());
        Assert.True(root.GetProperty("result").GetProperty("clean").GetBoolean());
        var byKind = root.GetProperty("cycles").GetProperty("by_kind");
        Assert.True(byKind.TryGetProperty("mmio_read", out _));
        long total = 0;
        foreach (var k in byKind.EnumerateObject())
        {
            total += k.Value.GetProperty("exits_count").GetInt64();
            foreach (var side in new[] { "measured", "modelled" })
            {
                var d = k.Value.GetProperty(side);
                long[] q = new[] { "min_cycles", "p50_cycles", "p90_cycles", "p99_cycles", "p99_9_cycles", "max_cycles" }.Select(n => d.GetProperty(n).GetInt64()).ToArray();
                Assert.True(q.Zip(q.Skip(1)).All(x => x.First <= x.Second), $"{k.Name} {side}: percentiles out of order {string.Join(",", q)}");
                // Measured: one exit in 16 is timed (cycles.time_every), so a rare kind may have no timed sample: then all zeros.
                if (side == "measured" && d.GetProperty("samples_count").GetInt64() == 0) Assert.True(q.All(x => x == 0), $"{k.Name}: figures without samples");
                else Assert.True(q[0] > 0, $"{k.Name} {side}: no cycles");
            }
        }
        Assert.Equal(root.GetProperty("exits").GetProperty("total_count").GetInt64(), total);
        // One in 16 timed: the measured samples over all kinds are about a sixteenth of the exits (binomial; wide bounds).
        Assert.Equal(16, root.GetProperty("cycles").GetProperty("time_every").GetInt32());
        long timed = root.GetProperty("cycles").GetProperty("all").GetProperty("measured").GetProperty("samples_count").GetInt64();
        Assert.InRange(timed, total / 40, total / 6);
    }

    [Fact]
    public void Tune_json_is_the_documented_shape_with_constants_once()
    {
        var r = CopraCli.Run("tune", "--batch", "1,4", "--tdcall", "400,3000", "--fields", "2", "--exits", "10", "--quiet", "--json", "-");
        Assert.Equal(0, r.Code);
        var root = AssertShape(r.Out, "tune");
        Assert.Equal(4, root.GetProperty("points").GetArrayLength());
        Assert.Equal(2, root.GetProperty("best").GetArrayLength());
        Assert.False(root.GetProperty("points")[0].TryGetProperty("syscall_cycles", out _));
    }

    [Fact]
    public void Trace_json_is_the_documented_shape()
    {
        var r = CopraCli.Run("trace", "--exit", "5", "--json", "-");
        Assert.Equal(0, r.Code);
        var root = AssertShape(r.Out, "trace");
        Assert.True(root.GetProperty("steps").GetArrayLength() > 2);
    }

    [Fact]
    public void Exitbench_json_is_the_documented_shape()
    {
        var r = CopraCli.Run("exitbench", "--exits", "50", "--warm-ms", "0", "--json", "-");
        Assert.Equal(0, r.Code);
        var root = AssertShape(r.Out, "exitbench");
        Assert.Equal(["mmio_read", "mmio_write", "mmio_alu", "port_out", "forwarded"], root.GetProperty("rigs").EnumerateArray().Select(x => x.GetProperty("rig").GetString()!));
    }

    [Fact]
    public void Kvmbench_json_is_the_documented_shape()
    {
        // The writer on rows of known values (measuring needs /dev/kvm; the shape does not).
        var host = Copra.Kernel.Kvm.HostVirtualization.Classify("flags\t: fpu hypervisor\n", ["kvm", "kvm_pvm"]);
        var rounds = new KvmBenchCommand.Round[] { new(1500, 3000, 500), new(1000, 3000, 400), new(2000, 3000, 600) };
        var json = KvmBenchCommand.Json(100, host, [new KvmBenchCommand.Row("read", rounds), new KvmBenchCommand.Row("port_out", rounds)]);
        var root = AssertShape(json, "kvmbench");
        var read = root.GetProperty("accesses")[0];
        Assert.Equal(2.0, read.GetProperty("copra_to_bare_ratio").GetDouble());      // median of 2, 3, 1.5
        Assert.Equal(1.5, read.GetProperty("copra_to_bare_ratio_min").GetDouble());
        Assert.Equal(3.0, read.GetProperty("copra_to_bare_ratio_max").GetDouble());
        Assert.Equal(3, read.GetProperty("rounds").GetArrayLength());
        Assert.Equal("Pvm", root.GetProperty("host_virtualization").GetString());
    }

    [Fact]
    public void Json_paths_use_the_docs_notation()
    {
        using var doc = JsonDocument.Parse("{\"a\":{\"by_kind\":{\"mmio_read\":{\"x_count\":1}}},\"b\":[{\"c\":1},{\"d\":2}]}");
        Assert.Equal(["a", "a.by_kind", "a.by_kind.<kind>", "a.by_kind.<kind>.x_count", "b", "b[].c", "b[].d"], JsonPaths.Of(doc.RootElement));
    }
}

/// <summary>Outputs that are not JSON: the plot formats and the no-output-lost rule.</summary>
public class OutputFileTests
{
    [Fact]
    public void Tune_plot_writes_svg_for_svg_names_and_png_otherwise()
    {
        using var s = new CopraCli.Scratch();
        string svg = s.File("t.svg"), png = s.File("t.png");
        Assert.Equal(0, CopraCli.Run("tune", "--batch", "1,2", "--tdcall", "400", "--fields", "1", "--exits", "10", "--quiet", "--plot", svg).Code);
        Assert.Equal(0, CopraCli.Run("tune", "--batch", "1,2", "--tdcall", "400", "--fields", "1", "--exits", "10", "--quiet", "--plot", png).Code);
        Assert.Contains("<svg", File.ReadAllText(svg));
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, File.ReadAllBytes(png).AsSpan(0, 4).ToArray());
    }

    [Fact]
    public void Run_plot_writes_a_png_and_json_dash_does_not_create_a_file_named_dash()
    {
        using var s = new CopraCli.Scratch();
        string png = s.File("exits.png");
        string cwd = Environment.CurrentDirectory;
        var r = CopraCli.Run("run", "--exits", "200", "--quiet", "--plot", png, "--json", "-");
        Assert.Equal(0, r.Code);
        Assert.False(File.Exists(Path.Combine(cwd, "-")));
        Assert.StartsWith("{", r.Out);
        Assert.True(new FileInfo(png).Length > 10_000);
    }
}

/// <summary>Ctrl-C (a stop request) ends the run between driver chunks and still writes what was asked for.</summary>
public class InterruptTests
{
    [Fact]
    public void A_stopped_run_exits_130_and_still_writes_its_json_marked_interrupted()
    {
        using var s = new CopraCli.Scratch();
        string json = s.File("r.json");
        var o = new StringWriter();
        var e = new StringWriter();
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var sc = RunCommand.WithExits(global::Copra.Kernel.Run.Scenario.Default(), 2_000_000);
        int rc = RunCommand.Execute(new global::Copra.Kernel.Cli.Io(o, e), sc, new RunCommand.Outputs(json, null, null), new global::Copra.Kernel.Run.FaultSpec(), quiet: true, cts.Token);
        Assert.Equal(ExitCodes.Interrupted, rc);
        Assert.Contains("interrupted after", e.ToString());
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var result = doc.RootElement.GetProperty("result");
        Assert.True(result.GetProperty("interrupted").GetBoolean());
        Assert.False(result.GetProperty("clean").GetBoolean());
        long taken = doc.RootElement.GetProperty("exits").GetProperty("total_count").GetInt64();
        Assert.InRange(taken, 1, 1_000_000);   // stopped after the first chunk, far short of two million
    }
}

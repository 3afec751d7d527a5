using Copra.Kernel;
using Copra.User.Programs;
using Xunit;

namespace Copra.Tests.Batch;

/// <summary><c>copra tune</c>: its counts come from running the kernel and follow from the VMM's calls.</summary>
public sealed class TuneTests
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(1, 16)]
    [InlineData(4, 5)]
    [InlineData(8, 16)]
    [InlineData(64, 16)]
    public void Measured_counts_match_the_vmm_calls(int batch, int fields)
    {
        var p = TuneCommand.Measure(batch, 800, fields, 40, 440, 1600);
        int calls = fields + StateWork.WritesFor(fields);
        // Each exit: the batched GET/SET calls, then WAIT_FOR_EVENT (one transition) back into the guest.
        double transitions = (batch == 1 ? calls : (calls + batch - 1) / batch) + 1;
        Assert.Equal(transitions, p.TransitionsPerExit, 6);
        Assert.Equal(fields, p.TdReadsPerExit, 6);                       // a CPUID exit needs no read of the kernel's own
        Assert.Equal(StateWork.WritesFor(fields), p.TdWritesPerExit, 6);  // every written field once, at entry
        Assert.Equal(1600 + p.TdcallsPerExit * 800 + transitions * 440, p.CyclesPerExit, 6);
    }

    [Fact]
    public void Counts_do_not_depend_on_the_tdcall_cost()
    {
        var a = TuneCommand.Measure(4, 400, 6, 20, 440, 800);
        var b = TuneCommand.Measure(4, 3000, 6, 20, 440, 6000);
        Assert.Equal(a.TdcallsPerExit, b.TdcallsPerExit);
        Assert.Equal(a.TransitionsPerExit, b.TransitionsPerExit);
    }

    [Fact]
    public void Cli_writes_json_with_one_record_per_point_and_a_png()
    {
        string dir = Directory.CreateTempSubdirectory("copra-tune").FullName;
        string json = Path.Combine(dir, "t.json"), png = Path.Combine(dir, "t.png");
        int rc = Cli.Run(["tune", "--batch", "1,2,4", "--tdcall", "400,3000", "--fields", "1..2", "--exits", "10", "--quiet", "--json", json, "--plot", png]);
        Assert.Equal(0, rc);
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(json));
        var recs = doc.RootElement.GetProperty("points").EnumerateArray().ToList();
        Assert.Equal(3 * 2 * 2, recs.Count);
        foreach (var name in new[] { "batch_size_count", "tdcall_cycles", "state_fields_count", "modelled_cycles_per_exit", "tdcalls_per_exit_count", "transitions_per_exit_count" })
            Assert.All(recs, r => Assert.True(r.TryGetProperty(name, out _), name));
        var png8 = File.ReadAllBytes(png).AsSpan(0, 8).ToArray();
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, png8);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void Best_batch_is_the_smallest_within_one_percent_and_lists_parse()
    {
        Assert.Equal([1L, 2, 3, 4, 8], TuneCommand.ParseList("x", "1..4,8,2"));
        TunePoint P(int b, double tr) => new(b, 800, 4, 10, 5, 4, 1, tr, 1600, 440);
        Assert.Equal(4, TuneCommand.Best([P(1, 6), P(2, 4), P(4, 3), P(8, 3)]).Batch);
        Assert.Throws<CliException>(() => TuneCommand.ParseList("x", "5..1"));
    }
}

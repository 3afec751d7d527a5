using System.Text.Json;
using Copra.Kernel;
using Copra.Kernel.Report;
using Xunit;

namespace Copra.Fuzz.Properties;

/// <summary>The campaign runner's command line: named errors with exit code 2, and --json in the documented shape.</summary>
public class RunnerCliTests
{
    static (int Code, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int rc = Program.Run(args, new Cli.Io(o, e));
        return (rc, o.ToString(), e.ToString());
    }

    [Theory]
    [InlineData("--minutes|-1", "fuzz: --minutes: -1 is out of range")]
    [InlineData("--bytes|zz", "fuzz: --bytes: 'zz' is not hex bytes")]
    [InlineData("--target|ring", "did you mean 'rings'?")]
    [InlineData("--jobs|0", "fuzz: --jobs: 0 is out of range")]
    [InlineData("--frob", "fuzz: unknown option '--frob'")]
    public void Mistakes_are_one_line_with_exit_code_2(string args, string expected)
    {
        var r = Run(args.Split('|'));
        Assert.Equal(ExitCodes.Usage, r.Code);
        Assert.Contains(expected, r.Err);
        Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal("", r.Out);
    }

    [Fact]
    public void Json_to_stdout_is_the_documented_shape()
    {
        var r = Run("--target", "rings", "--cases", "20", "--seed", "7", "--json", "-");
        Assert.Equal(0, r.Code);
        using var doc = JsonDocument.Parse(r.Out);
        var root = doc.RootElement;
        Assert.Equal("fuzz", root.GetProperty("command").GetString());
        Assert.Equal(7UL, root.GetProperty("parameters").GetProperty("base_seed").GetUInt64());
        Assert.Equal(20, root.GetProperty("targets")[0].GetProperty("cases_count").GetInt64());
        string md = Docs();
        var documented = JsonPaths.Documented(md, "## Common frame (every document)").Concat(JsonPaths.Documented(md, "## `fuzz`")).ToList();
        var written = JsonPaths.Of(root);
        var undocumented = written.Where(p => documented.All(d => d.Path != p)).ToList();
        var missing = documented.Where(d => !d.Optional && !written.Contains(d.Path)).Select(d => d.Path).ToList();
        Assert.True(undocumented.Count == 0, "undocumented: " + string.Join(", ", undocumented));
        Assert.True(missing.Count == 0, "not written: " + string.Join(", ", missing));
    }

    static string Docs()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "docs", "json.md"))) return File.ReadAllText(Path.Combine(d.FullName, "docs", "json.md"));
        throw new FileNotFoundException("docs/json.md");
    }
}

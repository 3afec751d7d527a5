using Copra.Kernel;

namespace Copra.Tests.CommandLine;

/// <summary>Runs <c>copra</c> in-process with captured stdout and stderr.</summary>
public static class CopraCli
{
    public sealed record Result(int Code, string Out, string Err);

    public static Result Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int rc = global::Copra.Kernel.Cli.Run(args, new global::Copra.Kernel.Cli.Io(o, e));
        return new Result(rc, o.ToString(), e.ToString());
    }

    /// <summary>A scratch folder deleted on dispose.</summary>
    public sealed class Scratch : IDisposable
    {
        public string Dir { get; } = Directory.CreateTempSubdirectory("copra-cli").FullName;
        public string File(string name, string? text = null)
        {
            string p = Path.Combine(Dir, name);
            if (text is not null) System.IO.File.WriteAllText(p, text);
            return p;
        }
        public void Dispose() => Directory.Delete(Dir, true);
    }
}

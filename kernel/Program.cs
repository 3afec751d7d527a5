namespace Copra.Kernel;

/// <summary>The <c>copra</c> command: run, decode, tune, trace.</summary>
public static class Program
{
    public static int Main(string[] args) => Cli.Run(args);
}

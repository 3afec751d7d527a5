using System.CommandLine;

namespace Copra.Kernel;

public static partial class Cli
{
    /// <summary>The <c>copra</c> command tree: every command, with help on each.</summary>
    public static RootCommand BuildRoot(Io io)
    {
        var root = new RootCommand(
            "copra: an executable model of the COCONUT-SVSM kernel's user-mode syscall ABI. Runs scenarios, decodes instructions, " +
            "tunes batching, narrates exits and times the exit path.\n" + ExitCodes.Help);
        root.Subcommands.Add(RunCommand.Build(io));
        root.Subcommands.Add(DecodeCommandCli(io));
        root.Subcommands.Add(TuneCommand.Build(io));
        root.Subcommands.Add(TraceCommand.Build(io));
        root.Subcommands.Add(ExitBenchCommand.Build(io));
        root.Subcommands.Add(DecodeBenchCommand.Build(io));
        root.Subcommands.Add(KvmBenchCommand.Build(io));
        return root;
    }

    static Command DecodeCommandCli(Io io)
    {
        var cmd = new Command("decode", "Hex instruction bytes on stdin (one instruction a line), one decoded access per line as JSON on stdout.");
        var mode = Choice("--mode", "CPU mode the bytes are decoded in", "64", "16", "32", "64");
        cmd.Options.Add(mode);
        cmd.SetAction(pr => DecodeCommand.Run(Console.In, io.Out, DecodeCommand.ParseMode(pr.GetValue(mode))));
        return cmd;
    }
}

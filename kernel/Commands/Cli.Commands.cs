
namespace Copra.Kernel;

public static partial class Cli
{
    static partial void DispatchMore(string verb, string[] rest, ref int? result)
    {
        result = verb switch
        {
            "run" => RunCommand.Run(rest),
            "decode" => Decode(rest),
            "tune" => TuneCommand.Run(rest),
            "trace" => TraceCommand.Run(rest),
            "kvmbench" => KvmBenchCommand.Run(rest),
            "exitbench" => ExitBenchCommand.Run(rest),
            _ => null,
        };
    }

    static int Decode(string[] rest)
    {
        var a = new CliArgs(rest);
        a.RejectUnknown("mode");
        return DecodeCommand.Run(Console.In, Console.Out, DecodeCommand.ParseMode(a.Get("mode")));
    }
}

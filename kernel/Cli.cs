namespace Copra.Kernel;

/// <summary>Sub-command dispatch for <c>copra</c>. A hand-written parser: AOT-clean and small.</summary>
public static partial class Cli
{
    public static int Run(string[] args)
    {
        if (args.Length == 0) return Usage(Console.Error, 2);
        var rest = args.AsSpan(1).ToArray();
        try
        {
            return args[0] switch
            {
                "help" or "--help" or "-h" => Usage(Console.Out, 0),
                _ => Dispatch(args[0], rest),
            };
        }
        catch (CliException e)
        {
            Console.Error.WriteLine($"copra {args[0]}: {e.Message}");
            return 2;
        }
    }

    static partial void DispatchMore(string verb, string[] rest, ref int? result);

    static int Dispatch(string verb, string[] rest)
    {
        int? result = null;
        DispatchMore(verb, rest, ref result);
        return result ?? Usage(Console.Error, 2);
    }

    static int Usage(TextWriter w, int rc)
    {
        w.WriteLine("usage: copra <command> [options]");
        w.WriteLine("  run     boot the kernel and run a scenario end to end (see copra run --help)");
        w.WriteLine("  decode  hex instruction bytes on stdin, one decoded access per line as JSON");
        w.WriteLine("  tune    sweep batch size against TDCALL cost");
        w.WriteLine("  trace   one exit, step by step");
        return rc;
    }
}

/// <summary>A command-line mistake: printed as one line, exit code 2.</summary>
public sealed class CliException(string message) : Exception(message);

/// <summary>Options as <c>--name value</c> pairs and bare <c>--flags</c>.</summary>
public sealed class CliArgs
{
    readonly Dictionary<string, string?> _opts = new(StringComparer.Ordinal);

    public CliArgs(string[] args, params string[] flags)
    {
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (!a.StartsWith("--", StringComparison.Ordinal)) throw new CliException($"unexpected argument '{a}'");
            string name = a[2..];
            string? value = null;
            int eq = name.IndexOf('=');
            if (eq >= 0) { value = name[(eq + 1)..]; name = name[..eq]; }
            else if (!flags.Contains(name))
            {
                if (i + 1 >= args.Length) throw new CliException($"--{name} needs a value");
                value = args[++i];
            }
            _opts[name] = value;
        }
    }

    public bool Has(string name) => _opts.ContainsKey(name);
    public string? Get(string name) => _opts.TryGetValue(name, out var v) ? v : null;
    public string Get(string name, string dflt) => Get(name) ?? dflt;

    public long GetLong(string name, long dflt)
    {
        string? v = Get(name);
        if (v is null) return dflt;
        return ParseNumber(name, v);
    }

    public static long ParseNumber(string name, string v)
    {
        bool ok = v.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? long.TryParse(v.AsSpan(2), System.Globalization.NumberStyles.HexNumber, null, out long n)
            : long.TryParse(v, out n);
        if (!ok) throw new CliException($"--{name}: '{v}' is not a number");
        return n;
    }

    public void RejectUnknown(params string[] known)
    {
        foreach (var k in _opts.Keys)
            if (!known.Contains(k)) throw new CliException($"unknown option --{k}");
    }
}

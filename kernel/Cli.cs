using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Globalization;

namespace Copra.Kernel;

/// <summary>Exit codes of <c>copra</c> (and of the fuzz runner): documented in README.md and <c>copra --help</c>.</summary>
public static class ExitCodes
{
    /// <summary>The command finished and what it checked was clean.</summary>
    public const int Ok = 0;
    /// <summary>The command finished but the run was not clean (did not quiesce, internal errors, desyncs, fuzz failures).</summary>
    public const int NotClean = 1;
    /// <summary>A usage mistake: unknown command or option, a bad value, a bad scenario file, an unwritable output path.</summary>
    public const int Usage = 2;
    /// <summary>The KVM backend was asked for and /dev/kvm cannot be used.</summary>
    public const int NoKvm = 3;
    /// <summary>An output file could not be written after the run (it was checked before; something changed under it).</summary>
    public const int OutputFailed = 4;
    /// <summary>A bug in copra: an unexpected exception, reported as one line.</summary>
    public const int Internal = 70;
    /// <summary>Stopped by Ctrl-C (SIGINT); what was asked for was still written from the part that ran.</summary>
    public const int Interrupted = 130;

    public const string Help =
        "exit codes: 0 clean, 1 ran but not clean, 2 usage error (bad option, value or scenario file), 3 no usable /dev/kvm, " +
        "4 an output file could not be written, 70 internal error (a bug), 130 interrupted by Ctrl-C (outputs still written)";
}

/// <summary>A command-line or input mistake: printed as one line, exit code <see cref="ExitCodes.Usage"/>.</summary>
public class CliException(string message) : Exception(message);

/// <summary>
/// <c>copra</c>'s command line, on System.CommandLine: chosen over ConsoleAppFramework because it gives help,
/// typo suggestions, per-option validators and response files with no attributes on our code, and is AOT/trim-clean.
/// Every parse error and every <see cref="CliException"/> is one line on stderr and exit code 2; no exception
/// reaches the runtime (a bug is one line and exit code 70).
/// </summary>
public static partial class Cli
{
    /// <summary>Where commands write: stdout/stderr normally, writers of a test's choosing in-process.</summary>
    public sealed record Io(TextWriter Out, TextWriter Err)
    {
        public static Io Console => new(System.Console.Out, System.Console.Error);
    }

    public static int Run(string[] args) => Run(args, Io.Console);

    public static int Run(string[] args, Io io)
    {
        var root = BuildRoot(io);
        return Invoke(root, "copra", args, io);
    }

    /// <summary>Parses and runs <paramref name="args"/> against <paramref name="root"/>: the error, help and exception policy shared with the fuzz runner.</summary>
    public static int Invoke(RootCommand root, string tool, string[] args, Io io)
    {
        ParseResult pr;
        try { pr = root.Parse(args); }
        catch (Exception e) { io.Err.WriteLine($"{tool}: {e.Message}"); return ExitCodes.Usage; }
        string where = CommandPath(tool, pr.CommandResult.Command);
        if (pr.Action is ParseErrorAction)
        {
            io.Err.WriteLine($"{where}: {Describe(pr)} (see '{where} --help')");
            return ExitCodes.Usage;
        }
        try
        {
            return pr.Invoke(new InvocationConfiguration { Output = io.Out, Error = io.Err, EnableDefaultExceptionHandler = false });
        }
        catch (CliException e) { io.Err.WriteLine($"{where}: {e.Message}"); return ExitCodes.Usage; }
        catch (OutputException e) { io.Err.WriteLine($"{where}: {e.Message}"); return ExitCodes.OutputFailed; }
        catch (Exception e)
        {
            io.Err.WriteLine($"{where}: internal error: {e.GetType().Name}: {OneLine(e.Message)} (please report it)");
            return ExitCodes.Internal;
        }
    }

    static string OneLine(string s) => s.ReplaceLineEndings(" ");

    static string CommandPath(string tool, Command c)
    {
        var names = new List<string>();
        for (Command? x = c; x is not null and not RootCommand; x = x.Parents.OfType<Command>().FirstOrDefault()) names.Insert(0, x.Name);
        return names.Count == 0 ? tool : $"{tool} {string.Join(' ', names)}";
    }

    /// <summary>The first parse error as one sentence, naming the token and, for a near miss, what was meant.</summary>
    static string Describe(ParseResult pr)
    {
        var cmd = pr.CommandResult.Command;
        if (pr.UnmatchedTokens.Count > 0)
        {
            string tok = pr.UnmatchedTokens[0];
            bool isOption = tok.StartsWith('-');
            var known = isOption
                ? cmd.Options.SelectMany(o => o.Aliases.Prepend(o.Name)).Where(n => n.StartsWith("--", StringComparison.Ordinal))
                : cmd.Subcommands.Select(s => s.Name);
            string what = isOption ? $"unknown option '{tok}'" : cmd.Subcommands.Count > 0 ? $"unknown command '{tok}'" : $"unexpected argument '{tok}'";
            if (Suggest.Nearest(tok, known) is { } near) what += $"; did you mean '{near}'?";
            else if (!isOption && cmd.Subcommands.Count > 0) what += $" (commands: {string.Join(", ", cmd.Subcommands.Where(s => !s.Hidden).Select(s => s.Name))})";
            return what;
        }
        var err = pr.Errors[0];
        return OneLine(err.Message).TrimEnd('.');
    }

    /// <summary>The value of an option the user gave, or null when it was not on the command line.</summary>
    public static T? Given<T>(ParseResult pr, Option<T> o) where T : struct =>
        pr.GetResult(o) is { Implicit: false } ? pr.GetValue(o) : null;

    // ---- option helpers: every number has a range, every option a description and (where fixed) a default ----

    /// <summary>An integer option in [min, max] (decimal or 0x-hex); out-of-range and non-numbers are parse errors naming the option.</summary>
    public static Option<long> Int(string name, string description, long min, long max, long? dflt = null)
    {
        var o = new Option<long>(name)
        {
            Description = $"{description} [range: {Range(min, max)}]",
            HelpName = "N",
            CustomParser = r => ParseLong(r, name, min, max),
        };
        if (dflt is long d) o.DefaultValueFactory = _ => d;
        return o;
    }

    static string Range(long min, long max) => max == long.MaxValue ? $"{min:N0}.." : $"{min:N0}..{max:N0}";

    static long ParseLong(ArgumentResult r, string name, long min, long max)
    {
        if (r.Tokens.Count == 0) return min;
        string v = r.Tokens[0].Value;
        if (!TryParseLong(v, out long n)) { r.AddError($"{name}: '{v}' is not an integer"); return min; }
        if (n < min || n > max) r.AddError($"{name}: {v} is out of range {Range(min, max)}");
        return n;
    }

    /// <summary>An unsigned 64-bit option (seeds): decimal or 0x-hex, never negative.</summary>
    public static Option<ulong> U64(string name, string description)
    {
        return new Option<ulong>(name)
        {
            Description = $"{description} [range: 0..2^64-1]",
            HelpName = "N",
            CustomParser = r =>
            {
                if (r.Tokens.Count == 0) return 0;
                string v = r.Tokens[0].Value;
                bool ok = v.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
                    ? ulong.TryParse(v.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong n)
                    : ulong.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out n);
                if (!ok) r.AddError($"{name}: '{v}' is not an integer in 0..2^64-1");
                return n;
            },
        };
    }

    /// <summary>A decimal option in [min, max] (minutes and the like).</summary>
    public static Option<double> Real(string name, string description, double min, double max, double? dflt = null)
    {
        var o = new Option<double>(name)
        {
            Description = $"{description} [range: {min}..{max}]",
            HelpName = "X",
            CustomParser = r =>
            {
                if (r.Tokens.Count == 0) return min;
                string v = r.Tokens[0].Value;
                if (!double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double x) || double.IsNaN(x))
                { r.AddError($"{name}: '{v}' is not a number"); return min; }
                if (x < min || x > max) r.AddError($"{name}: {v} is out of range {min}..{max}");
                return x;
            },
        };
        if (dflt is double d) o.DefaultValueFactory = _ => d;
        return o;
    }

    /// <summary>A string option restricted to <paramref name="choices"/>.</summary>
    public static Option<string> Choice(string name, string description, string? dflt, params string[] choices)
    {
        var o = new Option<string>(name) { Description = description, HelpName = string.Join('|', choices) };
        o.Validators.Add(r =>
        {
            if (r.Tokens.Count == 0) return;
            string v = r.Tokens[0].Value;
            if (choices.Contains(v)) return;
            string hint = Suggest.Nearest(v, choices) is { } near ? $"; did you mean '{near}'?" : "";
            r.AddError($"{name}: '{v}' is not one of {string.Join(", ", choices)}{hint}");
        });
        if (dflt is not null) o.DefaultValueFactory = _ => dflt;
        return o;
    }

    public static Option<bool> Flag(string name, string description) => new(name) { Description = description };

    /// <summary>An output file option: FILE, or '-' for stdout; checked for writability when parsed, before any work.</summary>
    public static Option<string> Output(string name, string description, bool allowStdout = true)
    {
        var o = new Option<string>(name) { Description = description, HelpName = allowStdout ? "FILE|-" : "FILE" };
        o.Validators.Add(r =>
        {
            if (r.Tokens.Count == 0) return;
            string path = r.Tokens[0].Value;
            if (path == "-" && allowStdout) return;
            if (path == "-") { r.AddError($"{name}: '-' (stdout) is not supported here"); return; }
            if (OutputPathProblem(path) is { } why) r.AddError($"{name}: cannot write '{path}': {why}");
        });
        return o;
    }

    /// <summary>An input file option: must exist.</summary>
    public static Option<string> Input(string name, string description)
    {
        var o = new Option<string>(name) { Description = description, HelpName = "FILE" };
        o.Validators.Add(r =>
        {
            if (r.Tokens.Count == 0) return;
            string path = r.Tokens[0].Value;
            if (Directory.Exists(path)) r.AddError($"{name}: '{path}' is a directory, not a file");
            else if (!File.Exists(path)) r.AddError($"{name}: '{path}' does not exist");
        });
        return o;
    }

    /// <summary>Why <paramref name="path"/> cannot be written, or null: the folder must exist and a file there must be creatable.</summary>
    public static string? OutputPathProblem(string path)
    {
        try
        {
            string full = Path.GetFullPath(path);
            if (Directory.Exists(full)) return "it is a directory";
            string? dir = Path.GetDirectoryName(full);
            if (dir is not null && !Directory.Exists(dir)) return $"the folder '{dir}' does not exist";
            bool existed = File.Exists(full);
            using (new FileStream(full, FileMode.OpenOrCreate, FileAccess.Write, FileShare.ReadWrite)) { }
            if (!existed) File.Delete(full);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return OneLine(e.Message);
        }
    }

    /// <summary>Writes <paramref name="text"/> to FILE, or to stdout for '-'.</summary>
    public static void WriteOutput(Io io, string path, string text)
    {
        if (path == "-") { io.Out.Write(text); io.Out.WriteLine(); io.Out.Flush(); return; }
        try { File.WriteAllText(path, text + "\n"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OutputException($"could not write '{path}': {OneLine(e.Message)}");
        }
    }

    public static bool TryParseLong(string v, out long n) =>
        v.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? long.TryParse(v.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out n)
            : long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out n);

    /// <summary>"1,2,4" or "1..16" or a mix ("1..4,8,16"), each value in [min, max].</summary>
    public static long[] ParseList(string name, string text, long min, long max)
    {
        var list = new List<long>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int dots = part.IndexOf("..", StringComparison.Ordinal);
            if (dots < 0) { list.Add(Number(part)); continue; }
            long lo = Number(part[..dots]), hi = Number(part[(dots + 2)..]);
            if (hi < lo || hi - lo > 10_000) throw new CliException($"--{name}: bad range '{part}'");
            for (long x = lo; x <= hi; x++) list.Add(x);
        }
        if (list.Count == 0) throw new CliException($"--{name} is empty");
        foreach (long x in list)
            if (x < min || x > max) throw new CliException($"--{name}: {x} is out of range {Range(min, max)}");
        return list.Distinct().Order().ToArray();

        long Number(string s) => TryParseLong(s, out long n) ? n : throw new CliException($"--{name}: '{s}' is not an integer");
    }

    /// <summary>A list option ("1,2,4", "1..16"), checked when parsed.</summary>
    public static Option<string> List(string name, string description, long min, long max, string dflt)
    {
        var o = new Option<string>(name) { Description = $"{description}: a list like 1,2,4 or 1..16 [range: {Range(min, max)}]", HelpName = "LIST", DefaultValueFactory = _ => dflt };
        o.Validators.Add(r =>
        {
            if (r.Tokens.Count == 0) return;
            try { ParseList(name.TrimStart('-'), r.Tokens[0].Value, min, max); }
            catch (CliException e) { r.AddError(e.Message); }
        });
        return o;
    }
}

/// <summary>An output that was checked before the run but could not be written after it: exit code 4.</summary>
public sealed class OutputException(string message) : Exception(message);

/// <summary>Nearest-name suggestions (Levenshtein distance) for misspelled options and scenario keys.</summary>
public static class Suggest
{
    public static string? Nearest(string word, IEnumerable<string> known)
    {
        string? best = null;
        int bestD = int.MaxValue;
        foreach (var k in known)
        {
            int d = Distance(word, k);
            if (d < bestD) { bestD = d; best = k; }
        }
        return best is not null && bestD <= Math.Max(2, word.Length / 3) ? best : null;
    }

    public static int Distance(string a, string b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) prev[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }
}

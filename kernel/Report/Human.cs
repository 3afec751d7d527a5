using System.Diagnostics;
using Spectre.Console;

namespace Copra.Kernel.Report;

/// <summary>
/// Human output: Spectre tables on stdout for every command. When stdout is piped, the console is made wide so
/// prose is never wrapped mid-sentence and tables keep their natural width. Progress goes to stderr: Spectre's
/// live bar on a terminal, one line every few seconds otherwise, so stdout stays clean for data.
/// </summary>
public static class Human
{
    static int s_init;

    /// <summary>Call once before writing: widens a piped console (80 columns would wrap prose and pad lines).</summary>
    public static void Init()
    {
        if (Interlocked.Exchange(ref s_init, 1) == 1) return;
        if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 400;
    }

    /// <summary>Runs <paramref name="work"/>, reporting its progress (a count towards <paramref name="total"/>) on stderr unless <paramref name="show"/> is false.</summary>
    public static T WithProgress<T>(bool show, TextWriter err, string tool, string what, long total, Func<Action<long>, T> work)
    {
        if (!show) return work(_ => { });
        if (!Console.IsErrorRedirected && ReferenceEquals(err, Console.Error))
        {
            var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
            return console.Progress().AutoClear(true)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask(Markup.Escape(what), maxValue: Math.Max(1, total));
                    return work(v => task.Value = Math.Min(total, v));
                });
        }
        var sw = Stopwatch.StartNew();
        long next = 2000;
        return work(v =>
        {
            if (sw.ElapsedMilliseconds < next) return;
            next = sw.ElapsedMilliseconds + 5000;
            err.WriteLine($"{tool}: {what}: {v:N0} of about {total:N0} ({100.0 * v / Math.Max(1, total):F0}%), {sw.Elapsed.TotalSeconds:F0} s");
        });
    }

}

/// <summary>Ctrl-C as a token: the first press asks the work to stop (outputs are still written, exit code 130); a second press ends the process.</summary>
public sealed class CtrlC : IDisposable
{
    readonly CancellationTokenSource _cts = new();
    readonly ConsoleCancelEventHandler _handler;

    public CtrlC()
    {
        _handler = (_, e) =>
        {
            if (_cts.IsCancellationRequested) return;
            e.Cancel = true;
            _cts.Cancel();
        };
        Console.CancelKeyPress += _handler;
    }

    public CancellationToken Token => _cts.Token;
    public bool Pressed => _cts.IsCancellationRequested;

    public void Dispose()
    {
        Console.CancelKeyPress -= _handler;
        _cts.Dispose();
    }
}

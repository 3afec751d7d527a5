using System.Diagnostics;

namespace Copra.Tests.Rings;

/// <summary>
/// Runs test bodies on real, dedicated threads and turns any failure into a test failure.
/// Bodies wait on a ring with <see cref="Wait"/>, which spins (SpinWait, never sleeps) and
/// bails out as soon as another body has failed, so one broken side cannot leave the rest
/// spinning. The join has a generous hang guard: it exists so a lost entry fails the test
/// instead of hanging the run, not to measure speed.
/// </summary>
internal sealed class Crew
{
    private static readonly TimeSpan HangGuard = TimeSpan.FromMinutes(2);
    private Exception? _failure;

    private sealed class CrewAborted() : Exception("another crew thread failed");

    /// <summary>One wait step for a body spinning on a ring: throws if another body has failed.</summary>
    public void Wait(ref SpinWait spin)
    {
        if (Volatile.Read(ref _failure) is not null) throw new CrewAborted();
        spin.SpinOnce(sleep1Threshold: -1);
    }

    /// <summary>Starts every body on its own thread, joins them all, and rethrows the first failure.</summary>
    public void Run(params Action[] bodies)
    {
        var threads = new Thread[bodies.Length];
        for (int i = 0; i < bodies.Length; i++)
        {
            Action body = bodies[i];
            threads[i] = new Thread(() =>
            {
                try { body(); }
                catch (Exception e) { Interlocked.CompareExchange(ref _failure, e, null); }
            }) { IsBackground = true, Name = $"ring-test-{i}" };
        }
        var clock = Stopwatch.StartNew();
        foreach (var t in threads) t.Start();
        foreach (var t in threads)
        {
            TimeSpan left = HangGuard - clock.Elapsed;
            if (!t.Join(left > TimeSpan.Zero ? left : TimeSpan.Zero))
            {
                Interlocked.CompareExchange(ref _failure, new TimeoutException($"{t.Name} made no progress; entries lost or ring wedged"), null);
                t.Join();
            }
        }
        var failure = Volatile.Read(ref _failure);
        if (failure is not null) throw new Xunit.Sdk.XunitException($"ring test thread failed: {failure}");
    }
}

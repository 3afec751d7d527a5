// Design note — CacheLinePingPong: the floor under any cross-core ring round trip. Two threads
// bounce one value on one padded cache line: the pinger stores 2i+1 and waits for 2i+2, the
// ponger waits for 2i+1 and stores 2i+2. Each round trip moves the line to the other core and
// back, with no ring bookkeeping, so ring round-trip latency / ping-pong latency is the ring's
// overhead ratio (the bench suite's baseline).
//
// Who may call what: Run from one thread (it starts the ponger itself); or Reset, then Ping and
// Pong with the same count on two different threads. Never two pingers or two pongers at once.
//
// Invariant: the line's value is 2k after k completed round trips and 2k+1 while round trip k+1
// is in flight; only the pinger writes odd values, only the ponger even ones, and each writes
// only after observing the other's last value, so the two never race on a store.
//
// Memory ordering: each store is a release and each wait an acquire load; nothing else is
// shared, so this is also the cheapest correct handoff the rings could hope for. Waiting spins
// with SpinWait, which yields (never sleeps) if the other thread is not running, so the test
// also completes on a loaded two-core machine.

using System.Runtime.CompilerServices;

namespace Copra.Hot.Rings;

/// <summary>
/// Two threads bouncing one value on one padded cache line, N round trips: the baseline for ring
/// round-trip latency.
/// </summary>
public sealed class CacheLinePingPong
{
    private PaddedIndex _line;

    /// <summary>The value on the line: twice the round trips completed since the last <see cref="Reset"/> (odd while one is in flight).</summary>
    public long Value => _line.ReadAcquire();

    /// <summary>Puts the line back to 0. Only while neither <see cref="Ping"/> nor <see cref="Pong"/> is running.</summary>
    public void Reset() => _line.WriteRelease(0);

    /// <summary>
    /// Resets the line, runs <see cref="Pong"/> on a new thread and <see cref="Ping"/> on the
    /// calling thread for <paramref name="roundTrips"/> round trips, and returns the number completed.
    /// </summary>
    public long Run(long roundTrips)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(roundTrips);
        Reset();
        var ponger = new Thread(() => Pong(roundTrips)) { IsBackground = true, Name = "copra-pingpong" };
        ponger.Start();
        long completed = Ping(roundTrips);
        ponger.Join();
        return completed;
    }

    /// <summary>
    /// Initiator: serves <paramref name="roundTrips"/> times and waits for each return. Another
    /// thread must run <see cref="Pong"/> with the same count after the same <see cref="Reset"/>.
    /// Returns the round trips completed.
    /// </summary>
    public long Ping(long roundTrips)
    {
        long completed = 0;
        for (long i = 0; i < roundTrips; i++)
        {
            long serve = 2 * i + 1;
            _line.WriteRelease(serve);
            WaitFor(serve + 1);
            completed++;
        }
        return completed;
    }

    /// <summary>Responder: waits for each serve and returns it, <paramref name="roundTrips"/> times.</summary>
    public void Pong(long roundTrips)
    {
        for (long i = 0; i < roundTrips; i++)
        {
            long serve = 2 * i + 1;
            WaitFor(serve);
            _line.WriteRelease(serve + 1);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WaitFor(long value)
    {
        if (_line.ReadAcquire() == value) return;
        var spin = new SpinWait();
        while (_line.ReadAcquire() != value) spin.SpinOnce(sleep1Threshold: -1);
    }
}

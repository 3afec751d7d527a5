using System.Runtime.CompilerServices;
using BenchmarkDotNet.Attributes;
using Copra.Hot.Rings;

namespace Copra.Bench;

/// <summary>SpscRing push then pop on one thread: the ring's bookkeeping with no line transfer.</summary>
[MemoryDiagnoser]
public class RingsSingleThreadBench
{
    SpscRing<long> _ring = null!;
    const int Ops = 1024;

    [GlobalSetup]
    public void Setup() => _ring = new SpscRing<long>(1024);

    [Benchmark(Baseline = true, OperationsPerInvoke = Ops, Description = "SpscRing push+pop, one thread (per item)")]
    public long PushPop()
    {
        long sum = 0;
        for (long i = 0; i < Ops; i++)
        {
            _ring.TryEnqueue(i);
            _ring.TryDequeue(out long x);
            sum += x;
        }
        return sum;
    }
}

/// <summary>
/// Two threads: the benchmark thread and one partner thread started in [GlobalSetup] and kept for the
/// whole run (so no invocation pays for a thread start). Each invocation signals the partner, both run
/// <see cref="N"/> operations, and the partner signals back; the two signals are amortised over N.
/// Baseline: <see cref="CacheLinePingPong"/>, one value bounced on one line, the floor under any ring
/// round trip between the same two threads. Every wait spins with SpinWait (never sleeps), as
/// CacheLinePingPong does.
/// </summary>
[MemoryDiagnoser]
public class RingsCrossThreadBench
{
    public const int N = 20_000;
    enum Work { None, Pong, Echo, Produce, Quit }

    readonly CacheLinePingPong _pp = new();
    SpscRing<long> _req = null!, _reply = null!, _stream = null!;
    readonly SemaphoreSlim _go = new(0), _done = new(0);
    volatile Work _work;
    Thread _partner = null!;

    [GlobalSetup]
    public void Setup()
    {
        _req = new SpscRing<long>(64);
        _reply = new SpscRing<long>(64);
        _stream = new SpscRing<long>(1024);
        _partner = new Thread(PartnerLoop) { IsBackground = true, Name = "bench-partner" };
        _partner.Start();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _work = Work.Quit;
        _go.Release();
        _partner.Join();
    }

    void PartnerLoop()
    {
        while (true)
        {
            _go.Wait();
            switch (_work)
            {
                case Work.Quit: return;
                case Work.Pong: _pp.Pong(N); break;
                case Work.Echo:
                    for (int i = 0; i < N; i++)
                    {
                        long x = Take(_req);
                        Put(_reply, x);
                    }
                    break;
                case Work.Produce:
                    for (long i = 0; i < N; i++) Put(_stream, i);
                    break;
            }
            _done.Release();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Put(SpscRing<long> r, long x)
    {
        if (r.TryEnqueue(x)) return;
        var spin = new SpinWait();
        while (!r.TryEnqueue(x)) spin.SpinOnce(sleep1Threshold: -1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static long Take(SpscRing<long> r)
    {
        if (r.TryDequeue(out long x)) return x;
        var spin = new SpinWait();
        while (!r.TryDequeue(out x)) spin.SpinOnce(sleep1Threshold: -1);
        return x;
    }

    void Start(Work w) { _work = w; _go.Release(); }

    [Benchmark(Baseline = true, OperationsPerInvoke = N, Description = "CacheLinePingPong round trip")]
    public long PingPong()
    {
        _pp.Reset();
        Start(Work.Pong);
        long n = _pp.Ping(N);
        _done.Wait();
        return n;
    }

    [Benchmark(OperationsPerInvoke = N, Description = "SpscRing round trip (request ring + reply ring)")]
    public long RingRoundTrip()
    {
        Start(Work.Echo);
        long sum = 0;
        for (long i = 0; i < N; i++)
        {
            Put(_req, i);
            sum += Take(_reply);
        }
        _done.Wait();
        return sum;
    }

    [Benchmark(OperationsPerInvoke = N, Description = "SpscRing cross-thread stream (per item)")]
    public long RingThroughput()
    {
        Start(Work.Produce);
        long sum = 0;
        for (int i = 0; i < N; i++) sum += Take(_stream);
        _done.Wait();
        return sum;
    }
}

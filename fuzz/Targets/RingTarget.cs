// Rings under real concurrency: producers on their own threads push (producer, sequence) entries in random batch
// sizes while the consumer drains in random batch sizes. Every entry must arrive exactly once, and in order per
// producer. SpscRing gets one producer; MpscRing one to four. The interleaving is the scheduler's, so a case is
// reproducible in its sizes, not in its timing: the campaign runs many.
using Copra.Fuzz.Core;
using Copra.Hot.Rings;

namespace Copra.Fuzz.Targets;

public enum RingKind { Spsc, Mpsc }

/// <summary>The ring under test, reduced to what the property drives.</summary>
public interface IRing
{
    int TryEnqueueMany(ReadOnlySpan<long> items);
    int TryDequeueMany(Span<long> dest);
}

public sealed class SpscAdapter(int capacity) : IRing
{
    readonly SpscRing<long> _r = new(capacity);
    public int TryEnqueueMany(ReadOnlySpan<long> items) => _r.TryEnqueueMany(items);
    public int TryDequeueMany(Span<long> dest) => _r.TryDequeueMany(dest);
}

public class MpscAdapter(int capacity) : IRing
{
    readonly MpscRing<long> _r = new(capacity);
    public virtual bool TryEnqueue(long item) => _r.TryEnqueue(item);
    public int TryEnqueueMany(ReadOnlySpan<long> items)
    {
        int n = 0;
        while (n < items.Length && TryEnqueue(items[n])) n++;
        return n;
    }
    public int TryDequeueMany(Span<long> dest)
    {
        int n = 0;
        while (n < dest.Length && _r.TryDequeue(out dest[n])) n++;
        return n;
    }
    protected bool InnerEnqueue(long item) => _r.TryEnqueue(item);
}

public sealed record RingCase(RingKind Kind, int Capacity, int[] ItemsPerProducer, int[] ProducerBatches, int[] ConsumerBatches)
{
    public int Total => ItemsPerProducer.Sum();
}

public sealed class RingTarget(Func<RingKind, int, IRing>? factory = null, string? name = null, RingKind? only = null) : FuzzTarget<RingCase>
{
    readonly Func<RingKind, int, IRing> _make = factory ?? ((k, c) => k == RingKind.Spsc ? new SpscAdapter(c) : new MpscAdapter(c));

    public override string Name => name ?? "rings";
    public override string Description => "SpscRing/MpscRing: concurrent producers, every entry once, in order per producer";
    public override bool ParallelSafe => false;

    public override RingCase Generate(Rng r)
    {
        var kind = only ?? (r.Chance(50) ? RingKind.Spsc : RingKind.Mpsc);
        int producers = kind == RingKind.Spsc ? 1 : 1 + r.Next(4);
        int capacity = 1 << r.Next(1, 9);
        var items = new int[producers];
        for (int i = 0; i < producers; i++) items[i] = r.Chance(10) ? r.Next(3) : r.Next(1, 600);
        int[] Batches() { var b = new int[1 + r.Next(4)]; for (int i = 0; i < b.Length; i++) b[i] = 1 + r.Next(r.Chance(50) ? 4 : 2 * capacity); return b; }
        return new RingCase(kind, capacity, items, Batches(), Batches());
    }

    public override string Show(RingCase c) =>
        $"{c.Kind} capacity {c.Capacity} producers [{string.Join(',', c.ItemsPerProducer)}] producer batches [{string.Join(',', c.ProducerBatches)}] consumer batches [{string.Join(',', c.ConsumerBatches)}]";

    public override int SizeOf(RingCase c) => c.Total;

    public override IEnumerable<RingCase> Shrink(RingCase c)
    {
        if (c.ItemsPerProducer.Length > 1) yield return c with { ItemsPerProducer = c.ItemsPerProducer[..^1] };
        if (c.Capacity > 2) yield return c with { Capacity = c.Capacity / 2 };
        for (int i = 0; i < c.ItemsPerProducer.Length; i++)
            if (c.ItemsPerProducer[i] > 1)
            {
                var a = (int[])c.ItemsPerProducer.Clone();
                a[i] /= 2;
                yield return c with { ItemsPerProducer = a };
            }
        if (c.ProducerBatches.Length > 1) yield return c with { ProducerBatches = [1] };
        if (c.ConsumerBatches.Length > 1) yield return c with { ConsumerBatches = [1] };
    }

    public override string? Check(RingCase c)
    {
        IRing ring = _make(c.Kind, c.Capacity);
        int producers = c.ItemsPerProducer.Length;
        int running = producers;
        var threads = new Thread[producers];
        using var start = new ManualResetEventSlim(false);
        for (int p = 0; p < producers; p++)
        {
            int id = p;
            threads[p] = new Thread(() =>
            {
                start.Wait();
                var buf = new long[c.ProducerBatches.Max()];
                int sent = 0, bi = 0;
                var spin = new SpinWait();
                while (sent < c.ItemsPerProducer[id])
                {
                    int n = Math.Min(c.ProducerBatches[bi++ % c.ProducerBatches.Length], c.ItemsPerProducer[id] - sent);
                    for (int k = 0; k < n; k++) buf[k] = (long)id << 32 | (uint)(sent + k);
                    int done = 0;
                    while (done < n)
                    {
                        int m = ring.TryEnqueueMany(buf.AsSpan(done, n - done));
                        if (m == 0) spin.SpinOnce(sleep1Threshold: -1); else done += m;
                    }
                    sent += n;
                }
                Interlocked.Decrement(ref running);
            }) { IsBackground = true };
            threads[p].Start();
        }
        start.Set();
        var next = new int[producers];
        var dest = new long[c.ConsumerBatches.Max()];
        int ci = 0;
        long received = 0;
        string? error = null;
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            int want = c.ConsumerBatches[ci++ % c.ConsumerBatches.Length];
            bool finished = Volatile.Read(ref running) == 0;
            int n = ring.TryDequeueMany(dest.AsSpan(0, want));
            for (int k = 0; k < n; k++)
            {
                int p = (int)(dest[k] >> 32), s = (int)(uint)dest[k];
                received++;
                if (error is not null) continue;
                if (p < 0 || p >= producers) error = $"entry {dest[k]:x} from no producer";
                else if (s != next[p]) error = $"producer {p}: got sequence {s}, expected {next[p]} ({(s < next[p] ? "duplicate" : "entries lost or reordered")})";
                else next[p]++;
            }
            if (n == 0)
            {
                if (finished) break;           // producers done before this empty dequeue: the ring is drained
                if (DateTime.UtcNow > deadline) return "timeout: consumer stalled";
                Thread.Yield();
            }
        }
        foreach (var t in threads) t.Join();
        if (error is not null) return error;
        for (int p = 0; p < producers; p++)
            if (next[p] != c.ItemsPerProducer[p]) return $"producer {p}: {next[p]} of {c.ItemsPerProducer[p]} entries arrived";
        return null;
    }
}

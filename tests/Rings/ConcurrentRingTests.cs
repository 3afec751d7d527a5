using Copra.Abi;
using Copra.Hot.Rings;
using Xunit;

namespace Copra.Tests.Rings;

/// <summary>Serialises the multi-thread ring tests so their spinning threads do not compete for the same cores.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RingThreadsCollection
{
    public const string Name = "Ring threads";
}

/// <summary>
/// Real producer and consumer threads moving millions of entries through each ring: nothing
/// lost, duplicated, reordered or torn. Small capacities keep the rings wrapping and hitting the
/// full/empty slow paths constantly. No timing is asserted.
/// </summary>
[Collection(RingThreadsCollection.Name)]
public class ConcurrentRingTests
{
    const int Entries = 5_000_000;

    [Fact]
    public void Spsc_moves_five_million_records_in_order_one_at_a_time()
    {
        var ring = new SpscRing<ExitRecordLike>(256);
        var crew = new Crew();
        long received = 0;
        crew.Run(
            () =>
            {
                var spin = new SpinWait();
                for (long i = 0; i < Entries; i++)
                {
                    var record = ExitRecordLike.For(i);
                    while (!ring.TryEnqueue(record)) crew.Wait(ref spin);
                    spin = default;
                }
            },
            () =>
            {
                var spin = new SpinWait();
                for (long expected = 0; expected < Entries; expected++)
                {
                    ExitRecordLike record;
                    while (!ring.TryDequeue(out record)) crew.Wait(ref spin);
                    spin = default;
                    if (record.Sequence != expected) throw new InvalidOperationException($"expected {expected}, got {record.Sequence}");
                    if (!record.IsWhole) throw new InvalidOperationException($"torn record at {expected}: {record}");
                    received++;
                }
            });
        Assert.Equal(Entries, received);
        Assert.Equal(0, ring.Count);
    }

    [Fact]
    public void Spsc_moves_five_million_values_in_order_in_batches()
    {
        var ring = new SpscRing<long>(1024);
        var crew = new Crew();
        long received = 0;
        crew.Run(
            () =>
            {
                var batch = new long[61];
                var spin = new SpinWait();
                long next = 0;
                while (next < Entries)
                {
                    int size = (int)Math.Min(next % batch.Length + 1, Entries - next);
                    for (int i = 0; i < size; i++) batch[i] = next + i;
                    int sent = ring.TryEnqueueMany(batch.AsSpan(0, size));
                    if (sent == 0) { crew.Wait(ref spin); continue; }
                    spin = default;
                    next += sent;
                }
            },
            () =>
            {
                var buffer = new long[97];
                var spin = new SpinWait();
                long expected = 0;
                while (expected < Entries)
                {
                    int got = ring.TryDequeueMany(buffer.AsSpan(0, (int)(expected % buffer.Length) + 1));
                    if (got == 0) { crew.Wait(ref spin); continue; }
                    spin = default;
                    for (int i = 0; i < got; i++)
                        if (buffer[i] != expected++) throw new InvalidOperationException($"expected {expected - 1}, got {buffer[i]}");
                }
                received = expected;
            });
        Assert.Equal(Entries, received);
    }

    [Fact]
    public void Mpsc_takes_every_entry_from_four_producers_exactly_once_in_per_producer_order()
    {
        const int producers = 4;
        const long perProducer = Entries / producers;
        var ring = new MpscRing<long>(1024);
        var crew = new Crew();
        var lastSeen = new long[producers];
        long received = 0;

        var bodies = new Action[producers + 1];
        for (int p = 0; p < producers; p++)
        {
            long id = p;
            bodies[p] = () =>
            {
                var spin = new SpinWait();
                for (long seq = 0; seq < perProducer; seq++)
                {
                    while (!ring.TryEnqueue(id << 40 | seq)) crew.Wait(ref spin);
                    spin = default;
                }
            };
        }
        bodies[producers] = () =>
        {
            Array.Fill(lastSeen, -1);
            var spin = new SpinWait();
            for (long n = 0; n < producers * perProducer; n++)
            {
                long value;
                while (!ring.TryDequeue(out value)) crew.Wait(ref spin);
                spin = default;
                int id = (int)(value >> 40);
                long seq = value & ((1L << 40) - 1);
                if ((uint)id >= producers) throw new InvalidOperationException($"entry from unknown producer: {value:x}");
                if (seq != lastSeen[id] + 1) throw new InvalidOperationException($"producer {id}: expected {lastSeen[id] + 1}, got {seq}");
                lastSeen[id] = seq;
                received++;
            }
        };
        crew.Run(bodies);

        Assert.Equal(producers * perProducer, received);
        Assert.All(lastSeen, last => Assert.Equal(perProducer - 1, last));
        Assert.False(ring.TryDequeue(out _));
        Assert.Equal(0, ring.Count);
    }

    [Fact]
    public void Batch_rings_carry_five_million_calls_to_the_kernel_and_their_completions_back()
    {
        var sq = new SubmissionRing(256);
        var cq = new CompletionRing(256);
        var crew = new Crew();
        long completed = 0, served = 0;

        static long ResultFor(in SysCallIn e) => (long)(e.Nr ^ e.A4) - (long)e.A2;

        crew.Run(
            () => // user thread: produces submissions, consumes completions
            {
                var spin = new SpinWait();
                ulong pushed = 0;
                while (completed < Entries)
                {
                    int batch = (int)(pushed % 61) + 1;
                    int k = 0;
                    while (k < batch && pushed < Entries && sq.TryPush(BatchRingTests.In(pushed))) { pushed++; k++; }
                    sq.Publish();                                  // one release store per batch
                    bool drained = false;
                    while (cq.TryPop(out var done))
                    {
                        var call = BatchRingTests.In((ulong)completed);
                        if (done.UserData != (ulong)completed) throw new InvalidOperationException($"completion {completed}: user_data {done.UserData}");
                        if (done.Result != ResultFor(call)) throw new InvalidOperationException($"completion {completed}: result {done.Result}");
                        completed++;
                        drained = true;
                    }
                    if (k == 0 && !drained) crew.Wait(ref spin);
                    else spin = default;
                }
            },
            () => // kernel: consumes submissions, produces completions
            {
                var spin = new SpinWait();
                int sincePublish = 0;
                while (served < Entries)
                {
                    if (!sq.TryPop(out var call))
                    {
                        cq.Publish();                              // never sit on finished work while idle
                        sincePublish = 0;
                        crew.Wait(ref spin);
                        continue;
                    }
                    spin = default;
                    if (!call.Equals(BatchRingTests.In((ulong)served))) throw new InvalidOperationException($"submission {served} arrived as {call}");
                    var result = new SysCallOut { Result = ResultFor(call), UserData = call.UserData };
                    while (!cq.TryPush(result))
                    {
                        cq.Publish();
                        crew.Wait(ref spin);
                    }
                    spin = default;
                    served++;
                    if (++sincePublish == 32) { cq.Publish(); sincePublish = 0; }
                }
                cq.Publish();
            });

        Assert.Equal(Entries, served);
        Assert.Equal(Entries, completed);
        Assert.Equal(0, sq.PeekCount());
        Assert.Equal(0, cq.PeekCount());
    }
}

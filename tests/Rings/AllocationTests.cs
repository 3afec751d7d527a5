using Copra.Abi;
using Copra.Hot.Rings;
using Xunit;

namespace Copra.Tests.Rings;

/// <summary>
/// Zero bytes allocated by enqueue/dequeue after construction, through fast and slow paths
/// (each loop fills the ring to refusal and drains it to refusal). Every path runs once before
/// the measured loop so first-call costs stay out of the count.
/// </summary>
public class AllocationTests
{
    const int Rounds = 2_000;

    static long Measure(Action run) => Support.SteadyState.BytesPerRound(run);

    [Fact]
    public void Spsc_single_and_batch_operations_allocate_nothing()
    {
        var ring = new SpscRing<ExitRecordLike>(64);
        var batch = new ExitRecordLike[24];
        long bytes = Measure(() =>
        {
            for (int r = 0; r < Rounds; r++)
            {
                while (ring.TryEnqueue(ExitRecordLike.For(r))) { }
                while (ring.TryDequeue(out _)) { }
                while (ring.TryEnqueueMany(batch) > 0) { }
                while (ring.TryDequeueMany(batch) > 0) { }
                _ = ring.Count;
            }
        });
        Assert.Equal(0, bytes);
    }

    [Fact]
    public void Mpsc_operations_allocate_nothing()
    {
        var ring = new MpscRing<ExitRecordLike>(64);
        long bytes = Measure(() =>
        {
            for (int r = 0; r < Rounds; r++)
            {
                while (ring.TryEnqueue(ExitRecordLike.For(r))) { }
                while (ring.TryDequeue(out _)) { }
                _ = ring.Count;
            }
        });
        Assert.Equal(0, bytes);
    }

    [Fact]
    public void Batch_ring_operations_allocate_nothing()
    {
        var sq = new SubmissionRing(64);
        var cq = new CompletionRing(64);
        long bytes = Measure(() =>
        {
            for (int r = 0; r < Rounds; r++)
            {
                while (sq.TryPush(BatchRingTests.In((ulong)r))) { }
                sq.Publish();
                _ = sq.PeekCount();
                while (sq.TryPop(out var call)) cq.TryPush(new SysCallOut { Result = 0, UserData = call.UserData });
                cq.Publish();
                _ = cq.PeekCount();
                while (cq.TryPop(out _)) { }
            }
        });
        Assert.Equal(0, bytes);
    }
}

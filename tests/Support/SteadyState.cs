namespace Copra.Tests.Support;

/// <summary>
/// How the allocation tests measure "allocates nothing in steady state": the least this thread
/// allocated over several rounds of the same work. An allocation per call shows in every round; the
/// runtime's own occasional work on the thread (tiered JIT promoting a method mid-loop, a pool trimmed
/// after another test's GC) does not repeat round after round. Counts, never times.
/// </summary>
public static class SteadyState
{
    public static long BytesPerRound(Action round, int rounds = 5)
    {
        round();   // warm up every path once
        long least = long.MaxValue;
        for (int r = 0; r < rounds && least != 0; r++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            round();
            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        return least;
    }
}

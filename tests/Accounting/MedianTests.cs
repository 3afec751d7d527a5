using Copra.Kernel.Exit;
using Xunit;
using Copra.Hot.Exit;

namespace Copra.Tests.Accounting;

/// <summary>The reports' median is by selection (linear), and must equal the median a full sort gives.</summary>
public class MedianTests
{
    static double Sorted(long[] a)
    {
        var c = (long[])a.Clone();
        Array.Sort(c);
        int m = c.Length / 2;
        return c.Length % 2 == 1 ? c[m] : (c[m - 1] + c[m]) / 2.0;
    }

    [Fact]
    public void Selection_median_equals_the_sorted_median_on_random_and_degenerate_inputs()
    {
        var rng = new Random(13);
        for (int round = 0; round < 2000; round++)
        {
            int n = rng.Next(1, 200);
            int spread = round % 4 switch { 0 => 3, 1 => 50, 2 => 1_000_000, _ => 1 };   // heavy duplicates to none
            var a = new long[n];
            for (int i = 0; i < n; i++) a[i] = rng.Next(spread) - spread / 2;
            if (round % 7 == 0) Array.Sort(a);                 // already sorted
            if (round % 11 == 0) { Array.Sort(a); Array.Reverse(a); }
            var copy = (long[])a.Clone();
            Assert.Equal(Sorted(a), ExitStats.Median(a));
            Assert.Equal(copy, a);                              // the caller's samples are not reordered
        }
        Assert.Equal(0, ExitStats.Median([]));
        Assert.Equal(2.5, ExitStats.Median([4, 1, 3, 2]));
        Assert.Equal(long.MaxValue, ExitStats.Median([long.MaxValue, long.MaxValue, long.MinValue]));
    }
}

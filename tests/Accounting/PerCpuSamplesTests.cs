using Copra.Kernel.Exit;
using Xunit;
using Copra.Hot.Exit;

namespace Copra.Tests.Accounting;

/// <summary>
/// ExitStats keeps each CPU's samples in its own stripe with plain stores (no shared slot counter on the exit path);
/// a report's read sees every CPU's samples, and a CPU that fills its stripe loses only its own further samples.
/// </summary>
public sealed class PerCpuSamplesTests
{
    [Fact]
    public void Samples_of_every_cpu_are_kept_and_read_together()
    {
        var st = new ExitStats(capacity: 8, cpus: 2);
        st.Record(0, ExitKind.MmioRead, 10, 100);
        st.Record(1, ExitKind.MmioRead, 20, 200);
        st.Record(0, ExitKind.MmioRead, 30, 300);
        st.Record(1, ExitKind.PortOut, 40, 400);

        Assert.Equal(3, st.Samples(ExitKind.MmioRead));
        Assert.Equal(3, st.Count[(int)ExitKind.MmioRead]);
        Assert.Equal([10, 30, 20], st.MeasuredSamples(ExitKind.MmioRead).ToArray());
        Assert.Equal([100, 300, 200], st.ModelledSamples(ExitKind.MmioRead).ToArray());
        Assert.Equal(20, st.MeasuredMedian(ExitKind.MmioRead));
        Assert.Equal([40], st.MeasuredSamples(ExitKind.PortOut).ToArray());
        Assert.Equal(25, st.MeasuredMedianAll());   // 10, 20, 30, 40
    }

    [Fact]
    public void A_full_stripe_stops_keeping_that_cpus_samples_only()
    {
        var st = new ExitStats(capacity: 4, cpus: 2);   // a stripe of 2 per CPU
        for (int i = 0; i < 5; i++) st.Record(0, ExitKind.MmioWrite, i, i);
        st.Record(1, ExitKind.MmioWrite, 99, 99);

        Assert.Equal(6, st.Count[(int)ExitKind.MmioWrite]);
        Assert.Equal([0, 1, 99], st.MeasuredSamples(ExitKind.MmioWrite).ToArray());
    }

    [Fact]
    public void A_caller_outside_the_cpus_is_counted_and_keeps_no_sample()
    {
        var st = new ExitStats(capacity: 4, cpus: 1);
        st.Record(-1, ExitKind.Hlt, 5, 5);
        Assert.Equal(1, st.Count[(int)ExitKind.Hlt]);
        Assert.Equal(0, st.Samples(ExitKind.Hlt));
    }

    [Fact]
    public void Reset_forgets_every_cpus_samples_and_keeps_the_counts()
    {
        var st = new ExitStats(capacity: 4, cpus: 2);
        st.Record(0, ExitKind.Cpuid, 1, 1);
        st.Record(1, ExitKind.Cpuid, 2, 2);
        st.ResetSamples();
        Assert.Equal(0, st.Samples(ExitKind.Cpuid));
        Assert.Equal(2, st.Count[(int)ExitKind.Cpuid]);
        st.Record(1, ExitKind.Cpuid, 7, 7);
        Assert.Equal([7], st.MeasuredSamples(ExitKind.Cpuid).ToArray());
    }
}

using Copra.Hot.Exit;
using Copra.Hot.Timing;
using Copra.Kernel.Backends;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// The measured part of an exit's sample (hot/Exit/ExitPipeline.cs, HandleExit and EndSegment): the time the kernel spent
/// on it, summed over its segments (the exit handler, then the device model's answer), read with the one clock. Wall-clock
/// figures cannot be asserted exactly, so this checks the bounds that hold on any host: every segment adds a positive
/// time (the clock moved while the kernel worked), and one vCPU's exits never add up to more than the run that held them.
/// </summary>
public class ExitSegmentTimingRuleTests
{
    const ulong Dev = 0xFEB0_0000, Scratch = Dev + 0x08;

    [Fact]
    public void Every_exits_measured_time_is_positive_and_one_vcpus_exits_fit_in_the_run_that_held_them()
    {
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            r.Add("mov [ebx], eax (a device write)", a => a.mov(__dword_ptr[ebx], eax), ExitReason.Mmio, Scratch, 4, true, [(3, Scratch), (0, 0x1234)], []);
            r.Add("mov eax, [ebx] (a device read)", a => a.mov(eax, __dword_ptr[ebx]), ExitReason.Mmio, Scratch, 4, false, [(3, Scratch)], [], expect: 0x1234);
        });
        ulong t0 = Tsc.Read();
        Assert.True(sys.Run().Quiescent);
        ulong t1 = Tsc.Read();
        FaultSemanticsTests.AssertClean(sys);
        var st = sys.Kernel.Stats;
        long sum = 0;
        int samples = 0;
        foreach (var kind in new[] { ExitKind.MmioWrite, ExitKind.MmioRead, ExitKind.Hlt })
        {
            var m = st.MeasuredSamples(kind);
            Assert.Equal(1, m.Length);
            foreach (long x in m)
            {
                // Stopwatch ticks (no hardware TSC) may not move across a short segment; RDTSC always does.
                if (Tsc.IsHardware) Assert.True(x > 0, $"{kind}: measured {x}");
                else Assert.True(x >= 0, $"{kind}: measured {x}");
                sum += x;
                samples++;
            }
        }
        Assert.Equal(3, samples);
        Assert.True(sum <= (long)(t1 - t0), $"the exits' measured sum {sum} exceeds the run's {t1 - t0} ticks");
    }
}

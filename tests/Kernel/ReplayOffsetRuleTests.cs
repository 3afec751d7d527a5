using Copra.Hot.Exit;
using Copra.Hot.State;
using Copra.Kernel.Backends;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// The replay backend's address pattern: a loop-body step's register and GPA move by <c>iteration * stride % span</c>
/// (<see cref="Step.OffsetAt"/>), per step, across several wraps of the span: what the exit reports and the register the
/// guest's glue set agree with the formula.
/// </summary>
public class ReplayOffsetRuleTests
{
    const ulong Window = 0xFEB0_1000, Base = 0x10_0000;

    static Step Access(ulong rip, ulong stride, ulong span, bool random = false)
    {
        var s = new Step
        {
            Kind = StepKind.Access, Rip = rip, Length = 3, Text = $"mov eax, [rsi] at 0x{rip:x}", Reason = ExitReason.Mmio,
            Gpa = Window, Size = 4, Presets = [(6, Window)], VaryReg = 6, VaryStride = stride, VarySpan = span, VaryRandom = random,
        };
        s.Next = rip + 3;
        return s;
    }

    /// <summary>Runs the loop <paramref name="exits"/> exits (the kernel's part played here: RIP past the instruction),
    /// and returns each exit's GPA offset and RSI offset with the step and iteration it came from.</summary>
    static List<(int Step, long Iteration, ulong Gpa, ulong Rsi)> Drive(Step[] body, int exits)
    {
        var state = new VcpuStateStore(1, StateAccessCost.Snp);
        var p = new ReplayProgram { Iterations = long.MaxValue / 2, LoopStart = 0, LoopEnd = body.Length };
        p.Steps.AddRange(body);
        state.Rip(0) = body[0].Rip;
        var backend = new ReplayBackend(state, [p]);
        var seen = new List<(int, long, ulong, ulong)>();
        var exit = new ExitRecord();
        for (int i = 0; i < exits; i++)
        {
            backend.Run(0, ref exit);
            Assert.Equal(ExitReason.Mmio, exit.Reason);
            seen.Add((i % body.Length, i / body.Length, exit.Gpa - Window, state.Gpr(0, 6) - Window));
            state.Rip(0) += 3;   // the kernel completed the read
        }
        Assert.Equal(0, backend.Desyncs);
        return seen;
    }

    [Fact]
    public void A_sequential_step_moves_by_its_stride_modulo_its_span_through_several_wraps()
    {
        // 4 into 0xEF0 lands on the span exactly (wraps to 0); 0x3C4 does not (wraps with a remainder).
        var body = new[] { Access(Base, 4, 0xEF0), Access(Base + 3, 0x3C4, 0xEF0), Access(Base + 6, 0x40, 0x100) };
        foreach (var (step, k, gpa, rsi) in Drive(body, 3 * 2000))
        {
            ulong want = (ulong)k * body[step].VaryStride % body[step].VarySpan;
            Assert.Equal(want, gpa);
            Assert.Equal(want, rsi);
        }
    }

    [Fact]
    public void A_stride_larger_than_the_span_moves_by_its_remainder()
    {
        var body = new[] { Access(Base, 0x1234, 0x100) };
        foreach (var (_, k, gpa, _) in Drive(body, 600))
            Assert.Equal((ulong)k * 0x1234 % 0x100, gpa);
    }

    /// <summary>The random pattern's hash of the iteration, written out here (murmur3's finalizer's first half), so the
    /// test does not take the formula it checks from the code it checks.</summary>
    static ulong Mixed(ulong x) { x ^= x >> 33; x *= 0xff51afd7ed558ccdUL; x ^= x >> 33; return x; }

    [Fact]
    public void A_random_step_takes_the_hashed_iteration_as_before()
    {
        var body = new[] { Access(Base, 4, 0xEF0, random: true) };
        var got = Drive(body, 500);
        foreach (var (_, k, gpa, _) in got)
            Assert.Equal(Mixed((ulong)k) * 4 % 0xEF0, gpa);
        Assert.True(got.Select(g => g.Gpa).Distinct().Count() > 100);   // not the sequential walk's few first values
    }
}

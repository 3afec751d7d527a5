using Copra.Abi;
using Copra.User;
using Xunit;

namespace Copra.Tests.Batch;

/// <summary>RING_POLL: submission without transitions, completions in order with their user_data.</summary>
public sealed class PolledRingTests
{
    [Fact]
    public void Polled_ring_runs_published_calls_without_any_transition()
    {
        using var h = new KernelHarness(cpus: 2);
        h.Run(async ctx =>
        {
            var ring = PolledRing.Create(ctx, 16, cpu: 1);
            long t0 = h.K.Gate.Transitions, p0 = h.K.PolledCalls;
            for (int i = 0; i < 10; i++)
                Assert.True(ring.TryPush(i == 4 ? 0xBAD_0000UL : SysNr.Capabilities, Cap.Count, userData: 100 + (ulong)i));
            ring.Publish();
            Assert.Equal(0, h.K.Gate.Transitions - t0);   // submitting cost no transition

            var got = new List<SysCallOut>();
            while (got.Count < 10)
            {
                if (ring.TryReap(out var c)) { got.Add(c); continue; }
                Assert.True(await ring.WaitAsync() > 0);   // one transition per wait, not per call
            }
            Assert.Equal(10, h.K.PolledCalls - p0);
            for (int i = 0; i < 10; i++)
            {
                Assert.Equal(100 + (ulong)i, got[i].UserData);
                Assert.Equal(i == 4 ? Errno.EINVAL : 2, got[i].Result);
            }
            Assert.True(h.K.Gate.Transitions - t0 <= 2, $"{h.K.Gate.Transitions - t0} transitions for 10 calls");
            Sys.Close(ctx, ring.Handle);
        });
    }

    [Fact]
    public void Polled_ring_refuses_blocking_calls_and_bad_parameters()
    {
        using var h = new KernelHarness(cpus: 2);
        h.Run(async ctx =>
        {
            Assert.Equal(Errno.EINVAL, Sys.Call(ctx, SysNr.RingPoll, 3, 0));     // not a power of two
            Assert.Equal(Errno.EINVAL, Sys.Call(ctx, SysNr.RingPoll, 8192, 0));  // too big
            Assert.Equal(Errno.EINVAL, Sys.Call(ctx, SysNr.RingPoll, 8, 5));     // no CPU 5
            var ring = PolledRing.Create(ctx, 4, cpu: 0);
            uint vm = Sys.VmOpen(ctx, 1);
            uint vcpu = Sys.VcpuCreate(ctx, vm, 0);
            for (int i = 0; i < 4; i++) Assert.True(ring.TryPush(SysNr.WaitForEvent, vcpu, userData: (ulong)i));
            Assert.False(ring.TryPush(SysNr.Capabilities));   // full
            ring.Publish();
            int seen = 0;
            while (seen < 4)
            {
                if (ring.TryReap(out var c)) { Assert.Equal((ulong)seen++, c.UserData); Assert.Equal(Errno.EINVAL, c.Result); continue; }
                await ring.WaitAsync();
            }
        });
        Assert.Equal(0, h.K.Stats.Taken);
    }
}

using Copra.Abi;
using Copra.User;
using Xunit;

namespace Copra.Tests.Batch;

/// <summary>BATCH through the user library's <see cref="SysBatch"/>: the semantics DESIGN.md settles.</summary>
public sealed class BatchTests
{
    [Fact]
    public void User_data_round_trips_for_every_entry_in_order()
    {
        using var h = new KernelHarness();
        h.Run(ctx =>
        {
            var b = new SysBatch(ctx, 64);
            var rng = new Random(7);
            var tags = new ulong[64];
            for (int i = 0; i < 64; i++)
            {
                tags[i] = (ulong)rng.NextInt64() ^ (ulong)i << 56;
                // A mix of calls, some failing: user_data must come back whatever the result.
                ulong nr = (i % 4) switch { 0 => SysNr.Capabilities, 1 => SysNr.Close, 2 => 0xDEAD_0000UL, _ => SysNr.VmCapabilities };
                Assert.Equal(i, b.Push(nr, (ulong)(i % 3), userData: tags[i]));
            }
            Assert.Equal(64, b.Submit());
            var done = b.Completions;
            Assert.Equal(64, done.Length);
            for (int i = 0; i < 64; i++) Assert.Equal(tags[i], done[i].UserData);
            return Task.CompletedTask;
        });
    }

    [Fact]
    public void An_entrys_error_leaves_the_others_intact()
    {
        using var h = new KernelHarness();
        h.Run(ctx =>
        {
            ulong text = Sys.CString(ctx, "after the errors\n");
            var b = new SysBatch(ctx, 8);
            b.Push(SysNr.Open, 0x10, OpenMode.Read, userData: 1);                      // EFAULT: unmapped path
            b.Push(SysNr.Capabilities, Cap.Count, userData: 2);                         // 2
            b.Push(0x7_0000_0001UL, userData: 3);                                        // EINVAL: unknown number
            b.Push(SysNr.VmOpen, 99, userData: 4);                                       // ENOTFOUND
            b.Push(SysNr.Write, 0, text, 17, userData: 5);                               // 17, and the console has it
            b.Push(SysNr.VmOpen, 1, userData: 6);                                        // a handle
            b.Push(SysNr.VmOpen, 1, userData: 7);                                        // EBUSY: the VM is exclusive
            Assert.Equal(7, b.Submit());
            var r = b.Completions;
            Assert.Equal(Errno.EFAULT, r[0].Result);
            Assert.Equal(2, r[1].Result);
            Assert.Equal(Errno.EINVAL, r[2].Result);
            Assert.Equal(Errno.ENOTFOUND, r[3].Result);
            Assert.Equal(17, r[4].Result);
            Assert.True(r[5].Result > 0);
            Assert.Equal(Errno.EBUSY, r[6].Result);
            return Task.CompletedTask;
        });
        Assert.Contains("after the errors", h.K.ConsoleText);
    }

    [Fact]
    public void Wait_for_event_inside_batch_is_refused_with_einval_and_the_vcpu_does_not_run()
    {
        using var h = new KernelHarness();
        h.Run(ctx =>
        {
            uint vm = Sys.VmOpen(ctx, 1);
            uint vcpu = Sys.VcpuCreate(ctx, vm, 0);
            var b = new SysBatch(ctx, 4);
            b.Push(SysNr.WaitForEvent, vcpu, userData: 1);
            b.Push(SysNr.Capabilities, Cap.Count, userData: 2);
            b.Push(SysNr.Batch, 0, 0, 0, userData: 3);          // BATCH inside BATCH: refused too
            b.Push(SysNr.Exit, 0, userData: 4);                  // so is EXIT: the process lives on
            b.Submit();
            Assert.Equal(Errno.EINVAL, b.Result(0));
            Assert.Equal(2, b.Result(1));
            Assert.Equal(Errno.EINVAL, b.Result(2));
            Assert.Equal(Errno.EINVAL, b.Result(3));
            return Task.CompletedTask;
        });
        Assert.Equal(0, h.K.Stats.Taken);   // the guest never ran
    }

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(64)]
    public void A_batch_of_k_calls_costs_one_transition_not_k(int k)
    {
        using var h = new KernelHarness();
        h.Run(ctx =>
        {
            var b = new SysBatch(ctx, k);
            for (int i = 0; i < k; i++) b.Push(SysNr.Capabilities, Cap.Count, userData: (ulong)i);
            long t0 = h.K.Gate.Transitions, c0 = h.K.Gate.Calls;
            b.Submit();
            Assert.Equal(1, h.K.Gate.Transitions - t0);
            Assert.Equal(k + 1, h.K.Gate.Calls - c0);   // BATCH itself plus its k entries

            t0 = h.K.Gate.Transitions;
            for (int i = 0; i < k; i++) Sys.Capabilities(ctx, Cap.Count);
            Assert.Equal(k, h.K.Gate.Transitions - t0);  // the same calls one by one
            return Task.CompletedTask;
        });
    }

    [Fact]
    public void Nothing_is_written_back_before_batch_returns_and_bad_arrays_fault_before_anything_runs()
    {
        using var h = new KernelHarness();
        h.Run(ctx =>
        {
            ulong input = Sys.Alloc(ctx, SysCallIn.Size);
            var e = new SysCallIn { Nr = SysNr.VmOpen, A0 = 1, UserData = 9 };
            System.Runtime.InteropServices.MemoryMarshal.Write(ctx.Memory(input, SysCallIn.Size), in e);
            // The output array is unmapped: EFAULT, and the VM_OPEN did not run (a later VM_OPEN succeeds).
            Assert.Equal(Errno.EFAULT, Sys.Call(ctx, SysNr.Batch, input, 0x10, 1));
            Assert.True(Sys.Call(ctx, SysNr.VmOpen, 1) > 0);
            Assert.Equal(Errno.EINVAL, Sys.Call(ctx, SysNr.Batch, input, input, (ulong)Copra.Kernel.Core.Kernel.MaxBatch + 1));
            Assert.Equal(0, Sys.Call(ctx, SysNr.Batch, input, input, 0));
            return Task.CompletedTask;
        });
    }

    [Fact]
    public void Builder_reuses_its_arrays_across_batches()
    {
        using var h = new KernelHarness();
        h.Run(ctx =>
        {
            var b = new SysBatch(ctx, 2);
            b.Push(SysNr.Capabilities, Cap.Count, userData: 1);
            b.Push(SysNr.Capabilities, Cap.Count, userData: 2);
            Assert.True(b.IsFull);
            Assert.Throws<InvalidOperationException>(() => b.Push(SysNr.Capabilities));
            Assert.Equal(2, b.Submit());
            b.Push(SysNr.Capabilities, 77, userData: 3);
            Assert.Equal(1, b.Submit());
            Assert.Equal(3UL, b.Completions[0].UserData);
            Assert.Equal(Errno.ENOTFOUND, b.Result(0));
            Assert.Equal(0, b.Submit());   // empty: no call
            return Task.CompletedTask;
        });
    }
}

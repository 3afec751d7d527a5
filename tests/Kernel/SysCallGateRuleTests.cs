using Copra.Abi;
using Copra.Kernel.Core;
using Copra.User;
using Xunit;
using static Copra.Tests.Kernel.KernelHarness;

namespace Copra.Tests.Kernel;

/// <summary>
/// The gate's own rules (issue 16's mutation survivors in kernel/Core/SysCallGate.cs), through user programs making
/// real calls: what a call costs the CPU it runs on, what a call from a thread whose process has exited does, and what
/// the caller and the kernel see when a call hits a kernel bug.
/// </summary>
public class SysCallGateRuleTests
{
    [Theory]
    [InlineData(0, 5)]
    [InlineData(1, 3)]
    public void Every_call_charges_the_modelled_syscall_cost_to_the_CPU_it_runs_on_and_to_no_other(int cpu, int calls)
    {
        // No guest here, so the gate is the only thing that advances a CPU's modelled clock.
        using var k = Boot(cpus: 2);
        Run(k, ctx =>
        {
            for (int i = 0; i < calls; i++) Call(ctx, SysNr.Close, 1000 + (ulong)i);   // CLOSE of an unknown handle: a no-op
        }, cpu: cpu);
        Assert.Equal(calls * k.Cost.SyscallCycles, k.Cpus[cpu].Clock);
        Assert.Equal(0, k.Cpus[1 - cpu].Clock);
    }

    [Fact]
    public void A_call_from_a_thread_whose_process_has_exited_never_returns_and_changes_nothing()
    {
        // A program that does not wait for its EXIT and calls on: the call must not run (here: no directory appears).
        using var k = Boot();
        bool exitReturned = true, mkdirReturned = true;
        Start(k, ctx =>
        {
            ulong path = Path(ctx, "/made-after-exit");   // written before: the process's memory goes with it
            exitReturned = Sys.Exit(ctx, 3).IsCompleted;
            mkdirReturned = Sys.CallAsync(ctx, SysNr.MkDir, path).IsCompleted;
            return Task.CompletedTask;
        }, "/quitter");
        Drive(k);
        Assert.False(exitReturned);
        Assert.False(mkdirReturned);
        Assert.Equal(3, k.Processes.Single(p => p.Path == "/quitter").ExitCode);

        long seen = 0;
        Run(k, ctx => { seen = Call(ctx, SysNr.OpenDir, Path(ctx, "/made-after-exit")); }, "/looker");
        Assert.Equal(Errno.ENOTFOUND, seen);
    }

    [Fact]
    public void A_polled_ring_whose_owner_thread_has_exited_answers_EINVAL_for_what_another_thread_submits()
    {
        // The poller runs a ring's entries as the thread that created it; once that thread has left (THREAD_EXIT,
        // awaited as a well-behaved program does), nothing runs as it: a sibling's submissions complete with EINVAL.
        const int Entries = 8, Calls = 3;
        using var k = Boot(cpus: 2);
        var results = new List<long>();
        Start(k, async ctx =>
        {
            ulong ring = (ulong)Sys.CallChecked(ctx, SysNr.RingPoll, Entries, 1);
            Sys.ThreadCreate(ctx, async (c, h) =>
            {
                // The sibling drives the ring through its own mapping of it, by the ABI's layout.
                ulong va = Sys.Mmap(c, (uint)h, 0, (ulong)PolledRingLayout.Bytes(Entries));
                ref ulong Word(int offset) => ref Sys.Ref<ulong>(c, va + (ulong)offset);
                for (int i = 0; i < Calls; i++)
                {
                    Word(PolledRingLayout.SqColumn(PolledRingLayout.SqNr, Entries) + i * 8) = SysNr.MkDir;
                    Word(PolledRingLayout.SqColumn(PolledRingLayout.SqA0, Entries) + i * 8) = Path(c, $"/by-ring-{i}");
                }
                Word(PolledRingLayout.SqTail) = Calls;
                while (Word(PolledRingLayout.CqTail) < Calls) Assert.True(await Sys.WaitForEvent(c, (uint)h) > 0);
                for (int i = 0; i < Calls; i++) results.Add((long)Word(PolledRingLayout.CqColumn(PolledRingLayout.CqResult, Entries) + i * 8));
            }, ring);
            await Sys.ThreadExit(ctx);
        }, "/rings");
        Drive(k);
        Assert.Equal([Errno.EINVAL, Errno.EINVAL, Errno.EINVAL], results);
        long seen = 0;
        Run(k, ctx => { seen = Call(ctx, SysNr.OpenDir, Path(ctx, "/by-ring-0")); }, "/looker");
        Assert.Equal(Errno.ENOTFOUND, seen);
    }

    sealed class BrokenImage : IUserProgram
    {
        public BrokenImage() => throw new InvalidOperationException("the loader of this image is broken");
        public Task Main(IUserContext ctx) => Task.CompletedTask;
    }

    [Fact]
    public void A_kernel_bug_inside_a_call_is_UNKNOWN_to_the_caller_and_counted_and_kept_by_the_kernel()
    {
        // EXEC runs the kernel's loader for the image inside the call; a loader that throws is a kernel bug, not a
        // KernelError: the caller sees UNKNOWN and carries on, the kernel counts it and keeps the exception.
        using var k = Boot();
        k.Install("/broken", () => new BrokenImage());
        long first = 0, second = 0, after = 0;
        Start(k, ctx =>
        {
            first = Sys.Call(ctx, SysNr.Exec, Path(ctx, "/broken"), Path(ctx, "/"), 0);
            second = Sys.Call(ctx, SysNr.Exec, Path(ctx, "/broken"), Path(ctx, "/"), 0);
            after = Sys.Call(ctx, SysNr.MkDir, Path(ctx, "/still-running"));
            return Task.CompletedTask;
        }, "/t");
        Assert.True(k.RunDeterministic(1_000_000).Quiescent);
        Assert.Equal(Errno.UNKNOWN, first);
        Assert.Equal(Errno.UNKNOWN, second);
        Assert.Equal(0, after);
        Assert.Equal(2, k.InternalErrors);
        var e = Assert.IsType<InvalidOperationException>(k.LastInternalError);
        Assert.Equal("the loader of this image is broken", e.Message);
    }
}

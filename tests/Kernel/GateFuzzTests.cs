using System.Runtime.InteropServices;
using Copra.Abi;
using Copra.Cold;
using Copra.Kernel.Core;
using Copra.User;
using Xunit;
using KernelT = Copra.Kernel.Core.Kernel;

namespace Copra.Tests.Kernel;

/// <summary>
/// The gate fuzzer: a function of (seed, calls). Two processes on different CPUs each make
/// <c>calls</c> syscalls with numbers drawn from <see cref="SysNr.All"/> and from garbage, and
/// arguments drawn from small integers, handle-like values (including ones earlier calls returned),
/// addresses in and around the data segment, mapping and text addresses, page-aligned physical
/// addresses, and random 64-bit values. Blocking calls (WAIT_FOR_EVENT, EXIT, THREAD_EXIT) are left
/// out: they are not defined to return. To replay a failure, run <see cref="Run"/> with the seed the
/// failure message names.
/// </summary>
public static class GateFuzzer
{
    public sealed record Report(KernelT Kernel, List<string> BadResults, long Calls, Dictionary<long, long> ResultCounts);

    static readonly ulong[] Numbers = SysNr.All.ToArray()
        .Where(n => n is not (SysNr.WaitForEvent or SysNr.Exit or SysNr.ThreadExit)).ToArray();

    static readonly string[] PathStrings = ["/fz", "/fz/a", "/fz/b", "/c", "/", "/fz/a/x", "/t0", "", "rel", "/fz/../x"];

    public static Report Run(ulong seed, int calls)
    {
        var k = new KernelT(new KernelConfig
        {
            Cpus = 2, Seed = seed,
            Vms = [new VmSpec(2, 8UL << 20, 8UL << 20), new VmSpec(1, 16UL << 20, 4UL << 20)],
        });
        var bad = new List<string>();
        var counts = new Dictionary<long, long>();
        long total = 0;
        k.Install("/c", () => new LambdaProgram(_ => Task.CompletedTask));
        for (int p = 0; p < 2; p++)
        {
            ulong pseed = seed * 1_000_003 + (ulong)p;
            k.Install($"/fuzz{p}", () => new LambdaProgram(ctx =>
            {
                Fuzz(ctx, pseed, calls, bad, counts, ref total);
                return Task.CompletedTask;
            }));
            k.Spawn($"/fuzz{p}", null, p);
        }
        var r = k.RunDeterministic(5_000_000);
        if (!r.Quiescent) bad.Add($"seed {seed}: not quiescent");
        return new Report(k, bad, total, counts);
    }

    static void Fuzz(IUserContext ctx, ulong seed, int calls, List<string> bad, Dictionary<long, long> counts, ref long total)
    {
        var rng = new DetRandom(seed);
        var paths = PathStrings.Select(s => Sys.CString(ctx, s)).ToArray();
        ulong entry = ctx.DefineEntry((_, _) => Task.CompletedTask);
        const int batchN = 8;
        ulong batchIn = Sys.Alloc(ctx, batchN * SysCallIn.Size), batchOut = Sys.Alloc(ctx, batchN * SysCallOut.Size);
        ulong list = Sys.Alloc(ctx, 64 * 4, 4);
        ulong scratch = Sys.Alloc(ctx, 64 << 10, Page.Size);
        var handles = new List<ulong> { 0, 1, 2, 3 };
        var mapped = new List<ulong> { AddressSpace.MapBase };
        ulong dataEnd = ctx.DataBase + (ulong)ctx.DataSize;

        ulong Arg()
        {
            switch (rng.Next(9))
            {
                case 0: return (ulong)rng.Next(17);
                case 1: return handles[rng.Next(handles.Count)];
                case 2: return HandleTable.Encode(rng.Next(12), (ushort)rng.Next(3));
                case 3: return paths[rng.Next(paths.Length)];
                case 4: return rng.Next(4) switch { 0 => scratch + (ulong)rng.Next(64 << 10), 1 => dataEnd - (ulong)rng.Next(64), 2 => batchIn, _ => list };
                case 5: return rng.Next(3) switch { 0 => mapped[rng.Next(mapped.Count)], 1 => entry, _ => KernelT.TextBase + (ulong)rng.Next(4) * 8 };
                case 6: return (8UL << 20) + (ulong)rng.Next(2048) * Page.Size;
                case 7: return (ulong)rng.Next(4) * Page.Size + (ulong)rng.Next(2) * (ulong)rng.Next(4096);
                default: return rng.Next(3) == 0 ? ulong.MaxValue - (ulong)rng.Next(8) : rng.Next();
            }
        }

        ulong Number()
        {
            ulong n = rng.Next(10) switch
            {
                < 7 => Numbers[rng.Next(Numbers.Length)],
                7 => (ulong)(uint)rng.Next(6) << 32 | (uint)rng.Next(16),
                _ => rng.Next(),
            };
            return n is SysNr.WaitForEvent or SysNr.Exit or SysNr.ThreadExit ? SysNr.Capabilities : n;
        }

        for (int i = 0; i < calls; i++)
        {
            // Refresh the argument areas now and then: a BATCH of random entries, a random handle list.
            if (rng.Next(16) == 0)
            {
                var ins = MemoryMarshal.Cast<byte, SysCallIn>(ctx.Memory(batchIn, batchN * SysCallIn.Size));
                for (int j = 0; j < batchN; j++)
                    ins[j] = new SysCallIn { Nr = rng.Next(8) == 0 ? SysNr.WaitForEvent : Number(), A0 = Arg(), A1 = Arg(), A2 = (ulong)rng.Next(3), A3 = Arg(), A4 = Arg(), UserData = rng.Next() };
                var hl = MemoryMarshal.Cast<byte, uint>(ctx.Memory(list, 64 * 4));
                for (int j = 0; j < hl.Length; j++) hl[j] = (uint)handles[rng.Next(handles.Count)];
            }
            ulong nr = Number();
            ulong a0 = Arg(), a1 = Arg(), a2 = rng.Next(2) == 0 ? (ulong)rng.Next(5) : Arg(), a3 = Arg(), a4 = Arg();
            if (nr == SysNr.Batch) { a0 = batchIn; a1 = batchOut; a2 = (ulong)rng.Next(batchN + 1); }
            var vt = ctx.SysCall(SysCallRegs.Make(nr, a0, a1, a2, a3, a4));
            if (!vt.IsCompleted) { bad.Add($"seed {seed} call {i}: {SysNr.Name(nr)}({a0:x}, {a1:x}, {a2:x}, {a3:x}, {a4:x}) blocked"); continue; }
            long r = vt.Result;
            total++;
            lock (counts) counts[r < 0 ? r : 0] = counts.GetValueOrDefault(r < 0 ? r : 0) + 1;
            if (r < 0 && !Errno.IsError(r))
                bad.Add($"seed {seed} call {i}: {SysNr.Name(nr)}({a0:x}, {a1:x}, {a2:x}, {a3:x}, {a4:x}) = {r}");
            if (r > 0 && r <= uint.MaxValue && nr is SysNr.Open or SysNr.OpenDir or SysNr.OpenPhysMem or SysNr.VmOpen or SysNr.VcpuCreate
                    or SysNr.MmioEvent or SysNr.IoioEvent or SysNr.IrqEvent)
                handles.Add((ulong)r);
            if (r > 0 && nr == SysNr.Mmap) mapped.Add((ulong)r);
        }
    }
}

public class GateFuzzTests
{
    [Theory]
    [InlineData(1UL)]
    [InlineData(2UL)]
    [InlineData(3UL)]
    [InlineData(0xC0B2A001UL)]
    public void Every_gate_result_is_a_value_or_a_defined_error_and_handle_tables_stay_consistent(ulong seed)
    {
        var rep = GateFuzzer.Run(seed, 3000);
        using var k = rep.Kernel;
        Assert.True(rep.BadResults.Count == 0, string.Join("\n", rep.BadResults.Take(20)));
        Assert.True(k.InternalErrors == 0, $"seed {seed}: {k.InternalErrors} internal errors, last: {k.LastInternalError}");
        Assert.Equal(6000, rep.Calls);
        foreach (var p in k.Processes)
            Assert.False(p.ExitReason?.StartsWith("crash", StringComparison.Ordinal) ?? true, $"process {p}: {p.ExitReason ?? "still running"}");
        // The fuzz must reach past argument checking: some calls succeed, and several error kinds occur.
        Assert.True(rep.ResultCounts.GetValueOrDefault(0) > 100, "too few successful calls");
        Assert.True(rep.ResultCounts.Keys.Count(c => c < 0) >= 5, "too few distinct errors: " + string.Join(", ", rep.ResultCounts.Select(kv => $"{Errno.Name(kv.Key)}={kv.Value}")));
        // Every process has exited, so nothing may remain held.
        foreach (var p in k.Processes) Assert.Empty(p.Handles.Snapshot());
        foreach (var vm in k.Vms)
        {
            Assert.Equal(0, vm.HandleCount);
            foreach (var vc in vm.Vcpus) Assert.Equal(0, vc.HandleCount);
        }
        for (ulong pa = 0; pa < k.Config.MemoryBytes; pa += Page.Size) Assert.Equal(0, k.Phys.MapCount(pa));
    }

    [Fact]
    public void Handle_tables_stay_consistent_while_fuzzed_processes_hold_handles()
    {
        // The same fuzz, but each process then parks on an event object so its table can be checked live.
        using var k = new KernelT(new KernelConfig { Cpus = 2, Vms = [new VmSpec(2, 8UL << 20, 8UL << 20)] });
        var procs = new List<Process>();
        for (int p = 0; p < 2; p++)
        {
            int me = p;
            k.Install($"/live{p}", () => new LambdaProgram(async ctx =>
            {
                var rng = new DetRandom(77 + (ulong)me);
                ulong path = Sys.CString(ctx, "/live");
                Sys.Call(ctx, SysNr.MkDir, path);
                for (int i = 0; i < 2000; i++)
                {
                    ulong h = HandleTable.Encode(rng.Next(10), (ushort)rng.Next(2));
                    switch (rng.Next(8))
                    {
                        case 0: Sys.Call(ctx, SysNr.Close, h); break;
                        case 1: Sys.Call(ctx, SysNr.VmOpen, 1); break;
                        case 2: Sys.Call(ctx, SysNr.VcpuCreate, h, (ulong)rng.Next(3)); break;
                        case 3: Sys.Call(ctx, SysNr.OpenPhysMem); break;
                        case 4: Sys.Call(ctx, SysNr.OpenDir, path); break;
                        case 5: Sys.Call(ctx, SysNr.IrqEvent, h, 32 + (ulong)rng.Next(4)); break;
                        case 6: Sys.Call(ctx, SysNr.IoioEvent, h, 0x1000 + (ulong)rng.Next(64) * 16 + (ulong)me * 0x4000, 4); break;
                        default: Sys.Call(ctx, SysNr.Mmap, h, 0, (8UL << 20) + (ulong)rng.Next(16) * Page.Size, Page.Size, MapFlags.Read | MapFlags.Write); break;
                    }
                }
                // Park on an event object if this process holds (or can open) the VM; otherwise just end.
                long vm = Sys.Call(ctx, SysNr.VmOpen, 1);
                for (int i = 0; i < 16 && vm < 0; i++)
                    for (ushort g = 0; g < 2 && vm < 0; g++)
                        if (Sys.Call(ctx, SysNr.VmCapabilities, HandleTable.Encode(i, g), VmCap.Count) > 0) vm = HandleTable.Encode(i, g);
                if (vm < 0) return;
                long ev = Sys.Call(ctx, SysNr.IoioEvent, (ulong)vm, 0x9000 + (ulong)me * 8, 1);
                if (ev > 0) await Sys.WaitForEvent(ctx, (uint)ev);
            }));
            procs.Add(k.Spawn($"/live{p}", null, p));
        }
        k.RunDeterministic(5_000_000);
        Assert.Equal(0, k.InternalErrors);
        var held = new Dictionary<KObject, int>();
        foreach (var p in procs)
            foreach (var (h, o) in p.Handles.Snapshot())
            {
                Assert.True(p.Handles.TryGet(h, out var got) && ReferenceEquals(got, o), $"handle 0x{h:x} of {p} does not resolve");
                held[o] = held.GetValueOrDefault(o) + 1;
            }
        foreach (var (o, n) in held)
        {
            Assert.Equal(n, o.HandleCount);
            if (o.Exclusive) Assert.Equal(1, n);
        }
    }
}

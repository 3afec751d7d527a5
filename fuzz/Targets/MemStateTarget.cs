// MMAP / MUNMAP / SET_MEM_STATE through the real gate: random sequences from one process (PHYSMEM windows of random
// offset and length, valid and not, unmaps of live and bogus mappings, with the length argument MUNMAP ignores, state changes over random ranges). The rule
// checked after every step: a page that is mapped never changes state; SET_MEM_STATE over a range with a mapped page
// is EBUSY and changes nothing; a state change on unmapped pages takes effect; PhysPages' map counts equal the model's.
using Copra.Abi;
using Copra.Fuzz.Core;
using Copra.Kernel.Core;

namespace Copra.Fuzz.Targets;

public enum MemOp { Map, Unmap, SetState }

public readonly record struct MemCall(MemOp Op, ulong Page, ulong Pages, ulong Flags, int Pick)
{
    public override string ToString() => Op switch
    {
        MemOp.Map => $"mmap(page {Page}, {Pages} pages, flags {Flags})",
        MemOp.Unmap => $"munmap(#{Pick}{(Pages == 0 ? "" : ", another length (ignored)")})",
        _ => $"set_mem_state(page {Page}, {Pages} pages, state {Flags})",
    };
}

public sealed record MemCase(MemCall[] Calls);

public sealed class MemStateTarget : FuzzTarget<MemCase>
{
    const int MemPages = 512, KernelPages = 128; // 2 MiB of memory, the first 512 KiB the kernel's

    public override string Name => "memstate";
    public override string Description => "MMAP/MUNMAP/SET_MEM_STATE: a mapped page never changes state";

    public override MemCase Generate(Rng r)
    {
        int n = r.Next(1, 60);
        var calls = new MemCall[n];
        for (int i = 0; i < n; i++)
        {
            ulong page = r.Chance(90) ? (ulong)r.Next(KernelPages - 4, KernelPages + 40) : (ulong)r.Next(MemPages + 8);
            ulong pages = (ulong)(r.Chance(90) ? r.Next(1, 6) : r.Next(0, 40));
            calls[i] = r.Next(100) switch
            {
                < 40 => new MemCall(MemOp.Map, page, pages, r.Chance(90) ? MapFlags.Read | (r.Chance(50) ? MapFlags.Write : 0) : 64, 0),
                < 60 => new MemCall(MemOp.Unmap, 0, r.Chance(90) ? 0UL : 1, 0, r.Next(8)),
                _ => new MemCall(MemOp.SetState, page, pages, r.Chance(95) ? (ulong)r.Next(2) : 7, 0),
            };
        }
        return new MemCase(calls);
    }

    public override string Show(MemCase c) => string.Join("; ", c.Calls);
    public override int SizeOf(MemCase c) => c.Calls.Length;

    public override IEnumerable<MemCase> Shrink(MemCase c)
    {
        for (int i = c.Calls.Length - 1; i >= 0; i--) yield return new MemCase([.. c.Calls[..i], .. c.Calls[(i + 1)..]]);
    }

    public override string? Check(MemCase c)
    {
        var config = new KernelConfig { Cpus = 1, MemoryBytes = MemPages * 4096UL, KernelLength = KernelPages * 4096UL };
        using var kernel = new Kernel.Core.Kernel(config);
        string? error = null;
        var program = new Program(kernel, c, e => error ??= e);
        kernel.Install("/bin/mem", () => program);
        kernel.Spawn("/bin/mem", null, 0);
        var run = kernel.RunDeterministic(1_000_000);
        if (error is not null) return error;
        if (kernel.InternalErrors != 0) return $"kernel internal error: {kernel.LastInternalError}";
        if (!program.Finished) return $"the script stopped early ({kernel.Processes.FirstOrDefault()?.ToString()})";
        return run.Quiescent ? null : "the system did not quiesce";
    }

    sealed class Program(Kernel.Core.Kernel k, MemCase c, Action<string> fail) : IUserProgram
    {
        public bool Finished;

        public async Task Main(IUserContext ctx)
        {
            long phys = await ctx.SysCall(new SysCallRegs { Rax = SysNr.OpenPhysMem });
            var mapCount = new int[MemPages];
            var state = new ulong[MemPages];
            var maps = new List<(ulong Va, ulong Page, ulong Pages)>();
            int step = 0;
            foreach (MemCall call in c.Calls)
            {
                step++;
                string at = $"step {step} {call}";
                switch (call.Op)
                {
                    case MemOp.Map:
                    {
                        long r = await ctx.SysCall(new SysCallRegs { Rax = SysNr.Mmap, Rdi = (ulong)phys, Rsi = 0, R8 = call.Page * 4096, R9 = call.Pages * 4096, R10 = call.Flags });
                        bool valid = (call.Flags & ~MapFlags.All) == 0 && call.Pages > 0 && call.Page + call.Pages <= MemPages && call.Page >= KernelPages;
                        if (valid != (r > 0)) { Finished = true; fail($"{at}: kernel {Errno.Name(r)}, model expects {(valid ? "success" : "an error")}"); return; }
                        if (r > 0)
                        {
                            maps.Add(((ulong)r, call.Page, call.Pages));
                            for (ulong p = call.Page; p < call.Page + call.Pages; p++) mapCount[p]++;
                        }
                        break;
                    }
                    case MemOp.Unmap:
                    {
                        ulong va = maps.Count > 0 ? maps[call.Pick % maps.Count].Va : 0x1234_0000;
                        ulong len = maps.Count > 0 ? maps[call.Pick % maps.Count].Pages * 4096 + call.Pages * 4096 : 4096;
                        long r = await ctx.SysCall(new SysCallRegs { Rax = SysNr.Munmap, Rdi = va, Rsi = len });
                        bool valid = maps.Count > 0;   // PR #945: the length argument is ignored
                        if (valid != (r == 0)) { Finished = true; fail($"{at}: kernel {Errno.Name(r)}, model expects {(valid ? "0" : "an error")}"); return; }
                        if (r == 0)
                        {
                            var m = maps[call.Pick % maps.Count];
                            maps.RemoveAt(call.Pick % maps.Count);
                            for (ulong p = m.Page; p < m.Page + m.Pages; p++) mapCount[p]--;
                        }
                        break;
                    }
                    default:
                    {
                        var before = (ulong[])state.Clone();
                        long r = await ctx.SysCall(new SysCallRegs { Rax = SysNr.SetMemState, Rdi = (ulong)phys, Rsi = call.Page * 4096, R8 = call.Pages * 4096, R9 = call.Flags });
                        bool inRange = call.Pages > 0 && call.Page + call.Pages <= MemPages && call.Page >= KernelPages && call.Flags <= MemState.Shared;
                        bool anyMapped = inRange && Enumerable.Range((int)call.Page, (int)call.Pages).Any(p => mapCount[p] > 0);
                        long want = !inRange ? long.MinValue : anyMapped ? Errno.EBUSY : 0;
                        if (want == long.MinValue ? !Errno.IsError(r) : r != want) { Finished = true; fail($"{at}: kernel {Errno.Name(r)}, model {(want == long.MinValue ? "an error" : Errno.Name(want))}"); return; }
                        if (r == 0) for (ulong p = call.Page; p < call.Page + call.Pages; p++) state[p] = call.Flags;
                        break;
                    }
                }
                for (int p = KernelPages; p < MemPages; p++)
                {
                    ulong pa = (ulong)p * 4096;
                    if (k.Phys.MapCount(pa) != mapCount[p]) { Finished = true; fail($"{at}: page {p} map count {k.Phys.MapCount(pa)}, model {mapCount[p]}"); return; }
                    if (k.Phys.State(pa) != state[p])
                    {
                        Finished = true;
                        fail($"{at}: page {p} state {k.Phys.State(pa)}, model {state[p]}{(mapCount[p] > 0 ? " (a MAPPED page changed state)" : "")}");
                        return;
                    }
                }
            }
            Finished = true;
            _ = ctx.SysCall(new SysCallRegs { Rax = SysNr.Exit });
        }
    }
}

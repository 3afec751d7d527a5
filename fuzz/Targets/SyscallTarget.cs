// Syscall surface, model-based. Several processes run scripted calls (valid and garbage) through the real gate under
// the deterministic driver; the harness applies each call to a small reference model of the handle and object rules
// (docs/abi.md, DESIGN.md) as it returns, and compares the result and the caller's whole handle table after every step:
//   * a new handle takes the lowest free slot; 0 is the console; handle = generation << 16 | slot;
//   * a handle register is truncated to u32 (upstream's `rdi as u32`), and so is CAPABILITIES' index;
//   * a closed slot's generation moves on, so a stale value is ENOTFOUND; any garbage value is ENOTFOUND;
//   * a VM and a vCPU have at most one handle in the whole system: a second VM_OPEN / VCPU_CREATE is EBUSY;
//   * CLOSE always returns 0, and closes the console (handle 0) like any other handle, as upstream does;
//   * EXIT frees everything the process held (so another process can then open the VM);
//   * an unknown number is EINVAL (the old class-2 MMAP/MUNMAP numbers and the reserved MRESIZE included); no call ever throws inside the kernel (Kernel.InternalErrors stays 0).
// Arguments that name handles are selectors (my k-th live handle, a stale value, another process's value, garbage)
// resolved against the model when the call is made, so a script means the same thing whatever the interleaving.
using Copra.Abi;
using Copra.Cold;
using Copra.Fuzz.Core;
using Copra.Kernel.Core;
using Copra.Kernel.Machine;

namespace Copra.Fuzz.Targets;

public enum Op { VmOpen, VcpuCreate, Close, OpenPhysMem, IrqEvent, Capabilities, VmCapabilities, EventSignal, Garbage, Exit }

/// <summary>How a handle argument is chosen: Live(k) = my k-th live handle, Stale, Foreign (another process's value), Raw.</summary>
public enum HandleSel : byte { Live, Stale, Foreign, Raw }

public readonly record struct Call(Op Op, HandleSel Sel, int K, ulong Arg, ulong Raw)
{
    public override string ToString() => Op switch
    {
        Op.OpenPhysMem or Op.Exit => Op.ToString(),
        Op.VmOpen or Op.Capabilities => $"{Op}({Arg})",
        Op.Garbage => $"nr 0x{Raw:x}",
        _ => $"{Op}({(Sel == HandleSel.Raw ? $"0x{Raw:x}" : Sel == HandleSel.Live ? $"live#{K}" : Sel.ToString())}{(Op is Op.VcpuCreate or Op.IrqEvent or Op.VmCapabilities ? $", {Arg}" : "")})",
    };
}

public sealed record SyscallCase(ulong KernelSeed, Call[][] Scripts)
{
    public int Calls => Scripts.Sum(s => s.Length);
}

/// <summary>The reference model: per-process slot tables with generations, and who holds each exclusive object.</summary>
public sealed class HandleModel(int vms, int vcpusPerVm, ulong platform)
{
    public sealed class Table
    {
        public readonly List<(string? Obj, ushort Gen)> Slots = [("console", 0)];
        public readonly List<ulong> Closed = [];
        public bool Exited;
        public bool TryGet(ulong h, out string obj)
        {
            obj = "";
            uint v = (uint)h;   // the kernel sees the low 32 bits
            int i = (int)(v & 0xFFFF);
            if (i >= Slots.Count || Slots[i].Obj is null || Slots[i].Gen != (ushort)(v >> 16)) return false;
            obj = Slots[i].Obj!;
            return true;
        }
        public List<(ulong Handle, string Obj)> Live() =>
            [.. Slots.Select((s, i) => (H: (ulong)s.Gen << 16 | (uint)i, s.Obj)).Where(x => x.Obj is not null).Select(x => (x.H, x.Obj!))];
    }

    public readonly Dictionary<int, Table> Tables = [];
    readonly HashSet<string> _exclusiveHeld = [];

    long Add(Table t, string obj)
    {
        if ((obj.StartsWith("vm", StringComparison.Ordinal) || obj.StartsWith("vcpu", StringComparison.Ordinal)) && !obj.StartsWith("vm-", StringComparison.Ordinal))
        {
            if (!_exclusiveHeld.Add(obj)) return Errno.EBUSY;
        }
        int i = t.Slots.FindIndex(s => s.Obj is null);
        if (i < 0) { t.Slots.Add((obj, 0)); return t.Slots.Count - 1; }
        t.Slots[i] = (obj, t.Slots[i].Gen);
        return (long)((ulong)t.Slots[i].Gen << 16 | (uint)i);
    }

    void Drop(Table t, int i)
    {
        string obj = t.Slots[i].Obj!;
        _exclusiveHeld.Remove(obj);
        t.Closed.Add((ulong)t.Slots[i].Gen << 16 | (uint)i);
        t.Slots[i] = (null, (ushort)(t.Slots[i].Gen + 1));
    }

    /// <summary>The result the ABI specifies for <paramref name="c"/> with handle argument <paramref name="h"/>.</summary>
    public long Apply(int pid, Call c, ulong h)
    {
        var t = Tables[pid];
        static bool IsVm(string o) => o.StartsWith("vm", StringComparison.Ordinal) && !o.StartsWith("vcpu", StringComparison.Ordinal);
        switch (c.Op)
        {
            case Op.VmOpen:
                return c.Arg == 0 || c.Arg > (ulong)vms ? Errno.ENOTFOUND : Add(t, $"vm{c.Arg}");
            case Op.VcpuCreate:
            {
                if (!t.TryGet(h, out string o)) return Errno.ENOTFOUND;
                if (!IsVm(o)) return Errno.ENOTSUPP;
                if (c.Arg >= (ulong)vcpusPerVm) return Errno.ENOTFOUND;
                return Add(t, $"vcpu{o[2..]}.{c.Arg}");
            }
            case Op.Close:
                if (t.TryGet(h, out _)) Drop(t, (int)(h & 0xFFFF));
                return 0;
            case Op.OpenPhysMem:
                return Add(t, "physmem");
            case Op.IrqEvent:
            {
                if (!t.TryGet(h, out string o)) return Errno.ENOTFOUND;
                if (!IsVm(o)) return Errno.ENOTSUPP;
                if (c.Arg is < 32 or > 255) return Errno.EINVAL;
                return Add(t, $"irq{c.Arg}/{o}");
            }
            case Op.Capabilities:
                return (ulong)(uint)c.Arg switch
                {
                    Cap.Count => 2,
                    Cap.VmBitmap => (long)Enumerable.Range(1, vms).Aggregate(0UL, (a, i) => a | 1UL << i),
                    Cap.Features => (long)(platform & Cap.PlatformMask),
                    _ => Errno.ENOTFOUND,
                };
            case Op.VmCapabilities:
            {
                if (!t.TryGet(h, out string o)) return Errno.ENOTFOUND;
                if (!IsVm(o)) return Errno.ENOTSUPP;
                int vm = int.Parse(o[2..], System.Globalization.CultureInfo.InvariantCulture);
                return c.Arg switch
                {
                    VmCap.Count => 4,   // the indices after 0 (1..4), as CAPABILITIES counts
                    VmCap.VcpuCount => vcpusPerVm,
                    VmCap.RangeCount => 1,
                    3 => (long)SyscallTarget.VmBase(vm),
                    4 => (long)SyscallTarget.VmBytes,
                    _ => Errno.ENOTFOUND,
                };
            }
            case Op.EventSignal:
            {
                if (!t.TryGet(h, out string o)) return Errno.ENOTFOUND;
                return o.StartsWith("irq", StringComparison.Ordinal) ? 0 : Errno.ENOTSUPP;
            }
            case Op.Garbage:
                return Errno.EINVAL;
            default:
                throw new InvalidOperationException(c.Op.ToString());
        }
    }

    public void Exit(int pid)
    {
        var t = Tables[pid];
        for (int i = 0; i < t.Slots.Count; i++) if (t.Slots[i].Obj is not null) Drop(t, i);
        t.Exited = true;
    }
}

public sealed class SyscallTarget : FuzzTarget<SyscallCase>
{
    public const int Vms = 2, VcpusPerVm = 2, Processes = 3;
    public const ulong VmBytes = 1UL << 20;
    public static ulong VmBase(int vm) => (ulong)(2 + vm) << 20;

    /// <summary>Totals over every case run in this process (the tests check the generator reaches the interesting results).</summary>
    public static long ObservedCalls, Busy, Stale, Created;

    public override string Name => "syscalls";
    public override string? Totals => $"{Interlocked.Read(ref ObservedCalls):N0} calls checked against the model ({Interlocked.Read(ref Busy):N0} EBUSY, {Interlocked.Read(ref Stale):N0} stale handles, {Interlocked.Read(ref Created):N0} objects created)";
    public override string Description => "syscall surface vs a handle/object model, 3 processes, deterministic driver";

    // Includes the numbers Copra used before it followed upstream (class-2 MMAP 2<<32|1, BATCH 0x3 = MRESIZE, reserved
    // now): nothing keeps answering at an old number.
    static readonly ulong[] GarbageNrs = [SysNr.ClassTask | 99, 5UL << 32, 0xFFFF_FFFF_FFFF_FFFFUL, 2UL << 32 | 77, 3UL << 32 | 200, 4UL << 32 | 50, 1UL << 40,
                                          SysNr.MresizeReserved, 2UL << 32 | 1, 2UL << 32 | 2, 3UL << 32 | 1, 4UL << 32 | 3, SysNr.ClassTask | 5];

    public override SyscallCase Generate(Rng r)
    {
        var scripts = new Call[Processes][];
        for (int p = 0; p < Processes; p++)
        {
            int n = r.Next(1, 40);
            var s = new List<Call>();
            for (int i = 0; i < n; i++) s.Add(RandomCall(r));
            if (r.Chance(20)) s.Insert(r.Next(s.Count + 1), new Call(Op.Exit, 0, 0, 0, 0)); // exit mid-script
            scripts[p] = [.. s];
        }
        return new SyscallCase(r.Next64(), scripts);
    }

    static Call RandomCall(Rng r)
    {
        var sel = r.Next(100) switch { < 70 => HandleSel.Live, < 80 => HandleSel.Stale, < 90 => HandleSel.Foreign, _ => HandleSel.Raw };
        ulong raw = r.Chance(50) ? r.Next64() : (ulong)r.Next(4) << 16 | (uint)r.Next(8);
        int k = r.Next(6);
        return r.Next(100) switch
        {
            < 18 => new Call(Op.VmOpen, 0, 0, (ulong)r.Next(Vms + 2), 0),
            < 34 => new Call(Op.VcpuCreate, sel, k, (ulong)r.Next(VcpusPerVm + 1), raw),
            < 54 => new Call(Op.Close, sel, k, 0, raw),
            < 60 => new Call(Op.OpenPhysMem, 0, 0, 0, 0),
            < 68 => new Call(Op.IrqEvent, sel, k, r.Chance(80) ? (ulong)r.Next(32, 256) : (ulong)r.Next(300), raw),
            < 73 => new Call(Op.Capabilities, 0, 0, (uint)r.Next(5) | (r.Chance(30) ? r.Next64() << 32 : 0UL), 0),
            < 81 => new Call(Op.VmCapabilities, sel, k, (ulong)r.Next(7), raw),
            < 88 => new Call(Op.EventSignal, sel, k, 0, raw),
            _ => new Call(Op.Garbage, sel, k, 0, r.Pick(GarbageNrs)),
        };
    }

    public override string Show(SyscallCase c) =>
        $"kernel seed {c.KernelSeed}; " + string.Join("; ", c.Scripts.Select((s, i) => $"p{i}: [{string.Join(", ", s)}]"));

    public override int SizeOf(SyscallCase c) => c.Calls;

    public override IEnumerable<SyscallCase> Shrink(SyscallCase c)
    {
        for (int p = 0; p < c.Scripts.Length; p++)
            if (c.Scripts[p].Length > 0)
            {
                var s = (Call[][])c.Scripts.Clone();
                s[p] = [];
                yield return c with { Scripts = s };
            }
        for (int p = 0; p < c.Scripts.Length; p++)
            for (int i = c.Scripts[p].Length - 1; i >= 0; i--)
            {
                var s = (Call[][])c.Scripts.Clone();
                s[p] = [.. c.Scripts[p][..i], .. c.Scripts[p][(i + 1)..]];
                yield return c with { Scripts = s };
            }
    }

    public override string? Check(SyscallCase c)
    {
        var config = new KernelConfig
        {
            Cpus = 2,
            Seed = c.KernelSeed,
            MemoryBytes = 8UL << 20,
            KernelLength = 1UL << 20,
            Vms = [.. Enumerable.Range(1, Vms).Select(v => new VmSpec(VcpusPerVm, VmBase(v), VmBytes))],
            SampleCapacity = 16,   // no guest runs here: the exit-sample arrays would only cost each case an allocation
        };
        using var kernel = new Kernel.Core.Kernel(config);
        var h = new Harness(kernel, c, new HandleModel(Vms, VcpusPerVm, (ulong)config.Platform));
        for (int p = 0; p < Processes; p++)
        {
            int who = p;
            kernel.Install($"/bin/script{p}", () => new ScriptProgram(h, who));
        }
        for (int p = 0; p < Processes; p++) h.Spawn(p);
        var run = kernel.RunDeterministic(2_000_000);
        if (h.Error is not null) return h.Error;
        if (kernel.InternalErrors != 0) return $"kernel internal error: {kernel.LastInternalError}";
        if (!run.Quiescent) return "the system did not quiesce";
        for (int p = 0; p < Processes; p++)
            if (h.Done[p] != c.Scripts[p].Length && !h.Exited[p]) return $"p{p} stopped after {h.Done[p]} of {c.Scripts[p].Length} calls";
        return null;
    }

    /// <summary>Runs inside the kernel's deterministic driver: one host thread, so no locking is needed.</summary>
    sealed class Harness(Kernel.Core.Kernel kernel, SyscallCase c, HandleModel model)
    {
        public readonly Process[] Procs = new Process[Processes];
        public readonly int[] Done = new int[Processes];
        public readonly bool[] Exited = new bool[Processes];
        public string? Error;

        public void Spawn(int who)
        {
            Procs[who] = kernel.Spawn($"/bin/script{who}", null, who % kernel.Cpus.Length);
            model.Tables[who] = new HandleModel.Table();
        }

        public Call[] Script(int who) => c.Scripts[who];

        public ulong Resolve(int who, Call call)
        {
            var t = model.Tables[who];
            switch (call.Sel)
            {
                case HandleSel.Live:
                    var live = t.Live();
                    return live.Count == 0 ? call.Raw : live[call.K % live.Count].Handle;
                case HandleSel.Stale:
                    return t.Closed.Count == 0 ? call.Raw : t.Closed[call.K % t.Closed.Count];
                case HandleSel.Foreign:
                    var other = model.Tables[(who + 1 + call.K % (Processes - 1)) % Processes].Live();
                    return other.Count == 0 ? call.Raw : other[call.K % other.Count].Handle;
                default:
                    return call.Raw;
            }
        }

        public SysCallRegs Regs(Call call, ulong h) => call.Op switch
        {
            Op.VmOpen => new SysCallRegs { Rax = SysNr.VmOpen, Rdi = call.Arg },
            Op.VcpuCreate => new SysCallRegs { Rax = SysNr.VcpuCreate, Rdi = h, Rsi = call.Arg },
            Op.Close => new SysCallRegs { Rax = SysNr.Close, Rdi = h },
            Op.OpenPhysMem => new SysCallRegs { Rax = SysNr.OpenPhysMem },
            Op.IrqEvent => new SysCallRegs { Rax = SysNr.IrqEvent, Rdi = h, Rsi = call.Arg },
            Op.Capabilities => new SysCallRegs { Rax = SysNr.Capabilities, Rdi = call.Arg },
            Op.VmCapabilities => new SysCallRegs { Rax = SysNr.VmCapabilities, Rdi = h, Rsi = call.Arg },
            Op.EventSignal => new SysCallRegs { Rax = SysNr.EventSignal, Rdi = h },
            Op.Garbage => new SysCallRegs { Rax = call.Raw, Rdi = h, Rsi = h },
            _ => new SysCallRegs { Rax = SysNr.Exit, Rdi = 0 },
        };

        public void BeforeExit(int who)
        {
            model.Exit(who);
            Exited[who] = true;
        }

        public void AfterExit(int who)
        {
            if (Error is null && Procs[who].Handles.Snapshot().Count != 0) Error = $"p{who} exited but still holds handles";
        }

        public void Observe(int who, Call call, ulong h, long result)
        {
            Done[who]++;
            if (Error is not null) return;
            long want = model.Apply(who, call, h);
            Interlocked.Increment(ref ObservedCalls);
            if (result == Errno.EBUSY) Interlocked.Increment(ref Busy);
            if (call.Sel == HandleSel.Stale && result == Errno.ENOTFOUND) Interlocked.Increment(ref Stale);
            if (result > 0 && call.Op is Op.VmOpen or Op.VcpuCreate or Op.IrqEvent or Op.OpenPhysMem) Interlocked.Increment(ref Created);
            string step = $"p{who} step {Done[who]}: {call} with handle 0x{h:x}";
            if (result != want) { Error = $"{step}: kernel {Errno.Name(result)}, model {Errno.Name(want)}"; return; }
            if (kernel.InternalErrors != 0) { Error = $"{step}: kernel internal error {kernel.LastInternalError}"; return; }
            // The whole handle table, slot by slot, after every step; then every other live process's, for EXIT effects.
            for (int p = 0; p < Processes; p++)
            {
                if (Procs[p] is null || model.Tables[p].Exited) continue;
                var ours = Procs[p].Handles.Snapshot().Select(x => (Handle: (ulong)x.Handle, Obj: Key(x.Obj))).ToList();
                var theirs = model.Tables[p].Live();
                if (!ours.SequenceEqual(theirs))
                {
                    Error = $"{step}: p{p} table differs: kernel [{string.Join(' ', ours.Select(x => $"{x.Handle:x}={x.Obj}"))}] model [{string.Join(' ', theirs.Select(x => $"{x.Handle:x}={x.Obj}"))}]";
                    return;
                }
            }
        }

        static string Key(KObject o) => o switch
        {
            VmObject vm => $"vm{vm.Index}",
            VcpuObject v => $"vcpu{v.Vm.Index}.{v.LocalIndex}",
            IrqObject irq => $"irq{irq.Vector}/vm{irq.Vm.Index}",
            PhysMemObject => "physmem",
            _ => o.Kind,
        };
    }

    sealed class ScriptProgram(Harness h, int who) : IUserProgram
    {
        public async Task Main(IUserContext ctx)
        {
            foreach (Call call in h.Script(who))
            {
                ulong handle = h.Resolve(who, call);
                var regs = h.Regs(call, handle);
                if (call.Op == Op.Exit)
                {
                    h.BeforeExit(who);
                    h.Done[who]++;
                    _ = ctx.SysCall(regs); // never completes: the process is gone
                    h.AfterExit(who);
                    return;
                }
                long r = await ctx.SysCall(regs);
                h.Observe(who, call, handle, r);
            }
            h.BeforeExit(who);
            _ = ctx.SysCall(new SysCallRegs { Rax = SysNr.Exit });
            h.AfterExit(who);
        }
    }
}

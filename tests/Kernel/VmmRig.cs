using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Hot.State;
using Copra.Kernel.Backends;
using Copra.Kernel.Core;
using Copra.Kernel.Machine;
using Copra.Kernel.Exit;
using Copra.User;
using Iced.Intel;
using KernelT = Copra.Kernel.Core.Kernel;

namespace Copra.Tests.Kernel;

/// <summary>One exit a scripted guest takes: the registers (and RIP, RFLAGS, interruptibility) it holds then, and what the hardware reports.</summary>
internal sealed record GuestExit(ExitReason Reason, (int Reg, ulong Value)[]? Regs = null, ulong Rip = 0, ulong Gpa = 0, ushort Port = 0,
    byte Size = 0, bool Write = false, ulong? Rflags = null, ulong? Interruptibility = null, ulong? PendingEvent = null,
    bool HardwareCompletes = false, ulong HwData = 0);

/// <summary>What a vCPU held when the kernel entered it: RIP, RAX, RBX, RCX, RDX and the event the entry injects.</summary>
internal readonly record struct GuestEntry(int Vcpu, ulong Rip, ulong Rax, ulong Rbx, ulong Rcx, ulong Rdx, ulong PendingEvent);

/// <summary>
/// A guest that takes the exits a test lists, in order, per vCPU, and notes what the kernel left in it at every entry
/// (the hardware delivers the pending event there and clears it). Run-page exits (HLT, CPUID, MSRs, shutdown) need no
/// code; an access exit is given the RIP of an instruction the test assembled (<see cref="VmmRig.Code"/>). With nothing
/// left, the guest halts with interrupts off. An exit may leave an event pending (one the guest has not taken yet).
/// Deterministic driver only (the notes are not locked).
/// </summary>
internal sealed class ScriptedGuest(VcpuStateStore state, int vcpus) : IGuestBackend, IHardwareTimedBackend
{
    /// <summary>What the guest says the hardware took for each exit (its number, from 1), as KVM's timed backend would; null: 0.</summary>
    public Func<int, long>? Ticks;
    public long LastRunTicks(int vcpu) => Ticks?.Invoke(Entries.Count) ?? 0;
    readonly Queue<GuestExit>[] _script = Enumerable.Range(0, vcpus).Select(_ => new Queue<GuestExit>()).ToArray();
    public readonly List<GuestEntry> Entries = [];
    public string Name => "scripted";

    public void Add(int v, params GuestExit[] exits)
    {
        foreach (var x in exits) _script[v].Enqueue(x);
    }

    public IEnumerable<GuestEntry> Of(int v) => Entries.Where(e => e.Vcpu == v);

    /// <summary>Asked at every entry before the script: a non-null exit is taken instead of the script's next (a test that
    /// decides an exit only when the kernel reaches a state).</summary>
    public Func<int, GuestExit?>? NextExit;

    /// <summary>Called at every entry, before the guest runs (a test notes what the kernel's state was then).</summary>
    public Action<int>? OnEntry;

    public void Run(int v, ref ExitRecord rec)
    {
        OnEntry?.Invoke(v);
        Entries.Add(new GuestEntry(v, state.Rip(v), state.Gpr(v, 0), state.Gpr(v, 3), state.Gpr(v, 1), state.Gpr(v, 2), state.PendingEvent(v)));
        state.SetPendingEvent(v, 0);
        var x = NextExit?.Invoke(v) ?? (_script[v].Count > 0 ? _script[v].Dequeue() : new GuestExit(ExitReason.Hlt, Rflags: 2));
        if (x.Rip != 0) state.Rip(v) = x.Rip;
        if (x.Rflags is { } f) state.Rflags(v) = f;
        if (x.Interruptibility is { } i) state.SetInterruptibility(v, i);
        if (x.PendingEvent is { } pe) state.SetPendingEvent(v, pe);
        foreach (var (r, value) in x.Regs ?? []) state.Gpr(v, r) = value;
        rec = new ExitRecord { Reason = x.Reason, Gpa = x.Gpa, Port = x.Port, Size = x.Size, Data = x.HwData,
            Flags = (x.Write ? ExitFlags.Write : 0) | (x.HardwareCompletes ? ExitFlags.HardwareCompletes : 0) };
    }

    /// <summary>What the kernel handed back for each hardware-completed exit (vCPU, value), in order.</summary>
    public readonly List<(int Vcpu, ulong Value)> Completed = [];
    public void CompleteAccess(int v, ulong readValue) => Completed.Add((v, readValue));
    public void Dispose() { }
}

/// <summary>A VMM's answer to a run-page exit: false ends its vCPU thread.</summary>
internal delegate bool RunPageAnswer(IUserContext ctx, RunExit why, ref RunPage page);
/// <summary>A device model's handling of the access in its area (set Data and publish Done to answer): false ends the model.</summary>
internal delegate bool DeviceAnswer(IUserContext ctx, uint handle, ref EventArea area);

/// <summary>
/// A kernel with one VM (RAM at 8 MiB, long-mode page tables from the replay workload, so access instructions decode),
/// a <see cref="ScriptedGuest"/>, and a VMM the test writes: <see cref="Vmm"/> opens the VM, registers the test's
/// devices (each with a model thread running the test's <see cref="DeviceAnswer"/>), and runs one thread per vCPU
/// calling the test's <see cref="RunPageAnswer"/> for each run-page exit. The default answer ends the thread at a
/// HLT with interrupts off, at Shutdown or at Stopped (any exit it does not go on at); every run-page exit is noted with a copy of the page.
/// </summary>
internal sealed class VmmRig : IDisposable
{
    public const ulong Dev = 0xFEB0_0000;
    public readonly KernelT K;
    public readonly ScriptedGuest Guest;
    public readonly VmLayout Layout;
    readonly GuestBuilder _gb;
    ulong _code;
    public readonly List<(int Vcpu, RunExit Why, RunPage Page)> Exits = [];
    public readonly List<(long Seq, EventArea Area)> Deliveries = [];
    readonly List<(EventKind Kind, ulong Start, ulong Length, DeviceAnswer Answer)> _devices = [];
    /// <summary>The VMM's handles of the devices, in the order they were added (any of its threads may close one).</summary>
    public readonly List<uint> DeviceHandles = [];
    /// <summary>The devices' event objects (kept here: the VM forgets one when its last handle closes).</summary>
    public readonly List<EventObject> DeviceObjects = [];
    /// <summary>Where the VMM mapped each device's event area (any of its threads may answer through it, then EVENT_SIGNAL).</summary>
    public readonly List<ulong> DeviceAreas = [];
    /// <summary>The VMM's handles of the vCPUs, by index (any of its threads may wait on one).</summary>
    public readonly List<uint> VcpuHandles = [];

    /// <param name="timeEvery">One exit in this many timed (the kernel's default, 1, times every exit, and a timed answer
    /// takes the general completion; a run's is 16).</param>
    public VmmRig(int vcpus = 1, int cpus = 1, bool keepTrace = false, int timeEvery = 1)
    {
        K = new KernelT(new KernelConfig { Cpus = cpus, Vms = [new VmSpec(vcpus, 8UL << 20, 8UL << 20)], MemoryBytes = 18UL << 20, KeepTrace = keepTrace, TimeEvery = timeEvery });
        Layout = new VmLayout(8UL << 20, 8UL << 20, 0, Dev);
        var wb = new WorkloadBuilder(K.Memory, Layout);
        _gb = new GuestBuilder(K.Memory);
        _code = Layout.Code;
        for (int v = 0; v < vcpus; v++)
        {
            wb.InitialState(Layout.Code, v).ApplyTo(K.State, v);
            K.State.OnEntry(v);
        }
        Guest = new ScriptedGuest(K.State, vcpus);
        K.Backend = Guest;
    }

    /// <summary>Assembles one instruction at the next free code address and returns its RIP.</summary>
    public ulong Code(Action<Assembler> insn)
    {
        var asm = new Assembler(64);
        insn(asm);
        ulong rip = _code;
        _code = _gb.Assemble(rip, rip, asm).End;
        return rip;
    }

    /// <summary>A device range the VMM registers before any vCPU runs, with a model thread answering through <paramref name="answer"/>.</summary>
    public void Device(EventKind kind, ulong start, ulong length, DeviceAnswer answer) => _devices.Add((kind, start, length, answer));

    /// <summary>The standard answer: note the exit; go on at a HLT with interrupts on, and at CPUID/MSR exits (the page as the kernel left it).</summary>
    public static bool Continue(IUserContext ctx, RunExit why, ref RunPage page) =>
        why is RunExit.Cpuid or RunExit.MsrRead or RunExit.MsrWrite || why == RunExit.Hlt && (page.Flags & RunPage.FlagInterruptsEnabled) != 0;

    /// <summary>Installs and spawns the VMM (vCPU i's thread on CPU 0; the kernel moves it to the vCPU's CPU) and runs to quiescence.</summary>
    public void Run(RunPageAnswer? answer = null, Func<IUserContext, uint, Task>? after = null)
    {
        Start(answer, after);
        KernelHarness.Drive(K);
    }

    public void Start(RunPageAnswer? answer = null, Func<IUserContext, uint, Task>? after = null)
    {
        answer ??= Continue;
        int vcpus = K.Vms[0].VcpuCount;
        K.Install("/vmm", () => new LambdaProgram(async ctx =>
        {
            uint vm = Sys.VmOpen(ctx, 1);
            foreach (var (kind, start, length, dev) in _devices)
            {
                uint ev = kind == EventKind.Mmio ? Sys.MmioEvent(ctx, vm, start, length) : Sys.IoioEvent(ctx, vm, start, length);
                ulong area = Sys.Mmap(ctx, ev, 0, Page.Size);
                DeviceHandles.Add(ev);
                DeviceAreas.Add(area);
                DeviceObjects.Add(K.Vms[0].Owners[^1]!);
                Sys.ThreadCreate(ctx, async (c, _) =>
                {
                    while (true)
                    {
                        long r = await Sys.WaitForEvent(c, ev);
                        if (Errno.IsError(r)) return;
                        if (!Model(c, ev, area, dev)) return;
                    }
                }, 0);
            }
            for (int i = 0; i < vcpus; i++)
            {
                uint vcpu = Sys.VcpuCreate(ctx, vm, (ulong)i);
                VcpuHandles.Add(vcpu);
                int index = i;
                Sys.ThreadCreate(ctx, async (c, _) =>
                {
                    ulong page = Sys.Mmap(c, vcpu, 0, Page.Size);
                    while (true)
                    {
                        long why = await Sys.WaitForEvent(c, vcpu);
                        if (Errno.IsError(why)) return;
                        if (!Answer(c, index, (RunExit)why, page, answer)) return;
                    }
                }, 0);
            }
            if (after is not null) await after(ctx, vm);
        }));
        K.Spawn("/vmm", null, 0);
    }

    bool Model(IUserContext c, uint ev, ulong area, DeviceAnswer dev)
    {
        ref var a = ref Sys.Ref<EventArea>(c, area);
        if (a.State != EventState.Pending) return true;
        Deliveries.Add(((long)a.Sequence, a));
        return dev(c, ev, ref a);
    }

    bool Answer(IUserContext c, int index, RunExit why, ulong page, RunPageAnswer answer)
    {
        ref var p = ref Sys.Ref<RunPage>(c, page);
        Exits.Add((index, why, p));
        return answer(c, why, ref p);
    }

    /// <summary>A model that answers every read with <paramref name="value"/> and takes every write.</summary>
    public static DeviceAnswer Answers(ulong value) => (IUserContext _, uint _, ref EventArea a) =>
    {
        if (a.Direction == AccessDirection.Read) a.Data = value;
        a.PublishState(EventState.Done);
        return true;
    };

    /// <summary>A model that holds every access and never answers (a silent device).</summary>
    public static DeviceAnswer Silent => (IUserContext _, uint _, ref EventArea _) => true;

    /// <summary>A model that closes its event object at the first access, answering nothing.</summary>
    public static DeviceAnswer Dies => (IUserContext c, uint h, ref EventArea _) => { Sys.Close(c, h); return false; };

    public void Dispose() => K.Dispose();
}

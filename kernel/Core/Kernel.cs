using System.Text;
using Copra.Abi;
using Copra.Cold;
using Copra.Hot.Exit;

namespace Copra.Kernel.Core;

/// <summary>How to boot a kernel.</summary>
public sealed record KernelConfig
{
    public int Cpus { get; init; } = 2;
    public PlatformType Platform { get; init; } = PlatformType.Snp;
    public ulong Seed { get; init; } = 1;
    /// <summary>Physical memory of the confidential VM.</summary>
    public ulong MemoryBytes { get; init; } = 64UL << 20;
    /// <summary>The kernel's own range, excluded from PHYSMEM.</summary>
    public ulong KernelBase { get; init; } = 0;
    public ulong KernelLength { get; init; } = 2UL << 20;
    /// <summary>Private data segment of each process.</summary>
    public int ProcessDataBytes { get; init; } = 256 << 10;
    public bool KeepTrace { get; init; }
    /// <summary>Hash the trace (the deterministic driver's check; <see cref="Trace.Hashed"/>). Off only for harnesses that never read it.</summary>
    public bool HashTrace { get; init; } = true;
    /// <summary>The VMs the platform offers (VM index = position + 1).</summary>
    public IReadOnlyList<VmSpec> Vms { get; init; } = [];
    /// <summary>Overrides the platform's default cost model.</summary>
    public Machine.CostModel? Cost { get; init; }
    public int MaxEventObjects { get; init; } = 256;
    /// <summary>Measured/modelled samples kept per exit kind (counts are always kept).</summary>
    public int SampleCapacity { get; init; } = ExitStats.SampleCapacity;
    /// <summary>Exits timed with the TSC: one in this many per CPU (<see cref="ExitStats.TimeThis"/>); 1 times every exit.</summary>
    public int TimeEvery { get; init; } = 1;
}

/// <summary>
/// The kernel: CPUs, processes, threads, the filesystem, and the two drivers that step the CPUs.
/// Cold state (processes, handle tables, the filesystem) is changed under the objects' own locks;
/// the exit path (partial class parts in Exit/) never takes a cold lock in steady state.
/// </summary>
public sealed partial class Kernel : IDisposable
{
    readonly List<Process> _processes = [];
    readonly List<KThread> _threads = [];
    /// <summary>The threads by id, for <see cref="Thread"/> without the lock: the inbox looks a woken thread up on every
    /// cross-CPU wake (once per exit of a model shared by two CPUs). Grown by doubling under the lock and published
    /// whole; a thread's slot is written before its id is posted anywhere.</summary>
    KThread[] _threadTable = new KThread[16];
    readonly Dictionary<Process, List<ThreadEntry>> _text = [];
    readonly Dictionary<string, Func<IUserProgram>> _programs = new(StringComparer.Ordinal);
    readonly object _procLock = new();
    readonly StringBuilder _consoleAll = new();
    readonly Dictionary<int, StringBuilder> _consoles = [];
    int _nextPid = 1;

    public Kernel(KernelConfig config)
    {
        if (config.Cpus is < 1 or > 64) throw new ArgumentOutOfRangeException(nameof(config), "1..64 CPUs");
        Config = config;
        Cpus = new Cpu[config.Cpus];
        for (int i = 0; i < Cpus.Length; i++) Cpus[i] = new Cpu(this, i);
        Trace = new Trace(config.Cpus) { Keep = config.KeepTrace, Hashed = config.HashTrace };
        TracesExits = Trace.Hashed || Trace.Keep;
        Gate = new SysCallGate(this);
        Phys = new PhysPages(config.MemoryBytes, config.KernelBase, config.KernelLength);
        InitMachine();
    }

    public KernelConfig Config { get; }
    public Cpu[] Cpus { get; }
    public Trace Trace { get; }
    /// <summary>The trace takes each exit's Complete record (it is hashed or kept): decided with the trace, read once per exit.</summary>
    internal readonly bool TracesExits;
    public SysCallGate Gate { get; }
    public RamFs Fs { get; } = new();
    public PhysPages Phys { get; }

    /// <summary>Kernel bugs caught at the gate (an exception that was not a <see cref="KernelError"/>). Must stay 0.</summary>
    public long InternalErrors;
    public Exception? LastInternalError;

    partial void InitMachine();
    partial void DisposeMachine();
    public void Dispose() => DisposeMachine();

    // ---- programs and processes -------------------------------------------------------------

    /// <summary>Registers a program and installs its image at <paramref name="path"/>.</summary>
    public void Install(string path, Func<IUserProgram> factory)
    {
        _programs[path] = factory;
        Fs.InstallProgram(path, path);
    }

    public IReadOnlyList<Process> Processes { get { lock (_procLock) return _processes.ToList(); } }
    public KThread Thread(int id) => Volatile.Read(ref _threadTable)[id];
    public IReadOnlyList<KThread> Threads { get { lock (_procLock) return _threads.ToList(); } }

    /// <summary>Starts a process running <paramref name="path"/> with its main thread on <paramref name="cpu"/>.</summary>
    public Process Spawn(string path, Process? parent, int cpu, IReadOnlyList<KObject>? passed = null, RamFs.Dir? root = null)
    {
        string program = Fs.ResolveProgram(path);
        if (!_programs.TryGetValue(program, out var factory)) throw KernelError.NotFound($"no program image '{program}'");
        Process p;
        lock (_procLock)
        {
            p = new Process(_nextPid++, path, parent, Config.ProcessDataBytes) { Root = root ?? Fs.Root };
            _processes.Add(p);
            _text[p] = [];
            _consoles[p.Pid] = new StringBuilder();
        }
        var console = new ConsoleObject(WriteConsole, p.Pid);
        console.TryAddHandleForBoot();
        p.Handles.PlaceAt(0, console);
        if (passed is not null)
            for (int i = 0; i < passed.Count; i++) p.Handles.PlaceAt(i + 1, passed[i]);
        var prog = factory();
        CreateThread(p, (ctx, _) => prog.Main(ctx), 0, cpu);
        return p;
    }

    public ulong DefineEntry(Process p, ThreadEntry entry)
    {
        lock (_procLock)
        {
            var list = _text[p];
            list.Add(entry);
            return TextBase + (ulong)(list.Count - 1) * TextStride;
        }
    }

    /// <summary>Entry addresses are in a text segment the process cannot write: base + 16 per function.</summary>
    public const ulong TextBase = 0x0000_0000_0040_0000, TextStride = 16;

    public bool TryGetEntry(Process p, ulong address, out ThreadEntry entry)
    {
        entry = null!;
        if (address < TextBase || (address - TextBase) % TextStride != 0) return false;
        ulong i = (address - TextBase) / TextStride;
        lock (_procLock)
        {
            var list = _text[p];
            if (i >= (ulong)list.Count) return false;
            entry = list[(int)i];
            return true;
        }
    }

    public KThread CreateThread(Process p, ThreadEntry entry, ulong arg, int cpu)
    {
        KThread t;
        lock (_procLock)
        {
            t = new KThread(_threads.Count, p, entry, arg) { Cpu = cpu };
            _threads.Add(t);
            var table = _threadTable;
            if (t.Id >= table.Length) { Array.Resize(ref table, table.Length * 2); table[t.Id] = t; Volatile.Write(ref _threadTable, table); }
            else Volatile.Write(ref table[t.Id], t);
        }
        t.Context = new UserContext(this, t);
        t.QueueOnWakeCpu = QueueOnWakeCpu;
        Interlocked.Increment(ref p.LiveThreads);
        t.State = ThreadState.Runnable;
        Cpus[cpu].Post(new CpuMessage(CpuMessageKind.RunThread, t.Id));
        return t;
    }

    // ---- console -----------------------------------------------------------------------------

    void WriteConsole(int pid, string text)
    {
        lock (_consoleAll)
        {
            _consoles[pid].Append(text);
            _consoleAll.Append(text);
        }
    }

    public string ConsoleOf(int pid) { lock (_consoleAll) return _consoles.TryGetValue(pid, out var sb) ? sb.ToString() : ""; }
    public string ConsoleText { get { lock (_consoleAll) return _consoleAll.ToString(); } }

    // ---- running threads ---------------------------------------------------------------------

    /// <summary>The CPU whose step is running on this host thread (either driver).</summary>
    [ThreadStatic] static Cpu? t_cpu;
    public static Cpu? CurrentCpu => t_cpu;

    /// <summary>Runs a thread until it blocks, exits, or dies.</summary>
    internal void RunSlice(Cpu cpu, KThread t)
    {
        Trace.AddDisplayOnlyOn(cpu, TraceKind.ThreadSlice, t.Id);
        try
        {
            if (t.Main is null)
            {
                Trace.Add(cpu, TraceKind.ThreadStart, t.Id, t.Process.Pid);
                t.Main = t.Entry(t.Context, t.Arg);
            }
            else t.Resume();
        }
        catch (Exception e)
        {
            // The entry delegate threw synchronously: the process's own bug.
            CrashProcess(cpu, t.Process, e);
            return;
        }
        Trace.AddDisplayOnlyOn(cpu, TraceKind.ThreadSliceEnd, t.Id, t.Process.Pid);
        if (t.State == ThreadState.Dead) return;
        if (t.Main.IsCompleted)
        {
            if (t.Main.IsFaulted && t.Main.Exception!.InnerException is not ThreadKilledException)
                CrashProcess(cpu, t.Process, t.Main.Exception!.InnerException!);
            else ExitThread(cpu, t);
        }
    }

    /// <summary>Wakes a blocked thread with a result, to run next on <paramref name="cpu"/>.</summary>
    public void WakeThread(KThread t, long result, int cpu)
    {
        if (t.State == ThreadState.Dead) return;
        if (t.Wake(result, cpu)) QueueOnWakeCpu(t);
    }

    void QueueOnWakeCpu(KThread t)
    {
        if (t.State == ThreadState.Dead) return;
        int cpu = t.WakeCpu;
        var here = t_cpu;
        if (here is not null && here.Index == cpu) here.EnqueueLocal(t);
        else Cpus[cpu].Post(new CpuMessage(CpuMessageKind.RunThread, t.Id));
        if (here is not null) Trace.AddDisplayOnlyOn(here, TraceKind.ThreadWake, t.Id, cpu);
    }

    /// <summary>Ends one thread; the process exits with its last thread.</summary>
    public void ExitThread(Cpu cpu, KThread t)
    {
        if (t.State == ThreadState.Dead) return;
        t.State = ThreadState.Dead;
        Trace.Add(cpu, TraceKind.ThreadExit, t.Id);
        OnThreadGone(t);
        if (Interlocked.Decrement(ref t.Process.LiveThreads) == 0) ExitProcess(cpu, t.Process, 0, "exit");
    }

    public void CrashProcess(Cpu cpu, Process p, Exception e) =>
        ExitProcess(cpu, p, -1, $"crash: {e.GetType().Name}: {e.Message}");

    /// <summary>Ends a process: its threads die where they are, everything it held is released.</summary>
    public void ExitProcess(Cpu cpu, Process p, int code, string reason)
    {
        if (!p.MarkExited(code, reason)) return;
        Trace.Add(cpu, TraceKind.ProcessExit, p.Pid, code);
        foreach (var t in Threads)
        {
            if (t.Process != p || t.State == ThreadState.Dead) continue;
            t.State = ThreadState.Dead;
            OnThreadGone(t);
        }
        p.ReleaseAll();
    }

    /// <summary>Hook for the exit path: a thread died (it may have been a vCPU's or a device model's).</summary>
    partial void ThreadGone(KThread t);
    void OnThreadGone(KThread t) => ThreadGone(t);

    // ---- drivers -----------------------------------------------------------------------------

    /// <summary>
    /// Deterministic driver: one host thread steps every CPU, in an order drawn each round from the
    /// seed. The run ends when every CPU is idle with empty inboxes (the system is quiescent) or after
    /// <paramref name="maxSteps"/>. Same seed, same trace hash.
    /// </summary>
    public DriverResult RunDeterministic(long maxSteps = 50_000_000)
    {
        var rng = new DetRandom(Config.Seed);
        Span<int> order = stackalloc int[Cpus.Length];
        long steps = 0;
        using var flow = new NoContextFlow();
        var outer = t_cpu;
        try
        {
            while (steps < maxSteps)
            {
                for (int i = 0; i < order.Length; i++) order[i] = i;
                for (int i = order.Length - 1; i > 0; i--) { int j = rng.Next(i + 1); (order[i], order[j]) = (order[j], order[i]); }
                bool any = false;
                foreach (int c in order)
                {
                    var cpu = Cpus[c];
                    if (t_cpu != cpu) t_cpu = cpu;   // stored only when it changes: a reference store is a GC write barrier
                    any |= cpu.Step();
                    steps++;
                }
                if (!any && !AnyCpuHasWork()) return new DriverResult(steps, Quiescent: true);
            }
            return new DriverResult(steps, Quiescent: false);
        }
        finally { t_cpu = outer; }
    }

    /// <summary>
    /// This host thread steps CPU <paramref name="c"/> itself until the scope is disposed: <see cref="CurrentCpu"/> is that
    /// CPU and the execution context does not flow (<see cref="NoContextFlow"/>), as in the drivers; the caller calls
    /// <see cref="Cpu.Step"/>. For a harness that steps a one-CPU kernel exit by exit (kernel/Run/ExitRig.cs): the same
    /// steps as <see cref="RunDeterministic"/>, without its round around each (the order's shuffle, the quiescence test,
    /// the context's suppression), which would be most of what a forwarded exit's count measures.
    /// </summary>
    internal CpuScope Drive(int c) => new(Cpus[c]);

    internal readonly struct CpuScope : IDisposable
    {
        readonly Cpu? _outer;
        readonly NoContextFlow _flow;

        public CpuScope(Cpu cpu)
        {
            _outer = t_cpu;
            t_cpu = cpu;
            _flow = new NoContextFlow();
        }

        public void Dispose()
        {
            _flow.Dispose();
            t_cpu = _outer;
        }
    }

    bool AnyCpuHasWork()
    {
        foreach (var c in Cpus) if (c.HasWork) return true;
        return false;
    }

    /// <summary>
    /// Parallel driver: one host thread per CPU, each stepping its own CPU; the inboxes really cross
    /// cores. Ends when every CPU has been idle for a full round with no work anywhere, or at the
    /// time limit. Idle CPUs spin (SpinWait) rather than block: a blocking hand-off costs microseconds.
    /// </summary>
    public DriverResult RunParallel(TimeSpan limit)
    {
        long steps = 0, activations = 0;
        int idle = 0;
        bool stop = false;
        var deadline = DateTime.UtcNow + limit;
        var threads = new Thread[Cpus.Length];
        for (int c = 0; c < Cpus.Length; c++)
        {
            var cpu = Cpus[c];
            threads[c] = new Thread(() =>
            {
                using var flow = new NoContextFlow();
                t_cpu = cpu;
                bool wasIdle = false;
                var spin = new SpinWait();
                long n = 0;
                while (!Volatile.Read(ref stop))
                {
                    n++;
                    // Leave the idle count *before* stepping, and count the activation: a CPU counted idle
                    // while it steps (the thread it dequeued is in no queue) would let another CPU see
                    // every CPU idle and no work anywhere, and stop the run early.
                    if (cpu.HasWork)
                    {
                        if (wasIdle) { Interlocked.Decrement(ref idle); Interlocked.Increment(ref activations); wasIdle = false; }
                        cpu.Step();
                        spin = new SpinWait();
                        continue;
                    }
                    if (!wasIdle) { Interlocked.Increment(ref idle); wasIdle = true; }
                    if (Volatile.Read(ref idle) == Cpus.Length)
                    {
                        // Quiescent only if no CPU woke up while the queues were being looked at. A waking CPU
                        // leaves the idle count, then counts the activation, then dequeues; this side reads the
                        // activations, the idle count, the queues, the activations: if the queues looked empty
                        // because a CPU had already dequeued, its activation shows.
                        long seen = Volatile.Read(ref activations);
                        if (Volatile.Read(ref idle) == Cpus.Length && !AnyCpuHasWork() && Volatile.Read(ref activations) == seen)
                            Volatile.Write(ref stop, true);
                    }
                    if ((n & 1023) == 0 && DateTime.UtcNow > deadline) Volatile.Write(ref stop, true);
                    spin.SpinOnce(sleep1Threshold: -1);
                }
                Interlocked.Add(ref steps, n);
                t_cpu = null;
            }) { IsBackground = true, Name = $"cpu{c}" };
        }
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        return new DriverResult(steps, Quiescent: !AnyCpuHasWork() && DateTime.UtcNow <= deadline);
    }
}

public readonly record struct DriverResult(long Steps, bool Quiescent);

/// <summary>
/// While a driver steps CPUs, the host thread's execution context does not flow into user threads' awaits. Why: the
/// async method builder captures the context at every await that blocks and runs the continuation through
/// ExecutionContext.RunInternal when it resumes (~70 instructions per block and resume in the `copra run` mix); with
/// flow suppressed it captures nothing and calls MoveNext straight. Nothing in the kernel or the user programs uses
/// AsyncLocal, so nothing observable changes. A caller that has already suppressed flow keeps it (SuppressFlow would throw).
/// </summary>
internal readonly struct NoContextFlow : IDisposable
{
    readonly bool _suppressed;
    readonly AsyncFlowControl _control;

    public NoContextFlow()
    {
        if (ExecutionContext.IsFlowSuppressed()) return;
        _control = ExecutionContext.SuppressFlow();
        _suppressed = true;
    }

    public void Dispose()
    {
        if (_suppressed) _control.Undo();
    }
}

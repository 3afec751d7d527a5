using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.Layout;
using Copra.Hot.State;
using Copra.Kernel.Exit;

namespace Copra.Kernel.Backends;

/// <summary>
/// The replay backend: a synthetic guest whose exiting instructions are real code in guest memory
/// (assembled with Iced behind real page tables), and whose non-exiting glue (loads of a base
/// register, a poll loop's test and branch, STI, the loop counter) the backend plays itself. Each
/// run of a vCPU yields its next exit. Before it does, it checks what the kernel did with the last
/// one: RIP must have moved to the end of the instruction (or an exception or interrupt must be
/// pending), and a read's value must be what the step expects. Any other outcome is counted as a
/// desync or a data mismatch; tests require both to be zero. Reads and writes of vCPU state here are
/// the hardware's (TryPeek/TryPoke), so they cost no TDCALLs.
/// </summary>
public sealed class ReplayBackend(VcpuStateStore state, IReadOnlyList<ReplayProgram> programs) : IGuestBackend
{
    // An array (no interface call per exit) of each program with its steps as an array (a program is complete before its
    // backend is made): a List's indexer is two bounds checks and a call's worth of loads on every Run, Retire and Advance.
    readonly Loaded[] _programs = [.. programs.Select(p => new Loaded([.. p.Steps], [.. p.Steps.Select((s, i) => Decided.Of(s, i, p))], p.LoopStart, p.LoopEnd, p.Iterations))];

    /// <summary>A program as Run and Advance read it on every exit: its steps as an array, what was decided of each
    /// (<see cref="Decided"/>), its loop's bounds as fields.</summary>
    sealed record Loaded(Step[] Steps, Decided[] Decided, int LoopStart, int LoopEnd, long Iterations);

    /// <summary>What is decided of a step once, when the backend is made: what it needs beyond the common exit, and the
    /// RIP the kernel must leave after it (a branch's target, or the end of the instruction).</summary>
    readonly record struct Decided(Extra Needs, ulong End)
    {
        public static Decided Of(Step s, int at, ReplayProgram p) => new(ExtrasOf(s, at, p), s.ExpectRip ?? s.Rip + (ulong)s.Length);
    }

    /// <summary>
    /// What a step needs beyond presetting its registers and checking RIP, decided once when the backend is made (its
    /// program is complete by then). Why: most steps are a plain access, and testing one byte skips five empty loops and
    /// nullable checks that every exit paid for (~30 instructions of the ~210 the replay guest costs per exit; PERF.md).
    /// </summary>
    [Flags]
    enum Extra : byte
    {
        None = 0,
        /// <summary>In the loop body with an address pattern: the preset of <see cref="Step.VaryReg"/> and the GPA move.</summary>
        Varies = 1,
        /// <summary>State fields to set before the exit: <see cref="Step.PresetFields"/>, <see cref="Step.StatePresets"/>, IF.</summary>
        SetsState = 2,
        /// <summary>What to check after it beyond RIP (<see cref="Decided.End"/>): <see cref="Step.ExpectRax"/>, <see cref="Step.ExpectFields"/>, a poll's test.</summary>
        Checks = 4,
    }

    static Extra ExtrasOf(Step s, int at, ReplayProgram p) =>
        (s.VaryReg >= 0 && s.VarySpan != 0 && at >= p.LoopStart && at < p.LoopEnd ? Extra.Varies : 0)
        | (s.PresetFields.Length != 0 || s.StatePresets.Length != 0 || s.SetIf || s.ClearIf ? Extra.SetsState : 0)
        | (s.ExpectRax is not null || s.ExpectFields.Length != 0 || s.Kind == StepKind.Poll ? Extra.Checks : 0);

    /// <summary>Where a vCPU's program is: one entry per vCPU (its own cache-line pair, hot/Layout/VcpuColumn.cs), read and
    /// written on every exit. Why one struct and not a column per field: Run and Retire touch all four, and each column
    /// is a base load and a line of its own.</summary>
    struct Cursor
    {
        public long Iteration;
        public int Step;
        /// <summary>The step was issued as an exit and is retired at the next run.</summary>
        public bool Issued;
        /// <summary>A REP the kernel stopped part-way: the step re-runs with the registers it left.</summary>
        public bool Resume;
    }
    readonly VcpuColumn<Cursor> _at = new(Math.Max(1, programs.Count));
    public long RepResumes;

    public string Name => "replay";
    public long Desyncs, DataMismatches, ExceptionsSeen, InterruptsSeen;
    public readonly List<string> Problems = [];
    public long[] ExceptionsByVector { get; } = new long[32];
    /// <summary>The first exceptions the kernel raised: the step, the EVENTINJ value (vector, error code), RIP and RCX then.</summary>
    public readonly List<(string Step, ulong Event, ulong Rip, ulong Rcx)> Exceptions = [];
    /// <summary>The first interrupts delivered: the step they arrived after, and the vector.</summary>
    public readonly List<(string Step, byte Vector)> Interrupts = [];

    public void Run(int v, ref ExitRecord exit)
    {
        var loaded = _programs[v];
        var steps = loaded.Steps;
        ref var c = ref _at[v];
        if (c.Issued) Retire(v, ref c, loaded, steps);
        int at = c.Step;
        if ((uint)at >= (uint)steps.Length) { exit.Reason = ExitReason.Shutdown; return; }
        var s = steps[at];
        ulong rip = state.Rip(v);
        if (rip != s.Rip) { DesyncAt(v, s, rip); exit.Reason = ExitReason.Shutdown; return; }

        var extra = loaded.Decided[at].Needs;
        ulong offset = (extra & Extra.Varies) != 0 ? s.Offset(c.Iteration) : 0;
        // A REP the kernel stopped part-way re-executes with the registers it left (the count resumes).
        if (!c.Resume)
            foreach (var (reg, value) in s.Presets) state.Gpr(v, reg) = value + (reg == s.VaryReg ? offset : 0);
        if ((extra & Extra.SetsState) != 0) SetState(v, s, c.Resume);
        c.Resume = false;
        c.Issued = true;
        exit.Reason = s.Reason;
        exit.Gpa = s.Reason is ExitReason.Hlt or ExitReason.Cpuid ? 0 : s.Gpa + offset;
        exit.Port = s.Port;
        exit.Size = s.Size;
        exit.Flags = s.Flags;
        exit.InstructionLength = (byte)s.Length;
    }

    /// <summary>The state a step's glue set before it beyond its registers (<see cref="Extra.SetsState"/>). Out of line: few steps have any.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    void SetState(int v, Step s, bool resume)
    {
        if (!resume)
            foreach (var (field, value) in s.PresetFields) Poke(v, field, value);
        foreach (var (field, value) in s.StatePresets) Poke(v, field, value);
        if (s.SetIf) state.Rflags(v) |= 1UL << 9;
        if (s.ClearIf) state.Rflags(v) &= ~(1UL << 9);
    }

    // Out of line: the interpolated string would otherwise give Run a larger frame to zero on every call.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    void DesyncAt(int v, Step s, ulong rip) => Desync(v, $"vcpu {v}: at step '{s.Text}' expected rip 0x{s.Rip:x}, found 0x{rip:x}");

    /// <summary>What happened to the issued step: move on, loop, or count a problem.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]   // its one caller is Run
    void Retire(int v, ref Cursor c, Loaded prog, Step[] steps)
    {
        c.Issued = false;
        var s = steps[c.Step];
        // The hardware's own view of the fields (no TDCALL charged): direct reads, not the by-id switch.
        ulong pe = state.PeekPendingEvent(v);
        if ((pe & (1UL << 31)) != 0)
        {
            Poke(v, StateField.PendingEvent, 0);
            uint type = (uint)(pe >> 8) & 7;
            if (type == 3)
            {
                // The kernel raised an exception instead of completing the instruction. The guest's
                // handler deals with it (a #VC/#VE handler emulates it; for #PF/#GP/#UD the workload's
                // handler skips it) and returns after it.
                ExceptionsSeen++;
                ExceptionsByVector[pe & 31]++;
                lock (Exceptions) if (Exceptions.Count < 64) Exceptions.Add((s.Text, pe, Peek(v, StateField.Rip), state.Gpr(v, 1)));
                Advance(v, ref c, prog, steps, s);
                return;
            }
            // An interrupt: the ISR runs and returns. It ends a HLT wait; otherwise the step retires as usual.
            InterruptsSeen++;
            lock (Interrupts) if (Interrupts.Count < 64) Interrupts.Add((s.Text, (byte)pe));
            if (s.Kind == StepKind.WaitIrq) { Advance(v, ref c, prog, steps, s); return; }
        }
        ulong rip = state.Rip(v);
        if (s.Kind == StepKind.WaitIrq)
        {
            if (rip != s.Rip + (ulong)s.Length) Problem(v, s, ProblemKind.HltResumed, rip, 0);
            return;   // halted; the interrupt that ends the wait arrives as a pending event
        }
        if (rip == s.Rip && (s.Flags & ExitFlags.Rep) != 0 && (state.Gpr(v, 1) & 0xFFFF_FFFF) != 0)
        {
            RepResumes++;
            c.Resume = true;
            return;   // the same step again: the guest re-executes the REP instruction
        }
        ref readonly var decided = ref prog.Decided[c.Step];
        if (rip != decided.End) { Problem(v, s, ProblemKind.WrongRip, rip, decided.End); return; }
        if ((decided.Needs & Extra.Checks) != 0 && !Checked(v, s)) return;
        Advance(v, ref c, prog, steps, s);
    }

    /// <summary>A step's checks beyond RIP (<see cref="Extra.Checks"/>): a poll's test, RAX, state fields. True when the
    /// step retires; false when a poll loops back to its read. Out of line: few steps have any.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    bool Checked(int v, Step s)
    {
        ulong rax = state.Gpr(v, 0);
        if (s.Kind == StepKind.Poll && (rax & s.PollMask) != s.PollExpect)
        {
            state.Rip(v) = s.Rip;   // the guest's jz back to the read
            return false;
        }
        if (s.ExpectRax is { } want && (rax & s.ExpectMask) != want)
        {
            Problem(v, s, ProblemKind.WrongRax, rax & s.ExpectMask, want);
        }
        foreach (var (field, value, mask) in s.ExpectFields)
        {
            ulong got = Peek(v, field) & mask;
            if (got == value) continue;
            Problem(v, s, ProblemKind.WrongField, got, value, field);
        }
        return true;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]   // three lines, at the end of most exits
    void Advance(int v, ref Cursor c, Loaded prog, Step[] steps, Step s)
    {
        int next = c.Step + 1;
        if (next == prog.LoopEnd && prog.LoopEnd > prog.LoopStart && ++c.Iteration < prog.Iterations) next = prog.LoopStart;
        c.Step = next;
        state.Rip(v) = (uint)next < (uint)steps.Length ? steps[next].Rip : s.Next;
    }

    void Desync(int v, string what) { Desyncs++; Note(what); }

    enum ProblemKind : byte { HltResumed, WrongRip, WrongRax, WrongField }

    /// <summary>Counts and notes what went wrong with a step. Out of line: the messages' interpolated strings would
    /// otherwise give Retire a larger frame to zero on every exit.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    void Problem(int v, Step s, ProblemKind kind, ulong got, ulong want, ulong field = 0)
    {
        switch (kind)
        {
            case ProblemKind.HltResumed: Desync(v, $"vcpu {v}: HLT at 0x{s.Rip:x} resumed at 0x{got:x}"); break;
            case ProblemKind.WrongRip: Desync(v, $"vcpu {v}: '{s.Text}' at 0x{s.Rip:x} left rip at 0x{got:x}, expected 0x{want:x}"); break;
            case ProblemKind.WrongRax: DataMismatches++; Note($"vcpu {v}: '{s.Text}' read 0x{got:x}, expected 0x{want:x}"); break;
            default: DataMismatches++; Note($"vcpu {v}: '{s.Text}' left field {field} = 0x{got:x}, expected 0x{want:x}"); break;
        }
    }
    void Note(string what) { lock (Problems) if (Problems.Count < 20) Problems.Add(what); }

    ulong Peek(int v, ulong field) => state.TryPeek(v, field, out ulong x) ? x : 0;
    void Poke(int v, ulong field, ulong value) => state.TryPoke(v, field, value);

    public void CompleteAccess(int vcpu, ulong readValue) =>
        throw new InvalidOperationException("the replay backend never asks the kernel to hand data back");

    public void Dispose() { }
}

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
    // An array (no interface call per exit) of each program with its steps as arrays (a program is complete before its
    // backend is made): a List's indexer is two bounds checks and a call's worth of loads on every Run, Retire and Advance.
    readonly Loaded[] _programs = [.. programs.Select(p => new Loaded([.. p.Steps], [.. p.Steps.Select((s, i) => Hot.Of(s, i, p.LoopStart, p.LoopEnd))], p.LoopStart, p.LoopEnd, p.Iterations))];

    /// <summary>A program as Run and Advance read it on every exit: its steps (the rare paths read these), what each
    /// step's exit needs (<see cref="Hot"/>), its loop's bounds as fields.</summary>
    sealed record Loaded(Step[] Steps, Hot[] Hot, int LoopStart, int LoopEnd, long Iterations);

    /// <summary>
    /// What Run and Retire read of a step on every exit, decided once when the backend is made (its program is complete
    /// by then): the exit record it reports, its RIP and the RIP the kernel must leave, its first two register presets,
    /// and what it needs beyond these (<see cref="Extra"/>). Why a struct array beside the steps: a <see cref="Step"/> is
    /// a class of ~25 fields with arrays and nullables, and the common exit read it through three references, two
    /// arrays' bounds and a loop; here one bounds check and adjacent loads, and the record is one copy (PERF.md).
    /// </summary>
    struct Hot
    {
        /// <summary>The exit as the hardware reports it; its GPA moves with the address pattern (<see cref="GpaVaries"/>).</summary>
        public ExitRecord Exit;
        public ulong Rip;
        /// <summary>The RIP the kernel must leave: a branch's target, or the end of the instruction.</summary>
        public ulong End;
        /// <summary>The first two register presets (<see cref="Reg0"/>, <see cref="Reg1"/>: −1 when absent), and for each an
        /// all-ones mask when it is the register the address pattern moves.</summary>
        public ulong Value0, Value1, Vary0, Vary1;
        /// <summary>All ones when the exit's GPA moves with the pattern (an access; HLT and CPUID report none).</summary>
        public ulong GpaVaries;
        /// <summary>The address pattern (<see cref="Step.OffsetAt"/>) when the step <see cref="Extra.Varies"/>: read here, not
        /// through the step's class (a bounds check and four loads per exit).</summary>
        public ulong VaryStride, VarySpan;
        public bool VaryRandom;
        public sbyte Reg0, Reg1;
        public StepKind Kind;
        public Extra Needs;

        public static Hot Of(Step s, int at, int loopStart, int loopEnd)
        {
            bool access = s.Reason is not (ExitReason.Hlt or ExitReason.Cpuid);   // HLT and CPUID report no GPA
            var h = new Hot
            {
                Exit = new ExitRecord
                {
                    Reason = s.Reason, Gpa = access ? s.Gpa : 0, Port = s.Port, Size = s.Size,
                    Flags = s.Flags, InstructionLength = (byte)s.Length,
                },
                Rip = s.Rip, End = s.ExpectRip ?? s.Rip + (ulong)s.Length,
                GpaVaries = access ? ulong.MaxValue : 0,
                Reg0 = -1, Reg1 = -1, Kind = s.Kind, Needs = ExtrasOf(s, at, loopStart, loopEnd),
                VaryStride = s.VaryStride, VarySpan = s.VarySpan, VaryRandom = s.VaryRandom,
            };
            if (s.Presets.Length > 0) { h.Reg0 = (sbyte)s.Presets[0].Reg; h.Value0 = s.Presets[0].Value; h.Vary0 = s.Presets[0].Reg == s.VaryReg ? ulong.MaxValue : 0; }
            if (s.Presets.Length > 1) { h.Reg1 = (sbyte)s.Presets[1].Reg; h.Value1 = s.Presets[1].Value; h.Vary1 = s.Presets[1].Reg == s.VaryReg ? ulong.MaxValue : 0; }
            return h;
        }
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
        /// <summary>What to check after it beyond RIP (<see cref="Hot.End"/>): <see cref="Step.ExpectRax"/>, <see cref="Step.ExpectFields"/>, a poll's test.</summary>
        Checks = 4,
        /// <summary>More than two register presets: the rest from <see cref="Step.Presets"/>.</summary>
        MorePresets = 8,
    }

    static Extra ExtrasOf(Step s, int at, int loopStart, int loopEnd) =>
        (s.VaryReg >= 0 && s.VarySpan != 0 && at >= loopStart && at < loopEnd ? Extra.Varies : 0)
        | (s.PresetFields.Length != 0 || s.StatePresets.Length != 0 || s.SetIf || s.ClearIf ? Extra.SetsState : 0)
        | (s.ExpectRax is not null || s.ExpectFields.Length != 0 || s.Kind == StepKind.Poll ? Extra.Checks : 0)
        | (s.Presets.Length > 2 ? Extra.MorePresets : 0);

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

    /// <summary>
    /// A harness that edits a step after the backend is made (a test in which the hardware reports another page, port or
    /// reason from some exit on) calls this after the edit: what Run reads of a step is decided when the backend is made
    /// (<see cref="Hot"/>), so the edit reaches the step's next exit only through here.
    /// </summary>
    public void Changed(Step s)
    {
        foreach (var p in _programs)
            for (int i = 0; i < p.Steps.Length; i++)
                if (ReferenceEquals(p.Steps[i], s)) p.Hot[i] = Hot.Of(s, i, p.LoopStart, p.LoopEnd);
    }

    // Not inlined into the kernel's RunGuest, though that counted 12 instructions fewer per exit: the replay guest stands
    // in for the hardware, and bench/instructions.sh's "kernel's part" is summed by function name.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    public void Run(int v, ref ExitRecord exit)
    {
        var p = _programs[v];
        var hot = p.Hot;
        ref var c = ref _at[v];
        // A step retired and advanced left RIP at the next step's (Advance): only otherwise (the first run, a REP resumed,
        // a poll looping, a HLT, a problem) is RIP checked against the step.
        bool placed = c.Issued && Retire(v, ref c, p);
        int at = c.Step;
        if ((uint)at >= (uint)hot.Length) { Stop(ref exit); return; }
        ref readonly var h = ref hot[at];
        if (!placed && state.Rip(v) is var rip && rip != h.Rip) { DesyncAt(v, p.Steps[at], rip); Stop(ref exit); return; }

        var extra = h.Needs;
        // Varies implies a register to move and a span that is not 0 (ExtrasOf).
        ulong offset = (extra & Extra.Varies) != 0 ? Step.OffsetAt(c.Iteration, h.VaryStride, h.VarySpan, h.VaryRandom) : 0;
        // A REP the kernel stopped part-way re-executes with the registers it left (the count resumes).
        if (!c.Resume)
        {
            if (h.Reg0 >= 0) state.Gpr(v, h.Reg0) = h.Value0 + (offset & h.Vary0);
            if (h.Reg1 >= 0) state.Gpr(v, h.Reg1) = h.Value1 + (offset & h.Vary1);
            if ((extra & Extra.MorePresets) != 0) MorePresets(v, p.Steps[at], offset);
        }
        if ((extra & Extra.SetsState) != 0) SetState(v, p.Steps[at], c.Resume);
        c.Resume = false;
        c.Issued = true;
        exit = h.Exit;
        exit.Gpa += offset & h.GpaVaries;
    }

    static void Stop(ref ExitRecord exit)
    {
        exit = default;
        exit.Reason = ExitReason.Shutdown;
    }

    /// <summary>A step's presets past the first two (<see cref="Extra.MorePresets"/>). Out of line: few steps have any.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    void MorePresets(int v, Step s, ulong offset)
    {
        foreach (var (reg, value) in s.Presets.AsSpan(2)) state.Gpr(v, reg) = value + (reg == s.VaryReg ? offset : 0);
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

    /// <summary>What happened to the issued step: move on (true: RIP is at the next step's), loop, or count a problem.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]   // its one caller is Run
    bool Retire(int v, ref Cursor c, Loaded p)
    {
        c.Issued = false;
        ref readonly var h = ref p.Hot[c.Step];
        // The hardware's own view of the fields (no TDCALL charged): direct reads, not the by-id switch.
        ulong pe = state.PeekPendingEvent(v);
        if ((pe & (1UL << 31)) != 0 && TookEvent(v, ref c, p, pe)) return true;
        ulong rip = state.Rip(v);
        if (h.Kind == StepKind.WaitIrq)
        {
            if (rip != h.Rip + h.Exit.InstructionLength) Problem(v, p.Steps[c.Step], ProblemKind.HltResumed, rip, 0);
            return false;   // halted; the interrupt that ends the wait arrives as a pending event
        }
        if (rip == h.Rip && (h.Exit.Flags & ExitFlags.Rep) != 0 && (state.Gpr(v, 1) & 0xFFFF_FFFF) != 0)
        {
            RepResumes++;
            c.Resume = true;
            return false;   // the same step again: the guest re-executes the REP instruction
        }
        if (rip != h.End) { Problem(v, p.Steps[c.Step], ProblemKind.WrongRip, rip, h.End); return false; }
        if ((h.Needs & Extra.Checks) != 0 && !Checked(v, p.Steps[c.Step])) return false;
        Advance(v, ref c, p);
        return true;
    }

    /// <summary>
    /// The pending event the kernel left (valid bit set): an exception the guest's handler deals with (the step retires
    /// after it), or an interrupt whose ISR runs and returns (it ends a HLT wait; otherwise the step retires as usual).
    /// True when the step retired here. Out of line: few exits leave one.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    bool TookEvent(int v, ref Cursor c, Loaded p, ulong pe)
    {
        var s = p.Steps[c.Step];
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
            Advance(v, ref c, p);
            return true;
        }
        InterruptsSeen++;
        lock (Interrupts) if (Interrupts.Count < 64) Interrupts.Add((s.Text, (byte)pe));
        if (s.Kind != StepKind.WaitIrq) return false;
        Advance(v, ref c, p);
        return true;
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
    void Advance(int v, ref Cursor c, Loaded p)
    {
        int next = c.Step + 1;
        if (next == p.LoopEnd && p.LoopEnd > p.LoopStart && ++c.Iteration < p.Iterations) next = p.LoopStart;
        var hot = p.Hot;
        state.Rip(v) = (uint)next < (uint)hot.Length ? hot[next].Rip : p.Steps[c.Step].Next;
        c.Step = next;
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

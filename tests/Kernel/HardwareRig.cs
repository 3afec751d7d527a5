using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Hot.State;
using Copra.Kernel.Backends;
using Copra.Kernel.Exit;
using Copra.Kernel.Run;
using Iced.Intel;

namespace Copra.Tests.Kernel;

/// <summary>One exit the hardware reports for an instruction: what KVM's record says (reason, GPA or port, size, direction, a write's data).</summary>
internal readonly record struct HwSide(ExitReason Reason, ulong Gpa, byte Size, bool Write, ulong Data = 0, ushort Port = 0)
{
    /// <summary>KVM's data buffer for a read holds whatever was there: a read's record carries this stale value.</summary>
    public const ulong Stale = 0xBAD0_BAD0_BAD0_BAD0;
    public static HwSide Read(ulong gpa, byte size) => new(ExitReason.Mmio, gpa, size, false, Stale);
    public static HwSide Store(ulong gpa, byte size, ulong data) => new(ExitReason.Mmio, gpa, size, true, data);
    public static HwSide In(ushort port, byte size) => new(ExitReason.Io, 0, size, false, Stale, port);
    public static HwSide Out(ushort port, byte size, ulong data) => new(ExitReason.Io, 0, size, true, data, port);

    /// <summary>
    /// Registers and RFLAGS as the hardware has left them when it reports this side: KVM reports a read-modify-write's
    /// write after the instruction's own register and flag writes (XCHG's register, XADD's source, ADC's flags).
    /// </summary>
    public (int Reg, ulong Value)[]? Regs { get; init; }
    public ulong? Rflags { get; init; }
}

/// <summary>What the kernel made of one hardware exit: the step, the mismatch counters it added, and what it handed back (null: nothing, e.g. a fault).</summary>
internal sealed record HwOutcome(string Text, long Address, long Size, long Direction, long Data, long Decode, ulong? HandedBack)
{
    public long Mismatches => Address + Size + Direction + Data;
    public override string ToString() => $"{Text}: addr {Address} size {Size} dir {Direction} data {Data} decode {Decode} handed back {(HandedBack is { } h ? $"0x{h:x}" : "nothing")}";
}

/// <summary>
/// The hardware-completes pipeline (hot/Exit/ExitPipeline.Hardware.cs) without /dev/kvm, for any instruction: a backend
/// that plays KVM's part over a one-vCPU replay guest in long mode (the replay workload's page tables: RAM at
/// <see cref="VmLayout.Data"/>, the test device at <see cref="Dev"/>, the UART at 0x3F8). Each instruction is given with the
/// exits the hardware reports for it, in order (an ALU or XCHG on a device: the read, then the write, at one RIP); each is
/// flagged <see cref="ExitFlags.HardwareCompletes"/> and carries the record the test wrote, however wrong. The backend moves
/// RIP past the instruction when the kernel hands back its last side (as KVM does at the next KVM_RUN) and notes, per exit,
/// the mismatch counters the kernel's check added and the value it handed back.
/// </summary>
internal sealed class HardwareRig : IDisposable
{
    public const ulong Dev = 0xFEB0_0000;
    public const ushort UartScratch = 0x3F8 + 7;
    public readonly CopraSystem Sys;
    public readonly VmLayout Layout;
    readonly Kvm _kvm;

    public ReplayBackend Replay => _kvm.Replay;
    public IReadOnlyList<HwOutcome> Outcomes => _kvm.Outcomes;
    public ExitStats Stats => Sys.Kernel.Stats;
    public GuestMemory Memory => Sys.Kernel.Memory;
    public ulong Data => Layout.Data;

    /// <summary>
    /// Boots with the instructions <paramref name="build"/> adds (text, code, registers set before it, its exits).
    /// <paramref name="hardware"/> false: the exits are the kernel-emulated kind (the kernel completes them; one side each).
    /// <paramref name="map"/> adds mappings to the guest's page tables (e.g. a read-only alias of the device).
    /// </summary>
    public HardwareRig(Action<Builder> build, bool hardware = true, Action<PageTableBuilder>? map = null)
    {
        Kvm? kvm = null;
        VmLayout? layout = null;
        var sc = Scenario.Default() with { Vms = [new VmScenario(Vcpus: 1)] };
        Sys = new CopraSystem(sc, backend: (k, layouts) =>
        {
            var l = layout = layouts[0];
            var wb = new WorkloadBuilder(k.Memory, l);
            map?.Invoke(wb.Tables);
            var b = new Builder(new GuestBuilder(k.Memory), l.Code, l);
            build(b);
            var p = b.Program();
            wb.InitialState(p.EntryRip, 0).ApplyTo(k.State, 0);
            k.State.OnEntry(0);
            kvm = new Kvm(k.State, new ReplayBackend(k.State, [p]), b.Sides, () => k.Stats, hardware);
            return kvm;
        });
        _kvm = kvm!;
        Layout = layout!;
    }

    /// <summary>Runs to the end; the replay must have seen RIP where the hardware left it after every exit.</summary>
    public void Run()
    {
        var r = Sys.Run();
        if (!r.Quiescent) throw new InvalidOperationException("the run did not end quiescent");
        if (Replay.Desyncs != 0 || Replay.DataMismatches != 0) throw new InvalidOperationException(string.Join("\n", Replay.Problems));
        _kvm.Flush();
    }

    public void Dispose() => Sys.Dispose();

    public sealed class Builder(GuestBuilder gb, ulong code, VmLayout layout)
    {
        public readonly VmLayout Layout = layout;
        internal readonly List<(Step Step, HwSide Side, bool Last)> Sides = [];
        readonly List<Step> _steps = [];
        ulong _rip = code;

        /// <summary>An instruction and the hardware's exits for it; <paramref name="state"/> presets state fields (RFLAGS, FCW, ...).</summary>
        public void Add(string text, Action<Assembler> insn, (int Reg, ulong Value)[] regs, HwSide[] sides, (ulong Field, ulong Value)[]? state = null)
        {
            var asm = new Assembler(64);
            insn(asm);
            var assembled = gb.Assemble(_rip, _rip, asm);
            int length = (int)(assembled.End - _rip);
            for (int i = 0; i < sides.Length; i++)
            {
                var s = sides[i];
                bool last = i == sides.Length - 1;
                var step = new Step
                {
                    Kind = StepKind.Access, Rip = _rip, Length = length, Text = sides.Length > 1 ? $"{text} #{i}" : text,
                    Reason = s.Reason, Gpa = s.Gpa, Port = s.Port, Size = s.Size, Flags = s.Write ? ExitFlags.Write : 0,
                    Presets = regs, StatePresets = state ?? [],
                    // Not the last side: the hardware has not finished the instruction, RIP stays.
                    ExpectRip = last ? null : _rip,
                };
                step.Next = last ? assembled.End : _rip;
                _steps.Add(step);
                Sides.Add((step, s, last));
            }
            _rip = assembled.End;
        }

        internal ReplayProgram Program()
        {
            var asm = new Assembler(64);
            asm.hlt();
            var hc = gb.Assemble(_rip, _rip, asm);
            var p = new ReplayProgram { Iterations = 1 };
            p.Steps.AddRange(_steps);
            p.Steps.Add(new Step { Kind = StepKind.Halt, Rip = _rip, Length = (int)(hc.End - _rip), Next = hc.End, Reason = ExitReason.Hlt, ClearIf = true, Text = "hlt" });
            p.LoopStart = p.LoopEnd = p.Steps.Count;
            return p;
        }
    }

    /// <summary>KVM's part: issues each side with the test's record, flagged hardware-completes; finishes the instruction on its last side's CompleteAccess.</summary>
    sealed class Kvm(VcpuStateStore state, ReplayBackend replay, List<(Step Step, HwSide Side, bool Last)> sides, Func<ExitStats> stats, bool hardware) : IGuestBackend
    {
        public readonly ReplayBackend Replay = replay;
        public readonly List<HwOutcome> Outcomes = [];
        int _next;
        int _current = -1;
        ulong? _handedBack;
        long[] _before = new long[5];
        public string Name => "fake-kvm";

        long[] Snapshot()
        {
            var s = stats();
            return [s.MismatchAddress, s.MismatchSize, s.MismatchDirection, s.MismatchData, s.DecodeMismatch];
        }

        public void Flush()
        {
            if (_current < 0) return;
            var now = Snapshot();
            Outcomes.Add(new HwOutcome(sides[_current].Step.Text, now[0] - _before[0], now[1] - _before[1], now[2] - _before[2], now[3] - _before[3], now[4] - _before[4], _handedBack));
            _current = -1;
        }

        public void Run(int vcpu, ref ExitRecord exit)
        {
            Flush();
            Replay.Run(vcpu, ref exit);
            if (exit.Reason is not (ExitReason.Mmio or ExitReason.Io)) return;
            _current = _next++;
            _before = Snapshot();
            _handedBack = null;
            if (!hardware) return;
            exit.Flags |= ExitFlags.HardwareCompletes;
            exit.Data = sides[_current].Side.Data;
            if (sides[_current].Side.Regs is { } regs) foreach (var (r, x) in regs) state.Gpr(vcpu, r) = x;
            if (sides[_current].Side.Rflags is { } fl) state.Rflags(vcpu) = fl;
        }

        public void CompleteAccess(int vcpu, ulong readValue)
        {
            _handedBack = readValue;
            var (_, _, last) = sides[_current];
            if (last) state.Rip(vcpu) += (ulong)sides[_current].Step.Length;
        }

        public void Dispose() { }
    }
}

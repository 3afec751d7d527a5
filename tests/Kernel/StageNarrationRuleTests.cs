using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Hot.State;
using Copra.Kernel.Backends;
using Copra.Kernel.Core;
using Copra.Kernel.Exit;
using Copra.Kernel.Run;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// What <c>copra trace</c> tells of the fault and stack stages (hot/Exit/ExitPipeline.Faults.cs ElementFaults and
/// SingleStepTrap, ExitPipeline.Stack.cs StackAfterRead and StackTranslate): each refusal or stack write is narrated in
/// the followed exit's lines, and the single-step trap is a Fault record (vector 1) in the kernel's trace. Through the
/// replay guest in 32-bit protected mode (no paging), with a tracer that follows every exit and the trace's records kept.
/// </summary>
public sealed class StageNarrationRuleTests
{
    const ulong Dev = 0xFEB0_0000;
    const ulong Cr0Pe32 = GuestCpuState.Cr0Pe | GuestCpuState.Cr0Mp | GuestCpuState.Cr0Et | GuestCpuState.Cr0Ne | GuestCpuState.Cr0Wp;
    const ushort ReadOnlyData = 0x1 | SegmentAttributes.S | SegmentAttributes.P | SegmentAttributes.Db | SegmentAttributes.G;

    internal sealed class Every : IExitTracer
    {
        public readonly List<string> Lines = [];
        public bool Follow(int vcpu, long ordinal) => true;
        public bool Narrates => true;
        public void Step(int vcpu, string text) => Lines.Add(text);
        public void Mark(Cpu cpu, long clock, TraceKind kind, int vcpu, long a) { }
    }

    internal static (ulong, ulong)[] Flat(ulong rflags = 0x2) =>
    [
        (StateField.Seg(StateField.Cs, StateField.Limit), 0xFFFF_FFFF),
        (StateField.Seg(StateField.Ds, StateField.Attributes), SegmentAttributes.Data),
        (StateField.Rflags, rflags), (StateField.Cr0, Cr0Pe32),
    ];

    [Fact]
    public void A_fault_check_a_single_step_trap_and_the_stack_stages_are_told_in_the_followed_exits_lines()
    {
        Step? push = null, call = null, slot = null;
        ulong top = 0;
        using var sys = Boot((r, l) =>
        {
            top = l.StackTop(0);
            r.Add("mov [ebx+8], eax (DS read-only)", a => a.mov(__dword_ptr[ebx + 8], eax), ExitReason.Mmio, Dev + 8, 4, true, [(3, Dev), (0, 0x1234)],
                [.. Flat(), (StateField.Seg(StateField.Ds, StateField.Attributes), ReadOnlyData)]);
            r.Add("mov eax, [ebx] (TF)", a => a.mov(eax, __dword_ptr[ebx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], Flat(0x2 | 1UL << 8));
            r.Add("mov dword [ebx+8], 0x01000000", a => a.mov(__dword_ptr[ebx + 8], 0x0100_0000), ExitReason.Mmio, Dev + 8, 4, true, [(3, Dev)], Flat());
            push = r.Add("push dword [ebx+8]", a => a.push(__dword_ptr[ebx + 8]), ExitReason.Mmio, Dev + 8, 4, false, [(3, Dev), (4, top)], Flat());
            push.ExpectFields = [(4, top - 4, 0xFFFF_FFFF)];
            call = r.Add("call dword [ebx+8] (past CS's limit)", a => a.call(__dword_ptr[ebx + 8]), ExitReason.Mmio, Dev + 8, 4, false, [(3, Dev), (4, top)],
                [.. Flat(), (StateField.Seg(StateField.Cs, StateField.Limit), 0x00FF_FFFF)]);
            call.ExpectFields = [(4, top, 0xFFFF_FFFF)];
            slot = r.Add("push dword [ebx+8] (ESP on the device)", a => a.push(__dword_ptr[ebx + 8]), ExitReason.Mmio, Dev + 8, 4, false, [(3, Dev), (4, Dev + 0x100)], Flat());
        }, out var t);
        Assert.True(sys.Run().Quiescent);
        Assert.True(sys.Replay!.Desyncs == 0 && sys.Replay.DataMismatches == 0, string.Join("\n", sys.Replay.Problems));
        var l = t.Lines;
        Assert.Contains(l, s => s.StartsWith("fault check: ", StringComparison.Ordinal) && s.EndsWith("; nothing reaches a device", StringComparison.Ordinal));
        Assert.True(sys.Kernel.State.TryPeek(0, StateField.Dr6, out ulong dr6));
        Assert.Contains($"RFLAGS.TF: single-step #DB pending, DR6 0x{dr6:x}", l);
        Assert.Contains($"stack: 0x1000000 pushed at GPA 0x{top - 4:x}, RSP now 0x{top - 4:x}", l);
        Assert.Contains("branch target 0x1000000 refused: #GP(0), nothing pushed", l);
        Assert.Contains($"stack slot at GPA 0x{Dev + 0xFC:x} is not RAM: #GP(0)", l);
        // The trap is in the kernel's trace as the CPU's Fault record for vCPU 0, vector 1 (#DB); the refusals are vector 13.
        var faults = sys.Kernel.Trace.Records.Where(x => x.Kind == TraceKind.Fault).Select(x => (x.A, x.B)).ToArray();
        Assert.Contains((0L, 1L), faults);
        Assert.Equal(3, faults.Count(f => f == (0L, 13L)));
        Assert.Equal(3, sys.Replay.Exceptions.Count(e => (byte)e.Event == 13));
    }

    /// <summary>One vCPU in flat 32-bit protected mode (no paging), a tracer following every exit, the trace's records kept.</summary>
    internal static CopraSystem Boot(Action<ReplayRig, VmLayout> build, out Every tracer)
    {
        var sc = Scenario.Default() with { Vms = [new VmScenario(Vcpus: 1)] };
        var sys = new CopraSystem(sc, keepTrace: true, backend: (k, layouts) =>
        {
            var l = layouts[0];
            var gb = new GuestBuilder(k.Memory);
            gb.WriteGdt(l.Gdt);
            var start = GuestCpuState.ProtectedMode(PagingKind.None, 0, l.Gdt, (uint)l.Code, (uint)l.StackTop(0));
            var rig = new ReplayRig(gb, l.Code, 32);
            build(rig, l);
            start.ApplyTo(k.State, 0);
            k.State.OnEntry(0);
            return new ReplayBackend(k.State, [rig.Program()]);
        });
        tracer = new Every();
        sys.Kernel.Tracer = tracer;
        return sys;
    }
}

using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Kernel.Backends;
using Copra.Kernel.Run;
using Copra.User.Programs;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// The common completion (Kernel.Devices.cs CompleteIfDone, ExitPipeline.EndsPlain / PlainDone): a device's answer to a
/// plain MOV load or store, IN or OUT, untimed and unfollowed, on its vCPU's own CPU, ends the instruction without the
/// general completion; every other answer (here a read-modify-write's two) takes the general one. A long-mode replay
/// guest loops over the five forms (the replay checks each load's value and every RIP), one exit in 16 timed as a run's.
/// </summary>
public sealed class CommonCompletionRuleTests
{
    const ulong Dev = 0xFEB0_0000, Scratch = Dev + 0x08;
    const ushort UartScratch = 0x3F8 + 7;   // the UART model's scratch register (reads back what was written)
    const int Iterations = 8;

    [Fact]
    public void Plain_loads_stores_ins_and_outs_end_without_the_general_completion_and_a_read_modify_write_takes_it()
    {
        Step? add = null;
        var sc = Scenario.Default() with { Vms = [new VmScenario(Vcpus: 1)] };
        using var sys = new CopraSystem(sc, backend: (k, layouts) =>
        {
            var l = layouts[0];
            var start = new WorkloadBuilder(k.Memory, l).InitialState(l.Code, 0);
            var r = new ReplayRig(new GuestBuilder(k.Memory), l.Code, 64);
            r.Add("mov [rbx], eax (the scratch register)", a => a.mov(__dword_ptr[rbx], eax), ExitReason.Mmio, Scratch, 4, true, [(3, Scratch), (0, 0x1234)], []);
            r.Add("mov eax, [rbx]", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Scratch, 4, false, [(3, Scratch), (0, 0)], [], expect: 0x1234);
            r.Add("out dx, al", a => a.@out(dx, al), ExitReason.Io, 0, 1, true, [(2, UartScratch), (0, 0x5A)], [], port: UartScratch);
            r.Add("in al, dx", a => a.@in(al, dx), ExitReason.Io, 0, 1, false, [(2, UartScratch), (0, 0)], [], port: UartScratch, expect: 0x5A);
            add = r.Add("add [rbx], eax", a => a.add(__dword_ptr[rbx], eax), ExitReason.Mmio, Scratch, 4, false, [(3, Scratch), (0, 1)], []);
            start.ApplyTo(k.State, 0);
            k.State.OnEntry(0);
            var p = r.Program();
            p.LoopStart = 0; p.LoopEnd = 5; p.Iterations = Iterations;
            return new ReplayBackend(k.State, [p]);
        });
        var k = sys.Kernel;
        var general = new List<(ulong Rip, bool Timed)>();
        k.OnGeneralCompletion = v => general.Add((k.State.Rip(v), k.ExitInFlight.Row[v].Timed));
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(6 * Iterations, k.Stats.DeviceRoundTrips);   // four plain accesses and the add's two per iteration
        // Every answer to the add takes the general completion; a plain access's only when its exit was timed (one in 16,
        // drawn), so most of the 32 plain answers never reach it.
        Assert.Equal(2 * Iterations, general.Count(g => g.Rip == add!.Rip));
        var plain = general.Where(g => g.Rip != add!.Rip).ToList();
        Assert.All(plain, g => Assert.True(g.Timed, $"an untimed plain access at 0x{g.Rip:x} took the general completion"));
        Assert.True(plain.Count < 2 * Iterations, $"{plain.Count} of {4 * Iterations} plain answers took the general completion");
    }
}

using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Kernel.Backends;
using Copra.Kernel.Exit;
using Copra.Kernel.Run;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// What a guest sees of the host behind forwarded exits (nobody registered the port or address, the VM forwards):
/// the POST-code port, the CMOS index/data pair, the scratch MMIO page, and all-ones from an unknown port. Driven
/// through the replay exit path, so each value is the one the guest's RAX holds after its instruction.
/// </summary>
public class ForwardedHostTests
{
    const ulong Scratch = ModelledHost.ScratchBase;

    sealed record Op(string Hex, ExitReason Reason, ulong Rax, ushort Port = 0, ulong Gpa = 0, byte Size = 1,
        bool Write = false, ulong? Expect = null, ulong Rbx = 0);

    static CopraSystem Run(params Op[] ops)
    {
        var sc = Scenario.Default() with { Vms = [new VmScenario(Vcpus: 1)] };
        return new CopraSystem(sc, backend: (k, layouts) =>
        {
            var l = layouts[0];
            var wb = new WorkloadBuilder(k.Memory, l);
            ulong rip = l.Code;
            var p = new ReplayProgram { Iterations = 1 };
            foreach (var op in ops)
            {
                byte[] bytes = Convert.FromHexString(op.Hex.Replace(" ", "", StringComparison.Ordinal));
                k.Memory.Write(rip, bytes);
                var s = new Step
                {
                    Kind = StepKind.Access, Rip = rip, Length = bytes.Length, Text = op.Hex, Reason = op.Reason,
                    Port = op.Port, Gpa = op.Gpa, Size = op.Size, Flags = op.Write ? ExitFlags.Write : ExitFlags.None,
                    Presets = [(0, op.Rax), (3, op.Rbx)], StatePresets = [], ExpectRax = op.Expect,
                    ExpectMask = op.Size >= 8 ? ulong.MaxValue : (1UL << (op.Size * 8)) - 1,
                };
                rip += (ulong)bytes.Length;
                s.Next = rip;
                p.Steps.Add(s);
            }
            k.Memory.WriteU8(rip, 0xF4);
            var hlt = new Step { Kind = StepKind.Halt, Rip = rip, Length = 1, Reason = ExitReason.Hlt, ClearIf = true, Text = "hlt" };
            hlt.Next = rip + 1;
            p.Steps.Add(hlt);
            p.LoopStart = p.LoopEnd = p.Steps.Count;
            wb.InitialState(l.Code, 0).ApplyTo(k.State, 0);
            k.State.OnEntry(0);
            return new ReplayBackend(k.State, [p]);
        });
    }

    static void AssertClean(CopraSystem sys, int requests)
    {
        Assert.True(sys.Run().Quiescent);
        var r = sys.Replay!;
        Assert.True(r.Desyncs == 0 && r.DataMismatches == 0, string.Join("\n", r.Problems));
        Assert.Empty(r.Exceptions);
        Assert.Equal(requests, sys.Kernel.Host.Requests);
        Assert.Equal(0, sys.Kernel.InternalErrors);
    }

    [Fact]
    public void The_CMOS_pair_keeps_a_byte_per_index_and_ignores_the_NMI_mask_bit_of_the_index()
    {
        using var sys = Run(
            new Op("e6 70", ExitReason.Io, 0x0A, Port: 0x70, Write: true),          // out 0x70, al: index 0x0A
            new Op("e6 71", ExitReason.Io, 0x5A, Port: 0x71, Write: true),          // out 0x71, al: CMOS[0x0A] = 0x5A
            new Op("e6 70", ExitReason.Io, 0x0B, Port: 0x70, Write: true),          // index 0x0B
            new Op("e6 71", ExitReason.Io, 0xA5, Port: 0x71, Write: true),          // CMOS[0x0B] = 0xA5
            new Op("e6 70", ExitReason.Io, 0x8A, Port: 0x70, Write: true),          // index 0x0A with bit 7 (NMI off) set
            new Op("e4 70", ExitReason.Io, 0, Port: 0x70, Expect: 0x0A),             // in al, 0x70: the index, bit 7 dropped
            new Op("e4 71", ExitReason.Io, 0, Port: 0x71, Expect: 0x5A));            // in al, 0x71: CMOS[0x0A], not [0x0B]
        AssertClean(sys, 7);
    }

    [Fact]
    public void The_POST_code_port_keeps_the_last_byte_written_and_an_unknown_port_reads_all_ones()
    {
        using var sys = Run(
            new Op("e6 80", ExitReason.Io, 0x1242, Port: 0x80, Write: true),        // out 0x80, al: AL = 0x42
            new Op("e4 80", ExitReason.Io, 0, Port: 0x80, Expect: 0x42),
            new Op("e6 60", ExitReason.Io, 0x33, Port: 0x60, Write: true),          // dropped
            new Op("e4 60", ExitReason.Io, 0, Port: 0x60, Expect: 0xFF),
            new Op("66 e5 60", ExitReason.Io, 0, Port: 0x60, Size: 2, Expect: 0xFFFF));   // in ax, 0x60
        AssertClean(sys, 5);
        Assert.Equal(0x42, sys.Kernel.Host.LastPostCode);
    }

    [Fact]
    public void The_scratch_page_keeps_what_is_written_up_to_its_last_byte()
    {
        ulong last = Scratch + ModelledHost.ScratchLength - 4;
        using var sys = Run(
            new Op("89 03", ExitReason.Mmio, 0x1122_3344, Gpa: last, Size: 4, Write: true, Rbx: last),   // mov [rbx], eax
            new Op("8b 03", ExitReason.Mmio, 0, Gpa: last, Size: 4, Expect: 0x1122_3344, Rbx: last),        // mov eax, [rbx]
            new Op("8a 03", ExitReason.Mmio, 0, Gpa: last + 1, Size: 1, Expect: 0x33, Rbx: last + 1));      // mov al, [rbx]
        AssertClean(sys, 3);
    }
}

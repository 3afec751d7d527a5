using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Kernel.Backends;
using Copra.Kernel.Run;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// An exit whose instruction bytes end at a page boundary with the next page missing, through the replay exit path:
/// the guest gets #UD when the bytes it has already make the opcode undefined (the CPU never needs the missing page),
/// and the fetch's #PF when the next byte could still complete a defined instruction. The fallback count
/// (ExitStats.IcedFallbacks) says which decoder decided: the #UD after asking Iced, the #PF from the tables' refusal alone.
/// </summary>
public class UndefinedOpcodeFetchTests
{
    const ulong Dev = 0xFEB0_0000;

    /// <summary>vCPU 0 at <paramref name="rip"/>: one MMIO exit there (its bytes as the test placed them), then HLT at
    /// <paramref name="halt"/> with interrupts off.</summary>
    static ReplayBackend AccessThenHalt(Copra.Kernel.Core.Kernel k, WorkloadBuilder wb, ulong rip, int length, string text, ulong halt)
    {
        var access = new Step
        {
            Kind = StepKind.Access, Rip = rip, Length = length, Text = text,
            Reason = ExitReason.Mmio, Gpa = Dev, Size = 4, Flags = 0, Presets = [], StatePresets = [],
        };
        access.Next = rip + (ulong)length;
        var hlt = new Step { Kind = StepKind.Halt, Rip = halt, Length = 1, Reason = ExitReason.Hlt, ClearIf = true, Text = "hlt" };
        hlt.Next = halt + 1;
        var p = new ReplayProgram { Iterations = 1 };
        p.Steps.Add(access);
        p.Steps.Add(hlt);
        p.LoopStart = p.LoopEnd = p.Steps.Count;
        wb.InitialState(rip, 0).ApplyTo(k.State, 0);
        k.State.OnEntry(0);
        return new ReplayBackend(k.State, [p]);
    }

    static (CopraSystem Sys, ulong Rip) RunAtPageEnd(byte[] tail)
    {
        ulong rip = 0;
        var sc = Scenario.Default() with { Vms = [new VmScenario(Vcpus: 1)] };
        var sys = new CopraSystem(sc, backend: (k, layouts) =>
        {
            var l = layouts[0];
            var wb = new WorkloadBuilder(k.Memory, l);
            ulong page = ((l.Code + 0xFFF) & ~0xFFFUL) + 0x1000;   // identity-mapped 4 KiB code pages
            rip = page - (ulong)tail.Length;
            k.Memory.Write(rip, tail);
            ulong pte = wb.Tables.EntryAddress(page, 1);
            k.Memory.WriteU64(pte, k.Memory.ReadU64(pte) & ~1UL);   // the next page: not present
            ulong halt = page + 0x1000;
            k.Memory.WriteU8(halt, 0xF4);
            return AccessThenHalt(k, wb, rip, tail.Length, "the bytes at the page end", halt);
        });
        Assert.True(sys.Run().Quiescent);
        return (sys, rip);
    }

    [Theory]
    [InlineData("06")]      // PUSH ES: undefined in 64-bit mode
    [InlineData("d6")]      // SALC: undefined in 64-bit mode
    [InlineData("f0 06")]   // LOCK on it changes nothing
    public void An_opcode_the_fetched_bytes_already_make_undefined_is_UD_not_a_fetch_fault(string hex)
    {
        using var run = RunAtPageEnd(Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal))).Sys;
        var r = run.Replay!;
        Assert.True(r.Desyncs == 0, string.Join("\n", r.Problems));
        var e = Assert.Single(r.Exceptions);
        Assert.Equal(6UL, e.Event & 0xFF);
        Assert.Equal(0, r.ExceptionsByVector[14]);
        Assert.Equal(0, run.Kernel.Stats.DeviceRoundTrips);
        Assert.Equal(0, run.Kernel.InternalErrors);
        // The tables refused the opcode, so Iced was asked once (FetchAndDecode counts each fallback) before the #UD.
        Assert.Equal(1, run.Kernel.Stats.IcedFallbacks);
    }

    [Theory]
    [InlineData("8b")]      // MOV r32, r/m32: the ModRM is on the missing page
    [InlineData("0f")]      // an escape: the opcode itself is on the missing page
    [InlineData("fe")]      // FE: /0 and /1 are defined, so the ModRM decides
    public void An_instruction_the_next_byte_could_still_complete_is_the_fetchs_page_fault(string hex)
    {
        var (sys, rip) = RunAtPageEnd(Convert.FromHexString(hex));
        using var _ = sys;
        var r = sys.Replay!;
        Assert.True(r.Desyncs == 0, string.Join("\n", r.Problems));
        var e = Assert.Single(r.Exceptions);
        Assert.Equal(14UL, e.Event & 0xFF);
        Assert.True(sys.Kernel.State.TryPeek(0, Copra.Abi.StateField.Cr2, out ulong cr2));
        Assert.Equal(rip + 1, cr2);   // the first byte of the missing page
        Assert.Equal(0, sys.Kernel.Stats.DeviceRoundTrips);
        // The tables' Truncated refusal with the fetch's fault in hand is the fault at once: Iced is not asked.
        Assert.Equal(0, sys.Kernel.Stats.IcedFallbacks);
    }

    /// <summary>
    /// An instruction whose bytes run from the last canonical page (48-bit) into the non-canonical hole: the fetch of the
    /// missing bytes is refused by the walk as non-canonical, and the guest gets #GP(0), not a #PF
    /// (hot/Exit/ExitPipeline.cs InjectWalkFault's GeneralProtection answer). MOV's 8B is the page's last byte.
    /// </summary>
    [Fact]
    public void An_instruction_running_into_the_non_canonical_hole_is_GP0()
    {
        const ulong Last = 0x7FFF_FFFF_F000;
        ulong rip = Last + 0xFFF;
        var sc = Scenario.Default() with { Vms = [new VmScenario(Vcpus: 1)] };
        using var sys = new CopraSystem(sc, backend: (k, layouts) =>
        {
            var l = layouts[0];
            var wb = new WorkloadBuilder(k.Memory, l);
            ulong frame = ((l.Code + 0xFFF) & ~0xFFFUL) + 0x8000;   // a RAM page no code uses
            wb.Tables.Map(Last, frame, 0x1000, Hot.Guest.PageSize.Size4K, writable: false, executable: true);
            k.Memory.WriteU8(frame + 0xFFF, 0x8B);
            ulong halt = frame + 0x1000;
            k.Memory.WriteU8(halt, 0xF4);
            return AccessThenHalt(k, wb, rip, 2, "mov r32, r/m32 cut by the hole", halt);
        });
        Assert.True(sys.Run().Quiescent);
        var r = sys.Replay!;
        Assert.True(r.Desyncs == 0, string.Join("\n", r.Problems));
        var e = Assert.Single(r.Exceptions);
        Assert.Equal(13UL, e.Event & 0xFF);
        Assert.True((e.Event & (1 << 11)) != 0);   // an error code, and it is 0
        Assert.Equal(0U, (uint)(e.Event >> 32));
        Assert.Equal(0, r.ExceptionsByVector[14]);
        Assert.Equal(0, sys.Kernel.Stats.DeviceRoundTrips);
        Assert.Equal(0, sys.Kernel.InternalErrors);
        Assert.Equal(0, sys.Kernel.Stats.InFlight);
    }
}

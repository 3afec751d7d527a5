using Copra.Hot.Emulate;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Kernel.Backends;
using Copra.Kernel.Run;
using Copra.User.Programs;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// Rules of the plain memo's replay (hot/Exit/ExitPipeline.Plain.cs, ReplayPlain) that PlainMemoTests does not name, through
/// the real pipeline: a long-mode replay guest whose one MOV exits four times at one RIP (memoised at the third exit,
/// replayed from the fourth), on a VM that re-injects unregistered accesses (#VC on SNP).
/// </summary>
public class PlainMemoRuleTests
{
    const ulong Dev = 0xFEB0_0000;
    const int Exits = 4;
    const byte VectorVc = 29, VectorGp = 13;
    const ushort UartScratch = 0x3F8 + 7;   // the UART model's scratch register (reads back what was written)
    const ulong Cf = 1;

    /// <summary>The run raised one exception: <paramref name="vector"/>, at the instruction at <paramref name="rip"/>.</summary>
    static void OneException(CopraSystem sys, byte vector, ulong rip)
    {
        var e = Assert.Single(sys.Replay!.Exceptions);
        Assert.Equal(vector, (byte)e.Event);
        Assert.Equal(rip, e.Rip);
    }

    /// <summary>
    /// The fourth exit of the same MOV in the same context is taken by the fused stage: it derives nothing afresh, so the
    /// fault context still holds the RFLAGS status bits of the exit the memo was completed at (CF clear), though CF was
    /// set before the fourth. RFLAGS' status bits are no input of a plain MOV's checks, so the memo does not key on them;
    /// the full path would have copied CF. The load still gets the device's answer.
    /// </summary>
    [Fact]
    public void The_same_load_in_the_same_context_is_replayed_from_the_memo_and_derives_nothing_afresh()
    {
        using var sys = FaultSemanticsTests.Boot(
            (r, l) => r.Add("mov eax, [rbx] (the ID register)", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev), (0, 0)], [], expect: TestDeviceRegs.IdValue),
            longMode: true, program: p => { p.LoopStart = 0; p.LoopEnd = 1; p.Iterations = Exits; });
        var k = sys.Kernel;
        int n = 0;
        k.OnExitTaken = _ => { if (++n == Exits) k.State.Rflags(0) |= Cf; };
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(0UL, k.ExitInFlight.Fault[0].Rflags & Cf);
        Assert.Equal(Exits, k.Stats.DeviceRoundTrips);
        Assert.Equal(Exits, k.Stats.Completed);
    }

    /// <summary>
    /// The same for IN at one RIP (the port's exit kind, port and width agree): the fourth IN is replayed (the fault context
    /// keeps CF clear), reads the port and loads AL with what the OUT before the loop stored, as the three before it did.
    /// </summary>
    [Fact]
    public void The_same_in_in_the_same_context_is_replayed_from_the_memo_and_reads_its_port()
    {
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            r.Add("out dx, al (0x5a to the UART's scratch)", a => a.@out(dx, al), ExitReason.Io, 0, 1, true, [(2, UartScratch), (0, 0x5A)], [], port: UartScratch);
            r.Add("in al, dx", a => a.@in(al, dx), ExitReason.Io, 0, 1, false, [(2, UartScratch), (0, 0)], [], port: UartScratch, expect: 0x5A);
        }, longMode: true, program: p => { p.LoopStart = 1; p.LoopEnd = 2; p.Iterations = Exits; });
        var k = sys.Kernel;
        int n = 0;
        k.OnExitTaken = _ => { if (++n == 1 + Exits) k.State.Rflags(0) |= Cf; };   // the OUT, then the fourth IN
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(0UL, k.ExitInFlight.Fault[0].Rflags & Cf);
        Assert.Equal(0x5AUL, k.State.Gpr(0, 0));
        Assert.Equal(1 + Exits, k.Stats.Completed);
    }

    /// <summary>
    /// The memo keys on the port the exit reports: at a memoised OUT to an immediate port, an exit that reports another
    /// port is not the memoised instruction's; the full path compares it with the decode and refuses the disagreement
    /// (#GP(0), counted as a decode mismatch) instead of writing the decoded port.
    /// </summary>
    [Fact]
    public void An_exit_reporting_another_port_at_a_memoised_out_is_a_decode_mismatch()
    {
        Step? outb = null;
        using var sys = FaultSemanticsTests.Boot(
            (r, l) => outb = r.Add("out 0x80, al", a => a.@out(0x80, al), ExitReason.Io, 0, 1, true, [(0, 0x11)], [], port: 0x80),
            longMode: true, program: p => { p.LoopStart = 0; p.LoopEnd = 1; p.Iterations = Exits; });
        var k = sys.Kernel;
        int n = 0;
        k.OnExitTaken = _ => { if (++n == Exits - 1) { outb!.Port = 0x81; sys.Replay!.Changed(outb!); } };   // the hardware's fourth exit names port 0x81
        Assert.True(sys.Run().Quiescent);
        OneException(sys, VectorGp, outb!.Rip);
        Assert.Equal(1, k.Stats.DecodeMismatch);
        Assert.Equal(Exits - 1, k.Stats.Forwarded);
    }

    /// <summary>
    /// A replayed exit starts a new instruction: nothing of it is done yet, so an access nobody registered is re-injected
    /// (#VC) as on the full path, though the memoised instruction before it completed (and left its first-element flag
    /// cleared). The fourth exit's operand moved to the host's scratch page, which no device owns.
    /// </summary>
    [Fact]
    public void A_replayed_exit_is_a_first_element_so_an_unregistered_operand_is_reinjected_not_forwarded()
    {
        Step? load = null;
        var valid = new bool[Exits + 2];
        using var sys = Boot(r => load = r.Add("mov eax, [rbx]", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], []));
        var k = sys.Kernel;
        int n = 0;
        k.OnExitTaken = _ =>
        {
            valid[++n] = k.ExitInFlight.MemoAt(0, k.State.Rip(0)).Valid;
            if (n == Exits - 1) { load!.Gpa = VmLayout.HostScratch; sys.Replay!.Changed(load!); }   // the hardware's fourth exit names the scratch page
            if (n == Exits) k.State.Gpr(0, 3) = VmLayout.HostScratch;
        };
        Assert.True(sys.Run().Quiescent);
        Assert.True(valid[Exits]);   // the fourth exit found the memo (and took the replay)
        OneException(sys, VectorVc, load!.Rip);
        var st = k.Stats;
        Assert.Equal(1, st.Reinjected);
        Assert.Equal(0, st.Forwarded);
        Assert.Equal(Exits - 1, st.DeviceRoundTrips);
    }

    /// <summary>
    /// The memo records the device that owned its operand with the VM's range table version, and a replay takes that owner
    /// only while the table is that version: the test device's range is removed before the fourth exit (no other change,
    /// the same page and address), so the replay asks the table, finds nobody and re-injects (#VC) where the recorded
    /// owner would have answered the ID register.
    /// </summary>
    [Fact]
    public void A_replayed_load_asks_the_range_table_again_once_its_ranges_changed()
    {
        Step? load = null;
        var valid = new bool[Exits + 2];
        var owner = new int[Exits + 2];
        using var sys = Boot(r => load = r.Add("mov eax, [rbx]", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], []));
        var k = sys.Kernel;
        var table = k.Vms[0].Mmio;
        int device = 0, n = 0;
        k.OnExitTaken = exit =>
        {
            ref var m = ref k.ExitInFlight.MemoAt(0, k.State.Rip(0));
            valid[++n] = m.Valid;
            owner[n] = m.Owner;
            if (n == Exits && table.TryFind(Dev, out _, out _, out _, out device)) table.RemoveOwner(device);   // registered by now
        };
        Assert.True(sys.Run().Quiescent);
        Assert.True(valid[Exits]);   // the fourth exit found the memo (and took the replay)
        Assert.Equal(device, owner[Exits]);   // with the device it recorded
        OneException(sys, VectorVc, load!.Rip);
        Assert.Equal(1, k.Stats.Reinjected);
        Assert.Equal(Exits - 1, k.Stats.DeviceRoundTrips);
    }

    /// <summary>
    /// A replay takes the recorded owner only for an operand inside its range at the instruction's size. Before the memo
    /// records it, the test device's range is made to end mid-page (8 bytes short of its window's end, the same owner);
    /// the fourth exit's operand is on the memoised page but its dword runs 2 bytes past that end, so the replay asks the
    /// table, whose answer is a straddle (#GP(0)), where the recorded owner would have answered.
    /// </summary>
    [Fact]
    public void A_replayed_load_past_its_recorded_range_is_the_tables_straddle()
    {
        const ulong Window = Dev + 0x1000, End = Dev + 0x1FF8;
        var valid = new bool[Exits + 2];
        using var sys = Boot(r => r.Add("mov eax, [rbx]", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Window, 4, false, [(3, Window)], []));
        var k = sys.Kernel;
        var table = k.Vms[0].Mmio;
        int n = 0;
        k.OnExitTaken = exit =>
        {
            valid[++n] = k.ExitInFlight.MemoAt(0, k.State.Rip(0)).Valid;
            if (n == 1 && table.TryFind(Dev, out _, out ulong start, out _, out int device))   // registered by now
            {
                Assert.Equal(1, table.RemoveOwner(device));
                Assert.True(table.TryAdd(start, End - start, device));
            }
            if (n == Exits) k.State.Gpr(0, 3) = End - 2;   // bytes End-2 .. End+1: the memoised page, 2 past the range
        };
        Assert.True(sys.Run().Quiescent);
        Assert.True(valid[Exits]);
        var e = Assert.Single(sys.Replay!.Exceptions);
        Assert.Equal(VectorGp, (byte)e.Event);
        Assert.Equal(Exits - 1, k.Stats.DeviceRoundTrips);
    }

    /// <summary>
    /// A range shorter than the access records no owner: the test device's range is made 2 bytes long (the same owner)
    /// before the first exit, so every dword load at it straddles, the replayed fourth as the three before it (#GP(0)
    /// each, no device round trip), where an owner recorded for it would have answered the fourth.
    /// </summary>
    [Fact]
    public void A_replayed_load_wider_than_its_devices_range_is_the_tables_straddle()
    {
        const ulong Window = Dev + 0x1000;
        var valid = new bool[Exits + 2];
        using var sys = Boot(r => r.Add("mov eax, [rbx]", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Window, 4, false, [(3, Window)], []));
        var k = sys.Kernel;
        var table = k.Vms[0].Mmio;
        int n = 0;
        k.OnExitTaken = exit =>
        {
            valid[++n] = k.ExitInFlight.MemoAt(0, k.State.Rip(0)).Valid;
            if (n == 1 && table.TryFind(Dev, out _, out _, out _, out int device))   // registered by now
            {
                Assert.Equal(1, table.RemoveOwner(device));
                Assert.True(table.TryAdd(Window, 2, device));
            }
        };
        Assert.True(sys.Run().Quiescent);
        Assert.True(valid[Exits]);
        Assert.Equal(Exits, sys.Replay!.Exceptions.Count);
        Assert.All(sys.Replay.Exceptions, e => Assert.Equal(VectorGp, (byte)e.Event));
        Assert.Equal(0, k.Stats.DeviceRoundTrips);
    }

    /// <summary>
    /// A RIP-relative load replayed from the memo computes its operand from this exit's RIP plus the instruction's length,
    /// as the full path does: <c>mov eax, [rip+disp32]</c> (8B 05, 6 bytes) reads the test device's ID register through
    /// a page the guest maps near its code, four times at one RIP (the fourth replayed).
    /// </summary>
    [Fact]
    public void A_replayed_rip_relative_load_addresses_its_operand_from_the_next_instruction()
    {
        ulong near = 0;
        var valid = new bool[Exits + 2];
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            near = l.MemBase + l.MemLength + 0x100_0000;   // 16 MiB past RAM: unmapped until the paging step below
            long disp = (long)(near - (l.Code + 6));
            Assert.InRange(disp, int.MinValue, int.MaxValue);
            r.Add("mov eax, [rip+disp32] (the ID register)", a => a.db([0x8B, 0x05, .. BitConverter.GetBytes((int)disp)]), ExitReason.Mmio, Dev, 4, false, [(0, 0)], [],
                expect: TestDeviceRegs.IdValue);
        }, longMode: true, paging: (pt, mem, l) => pt.Map(l.MemBase + l.MemLength + 0x100_0000, Dev, 0x1000, PageSize.Size4K, writable: true, executable: false),
            program: p => { p.LoopStart = 0; p.LoopEnd = 1; p.Iterations = Exits; });
        var k = sys.Kernel;
        int n = 0;
        k.OnExitTaken = _ => valid[++n] = k.ExitInFlight.MemoAt(0, k.State.Rip(0)).Valid;
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.True(valid[Exits]);
        Assert.Equal(0, sys.Replay!.ExceptionsSeen);
        Assert.Equal(Exits, k.Stats.DeviceRoundTrips);
    }

    /// <summary>One vCPU in long mode (the workload's page tables), the loop of <see cref="Exits"/> iterations, re-injecting.</summary>
    static CopraSystem Boot(Action<ReplayRig> build)
    {
        var sc = Scenario.Default() with { Vms = [new VmScenario(Vcpus: 1)], Unhandled = "reinject" };
        return new CopraSystem(sc, backend: (k, layouts) =>
        {
            var l = layouts[0];
            var wb = new WorkloadBuilder(k.Memory, l);
            var start = wb.InitialState(l.Code, 0);
            var rig = new ReplayRig(new GuestBuilder(k.Memory), l.Code, 64);
            build(rig);
            start.ApplyTo(k.State, 0);
            k.State.OnEntry(0);
            var p = rig.Program();
            p.LoopStart = 0; p.LoopEnd = 1; p.Iterations = Exits;
            return new ReplayBackend(k.State, [p]);
        });
    }
}

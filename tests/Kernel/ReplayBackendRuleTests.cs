using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.State;
using Copra.Kernel.Backends;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// The replay backend's own rules, driven directly (the kernel's part played here: RIP moved past each instruction):
/// a program run past its last step shuts its vCPU down; a RIP the program did not leave is a desync, counted and
/// noted, and shuts the vCPU down; the address pattern moves only inside the loop; a step that sets IF leaves it set;
/// an exit that is not an access reports no GPA; every register preset is set wherever the pattern's register is in the
/// list; a HLT left unfinished or a halted guest entered without an interrupt is a desync; an access left at its own RIP
/// is a desync unless it is a REP with count left; exceptions and interrupts are all counted and the first 64 kept. The
/// suites only ever see the backend's good path (they require no desyncs), so these are what would catch a broken oracle.
/// </summary>
public class ReplayBackendRuleTests
{
    const ulong Window = 0xFEB0_1000, Base = 0x10_0000;

    static Step Access(ulong rip, int reg = 6, ulong stride = 0, ulong span = 0)
    {
        var s = new Step
        {
            Kind = StepKind.Access, Rip = rip, Length = 3, Text = $"mov ecx, [r{reg}] at 0x{rip:x}", Reason = ExitReason.Mmio,
            Gpa = Window, Size = 4, Presets = [(reg, Window)], VaryReg = span == 0 ? -1 : reg, VaryStride = stride, VarySpan = span,
        };
        s.Next = rip + 3;
        return s;
    }

    static (VcpuStateStore State, ReplayBackend Backend) Load(Step[] steps, int loopStart, int loopEnd, long iterations)
    {
        var state = new VcpuStateStore(1, StateAccessCost.Snp);
        var p = new ReplayProgram { Iterations = iterations, LoopStart = loopStart, LoopEnd = loopEnd };
        p.Steps.AddRange(steps);
        state.Rip(0) = steps[0].Rip;
        return (state, new ReplayBackend(state, [p]));
    }

    [Fact]
    public void A_program_run_past_its_last_step_shuts_the_vcpu_down_and_leaves_rip_after_it()
    {
        var steps = new[] { Access(Base), Access(Base + 3) };
        var (state, backend) = Load(steps, loopStart: 2, loopEnd: 2, iterations: 1);
        var exit = new ExitRecord();
        for (int i = 0; i < 2; i++)
        {
            backend.Run(0, ref exit);
            Assert.Equal(ExitReason.Mmio, exit.Reason);
            state.Rip(0) += 3;
        }
        // The record is reused, as the kernel reuses its: the shutdown must be written, not left from the last access.
        backend.Run(0, ref exit);
        Assert.Equal(ExitReason.Shutdown, exit.Reason);
        Assert.Equal(steps[1].Next, state.Rip(0));
        backend.Run(0, ref exit);   // again: still the end, no step past it
        Assert.Equal(ExitReason.Shutdown, exit.Reason);
        Assert.Equal(0, backend.Desyncs);
        Assert.Equal(0, backend.DataMismatches);
    }

    [Fact]
    public void A_rip_moved_before_the_first_step_is_a_desync_that_shuts_the_vcpu_down()
    {
        var (state, backend) = Load([Access(Base)], loopStart: 1, loopEnd: 1, iterations: 1);
        state.Rip(0) = Base + 0x40;
        var exit = new ExitRecord { Reason = ExitReason.Mmio };
        backend.Run(0, ref exit);
        Assert.Equal(ExitReason.Shutdown, exit.Reason);
        Assert.Equal(1, backend.Desyncs);
        Assert.Contains(backend.Problems, p => p.Contains("expected rip 0x100000, found 0x100040"));
    }

    [Fact]
    public void A_step_completed_to_the_wrong_rip_is_counted_once_per_retire_and_the_vcpu_shuts_down()
    {
        var (state, backend) = Load([Access(Base), Access(Base + 3)], loopStart: 2, loopEnd: 2, iterations: 1);
        var exit = new ExitRecord();
        backend.Run(0, ref exit);
        Assert.Equal(ExitReason.Mmio, exit.Reason);
        state.Rip(0) += 1;   // the kernel left RIP inside the instruction
        backend.Run(0, ref exit);
        Assert.Equal(ExitReason.Shutdown, exit.Reason);
        // The retire's wrong RIP and the step's own check at the next run: two, and the step is not retired again.
        Assert.Equal(2, backend.Desyncs);
        backend.Run(0, ref exit);
        Assert.Equal(ExitReason.Shutdown, exit.Reason);
        Assert.Equal(3, backend.Desyncs);
        Assert.Contains(backend.Problems, p => p.Contains("left rip at 0x100001, expected 0x100003"));
    }

    [Fact]
    public void The_address_pattern_moves_inside_the_loop_only()
    {
        // A loop of one step through RAX (register 0) three times, then a step after it with the same pattern declared.
        var body = Access(Base, reg: 0, stride: 4, span: 0x100);
        var after = Access(Base + 3, reg: 0, stride: 4, span: 0x100);
        var (state, backend) = Load([body, after], loopStart: 0, loopEnd: 1, iterations: 3);
        var exit = new ExitRecord();
        for (ulong k = 0; k < 3; k++)
        {
            backend.Run(0, ref exit);
            Assert.Equal(Window + 4 * k, exit.Gpa);
            Assert.Equal(Window + 4 * k, state.Gpr(0, 0));
            state.Rip(0) += 3;
        }
        backend.Run(0, ref exit);
        Assert.Equal(Base + 3, state.Rip(0));
        Assert.Equal(Window, exit.Gpa);   // past the loop: the preset as written, whatever the iteration count
        Assert.Equal(Window, state.Gpr(0, 0));
        Assert.Equal(0, backend.Desyncs);
    }

    [Fact]
    public void A_step_that_sets_if_leaves_it_set_and_an_exit_that_is_no_access_reports_no_gpa()
    {
        var hlt = new Step { Kind = StepKind.WaitIrq, Rip = Base, Length = 1, Reason = ExitReason.Hlt, Gpa = Window, SetIf = true, Text = "sti; hlt" };
        hlt.Next = Base + 1;
        var (state, backend) = Load([hlt], loopStart: 1, loopEnd: 1, iterations: 1);
        state.Rflags(0) |= ExitRules.RflagsIf;   // already set: setting it again must not clear it
        var exit = new ExitRecord();
        backend.Run(0, ref exit);
        Assert.Equal(ExitReason.Hlt, exit.Reason);
        Assert.NotEqual(0UL, state.Rflags(0) & ExitRules.RflagsIf);
        Assert.Equal(0UL, exit.Gpa);
    }

    // ---- the checks beyond RIP (a step's Extra.Checks): each must count what it checks, and only steps that have one pay for it ----

    /// <summary>Runs the step at <c>state.Rip</c> and completes it as the kernel would: RIP past the instruction and RAX.</summary>
    static void Complete(VcpuStateStore state, ReplayBackend backend, ulong rax)
    {
        var exit = new ExitRecord();
        backend.Run(0, ref exit);
        Assert.Equal(ExitReason.Mmio, exit.Reason);
        state.Gpr(0, 0) = rax;
        state.Rip(0) += 3;
    }

    [Fact]
    public void A_read_that_returns_the_wrong_value_is_a_data_mismatch_and_the_right_one_is_not()
    {
        var wrong = Access(Base); wrong.ExpectRax = 0x1234; wrong.ExpectMask = 0xFFFF;
        var right = Access(Base + 3); right.ExpectRax = 0x55;
        var (state, backend) = Load([wrong, right, Access(Base + 6)], loopStart: 3, loopEnd: 3, iterations: 1);
        Complete(state, backend, 0xAB_9999);   // masked: 0x9999
        Complete(state, backend, 0x55);
        Complete(state, backend, 0);           // retires the second step
        Assert.Equal(1, backend.DataMismatches);
        Assert.Equal(0, backend.Desyncs);
        Assert.Contains(backend.Problems, p => p.Contains("read 0x9999, expected 0x1234"));
    }

    [Fact]
    public void A_state_field_left_wrong_is_a_data_mismatch()
    {
        var s = Access(Base); s.ExpectFields = [(StateField.Rflags, 0x1, 0x1)];   // CF set, the other bits not looked at
        var (state, backend) = Load([s, Access(Base + 3)], loopStart: 2, loopEnd: 2, iterations: 1);
        state.Rflags(0) = 0x2;
        Complete(state, backend, 0);
        Complete(state, backend, 0);
        Assert.Equal(1, backend.DataMismatches);
        Assert.Contains(backend.Problems, p => p.Contains($"left field {StateField.Rflags} = 0x0, expected 0x1"));
    }

    [Fact]
    public void A_poll_reads_again_until_its_bit_is_set_then_moves_on()
    {
        var poll = Access(Base); poll.Kind = StepKind.Poll; poll.PollMask = 0x20; poll.PollExpect = 0x20;
        var next = Access(Base + 3);
        var (state, backend) = Load([poll, next], loopStart: 2, loopEnd: 2, iterations: 1);
        var exit = new ExitRecord();
        backend.Run(0, ref exit);
        // Each run retires the read the kernel completed: bit clear, the guest's jz goes back to it (the poll is issued
        // again, RIP at it); set, the poll is done and the next step is issued.
        foreach (var (rax, issuedAt) in new[] { (0x01UL, Base), (0x00UL, Base), (0x21UL, next.Rip) })
        {
            state.Gpr(0, 0) = rax;
            state.Rip(0) += 3;
            backend.Run(0, ref exit);
            Assert.Equal(ExitReason.Mmio, exit.Reason);
            Assert.Equal(issuedAt, state.Rip(0));
        }
        Assert.Equal(0, backend.Desyncs);
        Assert.Equal(0, backend.DataMismatches);
    }

    [Fact]
    public void A_branch_left_at_the_end_of_its_instruction_is_a_desync()
    {
        var call = Access(Base); call.ExpectRip = Base + 0x40;   // CALL m: RIP must be the target, not the next instruction
        var (state, backend) = Load([call, Access(Base + 3)], loopStart: 2, loopEnd: 2, iterations: 1);
        Complete(state, backend, 0);   // the kernel (wrongly) moved RIP past the instruction
        var exit = new ExitRecord();
        backend.Run(0, ref exit);
        Assert.True(backend.Desyncs >= 1);
        Assert.Contains(backend.Problems, p => p.Contains("left rip at 0x100003, expected 0x100040"));
    }

    // ---- what Run reads from its step table (ReplayBackend.Hot): the presets, the pattern's register, the HLT wait ----

    [Fact]
    public void Every_preset_is_set_and_only_the_pattern_register_moves_wherever_it_is_in_the_list()
    {
        // Two loop steps: the pattern's register second of four presets, then fourth of four (past the two the table
        // holds inline); the other presets must stay as written, each iteration.
        var second = Access(Base, reg: 3, stride: 4, span: 0x100);
        second.Presets = [(0, 0x11), (3, Window), (2, 0x22), (1, 0x33)];
        var fourth = Access(Base + 3, reg: 6, stride: 8, span: 0x100);
        fourth.Presets = [(0, 0x44), (2, 0x55), (1, 0x66), (6, Window)];
        var (state, backend) = Load([second, fourth], loopStart: 0, loopEnd: 2, iterations: 3);
        Assert.Equal("replay", backend.Name);
        var exit = new ExitRecord();
        for (ulong k = 0; k < 3; k++)
        {
            backend.Run(0, ref exit);
            Assert.Equal(Window + 4 * k, exit.Gpa);
            Assert.Equal((0x11UL, Window + 4 * k, 0x22UL, 0x33UL), (state.Gpr(0, 0), state.Gpr(0, 3), state.Gpr(0, 2), state.Gpr(0, 1)));
            state.Rip(0) += 3;
            backend.Run(0, ref exit);
            Assert.Equal(Window + 8 * k, exit.Gpa);
            Assert.Equal((0x44UL, 0x55UL, 0x66UL, Window + 8 * k), (state.Gpr(0, 0), state.Gpr(0, 2), state.Gpr(0, 1), state.Gpr(0, 6)));
            state.Rip(0) += 3;
        }
        Assert.Equal(0, backend.Desyncs);
    }

    static Step Hlt(ulong rip)
    {
        var s = new Step { Kind = StepKind.WaitIrq, Rip = rip, Length = 1, Reason = ExitReason.Hlt, Text = $"sti; hlt at 0x{rip:x}" };
        s.Next = rip + 1;
        return s;
    }

    [Fact]
    public void A_hlt_the_kernel_left_unfinished_is_a_desync_and_the_guest_halts_again()
    {
        var (state, backend) = Load([Hlt(Base), Access(Base + 1)], loopStart: 2, loopEnd: 2, iterations: 1);
        var exit = new ExitRecord();
        backend.Run(0, ref exit);
        Assert.Equal(ExitReason.Hlt, exit.Reason);
        backend.Run(0, ref exit);   // re-entered with RIP still at the HLT and no interrupt
        Assert.Equal(1, backend.Desyncs);
        Assert.Contains(backend.Problems, p => p.Contains("HLT at 0x100000 resumed at 0x100000"));
        Assert.Equal(ExitReason.Hlt, exit.Reason);   // the guest executes its HLT again
        Assert.Equal(Base, state.Rip(0));
    }

    [Fact]
    public void A_halted_guest_entered_without_an_interrupt_is_a_desync_and_one_with_an_interrupt_goes_on()
    {
        var (state, backend) = Load([Hlt(Base), Access(Base + 1)], loopStart: 2, loopEnd: 2, iterations: 1);
        var exit = new ExitRecord();
        backend.Run(0, ref exit);
        state.Rip(0) = Base + 1;   // the kernel finished the HLT
        backend.Run(0, ref exit);  // and entered the guest with nothing pending: it would still be halted
        Assert.Equal(1, backend.Desyncs);
        Assert.Equal(ExitReason.Shutdown, exit.Reason);

        (state, backend) = Load([Hlt(Base), Access(Base + 1)], loopStart: 2, loopEnd: 2, iterations: 1);
        backend.Run(0, ref exit);
        state.Rip(0) = Base + 1;
        state.SetPendingEvent(0, 1UL << 31 | 0x40);   // an external interrupt, vector 0x40
        backend.Run(0, ref exit);
        Assert.Equal(0, backend.Desyncs);
        Assert.Equal(1, backend.InterruptsSeen);
        Assert.Equal(ExitReason.Mmio, exit.Reason);   // the ISR returned: the access after the HLT
        Assert.Equal(Base + 1, state.Rip(0));
    }

    [Fact]
    public void An_access_the_kernel_left_at_its_own_rip_is_a_desync_and_only_a_rep_with_count_left_resumes()
    {
        // A plain access: RIP not moved is the kernel's bug, not a REP to resume (whatever RCX holds).
        var (state, backend) = Load([Access(Base), Access(Base + 3)], loopStart: 2, loopEnd: 2, iterations: 1);
        var exit = new ExitRecord();
        backend.Run(0, ref exit);
        state.Gpr(0, 1) = 7;
        backend.Run(0, ref exit);
        Assert.True(backend.Desyncs >= 1);
        Assert.Equal(0, backend.RepResumes);
        Assert.Contains(backend.Problems, p => p.Contains("left rip at 0x100000, expected 0x100003"));

        // A REP the kernel stopped with RCX left: the same step again, its registers as the kernel left them.
        var rep = Access(Base); rep.Flags = ExitFlags.Rep | ExitFlags.String;
        (state, backend) = Load([rep, Access(Base + 3)], loopStart: 2, loopEnd: 2, iterations: 1);
        backend.Run(0, ref exit);
        state.Gpr(0, 1) = 5;
        state.Gpr(0, 6) = Window + 0x40;   // RSI advanced by the part done
        backend.Run(0, ref exit);
        Assert.Equal((0L, 1L), (backend.Desyncs, backend.RepResumes));
        Assert.Equal(Base, state.Rip(0));
        Assert.Equal(Window + 0x40, state.Gpr(0, 6));   // not preset again

        // The same REP left at its RIP with RCX at zero: done, so RIP should have moved: a desync.
        (state, backend) = Load([rep, Access(Base + 3)], loopStart: 2, loopEnd: 2, iterations: 1);
        backend.Run(0, ref exit);
        state.Gpr(0, 1) = 0;
        backend.Run(0, ref exit);
        Assert.Equal(0, backend.RepResumes);
        Assert.True(backend.Desyncs >= 1);
    }

    [Fact]
    public void Every_exception_and_interrupt_is_counted_and_the_first_64_of_each_are_kept()
    {
        var (state, backend) = Load([Access(Base)], loopStart: 0, loopEnd: 1, iterations: 141);
        var exit = new ExitRecord();
        backend.Run(0, ref exit);
        for (int i = 0; i < 140; i++)
        {
            // Even rounds: the kernel raised #GP instead (RIP unchanged); odd: it completed and an interrupt is pending.
            if (i % 2 == 0) state.SetPendingEvent(0, 1UL << 31 | 3UL << 8 | 13);
            else { state.Rip(0) += 3; state.SetPendingEvent(0, 1UL << 31 | 0x40); }
            backend.Run(0, ref exit);
            Assert.Equal(ExitReason.Mmio, exit.Reason);
            Assert.Equal(Base, state.Rip(0));
        }
        Assert.Equal((70L, 70L), (backend.ExceptionsSeen, backend.InterruptsSeen));
        Assert.Equal(70, backend.ExceptionsByVector[13]);
        Assert.Equal((64, 64), (backend.Exceptions.Count, backend.Interrupts.Count));
        Assert.Equal(0, backend.Desyncs);
    }
}

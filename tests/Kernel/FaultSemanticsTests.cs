using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Hot.State;
using Copra.Kernel.Backends;
using Copra.Kernel.Run;
using Copra.User.Programs;
using Iced.Intel;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// The fault semantics through the real exit path (replay backend, the test device and the UART on the other side):
/// each faulting step must leave the guest with the right exception and error code, RIP at the instruction, and the
/// device untouched (the step after reads the device back, and the device round trips are counted).
/// </summary>
public class FaultSemanticsTests
{
    const ulong Dev = 0xFEB0_0000;
    const ushort UartScratch = 0x3F8 + 7;
    const ulong Cr0Pe32 = GuestCpuState.Cr0Pe | GuestCpuState.Cr0Mp | GuestCpuState.Cr0Et | GuestCpuState.Cr0Ne | GuestCpuState.Cr0Wp;
    const ulong Am = 1UL << 18, Ac = 1UL << 18, Tf = 1UL << 8;

    static ulong SegField(int seg, int part) => StateField.Seg(seg, part);
    static (ulong, ulong)[] Seg(int seg, ushort selector, ushort attributes, uint limit) =>
        [(SegField(seg, StateField.Selector), selector), (SegField(seg, StateField.Attributes), attributes), (SegField(seg, StateField.Limit), limit)];

    const ushort Dpl3 = 3 << SegmentAttributes.DplShift;
    /// <summary>Flat ring-0 32-bit state for CS, SS, DS, ES, RFLAGS and CR0 (every step starts from it, then changes one thing).</summary>
    static (ulong, ulong)[] Ring0 =>
    [
        .. Seg(StateField.Cs, Gdt.Code32, SegmentAttributes.Code32, 0xFFFF_FFFF),
        .. Seg(StateField.Ss, Gdt.Data, SegmentAttributes.Data, 0xFFFF_FFFF),
        .. Seg(StateField.Ds, Gdt.Data, SegmentAttributes.Data, 0xFFFF_FFFF),
        .. Seg(StateField.Es, Gdt.Data, SegmentAttributes.Data, 0xFFFF_FFFF),
        (StateField.Rflags, 0x2), (StateField.Cr0, Cr0Pe32),
    ];
    /// <summary>The same at CPL 3 (CS, SS, DS, ES at DPL 3 with RPL 3).</summary>
    static (ulong, ulong)[] Ring3 =>
    [
        .. Ring0,
        .. Seg(StateField.Cs, Gdt.Code32 | 3, SegmentAttributes.Code32 | Dpl3, 0xFFFF_FFFF),
        .. Seg(StateField.Ss, Gdt.Data | 3, SegmentAttributes.Data | Dpl3, 0xFFFF_FFFF),
        .. Seg(StateField.Ds, Gdt.Data | 3, SegmentAttributes.Data | Dpl3, 0xFFFF_FFFF),
        .. Seg(StateField.Es, Gdt.Data | 3, SegmentAttributes.Data | Dpl3, 0xFFFF_FFFF),
    ];

    /// <summary>Boots one VM with one vCPU whose replay program <paramref name="build"/> writes; 32-bit protected mode
    /// without paging (linear = physical) unless <paramref name="longMode"/>.</summary>
    internal static CopraSystem Boot(Action<ReplayRig, VmLayout> build, bool longMode = false, Action<PageTableBuilder, GuestMemory, VmLayout>? paging = null,
        Action<ReplayProgram>? program = null)
    {
        // Every exit timed (the scenario's default is one in 16): these rigs' exits are few, and their tests read each one.
        var sc = Scenario.Default() with { Vms = [new VmScenario(Vcpus: 1)], TimeEvery = 1 };
        return new CopraSystem(sc, backend: (k, layouts) =>
        {
            var l = layouts[0];
            GuestCpuState start;
            GuestBuilder gb;
            if (longMode)
            {
                var wb = new WorkloadBuilder(k.Memory, l);
                gb = new GuestBuilder(k.Memory);
                start = wb.InitialState(l.Code, 0);
                paging?.Invoke(wb.Tables, k.Memory, l);
            }
            else
            {
                gb = new GuestBuilder(k.Memory);
                gb.WriteGdt(l.Gdt);
                start = GuestCpuState.ProtectedMode(PagingKind.None, 0, l.Gdt, (uint)l.Code, (uint)l.StackTop(0));
            }
            var rig = new ReplayRig(gb, l.Code, longMode ? 64 : 32);
            build(rig, l);
            start.ApplyTo(k.State, 0);
            k.State.OnEntry(0);
            var p = rig.Program();
            program?.Invoke(p);
            return new ReplayBackend(k.State, [p]);
        });
    }

    internal static void AssertClean(CopraSystem sys)
    {
        Assert.True(sys.Replay!.Desyncs == 0 && sys.Replay.DataMismatches == 0, string.Join("\n", sys.Replay.Problems));
        Assert.Equal(0, sys.Kernel.InternalErrors);
        Assert.Equal(0, sys.Kernel.Stats.InFlight);
    }

    static (string Step, ulong Event, ulong Rip, ulong Rcx) Only(CopraSystem sys, string step) =>
        Assert.Single(sys.Replay!.Exceptions, e => e.Step == step);

    static void AssertFault((string Step, ulong Event, ulong Rip, ulong Rcx) e, Step s, byte vector, uint? error)
    {
        Assert.Equal(vector, (byte)e.Event);
        Assert.Equal(3UL, (e.Event >> 8) & 7);                          // type: exception
        Assert.Equal(error.HasValue, (e.Event & (1 << 11)) != 0);        // error code valid
        if (error is uint code) Assert.Equal(code, (uint)(e.Event >> 32));
        Assert.Equal(s.Rip, e.Rip);                                      // a fault: RIP still at the instruction
    }

    [Fact]
    public void Segment_faults_outside_64_bit_mode_reach_the_guest_and_no_device()
    {
        const ushort ReadOnlyData = 0x1 | SegmentAttributes.S | SegmentAttributes.P | SegmentAttributes.Db | SegmentAttributes.G;
        const ushort ExpandDownData = 0x7 | SegmentAttributes.S | SegmentAttributes.P | SegmentAttributes.Db;   // expand-down, writable, byte limit
        Step? ro = null, np = null, ss = null, esNull = null, dpl = null, down = null, exec = null;
        using var sys = Boot((r, l) =>
        {
            (int, ulong)[] b = [(3, Dev)];
            ro = r.Add("mov [ebx+8], eax (DS read-only)", a => a.mov(__dword_ptr[ebx + 8], eax), ExitReason.Mmio, Dev + 8, 4, true, [(3, Dev), (0, 0x1234)],
                [.. Ring0, .. Seg(StateField.Ds, Gdt.Data, ReadOnlyData, 0xFFFF_FFFF)]);
            np = r.Add("mov eax, [ebx+8] (DS not present)", a => a.mov(eax, __dword_ptr[ebx + 8]), ExitReason.Mmio, Dev + 8, 4, false, b,
                [.. Ring0, .. Seg(StateField.Ds, Gdt.Data, SegmentAttributes.Data & ~SegmentAttributes.P, 0xFFFF_FFFF)]);
            ss = r.Add("mov eax, [ebp+8] (past SS's limit)", a => a.mov(eax, __dword_ptr[ebp + 8]), ExitReason.Mmio, Dev + 8, 4, false, [(5, Dev)],
                [.. Ring0, .. Seg(StateField.Ss, Gdt.Data, SegmentAttributes.Data, 0x00FF_FFFF)]);
            esNull = r.Add("mov eax, es:[ebx+8] (ES null)", a => a.mov(eax, __dword_ptr.es[ebx + 8]), ExitReason.Mmio, Dev + 8, 4, false, b,
                [.. Ring0, .. Seg(StateField.Es, 0, SegmentAttributes.Data, 0xFFFF_FFFF)]);
            dpl = r.Add("add [ebx+8], eax (CPL 3, DS DPL 0)", a => a.add(__dword_ptr[ebx + 8], eax), ExitReason.Mmio, Dev + 8, 4, false, [(3, Dev), (0, 1)],
                [.. Ring3, .. Seg(StateField.Ds, Gdt.Data | 3, SegmentAttributes.Data, 0xFFFF_FFFF)]);
            down = r.Add("mov eax, [ebx+8] (expand-down: offset at the limit)", a => a.mov(eax, __dword_ptr[ebx + 8]), ExitReason.Mmio, Dev + 8, 4, false, b,
                [.. Ring0, .. Seg(StateField.Ds, Gdt.Data, ExpandDownData, (uint)(Dev + 8))]);
            exec = r.Add("mov eax, cs:[ebx+8] (CS execute-only)", a => a.mov(eax, __dword_ptr.cs[ebx + 8]), ExitReason.Mmio, Dev + 8, 4, false, b,
                [.. Ring0, .. Seg(StateField.Cs, Gdt.Code32, (ushort)(SegmentAttributes.Code32 & ~2), 0xFFFF_FFFF)]);
            // Then the same reads with ordinary segments reach the device: the scratch register was never written.
            r.Add("mov eax, [ebx+8] (scratch still 0)", a => a.mov(eax, __dword_ptr[ebx + 8]), ExitReason.Mmio, Dev + 8, 4, false, b, Ring0, expect: 0);
            r.Add("mov eax, [ebx+8] (expand-down: offset above the limit)", a => a.mov(eax, __dword_ptr[ebx + 8]), ExitReason.Mmio, Dev + 8, 4, false, b,
                [.. Ring0, .. Seg(StateField.Ds, Gdt.Data, ExpandDownData, (uint)(Dev + 7))], expect: 0);
        });
        var run = sys.Run();
        Assert.True(run.Quiescent);
        AssertClean(sys);
        AssertFault(Only(sys, ro!.Text), ro, 13, 0);
        AssertFault(Only(sys, np!.Text), np, 11, Gdt.Data);
        AssertFault(Only(sys, ss!.Text), ss, 12, 0);
        AssertFault(Only(sys, esNull!.Text), esNull, 13, 0);
        AssertFault(Only(sys, dpl!.Text), dpl, 13, Gdt.Data);
        AssertFault(Only(sys, down!.Text), down, 13, 0);
        AssertFault(Only(sys, exec!.Text), exec, 13, 0);
        var st = sys.Kernel.Stats;
        Assert.Equal(7, st.SegmentFaults);
        Assert.Equal(7, st.Faulted);
        Assert.Equal(2, st.DeviceRoundTrips);   // only the two reads after the faults
    }

    [Fact]
    public void Alignment_check_at_cpl3_raises_ac_before_the_device()
    {
        Step? ac = null;
        using var sys = Boot((r, l) =>
        {
            (int, ulong)[] b = [(3, Dev)];
            (ulong, ulong)[] acOn = [.. Ring3, (StateField.Cr0, Cr0Pe32 | Am), (StateField.Rflags, 0x2 | Ac)];
            ac = r.Add("mov [ebx+9], eax (misaligned, CPL 3, AC, AM)", a => a.mov(__dword_ptr[ebx + 9], eax), ExitReason.Mmio, Dev + 9, 4, true, [(3, Dev), (0, 0x55)], acOn);
            r.Add("mov [ebx+8], eax (aligned: allowed)", a => a.mov(__dword_ptr[ebx + 8], eax), ExitReason.Mmio, Dev + 8, 4, true, [(3, Dev), (0, 0x77)], acOn);
            r.Add("mov eax, [ebx+0x1002] (misaligned, CPL 0: allowed)", a => a.mov(eax, __dword_ptr[ebx + 0x1002]), ExitReason.Mmio, Dev + 0x1002, 4, false, b,
                [.. Ring0, (StateField.Cr0, Cr0Pe32 | Am), (StateField.Rflags, 0x2 | Ac)]);
            r.Add("mov eax, [ebx+8] (scratch = 0x77)", a => a.mov(eax, __dword_ptr[ebx + 8]), ExitReason.Mmio, Dev + 8, 4, false, b, Ring0, expect: 0x77);
        });
        Assert.True(sys.Run().Quiescent);
        AssertClean(sys);
        AssertFault(Only(sys, ac!.Text), ac, 17, 0);
        Assert.Single(sys.Replay!.Exceptions);
        Assert.Equal(1, sys.Kernel.Stats.AlignmentFaults);
        Assert.Equal(3, sys.Kernel.Stats.DeviceRoundTrips);
    }

    /// <summary>PUSH m and POP m at CPL 3 with CR0.AM and RFLAGS.AC: a misaligned rSP is #AC(0) on the stack slot, before
    /// the operand's device side (no device round trip, rSP unchanged); an aligned rSP goes through.</summary>
    [Fact]
    public void Alignment_check_on_the_stack_slot_of_push_and_pop_m()
    {
        Step? push = null, pop = null;
        using var sys = Boot((r, l) =>
        {
            ulong top = l.StackTop(0);
            (ulong, ulong)[] acOn = [.. Ring3, (StateField.Cr0, Cr0Pe32 | Am), (StateField.Rflags, 0x2 | Ac)];
            r.Add("mov dword [ebx+8], 0x1234", a => a.mov(__dword_ptr[ebx + 8], 0x1234), ExitReason.Mmio, Dev + 8, 4, true, [(3, Dev)], Ring0);
            push = r.Add("push dword [ebx+8] (esp misaligned: #AC)", a => a.push(__dword_ptr[ebx + 8]), ExitReason.Mmio, Dev + 8, 4, false, [(3, Dev), (4, top - 2)], acOn);
            pop = r.Add("pop dword [ebx+8] (esp misaligned: #AC)", a => a.pop(__dword_ptr[ebx + 8]), ExitReason.Mmio, Dev + 8, 4, true, [(3, Dev), (4, top - 6)], acOn);
            var ok = r.Add("push dword [ebx+8] (esp aligned)", a => a.push(__dword_ptr[ebx + 8]), ExitReason.Mmio, Dev + 8, 4, false, [(3, Dev), (4, top - 8)], acOn);
            ok.ExpectFields = [(4, top - 12, 0xFFFF_FFFF)];
            r.Add("mov eax, [ebx+8] (still 0x1234)", a => a.mov(eax, __dword_ptr[ebx + 8]), ExitReason.Mmio, Dev + 8, 4, false, [(3, Dev)], Ring0, expect: 0x1234);
        });
        Assert.True(sys.Run().Quiescent);
        AssertClean(sys);
        AssertFault(Only(sys, push!.Text), push, 17, 0);
        AssertFault(Only(sys, pop!.Text), pop, 17, 0);
        Assert.Equal(2, sys.Kernel.Stats.AlignmentFaults);
        Assert.Equal(3, sys.Kernel.Stats.DeviceRoundTrips);   // the write, the aligned PUSH's read, the final read
    }

    [Fact]
    public void Port_io_above_iopl_is_allowed_only_for_the_port_and_width_the_hardware_checked()
    {
        Step? wide = null;
        using var sys = Boot((r, l) =>
        {
            // The hardware reported a 1-byte OUT (its TSS bitmap check passed for that byte); the bytes say 4: #GP(0).
            wide = r.Add("out dx, eax (CPL 3 > IOPL 0, width differs from the exit's)", a => a.@out(dx, eax), ExitReason.Io, 0, 1, true, [(2, UartScratch), (0, 0x11)], Ring3, port: UartScratch);
            r.Add("out dx, al (CPL 3 > IOPL 0, as the exit reported)", a => a.@out(dx, al), ExitReason.Io, 0, 1, true, [(2, UartScratch), (0, 0x22)], Ring3, port: UartScratch);
            r.Add("out dx, al (CPL 3 = IOPL 3)", a => a.@out(dx, al), ExitReason.Io, 0, 1, true, [(2, UartScratch), (0, 0x33)], [.. Ring3, (StateField.Rflags, 0x2 | 3 << 12)], port: UartScratch);
            r.Add("in al, dx (UART scratch = 0x33)", a => a.@in(al, dx), ExitReason.Io, 0, 1, false, [(2, UartScratch), (0, 0)], Ring0, port: UartScratch, expect: 0x33);
        });
        Assert.True(sys.Run().Quiescent);
        AssertClean(sys);
        AssertFault(Only(sys, wide!.Text), wide, 13, 0);
        Assert.Single(sys.Replay!.Exceptions);
        Assert.Equal(1, sys.Kernel.Stats.IoPrivilegeFaults);
    }

    [Fact]
    public void Single_step_traps_after_the_instruction_and_after_each_rep_iteration()
    {
        Step? load = null, rep = null;
        using var sys = Boot((r, l) =>
        {
            (ulong, ulong)[] tf = [.. Ring0, (StateField.Rflags, 0x2 | Tf)];
            load = r.Add("mov eax, [ebx] (TF)", a => a.mov(eax, __dword_ptr[ebx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], tf);
            rep = r.Add("rep stosd (3 elements, TF)", a => a.rep.stosd(), ExitReason.Mmio, Dev + 0x1000, 4, true, [(7, Dev + 0x1000), (1, 3), (0, 0xAB)], tf);
            rep.Flags |= ExitFlags.String | ExitFlags.Rep;
            r.Add("mov eax, [ebx+0x1004] (the second element was not stored)", a => a.mov(eax, __dword_ptr[ebx + 0x1004]), ExitReason.Mmio, Dev + 0x1004, 4, false, [(3, Dev)], Ring0, expect: 0);
            r.Add("mov eax, [ebx+0x1000] (the first was)", a => a.mov(eax, __dword_ptr[ebx + 0x1000]), ExitReason.Mmio, Dev + 0x1000, 4, false, [(3, Dev)], Ring0, expect: 0xAB);
        });
        Assert.True(sys.Run().Quiescent);
        AssertClean(sys);
        var e = Only(sys, load!.Text);
        Assert.Equal(1UL, e.Event & 0xFF);
        Assert.Equal(0UL, e.Event & (1 << 11));                          // #DB has no error code
        Assert.Equal(load.Rip + (ulong)load.Length, e.Rip);              // a trap: after the instruction
        var er = Only(sys, rep!.Text);
        Assert.Equal(1UL, er.Event & 0xFF);
        Assert.Equal(rep.Rip, er.Rip);                                   // mid-REP: RIP still at the instruction
        Assert.Equal(2UL, er.Rcx);                                       // one iteration done
        Assert.True(sys.Kernel.State.TryPeek(0, StateField.Dr6, out ulong dr6));
        Assert.Equal(VcpuStateStore.Dr6Reset | 1UL << 14, dr6);          // BS
        Assert.Equal(2, sys.Kernel.Stats.SingleStepTraps);
        Assert.Equal(0, sys.Kernel.Stats.Faulted);                       // traps complete the instruction
    }

    [Fact]
    public void Non_canonical_addresses_in_64_bit_mode_are_ss_for_stack_references_and_gp_otherwise()
    {
        Step? stack = null, data = null;
        const ulong Hole = 0x8000_0000_0000_0000;
        using var sys = Boot((r, l) =>
        {
            stack = r.Add("mov eax, [rbp] (non-canonical)", a => a.mov(eax, __dword_ptr[rbp]), ExitReason.Mmio, Dev, 4, false, [(5, Hole)], []);
            data = r.Add("mov [rbx], eax (non-canonical)", a => a.mov(__dword_ptr[rbx], eax), ExitReason.Mmio, Dev, 4, true, [(3, 0x0000_7FFF_FFFF_FFFE)], []);
            r.Add("mov eax, [rbx+8] (canonical: the device)", a => a.mov(eax, __dword_ptr[rbx + 8]), ExitReason.Mmio, Dev + 8, 4, false, [(3, Dev)], [], expect: 0);
        }, longMode: true);
        Assert.True(sys.Run().Quiescent);
        AssertClean(sys);
        AssertFault(Only(sys, stack!.Text), stack, 12, 0);
        AssertFault(Only(sys, data!.Text), data, 13, 0);
        Assert.Equal(2, sys.Kernel.Stats.SegmentFaults);
        Assert.Equal(1, sys.Kernel.Stats.DeviceRoundTrips);
    }

    [Fact]
    public void A_cpl3_access_to_a_supervisor_page_is_a_page_fault_with_the_user_bit_and_no_device_sees_it()
    {
        Step? user = null;
        (ulong, ulong)[] ring3 =
            [.. Seg(StateField.Cs, Gdt.Code64 | 3, SegmentAttributes.Code64 | Dpl3, 0xFFFF_FFFF), .. Seg(StateField.Ss, Gdt.Data | 3, SegmentAttributes.Data | Dpl3, 0xFFFF_FFFF)];
        (ulong, ulong)[] ring0 =
            [.. Seg(StateField.Cs, Gdt.Code64, SegmentAttributes.Code64, 0xFFFF_FFFF), .. Seg(StateField.Ss, Gdt.Data, SegmentAttributes.Data, 0xFFFF_FFFF)];
        using var sys = Boot((r, l) =>
        {
            // The workload maps the device page supervisor-only (U/S clear): at CPL 3 the walk must refuse it.
            user = r.Add("mov eax, [rbx] at CPL 3 (supervisor page)", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], ring3);
            r.Add("mov eax, [rbx+8] at CPL 0 (the device)", a => a.mov(eax, __dword_ptr[rbx + 8]), ExitReason.Mmio, Dev + 8, 4, false, [(3, Dev)], ring0, expect: 0);
        }, longMode: true, paging: UserCode);   // the code is user-accessible: the data side is what refuses
        Assert.True(sys.Run().Quiescent);
        AssertClean(sys);
        AssertFault(Only(sys, user!.Text), user, 14, 0x5);   // #PF: present | user, a read
        Assert.Equal(1, sys.Kernel.Stats.DeviceRoundTrips);
    }

    /// <summary>Sets U/S on the leaf entries of the first 16 code pages (the intermediate entries already allow it).</summary>
    static void UserCode(PageTableBuilder pt, GuestMemory mem, VmLayout l) => SetUser(pt, mem, l.Code, 16);

    static void SetUser(PageTableBuilder pt, GuestMemory mem, ulong linear, int pages)
    {
        for (int i = 0; i < pages; i++)
        {
            ulong e = pt.EntryAddress(linear + (ulong)i * 0x1000, 1);
            mem.WriteU64(e, mem.ReadU64(e) | 4);
        }
    }

    static (ulong, ulong)[] Ring0With(ulong cr4, ulong rflags) =>
        [.. Seg(StateField.Cs, Gdt.Code64, SegmentAttributes.Code64, 0xFFFF_FFFF), .. Seg(StateField.Ss, Gdt.Data, SegmentAttributes.Data, 0xFFFF_FFFF),
         (StateField.Cr4, cr4), (StateField.Rflags, rflags)];

    const ulong Cr4Long = GuestCpuState.Cr4Pae | GuestCpuState.Cr4Osfxsr | GuestCpuState.Cr4Osxmmexcpt;
    const ulong Smep = 1UL << 20, Smap = 1UL << 21;

    [Fact]
    public void A_cpl3_fetch_from_a_supervisor_page_is_a_page_fault_with_user_and_fetch_bits()
    {
        Step? user = null;
        (ulong, ulong)[] ring3 =
            [.. Seg(StateField.Cs, Gdt.Code64 | 3, SegmentAttributes.Code64 | Dpl3, 0xFFFF_FFFF), .. Seg(StateField.Ss, Gdt.Data | 3, SegmentAttributes.Data | Dpl3, 0xFFFF_FFFF)];
        using var sys = Boot((r, l) =>
        {
            // The code pages are supervisor-only (the workload's default): the CPU could not have fetched this at CPL 3.
            user = r.Add("mov eax, [rbx] fetched at CPL 3 from a supervisor page", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], ring3);
            r.Add("mov eax, [rbx+8] at CPL 0", a => a.mov(eax, __dword_ptr[rbx + 8]), ExitReason.Mmio, Dev + 8, 4, false, [(3, Dev)], Ring0With(Cr4Long, 2), expect: 0);
        }, longMode: true);
        Assert.True(sys.Run().Quiescent);
        AssertClean(sys);
        AssertFault(Only(sys, user!.Text), user, 14, 0x15);   // #PF: present | user | instruction fetch (EFER.NXE is on)
        Assert.Equal(1, sys.Kernel.Stats.DeviceRoundTrips);  // only the CPL 0 read reached the device
    }

    [Fact]
    public void Smep_makes_a_supervisor_fetch_from_a_user_page_a_page_fault()
    {
        Step? smep = null;
        using var sys = Boot((r, l) =>
        {
            r.Add("mov eax, [rbx] from a user page, SMEP off", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], Ring0With(Cr4Long, 2), expect: TestDeviceRegs.IdValue);
            smep = r.Add("mov eax, [rbx] from a user page, SMEP on", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], Ring0With(Cr4Long | Smep, 2));
        }, longMode: true, paging: UserCode);
        Assert.True(sys.Run().Quiescent);
        AssertClean(sys);
        AssertFault(Only(sys, smep!.Text), smep, 14, 0x11);   // #PF: present | instruction fetch, supervisor
        Assert.Equal(1, sys.Kernel.Stats.DeviceRoundTrips);
    }

    [Fact]
    public void Smap_makes_a_supervisor_data_access_to_a_user_page_a_page_fault_unless_AC_is_set()
    {
        Step? smap = null, smapWrite = null;
        const ulong AcFlag = 1UL << 18;
        using var sys = Boot((r, l) =>
        {
            smap = r.Add("mov eax, [rbx] to a user page, SMAP on, AC clear", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], Ring0With(Cr4Long | Smap, 2));
            smapWrite = r.Add("mov [rbx+8], eax to a user page, SMAP on, AC clear", a => a.mov(__dword_ptr[rbx + 8], eax), ExitReason.Mmio, Dev + 8, 4, true, [(3, Dev), (0, 7)], Ring0With(Cr4Long | Smap, 2));
            r.Add("mov eax, [rbx] to a user page, SMAP on, AC set (exempt)", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], Ring0With(Cr4Long | Smap, 2 | AcFlag), expect: TestDeviceRegs.IdValue);
            r.Add("mov eax, [rbx+8] to a user page, SMAP off (the write never landed)", a => a.mov(eax, __dword_ptr[rbx + 8]), ExitReason.Mmio, Dev + 8, 4, false, [(3, Dev)], Ring0With(Cr4Long, 2), expect: 0);
        }, longMode: true, paging: (pt, mem, l) => { UserCode(pt, mem, l); SetUser(pt, mem, Dev, 1); });
        Assert.True(sys.Run().Quiescent);
        AssertClean(sys);
        AssertFault(Only(sys, smap!.Text), smap, 14, 0x1);        // #PF: present, supervisor read
        AssertFault(Only(sys, smapWrite!.Text), smapWrite, 14, 0x3);   // present | write
        Assert.Equal(2, sys.Kernel.Stats.DeviceRoundTrips);
    }
}

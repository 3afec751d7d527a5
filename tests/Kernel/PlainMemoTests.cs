using Copra.Abi;
using Copra.Hot.Emulate;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Hot.State;
using Copra.Kernel.Backends;
using Copra.Kernel.Run;
using Copra.User.Programs;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// The fused stage for a plain MOV that exits again at the same RIP (hot/Exit/ExitPipeline.Plain.cs), through the
/// real pipeline (replay backend, the test device on the other side). One instruction runs in a loop of four
/// iterations: the first exit decodes it, the second finds it in the decode cache (and notes its RIP), the third,
/// the second in a row there from the cache, memoises it, and the fourth is replayed from the memo. Each test changes
/// one input of the front end's derivation just before the fourth exit (in the kernel's exit hook, after the guest ran and before the kernel reads its state) and shows that
/// exit getting what the full path gives: the memo must step aside for every input it was derived from.
/// </summary>
public class PlainMemoTests
{
    const ulong Dev = 0xFEB0_0000;
    const ulong Scratch = Dev + 0x08;   // the test device's scratch register (reads back what was written)
    const int Exits = 4;
    const ulong Tf = 1UL << 8, Ac = 1UL << 18, Am = 1UL << 18;
    const ushort Dpl3 = 3 << SegmentAttributes.DplShift;

    /// <summary>Boots the loop of <see cref="Exits"/> iterations of one step; <paramref name="before"/> runs as exit n (1-based) is taken.</summary>
    static CopraSystem Loop(Action<ReplayRig> step, Action<Copra.Kernel.Core.Kernel, int> before,
        Action<PageTableBuilder, GuestMemory, VmLayout>? paging = null, int loopSteps = 1, int iterations = Exits)
    {
        var sys = FaultSemanticsTests.Boot((r, l) => step(r), longMode: true, paging: paging,
            program: p => { p.LoopStart = 0; p.LoopEnd = loopSteps; p.Iterations = iterations; });
        int n = 0;
        var k = sys.Kernel;
        k.OnExitTaken = v => before(k, ++n);
        return sys;
    }

    static (string Step, ulong Event, ulong Rip, ulong Rcx) OnlyException(CopraSystem sys) => Assert.Single(sys.Replay!.Exceptions);

    static void SetUser(PageTableBuilder pt, GuestMemory mem, ulong linear)
    {
        ulong e = pt.EntryAddress(linear, 1);
        mem.WriteU64(e, mem.ReadU64(e) | 4);
    }

    static void SetReadOnly(PageTableBuilder pt, GuestMemory mem, ulong linear)
    {
        ulong e = pt.EntryAddress(linear, 1);
        mem.WriteU64(e, mem.ReadU64(e) & ~2UL);
    }

    /// <summary>CS and SS at DPL 3 (RPL 3), flat 64-bit: the vCPU now runs at CPL 3.</summary>
    static void EnterCpl3(Copra.Kernel.Core.Kernel k)
    {
        k.State.TryWrite(0, StateField.Seg(StateField.Cs, StateField.Selector), Gdt.Code64 | 3);
        k.State.TryWrite(0, StateField.Seg(StateField.Cs, StateField.Attributes), SegmentAttributes.Code64 | Dpl3);
        k.State.TryWrite(0, StateField.Seg(StateField.Ss, StateField.Selector), Gdt.Data | 3);
        k.State.TryWrite(0, StateField.Seg(StateField.Ss, StateField.Attributes), SegmentAttributes.Data | Dpl3);
    }

    static void UserCode(PageTableBuilder pt, GuestMemory mem, VmLayout l)
    {
        for (int i = 0; i < 16; i++) SetUser(pt, mem, l.Code + (ulong)i * 0x1000);
    }

    [Fact]
    public void The_same_load_at_one_rip_is_memoised_at_the_third_exit_and_replayed_from_the_fourth()
    {
        var valid = new bool[Exits + 2];   // the program's end exits once more
        Step? load = null;
        using var sys = Loop(
            r => load = r.Add("mov eax, [rbx] (the ID register)", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], [], expect: TestDeviceRegs.IdValue),
            (k, n) => valid[n] = k.ExitInFlight.MemoAt(0, load!.Rip).Valid);
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal([false, false, false, false, true, true], valid);   // as exits 1..5 are taken (the fifth: the program's end)
        Assert.Equal(Exits, sys.Kernel.Stats.Completed);
        Assert.Equal(Exits, sys.Kernel.Stats.DeviceRoundTrips);
        Assert.Equal(TestDeviceRegs.IdValue, sys.Kernel.State.Gpr(0, 0));
    }

    /// <summary>A load and a store at two RIPs, alternating (exits A1 B2 A3 B4 A5 B6 A7 B8): each has its own entry,
    /// armed and completed at its third exit and replayed at its fourth, A7 and B8, each taking its own decode into the
    /// columns (which held the other's).</summary>
    static CopraSystem Alternating(Action<Step, Step> steps, Action<Copra.Kernel.Core.Kernel, int> before, ulong expectLast) =>
        Loop(r =>
            {
                var a = r.Add("mov eax, [rbx] (the ID register)", x => x.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], [], expect: TestDeviceRegs.IdValue);
                var b = r.Add("mov [rsi], ecx (the scratch register)", x => x.mov(__dword_ptr[rsi], ecx), ExitReason.Mmio, Scratch, 4, true, [(6, Scratch)], []);
                r.Add("mov eax, [rsi] (after the loop: what the last store left)", x => x.mov(eax, __dword_ptr[rsi]), ExitReason.Mmio, Scratch, 4, false, [(6, Scratch)], [], expect: expectLast);
                steps(a, b);
            }, before, loopSteps: 2);

    [Fact]
    public void Two_instructions_at_two_rips_alternating_are_each_replayed_with_their_own_decode()
    {
        Step? a = null, b = null;
        var validA = new bool[2 * Exits + 1];
        var validB = new bool[2 * Exits + 1];
        using var sys = Alternating((x, y) => { a = x; b = y; },
            (k, n) =>
            {
                if (n > 2 * Exits) return;
                validA[n] = k.ExitInFlight.MemoAt(0, a!.Rip).Valid;
                validB[n] = k.ExitInFlight.MemoAt(0, b!.Rip).Valid;
                k.State.Gpr(0, 1) = 0x2000UL + (ulong)n;   // ECX as exit n is taken: a replayed store must write this one
                k.State.Gpr(0, 0) = 0;                     // and a replayed load must fill EAX (the step expects the ID)
            }, expectLast: 0x2008);
        Assert.NotEqual(InFlight.MemoSlot(a!.Rip), InFlight.MemoSlot(b!.Rip));
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal([false, false, false, false, false, false, true, true, true], validA);   // A complete from A5: A7 replayed
        Assert.Equal([false, false, false, false, false, false, false, true, true], validB);   // B complete from B6: B8 replayed
        Assert.Equal(2 * Exits + 1, sys.Kernel.Stats.DeviceRoundTrips);
        Assert.Equal(0x2008UL, sys.Kernel.State.Gpr(0, 0));   // B8's store (replayed, ECX) is what the last load read back
    }

    [Fact]
    public void The_second_of_two_alternating_instructions_rewritten_before_its_replay_is_decoded_afresh()
    {
        Step? b = null;
        using var sys = Alternating((_, y) => b = y,
            (k, n) =>
            {
                k.State.Gpr(0, 1) = 0x2000UL + (ulong)n;
                k.State.Gpr(0, 2) = 0x3000UL + (ulong)n;
                if (n == 2 * Exits) k.Memory.WriteU8(b!.Rip + 1, 0x16);   // ModRM 0E (ecx) -> 16 (edx); the code is identity-mapped
            }, expectLast: 0x3008);
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
    }

    [Fact]
    public void A_replayed_store_writes_the_register_of_this_exit_not_of_the_one_memoised()
    {
        using var sys = Loop(
            r =>
            {
                r.Add("mov [rbx], eax", a => a.mov(__dword_ptr[rbx], eax), ExitReason.Mmio, Scratch, 4, true, [(3, Scratch)], []);
                r.Add("mov eax, [rbx] (after the loop: what the last store left)", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Scratch, 4, false, [(3, Scratch)], [], expect: 0x1004);
            },
            (k, n) => { if (n <= Exits) k.State.Gpr(0, 0) = 0x1000UL + (ulong)n; });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(0x1004UL, sys.Kernel.State.Gpr(0, 0));
    }

    [Fact]
    public void Code_rewritten_in_place_before_a_replayed_exit_is_decoded_afresh()
    {
        Step? load = null;
        using var sys = Loop(
            r => load = r.Add("mov eax, [rbx] (rewritten to mov ecx, [rbx])", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev), (0, 0), (1, 0)], []),
            (k, n) => { if (n == Exits) k.Memory.WriteU8(load!.Rip + 1, 0x0B); });   // ModRM 03 (eax) -> 0B (ecx); the code is identity-mapped
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(TestDeviceRegs.IdValue, sys.Kernel.State.Gpr(0, 1));
        Assert.Equal(0UL, sys.Kernel.State.Gpr(0, 0));
    }

    [Fact]
    public void An_immediate_rewritten_past_the_eighth_byte_before_a_replayed_store_is_stored_afresh()
    {
        // mov dword [rbx+0x100], 0x11223344: C7 83 00 01 00 00 44 33 22 11 (10 bytes); byte 9 is the immediate's top byte.
        Step? store = null;
        using var sys = Loop(
            r =>
            {
                store = r.Add("mov dword [rbx+0x100], 0x11223344", a => a.mov(__dword_ptr[rbx + 0x100], 0x1122_3344), ExitReason.Mmio, Scratch, 4, true, [(3, Scratch - 0x100)], []);
                r.Add("mov eax, [rbx+0x100] (after the loop: what the last store left)", a => a.mov(eax, __dword_ptr[rbx + 0x100]), ExitReason.Mmio, Scratch, 4, false, [(3, Scratch - 0x100)], [], expect: 0x5522_3344);
            },
            (k, n) =>
            {
                if (n != Exits) return;
                Assert.Equal(10, store!.Length);
                Assert.Equal(0x11, k.Memory.ReadU8(store.Rip + 9));
                k.Memory.WriteU8(store.Rip + 9, 0x55);
            });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
    }

    [Fact]
    public void A_page_table_rewritten_under_the_same_CR3_is_walked_again_once_the_caches_are_invalidated()
    {
        using var sys = Loop(
            r => r.Add("mov [rbx], eax", a => a.mov(__dword_ptr[rbx], eax), ExitReason.Mmio, Scratch, 4, true, [(3, Scratch), (0, 7)], []),
            (k, n) =>
            {
                if (n != Exits) return;
                // As a TLB would, the cached translation survives a PTE write under the same CR3; SET_STATE (here the
                // same call it makes) drops it, and with it the memo: the walk then finds the page read-only.
                ulong pte = Pte(k.Memory, k.State.Cr3(0), Scratch);
                k.Memory.WriteU64(pte, k.Memory.ReadU64(pte) & ~2UL);
                k.InvalidateCaches(0);
            });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(14UL | 0x3UL << 32, OnlyException(sys).Event & (0xFF | 0xFFFF_FFFFUL << 32));   // #PF: present | write
        Assert.Equal(Exits - 1, sys.Kernel.Stats.DeviceRoundTrips);
    }

    [Fact]
    public void A_replayed_load_whose_exit_names_another_guest_physical_page_is_walked_again()
    {
        Step? load = null;
        using var sys = Loop(
            r => load = r.Add("mov eax, [rbx] (the operand's page remapped before the fourth exit)", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], []),
            (k, n) =>
            {
                if (n != Exits - 1) return;
                // After the third exit: the guest remaps the operand's page to the next page of the device (its
                // register 0 reads 0 there) without a flush; the hardware's fourth exit names that page.
                ulong pte = Pte(k.Memory, k.State.Cr3(0), Dev);
                k.Memory.WriteU64(pte, (k.Memory.ReadU64(pte) & ~0x000F_FFFF_FFFF_F000UL) | (Dev + 0x1000));
                load!.Gpa = Dev + 0x1000;
                ((Copra.Kernel.Backends.ReplayBackend)k.Backend!).Changed(load!);
            });
        Assert.True(sys.Run().Quiescent);
        Assert.Equal(0UL, sys.Kernel.State.Gpr(0, 0) & 0xFFFF_FFFF);   // the fourth read the remapped page, not the ID register
        Assert.Equal(Exits, sys.Kernel.Stats.DeviceRoundTrips);
        // The walk's new page completed the instruction's own entry: it names the remapped page now.
        var entry = sys.Kernel.ExitInFlight.MemoAt(0, load!.Rip);
        Assert.True(entry.Valid);
        Assert.Equal(Dev + 0x1000, entry.GpaPage);
    }

    [Fact]
    public void A_replayed_load_moved_to_the_end_of_its_page_is_split_and_refused()
    {
        using var sys = Loop(
            r => r.Add("mov eax, [rbx]", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], []),
            (k, n) => { if (n == Exits) k.State.Gpr(0, 3) = Dev + 0xFFE; });   // the same page, two bytes on the next
        Assert.True(sys.Run().Quiescent);
        Assert.Equal(13UL, OnlyException(sys).Event & 0xFF);   // #GP(0): a device never spans pages here
        Assert.Equal(Exits - 1, sys.Kernel.Stats.DeviceRoundTrips);
    }

    [Fact]
    public void A_port_exit_at_a_memoised_mmio_instruction_is_a_decode_mismatch()
    {
        Step? load = null;
        using var sys = Loop(
            r => load = r.Add("mov eax, [rbx]", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], []),
            (k, n) => { if (n == Exits - 1) { load!.Reason = ExitReason.Io; ((Copra.Kernel.Backends.ReplayBackend)k.Backend!).Changed(load!); } });   // the fourth exit reports port I/O
        Assert.True(sys.Run().Quiescent);
        Assert.Equal(13UL, OnlyException(sys).Event & 0xFF);   // #GP(0)
        Assert.Equal(1, sys.Kernel.Stats.DecodeMismatch);
        Assert.Equal(Exits - 1, sys.Kernel.Stats.DeviceRoundTrips);
    }

    [Fact]
    public void RFLAGS_TF_set_before_a_replayed_exit_traps_after_the_instruction()
    {
        Step? load = null;
        using var sys = Loop(
            r => load = r.Add("mov eax, [rbx]", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], []),
            (k, n) => { if (n == Exits) k.State.Rflags(0) |= Tf; });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        var e = OnlyException(sys);
        Assert.Equal(1UL, e.Event & 0xFF);                           // #DB
        Assert.Equal(load!.Rip + (ulong)load.Length, e.Rip);         // a trap, after the instruction
        Assert.Equal(1, sys.Kernel.Stats.SingleStepTraps);
    }

    [Fact]
    public void A_cpl_change_to_3_before_a_replayed_exit_walks_the_supervisor_page_and_faults()
    {
        using var sys = Loop(
            r => r.Add("mov eax, [rbx]", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], []),
            (k, n) =>
            {
                if (n != Exits) return;
                EnterCpl3(k);
            },
            paging: UserCode);   // the code is user-accessible; the device page is not
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(14UL | 0x5UL << 32, OnlyException(sys).Event & (0xFF | 0xFFFF_FFFFUL << 32));   // #PF: present | user
        Assert.Equal(Exits - 1, sys.Kernel.Stats.DeviceRoundTrips);
    }

    [Fact]
    public void CR3_switched_before_a_replayed_store_is_walked_again()
    {
        ulong root2 = 0;
        using var sys = Loop(
            r => r.Add("mov [rbx], eax", a => a.mov(__dword_ptr[rbx], eax), ExitReason.Mmio, Scratch, 4, true, [(3, Scratch), (0, 7)], []),
            (k, n) =>
            {
                if (n != Exits) return;
                // The device page made read-only under both roots (they share every table below the root); under the old
                // CR3 a cached translation would still be used, as a TLB would: the switch to the second root must walk.
                ulong pte = Pte(k.Memory, root2, Scratch);
                k.Memory.WriteU64(pte, k.Memory.ReadU64(pte) & ~2UL);
                k.State.TryWrite(0, StateField.Cr3, root2);
            },
            paging: (pt, mem, l) =>
            {
                root2 = l.Tables + 0x7F000;   // the last page of the table region: a copy of the root
                Assert.True((ulong)pt.TablePages * 0x1000 < 0x7F000);
                for (ulong i = 0; i < 0x1000; i += 8) mem.WriteU64(root2 + i, mem.ReadU64(pt.Root + i));
            });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(14UL | 0x3UL << 32, OnlyException(sys).Event & (0xFF | 0xFFFF_FFFFUL << 32));   // #PF: present | write
        Assert.Equal(Exits - 1, sys.Kernel.Stats.DeviceRoundTrips);
    }

    /// <summary>A supervisor store to a read-only page in a loop of <paramref name="iterations"/>: CR0.WP clear (exits 1..3
    /// reach the device, R/W ignored), set from exit 4 on when <paramref name="keepWp"/>, else at exit 4 only.</summary>
    static CopraSystem ReadOnlyStoreLoop(bool keepWp, int iterations) => Loop(
        r => r.Add("mov [rbx], eax", a => a.mov(__dword_ptr[rbx], eax), ExitReason.Mmio, Scratch, 4, true, [(3, Scratch), (0, 7)], []),
        (k, n) =>
        {
            bool wp = keepWp ? n >= Exits : n == Exits;
            ulong cr0 = k.State.Cr0(0);
            k.State.TryWrite(0, StateField.Cr0, wp ? cr0 | GuestCpuState.Cr0Wp : cr0 & ~GuestCpuState.Cr0Wp);
        },
        paging: (pt, mem, l) => SetReadOnly(pt, mem, Scratch), iterations: iterations);

    const ulong PfWrite = 14UL | 0x3UL << 32, PfMask = 0xFF | 0xFFFF_FFFFUL << 32;   // #PF: present | write

    [Fact]
    public void CR0_WP_set_before_a_replayed_supervisor_store_to_a_read_only_page_faults()
    {
        using var sys = ReadOnlyStoreLoop(keepWp: false, iterations: Exits);
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(PfWrite, OnlyException(sys).Event & PfMask);
        Assert.Equal(Exits - 1, sys.Kernel.Stats.DeviceRoundTrips);
    }

    [Fact]
    public void A_store_that_faulted_in_a_new_context_faults_again_at_its_next_exit()
    {
        // Exit 4 takes the full path (CR0 differs from the entry's key), stores the new key in the entry and faults
        // before its side completes: the entry holds the new key with the old pages, and must not be replayed. Exits 5
        // and 6, in the same context, fault as exit 4 did (the walk sees the read-only page again).
        using var sys = ReadOnlyStoreLoop(keepWp: true, iterations: Exits + 2);
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(3, sys.Replay!.Exceptions.Count);
        Assert.All(sys.Replay.Exceptions, e => Assert.Equal(PfWrite, e.Event & PfMask));
        Assert.Equal(Exits - 1, sys.Kernel.Stats.DeviceRoundTrips);
    }

    [Fact]
    public void CR4_SMAP_set_before_a_replayed_supervisor_load_from_a_user_page_faults()
    {
        const ulong Smap = 1UL << 21;
        using var sys = Loop(
            r => r.Add("mov eax, [rbx]", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], []),
            (k, n) => { if (n == Exits) k.State.TryWrite(0, StateField.Cr4, k.State.Cr4(0) | Smap); },
            paging: (pt, mem, l) => { UserCode(pt, mem, l); SetUser(pt, mem, Dev); });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(14UL | 0x1UL << 32, OnlyException(sys).Event & (0xFF | 0xFFFF_FFFFUL << 32));   // #PF: present, supervisor read
        Assert.Equal(Exits - 1, sys.Kernel.Stats.DeviceRoundTrips);
    }

    [Fact]
    public void EFER_NXE_cleared_before_a_replayed_load_makes_the_device_pages_XD_bit_reserved()
    {
        const ulong Nxe = 1UL << 11;
        using var sys = Loop(
            r => r.Add("mov eax, [rbx]", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], []),
            (k, n) => { if (n == Exits) k.State.TryWrite(0, StateField.Efer, k.State.Efer(0) & ~Nxe); },
            paging: (pt, mem, l) =>
            {
                ulong e = pt.EntryAddress(Dev, 1);
                mem.WriteU64(e, mem.ReadU64(e) | 1UL << 63);   // XD on the device page: reserved without EFER.NXE
            });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(14UL | 0x9UL << 32, OnlyException(sys).Event & (0xFF | 0xFFFF_FFFFUL << 32));   // #PF: present | reserved bit
        Assert.Equal(Exits - 1, sys.Kernel.Stats.DeviceRoundTrips);
    }

    [Fact]
    public void RFLAGS_AC_set_before_a_replayed_misaligned_cpl3_load_is_an_alignment_check()
    {
        using var sys = Loop(
            r => r.Add("mov eax, [rbx+1] at CPL 3 (misaligned)", a => a.mov(eax, __dword_ptr[rbx + 1]), ExitReason.Mmio, Dev + 1, 4, false, [(3, Dev)], []),
            (k, n) =>
            {
                if (n == 1)
                {
                    k.State.TryWrite(0, StateField.Cr0, k.State.Cr0(0) | Am);
                    EnterCpl3(k);
                }
                if (n == Exits) k.State.Rflags(0) |= Ac;
            },
            paging: (pt, mem, l) => { UserCode(pt, mem, l); SetUser(pt, mem, Dev); });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(17UL, OnlyException(sys).Event & 0xFF);   // #AC
        Assert.Equal(Exits - 1, sys.Kernel.Stats.DeviceRoundTrips);
    }

    [Fact]
    public void An_fs_operand_is_never_replayed_without_its_base()
    {
        using var sys = Loop(
            r => r.Add("mov eax, fs:[rbx] (64 8B 03; FS base + rbx = the ID register)", a => a.db(0x64, 0x8B, 0x03), ExitReason.Mmio, Dev, 4, false, [(3, Dev - 0x10000)], [], expect: TestDeviceRegs.IdValue),
            (k, n) => { if (n == 1) k.State.TryWrite(0, StateField.Seg(StateField.Fs, StateField.Base), 0x10000); });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(Exits, sys.Kernel.Stats.DeviceRoundTrips);
        Assert.Equal(Exits, sys.Kernel.Stats.Completed);
    }

    [Fact]
    public void A_replayed_load_whose_register_moved_to_another_page_walks_that_page()
    {
        ulong ram = 0;
        using var sys = Loop(
            r => r.Add("mov eax, [rbx]", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], []),
            (k, n) => { if (n == Exits) k.State.Gpr(0, 3) = ram; },
            paging: (pt, mem, l) => ram = l.Data);   // guest RAM, identity-mapped
        Assert.True(sys.Run().Quiescent);
        Assert.Equal(Exits - 1, sys.Kernel.Stats.DeviceRoundTrips);   // the fourth read RAM, not the device
    }

    [Fact]
    public void A_replayed_add_to_the_scratch_register_adds_this_exits_register_and_writes_where_it_read()
    {
        // Four ADDs at one RIP (the fourth replayed), EAX = n as exit n is taken: the scratch register ends at 1+2+3+4.
        Step? add = null;
        var valid = new bool[Exits + 1];
        using var sys = Loop(
            r =>
            {
                add = r.Add("add [rbx], eax (the scratch register)", a => a.add(__dword_ptr[rbx], eax), ExitReason.Mmio, Scratch, 4, false, [(3, Scratch)], []);
                r.Add("mov eax, [rbx] (after the loop: the sum)", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Scratch, 4, false, [(3, Scratch)], [], expect: 10);
            },
            (k, n) =>
            {
                if (n > Exits) return;
                valid[n] = k.ExitInFlight.MemoAt(0, add!.Rip).Valid;
                k.State.Gpr(0, 0) = (ulong)n;
            });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal([false, false, false, false, true], valid);   // replayed at the fourth
        Assert.Equal(2 * Exits + 1, sys.Kernel.Stats.DeviceRoundTrips);   // a read and a write each, then the load
        Assert.Equal(10UL, sys.Kernel.State.Gpr(0, 0));
    }

    [Fact]
    public void Two_replayed_adds_alternating_each_write_their_own_register()
    {
        // A adds 1 to the scratch register, B adds 0x100 to the 64-bit scratch register (exits A1 B2 ... A7 B8, A7 and B8
        // replayed): each write goes where its own read went, so the two sums stay apart.
        Step? addA = null, addB = null;
        using var sys = Loop(
            r =>
            {
                addA = r.Add("add [rbx], eax (scratch)", a => a.add(__dword_ptr[rbx], eax), ExitReason.Mmio, Scratch, 4, false, [(3, Scratch), (0, 1)], []);
                addB = r.Add("add [rsi], ecx (scratch64)", a => a.add(__dword_ptr[rsi], ecx), ExitReason.Mmio, Dev + TestDeviceRegs.Scratch64, 4, false, [(6, Dev + TestDeviceRegs.Scratch64), (1, 0x100)], []);
                r.Add("mov eax, [rbx] (after the loop)", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Scratch, 4, false, [(3, Scratch)], [], expect: Exits);
                r.Add("mov eax, [rsi] (after the loop)", a => a.mov(eax, __dword_ptr[rsi]), ExitReason.Mmio, Dev + TestDeviceRegs.Scratch64, 4, false, [(6, Dev + TestDeviceRegs.Scratch64)], [], expect: 0x100 * Exits);
            },
            (k, n) => { }, loopSteps: 2);
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(4 * Exits + 2, sys.Kernel.Stats.DeviceRoundTrips);
        // Both were replayed (A7, B8): their entries are complete.
        Assert.True(sys.Kernel.ExitInFlight.MemoAt(0, addA!.Rip).Valid);
        Assert.True(sys.Kernel.ExitInFlight.MemoAt(0, addB!.Rip).Valid);
    }

    [Fact]
    public void A_cmpxchg16b_is_never_replayed_so_a_misaligned_operand_is_still_a_general_protection_fault()
    {
        const ulong window = Dev + TestDeviceRegs.Window;
        using var sys = Loop(
            r => r.Add("lock cmpxchg16b [rsi] (the window)", a => a.@lock.cmpxchg16b(__xmmword_ptr[rsi]), ExitReason.Mmio, window, 16, false, [(6, window)], []),
            (k, n) => { if (n == Exits) k.State.Gpr(0, 6) = window + 8; });   // the same page, 8-byte aligned only
        Assert.True(sys.Run().Quiescent);
        Assert.Equal(13UL, OnlyException(sys).Event & 0xFF);   // #GP(0), before the device is asked
    }

    [Fact]
    public void A_replayed_add_into_a_register_loads_and_adds_and_writes_no_memory()
    {
        Step? add = null;
        var valid = new bool[Exits + 1];
        using var sys = Loop(
            r => add = r.Add("add eax, [rbx] (the ID register)", a => a.add(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev), (0, 5)], [],
                expect: 5 + (ulong)TestDeviceRegs.IdValue),
            (k, n) => { if (n <= Exits) valid[n] = k.ExitInFlight.MemoAt(0, add!.Rip).Valid; });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);   // each exit's EAX is 5 + the ID, the fourth's from the memo too
        Assert.Equal([false, false, false, false, true], valid);
        Assert.Equal(Exits, sys.Kernel.Stats.DeviceRoundTrips);
    }

    [Fact]
    public void A_string_move_at_one_rip_is_never_memoised()
    {
        // MOVSB from the scratch register to RAM, four times at one RIP: a form the memo does not take (its operands are
        // rSI and rDI, not a ModRM address), so every exit reads the device at rSI and stores at rDI.
        ulong ram = 0;
        Step? movs = null;
        using var sys = Loop(
            r => movs = r.Add("movsb (scratch -> RAM)", a => a.movsb(), ExitReason.Mmio, Scratch, 1, false, [(6, Scratch), (7, ram)], []),
            (k, n) => { if (n <= Exits) { k.State.Gpr(0, 6) = Scratch; k.State.Gpr(0, 7) = ram + (ulong)n; } },
            paging: (pt, mem, l) => ram = l.Data);
        Assert.True(sys.Run().Quiescent);
        Assert.False(sys.Kernel.ExitInFlight.MemoAt(0, movs!.Rip).Valid);
        Assert.Equal(Exits, sys.Kernel.Stats.DeviceRoundTrips);
    }

    [Fact]
    public void A_replayed_compare_reads_the_device_and_writes_nothing()
    {
        Step? cmp = null;
        bool replayed = false;
        using var sys = Loop(
            r => cmp = r.Add("cmp [rbx], eax (the ID register)", a => a.cmp(__dword_ptr[rbx], eax), ExitReason.Mmio, Dev, 4, false, [(3, Dev), (0, TestDeviceRegs.IdValue)], []),
            (k, n) => { if (n == Exits) replayed = k.ExitInFlight.MemoAt(0, cmp!.Rip).Valid; });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.True(replayed);   // the fourth exit took the memo
        Assert.Equal(Exits, sys.Kernel.Stats.DeviceRoundTrips);
        Assert.NotEqual(0UL, sys.Kernel.State.Rflags(0) & (1UL << 6));   // ZF: equal, at every exit and so at the last
    }

    [Fact]
    public void A_replayed_add_whose_register_moved_to_ram_reads_and_writes_ram_not_the_device()
    {
        // After three ADDs to the scratch register, the fourth's RBX points at RAM (another page): its read and its write
        // are RAM's; the device sees neither (no write to the page the third ADD wrote).
        ulong ram = 0;
        Step? add = null;
        bool memoised = false;
        using var sys = Loop(
            r => add = r.Add("add [rbx], eax", a => a.add(__dword_ptr[rbx], eax), ExitReason.Mmio, Scratch, 4, false, [(3, Scratch), (0, 5)], []),
            (k, n) =>
            {
                if (n != Exits) return;
                memoised = k.ExitInFlight.MemoAt(0, add!.Rip).Valid;   // the replay meets the other page
                k.State.Gpr(0, 3) = ram;
                k.Memory.WriteU32(ram, 0x100);
            },
            paging: (pt, mem, l) => ram = l.Data);   // guest RAM, identity-mapped
        Assert.True(sys.Run().Quiescent);
        Assert.True(memoised);
        Assert.Equal(2 * (Exits - 1), sys.Kernel.Stats.DeviceRoundTrips);
        Assert.Equal(0x105u, sys.Kernel.Memory.ReadU32(ram));
    }

    const ushort UartScratch = 0x3F8 + 7;   // the UART model's scratch register (reads back what was written)

    [Fact]
    public void A_replayed_out_writes_this_exits_value_and_an_in_after_the_loop_reads_the_last()
    {
        var valid = new bool[Exits + 3];   // four OUTs, the IN, the program's end
        Step? output = null;
        using var sys = Loop(
            r =>
            {
                output = r.Add("out dx, al", a => a.@out(dx, al), ExitReason.Io, 0, 1, true, [(2, UartScratch)], [], port: UartScratch);
                r.Add("in al, dx (after the loop: what the last out left)", a => a.@in(al, dx), ExitReason.Io, 0, 1, false, [(2, UartScratch), (0, 0)], [], port: UartScratch, expect: 0x44);
            },
            (k, n) => { valid[n] = k.ExitInFlight.MemoAt(0, output!.Rip).Valid; if (n <= Exits) k.State.Gpr(0, 0) = 0x40UL + (ulong)n; });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.True(valid[4]);   // the fourth OUT was replayed
        Assert.Equal(Exits + 1, sys.Kernel.Stats.DeviceRoundTrips);
    }

    [Fact]
    public void IOPL_lowered_below_CPL_before_a_replayed_out_to_a_port_the_exit_did_not_report_is_a_general_protection_fault()
    {
        using var sys = Loop(
            r => r.Add("out dx, al at CPL 3", a => a.@out(dx, al), ExitReason.Io, 0, 1, true, [(2, UartScratch), (0, 0x33)], [], port: UartScratch),
            (k, n) =>
            {
                if (n == 1)
                {
                    EnterCpl3(k);
                    k.State.Rflags(0) |= FaultContext.RflagsIoplMask;   // IOPL 3: CPL 3 may
                }
                // Below IOPL only the port the hardware reported (the TSS bitmap allowed it) may be used: DX now names another.
                if (n == Exits) { k.State.Rflags(0) &= ~FaultContext.RflagsIoplMask; k.State.Gpr(0, 2) = UartScratch - 1; }
            },
            paging: UserCode);
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(13UL, OnlyException(sys).Event & 0xFF);   // #GP(0)
        Assert.Equal(Exits - 1, sys.Kernel.Stats.DeviceRoundTrips);
        Assert.Equal(1, sys.Kernel.Stats.IoPrivilegeFaults);
    }

    /// <summary>The leaf entry for <paramref name="linear"/> under the 4-level tables at <paramref name="root"/>.</summary>
    /// <summary>The 4 KiB PTE that maps <paramref name="linear"/> under the four-level tables at <paramref name="root"/>.</summary>
    internal static ulong Pte(GuestMemory mem, ulong root, ulong linear)
    {
        ulong table = root;
        for (int level = 4; level > 1; level--)
            table = mem.ReadU64(table + ((linear >> (12 + 9 * (level - 1))) & 0x1FF) * 8) & 0x000F_FFFF_FFFF_F000UL;
        return table + ((linear >> 12) & 0x1FF) * 8;
    }
}

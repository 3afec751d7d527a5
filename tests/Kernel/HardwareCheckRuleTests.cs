using Copra.Hot.Exit;
using Xunit;
using static Copra.Tests.Kernel.HardwareRig;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// The hardware check (ExitPipeline.Hardware.cs, CheckHardware): every hardware exit's record is compared with the
/// kernel's decode, and each disagreement is counted by what disagreed (address, size, direction, data) and once in
/// DecodeMismatch. One rule per test, through <see cref="HardwareRig"/> (KVM's part played over the replay guest).
/// </summary>
public class HardwareCheckRuleTests
{
    /// <summary>Runs one instruction; its one exit's outcome (or, with <paramref name="second"/>, the second of its two).</summary>
    static HwOutcome One(Action<Builder> build, bool second = false, Action<Copra.Hot.Guest.PageTableBuilder>? map = null)
    {
        using var rig = new HardwareRig(build, map: map);
        rig.Run();
        Assert.Equal(second ? 2 : 1, rig.Outcomes.Count);
        return rig.Outcomes[^1];
    }

    static void Agrees(HwOutcome o) => Assert.True(o.Mismatches == 0 && o.Decode == 0, o.ToString());

    static void Only(HwOutcome o, long address = 0, long size = 0, long direction = 0, long data = 0)
    {
        Assert.True(o.Address == address && o.Size == size && o.Direction == direction && o.Data == data, o.ToString());
        Assert.Equal(o.Mismatches > 0 ? 1 : 0, o.Decode);
    }

    // ---- memory: direction and data -----------------------------------------------------------

    [Theory]
    [InlineData("cmp")]
    [InlineData("test")]
    public void A_compare_that_only_reads_reported_as_a_write_is_a_direction_mismatch(string op)
    {
        Only(One(b => b.Add(op, a => { if (op == "cmp") a.cmp(__dword_ptr[rbx + 8], eax); else a.test(__dword_ptr[rbx + 8], eax); },
            [(3, Dev), (0, 1)], [HwSide.Store(Dev + 8, 4, 1)])), direction: 1);
    }

    [Fact]
    public void A_system_store_writes_kvms_own_register_image_which_the_check_does_not_second_guess()
    {
        // SGDT's first fragment: the limit and the base's low six bytes, as KVM read them (the kernel's copy is not KVM's).
        Agrees(One(b => b.Add("sgdt [m]", a => a.sgdt(__[rbx + 0x1000]), [(3, Dev)], [HwSide.Store(Dev + 0x1000, 8, 0x1234_5678_0027)])));
        Agrees(One(b => b.Add("smsw [m]", a => a.smsw(__word_ptr[rbx + 8]), [(3, Dev)], [HwSide.Store(Dev + 8, 2, 0x33)])));
    }

    [Fact]
    public void Store_data_is_compared_at_the_access_size_only()
    {
        // STOSB stores AL: RAX's upper bytes and the record's bytes past the first are not the instruction's.
        Agrees(One(b => b.Add("stosb", a => a.stosb(), [(7, Dev + 8), (0, 0x1122_3344)], [HwSide.Store(Dev + 8, 1, 0xFFFF_FF44)])));
        Only(One(b => b.Add("stosb", a => a.stosb(), [(7, Dev + 8), (0, 0x1122_3344)], [HwSide.Store(Dev + 8, 1, 0x45)])), data: 1);
    }

    [Fact]
    public void Each_known_store_value_is_compared_and_a_wrong_one_is_a_data_mismatch()
    {
        Only(One(b => b.Add("mov dword [m], imm", a => a.mov(__dword_ptr[rbx + 8], 0x5566_7788), [(3, Dev)], [HwSide.Store(Dev + 8, 4, 0x5566_7789)])), data: 1);
        Only(One(b => b.Add("stosd", a => a.stosd(), [(7, Dev + 8), (0, 0x99)], [HwSide.Store(Dev + 8, 4, 0x98)])), data: 1);
        Only(One(b => b.Add("sete", a => a.sete(__byte_ptr[rbx + 8]), [(3, Dev)], [HwSide.Store(Dev + 8, 1, 1)])), data: 1);   // ZF clear: 0
        Only(One(b => b.Add("fnstcw", a => a.fnstcw(__word_ptr[rbx + 8]), [(3, Dev)], [HwSide.Store(Dev + 8, 2, 0x037E)], [(Abi.StateField.Fcw, 0x037F)])), data: 1);
        Only(One(b => b.Add("fnstsw", a => a.fnstsw(__word_ptr[rbx + 8]), [(3, Dev)], [HwSide.Store(Dev + 8, 2, 0x3801)], [(Abi.StateField.Fsw, 0x3800)])), data: 1);
        Only(One(b => b.Add("xchg [m], eax", a => a.xchg(__dword_ptr[rbx + 8], eax), [(3, Dev), (0, 0x4242)], [HwSide.Read(Dev + 8, 4), HwSide.Store(Dev + 8, 4, 0x4243)]), second: true), data: 1);
    }

    /// <summary>
    /// KVM reports a read-modify-write's write after the instruction has written its registers and flags: the expected
    /// data comes from the state the instruction's read exit saw, not from the state at the write exit.
    /// </summary>
    [Fact]
    public void A_read_modify_writes_store_is_checked_against_the_registers_and_flags_its_read_saw()
    {
        // XCHG stores EAX as it was (0x4242); by the write exit the hardware has put the old memory value in EAX.
        Agrees(One(b => b.Add("xchg [m], eax", a => a.xchg(__dword_ptr[rbx + 8], eax), [(3, Dev), (0, 0x4242)],
            [HwSide.Read(Dev + 8, 4), HwSide.Store(Dev + 8, 4, 0x4242) with { Regs = [(0, 0x7777)] }]), second: true));
        Only(One(b => b.Add("xchg [m], eax", a => a.xchg(__dword_ptr[rbx + 8], eax), [(3, Dev), (0, 0x4242)],
            [HwSide.Read(Dev + 8, 4), HwSide.Store(Dev + 8, 4, 0x7777) with { Regs = [(0, 0x7777)] }]), second: true), data: 1);
        // ADC stores old + EAX + CF with CF as it was before (set); by the write exit the hardware's flags have CF clear.
        // The device register's value is the rig's: learnt from a first run (the hand-back of the read).
        ulong old;
        using (var rig = new HardwareRig(b => b.Add("adc [m], eax", a => a.adc(__dword_ptr[rbx + 8], eax), [(3, Dev), (0, 0x10)],
            [HwSide.Read(Dev + 8, 4), HwSide.Store(Dev + 8, 4, 0)], [(Abi.StateField.Rflags, 0x3)])))
        {
            rig.Run();
            old = rig.Outcomes[0].HandedBack!.Value;
        }
        HwOutcome Adc(ulong stored) => One(b => b.Add("adc [m], eax", a => a.adc(__dword_ptr[rbx + 8], eax), [(3, Dev), (0, 0x10)],
            [HwSide.Read(Dev + 8, 4), HwSide.Store(Dev + 8, 4, stored & 0xFFFF_FFFF) with { Rflags = 0x2 }], [(Abi.StateField.Rflags, 0x3)]), second: true);
        Agrees(Adc(old + 0x11));
        Only(Adc(old + 0x10), data: 1);
    }

    [Fact]
    public void A_movs_from_ram_is_checked_against_the_ram_and_one_from_a_device_or_an_unmapped_source_is_not()
    {
        using (var rig = new HardwareRig(b =>
        {
            ulong ram = b.Layout.Data;
            b.Add("movsd (ram to device)", a => a.movsd(), [(6, ram), (7, Dev + 8)], [HwSide.Store(Dev + 8, 4, 0x1357_9BDF)]);
            b.Add("movsd (ram to device, wrong data)", a => a.movsd(), [(6, ram), (7, Dev + 8)], [HwSide.Store(Dev + 8, 4, 0x1357_9BDE)]);
            b.Add("movsd (unmapped to device)", a => a.movsd(), [(6, 0x40_0000_0000), (7, Dev + 8)], [HwSide.Store(Dev + 8, 4, 0x2468)]);
            // The source is the device (read first, its own exit): the value written is the device's, not compared.
            b.Add("movsd (device to device)", a => a.movsd(), [(6, Dev), (7, Dev + 8)], [HwSide.Read(Dev, 4), HwSide.Store(Dev + 8, 4, 0x2468)]);
        }))
        {
            rig.Memory.WriteU64(rig.Data, 0xFFFF_FFFF_1357_9BDF);
            rig.Run();
            Assert.Equal([0L, 1, 0, 0, 0], rig.Outcomes.Select(o => o.Data));
            // Each exit ends with its side handed back to the hardware (the device-to-device store too), none left in flight.
            Assert.All(rig.Outcomes, o => Assert.NotNull(o.HandedBack));
            Assert.Equal((5L, 0L), (rig.Stats.Completed, rig.Stats.InFlight));
            Assert.Equal(0, rig.Outcomes.Sum(o => o.Address + o.Size + o.Direction));
        }
    }

    // ---- memory: address and size --------------------------------------------------------------

    [Fact]
    public void A_memory_exit_at_another_address_than_the_decodes_is_an_address_mismatch()
    {
        Only(One(b => b.Add("mov eax, [m]", a => a.mov(eax, __dword_ptr[rbx + 8]), [(3, Dev)], [HwSide.Read(Dev + 12, 4)])), address: 1);
        // An 8-byte access is narrow: its exit's address is its own, not anywhere inside it.
        Only(One(b => b.Add("mov rax, [m]", a => a.mov(rax, __qword_ptr[rbx + 0x10]), [(3, Dev)], [HwSide.Read(Dev + 0x14, 8)])), address: 1);
        // The decode's address is not mapped: the hardware's cannot be it.
        Only(One(b => b.Add("mov eax, [m] (unmapped)", a => a.mov(eax, __dword_ptr[rbx]), [(3, 0x40_0000_0000)], [HwSide.Read(0, 4)])), address: 1);
    }

    [Fact]
    public void The_decodes_address_is_translated_for_the_direction_the_hardware_reports()
    {
        // A read-only alias of the device: a read through it translates, a write cannot (the hardware would have faulted).
        const ulong Alias = 0x50_0000_0000;
        static HwOutcome Via(bool write) => One(b => b.Add(write ? "mov [alias], eax" : "mov eax, [alias]",
            a => { if (write) a.mov(__dword_ptr[rbx + 8], eax); else a.mov(eax, __dword_ptr[rbx + 8]); }, [(3, Alias), (0, 7)],
            [write ? HwSide.Store(Dev + 8, 4, 7) : HwSide.Read(Dev + 8, 4)]), map: t => t.Map(Alias, Dev, 0x1000, Copra.Hot.Guest.PageSize.Size4K, writable: false, executable: false));
        Agrees(Via(write: false));
        Only(Via(write: true), address: 1);
    }

    [Fact]
    public void A_cmps_exit_may_be_either_operands_and_no_other_address()
    {
        using var rig = new HardwareRig(b =>
        {
            b.Add("cmpsd (ram, device)", a => a.cmpsd(), [(6, b.Layout.Data), (7, Dev + 8)], [HwSide.Read(Dev + 8, 4)]);
            b.Add("cmpsd (device, device)", a => a.cmpsd(), [(6, Dev + 0x10), (7, Dev + 8)], [HwSide.Read(Dev + 0x10, 4), HwSide.Read(Dev + 8, 4)]);
            b.Add("cmpsd (neither)", a => a.cmpsd(), [(6, Dev + 0x10), (7, Dev + 8)], [HwSide.Read(Dev + 0x20, 4)]);
        });
        rig.Run();
        Assert.Equal([0L, 0, 0, 1], rig.Outcomes.Select(o => o.Address));
        Assert.Equal(1, rig.Stats.DecodeMismatch);
    }

    [Fact]
    public void A_wide_access_fragment_must_lie_inside_the_access()
    {
        static HwOutcome At(ulong gpa) => One(b => b.Add("movdqu [m], xmm0", a => a.movdqu(__xmmword_ptr[rbx + 0x1000], xmm0), [(3, Dev)], [HwSide.Store(gpa, 8, 1)]));
        Agrees(At(Dev + 0x1000));
        Agrees(At(Dev + 0x1008));
        Only(At(Dev + 0x1010), address: 1);
        Only(At(Dev + 0x0FF8), address: 1);
    }

    [Fact]
    public void An_fxsave_fragment_may_lie_anywhere_in_the_512_byte_image()
    {
        static HwOutcome At(ulong gpa) => One(b => b.Add("fxsave [m]", a => a.fxsave(__[rbx + 0x1000]), [(3, Dev)], [HwSide.Store(gpa, 8, 1)]));
        Agrees(At(Dev + 0x1000 + 504));
        Only(At(Dev + 0x1000 + 512), address: 1);
        static HwOutcome ReadAt(ulong gpa) => One(b => b.Add("fxrstor [m]", a => a.fxrstor(__[rbx + 0x1000]), [(3, Dev)], [HwSide.Read(gpa, 8)]));
        Agrees(ReadAt(Dev + 0x1000 + 256));
        Only(ReadAt(Dev + 0x1000 + 512), address: 1);
    }

    [Fact]
    public void A_narrow_access_must_have_the_decodes_size_and_a_wide_one_fragments_of_at_most_8_bytes()
    {
        Only(One(b => b.Add("mov rax, [m]", a => a.mov(rax, __qword_ptr[rbx + 0x10]), [(3, Dev)], [HwSide.Read(Dev + 0x10, 4)])), size: 1);
        Only(One(b => b.Add("movdqu xmm0, [m]", a => a.movdqu(xmm0, __xmmword_ptr[rbx + 0x1000]), [(3, Dev)], [HwSide.Read(Dev + 0x1000, 16)])), size: 1);
        Agrees(One(b => b.Add("movdqu xmm0, [m]", a => a.movdqu(xmm0, __xmmword_ptr[rbx + 0x1000]), [(3, Dev)], [HwSide.Read(Dev + 0x1000, 4)])));
    }

    // ---- port I/O ----------------------------------------------------------------------------

    [Fact]
    public void Every_hardware_exit_is_checked_once_and_a_port_write_then_read_agrees()
    {
        using var rig = new HardwareRig(b =>
        {
            b.Add("out dx, al", a => a.@out(dx, al), [(2, UartScratch), (0, 0x1234_56A5)], [HwSide.Out(UartScratch, 1, 0xA5)]);
            b.Add("in al, dx", a => a.@in(al, dx), [(2, UartScratch), (0, 0)], [HwSide.In(UartScratch, 1)]);
        });
        rig.Run();
        Assert.Equal(2, rig.Stats.HardwareChecked);
        Assert.All(rig.Outcomes, Agrees);
        // The UART's scratch register got the hardware's byte and gave it back.
        Assert.Equal(0xA5UL, rig.Outcomes[1].HandedBack);
        Assert.Equal(0UL, rig.Outcomes[0].HandedBack);
    }

    [Fact]
    public void A_port_write_reported_as_a_read_is_a_direction_mismatch_and_its_data_is_not_compared()
    {
        Only(One(b => b.Add("out dx, al", a => a.@out(dx, al), [(2, UartScratch), (0, 0x5A)], [HwSide.In(UartScratch, 1)])), direction: 1);
    }

    [Fact]
    public void A_port_read_reported_as_a_write_is_a_direction_mismatch()
    {
        Only(One(b => b.Add("in al, dx", a => a.@in(al, dx), [(2, UartScratch)], [HwSide.Out(UartScratch, 1, 0x77)])), direction: 1);
    }

    [Fact]
    public void A_port_write_whose_data_differs_from_the_register_is_a_data_mismatch()
    {
        Only(One(b => b.Add("out dx, al", a => a.@out(dx, al), [(2, UartScratch), (0, 0x5A)], [HwSide.Out(UartScratch, 1, 0x5B)])), data: 1);
    }

    [Fact]
    public void Port_data_is_compared_at_the_access_size_only()
    {
        // Bytes above the access size in the record's data (KVM's buffer holds 8) are not the instruction's.
        Agrees(One(b => b.Add("out dx, al", a => a.@out(dx, al), [(2, UartScratch), (0, 0x5A)], [HwSide.Out(UartScratch, 1, 0xFFFF_FF5A)])));
    }

    [Fact]
    public void A_port_in_dx_is_compared_with_dx_and_an_immediate_port_with_the_immediate()
    {
        Only(One(b => b.Add("out dx, al", a => a.@out(dx, al), [(2, UartScratch), (0, 1)], [HwSide.Out(UartScratch - 1, 1, 1)])), address: 1);
        // DX is not the port of an immediate form (the record's port 0: nothing to check in the decode's front, the check sees it).
        Agrees(One(b => b.Add("out 0x80, al", a => a.@out(0x80, al), [(2, UartScratch), (0, 1)], [HwSide.Out(0x80, 1, 1)])));
        Only(One(b => b.Add("out 0x80, al", a => a.@out(0x80, al), [(2, 0x80), (0, 1)], [HwSide.Out(0, 1, 1)])), address: 1);
    }

    [Fact]
    public void A_port_access_of_another_size_is_a_size_mismatch()
    {
        Only(One(b => b.Add("out dx, al", a => a.@out(dx, al), [(2, UartScratch), (0, 1)], [HwSide.Out(UartScratch, 2, 1)])), size: 1);
    }
}

/// <summary>
/// Every memory form's direction, address, size and write data as the hardware check sees them: each form reported
/// as the hardware reports it agrees with the decode; reported in the other direction (where it has only one), it is a
/// direction mismatch and nothing is performed. RBX points at the test device (+8 scratch, +0x10 scratch64, +0x1000 the
/// window), RSI/RDI at it or at RAM for the string forms.
/// </summary>
public class HardwareFormDirectionTests
{
    const ulong Dev = HardwareRig.Dev, Scratch = Dev + 8, Scratch64 = Dev + 0x10, Window = Dev + 0x1000;
    const ulong Zf = 1UL << 6, Reserved = 2;

    /// <summary>A form: its instruction, registers, state presets, the hardware's exits for it, and whether it has only one direction.</summary>
    sealed record Form(Action<Iced.Intel.Assembler> Insn, (int, ulong)[] Regs, HwSide[] Sides, (ulong, ulong)[]? State = null, bool OneWay = true);

    static readonly (int, ulong)[] AtDev = [(3, Dev), (0, 0x1122_3344)];

    static readonly Dictionary<string, Form> Forms = new()
    {
        ["mov eax, [m]"] = new(a => a.mov(eax, __dword_ptr[rbx + 8]), AtDev, [HwSide.Read(Scratch, 4)]),
        ["movzx eax, byte [m]"] = new(a => a.movzx(eax, __byte_ptr[rbx + 8]), AtDev, [HwSide.Read(Scratch, 1)]),
        ["movsx eax, word [m]"] = new(a => a.movsx(eax, __word_ptr[rbx + 8]), AtDev, [HwSide.Read(Scratch, 2)]),
        ["cmove eax, [m]"] = new(a => a.cmove(eax, __dword_ptr[rbx + 8]), AtDev, [HwSide.Read(Scratch, 4)]),
        ["lodsd"] = new(a => a.lodsd(), [(6, Scratch)], [HwSide.Read(Scratch, 4)]),
        ["scasd"] = new(a => a.scasd(), [(7, Scratch)], [HwSide.Read(Scratch, 4)]),
        ["movdqu xmm0, [m]"] = new(a => a.movdqu(xmm0, __xmmword_ptr[rbx + 0x1000]), AtDev, [HwSide.Read(Window, 8)]),
        ["push qword [m]"] = new(a => a.push(__qword_ptr[rbx + 0x10]), AtDev, [HwSide.Read(Scratch64, 8)]),
        ["call qword [m]"] = new(a => a.call(__qword_ptr[rbx + 0x10]), AtDev, [HwSide.Read(Scratch64, 8)]),
        ["jmp qword [m]"] = new(a => a.jmp(__qword_ptr[rbx + 0x10]), AtDev, [HwSide.Read(Scratch64, 8)]),
        ["lgdt [m]"] = new(a => a.lgdt(__[rbx + 0x1000]), AtDev, [HwSide.Read(Window, 8)]),
        ["mov ds, [m]"] = new(a => a.mov(ds, __word_ptr[rbx + 8]), AtDev, [HwSide.Read(Scratch, 2)]),
        ["jmp far [m]"] = new(a => a.jmp(__fword_ptr[rbx + 0x1000]), AtDev, [HwSide.Read(Window, 6)]),
        ["call far [m]"] = new(a => a.call(__fword_ptr[rbx + 0x1000]), AtDev, [HwSide.Read(Window, 6)]),
        ["lfs eax, [m]"] = new(a => a.lfs(eax, __fword_ptr[rbx + 0x1000]), AtDev, [HwSide.Read(Window, 6)]),
        ["movq mm0, [m]"] = new(a => a.movq(mm0, __qword_ptr[rbx + 0x10]), AtDev, [HwSide.Read(Scratch64, 8)]),
        ["fxrstor [m]"] = new(a => a.fxrstor(__[rbx + 0x1000]), AtDev, [HwSide.Read(Window, 8)]),
        ["cmp [m], eax"] = new(a => a.cmp(__dword_ptr[rbx + 8], eax), AtDev, [HwSide.Read(Scratch, 4)], OneWay: false),
        ["test [m], eax"] = new(a => a.test(__dword_ptr[rbx + 8], eax), AtDev, [HwSide.Read(Scratch, 4)], OneWay: false),
        ["bt [m], eax"] = new(a => a.bt(__dword_ptr[rbx + 8], eax), [(3, Dev), (0, 3)], [HwSide.Read(Scratch, 4)]),

        ["mov [m], eax"] = new(a => a.mov(__dword_ptr[rbx + 8], eax), AtDev, [HwSide.Store(Scratch, 4, 0x1122_3344)]),
        ["mov dword [m], imm"] = new(a => a.mov(__dword_ptr[rbx + 8], 0x5566_7788), AtDev, [HwSide.Store(Scratch, 4, 0x5566_7788)]),
        ["stosd"] = new(a => a.stosd(), [(7, Scratch), (0, 0x99AA_BBCC)], [HwSide.Store(Scratch, 4, 0x99AA_BBCC)]),
        ["sete byte [m]"] = new(a => a.sete(__byte_ptr[rbx + 8]), AtDev, [HwSide.Store(Scratch, 1, 1)], [(Abi.StateField.Rflags, Reserved | Zf)]),
        ["movdqu [m], xmm0"] = new(a => a.movdqu(__xmmword_ptr[rbx + 0x1000], xmm0), AtDev, [HwSide.Store(Window, 8, 0xDEAD_BEEF)]),
        ["pop qword [m]"] = new(a => a.pop(__qword_ptr[rbx + 0x10]), AtDev, [HwSide.Store(Scratch64, 8, 0xDEAD_BEEF)]),
        ["sgdt [m]"] = new(a => a.sgdt(__[rbx + 0x1000]), AtDev, [HwSide.Store(Window, 8, 0x1234_5678_0027)]),
        ["fnstcw [m]"] = new(a => a.fnstcw(__word_ptr[rbx + 8]), AtDev, [HwSide.Store(Scratch, 2, 0x037F)], [(Abi.StateField.Fcw, 0x037F)]),
        ["fnstsw [m]"] = new(a => a.fnstsw(__word_ptr[rbx + 8]), AtDev, [HwSide.Store(Scratch, 2, 0x3800)], [(Abi.StateField.Fsw, 0x3800)]),
        ["movq [m], mm0"] = new(a => a.movq(__qword_ptr[rbx + 0x10], mm0), AtDev, [HwSide.Store(Scratch64, 8, 0xDEAD_BEEF)]),
        ["fxsave [m]"] = new(a => a.fxsave(__[rbx + 0x1000]), AtDev, [HwSide.Store(Window, 8, 0xDEAD_BEEF)]),

        // Both directions: each side as the hardware reports it.
        ["add [m], eax"] = new(a => a.add(__dword_ptr[rbx + 8], eax), [(3, Dev), (0, 3)], [HwSide.Read(Scratch, 4), HwSide.Store(Scratch, 4, 3)], OneWay: false),
        ["bts [m], eax"] = new(a => a.bts(__dword_ptr[rbx + 8], eax), [(3, Dev), (0, 4)], [HwSide.Read(Scratch, 4), HwSide.Store(Scratch, 4, 0x10)], OneWay: false),
        ["xchg [m], eax"] = new(a => a.xchg(__dword_ptr[rbx + 8], eax), [(3, Dev), (0, 0x4242)], [HwSide.Read(Scratch, 4), HwSide.Store(Scratch, 4, 0x4242)], OneWay: false),
        ["movsd (device to device)"] = new(a => a.movsd(), [(6, Scratch), (7, Scratch64)], [HwSide.Read(Scratch, 4), HwSide.Store(Scratch64, 4, 0xABCD)], OneWay: false),
        ["movdir64b"] = new(a => a.movdir64b(rax, __zmmword_ptr[rsi]), [(0, Window), (6, Window + 0x40)], [HwSide.Read(Window + 0x40, 8), HwSide.Store(Window, 8, 0xDEAD_BEEF)], OneWay: false),
    };

    public static TheoryData<string> Names() => [.. Forms.Keys];
    public static TheoryData<string> OneWayNames() => [.. Forms.Where(f => f.Value.OneWay).Select(f => f.Key)];

    [Theory]
    [MemberData(nameof(Names))]
    public void Each_form_reported_as_the_hardware_reports_it_agrees_with_the_decode(string name)
    {
        var f = Forms[name];
        using var rig = new HardwareRig(b => b.Add(name, f.Insn, f.Regs, f.Sides, f.State));
        rig.Run();
        Assert.Equal(f.Sides.Length, rig.Outcomes.Count);
        Assert.All(rig.Outcomes, o => Assert.True(o.Mismatches == 0 && o.Decode == 0, o.ToString()));
        Assert.Equal(f.Sides.Length, rig.Stats.HardwareChecked);
    }

    [Theory]
    [MemberData(nameof(OneWayNames))]
    public void A_one_way_form_reported_in_the_other_direction_is_a_direction_mismatch_and_nothing_is_performed(string name)
    {
        var f = Forms[name];
        var s = f.Sides[0];
        var flipped = s with { Write = !s.Write, Data = 0x5A5A };
        using var rig = new HardwareRig(b => b.Add(name, f.Insn, f.Regs, [flipped], f.State));
        rig.Run();
        var o = Assert.Single(rig.Outcomes);
        // Reported the other way, nothing else is compared: a write's data is not checked against a form that does not write.
        Assert.True(o.Direction == 1 && o.Decode == 1 && o.Mismatches == 1, o.ToString());
        // The decode has no side that way: the hardware gets 0 at once, no device is asked.
        Assert.Equal(0UL, o.HandedBack);
        Assert.Equal(0, rig.Stats.DeviceRoundTrips);
    }
}

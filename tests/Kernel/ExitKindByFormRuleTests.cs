using Copra.Hot.Exit;
using Copra.Kernel.Backends;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// Every finished exit is recorded under the kind its instruction's form names (hot/Exit/ExitPipeline.cs, KindOf, through
/// EndInstruction): IN and OUT as port exits, INS/OUTS as port strings, MOVS/STOS/LODS/SCAS/CMPS on a device as MMIO
/// strings, ALU/XCHG/BT as MMIO read-modify-writes, every store form (MOV, an immediate, SETcc, a vector store, POP m,
/// SGDT, FNSTCW/FNSTSW, an MMX store, FXSAVE, MOVDIR64B) as an MMIO write, and the loads as MMIO reads. Each group is run
/// on its own so that a form counted under another kind shows which form it was. Through the replay guest in long mode
/// (the test device's window on the memory side, a port the UART owns on the port side).
/// </summary>
public class ExitKindByFormRuleTests
{
    const ulong Dev = 0xFEB0_0000, Window = Dev + 0x1000;
    const ushort UartScratch = 0x3F8 + 7;

    static long[] Kinds(Action<ReplayRig, VmLayout> build)
    {
        using var sys = FaultSemanticsTests.Boot(build, longMode: true);
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(0, sys.Replay!.ExceptionsSeen);
        return sys.Kernel.Stats.Count;
    }

    static void AssertOnly(long[] count, ExitKind kind, int n)
    {
        for (int k = 0; k < count.Length; k++)
            if ((ExitKind)k != ExitKind.Hlt) Assert.True(count[k] == ((ExitKind)k == kind ? n : 0), $"{(ExitKind)k}: {count[k]} (expected {((ExitKind)k == kind ? n : 0)} {kind})");
    }

    [Fact]
    public void In_and_out_are_port_exits_and_ins_and_outs_port_strings()
    {
        AssertOnly(Kinds((r, l) => r.Add("in al, dx", a => a.@in(al, dx), ExitReason.Io, 0, 1, false, [(2, UartScratch)], [], port: UartScratch)),
            ExitKind.PortIn, 1);
        AssertOnly(Kinds((r, l) => r.Add("out dx, al", a => a.@out(dx, al), ExitReason.Io, 0, 1, true, [(2, UartScratch), (0, 0x5A)], [], port: UartScratch)),
            ExitKind.PortOut, 1);
        AssertOnly(Kinds((r, l) =>
        {
            r.Add("insb", a => a.insb(), ExitReason.Io, 0, 1, false, [(2, UartScratch), (7, l.Data + 0x400)], [], port: UartScratch).Flags |= ExitFlags.String;
            r.Add("outsb", a => a.outsb(), ExitReason.Io, 0, 1, true, [(2, UartScratch), (6, l.Data + 0x400)], [], port: UartScratch).Flags |= ExitFlags.String;
        }), ExitKind.PortString, 2);
    }

    [Fact]
    public void String_forms_on_a_device_are_mmio_string_exits()
    {
        AssertOnly(Kinds((r, l) =>
        {
            (int, ulong)[] regs = [(6, Window), (7, Window + 0x40), (0, 0x11)];
            r.Add("movsb", a => a.movsb(), ExitReason.Mmio, Window, 1, false, regs, []).Flags |= ExitFlags.String;
            r.Add("stosb", a => a.stosb(), ExitReason.Mmio, Window + 0x40, 1, true, regs, []).Flags |= ExitFlags.String;
            r.Add("lodsb", a => a.lodsb(), ExitReason.Mmio, Window, 1, false, regs, []).Flags |= ExitFlags.String;
            r.Add("scasb", a => a.scasb(), ExitReason.Mmio, Window + 0x40, 1, false, regs, []).Flags |= ExitFlags.String;
            r.Add("cmpsb", a => a.cmpsb(), ExitReason.Mmio, Window, 1, false, regs, []).Flags |= ExitFlags.String;
        }), ExitKind.MmioString, 5);
    }

    [Fact]
    public void Alu_xchg_and_bt_on_a_device_are_mmio_alu_exits()
    {
        (int, ulong)[] b = [(3, Window), (0, 3)];
        AssertOnly(Kinds((r, l) => r.Add("add [rbx], eax", a => a.add(__dword_ptr[rbx], eax), ExitReason.Mmio, Window, 4, false, b, [])), ExitKind.MmioAlu, 1);
        AssertOnly(Kinds((r, l) => r.Add("xchg [rbx], eax", a => a.xchg(__dword_ptr[rbx], eax), ExitReason.Mmio, Window, 4, false, b, [])), ExitKind.MmioAlu, 1);
        AssertOnly(Kinds((r, l) => r.Add("bt dword [rbx], 1", a => a.bt(__dword_ptr[rbx], 1), ExitReason.Mmio, Window, 4, false, b, [])), ExitKind.MmioAlu, 1);
    }

    [Fact]
    public void Every_store_form_is_an_mmio_write_exit()
    {
        (int, ulong)[] b = [(3, Window), (0, 0x77)];
        (string Text, Action<Iced.Intel.Assembler> Insn, byte Size, (int, ulong)[] Regs)[] stores =
        [
            ("mov [rbx], eax", a => a.mov(__dword_ptr[rbx], eax), 4, b),
            ("mov dword [rbx], 5", a => a.mov(__dword_ptr[rbx], 5), 4, b),
            ("sete byte [rbx]", a => a.sete(__byte_ptr[rbx]), 1, b),
            ("movdqu [rbx], xmm1", a => a.movdqu(__xmmword_ptr[rbx], xmm1), 16, b),
            ("pop qword [rbx]", a => a.pop(__qword_ptr[rbx]), 8, [(3, Window)]),
            ("sgdt [rbx]", a => a.sgdt(__[rbx]), 10, b),
            ("fnstcw [rbx]", a => a.fnstcw(__word_ptr[rbx]), 2, b),
            ("fnstsw [rbx]", a => a.fnstsw(__word_ptr[rbx]), 2, b),
            ("movq [rbx], mm0", a => a.movq(__qword_ptr[rbx], mm0), 8, b),
            ("fxsave [rbx]", a => a.fxsave(__[rbx]), 16, b),
        ];
        foreach (var s in stores)
            AssertOnly(Kinds((r, l) =>
            {
                var regs = s.Regs.Concat([(4, l.Data + 0x800)]).ToArray();
                r.Add(s.Text, s.Insn, ExitReason.Mmio, Window, s.Size, true, regs, []);
            }), ExitKind.MmioWrite, 1);
        AssertOnly(Kinds((r, l) => r.Add("movdir64b rdi, [rsi]", a => a.movdir64b(rdi, __zmmword_ptr[rsi]), ExitReason.Mmio, Window + 0x40, 64, true,
            [(6, l.Data + 0x400), (7, Window + 0x40)], [])), ExitKind.MmioWrite, 1);
    }

    [Fact]
    public void Loads_are_mmio_read_exits()
    {
        (int, ulong)[] b = [(3, Window)];
        AssertOnly(Kinds((r, l) =>
        {
            r.Add("mov eax, [rbx]", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Window, 4, false, b, []);
            r.Add("movzx eax, byte [rbx]", a => a.movzx(eax, __byte_ptr[rbx]), ExitReason.Mmio, Window, 1, false, b, []);
        }), ExitKind.MmioRead, 2);
    }
}

using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Kernel.Backends;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// The memory side on RAM and the exit's outcome counters (hot/Exit/ExitPipeline.cs MemorySide and InjectException),
/// through the replay guest in long mode: an element whose write side is RAM (MOVSB from the device into RAM) stores into
/// RAM and finishes the instruction; an operand over two pages whose first page is the VM's last RAM page is RAM (the
/// first half's check stops at that page's end); and a faulted exit leaves nothing counted as forwarded for the next one.
/// </summary>
public class RamSideRuleTests
{
    const ulong Dev = 0xFEB0_0000, Window = Dev + 0x1000, Alias = 0x50_0000_0000;

    [Fact]
    public void A_string_element_whose_write_side_is_ram_stores_into_ram_and_finishes()
    {
        ulong dst = 0;
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            dst = l.Data + 0x400;
            r.Add("mov byte [rsi], 0x5a", a => a.mov(__byte_ptr[rsi], 0x5A), ExitReason.Mmio, Window, 1, true, [(6, Window)], []);
            var m = r.Add("movsb (the device's byte into RAM)", a => a.movsb(), ExitReason.Mmio, Window, 1, false, [(6, Window), (7, dst)], []);
            m.Flags |= ExitFlags.String;
            m.ExpectFields = [(6, Window + 1, ulong.MaxValue), (7, dst + 1, ulong.MaxValue)];
        }, longMode: true);
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(0x5A, sys.Kernel.Memory.ReadU8(dst));
        Assert.Equal(2, sys.Kernel.Stats.Completed);
    }

    /// <summary>A dword read two bytes before the end of the VM's last RAM page, whose linear successor maps to other RAM.</summary>
    [Fact]
    public void An_operand_over_two_pages_whose_first_is_the_last_ram_page_is_ram()
    {
        ulong last = 0;
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            last = l.MemBase + l.MemLength - 0x1000;
            r.Add("mov eax, [rbx+0xffe] (RAM's last page, then RAM)", a => a.mov(eax, __dword_ptr[rbx + 0xFFE]), ExitReason.Mmio, last + 0xFFE, 4, false,
                [(3, Alias), (0, 0)], [], expect: 0x4433_2211);
        }, longMode: true, paging: (pt, mem, l) =>
        {
            ulong end = l.MemBase + l.MemLength;
            pt.Map(Alias, end - 0x1000, 0x1000, PageSize.Size4K, writable: true, executable: false);
            pt.Map(Alias + 0x1000, l.Data + 0x1000, 0x1000, PageSize.Size4K, writable: true, executable: false);
            mem.WriteU16(end - 2, 0x2211);
            mem.WriteU16(l.Data + 0x1000, 0x4433);
        });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(0, sys.Replay!.ExceptionsSeen);
    }

    /// <summary>A #GP exit (a non-canonical operand), then a plain store: the store is counted completed, not forwarded.</summary>
    [Fact]
    public void After_a_faulted_exit_the_next_instruction_is_counted_completed_not_forwarded()
    {
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            r.Add("mov eax, [rbx] (non-canonical: #GP)", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Window, 4, false, [(3, 0x8000_0000_0000_0000)], []);
            r.Add("mov [rbx], eax", a => a.mov(__dword_ptr[rbx], eax), ExitReason.Mmio, Window, 4, true, [(3, Window), (0, 1)], []);
        }, longMode: true);
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        var st = sys.Kernel.Stats;
        Assert.Equal(1, st.Faulted);
        Assert.Equal(1, st.Completed);
        Assert.Equal(0, st.Forwarded);
        Assert.Equal(1, st.Count[(int)ExitKind.MmioWrite]);
    }
}

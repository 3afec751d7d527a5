using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Kernel.Backends;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// The exit's first element carries the GPA the hardware faulted on, and a cached data translation must agree with it
/// (hot/Exit/ExitPipeline.cs, MemorySide's witness): a guest that remaps a page without flushing its TLB (the hardware
/// walked the new tables; the kernel's cache holds the old entry) gets the page the hardware reported. Two loads of
/// [Alias+8]: the first through a PTE for the device's register page (its scratch register: 0x1234), the second after the
/// PTE was pointed at the device's window page (its offset 8: never written, 0).
/// </summary>
public class TranslationWitnessRuleTests
{
    const ulong Dev = 0xFEB0_0000, Window = Dev + 0x1000, Alias = 0x50_0000_0000;

    [Fact]
    public void A_cached_translation_that_disagrees_with_the_exits_gpa_is_walked_afresh()
    {
        PageTableBuilder? tables = null;
        GuestMemory? memory = null;
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            r.Add("mov dword [rbx+8], 0x1234 (scratch)", a => a.mov(__dword_ptr[rbx + 8], 0x1234), ExitReason.Mmio, Dev + 8, 4, true, [(3, Dev)], []);
            r.Add("mov eax, [rbx+8] (Alias: the register page)", a => a.mov(eax, __dword_ptr[rbx + 8]), ExitReason.Mmio, Dev + 8, 4, false, [(3, Alias)], [], expect: 0x1234);
            r.Add("mov eax, [rbx+8] (Alias: remapped to the window page)", a => a.mov(eax, __dword_ptr[rbx + 8]), ExitReason.Mmio, Window + 8, 4, false, [(3, Alias), (0, 0x55)], [], expect: 0);
        }, longMode: true, paging: (pt, mem, l) =>
        {
            pt.Map(Alias, Dev, 0x1000, PageSize.Size4K, writable: true, executable: false);
            tables = pt;
            memory = mem;
        });
        var k = sys.Kernel;
        int exits = 0;
        bool remapped = false;
        k.OnExitTaken = _ =>
        {
            if (++exits != 3) return;   // before the third exit is handled: the guest changed its PTE (no INVLPG)
            ulong pte = tables!.EntryAddress(Alias, 1);
            ulong old = memory!.ReadU64(pte);
            Assert.Equal(Dev, old & 0x000F_FFFF_FFFF_F000);
            memory.WriteU64(pte, (old & ~0x000F_FFFF_FFFF_F000UL) | Window);
            remapped = true;
        };
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.True(remapped);
        Assert.Equal(0, sys.Replay!.ExceptionsSeen);
        Assert.Equal(3, k.Stats.DeviceRoundTrips);
    }
}

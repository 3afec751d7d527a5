using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Kernel.Backends;
using Copra.Kernel.Run;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// A memory operand over two pages whose second page faults (hot/Exit/ExitPipeline.cs, MemorySide and RamSplit), through
/// the real pipeline in long mode (CR0.WP set): the fault is the second page's #PF, with CR2 at that page's first byte and
/// the error code of the access (W for a store and for a read-modify-write's read, walked as a write), and nothing of the
/// instruction is written, not even the bytes on the first page. The linear pages at <see cref="Alias"/> are A (RAM at
/// Data+0x3000, writable), B (RAM at Data+0x1000, read-only) and C (not mapped).
/// </summary>
public class PageSplitFaultRuleTests
{
    const ulong Alias = 0x50_0000_0000, PageA = Alias, PageB = Alias + 0x1000, PageC = Alias + 0x2000;
    const ulong PfPresent = 1, PfWrite = 2;

    static (CopraSystem Sys, ulong Data) Run(Action<ReplayRig, VmLayout> build, bool mapB)
    {
        ulong data = 0;
        var sys = FaultSemanticsTests.Boot((r, l) => { data = l.Data; build(r, l); }, longMode: true, paging: (pt, mem, l) =>
        {
            pt.Map(PageA, l.Data + 0x3000, 0x1000, PageSize.Size4K, writable: true, executable: false);
            if (mapB) pt.Map(PageB, l.Data + 0x1000, 0x1000, PageSize.Size4K, writable: false, executable: false);
            mem.WriteU16(l.Data + 0x3FFE, 0x2211);
            mem.WriteU16(l.Data + 0x1000, 0x4433);
        });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        return (sys, data);
    }

    static void AssertPf(CopraSystem sys, Step s, ulong error, ulong cr2)
    {
        var e = Assert.Single(sys.Replay!.Exceptions, x => x.Step == s.Text);
        Assert.Equal(14UL, e.Event & 0xFF);
        Assert.Equal(error, e.Event >> 32);
        Assert.Equal(s.Rip, e.Rip);
        Assert.True(sys.Kernel.State.TryPeek(0, StateField.Cr2, out ulong at));
        Assert.Equal(cr2, at);
    }

    /// <summary>A dword store, two bytes on A and two on read-only B: #PF(W|P) at B, and A's two bytes keep their old value.</summary>
    [Fact]
    public void A_store_whose_second_page_is_read_only_faults_and_writes_nothing_on_the_first()
    {
        Step? st = null;
        var (sys, data) = Run((r, l) => st = r.Add("mov [rbx+0xffe], eax (A writable, B read-only)", x => x.mov(__dword_ptr[rbx + 0xFFE], eax), ExitReason.Mmio,
            l.Data + 0x3FFE, 4, true, [(3, PageA), (0, 0xDDCC_BBAA)], []), mapB: true);
        using (sys)
        {
            AssertPf(sys, st!, PfWrite | PfPresent, PageB);
            Assert.Equal(0x2211, sys.Kernel.Memory.ReadU16(data + 0x3FFE));
            Assert.Equal(0x4433, sys.Kernel.Memory.ReadU16(data + 0x1000));
            Assert.Equal(0, sys.Kernel.Stats.Completed);
        }
    }

    /// <summary>ADD to memory over A and read-only B: its read is walked as a write, so the #PF(W|P) comes at the read and
    /// nothing is written (walked as a read, the read would pass and the write would fault after A's bytes).</summary>
    [Fact]
    public void A_read_modify_write_whose_second_page_is_read_only_faults_at_its_read_and_writes_nothing()
    {
        Step? add = null;
        var (sys, data) = Run((r, l) => add = r.Add("add [rbx+0xffe], edx (A writable, B read-only)", x => x.add(__dword_ptr[rbx + 0xFFE], edx), ExitReason.Mmio,
            l.Data + 0x3FFE, 4, false, [(3, PageA), (2, 0x0101_0101)], []), mapB: true);
        using (sys)
        {
            AssertPf(sys, add!, PfWrite | PfPresent, PageB);
            Assert.Equal(0x2211, sys.Kernel.Memory.ReadU16(data + 0x3FFE));
            Assert.Equal(0x4433, sys.Kernel.Memory.ReadU16(data + 0x1000));
        }
    }

    /// <summary>A dword load, two bytes on A and two on an unmapped page: #PF (not present, read) at that page, RAX kept.</summary>
    [Fact]
    public void A_load_whose_second_page_is_not_mapped_is_a_page_fault_at_that_page()
    {
        Step? ld = null;
        var (sys, _) = Run((r, l) => ld = r.Add("mov eax, [rbx+0x1ffe] (B's end, then C: not mapped)", x => x.mov(eax, __dword_ptr[rbx + 0x1FFE]), ExitReason.Mmio,
            l.Data + 0x1FFE, 4, false, [(3, PageA), (0, 0x5555)], []), mapB: true);
        using (sys)
        {
            AssertPf(sys, ld!, 0, PageC);
            Assert.Equal(0x5555UL, sys.Kernel.State.Gpr(0, 0));
        }
    }
}

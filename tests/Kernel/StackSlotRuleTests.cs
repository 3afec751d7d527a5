using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Kernel.Backends;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// The stack slot of PUSH m and POP m (hot/Exit/ExitPipeline.Stack.cs, StackTranslate, StackBegin, StackAfterRead), through
/// the real pipeline with the test device on the operand's side: a slot over two pages is translated per page (the pages
/// need not be contiguous), one that ends at a page's end is one page, and a slot that is not wholly RAM is #GP(0) with
/// rSP unchanged and no device asked.
/// </summary>
public class StackSlotRuleTests
{
    const ulong Dev = 0xFEB0_0000, Scratch64 = Dev + 0x10, Alias = 0x50_0000_0000;
    // Linear pages: A = RAM at Data+0x3000, B = RAM at Data+0x1000 (below A), C = the test device, D = RAM at Data+0x5000,
    // E = RAM at Data+0x7000.
    const ulong PageA = Alias, PageB = Alias + 0x1000, PageC = Alias + 0x2000, PageD = Alias + 0x3000, PageE = Alias + 0x4000;
    const ulong Rsp = 4;

    [Fact]
    public void A_stack_slot_over_two_pages_is_split_per_page_and_one_not_wholly_ram_is_GP()
    {
        Step? onDevice = null, halfDevice = null;
        ulong data = 0;
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            data = l.Data;
            r.Add("mov [rbx+0x10], rcx", a => a.mov(__qword_ptr[rbx + 0x10], rcx), ExitReason.Mmio, Scratch64, 8, true, [(3, Dev), (1, 0x1122_3344_5566_7788)], []);
            // PUSH with rSP 4 bytes into B: the slot is A's last 4 bytes and B's first 4.
            r.Add("push qword [rbx+0x10] (slot over A and B)", a => a.push(__qword_ptr[rbx + 0x10]), ExitReason.Mmio, Scratch64, 8, false, [(3, Dev), (4, PageB + 4)], [])
                .ExpectFields = [(Rsp, PageB - 4, ulong.MaxValue)];
            // POP with rSP 4 bytes before D's end: the slot is D's last 4 bytes and E's first 4 (set up below).
            r.Add("pop qword [rbx+0x10] (slot over D and E)", a => a.pop(__qword_ptr[rbx + 0x10]), ExitReason.Mmio, Scratch64, 8, true, [(3, Dev), (4, PageD + 0xFFC)], [])
                .ExpectFields = [(Rsp, PageE + 4, ulong.MaxValue)];
            r.Add("mov rax, [rbx+0x10] (what POP wrote)", a => a.mov(rax, __qword_ptr[rbx + 0x10]), ExitReason.Mmio, Scratch64, 8, false, [(3, Dev)], [],
                expect: 0x0807_0605_0403_0201).ExpectMask = ulong.MaxValue;
            // A slot that ends exactly at E's end is one page: the unmapped page after E is never walked.
            r.Add("push qword [rbx+0x10] (slot ends at E's end)", a => a.push(__qword_ptr[rbx + 0x10]), ExitReason.Mmio, Scratch64, 8, false, [(3, Dev), (4, PageE + 0x1000)], [])
                .ExpectFields = [(Rsp, PageE + 0xFF8, ulong.MaxValue)];
            onDevice = r.Add("push qword [rbx+0x10] (rSP in the device's page)", a => a.push(__qword_ptr[rbx + 0x10]), ExitReason.Mmio, Scratch64, 8, false, [(3, Dev), (4, PageC + 0x10)], []);
            onDevice.ExpectFields = [(Rsp, PageC + 0x10, ulong.MaxValue)];
            halfDevice = r.Add("pop qword [rbx+0x10] (slot over B's end and the device's page)", a => a.pop(__qword_ptr[rbx + 0x10]), ExitReason.Mmio, Scratch64, 8, true, [(3, Dev), (4, PageB + 0xFFC)], []);
            halfDevice.ExpectFields = [(Rsp, PageB + 0xFFC, ulong.MaxValue)];
            r.Add("mov rax, [rbx+0x10] (still what POP wrote)", a => a.mov(rax, __qword_ptr[rbx + 0x10]), ExitReason.Mmio, Scratch64, 8, false, [(3, Dev)], [],
                expect: 0x0807_0605_0403_0201).ExpectMask = ulong.MaxValue;
        }, longMode: true, paging: (pt, mem, l) =>
        {
            pt.Map(PageA, l.Data + 0x3000, 0x1000, PageSize.Size4K, writable: true, executable: false);
            pt.Map(PageB, l.Data + 0x1000, 0x1000, PageSize.Size4K, writable: true, executable: false);
            pt.Map(PageC, Dev, 0x1000, PageSize.Size4K, writable: true, executable: false);
            pt.Map(PageD, l.Data + 0x5000, 0x1000, PageSize.Size4K, writable: true, executable: false);
            pt.Map(PageE, l.Data + 0x7000, 0x1000, PageSize.Size4K, writable: true, executable: false);
            for (int i = 0; i < 4; i++) mem.WriteU8(l.Data + 0x5FFC + (ulong)i, (byte)(1 + i));
            for (int i = 0; i < 4; i++) mem.WriteU8(l.Data + 0x7000 + (ulong)i, (byte)(5 + i));
        });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        var k = sys.Kernel;
        Assert.Equal(0x5566_7788u, k.Memory.ReadU32(data + 0x3FFC));   // the pushed value's low half at A's end
        Assert.Equal(0x1122_3344u, k.Memory.ReadU32(data + 0x1000));   // its high half at B's start
        foreach (var s in new[] { onDevice!, halfDevice! })
        {
            var e = Assert.Single(sys.Replay!.Exceptions, x => x.Step == s.Text);
            Assert.Equal(13UL, e.Event & 0xFF);
            Assert.Equal(0UL, e.Event >> 32);
        }
        Assert.Equal(2, sys.Replay!.ExceptionsSeen);
        Assert.Equal(0x0807_0605_0403_0201UL, k.Memory.ReadU64(data + 0x7FF8));   // the last PUSH, at E's last 8 bytes
        Assert.Equal(6, k.Stats.DeviceRoundTrips);   // the store, two PUSHes' reads, the POP's write, the two reads
    }
}

using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Kernel.Backends;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// A memory operand that crosses a page (hot/Exit/ExitPipeline.cs, MemorySide and RamSplit), through the real pipeline
/// in long mode: each byte is translated on its own, so the two halves may be RAM pages that are not contiguous; a half
/// that is not RAM is #GP(0) (a device never spans pages here, even a device whose range does); an access that ends
/// exactly at a page's end does not cross it. The linear pages at <see cref="Alias"/> are A (RAM at Data+0x3000),
/// B (RAM at Data+0x1000, below A), C (the test device's first page) and D (RAM at Data+0x5000).
/// </summary>
public class PageSplitRuleTests
{
    const ulong Dev = 0xFEB0_0000, Alias = 0x50_0000_0000;
    const ulong PageA = Alias, PageB = Alias + 0x1000, PageC = Alias + 0x2000, PageD = Alias + 0x3000;
    // What the SSE load reads after the store: A's last 8 bytes (11..15, then AA BB CC stored), B's first 8 (DD stored, 44, 23..28).
    static readonly UInt128 Wide = new(0x2827_2625_2423_44DD, 0xCCBB_AA15_1413_1211);

    [Fact]
    public void An_operand_over_two_pages_is_translated_byte_by_byte_and_a_half_that_is_not_ram_is_GP()
    {
        Step? ramToDev = null, devToRam = null, devPages = null;
        ulong data = 0;
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            data = l.Data;
            ulong a = l.Data + 0x3000, b = l.Data + 0x1000;
            r.Add("mov eax, [rbx+0xffe] (A's last two bytes, B's first two)", x => x.mov(eax, __dword_ptr[rbx + 0xFFE]), ExitReason.Mmio, a + 0xFFE, 4, false,
                [(3, PageA), (0, 0)], [], expect: 0x4433_2211);
            r.Add("mov [rbx+0xffd], ecx (three bytes into A, one into B)", x => x.mov(__dword_ptr[rbx + 0xFFD], ecx), ExitReason.Mmio, a + 0xFFD, 4, true,
                [(3, PageA), (1, 0xDDCC_BBAA)], []);
            var wide = r.Add("movdqu xmm1, [rbx+0xff8] (8 bytes of A, 8 of B)", x => x.movdqu(xmm1, __xmmword_ptr[rbx + 0xFF8]), ExitReason.Mmio, a + 0xFF8, 16, false,
                [(3, PageA)], []);
            wide.ExpectFields = [(StateField.Xmm(1, false), (ulong)Wide, ulong.MaxValue), (StateField.Xmm(1, true), (ulong)(Wide >> 64), ulong.MaxValue)];
            r.Add("mov rax, [rbx+0xffc] (a qword: 4 bytes of A, 4 of B)", x => x.mov(rax, __qword_ptr[rbx + 0xFFC]), ExitReason.Mmio, a + 0xFFC, 8, false,
                [(3, PageA), (0, 0)], [], expect: 0x2423_44DD_CCBB_AA15).ExpectMask = ulong.MaxValue;
            r.Add("lock add [rbx+0xffe], edx (A and B, read and written)", x => x.@lock.add(__dword_ptr[rbx + 0xFFE], edx), ExitReason.Mmio, a + 0xFFE, 4, false,
                [(3, PageA), (2, 0x0101_0101)], []);
            ramToDev = r.Add("mov eax, [rbx+0xffe] (B's end, then C: the device)", x => x.mov(eax, __dword_ptr[rbx + 0xFFE]), ExitReason.Mmio, b + 0xFFE, 4, false, [(3, PageB)], []);
            devToRam = r.Add("mov eax, [rbx+0xffe] (C's end: the device, then D)", x => x.mov(eax, __dword_ptr[rbx + 0xFFE]), ExitReason.Mmio, Dev + 0xFFE, 4, false, [(3, PageC)], []);
            devPages = r.Add("mov eax, [rbx] (0xffe: over the device's two pages)", x => x.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev + 0xFFE, 4, false, [(3, Dev + 0xFFE)], []);
            r.Add("mov eax, [rbx] (the device's last dword: ends at the page end)", x => x.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev + 0x1FFC, 4, false,
                [(3, Dev + 0x1FFC), (0, ulong.MaxValue)], [], expect: 0);
        }, longMode: true, paging: (pt, mem, l) =>
        {
            pt.Map(PageA, l.Data + 0x3000, 0x1000, PageSize.Size4K, writable: true, executable: false);
            pt.Map(PageB, l.Data + 0x1000, 0x1000, PageSize.Size4K, writable: true, executable: false);
            pt.Map(PageC, Dev, 0x1000, PageSize.Size4K, writable: true, executable: false);
            pt.Map(PageD, l.Data + 0x5000, 0x1000, PageSize.Size4K, writable: true, executable: false);
            // A's last 8 bytes: 11 12 13 14 15 16 11 22; B's first 8: 33 44 23 24 25 26 27 28.
            for (int i = 0; i < 8; i++) mem.WriteU8(l.Data + 0x3FF8 + (ulong)i, (byte)(0x11 + i));
            for (int i = 0; i < 8; i++) mem.WriteU8(l.Data + 0x1000 + (ulong)i, (byte)(0x21 + i));
            mem.WriteU8(l.Data + 0x3FFE, 0x11);
            mem.WriteU8(l.Data + 0x3FFF, 0x22);
            mem.WriteU8(l.Data + 0x1000, 0x33);
            mem.WriteU8(l.Data + 0x1001, 0x44);
        });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        var k = sys.Kernel;
        foreach (var s in new[] { ramToDev!, devToRam!, devPages! })
        {
            var e = Assert.Single(sys.Replay!.Exceptions, x => x.Step == s.Text);
            Assert.Equal(13UL, e.Event & 0xFF);
            Assert.Equal(0UL, e.Event >> 32);
        }
        Assert.Equal(3, sys.Replay!.ExceptionsSeen);
        Assert.Equal(1, k.Stats.DeviceRoundTrips);   // the last read only
        // The store put AA BB CC at A's last three bytes and DD at B's first; the locked ADD then added 1 to each byte of
        // A's last two and B's first two (BB CC DD 44 -> BC CD DE 45).
        Assert.Equal(new byte[] { 0x15, 0xAA, 0xBC, 0xCD }, Bytes(k.Memory, data + 0x3FFC, 4));
        Assert.Equal(new byte[] { 0xDE, 0x45, 0x23 }, Bytes(k.Memory, data + 0x1000, 3));
    }

    static byte[] Bytes(GuestMemory m, ulong at, int n) => [.. Enumerable.Range(0, n).Select(i => m.ReadU8(at + (ulong)i))];
}

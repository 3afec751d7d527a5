using Copra.Hot.Exit;
using Xunit;
using static Copra.Tests.Kernel.HardwareRig;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// A locked read-modify-write whose operand is guest RAM, kernel-emulated (ExitPipeline.Wide.cs, LockedRam): the operand
/// inside one aligned 8-byte word (compare-and-swap of the word) or across two (the bus lock), 8 and 16 bytes; only the
/// operand's bytes change, and a compare that fails writes nothing. Through <see cref="HardwareRig"/> in kernel-emulated mode.
/// </summary>
public class LockedRamRuleTests
{
    const ulong Before = 0x1122_3344_5566_7788, After = 0x99AA_BBCC_DDEE_FF00;

    /// <summary>Runs one locked instruction on RAM at Data + <paramref name="offset"/> (RSI), the two words there preset; returns the rig.</summary>
    static HardwareRig Locked(string text, Action<Iced.Intel.Assembler> insn, ulong offset, byte size, (int, ulong)[] regs)
    {
        HardwareRig? rig = null;
        rig = new HardwareRig(b =>
        {
            ulong ram = b.Layout.Data;
            b.Add(text, insn, [(6, ram + offset), .. regs], [HwSide.Read(ram + offset, size)]);
        }, hardware: false);
        rig.Memory.WriteU64(rig.Data, Before);
        rig.Memory.WriteU64(rig.Data + 8, After);
        rig.Memory.WriteU64(rig.Data + 16, 0);
        rig.Run();
        Assert.Equal(0, rig.Replay.ExceptionsSeen);
        Assert.Equal(1, rig.Stats.Completed);
        return rig;
    }

    static ulong Word(HardwareRig r, int i) => r.Memory.ReadU64(r.Data + 8 * (ulong)i);

    [Fact]
    public void A_locked_dword_inside_a_word_changes_only_its_own_bytes()
    {
        using var r = Locked("lock add dword [rsi], eax", a => a.@lock.add(__dword_ptr[rsi], eax), 3, 4, [(0, 0x0101_0101)]);
        // Bytes 3..6 of 0x1122334455667788 are 0x22334455 (little-endian: 55 44 33 22): plus 0x01010101.
        Assert.Equal(0x1123_3445_5666_7788UL, Word(r, 0));
        Assert.Equal(After, Word(r, 1));
    }

    [Fact]
    public void A_locked_byte_at_the_end_of_a_word_and_a_locked_qword_in_place()
    {
        using (var r = Locked("lock inc byte [rsi]", a => a.@lock.inc(__byte_ptr[rsi]), 7, 1, []))
        {
            Assert.Equal(0x1222_3344_5566_7788UL, Word(r, 0));
            Assert.Equal(After, Word(r, 1));
        }
        using (var r = Locked("lock add qword [rsi], rax", a => a.@lock.add(__qword_ptr[rsi], rax), 8, 8, [(0, 0x0000_0001_0000_0001)]))
        {
            Assert.Equal(Before, Word(r, 0));
            Assert.Equal(0x99AA_BBCD_DDEE_FF01UL, Word(r, 1));
        }
    }

    [Fact]
    public void A_locked_operand_across_two_words_is_read_and_written_whole()
    {
        using (var r = Locked("lock add dword [rsi], eax", a => a.@lock.add(__dword_ptr[rsi], eax), 6, 4, [(0, 1)]))
        {
            // Bytes 6..9: 22 11 | 00 FF = 0xFF001122, plus 1.
            Assert.Equal(0x1123_3344_5566_7788UL, Word(r, 0));
            Assert.Equal(0x99AA_BBCC_DDEE_FF00UL, Word(r, 1));
        }
        using (var r = Locked("lock add qword [rsi], rax", a => a.@lock.add(__qword_ptr[rsi], rax), 4, 8, [(0, 0x10)]))
        {
            // Bytes 4..11: 0xDDEEFF0011223344 + 0x10.
            Assert.Equal(0x1122_3354_5566_7788UL, Word(r, 0));
            Assert.Equal(After, Word(r, 1));
        }
    }

    [Fact]
    public void A_locked_add_across_two_words_carries_into_the_second_word()
    {
        // Bytes 6..9: 22 11 | 00 FF = 0xFF001122; plus 0x00010000 is 0xFF011122, so byte 8 (the second word's first) becomes 01.
        using var r = Locked("lock add dword [rsi], eax (carry)", a => a.@lock.add(__dword_ptr[rsi], eax), 6, 4, [(0, 0x0001_0000)]);
        Assert.Equal(Before, Word(r, 0));
        Assert.Equal(0x99AA_BBCC_DDEE_FF01UL, Word(r, 1));
    }

    [Fact]
    public void A_locked_compare_exchange_that_fails_writes_nothing_and_loads_the_accumulator()
    {
        using (var r = Locked("lock cmpxchg dword [rsi], ecx (mismatch)", a => a.@lock.cmpxchg(__dword_ptr[rsi], ecx), 4, 4, [(0, 5), (1, 0x7777)]))
        {
            Assert.Equal(Before, Word(r, 0));
            Assert.Equal(0x1122_3344UL, r.Sys.Kernel.State.Gpr(0, 0) & 0xFFFF_FFFF);
            Assert.Equal(0UL, r.Sys.Kernel.State.Rflags(0) & (1UL << 6));   // ZF clear
        }
        using (var r = Locked("lock cmpxchg dword [rsi], ecx (match)", a => a.@lock.cmpxchg(__dword_ptr[rsi], ecx), 4, 4, [(0, 0x1122_3344), (1, 0x7777)]))
        {
            Assert.Equal(0x0000_7777_5566_7788UL, Word(r, 0));
            Assert.NotEqual(0UL, r.Sys.Kernel.State.Rflags(0) & (1UL << 6));
        }
    }

    [Fact]
    public void A_locked_cmpxchg16b_on_ram_compares_and_writes_all_16_bytes()
    {
        using (var r = Locked("lock cmpxchg16b [rsi] (match)", a => a.@lock.cmpxchg16b(__xmmword_ptr[rsi]), 0, 16,
            [(0, Before), (2, After), (3, 0x0BBB), (1, 0x0CCC)]))
        {
            Assert.Equal(0x0BBBUL, Word(r, 0));
            Assert.Equal(0x0CCCUL, Word(r, 1));
        }
        using (var r = Locked("lock cmpxchg16b [rsi] (mismatch)", a => a.@lock.cmpxchg16b(__xmmword_ptr[rsi]), 0, 16,
            [(0, Before), (2, After + 1), (3, 0x0BBB), (1, 0x0CCC)]))
        {
            Assert.Equal(Before, Word(r, 0));
            Assert.Equal(After, Word(r, 1));
            Assert.Equal(Before, r.Sys.Kernel.State.Gpr(0, 0));
            Assert.Equal(After, r.Sys.Kernel.State.Gpr(0, 2));
        }
    }
}

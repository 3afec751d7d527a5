using Copra.Hot.Guest;
using Xunit;

namespace Copra.Tests.Guest;

/// <summary>
/// GuestMemory.OrU8Locked, the locked read-modify-write the exit path sets a descriptor's accessed bit and a TSS's busy
/// bit with (hot/Exit/ExitPipeline.System.cs SetDescriptorBit; SDM vol. 3 §3.4.5.1, §7.2.2).
/// </summary>
public sealed class LockedDescriptorBitTests
{
    [Fact]
    public void It_sets_the_bits_of_one_byte_keeps_the_rest_of_the_word_and_returns_the_byte_before()
    {
        var m = new GuestMemory(1 << 16);
        m.WriteU64(0x100, 0x00CF_9200_0000_FFFF);          // a data descriptor, accessed clear (type 2 in byte 5)
        Assert.Equal(0x92, m.OrU8Locked(0x105, 0x01));
        Assert.Equal(0x00CF_9300_0000_FFFFUL, m.ReadU64(0x100));
        Assert.Equal(0x93, m.OrU8Locked(0x105, 0x01));       // already set: the byte as it is, nothing written
        Assert.Equal(0x00CF_9300_0000_FFFFUL, m.ReadU64(0x100));
        m.WriteU64(0x108, 0x0000_8900_0000_0067);          // an available TSS: busy is type bit 1
        Assert.Equal(0x89, m.OrU8Locked(0x10D, 0x02));
        Assert.Equal(0x0000_8B00_0000_0067UL, m.ReadU64(0x108));
        Assert.Equal(0x00CF_9300_0000_FFFFUL, m.ReadU64(0x100));   // the neighbour word untouched
    }

    /// <summary>
    /// Two writers on one descriptor byte at once, as two vCPUs in one GDT: one sets the accessed bit (OrU8Locked) and
    /// clears it again with its own locked operation, over and over; the other counts in bits 7:1 of the same byte with
    /// locked compare-exchanges (a native LOCK CMPXCHG would be the same). At the end the byte must hold the other
    /// writer's count (mod 128). A plain store of the byte as read before (what the exit path did) undoes any increment
    /// that lands between its read and its store, and the count comes out short.
    /// </summary>
    [Fact]
    public void Concurrent_writers_to_the_same_descriptor_byte_lose_nothing()
    {
        const int Iterations = 400_003;
        const ulong Byte5 = 0x105, Word = 0x100;
        var m = new GuestMemory(1 << 16);
        m.WriteU64(Word, 0x00CF_0000_0000_FFFF);   // byte 5 = 0: count 0, accessed clear
        int counted = 0;
        using var start = new Barrier(2);
        var counter = new Thread(() =>
        {
            start.SignalAndWait();
            for (int i = 0; i < Iterations; i++)
            {
                ulong old = m.ReadU64Volatile(Word);
                while (true)
                {
                    byte b = (byte)(old >> 40);
                    ulong next = (old & ~(0xFFUL << 40)) | (ulong)(byte)((b & 1) | ((b >> 1) + 1) << 1) << 40;
                    ulong seen = m.CompareExchangeU64(Word, next, old);
                    if (seen == old) break;
                    old = seen;
                }
                counted++;
            }
        });
        counter.Start();
        start.SignalAndWait();
        for (int i = 0; i < Iterations; i++)
        {
            m.OrU8Locked(Byte5, 0x01);
            ulong old = m.ReadU64Volatile(Word);
            while (true)   // clear it again (locked), so the next OrU8Locked has something to write
            {
                ulong seen = m.CompareExchangeU64(Word, old & ~(1UL << 40), old);
                if (seen == old) break;
                old = seen;
            }
        }
        counter.Join();
        Assert.Equal(Iterations, counted);
        Assert.Equal((byte)(Iterations % 128), (byte)(m.ReadU8(Byte5) >> 1));
        Assert.Equal(0x00CF_0000_0000_FFFFUL, m.ReadU64(Word) & ~(0xFFUL << 40));   // the other bytes untouched
    }
}

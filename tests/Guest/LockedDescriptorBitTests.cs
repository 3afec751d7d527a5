using Copra.Hot.Guest;
using Xunit;

namespace Copra.Tests.Guest;

/// <summary>
/// GuestMemory.OrU8Locked, the locked read-modify-write the exit path sets a descriptor's accessed bit and a TSS's busy
/// bit with (kernel/Exit/Kernel.System.cs SetDescriptorBit; SDM vol. 3 §3.4.5.1, §7.2.2).
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
    /// Two writers on the same descriptor bytes at once, as two vCPUs loading segments through one GDT while a third
    /// changes it: one sets the accessed bit of each descriptor, the other sets another bit of the same byte with its own
    /// locked operation (a native LOCK OR or BTS would be the same). Every bit of both must be there at the end. A plain
    /// load-then-store of the byte (what the exit path did before) loses the other writer's bit whenever the two overlap.
    /// </summary>
    [Fact]
    public void Concurrent_writers_to_the_same_descriptor_byte_lose_nothing()
    {
        const int Descriptors = 1 << 16, Rounds = 8;
        var m = new GuestMemory((ulong)Descriptors * 8);
        int lost = 0;
        for (int round = 0; round < Rounds; round++)
        {
            for (int i = 0; i < Descriptors; i++) m.WriteU64((ulong)i * 8, 0x00CF_1200_0000_FFFF);   // P clear, accessed clear
            using var start = new Barrier(2);
            var other = new Thread(() =>
            {
                start.SignalAndWait();
                for (int i = 0; i < Descriptors; i++) m.OrU8Locked((ulong)i * 8 + 5, 0x80);   // P
            });
            other.Start();
            start.SignalAndWait();
            for (int i = 0; i < Descriptors; i++) m.OrU8Locked((ulong)i * 8 + 5, 0x01);       // accessed
            other.Join();
            for (int i = 0; i < Descriptors; i++)
                if (m.ReadU64((ulong)i * 8) != 0x00CF_9300_0000_FFFFUL) lost++;
        }
        Assert.Equal(0, lost);
    }
}

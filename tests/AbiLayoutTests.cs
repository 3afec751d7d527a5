using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Copra.Abi;
using Xunit;

namespace Copra.Tests;

/// <summary>Pins every ABI struct's size and field offsets: user space and kernel must agree byte for byte.</summary>
public class AbiLayoutTests
{
    static int Off<T>(string field) where T : struct => (int)Marshal.OffsetOf<T>(field);

    [Fact]
    public void SysCallIn_is_56_bytes_with_fields_in_order()
    {
        Assert.Equal(56, Unsafe.SizeOf<SysCallIn>());
        Assert.Equal(SysCallIn.Size, Unsafe.SizeOf<SysCallIn>());
        string[] fields = ["Nr", "A0", "A1", "A2", "A3", "A4", "UserData"];
        for (int i = 0; i < fields.Length; i++) Assert.Equal(i * 8, Off<SysCallIn>(fields[i]));
    }

    [Fact]
    public void SysCallOut_is_16_bytes_result_then_user_data()
    {
        Assert.Equal(16, Unsafe.SizeOf<SysCallOut>());
        Assert.Equal(0, Off<SysCallOut>("Result"));
        Assert.Equal(8, Off<SysCallOut>("UserData"));
    }

    [Fact]
    public void SysCallRegs_holds_rax_then_the_five_argument_registers_then_clobbers()
    {
        Assert.Equal(64, Unsafe.SizeOf<SysCallRegs>());
        string[] fields = ["Rax", "Rdi", "Rsi", "R8", "R9", "R10", "Rcx", "R11"];
        for (int i = 0; i < fields.Length; i++) Assert.Equal(i * 8, Off<SysCallRegs>(fields[i]));
    }

    [Theory]
    [InlineData("Sequence", 0)] [InlineData("State", 8)] [InlineData("Kind", 12)] [InlineData("Address", 16)]
    [InlineData("Size", 24)] [InlineData("Direction", 28)] [InlineData("Data", 32)] [InlineData("Vcpu", 40)]
    [InlineData("Cpu", 44)] [InlineData("Rip", 48)] [InlineData("Flags", 56)] [InlineData("Count", 60)]
    [InlineData("Expected", 64)] [InlineData("ExpectedHigh", 72)] [InlineData("Result", 80)] [InlineData("Payload", 128)]
    public void EventArea_field_offsets(string field, int offset)
    {
        Assert.Equal(192, Unsafe.SizeOf<EventArea>());
        Assert.Equal(EventArea.MaxPayload, Unsafe.SizeOf<EventPayload>());
        Assert.Equal(offset, Off<EventArea>(field));
    }

    [Theory]
    [InlineData("ExitReason", 0)] [InlineData("Flags", 4)] [InlineData("Rip", 8)] [InlineData("Sequence", 16)]
    [InlineData("CpuidLeaf", 24)] [InlineData("CpuidSubleaf", 28)] [InlineData("CpuidEax", 32)] [InlineData("CpuidEbx", 36)]
    [InlineData("CpuidEcx", 40)] [InlineData("CpuidEdx", 44)] [InlineData("MsrIndex", 48)] [InlineData("MsrValue", 56)]
    [InlineData("LostAddress", 64)] [InlineData("LostKind", 72)] [InlineData("LostCount", 76)]
    public void RunPage_field_offsets(string field, int offset)
    {
        Assert.Equal(128, Unsafe.SizeOf<RunPage>());
        Assert.Equal(offset, Off<RunPage>(field));
    }

    [Fact]
    public void DirEnt_matches_coconut_272_bytes()
    {
        Assert.Equal(272, Unsafe.SizeOf<DirEnt>());
        Assert.Equal(256, Off<DirEnt>("Type"));
        Assert.Equal(264, Off<DirEnt>("Size"));
    }

    [Fact]
    public void Numbers_are_class_shifted_32_and_coconut_ones_are_fixed()
    {
        Assert.Equal(0x0UL, SysNr.Exit);
        Assert.Equal(0x4UL, SysNr.Exec);
        Assert.Equal(0xAUL, SysNr.Close);
        Assert.Equal(0x1_0000_0000UL, SysNr.Open);
        Assert.Equal(0x1_0000_0009UL, SysNr.RmDir);
        Assert.Equal(0x3_0000_0000UL, SysNr.Capabilities);
        Assert.Equal(0x1UL, SysNr.Mmap);      // PR #945
        Assert.Equal(0x2UL, SysNr.Munmap);
        Assert.Equal(0x3UL, SysNr.MresizeReserved);
        Assert.Equal(SysNr.All.Length, SysNr.All.ToArray().Distinct().Count());
        foreach (var nr in SysNr.All) Assert.True(nr >> 32 <= 4, SysNr.Name(nr));
    }

    [Fact]
    public void Copras_own_numbers_start_at_index_0x100_and_upstreams_are_below()
    {
        ulong[] upstream = [SysNr.Exit, SysNr.Mmap, SysNr.Munmap, SysNr.Exec, SysNr.Close, SysNr.Open, SysNr.Read, SysNr.Write,
                            SysNr.Seek, SysNr.Truncate, SysNr.Unlink, SysNr.OpenDir, SysNr.ReadDir, SysNr.MkDir, SysNr.RmDir, SysNr.Capabilities];
        foreach (var nr in SysNr.All)
            Assert.True(SysNr.IsUpstream(nr) == upstream.Contains(nr), SysNr.Name(nr));
        Assert.DoesNotContain(SysNr.MresizeReserved, SysNr.All.ToArray());
    }

    [Fact]
    public void The_syscall_table_holds_exactly_the_numbers_SysNr_lists()
    {
        Assert.Equal(SysNr.All.ToArray().Order(), Copra.Kernel.Core.SysCallTable.Numbers.Order());
    }

    [Fact]
    public void Unknown_is_minus_128_and_every_rax_above_2_64_minus_65536_is_an_error()
    {
        Assert.Equal(-128, Errno.UNKNOWN);
        Assert.True(Errno.IsError(-1));
        Assert.True(Errno.IsError(-65535));
        Assert.False(Errno.IsError(-65536));
        Assert.False(Errno.IsError(0));
        Assert.False(Errno.IsError(long.MinValue));
        Assert.Equal(Errno.UNKNOWN, Errno.Normalize(-200));
        Assert.Equal(Errno.EWRONLY, Errno.Normalize(Errno.EWRONLY));
    }

    [Fact]
    public void Error_codes_are_the_designs_small_negatives()
    {
        long[] expected = [Errno.EINVAL, Errno.ENOSYS, Errno.ENOMEM, Errno.EPERM, Errno.EFAULT, Errno.EBUSY,
                           Errno.ENOTFOUND, Errno.ENOTSUPP, Errno.EEXIST, Errno.ERDONLY, Errno.EWRONLY];
        for (int i = 0; i < expected.Length; i++) Assert.Equal(-(i + 1), expected[i]);
    }
}

public class PolledRingLayoutTests
{
    [Fact]
    public void Indices_sit_on_their_own_lines_128_bytes_apart()
    {
        int[] indices = [PolledRingLayout.SqTail, PolledRingLayout.SqHead, PolledRingLayout.CqTail, PolledRingLayout.CqHead, PolledRingLayout.Entries];
        for (int i = 1; i < indices.Length; i++) Assert.Equal(128, indices[i] - indices[i - 1]);
        Assert.Equal(0, PolledRingLayout.SqTail);
    }

    [Theory]
    [InlineData(2)] [InlineData(64)] [InlineData(4096)]
    public void Queues_are_struct_of_arrays_page_aligned_and_do_not_overlap(int entries)
    {
        Assert.Equal(Page.Size, PolledRingLayout.SqColumn(PolledRingLayout.SqNr, entries));
        for (int c = 1; c < PolledRingLayout.SqColumns; c++)
            Assert.Equal(entries * 8, PolledRingLayout.SqColumn(c, entries) - PolledRingLayout.SqColumn(c - 1, entries));
        int sqEnd = PolledRingLayout.SqColumn(PolledRingLayout.SqUserData, entries) + entries * 8;
        Assert.True(PolledRingLayout.CqOffset(entries) >= sqEnd);
        Assert.Equal(0, PolledRingLayout.CqOffset(entries) % Page.Size);
        Assert.Equal(entries * 8, PolledRingLayout.CqColumn(PolledRingLayout.CqUserData, entries) - PolledRingLayout.CqColumn(PolledRingLayout.CqResult, entries));
        Assert.True(PolledRingLayout.Bytes(entries) >= PolledRingLayout.CqColumn(PolledRingLayout.CqUserData, entries) + entries * 8);
        Assert.Equal(0, PolledRingLayout.Bytes(entries) % Page.Size);
    }
}

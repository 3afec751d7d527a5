namespace Copra.Abi;

/// <summary>
/// The memory of a RING_POLL object, mapped whole by MMAP (offset 0, <see cref="Bytes"/>(entries) long):
/// an io_uring-style submission/completion pair, struct-of-arrays.
/// <code>
///  page 0: header, each index on its own line, 128 bytes from the next (adjacent-line prefetch)
///   0    SqTail   u64  user writes (release) after filling entries; the poller reads (acquire)
///   128  SqHead   u64  the poller writes after copying entries out; user reads for free space
///   256  CqTail   u64  the poller writes (release) after filling completions
///   384  CqHead   u64  user writes after reading completions; the poller reads for free space
///   512  Entries  u32  ring size (power of two), set by the kernel
///   516  Cpu      u32  the CPU whose poller drains the ring
///  page 1..: SQ columns, each Entries x u64: Nr, A0, A1, A2, A3, A4, UserData  (SqColumn(c, entries))
///  then:     CQ columns, each Entries x u64: Result, UserData                   (CqColumn(c, entries))
///  slot = index &amp; (Entries - 1); indices grow without bound (u64)
/// </code>
/// Each side keeps a cached copy of the other side's index and re-reads the shared one only when its
/// queue looks full (producer) or empty (consumer). The poller takes an SQ entry only when it has room
/// for its completion, so the CQ never overflows.
/// </summary>
public static class PolledRingLayout
{
    public const int IndexStride = 128;
    public const int SqTail = 0, SqHead = SqTail + IndexStride, CqTail = SqHead + IndexStride, CqHead = CqTail + IndexStride;
    public const int Entries = CqHead + IndexStride, Cpu = Entries + 4;
    public const int SqOffset = Page.Size;
    public const int MinEntries = 2, MaxEntries = 4096;

    /// <summary>SQ columns, in SysCallIn field order.</summary>
    public const int SqNr = 0, SqA0 = 1, SqA1 = 2, SqA2 = 3, SqA3 = 4, SqA4 = 5, SqUserData = 6, SqColumns = 7;
    /// <summary>CQ columns, in SysCallOut field order.</summary>
    public const int CqResult = 0, CqUserData = 1, CqColumns = 2;

    public static int SqColumn(int column, int entries) => SqOffset + column * entries * 8;
    public static int CqOffset(int entries) => SqOffset + RoundUp(SqColumns * entries * 8);
    public static int CqColumn(int column, int entries) => CqOffset(entries) + column * entries * 8;
    public static int Bytes(int entries) => CqOffset(entries) + RoundUp(CqColumns * entries * 8);
    static int RoundUp(int n) => (n + Page.Size - 1) & ~(Page.Size - 1);
}

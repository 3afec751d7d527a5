namespace Copra.Abi;

/// <summary>
/// The memory of a RING_POLL object, mapped whole by MMAP (offset 0, <see cref="Bytes"/>(entries) long).
/// <code>
///  page 0 (header; each index on its own 64-byte line)
///   0   SqTail   u64  user writes (release) after filling entries; the poller reads (acquire)
///   64  SqHead   u64  the poller writes after it has copied an entry out; user reads for free space
///   128 CqTail   u64  the poller writes (release) after filling completions
///   192 CqHead   u64  user writes after reading completions; the poller reads for free space
///   256 Entries  u32  ring size (power of two), set by the kernel
///   260 Cpu      u32  the CPU whose poller drains the ring
///   264 Polls    u64  poller passes that found work (statistics)
///  page 1..      SQ: Entries x SysCallIn (56 bytes), slot = index &amp; (Entries-1)
///  then          CQ: Entries x SysCallOut (16 bytes), at <see cref="CqOffset"/>(entries)
/// </code>
/// Indices grow without bound (u64) and are masked to a slot. The poller takes an SQ entry only when
/// it has room for its completion, so the CQ never overflows.
/// </summary>
public static class PolledRingLayout
{
    public const int SqTail = 0, SqHead = 64, CqTail = 128, CqHead = 192, Entries = 256, Cpu = 260, Polls = 264;
    public const int SqOffset = Page.Size;
    public const int MinEntries = 2, MaxEntries = 4096;

    public static int CqOffset(int entries) => SqOffset + RoundUp(entries * SysCallIn.Size);
    public static int Bytes(int entries) => CqOffset(entries) + RoundUp(entries * SysCallOut.Size);
    static int RoundUp(int n) => (n + Page.Size - 1) & ~(Page.Size - 1);
}

using System.Runtime.InteropServices;

namespace Copra.Abi;

/// <summary>Page size of every mappable object.</summary>
public static class Page
{
    public const int Shift = 12;
    public const int Size = 1 << Shift;
    public const ulong Mask = Size - 1;
}

/// <summary>State of an <see cref="EventArea"/> slot, the handshake between kernel and device model.</summary>
public enum EventState : uint
{
    /// <summary>Nothing delivered, or the last access was completed.</summary>
    Idle = 0,
    /// <summary>The kernel wrote an access; the device model owns the area.</summary>
    Pending = 1,
    /// <summary>The device model answered (<see cref="EventArea.Data"/> holds a read's value); the kernel owns the area.</summary>
    Done = 2,
}

public enum EventKind : uint { None = 0, Mmio = 1, Ioio = 2 }

public enum AccessDirection : uint { Read = 0, Write = 1 }

/// <summary>
/// The mappable area of an MMIO or IOIO event object (first 192 bytes of its page).
/// <code>
///  0        8        12      16        24     28          32       40     44     48       56      60
///  +--------+--------+-------+---------+------+-----------+--------+------+------+--------+-------+--------+
///  |Sequence| State  | Kind  | Address | Size | Direction |  Data  | Vcpu | Cpu  |  Rip   | Flags | Count  |
///  +--------+--------+-------+---------+------+-----------+--------+------+------+--------+-------+--------+
///  64         72             80       84          128                                          192
///  +----------+--------------+--------+-----------+--------------------------------------------+
///  | Expected | ExpectedHigh | Result | (reserved)| Payload: 64 bytes, accesses wider than 8   |
///  +----------+--------------+--------+-----------+--------------------------------------------+
/// </code>
/// The kernel fills it and sets State = Pending; the model answers with Data (reads) and State = Done,
/// then calls WAIT_FOR_EVENT or EVENT_SIGNAL on the object. String forms arrive one element at a time.
/// An access wider than 8 bytes (Size 16: SSE moves and CMPXCHG16B; 64: MOVDIR64B) is one event whose bytes are in
/// Payload[0..Size) in memory order (Data is unused). A locked read-modify-write carries <see cref="EventFlags.Locked"/>
/// on its read and its write; the write carries the value the read returned in Expected (and ExpectedHigh for 16 bytes),
/// and the model answers <see cref="LockResult.Mismatch"/> with the location's current value in Data (or Payload)
/// when that is no longer what it holds; the kernel then recomputes and writes again.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 192)]
public struct EventArea
{
    [FieldOffset(0)] public ulong Sequence;
    [FieldOffset(8)] public EventState State;
    [FieldOffset(12)] public EventKind Kind;
    [FieldOffset(16)] public ulong Address;
    [FieldOffset(24)] public uint Size;
    [FieldOffset(28)] public AccessDirection Direction;
    [FieldOffset(32)] public ulong Data;
    [FieldOffset(40)] public uint Vcpu;
    [FieldOffset(44)] public uint Cpu;
    [FieldOffset(48)] public ulong Rip;
    [FieldOffset(56)] public EventFlags Flags;
    /// <summary>Elements left in a REP string form, including this one.</summary>
    [FieldOffset(60)] public uint Count;
    /// <summary>Locked write: bytes 0..7 of the value the locked read returned (what the location must still hold).</summary>
    [FieldOffset(64)] public ulong Expected;
    /// <summary>Locked 16-byte write (CMPXCHG16B): bytes 8..15 of the expected value.</summary>
    [FieldOffset(72)] public ulong ExpectedHigh;
    /// <summary>The model's answer to a locked write (the kernel sets Applied before delivery).</summary>
    [FieldOffset(80)] public LockResult Result;
    /// <summary>The data of an access wider than 8 bytes, in memory order: the kernel's for a write, the model's for a read.</summary>
    [FieldOffset(128)] public EventPayload Payload;

    public const int ByteSize = 192;
    /// <summary>The widest access one event carries (MOVDIR64B).</summary>
    public const int MaxPayload = 64;
}

/// <summary>64 bytes of access data (an inline array, so abi/ needs no pointer code).</summary>
[System.Runtime.CompilerServices.InlineArray(EventArea.MaxPayload)]
public struct EventPayload
{
    byte _b0;
}

/// <summary>How a device model answered a locked write.</summary>
public enum LockResult : uint
{
    /// <summary>The location held Expected and now holds Data/Payload (also what a model that ignores the flag leaves).</summary>
    Applied = 0,
    /// <summary>The location no longer held Expected: nothing was written; Data/Payload hold its current value.</summary>
    Mismatch = 1,
}

[Flags]
public enum EventFlags : uint
{
    None = 0,
    /// <summary>This access is one element of a MOVS/STOS/INS/OUTS.</summary>
    String = 1,
    /// <summary>The instruction carried a REP prefix.</summary>
    Rep = 2,
    /// <summary>One side of a locked read-modify-write (LOCK prefix or XCHG): between its read and its write no other
    /// vCPU's access reaches this object; the write carries Expected and may be answered with <see cref="LockResult.Mismatch"/>.</summary>
    Locked = 4,
}

/// <summary>Why WAIT_FOR_EVENT on a vCPU returned: the exits the VMM process must see.</summary>
public enum RunExit : uint
{
    None = 0,
    /// <summary>HLT. <see cref="RunPage.Flags"/> bit 0 says whether interrupts were enabled.</summary>
    Hlt = 1,
    /// <summary>CPUID: answer in CpuidEax..Edx, then WAIT_FOR_EVENT completes it.</summary>
    Cpuid = 2,
    /// <summary>RDMSR of an MSR the kernel does not handle: answer in MsrValue.</summary>
    MsrRead = 3,
    /// <summary>WRMSR of an MSR the kernel does not handle: MsrValue holds what the guest wrote.</summary>
    MsrWrite = 4,
    /// <summary>Triple fault or an unrecoverable guest state: the vCPU cannot run again.</summary>
    Shutdown = 5,
    /// <summary>A device model died with an access of this vCPU in flight; the kernel answered it with all-ones.</summary>
    DeviceLost = 6,
    /// <summary>The VM was stopped with VM_CONTROL.</summary>
    Stopped = 7,
}

/// <summary>
/// The vCPU run page (first 128 bytes of the vCPU object's page).
/// <code>
///  0          4       8      16        24          28             32   36   40   44   48        52     56
///  +----------+-------+------+---------+-----------+--------------+----+----+----+----+---------+------+----------+
///  |ExitReason| Flags | Rip  |Sequence |CpuidLeaf  |CpuidSubleaf  |EAX |EBX |ECX |EDX |MsrIndex |  -   | MsrValue |
///  +----------+-------+------+---------+-----------+--------------+----+----+----+----+---------+------+----------+
///  64             72         76
///  +--------------+----------+-----------------+
///  |LostAddress   | LostKind | LostCount       |
///  +--------------+----------+-----------------+
/// </code>
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
public struct RunPage
{
    [FieldOffset(0)] public RunExit ExitReason;
    [FieldOffset(4)] public uint Flags;
    [FieldOffset(8)] public ulong Rip;
    [FieldOffset(16)] public ulong Sequence;
    [FieldOffset(24)] public uint CpuidLeaf;
    [FieldOffset(28)] public uint CpuidSubleaf;
    [FieldOffset(32)] public uint CpuidEax;
    [FieldOffset(36)] public uint CpuidEbx;
    [FieldOffset(40)] public uint CpuidEcx;
    [FieldOffset(44)] public uint CpuidEdx;
    [FieldOffset(48)] public uint MsrIndex;
    [FieldOffset(56)] public ulong MsrValue;
    [FieldOffset(64)] public ulong LostAddress;
    [FieldOffset(72)] public EventKind LostKind;
    [FieldOffset(76)] public uint LostCount;

    public const int ByteSize = 128;
    /// <summary><see cref="Flags"/> bit: RFLAGS.IF was set at the HLT.</summary>
    public const uint FlagInterruptsEnabled = 1;
}

/// <summary>One READDIR entry (COCONUT's <c>DirEnt</c>): 256-byte NUL-terminated name, type, size.</summary>
[StructLayout(LayoutKind.Explicit, Size = 272)]
public struct DirEnt
{
    public const int NameSize = 256;
    [FieldOffset(256)] public byte Type;
    [FieldOffset(264)] public ulong Size;
    public const int ByteSize = 272;
}

/// <summary>Ordered access to <see cref="EventArea.State"/>: the handshake field both sides poll.</summary>
public static class EventAreaExtensions
{
    /// <summary>Release store: every field written before it is visible to whoever sees the new state.</summary>
    public static void PublishState(ref this EventArea area, EventState state) =>
        Volatile.Write(ref System.Runtime.CompilerServices.Unsafe.As<EventState, uint>(ref area.State), (uint)state);

    /// <summary>Acquire load of the state.</summary>
    public static EventState ReadState(ref this EventArea area) =>
        (EventState)Volatile.Read(ref System.Runtime.CompilerServices.Unsafe.As<EventState, uint>(ref area.State));
}

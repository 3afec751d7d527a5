namespace Copra.Abi;

/// <summary>
/// Syscall numbers: <c>class &lt;&lt; 32 | index</c> in RAX. This file is the one place numbers live.
/// <para>
/// Rule: an index below <see cref="CopraBase"/> (0x100) in any class is upstream COCONUT-SVSM's (merged on
/// <c>main</c> or drafted in PR #945); Copra's own calls take indices from 0x100 up in the class they belong
/// to, so upstream can grow every class from below without ever meeting a Copra number.
/// </para>
/// </summary>
public static class SysNr
{
    public const ulong ClassTask = 0UL << 32;
    public const ulong ClassFile = 1UL << 32;
    public const ulong ClassMemory = 2UL << 32;
    public const ulong ClassVm = 3UL << 32;
    public const ulong ClassEvent = 4UL << 32;

    /// <summary>First index of Copra's own calls in every class; upstream's indices are below it.</summary>
    public const ulong CopraBase = 0x100;

    // ---- upstream's numbers (syscall/src/def.rs on main; PR #945 for MMAP/MUNMAP/MRESIZE) ----------------
    public const ulong Exit = ClassTask | 0;
    /// <summary>MMAP(handle, hint, offset, length, flags) as PR #945 drafts it.</summary>
    public const ulong Mmap = ClassTask | 1;
    /// <summary>MUNMAP(address) as PR #945 drafts it (the length argument is ignored).</summary>
    public const ulong Munmap = ClassTask | 2;
    /// <summary>MRESIZE: reserved. PR #945 has a user-side wrapper only; the kernel answers EINVAL, as upstream's does.</summary>
    public const ulong MresizeReserved = ClassTask | 3;
    public const ulong Exec = ClassTask | 4;
    public const ulong Close = ClassTask | 10;

    public const ulong Open = ClassFile | 0;
    public const ulong Read = ClassFile | 1;
    public const ulong Write = ClassFile | 2;
    public const ulong Seek = ClassFile | 3;
    public const ulong Truncate = ClassFile | 4;
    public const ulong Unlink = ClassFile | 5;
    public const ulong OpenDir = ClassFile | 6;
    public const ulong ReadDir = ClassFile | 7;
    public const ulong MkDir = ClassFile | 8;
    public const ulong RmDir = ClassFile | 9;

    public const ulong Capabilities = ClassVm | 0;

    // ---- Copra's own (index 0x100 and up) ------------------------------------------------------------------
    public const ulong ThreadCreate = ClassTask | CopraBase | 0;
    public const ulong ThreadExit = ClassTask | CopraBase | 1;
    public const ulong Batch = ClassTask | CopraBase | 2;
    public const ulong WaitForEvent = ClassTask | CopraBase | 3;
    /// <summary>
    /// RING_POLL(entries, cpu): a polled submission/completion ring (io_uring's SQPOLL). Returns a handle to a
    /// mappable ring object (<see cref="PolledRingLayout"/>); a kernel poller on <c>cpu</c> runs what user space
    /// publishes in its submission queue without any user/kernel transition. WAIT_FOR_EVENT on the handle blocks
    /// until a completion is there.
    /// </summary>
    public const ulong RingPoll = ClassTask | CopraBase | 4;

    public const ulong OpenPhysMem = ClassMemory | CopraBase | 0;
    public const ulong SetMemState = ClassMemory | CopraBase | 1;

    public const ulong VmOpen = ClassVm | CopraBase | 0;
    public const ulong VmCapabilities = ClassVm | CopraBase | 1;
    public const ulong VcpuCreate = ClassVm | CopraBase | 2;
    public const ulong GetState = ClassVm | CopraBase | 3;
    public const ulong SetState = ClassVm | CopraBase | 4;
    public const ulong VmControl = ClassVm | CopraBase | 5;

    public const ulong MmioEvent = ClassEvent | CopraBase | 0;
    public const ulong IoioEvent = ClassEvent | CopraBase | 1;
    public const ulong IrqEvent = ClassEvent | CopraBase | 2;
    public const ulong EventSignal = ClassEvent | CopraBase | 3;

    /// <summary>Every number the kernel implements, for tests and fuzzers.</summary>
    public static ReadOnlySpan<ulong> All =>
    [
        Exit, Mmap, Munmap, Exec, Close,
        Open, Read, Write, Seek, Truncate, Unlink, OpenDir, ReadDir, MkDir, RmDir,
        Capabilities,
        ThreadCreate, ThreadExit, Batch, WaitForEvent, RingPoll,
        OpenPhysMem, SetMemState,
        VmOpen, VmCapabilities, VcpuCreate, GetState, SetState, VmControl,
        MmioEvent, IoioEvent, IrqEvent, EventSignal,
    ];

    /// <summary>True for a number upstream COCONUT-SVSM has merged or drafted (including the reserved MRESIZE).</summary>
    public static bool IsUpstream(ulong nr) => (nr & 0xFFFF_FFFFUL) < CopraBase;

    /// <summary>Calls BATCH refuses: those that may block or never return, and BATCH itself (no nesting).</summary>
    public static bool MayBlock(ulong nr) => nr is WaitForEvent or Exit or ThreadExit or Batch;

    public static string Name(ulong nr) => nr switch
    {
        Exit => "EXIT", Mmap => "MMAP", Munmap => "MUNMAP", MresizeReserved => "MRESIZE", Exec => "EXEC", Close => "CLOSE",
        Open => "OPEN", Read => "READ", Write => "WRITE", Seek => "SEEK", Truncate => "TRUNCATE",
        Unlink => "UNLINK", OpenDir => "OPENDIR", ReadDir => "READDIR", MkDir => "MKDIR", RmDir => "RMDIR",
        Capabilities => "CAPABILITIES",
        ThreadCreate => "THREAD_CREATE", ThreadExit => "THREAD_EXIT", Batch => "BATCH",
        WaitForEvent => "WAIT_FOR_EVENT", RingPoll => "RING_POLL",
        OpenPhysMem => "OPEN_PHYSMEM", SetMemState => "SET_MEM_STATE",
        VmOpen => "VM_OPEN", VmCapabilities => "VM_CAPABILITIES",
        VcpuCreate => "VCPU_CREATE", GetState => "GET_STATE", SetState => "SET_STATE", VmControl => "VM_CONTROL",
        MmioEvent => "MMIO_EVENT", IoioEvent => "IOIO_EVENT", IrqEvent => "IRQ_EVENT", EventSignal => "EVENT_SIGNAL",
        _ => $"0x{nr:x}",
    };
}

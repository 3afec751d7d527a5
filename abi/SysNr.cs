namespace Copra.Abi;

/// <summary>
/// Syscall numbers: <c>class &lt;&lt; 32 | index</c> in RAX. EXIT, EXEC, CLOSE, the class-1
/// file calls and CAPABILITIES carry COCONUT-SVSM's numbers; the rest are Copra's and are
/// stable once docs/abi.md names them.
/// </summary>
public static class SysNr
{
    public const ulong ClassTask = 0UL << 32;
    public const ulong ClassFile = 1UL << 32;
    public const ulong ClassMemory = 2UL << 32;
    public const ulong ClassVm = 3UL << 32;
    public const ulong ClassEvent = 4UL << 32;

    // Class 0: tasks.
    public const ulong Exit = ClassTask | 0;
    public const ulong ThreadCreate = ClassTask | 1;
    public const ulong ThreadExit = ClassTask | 2;
    public const ulong Batch = ClassTask | 3;
    public const ulong Exec = ClassTask | 4;
    public const ulong WaitForEvent = ClassTask | 5;
    /// <summary>
    /// RING_POLL(entries, cpu): a polled submission/completion ring (io_uring's SQPOLL). Returns a handle to a
    /// mappable ring object (<see cref="PolledRingLayout"/>); a kernel poller on <c>cpu</c> runs what user space
    /// publishes in its submission queue without any user/kernel transition. WAIT_FOR_EVENT on the handle blocks
    /// until a completion is there. Copra's own number (docs/abi.md).
    /// </summary>
    public const ulong RingPoll = ClassTask | 6;
    public const ulong Close = ClassTask | 10;

    // Class 1: files (COCONUT's numbers).
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

    // Class 2: memory.
    public const ulong OpenPhysMem = ClassMemory | 0;
    public const ulong Mmap = ClassMemory | 1;
    public const ulong Munmap = ClassMemory | 2;
    public const ulong SetMemState = ClassMemory | 3;

    // Class 3: VMs.
    public const ulong Capabilities = ClassVm | 0;
    public const ulong VmOpen = ClassVm | 1;
    public const ulong VmCapabilities = ClassVm | 2;
    public const ulong VcpuCreate = ClassVm | 3;
    public const ulong GetState = ClassVm | 4;
    public const ulong SetState = ClassVm | 5;
    public const ulong VmControl = ClassVm | 6;

    // Class 4: events.
    public const ulong MmioEvent = ClassEvent | 0;
    public const ulong IoioEvent = ClassEvent | 1;
    public const ulong IrqEvent = ClassEvent | 2;
    public const ulong EventSignal = ClassEvent | 3;

    /// <summary>Every number the kernel implements, for tests and fuzzers.</summary>
    public static ReadOnlySpan<ulong> All =>
    [
        Exit, ThreadCreate, ThreadExit, Batch, Exec, WaitForEvent, RingPoll, Close,
        Open, Read, Write, Seek, Truncate, Unlink, OpenDir, ReadDir, MkDir, RmDir,
        OpenPhysMem, Mmap, Munmap, SetMemState,
        Capabilities, VmOpen, VmCapabilities, VcpuCreate, GetState, SetState, VmControl,
        MmioEvent, IoioEvent, IrqEvent, EventSignal,
    ];

    /// <summary>Calls BATCH refuses: those that may block or never return, and BATCH itself (no nesting).</summary>
    public static bool MayBlock(ulong nr) => nr is WaitForEvent or Exit or ThreadExit or Batch;

    public static string Name(ulong nr) => nr switch
    {
        Exit => "EXIT", ThreadCreate => "THREAD_CREATE", ThreadExit => "THREAD_EXIT", Batch => "BATCH",
        Exec => "EXEC", WaitForEvent => "WAIT_FOR_EVENT", RingPoll => "RING_POLL", Close => "CLOSE",
        Open => "OPEN", Read => "READ", Write => "WRITE", Seek => "SEEK", Truncate => "TRUNCATE",
        Unlink => "UNLINK", OpenDir => "OPENDIR", ReadDir => "READDIR", MkDir => "MKDIR", RmDir => "RMDIR",
        OpenPhysMem => "OPEN_PHYSMEM", Mmap => "MMAP", Munmap => "MUNMAP", SetMemState => "SET_MEM_STATE",
        Capabilities => "CAPABILITIES", VmOpen => "VM_OPEN", VmCapabilities => "VM_CAPABILITIES",
        VcpuCreate => "VCPU_CREATE", GetState => "GET_STATE", SetState => "SET_STATE", VmControl => "VM_CONTROL",
        MmioEvent => "MMIO_EVENT", IoioEvent => "IOIO_EVENT", IrqEvent => "IRQ_EVENT", EventSignal => "EVENT_SIGNAL",
        _ => $"0x{nr:x}",
    };
}

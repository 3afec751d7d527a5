namespace Copra.Abi;

/// <summary>The code of a thread: what THREAD_CREATE's entry address names.</summary>
public delegate Task ThreadEntry(IUserContext ctx, ulong arg);

/// <summary>
/// What a user process has: the syscall gate, its own memory, and its code. In a real kernel
/// the second and third are the MMU and the text segment; here they are this interface.
/// </summary>
public interface IUserContext
{
    /// <summary>
    /// The gate: the only way into the kernel. Calls that do not block complete synchronously
    /// (the returned task is already done, with no allocation); WAIT_FOR_EVENT may return a pending
    /// task that the kernel completes when the thread is woken.
    /// </summary>
    ValueTask<long> SysCall(in SysCallRegs regs);

    /// <summary>
    /// The caller's own memory at a virtual address, as a CPU would see it. An address the process has
    /// not mapped faults: it throws <see cref="UserFaultException"/> and the kernel kills the process.
    /// </summary>
    Span<byte> Memory(ulong va, int length);

    /// <summary>The start of the process's private data segment and its size (the process's own heap).</summary>
    ulong DataBase { get; }
    int DataSize { get; }

    /// <summary>Places code in the text segment and returns its entry address (for THREAD_CREATE).</summary>
    ulong DefineEntry(ThreadEntry entry);

    /// <summary>The arguments EXEC passed: the program path.</summary>
    string ProgramPath { get; }
}

/// <summary>A user access to an unmapped address: the process's own bug, fatal to it alone.</summary>
public sealed class UserFaultException(ulong va, int length)
    : Exception($"user fault at 0x{va:x} (+{length})")
{
    public ulong Address { get; } = va;
}

/// <summary>A user program: EXEC finds one by path and starts its main thread here.</summary>
public interface IUserProgram
{
    Task Main(IUserContext ctx);
}

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

    /// <summary>
    /// The <typeparamref name="T"/> at <paramref name="va"/> in the caller's own memory, resolved once (see
    /// <see cref="UserView{T}"/>). This default resolves the address again on every access; the kernel's context keeps a
    /// pointer into the mapping.
    /// </summary>
    UserView<T> View<T>(ulong va) where T : unmanaged => new ResolvingView<T>(this, va);

    /// <summary>The start of the process's private data segment and its size (the process's own heap).</summary>
    ulong DataBase { get; }
    int DataSize { get; }

    /// <summary>Places code in the text segment and returns its entry address (for THREAD_CREATE).</summary>
    ulong DefineEntry(ThreadEntry entry);

    /// <summary>The arguments EXEC passed: the program path.</summary>
    string ProgramPath { get; }
}

/// <summary>
/// A structure in the caller's own mapped memory (a device model's event area, a VMM's run page): what a pointer into a
/// mapping is on a real CPU, so a model's loop reads its area directly instead of resolving the address on every access.
/// <see cref="Value"/> is the structure as the CPU sees it now; once the mapping is gone it faults
/// (<see cref="UserFaultException"/>), as a load through a stale pointer would. Not part of the syscall ABI: the model's
/// stand-in for the MMU, like <see cref="IUserContext.Memory"/>.
/// </summary>
public abstract class UserView<T> where T : unmanaged
{
    public abstract ref T Value { get; }
}

/// <summary>The default view: resolves the address through <see cref="IUserContext.Memory"/> on every access.</summary>
public sealed class ResolvingView<T>(IUserContext ctx, ulong va) : UserView<T> where T : unmanaged
{
    public override ref T Value =>
        ref System.Runtime.InteropServices.MemoryMarshal.AsRef<T>(ctx.Memory(va, System.Runtime.CompilerServices.Unsafe.SizeOf<T>()));
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

using Copra.Abi;
using Copra.Cold;

namespace Copra.Kernel.Core;

/// <summary>
/// A thread's view of the machine: the gate into the kernel, its process's memory, its process's
/// code. User programs hold this and nothing else of the kernel.
/// </summary>
public sealed class UserContext(Kernel kernel, KThread thread) : IUserContext
{
    public KThread Thread => thread;

    public ValueTask<long> SysCall(in SysCallRegs regs) => kernel.Gate.Enter(thread, regs);

    public Span<byte> Memory(ulong va, int length)
    {
        if (thread.State == ThreadState.Dead) throw new ThreadKilledException();
        return thread.Process.Space.TrySpan(va, length, write: true, out var span) ? span : throw new UserFaultException(va, length);
    }

    public ulong DataBase => AddressSpace.DataBase;
    public int DataSize => thread.Process.Space.DataSize;
    public ulong DefineEntry(ThreadEntry entry) => kernel.DefineEntry(thread.Process, entry);
    public string ProgramPath => thread.Process.Path;
}

/// <summary>Thrown into user code that touches memory after its process was killed.</summary>
public sealed class ThreadKilledException() : Exception("thread killed");

using Copra.Abi;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
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

    public UserView<T> View<T>(ulong va) where T : unmanaged => new MappedView<T>(thread, va);

    public ulong DataBase => AddressSpace.DataBase;
    public int DataSize => thread.Process.Space.DataSize;
    public ulong DefineEntry(ThreadEntry entry) => kernel.DefineEntry(thread.Process, entry);
    public string ProgramPath => thread.Process.Path;
}

/// <summary>
/// A resolved view (<see cref="IUserContext.View{T}"/>): a pointer into a native mapping (event areas, run pages: the
/// kernel page pool, never moved), kept while the process's layout is the one it was resolved in. Any map or unmap
/// re-resolves it, so a view of a mapping that is gone faults like <see cref="UserContext.Memory"/> would. Mappings over
/// managed memory (the data segment, anonymous memory) resolve on every access.
/// </summary>
sealed unsafe class MappedView<T>(KThread thread, ulong va) : UserView<T> where T : unmanaged
{
    object? _layout;
    byte* _p;
    readonly AddressSpace _space = thread.Process.Space;   // a thread's process and its space are fixed for its life

    public override ref T Value
    {
        get
        {
            // The pointer while the layout it was resolved in holds and the thread lives; everything else out of line, so
            // this read (a device model's every access) needs no frame.
            byte* p = _p;
            if (p != null && thread.State != ThreadState.Dead && ReferenceEquals(_layout, _space.Layout)) return ref Unsafe.AsRef<T>(p);
            return ref Resolve();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    ref T Resolve()
    {
        if (thread.State == ThreadState.Dead) throw new ThreadKilledException();
        var space = _space;
        var layout = space.Layout;   // before the lookup: a change after it re-resolves on the next access
        int size = Unsafe.SizeOf<T>();
        if (!space.TryResolve(va, (ulong)size, write: true, out var region, out ulong off)) { _p = null; throw new UserFaultException(va, size); }
        if (region.Window is Machine.NativeWindow native) { _p = native.At(off, size); _layout = layout; return ref Unsafe.AsRef<T>(_p); }
        _p = null;
        return ref MemoryMarshal.AsRef<T>(region.Window.Span(off, size));
    }
}

/// <summary>Thrown into user code that touches memory after its process was killed.</summary>
public sealed class ThreadKilledException() : Exception("thread killed");

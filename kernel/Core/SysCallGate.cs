using System.Text;
using Copra.Abi;
using Copra.Cold;

namespace Copra.Kernel.Core;

/// <summary>
/// The syscall gate: the one entry from user space. It turns registers into typed arguments and
/// hands off to one method per call (Hubris's shape: a function of kernel state and caller that
/// returns a result or a user error). A <see cref="KernelError"/> becomes its ABI code here and
/// nowhere else; any other exception is a kernel bug, counted in <see cref="Kernel.InternalErrors"/>
/// and answered with EINVAL so the caller still sees a defined result.
/// </summary>
public sealed partial class SysCallGate(Kernel k)
{
    public long Calls, Transitions;

    public ValueTask<long> Enter(KThread t, in SysCallRegs r)
    {
        Transitions++;
        var cpu = Kernel.CurrentCpu;
        if (cpu is not null) cpu.Clock += k.Cost.SyscallCycles;
        return Dispatch(t, r, inBatch: false);
    }

    /// <summary>One call, from the gate or from inside a BATCH.</summary>
    internal ValueTask<long> Dispatch(KThread t, in SysCallRegs r, bool inBatch)
    {
        Calls++;
        if (t.State == ThreadState.Dead) return t.Block("dead");
        try
        {
            if (inBatch && SysNr.MayBlock(r.Rax)) return new(Errno.EINVAL);
            return r.Rax switch
            {
                SysNr.Exit => Exit(t, r.Rdi),
                SysNr.ThreadCreate => new(ThreadCreate(t, r.Rdi, r.Rsi)),
                SysNr.ThreadExit => ThreadExit(t),
                SysNr.Batch => new(Batch(t, r.Rdi, r.Rsi, r.R8)),
                SysNr.Exec => new(Exec(t, r.Rdi, r.Rsi, r.R8)),
                SysNr.WaitForEvent => k.WaitForEvent(t, r.Rdi),
                SysNr.RingPoll => new(k.RingPoll(t, r.Rdi, r.Rsi)),
                SysNr.Close => new(Close(t, r.Rdi)),
                SysNr.Open => new(Open(t, r.Rdi, r.Rsi, r.R8)),
                SysNr.Read => new(Read(t, r.Rdi, r.Rsi, r.R8)),
                SysNr.Write => new(Write(t, r.Rdi, r.Rsi, r.R8)),
                SysNr.Seek => new(File(t, r.Rdi).Seek((long)r.Rsi, r.R8)),
                SysNr.Truncate => new(File(t, r.Rdi).Truncate(r.Rsi)),
                SysNr.Unlink => new(PathOp(t, r.Rdi, p => k.Fs.Remove(p, dir: false))),
                SysNr.OpenDir => new(OpenDir(t, r.Rdi)),
                SysNr.ReadDir => new(ReadDir(t, r.Rdi, r.Rsi, r.R8)),
                SysNr.MkDir => new(PathOp(t, r.Rdi, k.Fs.MkDir)),
                SysNr.RmDir => new(PathOp(t, r.Rdi, p => k.Fs.Remove(p, dir: true))),
                _ => new(k.MachineCall(t, r)),
            };
        }
        catch (KernelError e)
        {
            return new(e.Code);
        }
        catch (UserFaultException)
        {
            return new(Errno.EFAULT);
        }
        catch (Exception e) when (e is not ThreadKilledException)
        {
            Interlocked.Increment(ref k.InternalErrors);
            k.LastInternalError = e;
            return new(Errno.EINVAL);
        }
    }

    // ---- user memory: every pointer is checked here, once ----------------------------------

    /// <summary>The caller's bytes at [va, va+len), or EFAULT (wraps, holes, the kernel half).</summary>
    public static Span<byte> UserSpan(KThread t, ulong va, ulong len, bool write)
    {
        if (len > int.MaxValue) throw KernelError.Inval($"length {len} too large");
        if (!t.Process.Space.TrySpan(va, (int)len, write, out var span))
            throw KernelError.Fault($"bad user range 0x{va:x}+{len}");
        return span;
    }

    /// <summary>A NUL-terminated UTF-8 path of at most PATH_MAX bytes (NUL included).</summary>
    public static string UserPath(KThread t, ulong va)
    {
        if (!t.Process.Space.TryResolve(va, 1, false, out var region, out var off)) throw KernelError.Fault($"bad path pointer 0x{va:x}");
        int avail = (int)Math.Min(region.Length - off, OpenMode.PathMax);
        var span = region.Window.Span(off, avail);
        int nul = span.IndexOf((byte)0);
        if (nul < 0) throw avail == OpenMode.PathMax ? KernelError.Inval("path longer than PATH_MAX") : KernelError.Fault("path runs off its mapping");
        try { return new UTF8Encoding(false, true).GetString(span[..nul]); }
        catch (DecoderFallbackException) { throw KernelError.Inval("path is not UTF-8"); }
    }


    // ---- class 0 -----------------------------------------------------------------------------

    ValueTask<long> Exit(KThread t, ulong code)
    {
        var cpu = Kernel.CurrentCpu ?? k.Cpus[t.Cpu];
        k.ExitProcess(cpu, t.Process, (ushort)code, "exit");   // COCONUT keeps the low 16 bits
        return t.Block("exit");
    }

    ValueTask<long> ThreadExit(KThread t)
    {
        k.ExitThread(Kernel.CurrentCpu ?? k.Cpus[t.Cpu], t);
        return t.Block("thread-exit");
    }

    long ThreadCreate(KThread t, ulong entry, ulong arg)
    {
        if (!k.TryGetEntry(t.Process, entry, out var fn)) throw KernelError.Fault($"no code at 0x{entry:x}");
        // Threads start on the caller's CPU: no affinity of their own.
        return k.CreateThread(t.Process, fn, arg, t.Cpu).Id;
    }

    long Exec(KThread t, ulong pathVa, ulong handlesVa, ulong count)
    {
        string path = UserPath(t, pathVa);
        if (count > 64) throw KernelError.Inval("at most 64 handles may be passed");
        var raw = UserSpan(t, handlesVa, count * 4, write: false);
        var handles = new ulong[count];
        for (int i = 0; i < (int)count; i++) handles[i] = BitConverter.ToUInt32(raw.Slice(i * 4, 4));
        if (handles.Distinct().Count() != handles.Length) throw KernelError.Inval("a handle is listed twice");
        // Check every handle before moving any: EXEC either moves all or none.
        foreach (var h in handles)
        {
            if (h == 0) throw KernelError.Inval("the console (handle 0) cannot be passed");
            t.Process.Handles.Get(h);
        }
        k.Fs.ResolveProgram(path);
        var moved = handles.Select(h => t.Process.Handles.Detach(h)!).ToList();
        var child = k.Spawn(path, t.Process, t.Cpu, moved);
        return child.Pid;
    }

    long Close(KThread t, ulong h)
    {
        if (h != 0) t.Process.Close(h);   // CLOSE always returns 0; the console stays
        return 0;
    }

    long Batch(KThread t, ulong inVa, ulong outVa, ulong count) => k.RunBatch(t, inVa, outVa, count);

    // ---- class 1 -----------------------------------------------------------------------------

    IFileLike File(KThread t, ulong h) =>
        t.Process.Handles.Get(h).AsFile() ?? throw KernelError.NotSupp($"handle 0x{h:x} is not a file");

    long Open(KThread t, ulong pathVa, ulong mode, ulong flags)
    {
        if (mode == 0 || (mode & ~OpenMode.All) != 0 || (flags & ~OpenMode.FlagCreate) != 0) throw KernelError.Inval("bad mode or flags");
        string path = UserPath(t, pathVa);
        var f = k.Fs.OpenFile(path, (flags & OpenMode.FlagCreate) != 0, (mode & OpenMode.Trunc) != 0);
        if (f.ProgramName is not null && (mode & OpenMode.Write) != 0) throw KernelError.Perm("program images are read-only");
        return t.Process.Handles.Add(new FileObject(k.Fs, f, mode));
    }

    long Read(KThread t, ulong h, ulong buf, ulong len)
    {
        var f = File(t, h);
        return f.Read(UserSpan(t, buf, len, write: true));
    }

    long Write(KThread t, ulong h, ulong buf, ulong len)
    {
        var f = File(t, h);
        return f.Write(UserSpan(t, buf, len, write: false));
    }

    long PathOp(KThread t, ulong pathVa, Action<string> op)
    {
        op(UserPath(t, pathVa));
        return 0;
    }

    long OpenDir(KThread t, ulong pathVa) =>
        t.Process.Handles.Add(new DirObject(k.Fs, k.Fs.OpenDir(UserPath(t, pathVa))));

    long ReadDir(KThread t, ulong h, ulong buf, ulong n)
    {
        var d = t.Process.Handles.Get(h) as DirObject ?? throw KernelError.NotSupp("not a directory handle");
        if (n > 4096) throw KernelError.Inval("at most 4096 entries per READDIR");
        var dest = UserSpan(t, buf, n * DirEnt.ByteSize, write: true);
        var entries = d.Next((int)n);
        for (int i = 0; i < entries.Count; i++)
        {
            var e = dest.Slice(i * DirEnt.ByteSize, DirEnt.ByteSize);
            e.Clear();
            var name = Encoding.UTF8.GetBytes(entries[i].Name);
            name.AsSpan(0, Math.Min(name.Length, DirEnt.NameSize - 1)).CopyTo(e);
            e[256] = entries[i].IsDir ? (byte)1 : (byte)0;
            BitConverter.TryWriteBytes(e.Slice(264, 8), entries[i].Size);
        }
        return entries.Count;
    }
}

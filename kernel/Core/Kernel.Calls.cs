using System.Text;
using Copra.Abi;
using Copra.Cold;

namespace Copra.Kernel.Core;

/// <summary>
/// The bodies of upstream's calls (class 0 and 1) and of Copra's thread calls. Each is a method of (kernel state,
/// caller, typed arguments) that returns RAX or throws <see cref="KernelError"/>; <see cref="SysCallTable"/> decodes
/// the registers and <see cref="SysCallGate"/> maps the errors. Behaviour follows upstream's implementation
/// (kernel/src/syscall/class0.rs, class1.rs, kernel/src/fs/) edge case by edge case; docs/abi.md lists the
/// differences and why.
/// </summary>
public sealed partial class Kernel
{
    RamFs.Dir RootOf(KThread t) => t.Process.Root ?? Fs.Root;

    // ---- class 0 -----------------------------------------------------------------------------

    internal ValueTask<long> SysExit(KThread t, uint code)
    {
        var cpu = CurrentCpu ?? Cpus[t.Cpu];
        ExitProcess(cpu, t.Process, (ushort)code, "exit");   // upstream keeps the low 16 bits
        return t.Block("exit");
    }

    internal ValueTask<long> SysThreadExit(KThread t)
    {
        ExitThread(CurrentCpu ?? Cpus[t.Cpu], t);
        return t.Block("thread-exit");
    }

    internal long ThreadCreate(KThread t, ulong entry, ulong arg)
    {
        if (!TryGetEntry(t.Process, entry, out var fn)) throw KernelError.Fault($"no code at 0x{entry:x}");
        // Threads start on the caller's CPU: no affinity of their own.
        return CreateThread(t.Process, fn, arg, t.Cpu).Id;
    }

    /// <summary>
    /// EXEC(file, root, flags[, handles, count]). As upstream: both paths are read first (EINVAL/EFAULT), the root
    /// directory is found from the caller's root (EINVAL empty, ENOTFOUND missing), the program from the filesystem's
    /// root. Unlike upstream, a program that cannot be loaded fails here, before any task exists (docs/abi.md).
    /// With <see cref="ExecFlags.PassHandles"/>, R9/R10 list handles that move to the child at 1..n, all or none.
    /// </summary>
    internal long Exec(KThread t, ulong fileVa, ulong rootVa, ulong flags, ulong listVa, ulong count)
    {
        string file = UserMemory.Path(t, fileVa);
        string root = UserMemory.Path(t, rootVa);
        if ((flags & ~(ExecFlags.UpstreamBits | ExecFlags.CopraBits)) != 0) throw KernelError.Inval($"unknown EXEC flags 0x{flags:x}");
        var rootDir = Fs.OpenDir(RootOf(t), root);
        uint[] handles = [];
        if ((flags & ExecFlags.PassHandles) != 0)
        {
            if (count > ExecFlags.MaxHandles) throw KernelError.Inval($"at most {ExecFlags.MaxHandles} handles may be passed");
            var raw = UserMemory.Span(t, listVa, UserMemory.CheckArray(listVa, count, 4), write: false);
            handles = new uint[count];
            for (int i = 0; i < (int)count; i++) handles[i] = BitConverter.ToUInt32(raw.Slice(i * 4, 4));
            if (handles.Distinct().Count() != handles.Length) throw KernelError.Inval("a handle is listed twice");
            // Check every handle before moving any: EXEC either moves all or none.
            foreach (var h in handles)
            {
                if (h == 0) throw KernelError.Inval("the console (handle 0) cannot be passed");
                t.Process.Handles.Get(h);
            }
        }
        Fs.ResolveProgram(file);
        var moved = handles.Select(h => t.Process.Handles.Detach(h)!).ToList();
        return Spawn(file, t.Process, t.Cpu, moved, rootDir).Pid;
    }

    /// <summary>CLOSE always returns 0; an unknown handle is a no-op; handle 0 (the console) closes too, as upstream's log handle does.</summary>
    internal long Close(KThread t, uint h)
    {
        t.Process.Close(h);
        return 0;
    }

    /// <summary>Largest anonymous mapping (the model backs it with managed memory): ENOMEM above.</summary>
    public const ulong MaxAnonymousBytes = 64UL << 20;

    /// <summary>
    /// MMAP(handle, hint, offset, length, flags), PR #945's arguments. Handle 0 or ANONYMOUS: zeroed private memory.
    /// Otherwise the object's mappable pages: PHYSMEM ranges, a vCPU's run page, an event area, a polled ring.
    /// FIXED maps at the hint exactly; without it the hint is only a hint (ignored). READ, EXEC and PRIVATE are
    /// accepted; every mapping is readable and none is executable in the model.
    /// </summary>
    internal long Mmap(KThread t, uint handle, ulong hint, ulong offset, ulong length, ulong flags)
    {
        var p = t.Process;
        if ((flags & ~MapFlags.All) != 0) throw KernelError.Inval($"unknown MMAP flags 0x{flags:x}");
        if (length == 0 || ((offset | length) & Page.Mask) != 0) throw KernelError.Inval("offset and length must be page-aligned and non-zero");
        bool write = (flags & MapFlags.Write) != 0;
        ulong? at = (flags & MapFlags.Fixed) != 0 ? hint : null;
        IMappable m;
        if (handle == MapFlags.AnonymousHandle || (flags & MapFlags.Anonymous) != 0)
        {
            if (length > MaxAnonymousBytes) throw KernelError.NoMem($"anonymous mappings are at most {MaxAnonymousBytes} bytes here");
            m = new AnonymousMemory(length);
            offset = 0;
        }
        else
        {
            m = p.Handles.Get(handle).AsMappable() ?? throw KernelError.Inval("object is not mappable");
            if (length > m.MappableLength || offset > m.MappableLength - length) throw KernelError.Inval("range outside the object");
        }
        var window = m.Map(p, offset, length, write);
        try { return (long)p.Space.Map(length, window, write, m, offset, at); }
        catch { m.Unmapped(p, offset, length); throw; }
    }

    /// <summary>MUNMAP(address): the mapping that starts there goes, whatever length is passed (PR #945); EINVAL if none starts there.</summary>
    internal long Munmap(KThread t, ulong va)
    {
        var region = t.Process.Space.Unmap(va);
        region.Source!.Unmapped(t.Process, region.SourceOffset, region.Length);
        return 0;
    }

    /// <summary>Memory MMAP hands out for handle 0 / ANONYMOUS: zeroed pages that belong to the one mapping.</summary>
    sealed class AnonymousMemory(ulong length) : IMappable
    {
        readonly ArrayWindow _window = new(new byte[length]);
        public ulong MappableLength => length;
        public IMemoryWindow Map(Process process, ulong offset, ulong len, bool writable) => _window;
        public void Unmapped(Process process, ulong offset, ulong len) { }
    }

    // ---- class 1 -----------------------------------------------------------------------------

    /// <summary>
    /// OPEN(path, mode, flags) in upstream's order: path, then mode and flags (unknown bits EINVAL; mode 0 is a
    /// handle that can neither read nor write), open or with CREATE create (a created file's handle reads and
    /// writes whatever the mode), TRUNC (ERDONLY without write rights), APPEND (position at the end, once).
    /// </summary>
    internal long Open(KThread t, ulong pathVa, ulong mode, ulong flags)
    {
        string path = UserMemory.Path(t, pathVa);
        if ((mode & ~OpenMode.All) != 0 || (flags & ~OpenMode.FlagCreate) != 0) throw KernelError.Inval("bad mode or flags");
        var f = Fs.OpenFile(RootOf(t), path, (flags & OpenMode.FlagCreate) != 0, out bool created);
        ulong rights = created ? OpenMode.Read | OpenMode.Write : mode;
        var fo = new FileObject(Fs, f, rights);
        if ((mode & OpenMode.Trunc) != 0) fo.Truncate(0);
        if ((mode & OpenMode.Append) != 0) fo.SeekToEnd();
        return t.Process.Handles.Add(fo);
    }

    IFileLike FileOf(KThread t, uint h) =>
        t.Process.Handles.Get(h).AsFile() ?? throw KernelError.NotSupp($"handle 0x{h:x} is not a file");

    internal long Read(KThread t, uint h, ulong buf, ulong len)
    {
        var f = FileOf(t, h);
        if (f is FileObject { CanRead: false }) throw KernelError.WriteOnly("opened without READ");   // before the buffer, as upstream
        // Only the bytes the file can give are copied, as upstream's UserBuffer does: a buffer mapped for those is enough.
        ulong n = Math.Min(len, (ulong)f.Remaining);
        return f.Read(UserMemory.Span(t, buf, n, write: true));
    }

    internal long Write(KThread t, uint h, ulong buf, ulong len)
    {
        var f = FileOf(t, h);
        if (f is FileObject { CanWrite: false }) throw KernelError.ReadOnly("opened without WRITE");
        return f.Write(UserMemory.Span(t, buf, len, write: false));
    }

    /// <summary>SEEK: the whence is checked before the object's kind (upstream order), so a bad whence is EINVAL even on a directory.</summary>
    internal long Seek(KThread t, uint h, ulong offset, ulong whence)
    {
        var o = t.Process.Handles.Get(h);
        if (whence > SeekWhence.End) throw KernelError.Inval($"unknown whence {whence}");
        var f = o.AsFile() ?? throw KernelError.NotSupp($"handle 0x{h:x} is not a file");
        return f.Seek(offset, whence);
    }

    internal long Truncate(KThread t, uint h, ulong length) => FileOf(t, h).Truncate(length);

    internal long Unlink(KThread t, ulong pathVa) { Fs.Unlink(RootOf(t), UserMemory.Path(t, pathVa)); return 0; }
    internal long MkDir(KThread t, ulong pathVa) { Fs.MkDir(RootOf(t), UserMemory.Path(t, pathVa)); return 0; }
    internal long RmDir(KThread t, ulong pathVa) { Fs.RmDir(RootOf(t), UserMemory.Path(t, pathVa)); return 0; }

    internal long OpenDir(KThread t, ulong pathVa) =>
        t.Process.Handles.Add(new DirObject(Fs, Fs.OpenDir(RootOf(t), UserMemory.Path(t, pathVa))));

    /// <summary>
    /// READDIR(handle, DirEnt*, count) as upstream: no cap on count; the array must lie in user space (EINVAL);
    /// entries are produced and written one at a time, so it returns at the end of the directory without touching
    /// the rest of the array, and an unmapped entry is EFAULT after the ones before it were written (and consumed).
    /// Names longer than 255 bytes are cut at a UTF-8 boundary, NUL-terminated.
    /// </summary>
    internal long ReadDir(KThread t, uint h, ulong buf, ulong count)
    {
        var o = t.Process.Handles.Get(h);
        if (o is not DirObject && o.AsFile() is null) throw KernelError.NotSupp("not a filesystem handle");
        UserMemory.CheckArray(buf, count, DirEnt.ByteSize);
        for (ulong i = 0; i < count; i++)
        {
            var d = o as DirObject ?? throw KernelError.NotSupp("not a directory handle");
            if (!d.TryNext(out var e)) return (long)i;
            var dest = UserMemory.Span(t, buf + i * DirEnt.ByteSize, DirEnt.ByteSize, write: true);
            dest.Clear();
            var name = Encoding.UTF8.GetBytes(e.Name);
            int n = Math.Min(name.Length, DirEnt.NameSize - 1);
            while (n > 0 && n < name.Length && (name[n] & 0xC0) == 0x80) n--;   // a UTF-8 boundary
            name.AsSpan(0, n).CopyTo(dest);
            dest[256] = e.IsDir ? (byte)1 : (byte)0;
            BitConverter.TryWriteBytes(dest.Slice(264, 8), e.Size);
        }
        return (long)count;
    }
}

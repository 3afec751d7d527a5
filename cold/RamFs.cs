using Copra.Abi;

namespace Copra.Cold;

/// <summary>
/// The small in-memory filesystem behind the class-1 calls (COCONUT's RAM FS, in spirit). Paths are
/// absolute, '/'-separated; no '.' or '..' components. Programs live here too: EXEC looks a path up
/// and runs the program whose image the file names. One lock for the whole tree: cold, rare.
/// </summary>
public sealed class RamFs
{
    public abstract class Node { public required string Name; public Dir? Parent; }
    public sealed class Dir : Node { public readonly SortedDictionary<string, Node> Children = new(StringComparer.Ordinal); }
    public sealed class File : Node
    {
        public byte[] Data = [];
        public int Length;
        /// <summary>Set for program images: the key EXEC resolves to a program.</summary>
        public string? ProgramName;
    }

    readonly Dir _root = new() { Name = "" };
    internal readonly object Lock = new();

    static string[] Split(string path)
    {
        if (path.Length == 0 || path[0] != '/') throw KernelError.Inval($"path '{path}' is not absolute");
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        foreach (var p in parts)
            if (p is "." or ".." || p.Length >= DirEnt.NameSize) throw KernelError.Inval($"bad path component '{p}'");
        return parts;
    }

    Node? Find(string[] parts, int count)
    {
        Node n = _root;
        for (int i = 0; i < count; i++)
        {
            if (n is not Dir d || !d.Children.TryGetValue(parts[i], out var c)) return null;
            n = c;
        }
        return n;
    }

    Dir ParentOf(string[] parts)
    {
        if (parts.Length == 0) throw KernelError.Inval("the root has no parent");
        return Find(parts, parts.Length - 1) as Dir ?? throw KernelError.NotFound("parent directory missing");
    }

    public File OpenFile(string path, bool create, bool truncate)
    {
        lock (Lock)
        {
            var parts = Split(path);
            var node = Find(parts, parts.Length);
            if (node is Dir) throw KernelError.Inval($"'{path}' is a directory");
            if (node is File f) { if (truncate) f.Length = 0; return f; }
            if (!create) throw KernelError.NotFound($"'{path}' not found");
            var dir = ParentOf(parts);
            var nf = new File { Name = parts[^1], Parent = dir };
            dir.Children.Add(nf.Name, nf);
            return nf;
        }
    }

    public Dir OpenDir(string path)
    {
        lock (Lock)
            return Find(Split(path), Split(path).Length) as Dir ?? throw KernelError.NotFound($"no directory '{path}'");
    }

    public void MkDirIfMissing(string path)
    {
        lock (Lock) { if (Find(Split(path), Split(path).Length) is null) MkDir(path); }
    }

    public void MkDir(string path)
    {
        lock (Lock)
        {
            var parts = Split(path);
            if (Find(parts, parts.Length) is not null) throw KernelError.Exists($"'{path}' exists");
            var dir = ParentOf(parts);
            dir.Children.Add(parts[^1], new Dir { Name = parts[^1], Parent = dir });
        }
    }

    public void Remove(string path, bool dir)
    {
        lock (Lock)
        {
            var parts = Split(path);
            var node = Find(parts, parts.Length) ?? throw KernelError.NotFound($"'{path}' not found");
            if (dir && node is not Dir) throw KernelError.Inval($"'{path}' is not a directory");
            if (!dir && node is Dir) throw KernelError.Inval($"'{path}' is a directory");
            if (node is Dir d && d.Children.Count > 0) throw KernelError.Busy($"'{path}' is not empty");
            node.Parent!.Children.Remove(node.Name);
        }
    }

    /// <summary>Installs a program image at a path, creating directories on the way.</summary>
    public void InstallProgram(string path, string programName)
    {
        lock (Lock)
        {
            var parts = Split(path);
            Dir d = _root;
            for (int i = 0; i < parts.Length - 1; i++)
            {
                if (!d.Children.TryGetValue(parts[i], out var c)) { c = new Dir { Name = parts[i], Parent = d }; d.Children.Add(parts[i], c); }
                d = c as Dir ?? throw KernelError.Inval($"'{parts[i]}' is a file");
            }
            var image = System.Text.Encoding.UTF8.GetBytes("COPRA-PROGRAM " + programName);
            d.Children[parts[^1]] = new File { Name = parts[^1], Parent = d, ProgramName = programName, Data = image, Length = image.Length };
        }
    }

    /// <summary>The program a path names, or ENOTFOUND / ENOTSUPP (a file that is not a program).</summary>
    public string ResolveProgram(string path)
    {
        lock (Lock)
        {
            var parts = Split(path);
            var node = Find(parts, parts.Length) ?? throw KernelError.NotFound($"no program at '{path}'");
            return (node as File)?.ProgramName ?? throw KernelError.NotSupp($"'{path}' is not a program");
        }
    }
}

/// <summary>An open file: a position over a <see cref="RamFs.File"/>, with the OPEN mode's rights.</summary>
public sealed class FileObject(RamFs fs, RamFs.File file, ulong mode) : KObject, IFileLike
{
    long _pos;
    public override string Kind => "file";
    public override string Describe() => $"file {file.Name}";
    public override IFileLike AsFile() => this;

    public long Read(Span<byte> dest)
    {
        if ((mode & OpenMode.Read) == 0) return Errno.EWRONLY;
        lock (fs.Lock)
        {
            int n = (int)Math.Clamp(file.Length - _pos, 0, dest.Length);
            file.Data.AsSpan((int)_pos, n).CopyTo(dest);
            _pos += n;
            return n;
        }
    }

    public long Write(ReadOnlySpan<byte> src)
    {
        if ((mode & OpenMode.Write) == 0) return Errno.ERDONLY;
        lock (fs.Lock)
        {
            if ((mode & OpenMode.Append) != 0) _pos = file.Length;
            long end = _pos + src.Length;
            if (end > int.MaxValue / 2) return Errno.ENOMEM;
            if (end > file.Data.Length) Array.Resize(ref file.Data, (int)Math.Max(end, file.Data.Length * 2L));
            if (_pos > file.Length) file.Data.AsSpan(file.Length, (int)_pos - file.Length).Clear();
            src.CopyTo(file.Data.AsSpan((int)_pos));
            _pos = end;
            file.Length = (int)Math.Max(file.Length, end);
            return src.Length;
        }
    }

    public long Seek(long offset, ulong whence)
    {
        lock (fs.Lock)
        {
            long b = whence switch { SeekWhence.Set => 0, SeekWhence.Current => _pos, SeekWhence.End => file.Length, _ => -1 };
            if (b < 0) return Errno.EINVAL;
            long p = b + offset;
            if (p < 0 || p > int.MaxValue / 2) return Errno.EINVAL;
            return _pos = p;
        }
    }

    public long Truncate(ulong length)
    {
        if ((mode & OpenMode.Write) == 0) return Errno.ERDONLY;
        if (length > int.MaxValue / 2) return Errno.EINVAL;
        lock (fs.Lock)
        {
            int n = (int)length;
            if (n > file.Data.Length) Array.Resize(ref file.Data, n);
            if (n > file.Length) file.Data.AsSpan(file.Length, n - file.Length).Clear();
            file.Length = n;
            return n;
        }
    }
}

/// <summary>An open directory for READDIR: a cursor over a snapshot of its entries.</summary>
public sealed class DirObject(RamFs fs, RamFs.Dir dir) : KObject
{
    int _cursor;
    public override string Kind => "dir";
    public override string Describe() => $"dir /{dir.Name}";

    /// <summary>Next entries: (name, isDir, size), at most max.</summary>
    public List<(string Name, bool IsDir, ulong Size)> Next(int max)
    {
        lock (fs.Lock)
        {
            var all = dir.Children.Values.ToList();
            var list = new List<(string, bool, ulong)>();
            while (_cursor < all.Count && list.Count < max)
            {
                var n = all[_cursor++];
                list.Add((n.Name, n is RamFs.Dir, n is RamFs.File f ? (ulong)f.Length : 0));
            }
            return list;
        }
    }
}

/// <summary>Handle 0 of every process: writes are its log, tagged with the pid; reads return end of file.</summary>
public sealed class ConsoleObject(Action<int, string> sink, int pid) : KObject, IFileLike
{
    public override string Kind => "console";
    public override IFileLike AsFile() => this;
    public long Read(Span<byte> dest) => 0;
    public long Write(ReadOnlySpan<byte> src) { sink(pid, System.Text.Encoding.UTF8.GetString(src)); return src.Length; }
    public long Seek(long offset, ulong whence) => Errno.ENOTSUPP;
    public long Truncate(ulong length) => Errno.ENOTSUPP;
}

using Copra.Abi;

namespace Copra.Cold;

/// <summary>
/// The small in-memory filesystem behind the class-1 calls, with upstream's path rules (kernel/src/fs/filesystem.rs):
/// a path is split at '/', empty components are dropped, and it is walked from a root directory (the calling
/// process's root; EXEC's program path from the filesystem's root, as upstream's loader does). So "/a//b" and "a/b"
/// name the same file, and a path with no component at all ("", "/") is EINVAL where a file is wanted. A file met
/// where a directory is wanted on the way is ENOTFOUND. '.' and '..' are ordinary names (upstream gives them no
/// meaning either). Programs live here too: EXEC looks a path up and runs the program whose image the file names.
/// One lock for the whole tree: cold, rare.
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

    /// <summary>The largest file a WRITE may make (bytes); a write that would end past it is ENOMEM and writes nothing.
    /// A file is one managed array, so the default keeps well below the runtime's array limit.</summary>
    public int MaxFileBytes { get; init; } = int.MaxValue / 2;

    /// <summary>The filesystem's root: every process's root unless EXEC gave it another.</summary>
    public Dir Root => _root;

    static string[] Split(string path) => path.Split('/', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>Components for a call that names an entry: at least one (upstream's split_path), else EINVAL.</summary>
    static string[] SplitEntry(string path)
    {
        var parts = Split(path);
        if (parts.Length == 0) throw KernelError.Inval($"path '{path}' names no entry");
        return parts;
    }

    /// <summary>Walks the first <paramref name="count"/> components as directories (upstream walk_path).</summary>
    static Dir Walk(Dir from, string[] parts, int count)
    {
        Dir d = from;
        for (int i = 0; i < count; i++)
        {
            if (!d.Children.TryGetValue(parts[i], out var c)) throw KernelError.NotFound($"'{parts[i]}' not found");
            d = c as Dir ?? throw KernelError.NotFound($"'{parts[i]}' is a file");
        }
        return d;
    }

    /// <summary>
    /// OPEN's lookup and create, in upstream's order: open an existing file; if that fails and <paramref name="create"/>
    /// is set, create the file (EEXIST if the name is a directory). A directory is not a file: ENOTFOUND.
    /// </summary>
    public File OpenFile(Dir root, string path, bool create, out bool created)
    {
        lock (Lock)
        {
            var parts = SplitEntry(path);
            created = false;
            KernelError miss;
            try
            {
                var dir = Walk(root, parts, parts.Length - 1);
                if (dir.Children.TryGetValue(parts[^1], out var n) && n is File f) return f;
                miss = KernelError.NotFound($"no file '{path}'");
            }
            catch (KernelError e) { miss = e; }
            if (!create) throw miss;
            var parent = Walk(root, parts, parts.Length - 1);
            if (parent.Children.ContainsKey(parts[^1])) throw KernelError.Exists($"'{path}' exists");
            var nf = new File { Name = parts[^1], Parent = parent };
            parent.Children.Add(nf.Name, nf);
            created = true;
            return nf;
        }
    }

    /// <summary>Kernel-side convenience from the filesystem's root (boot-time files).</summary>
    public File OpenFile(string path, bool create, bool truncate)
    {
        var f = OpenFile(_root, path, create, out _);
        if (truncate) lock (Lock) f.Length = 0;
        return f;
    }

    /// <summary>OPENDIR / EXEC's root: upstream find_dir. Empty string EINVAL; "/" (no components) is the start itself.</summary>
    public Dir OpenDir(Dir root, string path)
    {
        if (path.Length == 0) throw KernelError.Inval("empty directory path");
        lock (Lock)
        {
            var parts = Split(path);
            return Walk(root, parts, parts.Length);
        }
    }

    public void MkDirIfMissing(string path)
    {
        lock (Lock)
        {
            var parts = SplitEntry(path);
            if (!Walk(_root, parts, parts.Length - 1).Children.ContainsKey(parts[^1])) MkDir(_root, path);
        }
    }

    public void MkDir(Dir root, string path)
    {
        lock (Lock)
        {
            var parts = SplitEntry(path);
            var dir = Walk(root, parts, parts.Length - 1);
            if (dir.Children.ContainsKey(parts[^1])) throw KernelError.Exists($"'{path}' exists");
            dir.Children.Add(parts[^1], new Dir { Name = parts[^1], Parent = dir });
        }
    }

    /// <summary>UNLINK: files only (a directory is upstream's FsError::IsDir, which has no ABI code).</summary>
    public void Unlink(Dir root, string path)
    {
        lock (Lock)
        {
            var parts = SplitEntry(path);
            var dir = Walk(root, parts, parts.Length - 1);
            if (!dir.Children.TryGetValue(parts[^1], out var n)) throw KernelError.NotFound($"'{path}' not found");
            if (n is Dir) throw KernelError.IsDir($"'{path}' is a directory");
            dir.Children.Remove(n.Name);
        }
    }

    /// <summary>RMDIR: empty directories only (a file is FsError::IsFile, entries are FsError::NotEmpty: no ABI codes).</summary>
    public void RmDir(Dir root, string path)
    {
        lock (Lock)
        {
            var parts = SplitEntry(path);
            var dir = Walk(root, parts, parts.Length - 1);
            if (!dir.Children.TryGetValue(parts[^1], out var n)) throw KernelError.NotFound($"'{path}' not found");
            if (n is not Dir d) throw KernelError.IsFile($"'{path}' is a file");
            if (d.Children.Count > 0) throw KernelError.NotEmpty($"'{path}' is not empty");
            dir.Children.Remove(n.Name);
        }
    }

    /// <summary>Installs a program image at a path, creating directories on the way.</summary>
    public void InstallProgram(string path, string programName)
    {
        lock (Lock)
        {
            var parts = SplitEntry(path);
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

    /// <summary>The program a path names (from the filesystem's root), or ENOTFOUND / ENOTSUPP (a file that is not a program).</summary>
    public string ResolveProgram(string path)
    {
        lock (Lock)
        {
            var parts = SplitEntry(path);
            var dir = Walk(_root, parts, parts.Length - 1);
            if (!dir.Children.TryGetValue(parts[^1], out var n) || n is not File f) throw KernelError.NotFound($"no program at '{path}'");
            return f.ProgramName ?? throw KernelError.NotSupp($"'{path}' is not a program");
        }
    }
}

/// <summary>
/// An open file: a position over a <see cref="RamFs.File"/> with read and write rights (upstream FileHandle).
/// APPEND moves the position to the end once, at OPEN; SEEK clamps to the file's size; TRUNCATE only shrinks.
/// </summary>
public sealed class FileObject : KObject, IFileLike
{
    readonly RamFs _fs;
    readonly RamFs.File _file;
    readonly bool _read, _write;
    long _pos;

    public FileObject(RamFs fs, RamFs.File file, ulong mode)
    {
        _fs = fs; _file = file;
        _read = (mode & OpenMode.Read) != 0;
        _write = (mode & OpenMode.Write) != 0;
    }

    public bool CanRead => _read;
    public bool CanWrite => _write;
    public override string Kind => "file";
    public override string Describe() => $"file {_file.Name}";
    public override IFileLike AsFile() => this;

    /// <summary>OPEN's APPEND: the position starts at the end of the file.</summary>
    public void SeekToEnd() { lock (_fs.Lock) _pos = _file.Length; }

    public long Remaining { get { lock (_fs.Lock) return Math.Max(0, _file.Length - _pos); } }

    public long Read(Span<byte> dest)
    {
        if (!_read) throw KernelError.WriteOnly("opened without READ");
        lock (_fs.Lock)
        {
            int n = (int)Math.Clamp(_file.Length - _pos, 0, dest.Length);
            _file.Data.AsSpan((int)_pos, n).CopyTo(dest);
            _pos += n;
            return n;
        }
    }

    public long Write(ReadOnlySpan<byte> src)
    {
        if (!_write) throw KernelError.ReadOnly("opened without WRITE");
        lock (_fs.Lock)
        {
            long end = _pos + src.Length;
            if (end > _fs.MaxFileBytes) throw KernelError.NoMem("file too large");
            if (end > _file.Data.Length) Array.Resize(ref _file.Data, (int)Math.Max(end, _file.Data.Length * 2L));
            if (_pos > _file.Length) _file.Data.AsSpan(_file.Length, (int)_pos - _file.Length).Clear();
            src.CopyTo(_file.Data.AsSpan((int)_pos));
            _pos = end;
            _file.Length = (int)Math.Max(_file.Length, end);
            return src.Length;
        }
    }

    /// <summary>Upstream's seek: SET clamps to the size; CURRENT adds a signed offset (below 0 becomes 0) then clamps; END subtracts from the size, saturating at 0.</summary>
    public long Seek(ulong offset, ulong whence)
    {
        lock (_fs.Lock)
        {
            ulong size = (ulong)_file.Length;
            ulong pos = whence switch
            {
                SeekWhence.Set => Math.Min(offset, size),
                SeekWhence.Current => Math.Min(AddSigned((ulong)_pos, (long)offset), size),
                SeekWhence.End => offset >= size ? 0 : size - offset,
                _ => throw KernelError.Inval($"unknown whence {whence}"),
            };
            return _pos = (long)pos;
        }

        // upstream: current.checked_add_signed(offset).unwrap_or(0)
        static ulong AddSigned(ulong a, long d)
        {
            Int128 p = (Int128)a + d;
            return p < 0 || p > ulong.MaxValue ? 0 : (ulong)p;
        }
    }

    /// <summary>Shrinks the file (upstream's ramfs cannot grow one this way: EINVAL past the size); the position follows.</summary>
    public long Truncate(ulong length)
    {
        if (!_write) throw KernelError.ReadOnly("opened without WRITE");
        lock (_fs.Lock)
        {
            if (length > (ulong)_file.Length) throw KernelError.Inval($"TRUNCATE to {length} past the size {_file.Length}");
            _file.Length = (int)length;
            _pos = Math.Min(_pos, (long)length);
            return (long)length;
        }
    }
}

/// <summary>
/// An open directory for READDIR (upstream DirectoryHandle): the names are listed once, at OPENDIR; each READDIR
/// entry looks its name up again, so an entry removed since reads as ENOTFOUND (and is consumed, as upstream's is).
/// </summary>
public sealed class DirObject : KObject
{
    readonly RamFs _fs;
    readonly RamFs.Dir _dir;
    readonly string[] _names;
    int _cursor;

    public DirObject(RamFs fs, RamFs.Dir dir)
    {
        _fs = fs; _dir = dir;
        lock (fs.Lock) _names = [.. dir.Children.Keys];
    }

    public override string Kind => "dir";
    public override string Describe() => $"dir /{_dir.Name}";

    /// <summary>The next entry, or false at the end.</summary>
    public bool TryNext(out (string Name, bool IsDir, ulong Size) entry)
    {
        entry = default;
        lock (_fs.Lock)
        {
            if (_cursor >= _names.Length) return false;
            string name = _names[_cursor++];
            if (!_dir.Children.TryGetValue(name, out var n)) throw KernelError.NotFound($"'{name}' went away");
            entry = (name, n is RamFs.Dir, n is RamFs.File f ? (ulong)f.Length : 0);
            return true;
        }
    }
}

/// <summary>Handle 0 of every process: writes are its log, tagged with the pid; reads return end of file.</summary>
public sealed class ConsoleObject(Action<int, string> sink, int pid) : KObject, IFileLike
{
    public override string Kind => "console";
    public override IFileLike AsFile() => this;
    public long Remaining => 0;
    public long Read(Span<byte> dest) => 0;
    public long Write(ReadOnlySpan<byte> src) { sink(pid, System.Text.Encoding.UTF8.GetString(src)); return src.Length; }
    public long Seek(ulong offset, ulong whence) => throw KernelError.NotSupp("the console has no position");
    public long Truncate(ulong length) => throw KernelError.NotSupp("the console has no size");
}

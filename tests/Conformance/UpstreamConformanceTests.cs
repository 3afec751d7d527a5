using System.Runtime.InteropServices;
using System.Text;
using Copra.Abi;
using Copra.Cold;
using Copra.User;
using Xunit;
using static Copra.Tests.Kernel.KernelHarness;

namespace Copra.Tests.Conformance;

/// <summary>
/// Issues calls the way an upstream COCONUT-SVSM program does: its <c>syscall</c> crate (syscall/src/call.rs) loads
/// RAX and only the argument registers the call has (RDI, RSI, R8, R9, R10 in that order) and leaves the others as
/// they were, so here they carry garbage; RAX above u64::MAX - 65535 is an error, read as <c>ret as i32</c> and
/// anything outside -1..-11 as UNKNOWN. Handles travel as u32. One test per rule of docs/abi.md's conformance table.
/// </summary>
public static class Upstream
{
    /// <summary>What an argument register the call does not set happens to hold.</summary>
    public const ulong Garbage = 0xDEAD_BEEF_0BAD_F00D;

    public static long Call(IUserContext ctx, ulong nr, params ulong[] args)
    {
        var r = new SysCallRegs { Rax = nr, Rdi = Garbage, Rsi = Garbage, R8 = Garbage, R9 = Garbage, R10 = Garbage };
        if (args.Length > 0) r.Rdi = args[0];
        if (args.Length > 1) r.Rsi = args[1];
        if (args.Length > 2) r.R8 = args[2];
        if (args.Length > 3) r.R9 = args[3];
        if (args.Length > 4) r.R10 = args[4];
        var vt = ctx.SysCall(r);
        Assert.True(vt.IsCompleted);
        return vt.Result;
    }

    /// <summary>The error upstream's wrapper reports for a RAX, or null for a success.</summary>
    public static long? Error(long rax) => (ulong)rax > ulong.MaxValue - ushort.MaxValue ? Errno.Normalize((int)rax) : null;

    public static ulong Str(IUserContext ctx, string s) => Sys.CString(ctx, s);
}

public class UpstreamConformanceTests
{
    const ulong KernelHalf = 0xFFFF_8000_0000_1000;

    /// <summary>Boots a kernel, runs <paramref name="calls"/> as one user process to its end, and returns what they returned.</summary>
    static T InProcess<T>(Func<IUserContext, T> calls)
    {
        using var k = Boot();
        T result = default!;
        bool done = false;
        Run(k, ctx => { result = calls(ctx); done = true; });
        Assert.True(done, "the process did not run its calls to the end");
        return result;
    }

    // ---- errors, numbers, pointers, handles ------------------------------------------------------

    [Fact]
    public void UnknownNumberIsEinval()
    {
        Assert.Equal(Errno.EINVAL, InProcess(ctx => Upstream.Call(ctx, SysNr.ClassTask | 0x9)));
    }

    [Fact]
    public void MresizeIsEinvalBecauseUpstreamsKernelHasNoHandler()
    {
        Assert.Equal(Errno.EINVAL, InProcess(ctx => Upstream.Call(ctx, SysNr.MresizeReserved, 0x7000_0000_0000, 2 * Page.Size)));
    }

    [Fact]
    public void UnmappedErrorIsUnknown()
    {
        // upstream: rmdir of a non-empty directory is FsError::NotEmpty, which From<SvsmError> leaves to `_ => UNKNOWN`.
        long rax = InProcess(ctx =>
        {
            Upstream.Call(ctx, SysNr.MkDir, Upstream.Str(ctx, "/d"));
            Upstream.Call(ctx, SysNr.MkDir, Upstream.Str(ctx, "/d/e"));
            return Upstream.Call(ctx, SysNr.RmDir, Upstream.Str(ctx, "/d"));
        });
        Assert.Equal(Errno.UNKNOWN, rax);
        Assert.Equal(Errno.UNKNOWN, Upstream.Error(rax));
    }

    [Fact]
    public void UnlinkOfDirectoryAndRmdirOfFileAreUnknown()
    {
        var (unlink, rmdir) = InProcess(ctx =>
        {
            Upstream.Call(ctx, SysNr.MkDir, Upstream.Str(ctx, "/d"));
            Upstream.Call(ctx, SysNr.Open, Upstream.Str(ctx, "/f"), OpenMode.Write, OpenMode.FlagCreate);
            return (Upstream.Call(ctx, SysNr.Unlink, Upstream.Str(ctx, "/d")),
                Upstream.Call(ctx, SysNr.RmDir, Upstream.Str(ctx, "/f")));
        });
        Assert.Equal(Errno.UNKNOWN, unlink);
        Assert.Equal(Errno.UNKNOWN, rmdir);
    }

    [Fact]
    public void ErrorWindowIsEveryRaxAboveTwoToThe64Minus65536()
    {
        Assert.True(Errno.IsError(-1));
        Assert.True(Errno.IsError(Errno.UNKNOWN));
        Assert.True(Errno.IsError(-65535));
        Assert.False(Errno.IsError(-65536));
        Assert.Equal(Errno.UNKNOWN, Upstream.Error(-300));
        Assert.Null(Upstream.Error(0x7FFF_FFFF));
    }

    [Fact]
    public void PointerAboveUserSpaceIsEinval()
    {
        var (open, mkdir, write, top) = InProcess(ctx =>
        {
            return (Upstream.Call(ctx, SysNr.Open, KernelHalf, OpenMode.Read, 0),
                Upstream.Call(ctx, SysNr.MkDir, AddressSpace.UserTop),
                Upstream.Call(ctx, SysNr.Write, 0, KernelHalf, 4),
                Upstream.Call(ctx, SysNr.Write, 0, AddressSpace.UserTop - 2, 4));   // runs over the top
        });
        Assert.Equal([Errno.EINVAL, Errno.EINVAL, Errno.EINVAL, Errno.EINVAL], new[] { open, mkdir, write, top });
    }

    [Fact]
    public void WrappingRangeIsEinval()
    {
        Assert.Equal(Errno.EINVAL, InProcess(ctx => Upstream.Call(ctx, SysNr.Write, 0, ulong.MaxValue - 3, 16)));
    }

    [Fact]
    public void UnmappedPointerInsideUserSpaceIsEfault()
    {
        using var k = Boot();
        long open = 0, write = 0, readdir = 0;
        Run(k, ctx =>
        {
            open = Upstream.Call(ctx, SysNr.Open, 0x1000, OpenMode.Read, 0);
            write = Upstream.Call(ctx, SysNr.Write, 0, 0x5000_0000_0000, 4);
            long d = Upstream.Call(ctx, SysNr.OpenDir, Upstream.Str(ctx, "/"));
            readdir = Upstream.Call(ctx, SysNr.ReadDir, (ulong)(uint)d, 0x5000_0000_0000, 1);
        });
        Assert.Equal([Errno.EFAULT, Errno.EFAULT, Errno.EFAULT], new[] { open, write, readdir });
    }

    [Fact]
    public void HandleRegisterIsTruncatedToU32()
    {
        using var k = Boot();
        long write = 0, seek = 0;
        string console = "";
        var p = Run(k, ctx =>
        {
            write = Upstream.Call(ctx, SysNr.Write, 0xFFFF_FFFF_0000_0000, Sys.Bytes(ctx, "hi"u8), 2);   // handle 0
            uint f = FileWith(ctx, "/f", "abcdef");
            seek = Upstream.Call(ctx, SysNr.Seek, 0x1234_5678UL << 32 | f, 3, SeekWhence.Set);
        });
        console = k.ConsoleOf(p.Pid);
        Assert.Equal(2, write);
        Assert.Equal("hi", console);
        Assert.Equal(3, seek);
    }

    // ---- class 0 ------------------------------------------------------------------------------

    [Fact]
    public void ExitKeepsTheLow16BitsOfTheCode()
    {
        using var k = Boot();
        var p = Start(k, ctx => Upstream.Call(ctx, SysNr.Exit, 0xABCD_1234) is var _ ? Task.CompletedTask : Task.CompletedTask, "/t");
        Drive(k);
        Assert.Equal(0x1234, p.ExitCode);
    }

    [Fact]
    public void ExecWithFlagsZeroIgnoresR9R10()
    {
        using var k = Boot();
        long tid = 0;
        int childHandles = -1;
        k.Install("/child", () => new Tests.Kernel.LambdaProgram(ctx => Task.CompletedTask));
        Run(k, ctx =>
        {
            uint f = FileWith(ctx, "/f", "x");
            ulong list = Sys.Bytes(ctx, MemoryMarshal.AsBytes(new[] { f }.AsSpan()));
            // R9/R10 name a valid handle list, but flags are 0: upstream ignores them, so nothing moves.
            var r = new SysCallRegs { Rax = SysNr.Exec, Rdi = Upstream.Str(ctx, "/child"), Rsi = Upstream.Str(ctx, "/"), R8 = 0, R9 = list, R10 = 1 };
            var vt = ctx.SysCall(r);
            tid = vt.Result;
            childHandles = ReadText(ctx, f) == "x" ? 1 : 0;   // still ours
        });
        Assert.True(tid > 0);
        Assert.Equal(1, childHandles);
        var child = k.Processes.Single(p => p.Path == "/child");
        Assert.Equal((int)tid, child.Pid);
        Assert.Equal(0, child.ExitCode);
    }

    [Fact]
    public void ExecIgnoresUpstreamFlagBits()
    {
        using var k = Boot();
        long tid = 0;
        k.Install("/child", () => new Tests.Kernel.LambdaProgram(ctx => Task.CompletedTask));
        Run(k, ctx => tid = Upstream.Call(ctx, SysNr.Exec, Upstream.Str(ctx, "/child"), Upstream.Str(ctx, "/"), 0xFFFF_FFFF));
        Assert.True(tid > 0);
    }

    [Fact]
    public void ExecRootIsFoundFromTheCallersRootAndMustExist()
    {
        using var k = Boot();
        long empty = 0, missing = 0, file = 0, ok = 0;
        string seen = "";
        k.Install("/bin/child", () => new Tests.Kernel.LambdaProgram(ctx =>
        {
            // The child's root is /jail: "/x" is /jail/x.
            long h = Upstream.Call(ctx, SysNr.Open, Upstream.Str(ctx, "/x"), OpenMode.Read, 0);
            seen = ReadText(ctx, (uint)h);
            return Task.CompletedTask;
        }));
        Run(k, ctx =>
        {
            Upstream.Call(ctx, SysNr.MkDir, Upstream.Str(ctx, "/jail"));
            Sys.Close(ctx, FileWith(ctx, "/jail/x", "inside"));
            Sys.Close(ctx, FileWith(ctx, "/x", "outside"));
            empty = Upstream.Call(ctx, SysNr.Exec, Upstream.Str(ctx, "/bin/child"), Upstream.Str(ctx, ""), 0);
            missing = Upstream.Call(ctx, SysNr.Exec, Upstream.Str(ctx, "/bin/child"), Upstream.Str(ctx, "/nope"), 0);
            file = Upstream.Call(ctx, SysNr.Exec, Upstream.Str(ctx, "/bin/child"), Upstream.Str(ctx, "/x"), 0);
            ok = Upstream.Call(ctx, SysNr.Exec, Upstream.Str(ctx, "/bin/child"), Upstream.Str(ctx, "jail"), 0);
        });
        Assert.Equal(Errno.EINVAL, empty);
        Assert.Equal(Errno.ENOTFOUND, missing);
        Assert.Equal(Errno.ENOTFOUND, file);
        Assert.True(ok > 0);
        Assert.Equal("inside", seen);
    }

    [Fact]
    public void CloseAlwaysReturnsZero()
    {
        using var k = Boot();
        var r = new List<long>();
        Run(k, ctx =>
        {
            uint f = FileWith(ctx, "/f", "x");
            foreach (ulong h in new ulong[] { f, f, 0xFFFF_FFFE, 777 }) r.Add(Upstream.Call(ctx, SysNr.Close, h));
        });
        Assert.All(r, x => Assert.Equal(0, x));
    }

    [Fact]
    public void CloseOfHandleZeroClosesTheConsole()
    {
        var (close, write) = InProcess(ctx =>
        {
            return (Upstream.Call(ctx, SysNr.Close, 0),
                Upstream.Call(ctx, SysNr.Write, 0, Sys.Bytes(ctx, "x"u8), 1));
        });
        Assert.Equal(0, close);
        Assert.Equal(Errno.ENOTFOUND, write);
    }

    [Fact]
    public void MmapOfHandleZeroIsAnonymousZeroedMemory()
    {
        using var k = Boot();
        long va = 0;
        byte first = 0xFF;
        long written = 0;
        Run(k, ctx =>
        {
            va = Upstream.Call(ctx, SysNr.Mmap, 0, 0, 0, 2 * Page.Size, MapFlags.Read | MapFlags.Write | MapFlags.Private | MapFlags.Anonymous);
            first = ctx.Memory((ulong)va + Page.Size, 1)[0];
            uint f = FileWith(ctx, "/f", "abc");
            written = Upstream.Call(ctx, SysNr.Read, f, (ulong)va, 3);   // the kernel can write into it
        });
        Assert.True(va > 0);
        Assert.Equal(0, first);
        Assert.Equal(3, written);
    }

    [Fact]
    public void MmapFixedMapsAtTheHintAndRefusesAnOverlap()
    {
        using var k = Boot();
        const ulong at = 0x0000_5555_0000_0000;
        long first = 0, overlap = 0, unaligned = 0;
        Run(k, ctx =>
        {
            first = Upstream.Call(ctx, SysNr.Mmap, 0, at, 0, Page.Size, MapFlags.Read | MapFlags.Write | MapFlags.Anonymous | MapFlags.Fixed);
            overlap = Upstream.Call(ctx, SysNr.Mmap, 0, at, 0, Page.Size, MapFlags.Read | MapFlags.Anonymous | MapFlags.Fixed);
            unaligned = Upstream.Call(ctx, SysNr.Mmap, 0, at + 8, 0, Page.Size, MapFlags.Read | MapFlags.Anonymous | MapFlags.Fixed);
        });
        Assert.Equal((long)at, first);
        Assert.Equal(Errno.EINVAL, overlap);
        Assert.Equal(Errno.EINVAL, unaligned);
    }

    [Fact]
    public void MmapUnknownFlagIsEinval()
    {
        Assert.Equal(Errno.EINVAL, InProcess(ctx => Upstream.Call(ctx, SysNr.Mmap, 0, 0, 0, Page.Size, MapFlags.Read | 64)));
    }

    [Fact]
    public void MmapOfAnObjectItCannotMapIsEinval()
    {
        Assert.Equal(Errno.EINVAL, InProcess(ctx => Upstream.Call(ctx, SysNr.Mmap, FileWith(ctx, "/f", "x"), 0, 0, Page.Size, MapFlags.Read)));
    }

    [Fact]
    public void MunmapIgnoresTheLengthAndIsEinvalWhereNothingStarts()
    {
        var (inside, unmap, again) = InProcess(ctx =>
        {
            long va = Upstream.Call(ctx, SysNr.Mmap, 0, 0, 0, 3 * Page.Size, MapFlags.Read | MapFlags.Anonymous);
            return (Upstream.Call(ctx, SysNr.Munmap, (ulong)va + Page.Size, Page.Size),
                Upstream.Call(ctx, SysNr.Munmap, (ulong)va, 1),   // any length
                Upstream.Call(ctx, SysNr.Munmap, (ulong)va, 3 * Page.Size));
        });
        Assert.Equal(Errno.EINVAL, inside);
        Assert.Equal(0, unmap);
        Assert.Equal(Errno.EINVAL, again);
    }

    // ---- class 1 ------------------------------------------------------------------------------

    [Fact]
    public void OpenWithModeZeroIsAcceptedAndCanNeitherReadNorWrite()
    {
        var (h, read, write) = InProcess(ctx =>
        {
            Sys.Close(ctx, FileWith(ctx, "/f", "data"));
            long opened = Upstream.Call(ctx, SysNr.Open, Upstream.Str(ctx, "/f"), 0, 0);
            return (opened,
                Upstream.Call(ctx, SysNr.Read, (ulong)opened, Sys.Alloc(ctx, 4), 4),
                Upstream.Call(ctx, SysNr.Write, (ulong)opened, Sys.Alloc(ctx, 4), 4));
        });
        Assert.True(h > 0);
        Assert.Equal(Errno.EWRONLY, read);
        Assert.Equal(Errno.ERDONLY, write);
    }

    [Fact]
    public void OpenUnknownModeOrFlagBitIsEinval()
    {
        var (mode, flags) = InProcess(ctx =>
        {
            return (Upstream.Call(ctx, SysNr.Open, Upstream.Str(ctx, "/f"), 16, OpenMode.FlagCreate),
                Upstream.Call(ctx, SysNr.Open, Upstream.Str(ctx, "/f"), OpenMode.Read, 2));
        });
        Assert.Equal(Errno.EINVAL, mode);
        Assert.Equal(Errno.EINVAL, flags);
    }

    [Fact]
    public void OpenOfADirectoryIsEnotfoundAndCreatingOverItIsEexist()
    {
        var (open, create) = InProcess(ctx =>
        {
            Upstream.Call(ctx, SysNr.MkDir, Upstream.Str(ctx, "/d"));
            return (Upstream.Call(ctx, SysNr.Open, Upstream.Str(ctx, "/d"), OpenMode.Read, 0),
                Upstream.Call(ctx, SysNr.Open, Upstream.Str(ctx, "/d"), OpenMode.Read, OpenMode.FlagCreate));
        });
        Assert.Equal(Errno.ENOTFOUND, open);
        Assert.Equal(Errno.EEXIST, create);
    }

    [Fact]
    public void OpenTruncWithoutWriteIsErdonlyAndAppendStartsAtTheEnd()
    {
        using var k = Boot();
        long trunc = 0, pos = 0;
        Run(k, ctx =>
        {
            Sys.Close(ctx, FileWith(ctx, "/f", "12345"));
            trunc = Upstream.Call(ctx, SysNr.Open, Upstream.Str(ctx, "/f"), OpenMode.Read | OpenMode.Trunc, 0);
            long h = Upstream.Call(ctx, SysNr.Open, Upstream.Str(ctx, "/f"), OpenMode.Read | OpenMode.Append, 0);
            pos = Upstream.Call(ctx, SysNr.Seek, (ulong)h, 0, SeekWhence.Current);
        });
        Assert.Equal(Errno.ERDONLY, trunc);
        Assert.Equal(5, pos);
    }

    [Fact]
    public void PathsWalkFromTheRootWithOrWithoutALeadingSlash()
    {
        using var k = Boot();
        string viaRelative = "";
        long empty = 0;
        Run(k, ctx =>
        {
            Upstream.Call(ctx, SysNr.MkDir, Upstream.Str(ctx, "d"));
            Sys.Close(ctx, FileWith(ctx, "/d//f", "same"));
            long h = Upstream.Call(ctx, SysNr.Open, Upstream.Str(ctx, "d/f"), OpenMode.Read, 0);
            viaRelative = ReadText(ctx, (uint)h);
            empty = Upstream.Call(ctx, SysNr.Open, Upstream.Str(ctx, "/"), OpenMode.Read, OpenMode.FlagCreate);
        });
        Assert.Equal("same", viaRelative);
        Assert.Equal(Errno.EINVAL, empty);
    }

    [Fact]
    public void ReadCopiesOnlyWhatTheFileGives()
    {
        long rax = InProcess(ctx =>
        {
            uint f = FileWith(ctx, "/f", "abc");
            ulong end = ctx.DataBase + (ulong)ctx.DataSize;
            return Upstream.Call(ctx, SysNr.Read, f, end - 3, 4096);   // only 3 bytes are mapped, and only 3 are read
        });
        Assert.Equal(3, rax);
    }

    [Fact]
    public void SeekClampsToTheSizeAndEndSubtracts()
    {
        var (set, cur, end, endPast) = InProcess(ctx =>
        {
            uint f = FileWith(ctx, "/f", "0123456789");
            return (Upstream.Call(ctx, SysNr.Seek, f, 100, SeekWhence.Set),
                Upstream.Call(ctx, SysNr.Seek, f, unchecked((ulong)-3L), SeekWhence.Current),
                Upstream.Call(ctx, SysNr.Seek, f, 4, SeekWhence.End),
                Upstream.Call(ctx, SysNr.Seek, f, 40, SeekWhence.End));
        });
        Assert.Equal([10L, 7, 6, 0], new[] { set, cur, end, endPast });
    }

    [Fact]
    public void SeekBadWhenceIsEinvalEvenOnADirectory()
    {
        var (bad, dirSeek) = InProcess(ctx =>
        {
            long d = Upstream.Call(ctx, SysNr.OpenDir, Upstream.Str(ctx, "/"));
            return (Upstream.Call(ctx, SysNr.Seek, (ulong)d, 0, 3),
                Upstream.Call(ctx, SysNr.Seek, (ulong)d, 0, SeekWhence.Set));
        });
        Assert.Equal(Errno.EINVAL, bad);
        Assert.Equal(Errno.ENOTSUPP, dirSeek);
    }

    [Fact]
    public void TruncateOnlyShrinksAndNeedsWrite()
    {
        using var k = Boot();
        long shrink = 0, grow = 0, ro = 0;
        Run(k, ctx =>
        {
            uint f = FileWith(ctx, "/f", "0123456789");
            shrink = Upstream.Call(ctx, SysNr.Truncate, f, 4);
            grow = Upstream.Call(ctx, SysNr.Truncate, f, 5);
            long r = Upstream.Call(ctx, SysNr.Open, Upstream.Str(ctx, "/f"), OpenMode.Read, 0);
            ro = Upstream.Call(ctx, SysNr.Truncate, (ulong)r, 0);
        });
        Assert.Equal(4, shrink);
        Assert.Equal(Errno.EINVAL, grow);
        Assert.Equal(Errno.ERDONLY, ro);
    }

    [Fact]
    public void OpendirOfAFileIsEnotfoundAndOfAnEmptyPathEinval()
    {
        var (file, empty) = InProcess(ctx =>
        {
            Sys.Close(ctx, FileWith(ctx, "/f", "x"));
            return (Upstream.Call(ctx, SysNr.OpenDir, Upstream.Str(ctx, "/f")),
                Upstream.Call(ctx, SysNr.OpenDir, Upstream.Str(ctx, "")));
        });
        Assert.Equal(Errno.ENOTFOUND, file);
        Assert.Equal(Errno.EINVAL, empty);
    }

    [Fact]
    public void ReaddirHasNoEntryCapAndStopsAtTheEnd()
    {
        using var k = Boot();
        long n = 0, onFile = -1, overflow = 0;
        var names = new List<string>();
        Run(k, ctx =>
        {
            Upstream.Call(ctx, SysNr.MkDir, Upstream.Str(ctx, "/d"));
            for (int i = 0; i < 3; i++) Sys.Close(ctx, FileWith(ctx, $"/d/f{i}", "x"));
            long d = Upstream.Call(ctx, SysNr.OpenDir, Upstream.Str(ctx, "/d"));
            ulong buf = Sys.Alloc(ctx, 3 * DirEnt.ByteSize);
            n = Upstream.Call(ctx, SysNr.ReadDir, (ulong)d, buf, 100_000);   // room for 3 only; the directory has 3
            for (int i = 0; i < n; i++)
            {
                var e = ctx.Memory(buf + (ulong)(i * DirEnt.ByteSize), DirEnt.ByteSize);
                names.Add(Encoding.UTF8.GetString(e[..e.IndexOf((byte)0)]));
            }
            onFile = Upstream.Call(ctx, SysNr.ReadDir, FileWith(ctx, "/g", "x"), buf, 0);   // a file handle, count 0: 0
            overflow = Upstream.Call(ctx, SysNr.ReadDir, (ulong)d, buf, ulong.MaxValue / 2);
        });
        Assert.Equal(3, n);
        Assert.Equal(["f0", "f1", "f2"], names);
        Assert.Equal(0, onFile);
        Assert.Equal(Errno.EINVAL, overflow);
    }

    [Fact]
    public void MkdirOfAnExistingNameIsEexistAndOfAMissingParentEnotfound()
    {
        var (again, parent) = InProcess(ctx =>
        {
            Upstream.Call(ctx, SysNr.MkDir, Upstream.Str(ctx, "/d"));
            return (Upstream.Call(ctx, SysNr.MkDir, Upstream.Str(ctx, "/d")),
                Upstream.Call(ctx, SysNr.MkDir, Upstream.Str(ctx, "/x/y")));
        });
        Assert.Equal(Errno.EEXIST, again);
        Assert.Equal(Errno.ENOTFOUND, parent);
    }

    // ---- class 3 ------------------------------------------------------------------------------

    [Fact]
    public void CapabilitiesIndexIsTruncatedToU32AndPastTheEndIsEnotfound()
    {
        using var k = Boot(vms: 1, platform: PlatformType.Tdp);
        long count = 0, features = 0, past = 0;
        Run(k, ctx =>
        {
            count = Upstream.Call(ctx, SysNr.Capabilities, 1UL << 32);        // index 0
            features = Upstream.Call(ctx, SysNr.Capabilities, 7UL << 40 | 2);  // index 2
            past = Upstream.Call(ctx, SysNr.Capabilities, 3);
        });
        Assert.Equal(2, count);
        Assert.Equal((long)PlatformType.Tdp, features & (long)Cap.PlatformMask);
        Assert.Equal(Errno.ENOTFOUND, past);
    }
}

public class UpstreamLayoutConformanceTests
{
    [Fact]
    public void DirEntIs272BytesWithTypeAt256AndSizeAt264()
    {
        using var k = Boot();
        byte[] entry = [];
        Run(k, ctx =>
        {
            Upstream.Call(ctx, SysNr.MkDir, Upstream.Str(ctx, "/d"));
            Sys.Close(ctx, FileWith(ctx, "/d/file", "12345"));
            Upstream.Call(ctx, SysNr.MkDir, Upstream.Str(ctx, "/d/sub"));
            long d = Upstream.Call(ctx, SysNr.OpenDir, Upstream.Str(ctx, "/d"));
            ulong buf = Sys.Alloc(ctx, 2 * 272);
            Upstream.Call(ctx, SysNr.ReadDir, (ulong)d, buf, 2);
            entry = ctx.Memory(buf, 2 * 272).ToArray();
        });
        Assert.Equal("file", Encoding.UTF8.GetString(entry, 0, 4));
        Assert.Equal(0, entry[4]);
        Assert.Equal(0, entry[256]);                                  // FileType::File
        Assert.Equal(5UL, BitConverter.ToUInt64(entry, 264));
        Assert.Equal("sub", Encoding.UTF8.GetString(entry, 272, 3));
        Assert.Equal(1, entry[272 + 256]);                            // FileType::Directory
        Assert.Equal(0UL, BitConverter.ToUInt64(entry, 272 + 264));
    }
}

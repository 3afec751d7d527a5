using System.Text;
using Copra.Abi;
using Copra.Cold;
using Copra.User;
using Xunit;
using static Copra.Tests.Kernel.KernelHarness;

namespace Copra.Tests.Kernel;

/// <summary>The class-1 file calls, user-pointer checking at the gate, and unknown numbers.</summary>
public class FileAndPointerRuleTests
{
    [Fact]
    public void OPEN_CREATE_WRITE_SEEK_READ_and_TRUNCATE_behave_as_a_file()
    {
        using var k = Boot();
        var r = new Dictionary<string, long>();
        var text = new Dictionary<string, string>();
        Run(k, ctx =>
        {
            r["missing"] = Call(ctx, SysNr.Open, Path(ctx, "/f"), OpenMode.Read, 0);
            long h = Call(ctx, SysNr.Open, Path(ctx, "/f"), OpenMode.Read | OpenMode.Write, OpenMode.FlagCreate);
            r["open"] = h;
            r["write"] = Sys.Write(ctx, (uint)h, "hello world"u8);
            r["seek set"] = Call(ctx, SysNr.Seek, (ulong)h, 0, SeekWhence.Set);
            text["first"] = ReadText(ctx, (uint)h, 5);
            r["seek cur"] = Call(ctx, SysNr.Seek, (ulong)h, 1, SeekWhence.Current);
            text["rest"] = ReadText(ctx, (uint)h);
            r["seek end"] = Call(ctx, SysNr.Seek, (ulong)h, 5, SeekWhence.End);   // upstream: END subtracts the offset from the size
            text["tail"] = ReadText(ctx, (uint)h);
            r["eof read"] = Call(ctx, SysNr.Read, (ulong)h, Sys.Alloc(ctx, 8), 8);
            r["seek set past the end"] = Call(ctx, SysNr.Seek, (ulong)h, unchecked((ulong)-1L), SeekWhence.Set);
            r["seek cur below 0"] = Call(ctx, SysNr.Seek, (ulong)h, unchecked((ulong)-100L), SeekWhence.Current);
            r["seek end past the start"] = Call(ctx, SysNr.Seek, (ulong)h, 100, SeekWhence.End);
            r["seek whence"] = Call(ctx, SysNr.Seek, (ulong)h, 0, 3);
            r["truncate"] = Call(ctx, SysNr.Truncate, (ulong)h, 5);
            r["truncate to grow"] = Call(ctx, SysNr.Truncate, (ulong)h, 50);
            r["size after truncate"] = Call(ctx, SysNr.Seek, (ulong)h, 0, SeekWhence.End);
            // SEEK past the end stops at the end (upstream clamps), so a write there appends.
            Call(ctx, SysNr.Seek, (ulong)h, 8, SeekWhence.Set);
            Sys.Write(ctx, (uint)h, "!"u8);
            Call(ctx, SysNr.Seek, (ulong)h, 0, SeekWhence.Set);
            text["holed"] = ReadText(ctx, (uint)h);
            // A second OPEN with TRUNC empties the same file; the first handle keeps its own position.
            uint h2 = Sys.Open(ctx, "/f", OpenMode.Write | OpenMode.Trunc);
            r["size after trunc open"] = Call(ctx, SysNr.Seek, h2, 0, SeekWhence.End);
            r["append"] = Call(ctx, SysNr.Write, Sys.Open(ctx, "/f", OpenMode.Write | OpenMode.Append), Sys.Bytes(ctx, "xy"u8), 2);
            Call(ctx, SysNr.Seek, (ulong)h, 0, SeekWhence.Set);
            text["appended"] = ReadText(ctx, (uint)h);
            r["console seek"] = Call(ctx, SysNr.Seek, 0, 0, SeekWhence.Set);
        });
        Assert.Equal(Errno.ENOTFOUND, r["missing"]);
        Assert.True(r["open"] > 0);
        Assert.Equal(11, r["write"]);
        Assert.Equal(0, r["seek set"]);
        Assert.Equal("hello", text["first"]);
        Assert.Equal(6, r["seek cur"]);
        Assert.Equal("world", text["rest"]);
        Assert.Equal(6, r["seek end"]);
        Assert.Equal("world", text["tail"]);
        Assert.Equal(0, r["eof read"]);
        Assert.Equal(11, r["seek set past the end"]);
        Assert.Equal(0, r["seek cur below 0"]);
        Assert.Equal(0, r["seek end past the start"]);
        Assert.Equal(Errno.EINVAL, r["seek whence"]);
        Assert.Equal(5, r["truncate"]);
        Assert.Equal(5, r["size after truncate"]);
        Assert.Equal(Errno.EINVAL, r["truncate to grow"]);
        Assert.Equal("hello!", text["holed"]);
        Assert.Equal(0, r["size after trunc open"]);
        Assert.Equal(2, r["append"]);
        Assert.Equal("xy", text["appended"]);
        Assert.Equal(Errno.ENOTSUPP, r["console seek"]);
    }

    [Fact]
    public void OPEN_refuses_bad_modes_flags_and_paths()
    {
        using var k = Boot();
        var r = new Dictionary<string, long>();
        Run(k, ctx =>
        {
            long Open(string path, ulong mode, ulong flags = OpenMode.FlagCreate) => Call(ctx, SysNr.Open, Path(ctx, path), mode, flags);
            r["mode 0"] = Open("/a", 0);
            r["mode bit 4"] = Open("/a", 16);
            r["flag bit 1"] = Open("/a", OpenMode.Read, 2);
            r["relative"] = Open("a", OpenMode.Read);
            r["dotdot"] = Open("/x/../a", OpenMode.Read);
            r["no parent"] = Open("/nodir/a", OpenMode.Read);
            r["empty"] = Open("", OpenMode.Read);
            r["long component"] = Open("/" + new string('n', 300), OpenMode.Read);
            r["bad utf8"] = Call(ctx, SysNr.Open, Sys.Bytes(ctx, [(byte)'/', 0xFF, 0xFE, 0]), OpenMode.Read, OpenMode.FlagCreate);
            Sys.CallChecked(ctx, SysNr.MkDir, Path(ctx, "/d"));
            r["directory"] = Open("/d", OpenMode.Read, 0);
            r["directory with CREATE"] = Open("/d", OpenMode.Read);
            r["program for write"] = Open("/t", OpenMode.Write, 0);
            r["program for read"] = Open("/t", OpenMode.Read, 0);
        });
        foreach (var key in new[] { "mode bit 4", "flag bit 1", "empty", "bad utf8" })
            Assert.True(Errno.EINVAL == r[key], $"{key}: {Errno.Name(r[key])}");
        // Upstream's rules: mode 0 is accepted, paths walk from the root with or without a leading '/', '..' is a name.
        foreach (var key in new[] { "mode 0", "relative", "long component" })
            Assert.True(r[key] > 0, $"{key}: {Errno.Name(r[key])}");
        foreach (var key in new[] { "no parent", "dotdot", "directory" })
            Assert.True(Errno.ENOTFOUND == r[key], $"{key}: {Errno.Name(r[key])}");
        Assert.Equal(Errno.EEXIST, r["directory with CREATE"]);
        Assert.True(r["program for write"] > 0, "a program image is a file like any other, as upstream's /init is");
        Assert.True(r["program for read"] > 0);
    }

    [Fact]
    public void A_read_only_handle_gets_ERDONLY_and_a_write_only_handle_gets_EWRONLY()
    {
        using var k = Boot();
        long write = 0, truncate = 0, read = 0;
        string stillThere = "";
        Run(k, ctx =>
        {
            Sys.Close(ctx, FileWith(ctx, "/f", "keep"));
            uint ro = Sys.Open(ctx, "/f", OpenMode.Read);
            write = Call(ctx, SysNr.Write, ro, Sys.Bytes(ctx, "x"u8), 1);
            truncate = Call(ctx, SysNr.Truncate, ro, 0);
            uint wo = Sys.Open(ctx, "/f", OpenMode.Write);
            read = Call(ctx, SysNr.Read, wo, Sys.Alloc(ctx, 4), 4);
            stillThere = ReadText(ctx, ro);
        });
        Assert.Equal(Errno.ERDONLY, write);
        Assert.Equal(Errno.ERDONLY, truncate);
        Assert.Equal(Errno.EWRONLY, read);
        Assert.Equal("keep", stillThere);
    }

    [Fact]
    public void MKDIR_READDIR_UNLINK_and_RMDIR_manage_the_tree()
    {
        using var k = Boot();
        var r = new Dictionary<string, long>();
        var names = new List<(string Name, byte Type, ulong Size)>();
        long emptyRead = -1;
        Run(k, ctx =>
        {
            long P(ulong nr, string path) => Call(ctx, nr, Path(ctx, path));
            r["mkdir"] = P(SysNr.MkDir, "/d");
            r["mkdir again"] = P(SysNr.MkDir, "/d");
            r["mkdir no parent"] = P(SysNr.MkDir, "/x/y");
            r["mkdir root"] = P(SysNr.MkDir, "/");
            r["mkdir sub"] = P(SysNr.MkDir, "/d/sub");
            Sys.Close(ctx, FileWith(ctx, "/d/file", "12345"));
            long dh = P(SysNr.OpenDir, "/d");
            r["opendir"] = dh;
            r["opendir file"] = P(SysNr.OpenDir, "/d/file");
            r["opendir missing"] = P(SysNr.OpenDir, "/nope");
            ulong buf = Sys.Alloc(ctx, 4 * DirEnt.ByteSize);
            r["readdir"] = Call(ctx, SysNr.ReadDir, (ulong)dh, buf, 4);
            for (int i = 0; i < r["readdir"]; i++)
            {
                var e = ctx.Memory(buf + (ulong)(i * DirEnt.ByteSize), DirEnt.ByteSize);
                names.Add((Encoding.UTF8.GetString(e[..e.IndexOf((byte)0)]), e[256], BitConverter.ToUInt64(e.Slice(264, 8))));
            }
            emptyRead = Call(ctx, SysNr.ReadDir, (ulong)dh, buf, 4);
            r["readdir on a file"] = Call(ctx, SysNr.ReadDir, FileWith(ctx, "/g", ""), buf, 1);
            // No cap on the count: READDIR stops at the end of the directory and never touches the rest of the array.
            r["readdir 5000 into room for 4"] = Call(ctx, SysNr.ReadDir, (ulong)P(SysNr.OpenDir, "/d"), buf, 5000);
            r["rmdir non-empty"] = P(SysNr.RmDir, "/d");
            r["unlink a dir"] = P(SysNr.Unlink, "/d/sub");
            r["rmdir a file"] = P(SysNr.RmDir, "/d/file");
            r["unlink"] = P(SysNr.Unlink, "/d/file");
            r["unlink again"] = P(SysNr.Unlink, "/d/file");
            r["rmdir sub"] = P(SysNr.RmDir, "/d/sub");
            r["rmdir"] = P(SysNr.RmDir, "/d");
            r["rmdir again"] = P(SysNr.RmDir, "/d");
        });
        Assert.Equal(0, r["mkdir"]);
        Assert.Equal(Errno.EEXIST, r["mkdir again"]);
        Assert.Equal(Errno.ENOTFOUND, r["mkdir no parent"]);
        Assert.Equal(Errno.EINVAL, r["mkdir root"]);   // "/" names no entry
        Assert.Equal(0, r["mkdir sub"]);
        Assert.True(r["opendir"] > 0);
        Assert.Equal(Errno.ENOTFOUND, r["opendir file"]);
        Assert.Equal(Errno.ENOTFOUND, r["opendir missing"]);
        Assert.Equal(2, r["readdir"]);
        Assert.Equal([("file", (byte)0, 5UL), ("sub", (byte)1, 0UL)], names);
        Assert.Equal(0, emptyRead);
        Assert.Equal(Errno.ENOTSUPP, r["readdir on a file"]);
        Assert.Equal(2, r["readdir 5000 into room for 4"]);
        // upstream's FsError::NotEmpty, IsDir and IsFile have no ABI code: UNKNOWN.
        Assert.Equal(Errno.UNKNOWN, r["rmdir non-empty"]);
        Assert.Equal(Errno.UNKNOWN, r["unlink a dir"]);
        Assert.Equal(Errno.UNKNOWN, r["rmdir a file"]);
        Assert.Equal(0, r["unlink"]);
        Assert.Equal(Errno.ENOTFOUND, r["unlink again"]);
        Assert.Equal(0, r["rmdir sub"]);
        Assert.Equal(0, r["rmdir"]);
        Assert.Equal(Errno.ENOTFOUND, r["rmdir again"]);
    }

    [Fact]
    public void Pointers_outside_user_space_get_EINVAL_unmapped_ones_EFAULT_and_nothing_is_partially_written()
    {
        using var k = Boot();
        var r = new Dictionary<string, long>();
        byte[] tailAfter = [];
        string readAfter = "";
        bool exists = true;
        Run(k, ctx =>
        {
            uint f = FileWith(ctx, "/f", new string('z', 100));
            ulong end = ctx.DataBase + (ulong)ctx.DataSize;
            ctx.Memory(end - 10, 10).Fill(0xAA);
            r["unmapped"] = Call(ctx, SysNr.Read, f, 0x1234, 8);
            r["null"] = Call(ctx, SysNr.Read, f, 0, 8);
            r["straddles the data end"] = Call(ctx, SysNr.Read, f, end - 10, 20);
            tailAfter = ctx.Memory(end - 10, 10).ToArray();
            readAfter = ReadText(ctx, f, 3);   // the failed READ did not move the position
            r["wraps"] = Call(ctx, SysNr.Read, f, ulong.MaxValue - 3, 8);
            r["kernel half"] = Call(ctx, SysNr.Read, f, 0xFFFF_8000_0000_0000, 8);
            r["user top"] = Call(ctx, SysNr.Write, 0, AddressSpace.UserTop - 4, 8);
            r["huge length"] = Call(ctx, SysNr.Write, 0, ctx.DataBase, ulong.MaxValue);
            r["write from hole"] = Call(ctx, SysNr.Write, f, AddressSpace.MapBase, 4);
            r["path unmapped"] = Call(ctx, SysNr.Open, 0x2000, OpenMode.Read, OpenMode.FlagCreate);
            ctx.Memory(end - 4, 4).Fill((byte)'a');
            ctx.Memory(end - 5, 1)[0] = (byte)'/';
            r["path runs off"] = Call(ctx, SysNr.MkDir, end - 5);
            r["path kernel half"] = Call(ctx, SysNr.MkDir, 0xFFFF_FFFF_FFFF_F000);
            // BATCH checks its output array before running anything: the MKDIR inside does not happen.
            ulong inVa = Sys.Alloc(ctx, SysCallIn.Size);
            ref var e = ref Sys.Ref<SysCallIn>(ctx, inVa);
            e.Nr = SysNr.MkDir; e.A0 = Path(ctx, "/made");
            r["batch bad out"] = Call(ctx, SysNr.Batch, inVa, end - 8, 1);
            exists = Call(ctx, SysNr.OpenDir, Path(ctx, "/made")) > 0;
        });
        foreach (var key in new[] { "unmapped", "null", "straddles the data end", "write from hole", "path unmapped", "path runs off", "batch bad out" })
            Assert.True(Errno.EFAULT == r[key], $"{key}: {Errno.Name(r[key])}");
        foreach (var key in new[] { "wraps", "kernel half", "user top", "huge length", "path kernel half" })
            Assert.True(Errno.EINVAL == r[key], $"{key}: {Errno.Name(r[key])}");
        Assert.All(tailAfter, b => Assert.Equal(0xAA, b));
        Assert.Equal("zzz", readAfter);
        Assert.False(exists);
    }

    [Theory]
    [InlineData(0x0000_0000_0000_0003UL)]   // MRESIZE: reserved (PR #945 has a user-side wrapper only)
    [InlineData(0x0000_0000_0000_0005UL)]   // the old WAIT_FOR_EVENT
    [InlineData(0x0000_0002_0000_0001UL)]   // the old class-2 MMAP
    [InlineData(0x0000_0000_0000_0006UL)]
    [InlineData(0x0000_0000_0000_000BUL)]
    [InlineData(0x0000_0001_0000_000AUL)]
    [InlineData(0x0000_0002_0000_0004UL)]
    [InlineData(0x0000_0003_0000_0007UL)]
    [InlineData(0x0000_0004_0000_0004UL)]
    [InlineData(0x0000_0005_0000_0000UL)]
    [InlineData(0x8000_0000_0000_0000UL)]
    [InlineData(ulong.MaxValue)]
    public void An_unknown_number_gets_EINVAL(ulong nr)
    {
        using var k = Boot();
        long result = 0;
        Run(k, ctx => { result = Call(ctx, nr, 1, 2, 3, 4, 5); });
        Assert.Equal(Errno.EINVAL, result);
    }
}

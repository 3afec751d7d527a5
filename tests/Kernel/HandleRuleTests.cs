using System.Text;
using Copra.Abi;
using Copra.Cold;
using Copra.Kernel.Machine;
using Copra.User;
using Xunit;
using static Copra.Tests.Kernel.KernelHarness;
using KernelT = Copra.Kernel.Core.Kernel;

namespace Copra.Tests.Kernel;

/// <summary>The handle rules of DESIGN.md's ABI section: per-process tables, lowest free slot, stale handles, exclusivity, EXEC moves.</summary>
public class HandleRuleTests
{
    [Fact]
    public void Handle_0_is_the_console()
    {
        using var k = Boot();
        long wrote = 0, read = -99;
        var p = Run(k, ctx =>
        {
            var text = Encoding.UTF8.GetBytes("hello console\n");
            wrote = Call(ctx, SysNr.Write, 0, Sys.Bytes(ctx, text), (ulong)text.Length);
            read = Call(ctx, SysNr.Read, 0, Sys.Alloc(ctx, 16), 16);
        });
        Assert.Equal(14, wrote);
        Assert.Equal(0, read);   // reads of the console are end of file
        Assert.Equal("hello console\n", k.ConsoleOf(p.Pid));
        // Handle value 0 names the console in a fresh process, before anything else is opened.
        var fresh = k.Spawn("/t", null, 0);
        var (h, obj) = Assert.Single(fresh.Handles.Snapshot());
        Assert.Equal(0u, h);
        Assert.IsType<ConsoleObject>(obj);
    }

    [Fact]
    public void New_handles_take_the_lowest_free_slot()
    {
        using var k = Boot();
        var hs = new List<uint>();
        uint reopened = 0;
        Run(k, ctx =>
        {
            for (int i = 0; i < 4; i++) hs.Add(Sys.Open(ctx, $"/f{i}", OpenMode.Read | OpenMode.Write, OpenMode.FlagCreate));
            Sys.Close(ctx, hs[1]);
            Sys.Close(ctx, hs[2]);
            reopened = Sys.Open(ctx, "/f9", OpenMode.Read, OpenMode.FlagCreate);
        });
        Assert.Equal([1, 2, 3, 4], hs.Select(h => HandleTable.IndexOf(h)));
        Assert.Equal(2, HandleTable.IndexOf(reopened));   // slot 2 and 3 were free: the lower one
        Assert.NotEqual(hs[1], reopened);                 // the reused slot carries a new generation
    }

    [Fact]
    public void A_stale_handle_gets_ENOTFOUND_even_after_its_slot_is_reused()
    {
        using var k = Boot();
        long closedOnly = 0, afterReuse = 0, newOne = 0;
        Run(k, ctx =>
        {
            uint old = FileWith(ctx, "/a", "AAAA");
            Sys.Close(ctx, old);
            closedOnly = Call(ctx, SysNr.Read, old, Sys.Alloc(ctx, 8), 8);
            uint fresh = FileWith(ctx, "/b", "BBBB");
            Assert.Equal(HandleTable.IndexOf(old), HandleTable.IndexOf(fresh));
            afterReuse = Call(ctx, SysNr.Read, old, Sys.Alloc(ctx, 8), 8);
            newOne = Call(ctx, SysNr.Read, fresh, Sys.Alloc(ctx, 8), 8);
        });
        Assert.Equal(Errno.ENOTFOUND, closedOnly);
        Assert.Equal(Errno.ENOTFOUND, afterReuse);
        Assert.Equal(4, newOne);
    }

    [Fact]
    public void CLOSE_always_returns_0_even_for_garbage()
    {
        using var k = Boot();
        var results = new List<long>();
        long printed = 0;
        var p = Run(k, ctx =>
        {
            uint f = FileWith(ctx, "/a", "x");
            foreach (ulong h in new ulong[] { f, f, 12345, 0xFFFF_FFFF, ulong.MaxValue, (1UL << 40) | 3, HandleTable.Encode(1, 7) })
                results.Add(Call(ctx, SysNr.Close, h));
            var b = Encoding.UTF8.GetBytes("still here");
            printed = Call(ctx, SysNr.Write, 0, Sys.Bytes(ctx, b), (ulong)b.Length);
        });
        Assert.All(results, r => Assert.Equal(0, r));
        Assert.Equal(10, printed);
        Assert.Equal("still here", k.ConsoleOf(p.Pid));
    }

    [Fact]
    public void CLOSE_of_handle_0_closes_the_console_as_upstream_closes_its_log_handle()
    {
        using var k = Boot();
        long close = -1, after = 0;
        var p = Run(k, ctx =>
        {
            Sys.Print(ctx, "before");
            close = Call(ctx, SysNr.Close, 1UL << 32);   // truncated to u32: handle 0
            after = Call(ctx, SysNr.Write, 0, Sys.Bytes(ctx, "after"u8), 5);
        });
        Assert.Equal(0, close);
        Assert.Equal(Errno.ENOTFOUND, after);
        Assert.Equal("before", k.ConsoleOf(p.Pid));
    }

    [Fact]
    public void Second_VM_OPEN_gets_EBUSY_until_the_first_is_closed()
    {
        using var k = Boot(vms: 2);
        long first = 0, second = 0, other = 0, afterClose = 0, none0 = 0, none3 = 0;
        Run(k, ctx =>
        {
            first = Call(ctx, SysNr.VmOpen, 1);
            second = Call(ctx, SysNr.VmOpen, 1);
            other = Call(ctx, SysNr.VmOpen, 2);          // a different VM is not affected
            Sys.Close(ctx, (uint)first);
            afterClose = Call(ctx, SysNr.VmOpen, 1);
            none0 = Call(ctx, SysNr.VmOpen, 0);          // index 0 is the kernel's own level
            none3 = Call(ctx, SysNr.VmOpen, 3);
        });
        Assert.True(first > 0);
        Assert.Equal(Errno.EBUSY, second);
        Assert.True(other > 0);
        Assert.True(afterClose > 0);
        Assert.Equal(Errno.ENOTFOUND, none0);
        Assert.Equal(Errno.ENOTFOUND, none3);
    }

    [Fact]
    public void VM_OPEN_gets_EBUSY_in_another_process_until_the_holder_process_exits()
    {
        using var k = Boot();
        long held = 0, busy = 0, free = 0;
        // The holder opens the VM, then blocks forever on an event object of it (nothing will fire).
        var holder = Start(k, async ctx =>
        {
            held = Call(ctx, SysNr.VmOpen, 1);
            uint ev = Sys.IoioEvent(ctx, (uint)held, 0x500, 1);
            await Sys.WaitForEvent(ctx, ev);
        }, "/holder");
        Drive(k);
        Run(k, ctx => { busy = Call(ctx, SysNr.VmOpen, 1); }, "/second");
        Assert.True(held > 0);
        Assert.Equal(Errno.EBUSY, busy);

        k.ExitProcess(k.Cpus[0], holder, 0, "killed");
        Assert.Equal(0, k.Vms[0].HandleCount);
        Run(k, ctx => { free = Call(ctx, SysNr.VmOpen, 1); }, "/third");
        Assert.True(free > 0);
    }

    [Fact]
    public void VCPU_CREATE_is_exclusive_until_the_vCPU_handle_is_closed()
    {
        using var k = Boot();
        long first = 0, again = 0, otherVcpu = 0, outOfRange = 0, afterClose = 0, notVm = 0;
        Run(k, ctx =>
        {
            uint vm = Sys.VmOpen(ctx, 1);
            first = Call(ctx, SysNr.VcpuCreate, vm, 0);
            again = Call(ctx, SysNr.VcpuCreate, vm, 0);
            otherVcpu = Call(ctx, SysNr.VcpuCreate, vm, 1);
            outOfRange = Call(ctx, SysNr.VcpuCreate, vm, 2);
            Sys.Close(ctx, (uint)first);
            afterClose = Call(ctx, SysNr.VcpuCreate, vm, 0);
            notVm = Call(ctx, SysNr.VcpuCreate, 0, 0);   // the console is not a VM
        });
        Assert.True(first > 0);
        Assert.Equal(Errno.EBUSY, again);
        Assert.True(otherVcpu > 0);
        Assert.Equal(Errno.ENOTFOUND, outOfRange);
        Assert.True(afterClose > 0);
        Assert.Equal(Errno.ENOTSUPP, notVm);
        Assert.Equal(0, k.Vms[0].Vcpus[0].HandleCount);   // the process exited: its handles went with it
    }

    [Fact]
    public void EXEC_moves_the_listed_handles_to_1_to_n_in_the_child_in_list_order()
    {
        using var k = Boot();
        string c1 = "", c2 = "", c3 = "";
        long parentA = 0, parentC = 0;
        string parentB = "";
        long childPid = 0;
        k.Install("/child", () => new LambdaProgram(ctx =>
        {
            c1 = ReadText(ctx, 1); c2 = ReadText(ctx, 2); c3 = ReadText(ctx, 3);
            return Task.CompletedTask;
        }));
        var parent = Start(k, ctx =>
        {
            uint a = FileWith(ctx, "/a", "A"), b = FileWith(ctx, "/b", "B"), c = FileWith(ctx, "/c", "C");
            childPid = Sys.Exec(ctx, "/child", c, a);
            parentA = Call(ctx, SysNr.Read, a, Sys.Alloc(ctx, 8), 8);
            parentC = Call(ctx, SysNr.Read, c, Sys.Alloc(ctx, 8), 8);
            parentB = ReadText(ctx, b);
            // Stay alive so the parent's table can be inspected after the child ran.
            return Sys.WaitForEvent(ctx, Sys.IoioEvent(ctx, Sys.VmOpen(ctx, 1), 0x600, 1)).AsTask();
        }, "/parent");
        Drive(k);
        Assert.Equal("C", c1);
        Assert.Equal("A", c2);
        Assert.Equal("ENOTFOUND", c3);
        Assert.Equal(Errno.ENOTFOUND, parentA);
        Assert.Equal(Errno.ENOTFOUND, parentC);
        Assert.Equal("B", parentB);
        var child = Assert.Single(k.Processes, p => p.Pid == childPid);
        Assert.Same(parent, child.Parent);
        Assert.DoesNotContain(parent.Handles.Snapshot(), h => h.Obj.Describe() is "file a" or "file c");
    }

    [Fact]
    public void EXEC_with_a_bad_handle_moves_none()
    {
        using var k = Boot();
        long bad = 0, dup = 0, console = 0, noProgram = 0;
        string stillA = "", stillB = "";
        Run(k, ctx =>
        {
            uint a = FileWith(ctx, "/a", "A"), b = FileWith(ctx, "/b", "B");
            ulong Exec(string path, params uint[] hs)
            {
                ulong list = Sys.Bytes(ctx, System.Runtime.InteropServices.MemoryMarshal.AsBytes(hs.AsSpan()));
                return (ulong)Call(ctx, SysNr.Exec, Path(ctx, path), Path(ctx, "/"), ExecFlags.PassHandles, list, (ulong)hs.Length);
            }
            bad = (long)Exec("/t", a, HandleTable.Encode(5, 3), b);
            dup = (long)Exec("/t", a, a);
            console = (long)Exec("/t", a, 0);
            noProgram = (long)Exec("/nothing", a, b);
            stillA = ReadText(ctx, a);
            stillB = ReadText(ctx, b);
        });
        Assert.Equal(Errno.ENOTFOUND, bad);
        Assert.Equal(Errno.EINVAL, dup);
        Assert.Equal(Errno.EINVAL, console);
        Assert.Equal(Errno.ENOTFOUND, noProgram);
        Assert.Equal("A", stillA);
        Assert.Equal("B", stillB);
        Assert.Single(k.Processes);   // no child was started
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void THREAD_CREATE_starts_the_thread_on_the_callers_CPU(int cpu)
    {
        using var k = Boot();
        int ranOn = -1;
        long tid = -1, badEntry = 0;
        Run(k, ctx =>
        {
            ulong entry = ctx.DefineEntry((c, arg) => { ranOn = KernelT.CurrentCpu!.Index; return Task.CompletedTask; });
            tid = Call(ctx, SysNr.ThreadCreate, entry, 7);
            badEntry = Call(ctx, SysNr.ThreadCreate, entry + 1, 0);
        }, cpu: cpu);
        Assert.True(tid > 0);
        Assert.Equal(cpu, ranOn);
        Assert.Equal(cpu, k.Thread((int)tid).Cpu);
        Assert.Equal(Errno.EFAULT, badEntry);
    }

    [Fact]
    public void Every_handle_a_process_holds_resolves_and_an_object_counts_its_handles()
    {
        using var k = Boot();
        var p = Start(k, ctx =>
        {
            uint vm = Sys.VmOpen(ctx, 1);
            Sys.VcpuCreate(ctx, vm, 1);
            Sys.OpenPhysMem(ctx);
            uint f = FileWith(ctx, "/a", "A");
            Sys.Close(ctx, f);
            FileWith(ctx, "/b", "B");
            return Sys.WaitForEvent(ctx, Sys.IoioEvent(ctx, vm, 0x700, 2)).AsTask();
        }, "/t");
        Drive(k);
        var snap = p.Handles.Snapshot();
        Assert.Equal(6, snap.Count);   // console, vm, vcpu, physmem, file b, ioio event
        foreach (var (h, o) in snap)
        {
            Assert.True(p.Handles.TryGet(h, out var got));
            Assert.Same(o, got);
            Assert.Equal(1, o.HandleCount);
        }
        Assert.IsType<VmObject>(snap[1].Obj);
    }
}

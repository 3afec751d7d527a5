using System.Runtime.InteropServices;
using Copra.Abi;
using Copra.User;
using Xunit;
using static Copra.Tests.Kernel.KernelHarness;

namespace Copra.Tests.Kernel;

/// <summary>Device registration (MMIO_EVENT, IOIO_EVENT, IRQ_EVENT, EVENT_SIGNAL), GET_STATE/SET_STATE, and BATCH.</summary>
public class EventStateBatchRuleTests
{
    [Fact]
    public void MMIO_and_IOIO_ranges_register_once_and_free_up_when_closed()
    {
        using var k = Boot();
        var r = new Dictionary<string, long>();
        Run(k, ctx =>
        {
            uint vm = Sys.VmOpen(ctx, 1);
            long m = Call(ctx, SysNr.MmioEvent, vm, 0xFEB0_0000, 0x2000);
            r["mmio"] = m;
            r["mmio overlap"] = Call(ctx, SysNr.MmioEvent, vm, 0xFEB0_1000, 0x2000);
            r["mmio adjacent"] = Call(ctx, SysNr.MmioEvent, vm, 0xFEB0_2000, 0x1000);
            r["mmio empty"] = Call(ctx, SysNr.MmioEvent, vm, 0xFEC0_0000, 0);
            r["mmio wraps"] = Call(ctx, SysNr.MmioEvent, vm, ulong.MaxValue - 0xFFF, 0x2000);
            r["mmio over RAM"] = Call(ctx, SysNr.MmioEvent, vm, VmBase, 0x1000);   // allowed: a RAM range simply never fires
            long io = Call(ctx, SysNr.IoioEvent, vm, 0x3F8, 8);
            r["ioio"] = io;
            r["ioio overlap"] = Call(ctx, SysNr.IoioEvent, vm, 0x3FF, 1);
            r["ioio past 64K"] = Call(ctx, SysNr.IoioEvent, vm, 0xFFFF, 2);
            r["ioio empty"] = Call(ctx, SysNr.IoioEvent, vm, 0x80, 0);
            r["not a vm"] = Call(ctx, SysNr.IoioEvent, 0, 0x80, 1);
            r["map area"] = Call(ctx, SysNr.Mmap, (ulong)m, 0, 0, Page.Size, MapFlags.Read | MapFlags.Write);
            r["map area offset"] = Call(ctx, SysNr.Mmap, (ulong)m, 0, Page.Size, Page.Size, MapFlags.Read | MapFlags.Write);
            Sys.Close(ctx, (uint)m);
            Sys.Close(ctx, (uint)io);
            r["mmio again"] = Call(ctx, SysNr.MmioEvent, vm, 0xFEB0_1000, 0x1000);
            r["ioio again"] = Call(ctx, SysNr.IoioEvent, vm, 0x3FF, 1);
        });
        Assert.True(r["mmio"] > 0);
        Assert.Equal(Errno.EEXIST, r["mmio overlap"]);
        Assert.True(r["mmio adjacent"] > 0);
        Assert.Equal(Errno.EINVAL, r["mmio empty"]);
        Assert.Equal(Errno.EINVAL, r["mmio wraps"]);
        Assert.True(r["mmio over RAM"] > 0);
        Assert.True(r["ioio"] > 0);
        Assert.Equal(Errno.EEXIST, r["ioio overlap"]);
        Assert.Equal(Errno.EINVAL, r["ioio past 64K"]);
        Assert.Equal(Errno.EINVAL, r["ioio empty"]);
        Assert.Equal(Errno.ENOTSUPP, r["not a vm"]);
        Assert.True(r["map area"] > 0);
        Assert.Equal(Errno.EINVAL, r["map area offset"]);
        Assert.True(r["mmio again"] > 0);
        Assert.True(r["ioio again"] > 0);
    }

    [Fact]
    public void IRQ_EVENT_takes_vectors_32_to_255_and_EVENT_SIGNAL_from_any_holder_makes_the_vector_pending()
    {
        using var k = Boot();
        var r = new Dictionary<string, long>();
        long childSignal = 0;
        k.Install("/irqchild", () => new LambdaProgram(ctx => { childSignal = Call(ctx, SysNr.EventSignal, 1); return Task.CompletedTask; }));
        Run(k, ctx =>
        {
            uint vm = Sys.VmOpen(ctx, 1);
            r["31"] = Call(ctx, SysNr.IrqEvent, vm, 31);
            r["256"] = Call(ctx, SysNr.IrqEvent, vm, 256);
            long low = Call(ctx, SysNr.IrqEvent, vm, 32), high = Call(ctx, SysNr.IrqEvent, vm, 255);
            r["32"] = low; r["255"] = high;
            r["signal"] = Call(ctx, SysNr.EventSignal, (ulong)low);
            r["signal a file"] = Call(ctx, SysNr.EventSignal, FileWith(ctx, "/f", ""));
            r["wait on a file"] = Sys.WaitForEvent(ctx, FileWith(ctx, "/g", "")).Result;
            Sys.Exec(ctx, "/irqchild", (uint)high);   // the child signals vector 255 with the handle it received
        });
        Assert.Equal(Errno.EINVAL, r["31"]);
        Assert.Equal(Errno.EINVAL, r["256"]);
        Assert.True(r["32"] > 0 && r["255"] > 0);
        Assert.Equal(0, r["signal"]);
        Assert.Equal(0, childSignal);
        Assert.Equal(Errno.ENOTSUPP, r["signal a file"]);
        Assert.Equal(Errno.ENOTSUPP, r["wait on a file"]);
        var irr = k.Vms[0].Vcpus[0].Irr;
        Assert.Equal(1UL, irr[0] >> 32 & 1);     // vector 32
        Assert.Equal(1UL, irr[3] >> 63);         // vector 255
    }

    [Fact]
    public void GET_STATE_and_SET_STATE_work_field_by_field_all_or_nothing_on_a_stopped_vCPU()
    {
        using var k = Boot();
        var r = new Dictionary<string, long>();
        ulong[] got = [], untouched = [];
        Run(k, ctx =>
        {
            uint vm = Sys.VmOpen(ctx, 1);
            uint vcpu = Sys.VcpuCreate(ctx, vm, 1);
            ulong fields = Sys.Alloc(ctx, 4 * 8), values = Sys.Alloc(ctx, 4 * 8);
            var f = MemoryMarshal.Cast<byte, ulong>(ctx.Memory(fields, 32));
            var v = MemoryMarshal.Cast<byte, ulong>(ctx.Memory(values, 32));
            f[0] = StateField.Rax; f[1] = StateField.R15; f[2] = StateField.Rip; f[3] = StateField.Cr3;
            v[0] = 0x1111; v[1] = 0x2222; v[2] = 0x3333; v[3] = 0x4000;
            r["set"] = Call(ctx, SysNr.SetState, vcpu, fields, values, 4);
            v.Fill(0);
            r["get"] = Call(ctx, SysNr.GetState, vcpu, fields, values, 4);
            got = v.ToArray();
            f[2] = 0xDEAD;   // an unknown field in the middle
            v.Fill(0x77);
            r["get bad field"] = Call(ctx, SysNr.GetState, vcpu, fields, values, 4);
            untouched = v.ToArray();
            r["set bad field"] = Call(ctx, SysNr.SetState, vcpu, fields, values, 4);
            f[0] = StateField.ExitReason;
            r["set exit reason"] = Call(ctx, SysNr.SetState, vcpu, fields, values, 1);
            r["count 0"] = Call(ctx, SysNr.GetState, vcpu, fields, values, 0);
            r["count 513"] = Call(ctx, SysNr.GetState, vcpu, fields, values, 513);
            r["values unmapped"] = Call(ctx, SysNr.GetState, vcpu, fields, 0x1000, 1);
            r["not a vcpu"] = Call(ctx, SysNr.GetState, vm, fields, values, 1);
            f[0] = StateField.VmsaPage;
            r["vmsa"] = Call(ctx, SysNr.GetState, vcpu, fields, Sys.Alloc(ctx, Page.Size, Page.Size), 1);
        });
        Assert.Equal(4, r["set"]);
        Assert.Equal(4, r["get"]);
        Assert.Equal([0x1111UL, 0x2222, 0x3333, 0x4000], got);
        Assert.Equal(Errno.EINVAL, r["get bad field"]);
        Assert.All(untouched, x => Assert.Equal(0x77UL, x));
        Assert.Equal(Errno.EINVAL, r["set bad field"]);
        Assert.Equal(0x1111UL, k.State.Gpr(k.Vms[0].Vcpus[1].Global, 0));   // the failed SET changed nothing
        Assert.Equal(Errno.EINVAL, r["set exit reason"]);
        Assert.Equal(Errno.EINVAL, r["count 0"]);
        Assert.Equal(Errno.EINVAL, r["count 513"]);
        Assert.Equal(Errno.EFAULT, r["values unmapped"]);
        Assert.Equal(Errno.ENOTSUPP, r["not a vcpu"]);
        Assert.Equal(1, r["vmsa"]);
    }

    [Fact]
    public void The_whole_VMSA_page_is_SNP_only()
    {
        using var k = Boot(PlatformType.Tdp);
        long vmsa = 0;
        Run(k, ctx =>
        {
            uint vcpu = Sys.VcpuCreate(ctx, Sys.VmOpen(ctx, 1), 0);
            ulong fields = Sys.Alloc(ctx, 8);
            MemoryMarshal.Cast<byte, ulong>(ctx.Memory(fields, 8))[0] = StateField.VmsaPage;
            vmsa = Call(ctx, SysNr.GetState, vcpu, fields, Sys.Alloc(ctx, Page.Size, Page.Size), 1);
        });
        Assert.Equal(Errno.ENOTSUPP, vmsa);
    }

    [Fact]
    public void BATCH_runs_every_entry_in_order_copies_user_data_and_refuses_blocking_calls()
    {
        using var k = Boot();
        long batch = 0, zero = 0, tooMany = 0;
        SysCallOut[] outs = [];
        var p = Run(k, ctx =>
        {
            ulong[] entries =
            [
                SysNr.MkDir, Path(ctx, "/b1"), 11,
                SysNr.OpenDir, Path(ctx, "/missing"), 22,
                SysNr.WaitForEvent, 0, 33,
                SysNr.Capabilities, Cap.Count, 44,
                SysNr.Exit, 0, 55,
                SysNr.Batch, 0, 66,
                0x7_0000_0000, 0, 77,
                SysNr.MkDir, Path(ctx, "/b1"), 88,   // runs after the first: EEXIST
            ];
            int n = entries.Length / 3;
            ulong inVa = Sys.Alloc(ctx, n * SysCallIn.Size), outVa = Sys.Alloc(ctx, n * SysCallOut.Size);
            var ins = MemoryMarshal.Cast<byte, SysCallIn>(ctx.Memory(inVa, n * SysCallIn.Size));
            for (int i = 0; i < n; i++)
                ins[i] = new SysCallIn { Nr = entries[3 * i], A0 = entries[3 * i + 1], UserData = entries[3 * i + 2] | 0xABCD_0000_0000_0000 };
            batch = Call(ctx, SysNr.Batch, inVa, outVa, (ulong)n);
            outs = MemoryMarshal.Cast<byte, SysCallOut>(ctx.Memory(outVa, n * SysCallOut.Size)).ToArray();
            zero = Call(ctx, SysNr.Batch, inVa, outVa, 0);
            tooMany = Call(ctx, SysNr.Batch, inVa, outVa, 4097);
        });
        Assert.Equal(8, batch);
        Assert.Equal([0, Errno.ENOTFOUND, Errno.EINVAL, 2, Errno.EINVAL, Errno.EINVAL, Errno.EINVAL, Errno.EEXIST], outs.Select(o => o.Result));
        Assert.Equal([11UL, 22, 33, 44, 55, 66, 77, 88], outs.Select(o => o.UserData & 0xFFFF));
        Assert.All(outs, o => Assert.Equal(0xABCD_0000_0000_0000UL, o.UserData & ~0xFFFFUL));
        Assert.Equal("exit", p.ExitReason);   // the EXIT inside the batch was refused; the process ended normally
        Assert.Equal(0, zero);
        Assert.Equal(Errno.EINVAL, tooMany);
    }
}

using System.Runtime.InteropServices;
using Copra.Abi;
using Copra.Hot.State;
using Copra.Tests.Batch;
using Copra.User;
using Xunit;

namespace Copra.Tests.State;

/// <summary>
/// GET_STATE / SET_STATE through the gate: field lists, EBUSY on a running vCPU, the VMSA page on SNP,
/// pass-through MSRs by index, and the TDX accounting (one TDG.VP.RD per field per exit, one TDG.VP.WR
/// per written field at the next entry; nothing on SNP).
/// </summary>
public sealed class StateSyscallTests
{
    /// <summary>
    /// Opens VM 1 and vCPU 0; a vCPU thread enters the guest with WAIT_FOR_EVENT and, once the first exit
    /// (a CPUID) hands the vCPU back, runs <paramref name="held"/>. <paramref name="whileRunning"/> runs in
    /// another thread of the process while the vCPU is in the guest (queued to run).
    /// </summary>
    static void WithVcpu(KernelHarness h, Func<IUserContext, uint, Task> held, Func<IUserContext, uint, Task>? whileRunning = null)
    {
        var errors = new List<Exception>();
        bool heldRan = false;
        h.Run(ctx =>
        {
            uint vm = Sys.VmOpen(ctx, 1);
            uint vcpu = Sys.VcpuCreate(ctx, vm, 0);
            Sys.ThreadCreate(ctx, async (c, arg) =>
            {
                try
                {
                    if (whileRunning is not null)
                        Sys.ThreadCreate(c, async (c2, a2) => { try { await whileRunning(c2, (uint)a2); } catch (Exception e) { errors.Add(e); } }, arg);
                    Assert.Equal((long)RunExit.Cpuid, await Sys.WaitForEvent(c, (uint)arg));
                    await held(c, (uint)arg);
                    heldRan = true;
                }
                catch (Exception e) { errors.Add(e); }
            }, vcpu);
            return Task.CompletedTask;
        });
        if (errors.Count > 0) throw new Xunit.Sdk.XunitException(string.Join("\n", errors));
        Assert.True(heldRan);
    }

    static (long Rc, ulong[] Values) Get(IUserContext ctx, uint vcpu, params ulong[] fields)
    {
        ulong f = Sys.Alloc(ctx, fields.Length * 8), v = Sys.Alloc(ctx, fields.Length * 8);
        MemoryMarshal.AsBytes(fields.AsSpan()).CopyTo(ctx.Memory(f, fields.Length * 8));
        ctx.Memory(v, fields.Length * 8).Fill(0xEE);
        long rc = Sys.Call(ctx, SysNr.GetState, vcpu, f, v, (ulong)fields.Length);
        return (rc, MemoryMarshal.Cast<byte, ulong>(ctx.Memory(v, fields.Length * 8)).ToArray());
    }

    static long Set(IUserContext ctx, uint vcpu, ulong[] fields, ulong[] values)
    {
        ulong f = Sys.Alloc(ctx, fields.Length * 8), v = Sys.Alloc(ctx, values.Length * 8);
        MemoryMarshal.AsBytes(fields.AsSpan()).CopyTo(ctx.Memory(f, fields.Length * 8));
        MemoryMarshal.AsBytes(values.AsSpan()).CopyTo(ctx.Memory(v, values.Length * 8));
        return Sys.Call(ctx, SysNr.SetState, vcpu, f, v, (ulong)fields.Length);
    }

    [Theory]
    [InlineData("snp")]
    [InlineData("tdx")]
    public void Get_and_set_state_on_a_running_vcpu_get_ebusy(string platform)
    {
        using var h = new KernelHarness(platform);
        long busyGet = 0, busySet = 0, heldGet = 0;
        WithVcpu(h,
            held: (ctx, vcpu) => { heldGet = Get(ctx, vcpu, StateField.Cr0).Rc; return Task.CompletedTask; },
            whileRunning: (ctx, vcpu) =>
            {
                busyGet = Get(ctx, vcpu, StateField.Rip).Rc;
                busySet = Set(ctx, vcpu, [StateField.Rax], [1]);
                return Task.CompletedTask;
            });
        Assert.Equal(Errno.EBUSY, busyGet);
        Assert.Equal(Errno.EBUSY, busySet);
        Assert.Equal(1, heldGet);
    }

    [Fact]
    public void Field_list_reads_every_kind_of_field_and_a_bad_field_writes_nothing()
    {
        using var h = new KernelHarness("snp");
        WithVcpu(h, (ctx, vcpu) =>
        {
            ulong[] fields =
            [
                StateField.Rax, StateField.Rip, StateField.Rflags, StateField.Cr0, StateField.Cr3, StateField.Cr4, StateField.Efer,
                StateField.Seg(StateField.Cs, StateField.Attributes), StateField.Seg(StateField.Ss, StateField.Selector),
                StateField.Msr(VcpuStateStore.MsrIndex.Lstar), StateField.ExitReason, StateField.PendingEvent,
            ];
            var (rc, values) = Get(ctx, vcpu, fields);
            Assert.Equal(fields.Length, rc);
            for (int i = 0; i < fields.Length; i++)
            {
                Assert.True(h.K.State.TryPeek(0, fields[i], out ulong expect));
                Assert.Equal(expect, values[i]);
            }
            Assert.Equal(0UL, values[1] & 0xFFFF_0000_0000_0000);   // RIP is a canonical guest address
            Assert.NotEqual(0UL, values[3] & 1);                    // CR0.PE: the replay guest is in long mode

            var (bad, untouched) = Get(ctx, vcpu, StateField.Rax, StateField.Msr(0x1B) /* APIC_BASE: emulated, not state */);
            Assert.Equal(Errno.EINVAL, bad);
            Assert.All(untouched, v => Assert.Equal(0xEEEE_EEEE_EEEE_EEEEUL, v));
            Assert.Equal(Errno.EINVAL, Set(ctx, vcpu, [StateField.ExitReason], [0]));   // exit information is read-only
            Assert.Equal(Errno.EINVAL, Get(ctx, vcpu, []).Rc);                         // 1..512 fields

            Assert.Equal(2, Set(ctx, vcpu, [StateField.Rbx, StateField.Msr(VcpuStateStore.MsrIndex.Star)], [0x1234, 0x0023_0010_0000_0000]));
            Assert.Equal([0x1234UL, 0x0023_0010_0000_0000UL], Get(ctx, vcpu, StateField.Rbx, StateField.Msr(VcpuStateStore.MsrIndex.Star)).Values);
            return Task.CompletedTask;
        });
    }

    [Fact]
    public void Every_pass_through_msr_is_reachable_by_index_and_others_are_not()
    {
        using var h = new KernelHarness("tdx");
        WithVcpu(h, (ctx, vcpu) =>
        {
            foreach (uint msr in VcpuStateStore.PassThroughMsrs)
            {
                ulong value = msr == VcpuStateStore.MsrIndex.TscAux ? 7UL : 0x1000UL + msr;
                if (msr == VcpuStateStore.MsrIndex.Efer) value = Get(ctx, vcpu, StateField.Efer).Values[0];   // keep the guest in long mode
                Assert.Equal(1, Set(ctx, vcpu, [StateField.Msr(msr)], [value]));
                Assert.Equal(value, Get(ctx, vcpu, StateField.Msr(msr)).Values[0]);
            }
            foreach (uint msr in new uint[] { 0x10 /* TSC */, 0x1B /* APIC_BASE */, 0x48 /* SPEC_CTRL */, 0x802 /* x2APIC ID */ })
            {
                Assert.Equal(Errno.EINVAL, Get(ctx, vcpu, StateField.Msr(msr)).Rc);
                Assert.Equal(Errno.EINVAL, Set(ctx, vcpu, [StateField.Msr(msr)], [0]));
            }
            return Task.CompletedTask;
        });
    }

    [Fact]
    public void Tdx_field_read_twice_after_one_exit_costs_one_tdg_vp_rd_and_a_written_field_one_tdg_vp_wr_at_entry()
    {
        using var h = new KernelHarness("tdx");
        WithVcpu(h, async (ctx, vcpu) =>
        {
            var s = h.K.State;
            long r0 = s.TdReads[0], w0 = s.TdWrites[0];
            ulong cr3 = Get(ctx, vcpu, StateField.Cr3).Values[0];
            Assert.Equal(cr3, Get(ctx, vcpu, StateField.Cr3).Values[0]);
            Assert.Equal(1, s.TdReads[0] - r0);                       // one TDG.VP.RD for two reads
            Get(ctx, vcpu, StateField.Rax, StateField.R15, StateField.Rip, StateField.Rflags, StateField.ExitReason);
            Assert.Equal(1, s.TdReads[0] - r0);                       // GPRs, RIP, RFLAGS, exit info: free
            Get(ctx, vcpu, StateField.Cr0, StateField.Cr0, StateField.Msr(VcpuStateStore.MsrIndex.Lstar));
            Assert.Equal(3, s.TdReads[0] - r0);                       // two more distinct fields

            ulong cr4 = h.K.State.TryPeek(0, StateField.Cr4, out var c4) ? c4 : 0;
            Assert.Equal(1, Set(ctx, vcpu, [StateField.Cr4], [cr4]));
            Assert.Equal(1, Set(ctx, vcpu, [StateField.Cr4], [cr4]));
            Assert.Equal(3, s.TdReads[0] - r0);                       // a write reads nothing
            Assert.Equal(0, s.TdWrites[0] - w0);                      // and is not pushed yet

            Assert.Equal((long)RunExit.Cpuid, await Sys.WaitForEvent(ctx, vcpu));   // entry, then the next exit
            Assert.Equal(1, s.TdWrites[0] - w0);                      // one TDG.VP.WR at entry for the written field
            long r1 = s.TdReads[0];
            Get(ctx, vcpu, StateField.Cr3);
            Assert.Equal(1, s.TdReads[0] - r1);                       // the exit made the cached CR3 stale again
        });
    }

    [Fact]
    public void Snp_state_access_costs_no_tdcall()
    {
        using var h = new KernelHarness("snp");
        WithVcpu(h, async (ctx, vcpu) =>
        {
            var s = h.K.State;
            long r0 = s.TotalTdReads, w0 = s.TotalTdWrites;
            var (rc, v) = Get(ctx, vcpu, StateField.Cr3, StateField.Cr3, StateField.Cr0, StateField.Msr(VcpuStateStore.MsrIndex.Lstar));
            Assert.Equal(4, rc);
            Assert.Equal(1, Set(ctx, vcpu, [StateField.Cr3], [v[0]]));
            Assert.Equal((long)RunExit.Cpuid, await Sys.WaitForEvent(ctx, vcpu));
            Assert.Equal(0, s.TotalTdReads - r0);
            Assert.Equal(0, s.TotalTdWrites - w0);
            Assert.Equal(0, h.K.Stats.TdReads + h.K.Stats.TdWrites);
        });
    }

    [Fact]
    public void Vmsa_page_on_snp_round_trips_and_is_refused_on_tdx()
    {
        using (var h = new KernelHarness("snp"))
            WithVcpu(h, (ctx, vcpu) =>
            {
                ulong page = Sys.Alloc(ctx, Page.Size, Page.Size);
                ulong list = Sys.Alloc(ctx, 8);
                MemoryMarshal.Write(ctx.Memory(list, 8), StateField.VmsaPage);
                Assert.Equal(1, Sys.Call(ctx, SysNr.GetState, vcpu, list, page, 1));
                ulong rip = BitConverter.ToUInt64(ctx.Memory(page + VmsaLayout.Rip, 8));
                Assert.Equal(Get(ctx, vcpu, StateField.Rip).Values[0], rip);
                Assert.Equal(Get(ctx, vcpu, StateField.Cr3).Values[0], BitConverter.ToUInt64(ctx.Memory(page + VmsaLayout.Cr3, 8)));

                BitConverter.TryWriteBytes(ctx.Memory(page + VmsaLayout.Rax, 8), 0xABCDUL);
                Assert.Equal(1, Sys.Call(ctx, SysNr.SetState, vcpu, list, page, 1));
                Assert.Equal(0xABCDUL, Get(ctx, vcpu, StateField.Rax).Values[0]);
                Assert.Equal(Errno.EFAULT, Sys.Call(ctx, SysNr.GetState, vcpu, list, 0x10, 1));   // the page must be mapped
                return Task.CompletedTask;
            });
        using (var h = new KernelHarness("tdx"))
            WithVcpu(h, (ctx, vcpu) =>
            {
                ulong page = Sys.Alloc(ctx, Page.Size, Page.Size);
                ulong list = Sys.Alloc(ctx, 8);
                MemoryMarshal.Write(ctx.Memory(list, 8), StateField.VmsaPage);
                Assert.Equal(Errno.ENOTSUPP, Sys.Call(ctx, SysNr.GetState, vcpu, list, page, 1));
                Assert.Equal(Errno.ENOTSUPP, Sys.Call(ctx, SysNr.SetState, vcpu, list, page, 1));
                return Task.CompletedTask;
            });
    }

    [Fact]
    public void State_calls_batch_like_any_other_and_keep_the_accounting()
    {
        using var h = new KernelHarness("tdx");
        WithVcpu(h, (ctx, vcpu) =>
        {
            ulong ids = Sys.Alloc(ctx, 16), vals = Sys.Alloc(ctx, 16);
            MemoryMarshal.Write(ctx.Memory(ids, 8), StateField.Cr0);
            MemoryMarshal.Write(ctx.Memory(ids + 8, 8), StateField.Efer);
            long t0 = h.K.Gate.Transitions, r0 = h.K.State.TdReads[0];
            var b = new SysBatch(ctx, 4);
            b.Push(SysNr.GetState, vcpu, ids, vals, 1, userData: 1);
            b.Push(SysNr.GetState, vcpu, ids + 8, vals + 8, 1, userData: 2);
            b.Push(SysNr.GetState, vcpu, ids, vals, 2, userData: 3);
            b.Push(SysNr.SetState, vcpu, ids + 8, vals + 8, 1, userData: 4);
            b.Submit();
            Assert.Equal([1L, 1, 2, 1], b.Completions.ToArray().Select(c => c.Result).ToArray());
            Assert.Equal(1, h.K.Gate.Transitions - t0);
            Assert.Equal(2, h.K.State.TdReads[0] - r0);
            return Task.CompletedTask;
        });
    }
}

using Copra.Abi;
using Copra.Cold;
using Copra.User;
using Xunit;
using static Copra.Tests.Kernel.KernelHarness;

namespace Copra.Tests.Kernel;

/// <summary>CAPABILITIES, VM_CAPABILITIES, PHYSMEM mappings and page-state changes, and what a process's exit gives back.</summary>
public class MachineRuleTests
{
    [Theory]
    [InlineData(PlatformType.Snp, 1)]
    [InlineData(PlatformType.Tdp, 2)]
    [InlineData(PlatformType.Native, 0)]
    public void CAPABILITIES_reports_count_VM_bitmap_without_bit_0_and_the_platform(PlatformType platform, long flags)
    {
        using var k = Boot(platform, vms: 3);
        long count = 0, bitmap = 0, features = 0, past = 0, huge = 0;
        Run(k, ctx =>
        {
            count = Call(ctx, SysNr.Capabilities, Cap.Count);
            bitmap = Call(ctx, SysNr.Capabilities, Cap.VmBitmap);
            features = Call(ctx, SysNr.Capabilities, Cap.Features);
            past = Call(ctx, SysNr.Capabilities, 3);
            huge = Call(ctx, SysNr.Capabilities, ulong.MaxValue);
        });
        Assert.Equal(2, count);                  // COCONUT's "number of capabilities": indices 1 and 2
        Assert.Equal(0b1110, bitmap);            // VMs 1..3; bit 0 is the kernel's own level
        Assert.Equal(flags, features & (long)Cap.PlatformMask);
        Assert.Equal(Errno.ENOTFOUND, past);
        Assert.Equal(Errno.ENOTFOUND, huge);
    }

    [Fact]
    public void CAPABILITIES_VM_bitmap_names_exactly_the_configured_VMs()
    {
        using var k = Boot(vms: 1);
        long bitmap = 0;
        Run(k, ctx => { bitmap = Call(ctx, SysNr.Capabilities, Cap.VmBitmap); });
        Assert.Equal(0b10, bitmap);
    }

    [Fact]
    public void VM_CAPABILITIES_reports_the_vCPU_count_and_the_guest_memory_range()
    {
        using var k = Boot(vms: 2);
        var got = new long[7];
        long notVm = 0, stale = 0;
        Run(k, ctx =>
        {
            uint vm = Sys.VmOpen(ctx, 2);
            for (int i = 0; i < got.Length; i++) got[i] = Call(ctx, SysNr.VmCapabilities, vm, (ulong)i);
            notVm = Call(ctx, SysNr.VmCapabilities, 0, VmCap.VcpuCount);
            Sys.Close(ctx, vm);
            stale = Call(ctx, SysNr.VmCapabilities, vm, VmCap.VcpuCount);
        });
        Assert.Equal(4, got[VmCap.Count]);   // indices 1..4 follow index 0
        Assert.Equal(2, got[VmCap.VcpuCount]);
        Assert.Equal(1, got[VmCap.RangeCount]);
        Assert.Equal((long)(VmBase + VmLength), got[VmCap.RangeBase(0)]);
        Assert.Equal((long)VmLength, got[VmCap.RangeLength(0)]);
        Assert.Equal(Errno.ENOTFOUND, got[5]);
        Assert.Equal(Errno.ENOTFOUND, got[6]);
        Assert.Equal(Errno.ENOTSUPP, notVm);
        Assert.Equal(Errno.ENOTFOUND, stale);
    }

    [Fact]
    public void OPEN_PHYSMEM_and_MMAP_reach_guest_memory_both_ways()
    {
        using var k = Boot();
        const ulong gpa = VmBase + 0x3000;
        k.Memory.Write(gpa + 0x100, [0xDE, 0xAD, 0xBE, 0xEF]);
        byte[] seen = [];
        long count = -1;
        Run(k, ctx =>
        {
            uint pm = Sys.OpenPhysMem(ctx);
            ulong va = Sys.Mmap(ctx, pm, gpa, 2 * Page.Size);
            seen = ctx.Memory(va + 0x100, 4).ToArray();
            "xyz"u8.CopyTo(ctx.Memory(va + Page.Size + 8, 3));
            count = k.Phys.MapCount(gpa + Page.Size);
        });
        Assert.Equal([0xDE, 0xAD, 0xBE, 0xEF], seen);
        Assert.Equal("xyz"u8.ToArray(), k.Memory.Span(gpa + Page.Size + 8, 3).ToArray());
        Assert.Equal(1, count);
        Assert.Equal(0, k.Phys.MapCount(gpa + Page.Size));   // the process exited
    }

    [Fact]
    public void MMAP_of_PHYSMEM_refuses_the_kernel_range_and_unaligned_or_outside_ranges()
    {
        using var k = Boot();
        var r = new Dictionary<string, long>();
        Run(k, ctx =>
        {
            uint pm = Sys.OpenPhysMem(ctx);
            long Map(ulong off, ulong len, ulong flags = MapFlags.Read | MapFlags.Write) => Call(ctx, SysNr.Mmap, pm, 0, off, len, flags);
            r["kernel"] = Map(0, Page.Size);
            r["kernel tail"] = Map(k.Config.KernelLength - Page.Size, 2 * Page.Size);
            r["unaligned offset"] = Map(VmBase + 8, Page.Size);
            r["unaligned length"] = Map(VmBase, 100);
            r["empty"] = Map(VmBase, 0);
            r["past the end"] = Map(k.Config.MemoryBytes, Page.Size);
            r["straddles the end"] = Map(k.Config.MemoryBytes - Page.Size, 2 * Page.Size);
            r["wraps"] = Map(ulong.MaxValue & ~Page.Mask, 2 * Page.Size);
            r["flags"] = Map(VmBase, Page.Size, 0x40);
            r["not mappable"] = Call(ctx, SysNr.Mmap, FileWith(ctx, "/f", "x"), 0, 0, Page.Size, MapFlags.Read);
            r["stale"] = Call(ctx, SysNr.Mmap, HandleTable.Encode(9, 9), 0, 0, Page.Size, MapFlags.Read);
        });
        Assert.Equal(Errno.EPERM, r["kernel"]);
        Assert.Equal(Errno.EPERM, r["kernel tail"]);
        Assert.Equal(Errno.EINVAL, r["unaligned offset"]);
        Assert.Equal(Errno.EINVAL, r["unaligned length"]);
        Assert.Equal(Errno.EINVAL, r["empty"]);
        Assert.Equal(Errno.EINVAL, r["past the end"]);
        Assert.Equal(Errno.EINVAL, r["straddles the end"]);
        Assert.Equal(Errno.EINVAL, r["wraps"]);
        Assert.Equal(Errno.EINVAL, r["flags"]);
        Assert.Equal(Errno.EINVAL, r["not mappable"]);   // PR #945: an object it cannot map is EINVAL
        Assert.Equal(Errno.ENOTFOUND, r["stale"]);
        for (ulong pa = 0; pa < k.Config.MemoryBytes; pa += Page.Size) Assert.Equal(0, k.Phys.MapCount(pa));
    }

    [Fact]
    public void A_read_only_MMAP_refuses_user_writes_through_the_gate()
    {
        using var k = Boot();
        long readInto = 0;
        Run(k, ctx =>
        {
            uint pm = Sys.OpenPhysMem(ctx);
            ulong ro = Sys.Mmap(ctx, pm, VmBase, Page.Size, write: false);
            uint f = FileWith(ctx, "/a", "data");
            readInto = Call(ctx, SysNr.Read, f, ro, 4);
        });
        Assert.Equal(Errno.EFAULT, readInto);
        Assert.Equal(0u, k.Memory.ReadU32(VmBase));
    }

    [Fact]
    public void SET_MEM_STATE_on_a_mapped_page_gets_EBUSY_and_succeeds_after_MUNMAP()
    {
        using var k = Boot();
        const ulong gpa = VmBase + 0x10000;
        var r = new Dictionary<string, long>();
        Run(k, ctx =>
        {
            uint pm = Sys.OpenPhysMem(ctx);
            ulong va = Sys.Mmap(ctx, pm, gpa, Page.Size);
            long Set(ulong pa, ulong len, ulong state) => Call(ctx, SysNr.SetMemState, pm, pa, len, state);
            r["mapped"] = Set(gpa, Page.Size, MemState.Shared);
            r["range with a mapped page"] = Set(gpa - Page.Size, 3 * Page.Size, MemState.Shared);
            r["neighbour"] = Set(gpa + Page.Size, Page.Size, MemState.Shared);
            r["kernel"] = Set(0, Page.Size, MemState.Shared);
            r["unaligned"] = Set(gpa + 1, Page.Size, MemState.Shared);
            r["bad state"] = Set(gpa + Page.Size, Page.Size, 2);
            r["not physmem"] = Call(ctx, SysNr.SetMemState, 0, gpa, Page.Size, MemState.Shared);
            r["munmap inside"] = Call(ctx, SysNr.Munmap, va + Page.Size, Page.Size);
            r["munmap"] = Call(ctx, SysNr.Munmap, va, 2 * Page.Size);   // PR #945: the length is ignored
            r["munmap again"] = Call(ctx, SysNr.Munmap, va, Page.Size);
            r["after"] = Set(gpa, Page.Size, MemState.Shared);
        });
        Assert.Equal(Errno.EBUSY, r["mapped"]);
        Assert.Equal(Errno.EBUSY, r["range with a mapped page"]);
        Assert.Equal(MemState.Private, k.Phys.State(gpa - Page.Size));   // all or nothing
        Assert.Equal(0, r["neighbour"]);
        Assert.Equal(Errno.EPERM, r["kernel"]);
        Assert.Equal(Errno.EINVAL, r["unaligned"]);
        Assert.Equal(Errno.EINVAL, r["bad state"]);
        Assert.Equal(Errno.ENOTSUPP, r["not physmem"]);
        Assert.Equal(Errno.EINVAL, r["munmap inside"]);
        Assert.Equal(0, r["munmap"]);
        Assert.Equal(Errno.EINVAL, r["munmap again"]);
        Assert.Equal(0, r["after"]);
        Assert.Equal(MemState.Shared, k.Phys.State(gpa));
    }

    [Fact]
    public void A_process_exit_frees_its_VM_and_its_mappings()
    {
        using var k = Boot();
        const ulong gpa = VmBase + 0x20000;
        long reopened = 0, stateChange = 0;
        int countWhileMapped = 0;
        Run(k, ctx =>
        {
            Sys.VmOpen(ctx, 1);
            uint pm = Sys.OpenPhysMem(ctx);
            Sys.Mmap(ctx, pm, gpa, 4 * Page.Size);
            Sys.Mmap(ctx, pm, gpa, Page.Size);
            countWhileMapped = k.Phys.MapCount(gpa);
        }, "/holder");
        Assert.Equal(2, countWhileMapped);
        Assert.Equal(0, k.Phys.MapCount(gpa));
        Assert.Equal(0, k.Phys.MapCount(gpa + 3 * Page.Size));
        Assert.Equal(0, k.Vms[0].HandleCount);
        Run(k, ctx =>
        {
            reopened = Call(ctx, SysNr.VmOpen, 1);
            stateChange = Call(ctx, SysNr.SetMemState, Sys.OpenPhysMem(ctx), gpa, 4 * Page.Size, MemState.Shared);
        }, "/next");
        Assert.True(reopened > 0);
        Assert.Equal(0, stateChange);
    }

    [Fact]
    public void A_crashing_process_also_frees_its_VM_and_its_mappings()
    {
        using var k = Boot();
        const ulong gpa = VmBase + 0x30000;
        var p = Start(k, ctx =>
        {
            Sys.VmOpen(ctx, 1);
            Sys.Mmap(ctx, Sys.OpenPhysMem(ctx), gpa, Page.Size);
            ctx.Memory(0x1234, 1)[0] = 1;   // an unmapped address: the process dies
            return Task.CompletedTask;
        }, "/crash");
        k.RunDeterministic(1_000_000);
        Assert.StartsWith("crash", p.ExitReason);
        Assert.Equal(0, k.InternalErrors);
        Assert.Equal(0, k.Phys.MapCount(gpa));
        Assert.Equal(0, k.Vms[0].HandleCount);
    }
}

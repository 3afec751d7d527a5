// Sizes, offsets and ioctl numbers of the KVM structures, pinned to linux/kvm.h on x86-64
// (values printed by a C program compiled against the header: sizeof/offsetof and the
// _IO* macros).
using System.Runtime.CompilerServices;
using Copra.Kernel.Kvm;
using Xunit;

namespace Copra.Tests.Kvm;

public class KvmLayoutTests
{
    static int Off<TStruct, TField>(ref TStruct s, ref TField f) =>
        (int)Unsafe.ByteOffset(ref Unsafe.As<TStruct, byte>(ref s), ref Unsafe.As<TField, byte>(ref f));

    [Fact]
    public void Struct_sizes_match_the_header()
    {
        Assert.Equal(144, Unsafe.SizeOf<KvmRegs>());
        Assert.Equal(24, Unsafe.SizeOf<KvmSegment>());
        Assert.Equal(16, Unsafe.SizeOf<KvmDtable>());
        Assert.Equal(312, Unsafe.SizeOf<KvmSregs>());
        Assert.Equal(32, Unsafe.SizeOf<KvmUserspaceMemoryRegion>());
        Assert.Equal(8, Unsafe.SizeOf<KvmCpuid2Header>());
        Assert.Equal(40, Unsafe.SizeOf<KvmCpuidEntry2>());
        Assert.Equal(64, Unsafe.SizeOf<KvmVcpuEvents>());
        Assert.Equal(520, Unsafe.SizeOf<KvmSyncRegs>());
        Assert.Equal(2352, Unsafe.SizeOf<KvmRun>());
    }

    [Fact]
    public void Kvm_regs_is_rax_through_r15_then_rip_rflags()
    {
        var r = new KvmRegs();
        Assert.Equal(0, Off(ref r, ref r.Rax));
        Assert.Equal(16, Off(ref r, ref r.Rcx));
        Assert.Equal(40, Off(ref r, ref r.Rdi));
        Assert.Equal(48, Off(ref r, ref r.Rsp));
        Assert.Equal(64, Off(ref r, ref r.R8));
        Assert.Equal(120, Off(ref r, ref r.R15));
        Assert.Equal(128, Off(ref r, ref r.Rip));
        Assert.Equal(136, Off(ref r, ref r.Rflags));
    }

    [Fact]
    public void Kvm_segment_and_dtable_fields()
    {
        var s = new KvmSegment();
        Assert.Equal(0, Off(ref s, ref s.Base));
        Assert.Equal(8, Off(ref s, ref s.Limit));
        Assert.Equal(12, Off(ref s, ref s.Selector));
        Assert.Equal(14, Off(ref s, ref s.Type));
        Assert.Equal(15, Off(ref s, ref s.Present));
        Assert.Equal(16, Off(ref s, ref s.Dpl));
        Assert.Equal(17, Off(ref s, ref s.Db));
        Assert.Equal(18, Off(ref s, ref s.S));
        Assert.Equal(19, Off(ref s, ref s.L));
        Assert.Equal(20, Off(ref s, ref s.G));
        Assert.Equal(21, Off(ref s, ref s.Avl));
        Assert.Equal(22, Off(ref s, ref s.Unusable));
        var d = new KvmDtable();
        Assert.Equal(0, Off(ref d, ref d.Base));
        Assert.Equal(8, Off(ref d, ref d.Limit));
    }

    [Fact]
    public void Kvm_sregs_segments_tables_control_registers()
    {
        var s = new KvmSregs();
        Assert.Equal(0, Off(ref s, ref s.Cs));
        Assert.Equal(24, Off(ref s, ref s.Ds));
        Assert.Equal(120, Off(ref s, ref s.Ss));
        Assert.Equal(144, Off(ref s, ref s.Tr));
        Assert.Equal(168, Off(ref s, ref s.Ldt));
        Assert.Equal(192, Off(ref s, ref s.Gdt));
        Assert.Equal(208, Off(ref s, ref s.Idt));
        Assert.Equal(224, Off(ref s, ref s.Cr0));
        Assert.Equal(240, Off(ref s, ref s.Cr3));
        Assert.Equal(248, Off(ref s, ref s.Cr4));
        Assert.Equal(256, Off(ref s, ref s.Cr8));
        Assert.Equal(264, Off(ref s, ref s.Efer));
        Assert.Equal(272, Off(ref s, ref s.ApicBase));
        Assert.Equal(280, Off(ref s, ref s.InterruptBitmap));
    }

    [Fact]
    public void Kvm_run_header_and_unions()
    {
        var r = new KvmRun();
        Assert.Equal(0, Off(ref r, ref r.RequestInterruptWindow));
        Assert.Equal(1, Off(ref r, ref r.ImmediateExit));
        Assert.Equal(8, Off(ref r, ref r.ExitReason));
        Assert.Equal(12, Off(ref r, ref r.ReadyForInterruptInjection));
        Assert.Equal(13, Off(ref r, ref r.IfFlag));
        Assert.Equal(14, Off(ref r, ref r.Flags));
        Assert.Equal(16, Off(ref r, ref r.Cr8));
        Assert.Equal(24, Off(ref r, ref r.ApicBase));
        // The exit union is 256 bytes at 32.
        Assert.Equal(32, Off(ref r, ref r.Io));
        Assert.Equal(32, Off(ref r, ref r.Mmio));
        Assert.Equal(32, Off(ref r, ref r.Internal));
        Assert.Equal(32, Off(ref r, ref r.FailEntry));
        Assert.Equal(32, Off(ref r, ref r.Hw));
        // Then the sync-regs control words and the 2048-byte sync-regs union (SYNC_REGS_SIZE_BYTES).
        Assert.Equal(288, Off(ref r, ref r.KvmValidRegs));
        Assert.Equal(296, Off(ref r, ref r.KvmDirtyRegs));
        Assert.Equal(304, Off(ref r, ref r.S));
        Assert.Equal(304, KvmRun.SyncRegsOffset);
        Assert.Equal(KvmRun.Size, KvmRun.SyncRegsOffset + KvmRun.SyncRegsSize);
        Assert.Equal(304 + 144, Off(ref r, ref r.S.Sregs));
        Assert.Equal(304 + 456, Off(ref r, ref r.S.Events));
    }

    [Fact]
    public void Kvm_run_exit_members_at_their_header_offsets()
    {
        var r = new KvmRun();
        Assert.Equal(32, Off(ref r, ref r.Io.Direction));
        Assert.Equal(33, Off(ref r, ref r.Io.Size));
        Assert.Equal(34, Off(ref r, ref r.Io.Port));
        Assert.Equal(36, Off(ref r, ref r.Io.Count));
        Assert.Equal(40, Off(ref r, ref r.Io.DataOffset));
        Assert.Equal(32, Off(ref r, ref r.Mmio.PhysAddr));
        Assert.Equal(40, Off(ref r, ref r.Mmio.Data));
        Assert.Equal(48, Off(ref r, ref r.Mmio.Len));
        Assert.Equal(52, Off(ref r, ref r.Mmio.IsWrite));
        Assert.Equal(32, Off(ref r, ref r.Internal.Suberror));
        Assert.Equal(36, Off(ref r, ref r.Internal.Ndata));
        Assert.Equal(40, Off(ref r, ref r.Internal.Data));
        Assert.Equal(32, Off(ref r, ref r.FailEntry.HardwareEntryFailureReason));
        Assert.Equal(40, Off(ref r, ref r.FailEntry.Cpu));
        Assert.Equal(36, Off(ref r, ref r.Ex.ErrorCode));
        Assert.Equal(32, Off(ref r, ref r.SystemEvent.Type));
    }

    [Fact]
    public void Memory_region_and_cpuid_entry_fields()
    {
        var m = new KvmUserspaceMemoryRegion();
        Assert.Equal(0, Off(ref m, ref m.Slot));
        Assert.Equal(4, Off(ref m, ref m.Flags));
        Assert.Equal(8, Off(ref m, ref m.GuestPhysAddr));
        Assert.Equal(16, Off(ref m, ref m.MemorySize));
        Assert.Equal(24, Off(ref m, ref m.UserspaceAddr));
        var c = new KvmCpuidEntry2();
        Assert.Equal(0, Off(ref c, ref c.Function));
        Assert.Equal(4, Off(ref c, ref c.Index));
        Assert.Equal(8, Off(ref c, ref c.Flags));
        Assert.Equal(12, Off(ref c, ref c.Eax));
        Assert.Equal(24, Off(ref c, ref c.Edx));
        Assert.Equal(28, Off(ref c, ref c.Padding0));
    }

    public static TheoryData<string, nuint, ulong> Ioctls => new()
    {
        { "KVM_GET_API_VERSION", KvmIoctls.GetApiVersion, 0xAE00 },
        { "KVM_CREATE_VM", KvmIoctls.CreateVm, 0xAE01 },
        { "KVM_CHECK_EXTENSION", KvmIoctls.CheckExtension, 0xAE03 },
        { "KVM_GET_VCPU_MMAP_SIZE", KvmIoctls.GetVcpuMmapSize, 0xAE04 },
        { "KVM_GET_SUPPORTED_CPUID", KvmIoctls.GetSupportedCpuid, 0xC008AE05 },
        { "KVM_CREATE_VCPU", KvmIoctls.CreateVcpu, 0xAE41 },
        { "KVM_SET_USER_MEMORY_REGION", KvmIoctls.SetUserMemoryRegion, 0x4020AE46 },
        { "KVM_SET_TSS_ADDR", KvmIoctls.SetTssAddr, 0xAE47 },
        { "KVM_SET_IDENTITY_MAP_ADDR", KvmIoctls.SetIdentityMapAddr, 0x4008AE48 },
        { "KVM_RUN", KvmIoctls.Run, 0xAE80 },
        { "KVM_GET_REGS", KvmIoctls.GetRegs, 0x8090AE81 },
        { "KVM_SET_REGS", KvmIoctls.SetRegs, 0x4090AE82 },
        { "KVM_GET_SREGS", KvmIoctls.GetSregs, 0x8138AE83 },
        { "KVM_SET_SREGS", KvmIoctls.SetSregs, 0x4138AE84 },
        { "KVM_INTERRUPT", KvmIoctls.Interrupt, 0x4004AE86 },
        { "KVM_SET_CPUID2", KvmIoctls.SetCpuid2, 0x4008AE90 },
        { "KVM_GET_TSC_KHZ", KvmIoctls.GetTscKhz, 0xAEA3 },
    };

    [Theory]
    [MemberData(nameof(Ioctls))]
    public void Ioctl_numbers_match_the_header_macros(string name, nuint computed, ulong expected)
    {
        Assert.True(expected == computed, $"{name}: computed 0x{computed:X}, header 0x{expected:X}");
    }

    [Fact]
    public void Exit_reasons_and_capabilities_match_the_header()
    {
        Assert.Equal(2u, (uint)KvmExitReason.Io);
        Assert.Equal(5u, (uint)KvmExitReason.Hlt);
        Assert.Equal(6u, (uint)KvmExitReason.Mmio);
        Assert.Equal(7u, (uint)KvmExitReason.IrqWindowOpen);
        Assert.Equal(8u, (uint)KvmExitReason.Shutdown);
        Assert.Equal(9u, (uint)KvmExitReason.FailEntry);
        Assert.Equal(10u, (uint)KvmExitReason.Intr);
        Assert.Equal(17u, (uint)KvmExitReason.InternalError);
        Assert.Equal(0x4Au, KvmCap.SyncRegs);
        Assert.Equal(0x3Du, KvmCap.GetTscKhz);
        Assert.Equal(7ul, (ulong)(KvmSyncRegsMask.Regs | KvmSyncRegsMask.Sregs | KvmSyncRegsMask.Events));
    }
}

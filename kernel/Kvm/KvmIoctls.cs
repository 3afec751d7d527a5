// ioctl request numbers, composed the way <asm-generic/ioctl.h> does it, with the struct
// sizes taken from our own layouts so a layout mistake shows up as a wrong number (the
// layout tests pin both against linux/kvm.h on x86-64).
//
//   31 30 29            16 15         8 7          0
//  +-----+----------------+------------+------------+
//  | dir |      size      | type (0xAE)|     nr     |
//  +-----+----------------+------------+------------+
//  dir: 0 none, 1 write (user -> kernel), 2 read (kernel -> user), 3 both
using System.Runtime.CompilerServices;

namespace Copra.Kernel.Kvm;

/// <summary>The KVM ioctl numbers this backend uses.</summary>
public static class KvmIoctls
{
    const int NrShift = 0;
    const int NrBits = 8;
    const int TypeShift = NrShift + NrBits;
    const int TypeBits = 8;
    const int SizeShift = TypeShift + TypeBits;
    const int SizeBits = 14;
    const int DirShift = SizeShift + SizeBits;

    const uint DirNone = 0;
    const uint DirWrite = 1;
    const uint DirRead = 2;

    /// <summary>The ioctl type byte of every KVM request.</summary>
    public const uint KvmIo = 0xAE;

    static nuint Ioc(uint dir, uint type, uint nr, int size)
    {
        if ((uint)size >= 1u << SizeBits) throw new ArgumentOutOfRangeException(nameof(size));
        return (nuint)(dir << DirShift | (uint)size << SizeShift | type << TypeShift | nr << NrShift);
    }

    static nuint IO(uint nr) => Ioc(DirNone, KvmIo, nr, 0);
    static nuint IOR<T>(uint nr) where T : unmanaged => Ioc(DirRead, KvmIo, nr, Unsafe.SizeOf<T>());
    static nuint IOW<T>(uint nr) where T : unmanaged => Ioc(DirWrite, KvmIo, nr, Unsafe.SizeOf<T>());
    static nuint IOWR<T>(uint nr) where T : unmanaged => Ioc(DirRead | DirWrite, KvmIo, nr, Unsafe.SizeOf<T>());

    // System ioctls (on the /dev/kvm fd).
    public static readonly nuint GetApiVersion = IO(0x00);
    public static readonly nuint CreateVm = IO(0x01);
    public static readonly nuint CheckExtension = IO(0x03);
    public static readonly nuint GetVcpuMmapSize = IO(0x04);
    /// <summary>KVM_GET_SUPPORTED_CPUID: _IOWR with the size of the kvm_cpuid2 header only.</summary>
    public static readonly nuint GetSupportedCpuid = IOWR<KvmCpuid2Header>(0x05);

    // VM ioctls.
    public static readonly nuint CreateVcpu = IO(0x41);
    public static readonly nuint SetUserMemoryRegion = IOW<KvmUserspaceMemoryRegion>(0x46);
    public static readonly nuint SetTssAddr = IO(0x47);
    public static readonly nuint SetIdentityMapAddr = IOW<ulong>(0x48);

    // vCPU ioctls.
    public static readonly nuint Run = IO(0x80);
    public static readonly nuint GetRegs = IOR<KvmRegs>(0x81);
    public static readonly nuint SetRegs = IOW<KvmRegs>(0x82);
    public static readonly nuint GetSregs = IOR<KvmSregs>(0x83);
    public static readonly nuint SetSregs = IOW<KvmSregs>(0x84);
    /// <summary>KVM_INTERRUPT: _IOW with struct kvm_interrupt { __u32 irq; }.</summary>
    public static readonly nuint Interrupt = IOW<uint>(0x86);
    public static readonly nuint SetCpuid2 = IOW<KvmCpuid2Header>(0x90);
    public static readonly nuint GetTscKhz = IO(0xA3);
}

/// <summary>KVM_CHECK_EXTENSION capability numbers this backend asks about.</summary>
public static class KvmCap
{
    public const uint UserMemory = 3;
    public const uint SetTssAddr = 4;
    public const uint ExtCpuid = 7;
    public const uint GetTscKhz = 61;
    public const uint SyncRegs = 74;
}

/// <summary>Bits of kvm_run.kvm_valid_regs / kvm_dirty_regs on x86.</summary>
[Flags]
public enum KvmSyncRegsMask : ulong
{
    None = 0,
    Regs = 1 << 0,
    Sregs = 1 << 1,
    Events = 1 << 2,
}

/// <summary>kvm_run.exit_reason values (the subset x86 user space sees without an in-kernel irqchip).</summary>
public enum KvmExitReason : uint
{
    Unknown = 0,
    Exception = 1,
    Io = 2,
    Hypercall = 3,
    Debug = 4,
    Hlt = 5,
    Mmio = 6,
    IrqWindowOpen = 7,
    Shutdown = 8,
    FailEntry = 9,
    Intr = 10,
    SetTpr = 11,
    TprAccess = 12,
    Nmi = 16,
    InternalError = 17,
    SystemEvent = 24,
    X86Rdmsr = 29,
    X86Wrmsr = 30,
}

namespace Copra.Kernel.Kvm;

/// <summary>
/// The system state of a flat 64-bit guest at CPL 0, as values: control registers, EFER, the
/// GDT and IDT registers and the selectors to load. <see cref="KvmVcpu.LoadLongMode"/> turns it
/// into kvm_sregs (a 64-bit code segment and flat data segments whose hidden parts match the
/// GDT descriptors the guest is expected to hold at those selectors).
/// </summary>
public readonly record struct LongModeState(
    ulong Cr3,
    ulong GdtBase,
    ushort GdtLimit,
    ushort CodeSelector = LongModeState.DefaultCodeSelector,
    ushort DataSelector = LongModeState.DefaultDataSelector,
    ulong IdtBase = 0,
    ushort IdtLimit = 0,
    ulong Cr0 = LongModeState.DefaultCr0,
    ulong Cr4 = LongModeState.DefaultCr4,
    ulong Efer = LongModeState.DefaultEfer)
{
    public const ulong Cr0Pe = 1UL << 0, Cr0Mp = 1UL << 1, Cr0Et = 1UL << 4, Cr0Ne = 1UL << 5, Cr0Wp = 1UL << 16, Cr0Pg = 1UL << 31;
    public const ulong Cr4Pae = 1UL << 5, Cr4Osfxsr = 1UL << 9, Cr4Osxmmexcpt = 1UL << 10;
    public const ulong EferSce = 1UL << 0, EferLme = 1UL << 8, EferLma = 1UL << 10, EferNxe = 1UL << 11;

    /// <summary>Protected mode, paging, FPU native errors, write-protect.</summary>
    public const ulong DefaultCr0 = Cr0Pe | Cr0Mp | Cr0Et | Cr0Ne | Cr0Wp | Cr0Pg;
    /// <summary>PAE (required for long mode) and SSE enabled.</summary>
    public const ulong DefaultCr4 = Cr4Pae | Cr4Osfxsr | Cr4Osxmmexcpt;
    /// <summary>Long mode enabled and active.</summary>
    public const ulong DefaultEfer = EferLme | EferLma;
    public const ushort DefaultCodeSelector = 0x08;
    public const ushort DefaultDataSelector = 0x10;

    /// <summary>GDT descriptor for a 64-bit ring-0 code segment (L=1, P=1, type execute/read).</summary>
    public const ulong GdtCode64 = 0x00AF_9A00_0000_FFFF;
    /// <summary>GDT descriptor for a flat ring-0 read/write data segment.</summary>
    public const ulong GdtData = 0x00CF_9200_0000_FFFF;
}

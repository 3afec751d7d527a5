// x86-64 layouts of the linux/kvm.h structures this backend exchanges with the kernel.
// Every field sits at an explicit offset; tests/Kvm/KvmLayoutTests.cs pins sizes and
// offsets against the header.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Copra.Kernel.Kvm;

/// <summary>struct kvm_regs (144 bytes): the general-purpose registers, RIP and RFLAGS.</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct KvmRegs
{
    public const int Size = 144;
    [FieldOffset(0)] public ulong Rax;
    [FieldOffset(8)] public ulong Rbx;
    [FieldOffset(16)] public ulong Rcx;
    [FieldOffset(24)] public ulong Rdx;
    [FieldOffset(32)] public ulong Rsi;
    [FieldOffset(40)] public ulong Rdi;
    [FieldOffset(48)] public ulong Rsp;
    [FieldOffset(56)] public ulong Rbp;
    [FieldOffset(64)] public ulong R8;
    [FieldOffset(72)] public ulong R9;
    [FieldOffset(80)] public ulong R10;
    [FieldOffset(88)] public ulong R11;
    [FieldOffset(96)] public ulong R12;
    [FieldOffset(104)] public ulong R13;
    [FieldOffset(112)] public ulong R14;
    [FieldOffset(120)] public ulong R15;
    [FieldOffset(128)] public ulong Rip;
    [FieldOffset(136)] public ulong Rflags;
}

/// <summary>struct kvm_segment (24 bytes): a segment register's hidden (cached) part.</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct KvmSegment
{
    public const int Size = 24;
    [FieldOffset(0)] public ulong Base;
    [FieldOffset(8)] public uint Limit;
    [FieldOffset(12)] public ushort Selector;
    /// <summary>The 4-bit descriptor type (e.g. 11 = execute/read accessed code, 3 = read/write accessed data).</summary>
    [FieldOffset(14)] public byte Type;
    [FieldOffset(15)] public byte Present;
    [FieldOffset(16)] public byte Dpl;
    /// <summary>D/B: default operation size 32 bits.</summary>
    [FieldOffset(17)] public byte Db;
    /// <summary>S: 1 for code/data, 0 for system descriptors (TSS, LDT).</summary>
    [FieldOffset(18)] public byte S;
    /// <summary>L: 64-bit code segment.</summary>
    [FieldOffset(19)] public byte L;
    /// <summary>G: limit in 4 KiB units.</summary>
    [FieldOffset(20)] public byte G;
    [FieldOffset(21)] public byte Avl;
    [FieldOffset(22)] public byte Unusable;
    [FieldOffset(23)] public byte Padding;
}

/// <summary>struct kvm_dtable (16 bytes): GDTR or IDTR.</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct KvmDtable
{
    public const int Size = 16;
    [FieldOffset(0)] public ulong Base;
    [FieldOffset(8)] public ushort Limit;
}

/// <summary>The pending-interrupt bitmap of kvm_sregs: (256 + 63) / 64 words.</summary>
[InlineArray(4)]
public struct KvmInterruptBitmap
{
    ulong _word;
}

/// <summary>struct kvm_sregs (312 bytes): segments, descriptor tables, control registers, EFER.</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct KvmSregs
{
    public const int Size = 312;
    [FieldOffset(0)] public KvmSegment Cs;
    [FieldOffset(24)] public KvmSegment Ds;
    [FieldOffset(48)] public KvmSegment Es;
    [FieldOffset(72)] public KvmSegment Fs;
    [FieldOffset(96)] public KvmSegment Gs;
    [FieldOffset(120)] public KvmSegment Ss;
    [FieldOffset(144)] public KvmSegment Tr;
    [FieldOffset(168)] public KvmSegment Ldt;
    [FieldOffset(192)] public KvmDtable Gdt;
    [FieldOffset(208)] public KvmDtable Idt;
    [FieldOffset(224)] public ulong Cr0;
    [FieldOffset(232)] public ulong Cr2;
    [FieldOffset(240)] public ulong Cr3;
    [FieldOffset(248)] public ulong Cr4;
    [FieldOffset(256)] public ulong Cr8;
    [FieldOffset(264)] public ulong Efer;
    [FieldOffset(272)] public ulong ApicBase;
    [FieldOffset(280)] public KvmInterruptBitmap InterruptBitmap;
}

/// <summary>struct kvm_userspace_memory_region (32 bytes), for KVM_SET_USER_MEMORY_REGION.</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct KvmUserspaceMemoryRegion
{
    public const int Size = 32;
    [FieldOffset(0)] public uint Slot;
    [FieldOffset(4)] public uint Flags;
    [FieldOffset(8)] public ulong GuestPhysAddr;
    /// <summary>Bytes; 0 deletes the slot.</summary>
    [FieldOffset(16)] public ulong MemorySize;
    [FieldOffset(24)] public ulong UserspaceAddr;
}

/// <summary>The fixed head of struct kvm_cpuid2 (8 bytes); <c>nent</c> entries follow it.</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct KvmCpuid2Header
{
    public const int Size = 8;
    [FieldOffset(0)] public uint Nent;
    [FieldOffset(4)] public uint Padding;
}

/// <summary>struct kvm_cpuid_entry2 (40 bytes): one CPUID leaf/subleaf.</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct KvmCpuidEntry2
{
    public const int Size = 40;
    [FieldOffset(0)] public uint Function;
    [FieldOffset(4)] public uint Index;
    [FieldOffset(8)] public uint Flags;
    [FieldOffset(12)] public uint Eax;
    [FieldOffset(16)] public uint Ebx;
    [FieldOffset(20)] public uint Ecx;
    [FieldOffset(24)] public uint Edx;
    [FieldOffset(28)] public uint Padding0;
    [FieldOffset(32)] public uint Padding1;
    [FieldOffset(36)] public uint Padding2;
}

/// <summary>struct kvm_vcpu_events (64 bytes), carried opaquely in the sync-regs area.</summary>
[InlineArray(Size)]
public struct KvmVcpuEvents
{
    public const int Size = 64;
    byte _b;
}

/// <summary>struct kvm_sync_regs (520 bytes) on x86: the registers KVM copies into kvm_run on every exit
/// for the classes named in kvm_valid_regs, and loads at entry for those named in kvm_dirty_regs.</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct KvmSyncRegs
{
    public const int Size = 520;
    [FieldOffset(0)] public KvmRegs Regs;
    [FieldOffset(144)] public KvmSregs Sregs;
    [FieldOffset(456)] public KvmVcpuEvents Events;
}

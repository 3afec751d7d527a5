// struct kvm_run on x86-64: the page (KVM_GET_VCPU_MMAP_SIZE bytes; kvm_run is its first
// 2352) that KVM shares with user space per vCPU. The exit union is 256 bytes at offset
// 32; the sync-regs union is 2048 bytes (SYNC_REGS_SIZE_BYTES) at offset 304. I/O data
// for KVM_EXIT_IO lives elsewhere in the mapping, at io.data_offset from its start.
//
//   0    request_interrupt_window u8, immediate_exit u8, padding1[6]
//   8    exit_reason u32, ready_for_interrupt_injection u8, if_flag u8, flags u16
//   16   cr8 u64
//   24   apic_base u64
//   32   union { hw, fail_entry, ex, io, mmio, internal, system_event, ... ; padding[256] }
//   288  kvm_valid_regs u64
//   296  kvm_dirty_regs u64
//   304  union { kvm_sync_regs (520), padding[2048] } s
//   2352 (end)
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Copra.Kernel.Kvm;

/// <summary>struct kvm_run, as far as x86 user space without an in-kernel irqchip reads it.</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct KvmRun
{
    public const int Size = 2352;
    public const int ExitUnionOffset = 32;
    public const int ExitUnionSize = 256;
    public const int SyncRegsOffset = ExitUnionOffset + ExitUnionSize + 16;
    public const int SyncRegsSize = 2048;

    [FieldOffset(0)] public byte RequestInterruptWindow;
    [FieldOffset(1)] public byte ImmediateExit;
    [FieldOffset(8)] public uint ExitReason;
    [FieldOffset(12)] public byte ReadyForInterruptInjection;
    [FieldOffset(13)] public byte IfFlag;
    [FieldOffset(14)] public ushort Flags;
    [FieldOffset(16)] public ulong Cr8;
    [FieldOffset(24)] public ulong ApicBase;

    [FieldOffset(ExitUnionOffset)] public KvmRunHw Hw;
    [FieldOffset(ExitUnionOffset)] public KvmRunFailEntry FailEntry;
    [FieldOffset(ExitUnionOffset)] public KvmRunException Ex;
    [FieldOffset(ExitUnionOffset)] public KvmRunIo Io;
    [FieldOffset(ExitUnionOffset)] public KvmRunMmio Mmio;
    [FieldOffset(ExitUnionOffset)] public KvmRunInternal Internal;
    [FieldOffset(ExitUnionOffset)] public KvmRunSystemEvent SystemEvent;

    [FieldOffset(ExitUnionOffset + ExitUnionSize)] public ulong KvmValidRegs;
    [FieldOffset(ExitUnionOffset + ExitUnionSize + 8)] public ulong KvmDirtyRegs;
    [FieldOffset(SyncRegsOffset)] public KvmSyncRegs S;
}

/// <summary>kvm_run.hw (KVM_EXIT_UNKNOWN).</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct KvmRunHw
{
    [FieldOffset(0)] public ulong HardwareExitReason;
}

/// <summary>kvm_run.fail_entry (KVM_EXIT_FAIL_ENTRY).</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct KvmRunFailEntry
{
    [FieldOffset(0)] public ulong HardwareEntryFailureReason;
    [FieldOffset(8)] public uint Cpu;
}

/// <summary>kvm_run.ex (KVM_EXIT_EXCEPTION).</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct KvmRunException
{
    [FieldOffset(0)] public uint Exception;
    [FieldOffset(4)] public uint ErrorCode;
}

/// <summary>kvm_run.io (KVM_EXIT_IO). Data: <c>Size * Count</c> bytes at <c>DataOffset</c> from the start of kvm_run.</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct KvmRunIo
{
    public const byte In = 0;
    public const byte Out = 1;
    [FieldOffset(0)] public byte Direction;
    [FieldOffset(1)] public byte Size;
    [FieldOffset(2)] public ushort Port;
    [FieldOffset(4)] public uint Count;
    [FieldOffset(8)] public ulong DataOffset;
}

/// <summary>The eight data bytes of kvm_run.mmio.</summary>
[InlineArray(8)]
public struct KvmMmioData
{
    byte _b;
}

/// <summary>kvm_run.mmio (KVM_EXIT_MMIO).</summary>
[StructLayout(LayoutKind.Explicit, Size = 24)]
public struct KvmRunMmio
{
    [FieldOffset(0)] public ulong PhysAddr;
    [FieldOffset(8)] public KvmMmioData Data;
    [FieldOffset(16)] public uint Len;
    [FieldOffset(20)] public byte IsWrite;
}

/// <summary>Sixteen u64 words of extra exit data.</summary>
[InlineArray(16)]
public struct KvmExitData16
{
    ulong _w;
}

/// <summary>kvm_run.internal (KVM_EXIT_INTERNAL_ERROR).</summary>
[StructLayout(LayoutKind.Explicit, Size = 136)]
public struct KvmRunInternal
{
    public const uint SuberrorEmulation = 1;
    public const uint SuberrorSimulEx = 2;
    public const uint SuberrorDeliveryEv = 3;
    public const uint SuberrorUnexpectedExitReason = 4;
    [FieldOffset(0)] public uint Suberror;
    [FieldOffset(4)] public uint Ndata;
    [FieldOffset(8)] public KvmExitData16 Data;
}

/// <summary>kvm_run.system_event (KVM_EXIT_SYSTEM_EVENT).</summary>
[StructLayout(LayoutKind.Explicit, Size = 136)]
public struct KvmRunSystemEvent
{
    [FieldOffset(0)] public uint Type;
    [FieldOffset(4)] public uint Ndata;
    [FieldOffset(8)] public KvmExitData16 Data;
}

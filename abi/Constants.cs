namespace Copra.Abi;

/// <summary>Platform type in bits 2:0 of CAPABILITIES index 2.</summary>
public enum PlatformType : ulong { Native = 0, Snp = 1, Tdp = 2 }

/// <summary>Indices for CAPABILITIES.</summary>
public static class Cap
{
    public const ulong Count = 0;
    public const ulong VmBitmap = 1;
    public const ulong Features = 2;
    public const ulong PlatformMask = 0b111;
}

/// <summary>Indices for VM_CAPABILITIES: index 0 counts the indices after it; memory range i is at <c>RangeBase(i)</c> and <c>RangeLength(i)</c>.</summary>
public static class VmCap
{
    public const ulong Count = 0;
    public const ulong VcpuCount = 1;
    public const ulong RangeCount = 2;
    public static ulong RangeBase(ulong i) => 3 + 2 * i;
    public static ulong RangeLength(ulong i) => 4 + 2 * i;
}

/// <summary>VM_CONTROL operations.</summary>
public static class VmCtl
{
    /// <summary>What happens to an MMIO/IOIO exit nobody registered: value 0 forward to host (default), 1 re-inject #VC/#VE.</summary>
    public const ulong Unhandled = 0;
    /// <summary>Stop the VM: every vCPU leaves the guest with <see cref="RunExit.Stopped"/>.</summary>
    public const ulong Stop = 1;

    public const ulong UnhandledForward = 0;
    public const ulong UnhandledReinject = 1;
}

/// <summary>OPEN mode bits and flags (COCONUT's).</summary>
public static class OpenMode
{
    public const ulong Read = 1, Write = 2, Append = 4, Trunc = 8, All = 15;
    public const ulong FlagCreate = 1;
    public const int PathMax = 4096;
}

public static class SeekWhence { public const ulong Set = 0, Current = 1, End = 2; }

/// <summary>MMAP flags.</summary>
public static class MapFlags { public const ulong Write = 1; }

/// <summary>SET_MEM_STATE states.</summary>
public static class MemState { public const ulong Private = 0, Shared = 1; }

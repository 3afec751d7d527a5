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

/// <summary>MMAP flags, bit for bit PR #945's <c>MMFlags</c> (syscall/src/def.rs on branch mmap).</summary>
public static class MapFlags
{
    public const ulong Read = 1, Write = 2, Exec = 4, Private = 8, Anonymous = 16, Fixed = 32;
    public const ulong All = Read | Write | Exec | Private | Anonymous | Fixed;
    /// <summary>The handle value that asks for anonymous memory (as PR #945's user wrapper passes for "no handle").</summary>
    public const uint AnonymousHandle = 0;
}

/// <summary>
/// EXEC flags in R8. Upstream reads R8 as a u32 and ignores it; Copra's extension lives above bit 31, where an
/// upstream caller (whose wrapper takes a u32) can never set anything.
/// </summary>
public static class ExecFlags
{
    /// <summary>R9 = user pointer to a u32 handle list, R10 = its count: the handles move into the child at 1..n.</summary>
    public const ulong PassHandles = 1UL << 32;
    /// <summary>Bits Copra defines above bit 31; any other bit there is EINVAL (bits 31:0 are ignored, as upstream does).</summary>
    public const ulong CopraBits = PassHandles;
    public const ulong UpstreamBits = 0xFFFF_FFFFUL;
    /// <summary>At most this many handles move with one EXEC.</summary>
    public const int MaxHandles = 64;
}

/// <summary>SET_MEM_STATE states.</summary>
public static class MemState { public const ulong Private = 0, Shared = 1; }

using System.Runtime.InteropServices;

namespace Copra.Hot.Exit;

public enum ExitReason : byte
{
    None = 0,
    /// <summary>Nested page fault on an address with no memory behind it (SNP NPF / TDX EPT violation).</summary>
    Mmio,
    /// <summary>IN/OUT/INS/OUTS.</summary>
    Io,
    Hlt,
    Cpuid,
    MsrRead,
    MsrWrite,
    /// <summary>Triple fault or unusable state.</summary>
    Shutdown,
}

[Flags]
public enum ExitFlags : byte
{
    None = 0,
    Write = 1,
    String = 2,
    Rep = 4,
    /// <summary>The hardware backend (KVM) finishes the instruction itself once given the data; the kernel must not write back.</summary>
    HardwareCompletes = 8,
}

/// <summary>
/// One exit as the CPU reports it, the element of each CPU's exit ring (32 bytes, unmanaged).
/// For MMIO the hardware gives the GPA (and, on KVM, length and write data); for I/O the port,
/// size and direction. The kernel decodes the instruction itself and checks its decode against this.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 8)]
public struct ExitRecord
{
    public ulong Gpa;          // MMIO: guest-physical address
    public ulong Data;         // write data when the hardware reports it (KVM), else 0
    public int Vcpu;           // global vCPU index
    public ushort Port;        // I/O
    public ExitReason Reason;
    public ExitFlags Flags;
    public byte Size;          // bytes, when the hardware reports it (0 = unknown)
    public byte InstructionLength; // when the hardware reports it (0 = unknown)
    public ushort Reserved;
    public uint MsrIndex;      // MSR exits (RCX)
    public uint Pad;

    public readonly bool IsWrite => (Flags & ExitFlags.Write) != 0;
}

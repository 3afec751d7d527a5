namespace Copra.Kernel.Kvm;

/// <summary>
/// Why KVM_RUN returned, copied out of kvm_run so it can be stored or queued. Which fields mean
/// something depends on <see cref="Reason"/>:
/// <list type="bullet">
/// <item><b>Io</b>: <see cref="Port"/>, <see cref="Size"/> (bytes per element), <see cref="IsWrite"/> (OUT),
/// <see cref="Count"/> (elements, &gt;1 for REP INS/OUTS), <see cref="Data"/> (the first OUT element);
/// all elements are in <see cref="KvmVcpu.IoData"/>.</item>
/// <item><b>Mmio</b>: <see cref="Gpa"/>, <see cref="Size"/> (1..8), <see cref="IsWrite"/>, <see cref="Data"/> (the
/// written bytes, little-endian).</item>
/// <item><b>InternalError</b>: <see cref="Suberror"/>. <b>FailEntry</b>: <see cref="HardwareReason"/>,
/// <see cref="Cpu"/>. <b>Unknown</b>: <see cref="HardwareReason"/>. <b>SystemEvent</b>: <see cref="Suberror"/> is the type.</item>
/// <item><b>Hlt</b>, <b>Shutdown</b>, <b>IrqWindowOpen</b>: nothing more.</item>
/// </list>
/// </summary>
public readonly record struct KvmExit
{
    public KvmExitReason Reason { get; init; }
    /// <summary>MMIO: the guest-physical address. IO: the port.</summary>
    public ulong Address { get; init; }
    public uint Size { get; init; }
    public uint Count { get; init; }
    public bool IsWrite { get; init; }
    public ulong Data { get; init; }
    public uint Suberror { get; init; }
    public ulong HardwareReason { get; init; }
    public uint Cpu { get; init; }

    /// <summary>The I/O port (Io exits).</summary>
    public ushort Port => (ushort)Address;

    /// <summary>The guest-physical address (Mmio exits).</summary>
    public ulong Gpa => Address;

    public override string ToString() => Reason switch
    {
        KvmExitReason.Io => $"Io {(IsWrite ? "out" : "in")} port 0x{Port:X} size {Size} count {Count}" + (IsWrite ? $" data 0x{Data:X}" : ""),
        KvmExitReason.Mmio => $"Mmio {(IsWrite ? "write" : "read")} gpa 0x{Gpa:X} len {Size}" + (IsWrite ? $" data 0x{Data:X}" : ""),
        KvmExitReason.InternalError => $"InternalError suberror {Suberror}",
        KvmExitReason.FailEntry => $"FailEntry reason 0x{HardwareReason:X} cpu {Cpu}",
        KvmExitReason.Unknown => $"Unknown hardware reason 0x{HardwareReason:X}",
        _ => Reason.ToString(),
    };
}

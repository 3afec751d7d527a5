using Copra.Abi;

namespace Copra.Kernel.Machine;

/// <summary>
/// A platform's modelled costs, in cycles. Nothing here is measured: these are published figures
/// (sources in PERF.md, "Cost model") turned into cycles at <see cref="Ghz"/>, and every one can be
/// overridden (command line, scenario). Measured cycles (the kernel's own code) are kept apart.
/// </summary>
public sealed record CostModel
{
    public required string Name { get; init; }
    /// <summary>Clock used to turn published microseconds into cycles.</summary>
    public double Ghz { get; init; } = 2.6;
    /// <summary>Guest exit plus re-entry that the kernel handles (SNP: #VC handled in the guest ~1,750).</summary>
    public long ExitCycles { get; init; }
    /// <summary>One TDCALL-class call: TDG.VP.RD / TDG.VP.WR (TDX only; no published figure: a sweep parameter).</summary>
    public long TdcallCycles { get; init; }
    /// <summary>Forwarding an exit to the host: VMGEXIT round trip (SNP) or TDG.VP.VMCALL (TDX).</summary>
    public long ForwardCycles { get; init; }
    /// <summary>User/kernel round trip (syscall entry and return).</summary>
    public long SyscallCycles { get; init; }
    /// <summary>Waking a thread on another CPU (cache-line hand-off; no IPI: CPUs poll their inboxes).</summary>
    public long CrossCpuWakeCycles { get; init; }
    /// <summary>One access to a VMSA field (SNP: a load or store in memory).</summary>
    public long FieldMemoryCycles { get; init; }

    public PlatformType Platform { get; init; }

    public static CostModel Snp => new()
    {
        Name = "snp", Platform = PlatformType.Snp,
        ExitCycles = 1_750, TdcallCycles = 0, ForwardCycles = 9_360, SyscallCycles = 440,
        CrossCpuWakeCycles = 150, FieldMemoryCycles = 13,
    };

    public static CostModel Tdx => new()
    {
        Name = "tdx", Platform = PlatformType.Tdp,
        ExitCycles = 2 * 2_080, TdcallCycles = 2_080, ForwardCycles = 9_360, SyscallCycles = 440,
        CrossCpuWakeCycles = 150, FieldMemoryCycles = 0,
    };

    public static CostModel Native => new()
    {
        Name = "native", Platform = PlatformType.Native,
        ExitCycles = 1_100, TdcallCycles = 0, ForwardCycles = 1_100, SyscallCycles = 440,
        CrossCpuWakeCycles = 150, FieldMemoryCycles = 0,
    };

    public static CostModel For(PlatformType p) => p switch
    {
        PlatformType.Snp => Snp, PlatformType.Tdp => Tdx, _ => Native,
    };

    public static CostModel Parse(string name) => name switch
    {
        "snp" => Snp, "tdx" or "tdp" => Tdx, "native" => Native,
        _ => throw new ArgumentException($"unknown platform '{name}' (snp, tdx, native)"),
    };
}

namespace Copra.Kernel.Run;

/// <summary>
/// What <c>--faults SPEC</c> injects. SPEC is <c>all</c> or a comma list of
/// <c>device-crash</c>, <c>device-silence</c>, <c>host-fail[=rate]</c>, <c>hostile-pt</c>,
/// <c>undecodable</c>, <c>rogue[=calls]</c>.
/// </summary>
public sealed record FaultSpec
{
    /// <summary>The test device crashes (throws, access unanswered) at this access; 0 = off.</summary>
    public long DeviceCrashAt { get; init; }
    /// <summary>The UART stops answering from this access on; 0 = off.</summary>
    public long DeviceSilentFrom { get; init; }
    /// <summary>Share of host forwards that fail.</summary>
    public double HostFailRate { get; init; }
    /// <summary>A page of vCPU code is made not-present in the guest's page tables at boot.</summary>
    public bool HostilePageTables { get; init; }
    /// <summary>An exiting instruction's bytes are replaced with UD2 at boot.</summary>
    public bool Undecodable { get; init; }
    /// <summary>Garbage syscalls from a rogue process; 0 = none.</summary>
    public int RogueCalls { get; init; }

    public bool Any => DeviceCrashAt > 0 || DeviceSilentFrom > 0 || HostFailRate > 0 || HostilePageTables || Undecodable || RogueCalls > 0;

    public static FaultSpec Parse(string spec)
    {
        var f = new FaultSpec();
        foreach (var raw in spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = raw.Split('=', 2);
            string name = parts[0];
            string? value = parts.Length > 1 ? parts[1] : null;
            f = name switch
            {
                "all" => f with { DeviceCrashAt = 120, DeviceSilentFrom = 400, HostFailRate = 0.5, HostilePageTables = true, Undecodable = true, RogueCalls = 5000 },
                "device-crash" => f with { DeviceCrashAt = value is null ? 120 : Whole(name, value, 1, long.MaxValue) },
                "device-silence" => f with { DeviceSilentFrom = value is null ? 400 : Whole(name, value, 1, long.MaxValue) },
                "host-fail" => f with { HostFailRate = value is null ? 0.5 : Rate(name, value) },
                "hostile-pt" => f with { HostilePageTables = true },
                "undecodable" => f with { Undecodable = true },
                "rogue" => f with { RogueCalls = value is null ? 5000 : (int)Whole(name, value, 1, 1_000_000) },
                _ => throw new CliException($"unknown fault '{name}' (all, device-crash, device-silence, host-fail, hostile-pt, undecodable, rogue)"),
            };
        }
        if (f.HostFailRate is < 0 or > 1) throw new CliException("host-fail rate is 0..1");
        return f;
    }

    static long Whole(string fault, string v, long min, long max) =>
        long.TryParse(v, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long n) && n >= min && n <= max
            ? n : throw new CliException($"fault {fault}={v}: the value must be an integer in {min}..{max}");

    static double Rate(string fault, string v) =>
        double.TryParse(v, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double x) && x is >= 0 and <= 1
            ? x : throw new CliException($"fault {fault}={v}: the rate must be a number in 0..1");
}

/// <summary>One line of the fault report: what was injected and what the system did about it.</summary>
public sealed record FaultOutcome(string Fault, long Injected, string Outcome, bool Contained);

using System.Text.Json;
using Copra.Abi;
using Copra.Kernel.Backends;

namespace Copra.Kernel.Run;

public sealed record VmScenario(int Vcpus = 2, int MemoryMb = 8, ulong Uart = 0x3F8, ulong TestDevice = 0xFEB0_0000, ulong IrqVector = 0x40);

/// <summary>
/// A run of the system: platform, CPUs, VMs and their devices, and the workload. The default
/// scenario is an embedded JSON file of this shape; <c>--scenario FILE</c> reads another.
/// Parsed by hand with <see cref="JsonDocument"/> (no reflection, so NativeAOT keeps it).
/// </summary>
public sealed record Scenario
{
    public string Platform { get; init; } = "snp";
    public int Cpus { get; init; } = 2;
    public ulong Seed { get; init; } = 1;
    public string Driver { get; init; } = "deterministic";
    public string Unhandled { get; init; } = "forward";
    public string Backend { get; init; } = "replay";
    public IReadOnlyList<VmScenario> Vms { get; init; } = [new()];
    public WorkloadSpec Workload { get; init; } = new();
    /// <summary>Cost-model overrides, in cycles: exit, tdcall, forward, syscall, wake.</summary>
    public IReadOnlyDictionary<string, long> Costs { get; init; } = new Dictionary<string, long>();
    /// <summary>The VMM's per-exit state traffic ("vmm": {"state_fields": n, "batch": k}); 0 fields = none. See <c>copra tune</c>.</summary>
    public int VmmStateFields { get; init; }
    public int VmmBatch { get; init; } = 1;

    public static Scenario Default()
    {
        using var s = typeof(Scenario).Assembly.GetManifestResourceStream("scenario.default.json")
            ?? throw new InvalidOperationException("default scenario missing from the binary");
        using var r = new StreamReader(s);
        return Parse(r.ReadToEnd());
    }

    public static Scenario Parse(string json)
    {
        using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        var root = doc.RootElement;
        var sc = new Scenario();
        if (root.TryGetProperty("platform", out var p)) sc = sc with { Platform = p.GetString()! };
        if (root.TryGetProperty("cpus", out p)) sc = sc with { Cpus = p.GetInt32() };
        if (root.TryGetProperty("seed", out p)) sc = sc with { Seed = p.GetUInt64() };
        if (root.TryGetProperty("driver", out p)) sc = sc with { Driver = p.GetString()! };
        if (root.TryGetProperty("unhandled", out p)) sc = sc with { Unhandled = p.GetString()! };
        if (root.TryGetProperty("backend", out p)) sc = sc with { Backend = p.GetString()! };
        if (root.TryGetProperty("vms", out p))
            sc = sc with
            {
                Vms = p.EnumerateArray().Select(v => new VmScenario(
                    v.TryGetProperty("vcpus", out var x) ? x.GetInt32() : 2,
                    v.TryGetProperty("memory_mb", out x) ? x.GetInt32() : 8,
                    v.TryGetProperty("uart", out x) ? Num(x) : 0x3F8,
                    v.TryGetProperty("testdev", out x) ? Num(x) : 0xFEB0_0000,
                    v.TryGetProperty("irq", out x) ? Num(x) : 0x40)).ToList(),
            };
        if (root.TryGetProperty("workload", out p))
        {
            var w = new WorkloadSpec();
            if (p.TryGetProperty("greeting", out var x)) w = w with { Greeting = x.GetString()! };
            if (p.TryGetProperty("device_driver", out x)) w = w with { DeviceDriver = x.GetBoolean() };
            if (p.TryGetProperty("unregistered", out x)) w = w with { Unregistered = x.GetBoolean() };
            if (p.TryGetProperty("mix", out x)) w = w with { Mix = x.EnumerateArray().Select(e => e.GetString()!).ToList() };
            if (p.TryGetProperty("pattern", out x)) w = w with { Pattern = x.GetString()! };
            if (p.TryGetProperty("iterations", out x)) w = w with { Iterations = x.GetInt64() };
            sc = sc with { Workload = w };
        }
        if (root.TryGetProperty("vmm", out p))
        {
            if (p.TryGetProperty("state_fields", out var x)) sc = sc with { VmmStateFields = x.GetInt32() };
            if (p.TryGetProperty("batch", out x)) sc = sc with { VmmBatch = x.GetInt32() };
        }
        if (root.TryGetProperty("costs", out p))
            sc = sc with { Costs = p.EnumerateObject().ToDictionary(o => o.Name, o => o.Value.GetInt64()) };
        sc.Validate();
        return sc;
    }

    static ulong Num(JsonElement e) => e.ValueKind == JsonValueKind.String
        ? (e.GetString()!.StartsWith("0x") ? Convert.ToUInt64(e.GetString()![2..], 16) : ulong.Parse(e.GetString()!))
        : e.GetUInt64();

    public void Validate()
    {
        if (Cpus is < 1 or > 64) throw new CliException("cpus must be 1..64");
        if (Vms.Count is < 1 or > 3) throw new CliException("1..3 VMs (SNP has VMPL1..3)");
        foreach (var v in Vms)
        {
            if (v.Vcpus is < 1 or > 64) throw new CliException("vcpus must be 1..64");
            if (v.MemoryMb < 4 || v.MemoryMb % 2 != 0 || v.MemoryMb > 1024) throw new CliException("memory_mb must be even, 4..1024");
        }
        if (Unhandled is not ("forward" or "reinject")) throw new CliException("unhandled is forward or reinject");
        if (Driver is not ("deterministic" or "parallel")) throw new CliException("driver is deterministic or parallel");
        if (Workload.Pattern is not ("sequential" or "random")) throw new CliException("pattern is sequential or random");
        if (VmmStateFields < 0 || VmmStateFields > User.Programs.StateWork.Fields.Length) throw new CliException($"vmm.state_fields must be 0..{User.Programs.StateWork.Fields.Length}");
        if (VmmBatch is < 1 or > Core.Kernel.MaxBatch) throw new CliException($"vmm.batch must be 1..{Core.Kernel.MaxBatch}");
        _ = Machine.CostModel.Parse(Platform);
    }

    public PlatformType PlatformType => Machine.CostModel.Parse(Platform).Platform;
}

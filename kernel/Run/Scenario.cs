using System.Text.Json;
using System.Text.Json.Serialization;
using Copra.Abi;
using Copra.Kernel.Backends;

namespace Copra.Kernel.Run;

public sealed record VmScenario(int Vcpus = 2, int MemoryMb = 8, ulong Uart = 0x3F8, ulong TestDevice = 0xFEB0_0000, ulong IrqVector = 0x40);

/// <summary>
/// A run of the system: platform, CPUs, VMs and their devices, and the workload. The default scenario is an
/// embedded JSON file of this shape; <c>--scenario FILE</c> reads another (docs/scenario.md lists every key).
/// Read with System.Text.Json source generation (no reflection, so NativeAOT keeps it) with unknown members
/// disallowed; every mistake is one <see cref="CliException"/> naming the file, the JSON path and what was expected.
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
    /// <summary>Exits timed: one in this many (a power of two; 1 times every exit). See <see cref="Hot.Exit.ExitStats.TimeThis"/>.</summary>
    public int TimeEvery { get; init; } = Hot.Exit.ExitStats.DefaultTimeEvery;

    /// <summary>The loop-body entries a workload mix may name.</summary>
    public static readonly string[] MixKinds = ["read", "write", "write_imm", "read_zx", "read_sx", "alu", "port_out", "port_in", "movs", "stos", "cpuid", "lock_xadd", "push_pop"];

    /// <summary>Every key a scenario file may have: JSON path ([] = each element), type and range, default, meaning. docs/scenario.md lists the same (a test checks).</summary>
    public static readonly IReadOnlyList<(string Path, string Type, string Default, string Meaning)> Keys =
    [
        ("platform", "string: snp, tdx or native", "snp", "platform cost model (SEV-SNP VMPL0, TDX L1, or no confidential-computing costs)"),
        ("cpus", "integer 1..64", "2", "simulated CPUs the kernel schedules on"),
        ("seed", "integer 0..2^64-1", "1", "seed of the deterministic driver and of the random access pattern"),
        ("driver", "string: deterministic or parallel", "deterministic", "one host thread (reproducible trace hash) or one host thread per CPU"),
        ("unhandled", "string: forward or reinject", "forward", "an access no device model owns: forwarded to the VMM, or #GP re-injected"),
        ("backend", "string: replay or kvm", "replay", "modelled guests, or real guests under KVM (needs /dev/kvm)"),
        ("vms", "array of 1..3 VM objects", "one VM with the defaults below", "the guest VMs (SNP has VMPL1..3)"),
        ("vms[].vcpus", "integer 1..64", "2", "vCPUs of this VM (one VMM thread each)"),
        ("vms[].memory_mb", "even integer 4..1024", "8", "guest memory in MiB"),
        ("vms[].uart", "port 0..0xfff8: integer or \"0x..\" string", "0x3f8", "base port of the 16550 UART model (8 ports)"),
        ("vms[].testdev", "page-aligned address: integer or \"0x..\" string", "0xfeb00000", "MMIO base of the test device (two 4 KiB pages)"),
        ("vms[].irq", "vector 32..255: integer or \"0x..\" string", "0x40", "interrupt vector the test device raises"),
        ("workload", "object", "see below", "what each replay guest does"),
        ("workload.greeting", "string", "\"Hello from the Copra guest!\\n\"", "text vCPU 0 prints through the UART first"),
        ("workload.device_driver", "boolean", "true", "run the test-device driver sequence (ID, scratch, MOVZX/MOVSX, REP MOVS, ALU, doorbell and IRQ)"),
        ("workload.unregistered", "boolean", "true", "touch a port and an MMIO address nobody registered"),
        ("workload.mix", $"array of: {string.Join(", ", MixKinds)}", "[\"read\", \"write\", \"write_imm\", \"read_zx\", \"port_out\"]", "the loop body, one exiting access per entry"),
        ("workload.pattern", "string: sequential or random", "sequential", "offsets into the device's data window"),
        ("workload.iterations", "integer 1..100000000", "64", "loop iterations per vCPU"),
        ("vmm", "object", "no state traffic", "the VMM's per-exit vCPU-state traffic (see copra tune)"),
        ("vmm.state_fields", "integer 0..16", "0", "state fields the VMM reads per exit (every fourth is written back)"),
        ("vmm.batch", $"integer 1..{Core.Kernel.MaxBatch}", "1", "state calls submitted per BATCH syscall"),
        ("time_every", "power of two 1..65536", "16", "exits timed with the TSC: one in this many, picked at random per CPU (1: every exit); the rest are counted"),
        ("costs", "object", "the platform's", "cost-model overrides in cycles"),
        ("costs.exit", "integer 0..10^9", "the platform's", "cycles of one exit and re-entry"),
        ("costs.tdcall", "integer 0..10^9", "the platform's", "cycles of one TDCALL (TDX)"),
        ("costs.forward", "integer 0..10^9", "the platform's", "cycles to forward an exit to the host"),
        ("costs.syscall", "integer 0..10^9", "the platform's", "cycles of one user/kernel transition"),
        ("costs.wake", "integer 0..10^9", "the platform's", "cycles of a cross-CPU wake (IPI)"),
    ];

    public static Scenario Default()
    {
        using var s = typeof(Scenario).Assembly.GetManifestResourceStream("scenario.default.json")
            ?? throw new InvalidOperationException("default scenario missing from the binary");
        using var r = new StreamReader(s);
        return Parse(r.ReadToEnd(), "built-in scenario");
    }

    /// <summary>The scenario in <paramref name="path"/>, or the default for null.</summary>
    public static Scenario Load(string? path)
    {
        if (path is null) return Default();
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"{path}: cannot read the scenario: {e.Message}");
        }
        return Parse(text, path);
    }

    /// <summary>Parses a scenario; every mistake is a <see cref="CliException"/> starting with <paramref name="source"/> and the JSON path.</summary>
    public static Scenario Parse(string json, string source = "scenario")
    {
        var options = new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };
        try
        {
            using var doc = JsonDocument.Parse(json, options);
            CheckKeys(doc.RootElement, "", "$", source);
        }
        catch (JsonException e)
        {
            throw new CliException($"{source}: line {e.LineNumber + 1}: malformed JSON: {FirstSentence(e.Message)}");
        }
        ScenarioDoc d;
        try
        {
            d = JsonSerializer.Deserialize(json, ScenarioJson.Default.ScenarioDoc)
                ?? throw new CliException($"{source}: the scenario is null; expected an object");
        }
        catch (JsonException e)
        {
            string path = e.Path ?? "$";
            throw new CliException($"{source}: {path} (line {e.LineNumber + 1}): expected {Expected(path)}");
        }
        try
        {
            var sc = FromDoc(d);
            // Rigs built in code may loop "forever"; a file may not.
            if (sc.Workload.Iterations > 100_000_000) throw new CliException($"$.workload.iterations: {sc.Workload.Iterations} is out of range 1..100000000");
            sc.Validate();
            return sc;
        }
        catch (CliException e) { throw new CliException($"{source}: {e.Message}"); }
    }

    static string FirstSentence(string m)
    {
        int cut = m.IndexOf(" Path:", StringComparison.Ordinal);
        if (cut < 0) cut = m.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return (cut > 0 ? m[..cut] : m).Trim().TrimEnd('.');
    }

    /// <summary>Known keys under <paramref name="prefix"/> ("", "vms[]", "workload", ...).</summary>
    static IEnumerable<string> KnownUnder(string prefix) =>
        Keys.Select(k => k.Path)
            .Where(p => prefix.Length == 0 ? !p.Contains('.') : p.StartsWith(prefix + ".", StringComparison.Ordinal))
            .Select(p => prefix.Length == 0 ? p : p[(prefix.Length + 1)..])
            .Where(p => !p.Contains('.'));

    static void CheckKeys(JsonElement e, string prefix, string jsonPath, string source)
    {
        if (e.ValueKind == JsonValueKind.Array)
        {
            int i = 0;
            foreach (var item in e.EnumerateArray()) CheckKeys(item, prefix + "[]", $"{jsonPath}[{i++}]", source);
            return;
        }
        if (e.ValueKind != JsonValueKind.Object) return;
        var known = KnownUnder(prefix).ToList();
        if (prefix.Length > 0 && known.Count == 0) return;   // a leaf given an object: the typed read names it
        foreach (var p in e.EnumerateObject())
        {
            string name = p.Name;
            if (!known.Contains(name))
            {
                string hint = Suggest.Nearest(name, known) is { } near ? $"; did you mean '{near}'?" : $" (known here: {string.Join(", ", known)})";
                throw new CliException($"{source}: {jsonPath}.{name}: unknown key{hint}");
            }
            CheckKeys(p.Value, prefix.Length == 0 ? name : $"{prefix}.{name}", $"{jsonPath}.{name}", source);
        }
    }

    /// <summary>What the key at a JSON path ("$.vms[0].uart") takes.</summary>
    static string Expected(string jsonPath)
    {
        string key = System.Text.RegularExpressions.Regex.Replace(jsonPath.TrimStart('$').TrimStart('.'), @"\[\d+\]", "[]");
        if (key.EndsWith("[]", StringComparison.Ordinal) && key.StartsWith("workload.mix", StringComparison.Ordinal)) key = "workload.mix";
        foreach (var k in Keys) if (k.Path == key) return k.Type;
        return key.Length == 0 ? "a JSON object" : "a value of the documented type (docs/scenario.md)";
    }

    static Scenario FromDoc(ScenarioDoc d)
    {
        var sc = new Scenario();
        if (d.Platform is { } p) sc = sc with { Platform = p };
        if (d.Cpus is { } c) sc = sc with { Cpus = c };
        if (d.Seed is { } s) sc = sc with { Seed = s };
        if (d.Driver is { } dr) sc = sc with { Driver = dr };
        if (d.Unhandled is { } u) sc = sc with { Unhandled = u };
        if (d.Backend is { } b) sc = sc with { Backend = b };
        if (d.Vms is { } vms)
        {
            var def = new VmScenario();
            sc = sc with
            {
                Vms = vms.Select(v => v is null ? def : new VmScenario(v.Vcpus ?? def.Vcpus, v.MemoryMb ?? def.MemoryMb, v.Uart ?? def.Uart,
                    v.TestDevice ?? def.TestDevice, v.Irq ?? def.IrqVector)).ToList(),
            };
        }
        if (d.Workload is { } w)
        {
            var spec = new WorkloadSpec();
            if (w.Greeting is { } g) spec = spec with { Greeting = g };
            if (w.DeviceDriver is { } dd) spec = spec with { DeviceDriver = dd };
            if (w.Unregistered is { } un) spec = spec with { Unregistered = un };
            if (w.Mix is { } mix) spec = spec with { Mix = mix.Select(x => x ?? "").ToList() };
            if (w.Pattern is { } pat) spec = spec with { Pattern = pat };
            if (w.Iterations is { } it) spec = spec with { Iterations = it };
            sc = sc with { Workload = spec };
        }
        if (d.Vmm is { } vmm)
        {
            if (vmm.StateFields is { } f) sc = sc with { VmmStateFields = f };
            if (vmm.Batch is { } bt) sc = sc with { VmmBatch = bt };
        }
        if (d.TimeEvery is { } te) sc = sc with { TimeEvery = te };
        if (d.Costs is { } costs)
        {
            var map = new Dictionary<string, long>();
            if (costs.Exit is { } x) map["exit"] = x;
            if (costs.Tdcall is { } t) map["tdcall"] = t;
            if (costs.Forward is { } fw) map["forward"] = fw;
            if (costs.Syscall is { } sy) map["syscall"] = sy;
            if (costs.Wake is { } wk) map["wake"] = wk;
            sc = sc with { Costs = map };
        }
        return sc;
    }

    /// <summary>Range checks, each naming the key's JSON path and the range.</summary>
    public void Validate()
    {
        if (Platform is not ("snp" or "tdx" or "tdp" or "native")) throw new CliException($"$.platform: '{Platform}' is not one of snp, tdx, native");
        if (Cpus is < 1 or > 64) throw new CliException($"$.cpus: {Cpus} is out of range 1..64");
        if (Vms.Count is < 1 or > 3) throw new CliException($"$.vms: {Vms.Count} VMs; 1..3 are allowed (SNP has VMPL1..3)");
        for (int i = 0; i < Vms.Count; i++)
        {
            var v = Vms[i];
            string at = $"$.vms[{i}]";
            if (v.Vcpus is < 1 or > 64) throw new CliException($"{at}.vcpus: {v.Vcpus} is out of range 1..64");
            if (v.MemoryMb < 4 || v.MemoryMb % 2 != 0 || v.MemoryMb > 1024) throw new CliException($"{at}.memory_mb: {v.MemoryMb} must be even and in 4..1024");
            if (v.Uart > 0xFFF8) throw new CliException($"{at}.uart: 0x{v.Uart:x} is out of range 0..0xfff8 (the UART takes 8 ports)");
            if (v.TestDevice % 0x1000 != 0) throw new CliException($"{at}.testdev: 0x{v.TestDevice:x} is not page-aligned (a multiple of 0x1000)");
            if (v.TestDevice > 0xFFFF_FFFF_E000) throw new CliException($"{at}.testdev: 0x{v.TestDevice:x} is above the 48-bit physical address space");
            if (v.IrqVector is < 32 or > 255) throw new CliException($"{at}.irq: {v.IrqVector} is out of range 32..255 (vectors below 32 are exceptions)");
        }
        if (Unhandled is not ("forward" or "reinject")) throw new CliException($"$.unhandled: '{Unhandled}' is not one of forward, reinject");
        if (Driver is not ("deterministic" or "parallel")) throw new CliException($"$.driver: '{Driver}' is not one of deterministic, parallel");
        if (Backend is not ("replay" or "kvm")) throw new CliException($"$.backend: '{Backend}' is not one of replay, kvm");
        if (Workload.Pattern is not ("sequential" or "random")) throw new CliException($"$.workload.pattern: '{Workload.Pattern}' is not one of sequential, random");
        if (Workload.Iterations < 1) throw new CliException($"$.workload.iterations: {Workload.Iterations} is out of range 1..100000000");
        for (int i = 0; i < Workload.Mix.Count; i++)
            if (!MixKinds.Contains(Workload.Mix[i]))
            {
                string hint = Suggest.Nearest(Workload.Mix[i], MixKinds) is { } near ? $"; did you mean '{near}'?" : "";
                throw new CliException($"$.workload.mix[{i}]: unknown entry '{Workload.Mix[i]}' (one of {string.Join(", ", MixKinds)}){hint}");
            }
        if (VmmStateFields < 0 || VmmStateFields > User.Programs.StateWork.Fields.Length) throw new CliException($"$.vmm.state_fields: {VmmStateFields} is out of range 0..{User.Programs.StateWork.Fields.Length}");
        if (VmmBatch is < 1 or > Core.Kernel.MaxBatch) throw new CliException($"$.vmm.batch: {VmmBatch} is out of range 1..{Core.Kernel.MaxBatch}");
        if (!Hot.Exit.ExitStats.IsValidTimeEvery(TimeEvery)) throw new CliException($"$.time_every: {TimeEvery} is not a power of two in 1..{Hot.Exit.ExitStats.MaxTimeEvery}");
        foreach (var (k, v) in Costs)
            if (v is < 0 or > 1_000_000_000) throw new CliException($"$.costs.{k}: {v} is out of range 0..1000000000");
    }

    public PlatformType PlatformType => Machine.CostModel.Parse(Platform).Platform;
}

// The file's shape for the source generator: every member nullable so "absent" keeps the default.
internal sealed class ScenarioDoc
{
    [JsonPropertyName("platform")] public string? Platform { get; set; }
    [JsonPropertyName("cpus")] public int? Cpus { get; set; }
    [JsonPropertyName("seed")] public ulong? Seed { get; set; }
    [JsonPropertyName("driver")] public string? Driver { get; set; }
    [JsonPropertyName("unhandled")] public string? Unhandled { get; set; }
    [JsonPropertyName("backend")] public string? Backend { get; set; }
    [JsonPropertyName("vms")] public List<VmDoc?>? Vms { get; set; }
    [JsonPropertyName("workload")] public WorkloadDoc? Workload { get; set; }
    [JsonPropertyName("vmm")] public VmmDoc? Vmm { get; set; }
    [JsonPropertyName("time_every")] public int? TimeEvery { get; set; }
    [JsonPropertyName("costs")] public CostsDoc? Costs { get; set; }
}

internal sealed class VmDoc
{
    [JsonPropertyName("vcpus")] public int? Vcpus { get; set; }
    [JsonPropertyName("memory_mb")] public int? MemoryMb { get; set; }
    [JsonPropertyName("uart"), JsonConverter(typeof(AddressConverter))] public ulong? Uart { get; set; }
    [JsonPropertyName("testdev"), JsonConverter(typeof(AddressConverter))] public ulong? TestDevice { get; set; }
    [JsonPropertyName("irq"), JsonConverter(typeof(AddressConverter))] public ulong? Irq { get; set; }
}

internal sealed class WorkloadDoc
{
    [JsonPropertyName("greeting")] public string? Greeting { get; set; }
    [JsonPropertyName("device_driver")] public bool? DeviceDriver { get; set; }
    [JsonPropertyName("unregistered")] public bool? Unregistered { get; set; }
    [JsonPropertyName("mix")] public List<string?>? Mix { get; set; }
    [JsonPropertyName("pattern")] public string? Pattern { get; set; }
    [JsonPropertyName("iterations")] public long? Iterations { get; set; }
}

internal sealed class VmmDoc
{
    [JsonPropertyName("state_fields")] public int? StateFields { get; set; }
    [JsonPropertyName("batch")] public int? Batch { get; set; }
}

internal sealed class CostsDoc
{
    [JsonPropertyName("exit")] public long? Exit { get; set; }
    [JsonPropertyName("tdcall")] public long? Tdcall { get; set; }
    [JsonPropertyName("forward")] public long? Forward { get; set; }
    [JsonPropertyName("syscall")] public long? Syscall { get; set; }
    [JsonPropertyName("wake")] public long? Wake { get; set; }
}

/// <summary>An address or port: a JSON integer, or a string in decimal or 0x-hex.</summary>
internal sealed class AddressConverter : JsonConverter<ulong?>
{
    public override ulong? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetUInt64(out ulong n)) return n;
        if (reader.TokenType == JsonTokenType.String)
        {
            string s = reader.GetString()!;
            bool ok = s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
                ? ulong.TryParse(s.AsSpan(2), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture, out n)
                : ulong.TryParse(s, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out n);
            if (ok) return n;
        }
        throw new JsonException();
    }

    public override void Write(Utf8JsonWriter writer, ulong? value, JsonSerializerOptions options)
    {
        if (value is { } v) writer.WriteStringValue($"0x{v:x}"); else writer.WriteNullValue();
    }
}

/// <summary>Source-generated reader: comments and trailing commas allowed (the default scenario has comments), unknown members refused.</summary>
[JsonSourceGenerationOptions(ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(ScenarioDoc))]
internal sealed partial class ScenarioJson : JsonSerializerContext;

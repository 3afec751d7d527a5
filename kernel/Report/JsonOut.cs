using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Copra.Hot.Timing;

namespace Copra.Kernel.Report;

/// <summary>
/// The common frame of every <c>--json</c> document (docs/json.md): schema_version, the command, copra's version and
/// the machine it ran on, then the command's own fields. snake_case everywhere, a unit in every numeric field's name.
/// </summary>
public static class JsonOut
{
    /// <summary>Bumped whenever a field is renamed, removed or changes meaning (adding one does not).</summary>
    public const int SchemaVersion = 1;

    public static string Version =>
        typeof(JsonOut).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            is [System.Reflection.AssemblyInformationalVersionAttribute a, ..] ? a.InformationalVersion : "unknown";

    public static string Document(string command, Action<Utf8JsonWriter> body)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteNumber("schema_version", SchemaVersion);
            w.WriteString("command", command);
            w.WriteString("copra_version", Version);
            Machine(w);
            body(w);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    static void Machine(Utf8JsonWriter w)
    {
        w.WriteStartObject("machine");
        w.WriteNumber("host_cpu_count", Environment.ProcessorCount);
        w.WriteString("os", RuntimeInformation.OSDescription);
        w.WriteString("architecture", RuntimeInformation.OSArchitecture.ToString().ToLowerInvariant());
        w.WriteString("runtime", RuntimeInformation.FrameworkDescription);
        w.WriteBoolean("native_aot", !System.Runtime.CompilerServices.RuntimeFeature.IsDynamicCodeSupported);
        w.WriteBoolean("tsc_is_hardware", Tsc.IsHardware);
        w.WriteNumber("tsc_hz", Math.Round(Tsc.Hz));
        w.WriteBoolean("kvm_available", Kvm.KvmSystem.IsAvailable(out _));
        w.WriteEndObject();
    }

    public static void StringArray(Utf8JsonWriter w, string name, IEnumerable<string> items)
    {
        w.WriteStartArray(name);
        foreach (var s in items) w.WriteStringValue(s);
        w.WriteEndArray();
    }
}

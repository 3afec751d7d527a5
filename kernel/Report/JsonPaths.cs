using System.Text.Json;
using System.Text.RegularExpressions;

namespace Copra.Kernel.Report;

/// <summary>
/// The field paths of a JSON document in docs/json.md's notation (<c>a.b</c>, <c>[]</c> for array elements,
/// <c>&lt;kind&gt;</c> for the members of <c>by_kind</c>), and the paths a section of docs/json.md documents:
/// what the shape tests compare.
/// </summary>
public static partial class JsonPaths
{
    public static SortedSet<string> Of(JsonElement root)
    {
        var set = new SortedSet<string>(StringComparer.Ordinal);
        Walk(root, "", set);
        return set;
    }

    static void Walk(JsonElement e, string prefix, SortedSet<string> set)
    {
        if (e.ValueKind == JsonValueKind.Object)
            foreach (var p in e.EnumerateObject())
            {
                string key = prefix.EndsWith("by_kind", StringComparison.Ordinal) ? "<kind>" : p.Name;
                string path = prefix.Length == 0 ? key : $"{prefix}.{key}";
                set.Add(path);
                Walk(p.Value, path, set);
            }
        else if (e.ValueKind == JsonValueKind.Array)
            foreach (var item in e.EnumerateArray()) Walk(item, prefix + "[]", set);
    }

    /// <summary>(path, optional) for every table row of the section headed <paramref name="heading"/> in docs/json.md.</summary>
    public static List<(string Path, bool Optional)> Documented(string markdown, string heading)
    {
        var rows = new List<(string, bool)>();
        bool inside = false;
        foreach (var line in markdown.Split('\n'))
        {
            if (line.StartsWith("## ", StringComparison.Ordinal)) { inside = line.Trim() == heading; continue; }
            if (!inside) continue;
            var m = Row().Match(line);
            if (m.Success) rows.Add((m.Groups[1].Value, line.Contains("*optional", StringComparison.Ordinal)));
        }
        return rows;
    }

    [GeneratedRegex(@"^\| `([^`]+)` \|")]
    private static partial Regex Row();
}

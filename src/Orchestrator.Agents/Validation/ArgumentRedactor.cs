using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Orchestrator.Agents;

/// <summary>Replaces the values of arguments marked sensitive, for logs and stored history.</summary>
internal static class ArgumentRedactor
{
    internal const string Marker = "[REDACTED]";
    internal const string UnparseableMarker = "[REDACTED: unparseable arguments of a tool with sensitive arguments]";

    private static readonly JsonSerializerOptions WriteOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The raw string unchanged when nothing sensitive is in it; otherwise re-serialized in the model's key order with sensitive values replaced.</summary>
    internal static string RedactRaw(RegisteredTool tool, string raw)
    {
        if (tool.SensitivePaths.Count == 0)
        {
            return raw;
        }

        JsonNode? node;
        try
        {
            node = JsonNode.Parse(raw, documentOptions: CanonicalJson.ParseOptions);
        }
        catch (JsonException)
        {
            return UnparseableMarker;
        }

        if (node is not JsonObject root)
        {
            return UnparseableMarker;
        }

        return Redact(tool, root) ? root.ToJsonString(WriteOptions) : raw;
    }

    /// <summary>The canonical string with sensitive values replaced; key order stays canonical.</summary>
    internal static string RedactCanonical(RegisteredTool tool, string canonical)
    {
        if (tool.SensitivePaths.Count == 0)
        {
            return canonical;
        }

        var root = (JsonObject)JsonNode.Parse(canonical)!;
        if (!Redact(tool, root))
        {
            return canonical;
        }

        using var document = JsonDocument.Parse(root.ToJsonString(WriteOptions));
        return CanonicalJson.Canonicalize(document.RootElement);
    }

    private static bool Redact(RegisteredTool tool, JsonObject root) => Replace(tool, root, _ => JsonValue.Create(Marker));

    /// <summary>Replaces every value at a sensitive path (through arrays) with what <paramref name="replace"/> makes of it.</summary>
    /// <returns>Whether any value was replaced.</returns>
    internal static bool Replace(RegisteredTool tool, JsonObject root, Func<JsonNode?, JsonNode?> replace)
    {
        var changed = false;
        foreach (var path in tool.SensitivePaths)
        {
            changed |= ReplacePath(root, path.Split('.'), 0, replace);
        }

        return changed;
    }

    private static bool ReplacePath(JsonNode? node, string[] segments, int index, Func<JsonNode?, JsonNode?> replace)
    {
        switch (node)
        {
            case JsonArray array:
                var any = false;
                foreach (var item in array)
                {
                    any |= ReplacePath(item, segments, index, replace);
                }

                return any;
            case JsonObject obj when obj.ContainsKey(segments[index]):
                if (index == segments.Length - 1)
                {
                    obj[segments[index]] = replace(obj[segments[index]]);
                    return true;
                }

                return ReplacePath(obj[segments[index]], segments, index + 1, replace);
            default:
                return false;
        }
    }
}

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

    private static bool Redact(RegisteredTool tool, JsonObject root)
    {
        var changed = false;
        foreach (var path in tool.SensitivePaths)
        {
            changed |= RedactPath(root, path.Split('.'), 0);
        }

        return changed;
    }

    private static bool RedactPath(JsonNode? node, string[] segments, int index)
    {
        switch (node)
        {
            case JsonArray array:
                var any = false;
                foreach (var item in array)
                {
                    any |= RedactPath(item, segments, index);
                }

                return any;
            case JsonObject obj when obj.ContainsKey(segments[index]):
                if (index == segments.Length - 1)
                {
                    obj[segments[index]] = Marker;
                    return true;
                }

                return RedactPath(obj[segments[index]], segments, index + 1);
            default:
                return false;
        }
    }
}

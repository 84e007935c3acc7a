using System.Text.Json;
using System.Text.Json.Nodes;
using Orchestrator.Agents;

namespace Orchestrator.Host.Api;

/// <summary>
/// Replaces the values of arguments the agent's tools mark sensitive, in everything the API shows: transcripts and
/// stored histories (model replies, turn inputs, tool inputs hold raw arguments because the executed call needs them).
/// </summary>
internal static class SensitiveRedaction
{
    /// <summary>The arguments of a call to <paramref name="toolName"/> with sensitive values replaced (raw when the tool has none).</summary>
    public static string RedactArguments(ToolCallValidator validator, string toolName, string arguments)
    {
        ToolCallValidationResult result = validator.Validate(new ProposedToolCall("redaction", toolName, arguments), 0);
        return result.Valid?.RedactedArguments ?? result.Rejected!.RedactedArguments;
    }

    /// <summary>
    /// Walks <paramref name="node"/>: every object with a string <c>arguments</c> and a string <c>name</c> or
    /// <c>toolName</c> (a tool call, a tool invocation) gets its arguments redacted; string values that hold JSON
    /// (serialized inputs and outputs in history events) are parsed, redacted and written back.
    /// </summary>
    public static JsonNode? Redact(ToolCallValidator validator, JsonNode? node)
    {
        switch (node)
        {
            case JsonObject obj:
                string? tool = StringOf(obj, "name") ?? StringOf(obj, "toolName");
                if (tool is not null && StringOf(obj, "arguments") is { } args)
                {
                    obj["arguments"] = RedactArguments(validator, tool, args);
                }

                foreach (string key in obj.Select(p => p.Key).ToArray())
                {
                    JsonNode? child = obj[key];
                    JsonNode? redacted = key == "arguments" ? child : Redact(validator, child);
                    if (!ReferenceEquals(child, redacted))
                    {
                        obj[key] = redacted;
                    }
                }

                return obj;
            case JsonArray array:
                for (int i = 0; i < array.Count; i++)
                {
                    JsonNode? child = array[i];
                    JsonNode? redacted = Redact(validator, child);
                    if (!ReferenceEquals(child, redacted))
                    {
                        array[i] = redacted;
                    }
                }

                return array;
            case JsonValue value when value.TryGetValue(out string? text) && text.Length > 1 && (text[0] == '{' || text[0] == '['):
                try
                {
                    JsonNode? inner = JsonNode.Parse(text);
                    string redacted = Redact(validator, inner)?.ToJsonString() ?? text;
                    return redacted == text ? value : JsonValue.Create(redacted);
                }
                catch (JsonException)
                {
                    return value;
                }

            default:
                return node;
        }
    }

    private static string? StringOf(JsonObject obj, string key) =>
        obj.TryGetPropertyValue(key, out JsonNode? v) && v is JsonValue jv && jv.TryGetValue(out string? s) ? s : null;
}

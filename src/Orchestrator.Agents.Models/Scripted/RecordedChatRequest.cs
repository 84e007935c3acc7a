using System.Text;
using System.Text.Json;

namespace Orchestrator.Agents.Models.Scripted;

/// <summary>One message of a recorded request, reduced to what tests assert on.</summary>
/// <param name="Role">The <c>role</c>.</param>
/// <param name="Content">The text content (string content, or the text parts joined); null when absent.</param>
/// <param name="ToolCallId">For a <c>tool</c> message, the <c>tool_call_id</c> it answers.</param>
/// <param name="ToolCalls">For an <c>assistant</c> message, the tool calls it carried back, with raw arguments.</param>
public sealed record RecordedMessage(string Role, string? Content, string? ToolCallId, IReadOnlyList<ScriptedToolCall> ToolCalls);

/// <summary>One tool definition of a recorded request.</summary>
/// <param name="Name">The function name.</param>
/// <param name="Description">The description, when sent.</param>
/// <param name="Parameters">The <c>parameters</c> JSON Schema as sent (compact JSON), when sent.</param>
public sealed record RecordedTool(string Name, string? Description, string? Parameters);

/// <summary>A request the scripted server received, as sent on the wire and parsed for assertions.</summary>
public sealed class RecordedChatRequest
{
    internal RecordedChatRequest(int number, string body, string? authorization, JsonElement root)
    {
        Number = number;
        Body = body;
        Authorization = authorization;
        Model = root.TryGetProperty("model", out JsonElement m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null;
        Messages = root.TryGetProperty("messages", out JsonElement ms) && ms.ValueKind == JsonValueKind.Array
            ? [.. ms.EnumerateArray().Select(ParseMessage)]
            : [];
        Tools = root.TryGetProperty("tools", out JsonElement ts) && ts.ValueKind == JsonValueKind.Array
            ? [.. ts.EnumerateArray().Select(ParseTool)]
            : [];
        ToolChoice = root.TryGetProperty("tool_choice", out JsonElement tc) ? ParseToolChoice(tc) : null;
        ParallelToolCalls = root.TryGetProperty("parallel_tool_calls", out JsonElement p) && p.ValueKind is JsonValueKind.True or JsonValueKind.False
            ? p.GetBoolean()
            : null;
        Stream = root.TryGetProperty("stream", out JsonElement s) && s.ValueKind == JsonValueKind.True;
    }

    /// <summary>The 1-based arrival number of the request.</summary>
    public int Number { get; }

    /// <summary>The request body exactly as received.</summary>
    public string Body { get; }

    /// <summary>The <c>Authorization</c> header, if any.</summary>
    public string? Authorization { get; }

    /// <summary>The requested <c>model</c>.</summary>
    public string? Model { get; }

    /// <summary>The messages in order.</summary>
    public IReadOnlyList<RecordedMessage> Messages { get; }

    /// <summary>The tool definitions in order; empty when none were sent.</summary>
    public IReadOnlyList<RecordedTool> Tools { get; }

    /// <summary>
    /// The <c>tool_choice</c>: <c>auto</c>, <c>none</c>, <c>required</c>, or <c>function:NAME</c> for a forced
    /// function; null when the member was not sent.
    /// </summary>
    public string? ToolChoice { get; }

    /// <summary>The <c>parallel_tool_calls</c> flag; null when not sent.</summary>
    public bool? ParallelToolCalls { get; }

    /// <summary>Whether the client asked for streaming (which the scripted server refuses).</summary>
    public bool Stream { get; }

    /// <summary>The index of the script entry that answered, or null when none matched (or when recording).</summary>
    public int? MatchedEntry { get; internal set; }

    /// <summary>The content of the <c>tool</c> message answering <paramref name="toolCallId"/>, or null when there is none.</summary>
    public string? ToolResultFor(string toolCallId) =>
        Messages.LastOrDefault(m => m.Role == "tool" && m.ToolCallId == toolCallId)?.Content;

    private static RecordedMessage ParseMessage(JsonElement m)
    {
        string role = m.TryGetProperty("role", out JsonElement r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : string.Empty;
        string? toolCallId = m.TryGetProperty("tool_call_id", out JsonElement id) && id.ValueKind == JsonValueKind.String ? id.GetString() : null;
        var calls = new List<ScriptedToolCall>();
        if (m.TryGetProperty("tool_calls", out JsonElement tcs) && tcs.ValueKind == JsonValueKind.Array)
        {
            foreach (JsonElement c in tcs.EnumerateArray())
            {
                JsonElement f = c.TryGetProperty("function", out JsonElement fe) ? fe : c;
                calls.Add(new ScriptedToolCall(
                    Str(c, "id") ?? string.Empty,
                    Str(f, "name") ?? string.Empty,
                    f.TryGetProperty("arguments", out JsonElement a) ? (a.ValueKind == JsonValueKind.String ? a.GetString()! : a.GetRawText()) : string.Empty));
            }
        }

        return new RecordedMessage(role, Content(m), toolCallId, calls);
    }

    private static string? Content(JsonElement m)
    {
        if (!m.TryGetProperty("content", out JsonElement c))
        {
            return null;
        }

        if (c.ValueKind == JsonValueKind.String)
        {
            return c.GetString();
        }

        if (c.ValueKind != JsonValueKind.Array)
        {
            return null;
        }

        var sb = new StringBuilder();
        foreach (JsonElement part in c.EnumerateArray())
        {
            if (Str(part, "text") is string t)
            {
                sb.Append(t);
            }
        }

        return sb.ToString();
    }

    private static RecordedTool ParseTool(JsonElement t)
    {
        JsonElement f = t.TryGetProperty("function", out JsonElement fe) ? fe : t;
        return new RecordedTool(
            Str(f, "name") ?? string.Empty,
            Str(f, "description"),
            f.TryGetProperty("parameters", out JsonElement p) ? JsonSerializer.Serialize(p) : null);
    }

    private static string? ParseToolChoice(JsonElement tc) => tc.ValueKind switch
    {
        JsonValueKind.String => tc.GetString(),
        JsonValueKind.Object when tc.TryGetProperty("function", out JsonElement f) => "function:" + Str(f, "name"),
        JsonValueKind.Null => null,
        _ => tc.GetRawText(),
    };

    private static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}

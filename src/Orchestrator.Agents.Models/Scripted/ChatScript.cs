using System.Text.Json;
using System.Text.Json.Nodes;

namespace Orchestrator.Agents.Models.Scripted;

/// <summary>One tool call a scripted reply carries, exactly as it goes on the wire.</summary>
/// <param name="Id">The <c>tool_calls[].id</c> the model gives the call.</param>
/// <param name="Name">The function name.</param>
/// <param name="Arguments">The raw <c>arguments</c> string, sent verbatim (it may be malformed JSON on purpose).</param>
public sealed record ScriptedToolCall(string Id, string Name, string Arguments);

/// <summary>A legacy <c>message.function_call</c> (the pre-tools API): a name and raw arguments, no id.</summary>
public sealed record ScriptedFunctionCall(string Name, string Arguments);

/// <summary>The <c>usage</c> object of a scripted reply.</summary>
/// <param name="PromptTokens">Sent as <c>prompt_tokens</c>.</param>
/// <param name="CompletionTokens">Sent as <c>completion_tokens</c>.</param>
/// <param name="TotalTokens">Sent as <c>total_tokens</c>; the sum of the two when null.</param>
public sealed record ScriptedUsage(int PromptTokens, int CompletionTokens, int? TotalTokens = null);

/// <summary>A scripted HTTP error, in the OpenAI error shape (<c>{"error":{"message","type"}}</c>).</summary>
/// <param name="Status">The HTTP status code (429 and 5xx are what clients retry).</param>
/// <param name="Message">The error message.</param>
/// <param name="Type">The error type.</param>
/// <param name="RetryAfterSeconds">When set, sent as a <c>Retry-After</c> header.</param>
public sealed record ScriptError(int Status, string Message, string Type = "scripted_error", int? RetryAfterSeconds = null);

/// <summary>
/// A condition on the request an entry answers. Every condition that is set must hold (they are ANDed);
/// an entry without conditions answers any request.
/// </summary>
public sealed record ScriptMatch
{
    /// <summary>The role of the request's last message (<c>system</c>, <c>user</c>, <c>assistant</c>, <c>tool</c>).</summary>
    public string? LastRole { get; init; }

    /// <summary>A substring (ordinal) of the last message's text content.</summary>
    public string? LastContains { get; init; }

    /// <summary>A substring (ordinal) of the text content of any message of the request.</summary>
    public string? AnyContains { get; init; }

    /// <summary>The request holds a <c>tool</c> message answering this <c>tool_call_id</c>.</summary>
    public string? ToolResultFor { get; init; }

    /// <summary>The 1-based number of the request among all requests the server received.</summary>
    public int? CallNumber { get; init; }

    internal bool IsMatch(RecordedChatRequest request)
    {
        RecordedMessage? last = request.Messages.Count > 0 ? request.Messages[^1] : null;
        if (LastRole is not null && !string.Equals(last?.Role, LastRole, StringComparison.Ordinal))
        {
            return false;
        }

        if (LastContains is not null && !(last?.Content ?? string.Empty).Contains(LastContains, StringComparison.Ordinal))
        {
            return false;
        }

        if (AnyContains is not null && !request.Messages.Any(m => (m.Content ?? string.Empty).Contains(AnyContains, StringComparison.Ordinal)))
        {
            return false;
        }

        if (ToolResultFor is not null && request.ToolResultFor(ToolResultFor) is null)
        {
            return false;
        }

        return CallNumber is null || CallNumber == request.Number;
    }
}

/// <summary>The assistant message a scripted entry answers with.</summary>
public sealed record ScriptReply
{
    /// <summary>The assistant's text (<c>message.content</c>); sent as JSON null when null.</summary>
    public string? Content { get; init; }

    /// <summary>The tool calls, in order; the <c>tool_calls</c> member is omitted when empty.</summary>
    public IReadOnlyList<ScriptedToolCall> ToolCalls { get; init; } = [];

    /// <summary>A legacy <c>function_call</c>, for servers that still speak the functions API.</summary>
    public ScriptedFunctionCall? FunctionCall { get; init; }

    /// <summary>
    /// The <c>finish_reason</c> (<c>tool_calls</c>, <c>stop</c>, <c>function_call</c>, <c>length</c> or anything else).
    /// Null means the member is left out of the response, unless <see cref="FinishReasonIsNull"/> is set.
    /// </summary>
    public string? FinishReason { get; init; }

    /// <summary>Send <c>"finish_reason": null</c> instead of leaving the member out.</summary>
    public bool FinishReasonIsNull { get; init; }

    /// <summary>The token usage; the <c>usage</c> member is omitted when null.</summary>
    public ScriptedUsage? Usage { get; init; }
}

/// <summary>
/// One entry of a <see cref="ChatScript"/>: an optional match condition and exactly one of a reply, an error or a raw body.
/// </summary>
public sealed record ScriptEntry
{
    /// <summary>A label shown in diagnostics and recorded with each request it answered.</summary>
    public string? Name { get; init; }

    /// <summary>The condition a request must meet for this entry to answer it; null answers any request.</summary>
    public ScriptMatch? When { get; init; }

    /// <summary>When true the entry is not used up: it answers every matching request (a model stuck in a loop).</summary>
    public bool Repeat { get; init; }

    /// <summary>Latency for this entry, replacing the server's default.</summary>
    public TimeSpan? Latency { get; init; }

    /// <summary>A well-formed chat completion.</summary>
    public ScriptReply? Reply { get; init; }

    /// <summary>An HTTP error.</summary>
    public ScriptError? Error { get; init; }

    /// <summary>A response body sent verbatim (JSON text), for shapes <see cref="Reply"/> cannot express.</summary>
    public string? Raw { get; init; }

    /// <summary>The HTTP status sent with <see cref="Raw"/>; default 200.</summary>
    public int RawStatus { get; init; } = 200;

    /// <summary>A text answer, finish reason <c>stop</c> unless given.</summary>
    public static ScriptEntry Text(string content, string? finishReason = "stop", ScriptedUsage? usage = null) =>
        new() { Reply = new ScriptReply { Content = content, FinishReason = finishReason, Usage = usage } };

    /// <summary>A reply with these tool calls, finish reason <c>tool_calls</c>.</summary>
    public static ScriptEntry Calls(params ScriptedToolCall[] calls) =>
        new() { Reply = new ScriptReply { ToolCalls = calls, FinishReason = "tool_calls" } };

    /// <summary>An HTTP error reply.</summary>
    public static ScriptEntry Fail(int status, string message) => new() { Error = new ScriptError(status, message) };
}

/// <summary>
/// The replies a <see cref="ScriptedChatServer"/> plays, in order; also the record/replay cassette format
/// (see README.md beside this file).
/// </summary>
/// <remarks>
/// Each request is answered by the first entry, in file order, that is not used up and whose
/// <see cref="ScriptEntry.When"/> matches. Entries without conditions therefore play in sequence.
/// </remarks>
public sealed class ChatScript
{
    /// <summary>Creates a script from entries, played in order.</summary>
    public ChatScript(IEnumerable<ScriptEntry> entries, string? model = null)
    {
        Entries = [.. entries];
        Model = model;
        for (int i = 0; i < Entries.Count; i++)
        {
            ChatScriptJson.Check(Entries[i], i);
        }
    }

    /// <summary>Creates a script from entries, played in order.</summary>
    public ChatScript(params ScriptEntry[] entries)
        : this((IEnumerable<ScriptEntry>)entries)
    {
    }

    /// <summary>The entries in play order.</summary>
    public IReadOnlyList<ScriptEntry> Entries { get; }

    /// <summary>The model name put in responses; the requested model when null.</summary>
    public string? Model { get; }

    /// <summary>Parses a cassette; throws <see cref="FormatException"/> naming the faulty entry.</summary>
    public static ChatScript Parse(string json) => ChatScriptJson.Parse(json);

    /// <summary>Reads a cassette file.</summary>
    public static async Task<ChatScript> LoadAsync(string path, CancellationToken cancellationToken)
    {
        string json = await File.ReadAllTextAsync(path, cancellationToken).ConfigureAwait(false);
        return Parse(json);
    }

    /// <summary>The cassette JSON of this script (indented).</summary>
    public string ToJson() => ChatScriptJson.Write(this);

    /// <summary>Writes the cassette to a file.</summary>
    public Task SaveAsync(string path, CancellationToken cancellationToken) =>
        File.WriteAllTextAsync(path, ToJson(), cancellationToken);
}

/// <summary>Reads and writes the cassette format.</summary>
/// <remarks>WARNING: the cassette is a persisted format that tests and demos check in; change it only compatibly.</remarks>
internal static class ChatScriptJson
{
    public static void Check(ScriptEntry entry, int index)
    {
        int kinds = (entry.Reply is null ? 0 : 1) + (entry.Error is null ? 0 : 1) + (entry.Raw is null ? 0 : 1);
        if (kinds != 1)
        {
            throw new FormatException($"Script entry {index}{Label(entry)}: give exactly one of reply, error or raw.");
        }

        if (entry.Raw is not null)
        {
            try
            {
                using JsonDocument _ = JsonDocument.Parse(entry.Raw);
            }
            catch (JsonException e)
            {
                throw new FormatException($"Script entry {index}{Label(entry)}: raw is not JSON: {e.Message}", e);
            }
        }

        if (entry.Latency is { } latency && latency < TimeSpan.Zero)
        {
            throw new FormatException($"Script entry {index}{Label(entry)}: latency must not be negative.");
        }
    }

    private static string Label(ScriptEntry entry) => entry.Name is null ? string.Empty : $" ('{entry.Name}')";

    public static ChatScript Parse(string json)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new FormatException($"Script is not JSON: {e.Message}", e);
        }

        JsonArray entriesNode = root switch
        {
            JsonArray a => a,
            JsonObject o when o["entries"] is JsonArray a => a,
            _ => throw new FormatException("Script must be an array of entries or an object with an 'entries' array."),
        };
        string? model = root is JsonObject ro ? OptString(ro, "model", "script") : null;
        var entries = new List<ScriptEntry>();
        for (int i = 0; i < entriesNode.Count; i++)
        {
            string where = $"entries[{i}]";
            if (entriesNode[i] is not JsonObject e)
            {
                throw new FormatException($"{where} must be an object.");
            }

            entries.Add(ParseEntry(e, where));
        }

        return new ChatScript(entries, model);
    }

    private static ScriptEntry ParseEntry(JsonObject e, string where)
    {
        var entry = new ScriptEntry
        {
            Name = OptString(e, "name", where),
            Repeat = e["repeat"] is JsonNode r && r.GetValueKind() == JsonValueKind.True,
            Latency = e["latencyMs"] is JsonNode l ? TimeSpan.FromMilliseconds(Int(l, $"{where}.latencyMs")) : null,
            When = e["when"] is JsonObject w ? ParseMatch(w, $"{where}.when") : null,
            Reply = e["reply"] is JsonObject rep ? ParseReply(rep, $"{where}.reply") : null,
            Error = e["error"] is JsonObject err ? new ScriptError(
                Int(err["status"], $"{where}.error.status"),
                OptString(err, "message", $"{where}.error") ?? "scripted error",
                OptString(err, "type", $"{where}.error") ?? "scripted_error",
                err["retryAfterSeconds"] is JsonNode ra ? Int(ra, $"{where}.error.retryAfterSeconds") : null) : null,
            Raw = e["raw"]?.ToJsonString(),
            RawStatus = e["status"] is JsonNode s ? Int(s, $"{where}.status") : 200,
        };
        foreach (KeyValuePair<string, JsonNode?> p in e)
        {
            if (p.Key is not ("name" or "repeat" or "latencyMs" or "when" or "reply" or "error" or "raw" or "status"))
            {
                throw new FormatException($"{where}: unknown member '{p.Key}'.");
            }
        }

        return entry;
    }

    private static ScriptMatch ParseMatch(JsonObject w, string where)
    {
        foreach (KeyValuePair<string, JsonNode?> p in w)
        {
            if (p.Key is not ("lastRole" or "lastContains" or "anyContains" or "toolResultFor" or "callNumber"))
            {
                throw new FormatException($"{where}: unknown condition '{p.Key}'.");
            }
        }

        return new ScriptMatch
        {
            LastRole = OptString(w, "lastRole", where),
            LastContains = OptString(w, "lastContains", where),
            AnyContains = OptString(w, "anyContains", where),
            ToolResultFor = OptString(w, "toolResultFor", where),
            CallNumber = w["callNumber"] is JsonNode n ? Int(n, $"{where}.callNumber") : null,
        };
    }

    private static ScriptReply ParseReply(JsonObject r, string where)
    {
        var calls = new List<ScriptedToolCall>();
        if (r["tool_calls"] is JsonArray tc)
        {
            for (int i = 0; i < tc.Count; i++)
            {
                string w = $"{where}.tool_calls[{i}]";
                if (tc[i] is not JsonObject c)
                {
                    throw new FormatException($"{w} must be an object.");
                }

                // Accept both the short form {id, name, arguments} and the wire form {id, type, function: {name, arguments}}.
                JsonObject f = c["function"] as JsonObject ?? c;
                calls.Add(new ScriptedToolCall(
                    OptString(c, "id", w) ?? throw new FormatException($"{w}: id is required."),
                    OptString(f, "name", w) ?? throw new FormatException($"{w}: name is required."),
                    Arguments(f["arguments"], w)));
            }
        }

        ScriptedFunctionCall? fc = r["function_call"] is JsonObject fo
            ? new ScriptedFunctionCall(OptString(fo, "name", $"{where}.function_call") ?? throw new FormatException($"{where}.function_call: name is required."), Arguments(fo["arguments"], $"{where}.function_call"))
            : null;
        bool hasFinish = r.TryGetPropertyValue("finish_reason", out JsonNode? finish);
        ScriptedUsage? usage = r["usage"] is JsonObject u
            ? new ScriptedUsage(
                Int(u["prompt_tokens"], $"{where}.usage.prompt_tokens"),
                Int(u["completion_tokens"], $"{where}.usage.completion_tokens"),
                u["total_tokens"] is JsonNode t ? Int(t, $"{where}.usage.total_tokens") : null)
            : null;
        return new ScriptReply
        {
            Content = OptString(r, "content", where),
            ToolCalls = calls,
            FunctionCall = fc,
            FinishReason = hasFinish && finish is not null ? OptString(r, "finish_reason", where) : null,
            FinishReasonIsNull = hasFinish && finish is null,
            Usage = usage,
        };
    }

    // The raw string is what the model "said"; an object is accepted as a convenience and sent in compact form.
    private static string Arguments(JsonNode? node, string where) => node switch
    {
        null => "{}",
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        _ => node.ToJsonString(),
    };

    private static string? OptString(JsonObject o, string name, string where)
    {
        JsonNode? n = o[name];
        if (n is null)
        {
            return null;
        }

        return n.GetValueKind() == JsonValueKind.String ? n.GetValue<string>() : throw new FormatException($"{where}.{name} must be a string.");
    }

    private static int Int(JsonNode? n, string where) =>
        n is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out int i) ? i : throw new FormatException($"{where} must be an integer.");

    public static string Write(ChatScript script)
    {
        var entries = new JsonArray();
        foreach (ScriptEntry e in script.Entries)
        {
            var o = new JsonObject();
            if (e.Name is not null)
            {
                o["name"] = e.Name;
            }

            if (e.When is { } w)
            {
                var wo = new JsonObject();
                AddIf(wo, "lastRole", w.LastRole);
                AddIf(wo, "lastContains", w.LastContains);
                AddIf(wo, "anyContains", w.AnyContains);
                AddIf(wo, "toolResultFor", w.ToolResultFor);
                if (w.CallNumber is int n)
                {
                    wo["callNumber"] = n;
                }

                o["when"] = wo;
            }

            if (e.Repeat)
            {
                o["repeat"] = true;
            }

            if (e.Latency is { } l)
            {
                o["latencyMs"] = (int)l.TotalMilliseconds;
            }

            if (e.Reply is { } r)
            {
                o["reply"] = WriteReply(r);
            }
            else if (e.Error is { } err)
            {
                var eo = new JsonObject { ["status"] = err.Status, ["message"] = err.Message, ["type"] = err.Type };
                if (err.RetryAfterSeconds is int ra)
                {
                    eo["retryAfterSeconds"] = ra;
                }

                o["error"] = eo;
            }
            else
            {
                o["raw"] = JsonNode.Parse(e.Raw!);
                if (e.RawStatus != 200)
                {
                    o["status"] = e.RawStatus;
                }
            }

            entries.Add(o);
        }

        var root = new JsonObject();
        if (script.Model is not null)
        {
            root["model"] = script.Model;
        }

        root["entries"] = entries;
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    private static JsonObject WriteReply(ScriptReply r)
    {
        var ro = new JsonObject { ["content"] = r.Content };
        if (r.ToolCalls.Count > 0)
        {
            var calls = new JsonArray();
            foreach (ScriptedToolCall c in r.ToolCalls)
            {
                calls.Add(new JsonObject { ["id"] = c.Id, ["name"] = c.Name, ["arguments"] = c.Arguments });
            }

            ro["tool_calls"] = calls;
        }

        if (r.FunctionCall is { } fc)
        {
            ro["function_call"] = new JsonObject { ["name"] = fc.Name, ["arguments"] = fc.Arguments };
        }

        if (r.FinishReason is not null)
        {
            ro["finish_reason"] = r.FinishReason;
        }
        else if (r.FinishReasonIsNull)
        {
            ro["finish_reason"] = null;
        }

        if (r.Usage is { } u)
        {
            ro["usage"] = new JsonObject
            {
                ["prompt_tokens"] = u.PromptTokens,
                ["completion_tokens"] = u.CompletionTokens,
                ["total_tokens"] = u.TotalTokens ?? (u.PromptTokens + u.CompletionTokens),
            };
        }

        return ro;
    }

    private static void AddIf(JsonObject o, string name, string? value)
    {
        if (value is not null)
        {
            o[name] = value;
        }
    }
}

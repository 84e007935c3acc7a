using System.Text.Json;

namespace Orchestrator.Agents.Models.Scripted;

/// <summary>Turns an upstream response into a cassette entry that replays the same wire facts.</summary>
internal static class CassetteRecorder
{
    public static ScriptEntry ToEntry(int status, string body)
    {
        try
        {
            using JsonDocument doc = JsonDocument.Parse(body);
            JsonElement root = doc.RootElement;
            if (status != 200)
            {
                return root.TryGetProperty("error", out JsonElement error) && error.ValueKind == JsonValueKind.Object
                    ? new ScriptEntry { Error = new ScriptError(status, Str(error, "message") ?? string.Empty, Str(error, "type") ?? "upstream_error") }
                    : new ScriptEntry { Raw = body, RawStatus = status };
            }

            return TryReply(root) is { } reply ? new ScriptEntry { Reply = reply } : new ScriptEntry { Raw = body, RawStatus = status };
        }
        catch (JsonException)
        {
            // Not JSON: keep it as a raw JSON string so replay still sends what the upstream sent, in quotes.
            return new ScriptEntry { Raw = JsonSerializer.Serialize(body), RawStatus = status };
        }
    }

    // Only shapes the reply form reproduces exactly become replies; anything else (several choices, arguments that are
    // not strings, extra message members) is kept raw so that replay is faithful.
    private static ScriptReply? TryReply(JsonElement root)
    {
        if (!root.TryGetProperty("choices", out JsonElement choices) || choices.ValueKind != JsonValueKind.Array || choices.GetArrayLength() != 1)
        {
            return null;
        }

        JsonElement choice = choices[0];
        if (!choice.TryGetProperty("message", out JsonElement message) || message.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        foreach (JsonProperty p in message.EnumerateObject())
        {
            if (p.Name is not ("role" or "content" or "tool_calls" or "function_call" or "refusal" or "annotations") ||
                (p.Name is "refusal" && p.Value.ValueKind != JsonValueKind.Null) ||
                (p.Name is "annotations" && p.Value.ValueKind == JsonValueKind.Array && p.Value.GetArrayLength() > 0))
            {
                return null;
            }
        }

        string? content = null;
        if (message.TryGetProperty("content", out JsonElement c))
        {
            if (c.ValueKind == JsonValueKind.String)
            {
                content = c.GetString();
            }
            else if (c.ValueKind != JsonValueKind.Null)
            {
                return null;
            }
        }

        var calls = new List<ScriptedToolCall>();
        if (message.TryGetProperty("tool_calls", out JsonElement tcs) && tcs.ValueKind == JsonValueKind.Array)
        {
            foreach (JsonElement tc in tcs.EnumerateArray())
            {
                if (Str(tc, "id") is not string id || !tc.TryGetProperty("function", out JsonElement f) ||
                    Str(f, "name") is not string name || Str(f, "arguments") is not string args)
                {
                    return null;
                }

                calls.Add(new ScriptedToolCall(id, name, args));
            }
        }

        ScriptedFunctionCall? functionCall = null;
        if (message.TryGetProperty("function_call", out JsonElement fc) && fc.ValueKind != JsonValueKind.Null)
        {
            if (Str(fc, "name") is not string name || Str(fc, "arguments") is not string args)
            {
                return null;
            }

            functionCall = new ScriptedFunctionCall(name, args);
        }

        bool hasFinish = choice.TryGetProperty("finish_reason", out JsonElement finish);
        if (hasFinish && finish.ValueKind is not (JsonValueKind.String or JsonValueKind.Null))
        {
            return null;
        }

        ScriptedUsage? usage = null;
        if (root.TryGetProperty("usage", out JsonElement u) && u.ValueKind == JsonValueKind.Object)
        {
            usage = new ScriptedUsage(Int(u, "prompt_tokens"), Int(u, "completion_tokens"), Int(u, "total_tokens"));
        }

        return new ScriptReply
        {
            Content = content,
            ToolCalls = calls,
            FunctionCall = functionCall,
            FinishReason = hasFinish && finish.ValueKind == JsonValueKind.String ? finish.GetString() : null,
            FinishReasonIsNull = hasFinish && finish.ValueKind == JsonValueKind.Null,
            Usage = usage,
        };
    }

    private static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static int Int(JsonElement e, string name) =>
        e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : 0;
}

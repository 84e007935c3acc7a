using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Orchestrator.Agents;

/// <summary>
/// Text in a model reply that looked like a tool call but could not be parsed. It must be answered
/// (send <see cref="ToRejection"/> back to the model), never dropped.
/// </summary>
/// <param name="Id">A deterministic id for the would-be call.</param>
/// <param name="Position">Its 0-based position among the call-like segments of the reply.</param>
/// <param name="Format">The format it looked like: tool_call, python_tag, function, fenced_json, json.</param>
/// <param name="Name">The tool name, when one could be read.</param>
/// <param name="Snippet">The start of the offending text (at most 200 characters).</param>
/// <param name="Problem">What is wrong with it.</param>
public sealed record TextToolCallParseError(string Id, int Position, string Format, string? Name, string Snippet, string Problem)
{
    /// <summary>The rejection to feed back, like any other invalid call.</summary>
    public RejectedToolCall ToRejection() =>
        new(Id, Name ?? "", Position, ToolCallErrorKind.UnparseableCall,
            $"A tool call in your reply could not be parsed ({Format}): {Problem}. Emit each call as {{\"name\": ..., \"arguments\": {{...}}}} with valid JSON.",
            [new("", "malformed", Problem)],
            Snippet);
}

/// <summary>What <see cref="TextToolCallParser.Parse"/> found in a reply.</summary>
/// <param name="Text">The reply with the call segments removed and trimmed: the model's prose.</param>
/// <param name="Calls">The calls, in textual order.</param>
/// <param name="Errors">The call-like segments that could not be parsed, in textual order.</param>
public sealed record TextToolCallParseResult(string Text, IReadOnlyList<ProposedToolCall> Calls, IReadOnlyList<TextToolCallParseError> Errors)
{
    /// <summary>True when the reply holds neither calls nor call-like text: a plain answer.</summary>
    public bool IsPlainText => Calls.Count == 0 && Errors.Count == 0;
}

/// <summary>
/// Recovers tool calls that open models write into their text instead of the API's tool_calls field:
/// Hermes/Qwen <c>&lt;tool_call&gt;{"name":..,"arguments":{..}}&lt;/tool_call&gt;</c> (any number),
/// Llama 3 <c>&lt;|python_tag|&gt;{"name":..,"parameters":{..}}</c> (several separated by <c>;</c>),
/// <c>&lt;function=name&gt;{..}&lt;/function&gt;</c>, and JSON objects or arrays of
/// <c>{name, arguments}</c> in markdown fences or as the whole reply.
/// </summary>
/// <remarks>
/// A segment that looks like a call but does not parse becomes a <see cref="TextToolCallParseError"/>,
/// never a silent drop. A fenced JSON block that does not look like a call (no <c>name</c> and
/// <c>arguments</c>/<c>parameters</c> keys) is left in the text. Ids are taken from the call when it
/// has one, otherwise derived from the seed, the position, the name and the arguments: the same
/// reply always gets the same ids. Deterministic and thread-safe.
/// </remarks>
public static partial class TextToolCallParser
{
    private const int SnippetLength = 200;

    /// <summary>Parses a model reply.</summary>
    /// <param name="text">The reply's text content.</param>
    /// <param name="idSeed">Mixed into derived ids (for example the turn instance id and model call index) so ids differ between replies.</param>
    public static TextToolCallParseResult Parse(string? text, string idSeed = "")
    {
        ArgumentNullException.ThrowIfNull(idSeed);
        if (string.IsNullOrWhiteSpace(text))
        {
            return new TextToolCallParseResult("", [], []);
        }

        var segments = new List<Segment>();
        AddTagged(segments, ToolCallTag().Matches(text), "tool_call");
        AddTagged(segments, FunctionTag().Matches(text), "function");
        AddTagged(segments, PythonTag().Matches(text), "python_tag");
        foreach (Match fence in Fence().Matches(text))
        {
            if (segments.Any(s => s.Start < fence.Index + fence.Length && fence.Index < s.End))
            {
                continue;
            }

            var body = fence.Groups["body"].Value;
            var language = fence.Groups["lang"].Value.ToLowerInvariant();
            if (LooksLikeCall(body) || language is "tool_call" or "tool_calls" or "function_call")
            {
                segments.Add(new Segment(fence.Index, fence.Index + fence.Length, "fenced_json", body, null));
            }
        }

        if (segments.Count == 0)
        {
            var trimmed = text.Trim();
            if ((trimmed.StartsWith('{') || trimmed.StartsWith('[')) && LooksLikeCall(trimmed))
            {
                segments.Add(new Segment(0, text.Length, "json", trimmed, null));
            }
        }

        segments.Sort((a, b) => a.Start.CompareTo(b.Start));
        var calls = new List<ProposedToolCall>();
        var errors = new List<TextToolCallParseError>();
        var position = 0;
        foreach (var segment in segments)
        {
            foreach (var outcome in ParseSegment(segment))
            {
                if (outcome.Problem is null)
                {
                    var id = outcome.Id ?? DeriveId(idSeed, position, outcome.Name!, outcome.Arguments!);
                    calls.Add(new ProposedToolCall(id, outcome.Name!, outcome.Arguments!));
                }
                else
                {
                    var snippet = outcome.Source.Length > SnippetLength ? outcome.Source[..SnippetLength] : outcome.Source;
                    errors.Add(new TextToolCallParseError(DeriveId(idSeed, position, outcome.Name ?? "", outcome.Source), position, segment.Format, outcome.Name, snippet.Trim(), outcome.Problem));
                }

                position++;
            }
        }

        return new TextToolCallParseResult(RemoveSegments(text, segments), calls, errors);
    }

    private static void AddTagged(List<Segment> segments, MatchCollection matches, string format)
    {
        foreach (Match match in matches)
        {
            var name = match.Groups["name"].Success ? match.Groups["name"].Value : null;
            segments.Add(new Segment(match.Index, match.Index + match.Length, format, match.Groups["body"].Value, name));
        }
    }

    private static IEnumerable<Outcome> ParseSegment(Segment segment)
    {
        var body = segment.Body.Trim();
        if (segment.Format == "function")
        {
            // <function=name>{arguments}</function>: the body is the arguments object itself.
            var arguments = body.Length == 0 ? "{}" : body;
            var problem = CheckJsonObject(arguments);
            yield return problem is null
                ? new Outcome(segment.Name, arguments, null, null, body)
                : new Outcome(segment.Name, null, null, $"the arguments of '{segment.Name}' are not a valid JSON object: {problem}", body);
            yield break;
        }

        if (body.Length == 0)
        {
            yield return new Outcome(null, null, null, "the call is empty", segment.Body);
            yield break;
        }

        foreach (var chunk in SplitJsonValues(body))
        {
            if (!chunk.IsJson)
            {
                var problem = segment.Format == "python_tag" && PythonCall().IsMatch(chunk.Text)
                    ? "python-style calls are not supported; write the call as JSON"
                    : "expected a JSON object";
                yield return new Outcome(null, null, null, problem, chunk.Text);
                continue;
            }

            var (document, error) = TryParse(chunk.Text);
            if (document is null)
            {
                yield return new Outcome(GuessName(chunk.Text), null, null, $"invalid JSON ({error})", chunk.Text);
                continue;
            }

            using (document)
            {
                var root = document.RootElement;
                var items = root.ValueKind == JsonValueKind.Array ? root.EnumerateArray().ToArray() : [root];
                if (items.Length == 0)
                {
                    yield return new Outcome(null, null, null, "the array of calls is empty", chunk.Text);
                }

                foreach (var item in items)
                {
                    yield return ReadCall(item);
                }
            }
        }
    }

    private static Outcome ReadCall(JsonElement item)
    {
        var source = item.GetRawText();
        if (item.ValueKind != JsonValueKind.Object)
        {
            return new Outcome(null, null, null, "a call must be a JSON object with \"name\" and \"arguments\"", source);
        }

        // OpenAI-shaped {"type":"function","function":{...}} nests the call one level down.
        if (item.TryGetProperty("function", out var nested) && nested.ValueKind == JsonValueKind.Object)
        {
            var inner = ReadCall(nested);
            var outerId = item.TryGetProperty("id", out var oid) && oid.ValueKind == JsonValueKind.String ? oid.GetString() : null;
            return inner with { Id = inner.Id ?? outerId, Source = source };
        }

        if (!item.TryGetProperty("name", out var nameElement) || nameElement.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(nameElement.GetString()))
        {
            return new Outcome(null, null, null, "the call has no \"name\" string", source);
        }

        var name = nameElement.GetString()!;
        var id = item.TryGetProperty("id", out var idElement) && idElement.ValueKind == JsonValueKind.String && !string.IsNullOrEmpty(idElement.GetString())
            ? idElement.GetString()
            : null;
        JsonElement arguments;
        if (!item.TryGetProperty("arguments", out arguments) && !item.TryGetProperty("parameters", out arguments))
        {
            return new Outcome(name, "{}", id, null, source);
        }

        return arguments.ValueKind switch
        {
            JsonValueKind.Object => new Outcome(name, arguments.GetRawText(), id, null, source),

            // Some servers double-encode: the arguments are a JSON string holding the object. The
            // string is kept raw; validation reports it if it is not an object.
            JsonValueKind.String => new Outcome(name, arguments.GetString()!, id, null, source),
            JsonValueKind.Null => new Outcome(name, "{}", id, null, source),
            _ => new Outcome(name, null, id, $"the arguments of '{name}' must be a JSON object", source),
        };
    }

    /// <summary>Splits text into top-level JSON values separated by whitespace, ';' or ','; anything else is a non-JSON chunk.</summary>
    private static List<Chunk> SplitJsonValues(string text)
    {
        var chunks = new List<Chunk>();
        var i = 0;
        while (i < text.Length)
        {
            var c = text[i];
            if (char.IsWhiteSpace(c) || c is ';' or ',')
            {
                i++;
                continue;
            }

            if (c is '{' or '[')
            {
                var end = MatchingClose(text, i);
                chunks.Add(new Chunk(text[i..end], true));
                i = end;
                continue;
            }

            var start = i;
            while (i < text.Length && text[i] is not ('{' or '[' or ';' or '\n'))
            {
                i++;
            }

            var junk = text[start..i].Trim();
            if (junk.Length > 0)
            {
                // A python-style call keeps its parenthesised arguments; swallow up to the separator.
                if (i < text.Length && text[i] is '{' or '[' && PythonCall().IsMatch(junk + "("))
                {
                    var close = MatchingClose(text, i);
                    junk = text[start..close];
                    i = close;
                }

                chunks.Add(new Chunk(junk, false));
            }
        }

        return chunks;
    }

    /// <summary>The index just past the bracket matching the one at <paramref name="open"/>, or the end of the text.</summary>
    private static int MatchingClose(string text, int open)
    {
        var depth = 0;
        var inString = false;
        for (var i = open; i < text.Length; i++)
        {
            var c = text[i];
            if (inString)
            {
                if (c == '\\')
                {
                    i++;
                }
                else if (c == '"')
                {
                    inString = false;
                }

                continue;
            }

            switch (c)
            {
                case '"':
                    inString = true;
                    break;
                case '{' or '[':
                    depth++;
                    break;
                case '}' or ']':
                    depth--;
                    if (depth == 0)
                    {
                        return i + 1;
                    }

                    break;
            }
        }

        return text.Length;
    }

    private static (JsonDocument? Document, string? Error) TryParse(string text)
    {
        try
        {
            return (JsonDocument.Parse(text), null);
        }
        catch (JsonException ex)
        {
            return (null, FirstSentence(ex.Message));
        }
    }

    private static string? CheckJsonObject(string text)
    {
        try
        {
            using var document = JsonDocument.Parse(text);
            return document.RootElement.ValueKind == JsonValueKind.Object ? null : "not an object";
        }
        catch (JsonException ex)
        {
            return FirstSentence(ex.Message);
        }
    }

    private static bool LooksLikeCall(string text) => NameKey().IsMatch(text) && ArgumentsKey().IsMatch(text);

    private static string? GuessName(string text)
    {
        var match = NameValue().Match(text);
        return match.Success ? match.Groups["name"].Value : null;
    }

    private static string FirstSentence(string message) => message.Split(" Path:", 2)[0].Split(" LineNumber:", 2)[0].TrimEnd();

    private static string DeriveId(string seed, int position, string name, string arguments)
    {
        var material = string.Create(CultureInfo.InvariantCulture, $"{seed.Length}:{seed}\n{position}\n{name.Length}:{name}\n{arguments}");
        return "call_" + CanonicalJson.Sha256Hex(material)[..24];
    }

    private static string RemoveSegments(string text, List<Segment> segments)
    {
        var builder = new StringBuilder();
        var cursor = 0;
        foreach (var segment in segments)
        {
            if (segment.Start > cursor)
            {
                builder.Append(text, cursor, segment.Start - cursor);
            }

            cursor = Math.Max(cursor, segment.End);
        }

        if (cursor < text.Length)
        {
            builder.Append(text, cursor, text.Length - cursor);
        }

        return SpecialToken().Replace(builder.ToString(), "").Trim();
    }

    [GeneratedRegex(@"<tool_call>(?<body>.*?)(?:</tool_call>|\z)", RegexOptions.Singleline | RegexOptions.CultureInvariant)]
    private static partial Regex ToolCallTag();

    [GeneratedRegex(@"<function=(?<name>[^>\s]+)>(?<body>.*?)(?:</function>|\z)", RegexOptions.Singleline | RegexOptions.CultureInvariant)]
    private static partial Regex FunctionTag();

    [GeneratedRegex(@"<\|python_tag\|>(?<body>.*?)(?:<\|eom_id\|>|<\|eot_id\|>|\z)", RegexOptions.Singleline | RegexOptions.CultureInvariant)]
    private static partial Regex PythonTag();

    [GeneratedRegex(@"```(?<lang>[A-Za-z_]*)[^\n`]*\n?(?<body>.*?)```", RegexOptions.Singleline | RegexOptions.CultureInvariant)]
    private static partial Regex Fence();

    [GeneratedRegex(@"""name""\s*:", RegexOptions.CultureInvariant)]
    private static partial Regex NameKey();

    [GeneratedRegex(@"""(?:arguments|parameters)""\s*:", RegexOptions.CultureInvariant)]
    private static partial Regex ArgumentsKey();

    [GeneratedRegex(@"""name""\s*:\s*""(?<name>[^""]{1,64})""", RegexOptions.CultureInvariant)]
    private static partial Regex NameValue();

    [GeneratedRegex(@"^[A-Za-z_][\w.]*\s*\(", RegexOptions.CultureInvariant)]
    private static partial Regex PythonCall();

    [GeneratedRegex(@"<\|(?:eot_id|eom_id|end_of_text|im_end)\|>|</?tool_call>", RegexOptions.CultureInvariant)]
    private static partial Regex SpecialToken();

    private sealed record Segment(int Start, int End, string Format, string Body, string? Name);

    private sealed record Chunk(string Text, bool IsJson);

    private sealed record Outcome(string? Name, string? Arguments, string? Id, string? Problem, string Source);
}

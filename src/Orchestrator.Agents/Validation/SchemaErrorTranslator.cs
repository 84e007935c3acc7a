using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;

namespace Orchestrator.Agents;

/// <summary>
/// Turns JsonSchema.Net's evaluation output into one problem per argument, in the schema's own
/// terms (the pattern, the allowed values, the bound), for the model to act on.
/// </summary>
internal static class SchemaErrorTranslator
{
    internal static IEnumerable<ToolArgumentError> Translate(RegisteredTool tool, JsonElement instance, EvaluationResults results, int maxQuoted)
    {
        var nodes = new List<EvaluationResults> { results };
        nodes.AddRange(results.Details ?? []);
        foreach (var node in nodes)
        {
            if (node.Errors is null)
            {
                continue;
            }

            var instancePath = Segments(node.InstanceLocation.ToString());
            var evaluationPath = Segments(node.EvaluationPath.ToString());
            var argument = ArgumentPath(instance, instancePath);
            var value = Navigate(instance, instancePath);
            foreach (var (keyword, libraryMessage) in node.Errors)
            {
                var subschema = ResolveSchema(tool.SchemaNode, evaluationPath);
                foreach (var error in Describe(tool, keyword, libraryMessage, argument, instancePath, value, subschema, evaluationPath, maxQuoted))
                {
                    yield return error;
                }
            }
        }
    }

    internal static string Quote(RegisteredTool tool, string argument, JsonElement? value, int maxQuoted)
    {
        if (value is not { } v || maxQuoted == 0 || tool.IsSensitive(StripIndexes(argument)))
        {
            return "";
        }

        var text = v.ValueKind == JsonValueKind.String ? JsonSerializer.Serialize(v.GetString()) : CanonicalJson.Canonicalize(v);
        return text.Length <= maxQuoted ? $" (got {text})" : "";
    }

    private static IEnumerable<ToolArgumentError> Describe(
        RegisteredTool tool,
        string keyword,
        string libraryMessage,
        string argument,
        IReadOnlyList<string> instancePath,
        JsonElement? value,
        JsonNode? subschema,
        IReadOnlyList<string> evaluationPath,
        int maxQuoted)
    {
        var name = argument.Length == 0 ? "the arguments" : $"'{argument}'";
        var got = Quote(tool, argument, value, maxQuoted);
        switch (keyword)
        {
            case "required":
                var required = (subschema?["required"] as JsonArray)?.Select(n => n?.GetValue<string>()).OfType<string>() ?? [];
                var missing = required.Where(r => value is not { ValueKind: JsonValueKind.Object } v || !v.TryGetProperty(r, out _)).ToArray();
                if (missing.Length == 0)
                {
                    yield return new(argument, "required", $"{name}: {libraryMessage}");
                }

                foreach (var m in missing)
                {
                    var path = Join(argument, m);
                    yield return new(path, "required", $"'{path}' is required but missing");
                }

                break;
            case "" when evaluationPath.Count > 0 && evaluationPath[^1] is "additionalProperties" or "unevaluatedProperties":
                var parent = ResolveSchema(tool.SchemaNode, evaluationPath.Take(evaluationPath.Count - 1).ToArray());
                var allowed = (parent?["properties"] as JsonObject)?.Select(p => p.Key).ToArray() ?? [];
                yield return new(argument, "unknown", UnknownProblem(argument, allowed));
                break;
            case "type":
                var expected = subschema?["type"] switch
                {
                    JsonValue v => v.ToString(),
                    JsonArray a => string.Join(" or ", a.Select(t => t?.ToString())),
                    _ => "another type",
                };
                yield return new(argument, "type", $"{name} must be of type {expected}, not {KindName(value)}{got}");
                break;
            case "enum":
                var options = subschema?["enum"] is JsonArray e ? string.Join(", ", e.Select(o => o?.ToJsonString() ?? "null")) : "the listed values";
                yield return new(argument, "enum", $"{name} must be one of {options}{got}");
                break;
            case "const":
                yield return new(argument, "const", $"{name} must be {subschema?["const"]?.ToJsonString() ?? "the fixed value"}{got}");
                break;
            case "pattern":
                yield return new(argument, "pattern", $"{name} does not match the required format {subschema?["pattern"]}{got}");
                break;
            case "minimum":
            case "maximum":
            case "exclusiveMinimum":
            case "exclusiveMaximum":
                var op = keyword switch { "minimum" => ">=", "maximum" => "<=", "exclusiveMinimum" => ">", _ => "<" };
                yield return new(argument, "range", $"{name} must be {op} {subschema?[keyword]}{got}");
                break;
            case "multipleOf":
                yield return new(argument, "range", $"{name} must be a multiple of {subschema?[keyword]}{got}");
                break;
            case "minLength":
            case "maxLength":
            case "minItems":
            case "maxItems":
            case "minProperties":
            case "maxProperties":
                var bound = keyword.StartsWith("min", StringComparison.Ordinal) ? "at least" : "at most";
                var unit = keyword.EndsWith("Length", StringComparison.Ordinal) ? "characters" : keyword.EndsWith("Items", StringComparison.Ordinal) ? "items" : "properties";
                yield return new(argument, "length", $"{name} must have {bound} {subschema?[keyword]} {unit}{got}");
                break;
            case "format":
                yield return new(argument, "format", $"{name} must be a valid {subschema?["format"]}{got}");
                break;
            default:
                yield return new(argument, "invalid", $"{name}: {libraryMessage}");
                break;
        }
    }

    internal static string UnknownProblem(string argument, IReadOnlyList<string> allowed) =>
        allowed.Count == 0
            ? $"'{argument}' is not an argument of this tool"
            : $"'{argument}' is not an argument of this tool (allowed: {string.Join(", ", allowed)})";

    private static string KindName(JsonElement? value) => value?.ValueKind switch
    {
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Object => "object",
        JsonValueKind.Array => "array",
        JsonValueKind.Null => "null",
        _ => "missing",
    };

    private static IReadOnlyList<string> Segments(string pointer)
    {
        var text = pointer.StartsWith('#') ? pointer[1..] : pointer;
        if (text.Length == 0)
        {
            return [];
        }

        return text.TrimStart('/').Split('/').Select(s => s.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal)).ToArray();
    }

    private static string ArgumentPath(JsonElement instance, IReadOnlyList<string> segments)
    {
        var builder = new StringBuilder();
        JsonElement? current = instance;
        foreach (var segment in segments)
        {
            if (current is { ValueKind: JsonValueKind.Array } array && int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out var index))
            {
                builder.Append('[').Append(segment).Append(']');
                current = index < array.GetArrayLength() ? array[index] : null;
            }
            else
            {
                if (builder.Length > 0)
                {
                    builder.Append('.');
                }

                builder.Append(segment);
                current = current is { ValueKind: JsonValueKind.Object } obj && obj.TryGetProperty(segment, out var child) ? child : null;
            }
        }

        return builder.ToString();
    }

    private static JsonElement? Navigate(JsonElement instance, IReadOnlyList<string> segments)
    {
        JsonElement? current = instance;
        foreach (var segment in segments)
        {
            current = current switch
            {
                { ValueKind: JsonValueKind.Object } o when o.TryGetProperty(segment, out var child) => child,
                { ValueKind: JsonValueKind.Array } a when int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out var i) && i < a.GetArrayLength() => a[i],
                _ => null,
            };
        }

        return current;
    }

    /// <summary>
    /// The subschema at an evaluation path, following local <c>$ref</c>s; null when it cannot be found.
    /// JsonSchema.Net 8.0.5 repeats the <c>items</c> segment (<c>/properties/x/items/items</c> for
    /// <c>properties.x.items</c>), so a segment that does not resolve is skipped: the path is only
    /// used to word the message, and the schema evaluation itself decided validity.
    /// </summary>
    private static JsonNode? ResolveSchema(JsonObject root, IReadOnlyList<string> evaluationPath)
    {
        JsonNode? current = root;
        foreach (var segment in evaluationPath)
        {
            if (segment == "$ref" && current?["$ref"] is JsonValue reference && reference.ToString().StartsWith("#", StringComparison.Ordinal))
            {
                current = ResolveSchema(root, Segments(reference.ToString()));
                continue;
            }

            var next = current switch
            {
                JsonObject o => o[segment],
                JsonArray a when int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out var i) && i < a.Count => a[i],
                _ => null,
            };
            current = next ?? current;
        }

        return current;
    }

    private static string Join(string parent, string child) => parent.Length == 0 ? child : $"{parent}.{child}";

    internal static string StripIndexes(string argument)
    {
        var builder = new StringBuilder(argument.Length);
        var depth = 0;
        foreach (var c in argument)
        {
            if (c == '[')
            {
                depth++;
            }
            else if (c == ']')
            {
                depth--;
            }
            else if (depth == 0)
            {
                builder.Append(c);
            }
        }

        return builder.ToString();
    }
}

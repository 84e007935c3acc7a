using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Orchestrator.Agents;

/// <summary>
/// The canonical form of argument JSON: object keys sorted by ordinal (UTF-16) order, no
/// insignificant whitespace, numbers normalized (<c>47</c>, <c>47.0</c> and <c>4.7e1</c> are all
/// <c>47</c>), strings escaped minimally. Two argument strings that mean the same thing have the
/// same canonical form, and so the same hash.
/// </summary>
// WARNING: the canonical form feeds argument hashes, semantic-repeat keys and confirmation
// bindings that are persisted in history and compared across deployments. Changing any rule here
// makes old hashes unequal to new ones: an approved confirmation would no longer match, and a
// repeated refund would no longer be recognised as a repeat.
internal static class CanonicalJson
{
    /// <summary>Rejects duplicate keys (ambiguous: parsers disagree on which one wins) and deep nesting.</summary>
    internal static readonly JsonDocumentOptions ParseOptions = new()
    {
        AllowDuplicateProperties = false,
        MaxDepth = 64,
        CommentHandling = JsonCommentHandling.Disallow,
        AllowTrailingCommas = false,
    };

    internal static string Canonicalize(JsonElement element)
    {
        var builder = new StringBuilder();
        Write(builder, element);
        return builder.ToString();
    }

    internal static string Sha256Hex(string text) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    private static void Write(StringBuilder builder, JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                builder.Append('{');
                var first = true;
                foreach (var property in element.EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal))
                {
                    if (!first)
                    {
                        builder.Append(',');
                    }

                    first = false;
                    WriteString(builder, property.Name);
                    builder.Append(':');
                    Write(builder, property.Value);
                }

                builder.Append('}');
                break;
            case JsonValueKind.Array:
                builder.Append('[');
                var firstItem = true;
                foreach (var item in element.EnumerateArray())
                {
                    if (!firstItem)
                    {
                        builder.Append(',');
                    }

                    firstItem = false;
                    Write(builder, item);
                }

                builder.Append(']');
                break;
            case JsonValueKind.String:
                WriteString(builder, element.GetString()!);
                break;
            case JsonValueKind.Number:
                builder.Append(NormalizeNumber(element.GetRawText()));
                break;
            case JsonValueKind.True:
                builder.Append("true");
                break;
            case JsonValueKind.False:
                builder.Append("false");
                break;
            default:
                builder.Append("null");
                break;
        }
    }

    /// <summary>
    /// Exact decimal form when the value fits a <see cref="decimal"/> (money must not pass through
    /// binary floating point): no exponent, no trailing fractional zeros, no negative zero. Values
    /// beyond decimal's range fall back to the shortest round-trip double form.
    /// </summary>
    internal static string NormalizeNumber(string raw)
    {
        if (decimal.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
        {
            if (value == 0m)
            {
                // 1e-40 parses as decimal zero; only a true zero may become "0".
                var mantissa = raw.Split('e', 'E')[0];
                if (!mantissa.Any(ch => ch is >= '1' and <= '9'))
                {
                    return "0";
                }

                return NormalizeDouble(raw);
            }

            // "G29"-style trimming without switching to exponent notation.
            var text = value.ToString("F28", CultureInfo.InvariantCulture);
            if (text.Contains('.', StringComparison.Ordinal))
            {
                text = text.TrimEnd('0').TrimEnd('.');
            }

            return text;
        }

        return NormalizeDouble(raw);
    }

    private static string NormalizeDouble(string raw)
    {
        var d = double.Parse(raw, NumberStyles.Float, CultureInfo.InvariantCulture);
        return d.ToString("R", CultureInfo.InvariantCulture).Replace("E+", "e+", StringComparison.Ordinal).Replace("E-", "e-", StringComparison.Ordinal);
    }

    private static void WriteString(StringBuilder builder, string value)
    {
        builder.Append('"');
        foreach (var c in value)
        {
            switch (c)
            {
                case '"': builder.Append("\\\""); break;
                case '\\': builder.Append("\\\\"); break;
                case '\b': builder.Append("\\b"); break;
                case '\f': builder.Append("\\f"); break;
                case '\n': builder.Append("\\n"); break;
                case '\r': builder.Append("\\r"); break;
                case '\t': builder.Append("\\t"); break;
                default:
                    if (c < 0x20)
                    {
                        builder.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        builder.Append(c);
                    }

                    break;
            }
        }

        builder.Append('"');
    }
}

/// <summary>Tree walking for schema checks.</summary>
internal static class JsonNodeExtensions
{
    internal static IEnumerable<System.Text.Json.Nodes.JsonNode> DescendantsAndSelf(this System.Text.Json.Nodes.JsonNode node)
    {
        var stack = new Stack<System.Text.Json.Nodes.JsonNode>();
        stack.Push(node);
        while (stack.Count > 0)
        {
            var current = stack.Pop();
            yield return current;
            var children = current switch
            {
                System.Text.Json.Nodes.JsonObject o => o.Select(p => p.Value),
                System.Text.Json.Nodes.JsonArray a => a.AsEnumerable(),
                _ => [],
            };
            foreach (var child in children.OfType<System.Text.Json.Nodes.JsonNode>().Reverse())
            {
                stack.Push(child);
            }
        }
    }
}

using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Orchestrator.Agents;

/// <summary>
/// A parsed confirmation summary such as <c>"Refund ${amount:0.00} for order {order_id}"</c>:
/// <c>{name}</c> or <c>{name:format}</c> placeholders (a .NET numeric format, invariant culture,
/// for numbers), <c>{{</c> and <c>}}</c> for literal braces.
/// </summary>
internal sealed class SummaryTemplate
{
    private readonly IReadOnlyList<Segment> _segments;

    private SummaryTemplate(IReadOnlyList<Segment> segments) => _segments = segments;

    internal IEnumerable<string> Placeholders => _segments.Where(s => s.IsPlaceholder).Select(s => s.Text);

    internal static bool TryParse(string template, out SummaryTemplate? result, out string? error)
    {
        var segments = new List<Segment>();
        var literal = new StringBuilder();
        for (var i = 0; i < template.Length; i++)
        {
            var c = template[i];
            if (c == '{' && i + 1 < template.Length && template[i + 1] == '{')
            {
                literal.Append('{');
                i++;
            }
            else if (c == '}' && i + 1 < template.Length && template[i + 1] == '}')
            {
                literal.Append('}');
                i++;
            }
            else if (c == '{')
            {
                var end = template.IndexOf('}', i + 1);
                if (end < 0)
                {
                    (result, error) = (null, $"summary template has an unclosed '{{' at position {i}");
                    return false;
                }

                var body = template[(i + 1)..end];
                var colon = body.IndexOf(':', StringComparison.Ordinal);
                var name = colon < 0 ? body : body[..colon];
                var format = colon < 0 ? null : body[(colon + 1)..];
                if (name.Length == 0 || name.Contains('{', StringComparison.Ordinal))
                {
                    (result, error) = (null, $"summary template has an empty or malformed placeholder at position {i}");
                    return false;
                }

                if (literal.Length > 0)
                {
                    segments.Add(new Segment(false, literal.ToString(), null));
                    literal.Clear();
                }

                segments.Add(new Segment(true, name, format));
                i = end;
            }
            else if (c == '}')
            {
                (result, error) = (null, $"summary template has an unmatched '}}' at position {i}");
                return false;
            }
            else
            {
                literal.Append(c);
            }
        }

        if (literal.Length > 0)
        {
            segments.Add(new Segment(false, literal.ToString(), null));
        }

        (result, error) = (new SummaryTemplate(segments), null);
        return true;
    }

    /// <summary>Fills the placeholders; an omitted argument shows the schema's default (what the tool will use), else "(not given)".</summary>
    internal string Render(JsonElement arguments, System.Text.Json.Nodes.JsonObject? schemaProperties)
    {
        var builder = new StringBuilder();
        foreach (var segment in _segments)
        {
            if (!segment.IsPlaceholder)
            {
                builder.Append(segment.Text);
                continue;
            }

            if (!arguments.TryGetProperty(segment.Text, out var value))
            {
                if (schemaProperties?[segment.Text]?["default"] is not { } fallback)
                {
                    builder.Append("(not given)");
                    continue;
                }

                using var document = JsonDocument.Parse(fallback.ToJsonString());
                value = document.RootElement.Clone();
            }

            builder.Append(value.ValueKind switch
            {
                JsonValueKind.String => value.GetString(),
                JsonValueKind.Number when segment.Format is not null
                    && decimal.TryParse(value.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture, out var number)
                    => number.ToString(segment.Format, CultureInfo.InvariantCulture),
                _ => CanonicalJson.Canonicalize(value),
            });
        }

        return builder.ToString();
    }

    private sealed record Segment(bool IsPlaceholder, string Text, string? Format);
}

using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Json.Schema;

namespace Orchestrator.Agents;

/// <summary>
/// Collects tool definitions and checks them as a set. <see cref="Build"/> refuses a bad tool set
/// with one <see cref="ToolRegistryException"/> listing every problem: invalid, duplicate or
/// case-ambiguous names, schemas that are not valid JSON Schema, metadata that names arguments
/// the schema lacks, dependencies on unknown tools and dependency cycles.
/// </summary>
/// <remarks>Not thread-safe; build once at startup.</remarks>
public sealed partial class ToolRegistryBuilder
{
    private const int MaxNameLength = 64;
    private readonly List<ToolDefinition> _tools = [];

    /// <summary>Adds a tool. Nothing is checked until <see cref="Build"/>.</summary>
    /// <param name="tool">The tool.</param>
    /// <returns>This builder.</returns>
    public ToolRegistryBuilder Add(ToolDefinition tool)
    {
        ArgumentNullException.ThrowIfNull(tool);
        _tools.Add(tool);
        return this;
    }

    /// <summary>Adds several tools.</summary>
    /// <param name="tools">The tools.</param>
    /// <returns>This builder.</returns>
    public ToolRegistryBuilder AddRange(IEnumerable<ToolDefinition> tools)
    {
        ArgumentNullException.ThrowIfNull(tools);
        foreach (var tool in tools)
        {
            Add(tool);
        }

        return this;
    }

    /// <summary>Checks the tool set and returns it, or throws listing every problem.</summary>
    /// <exception cref="ToolRegistryException">The tool set has at least one problem.</exception>
    public ToolRegistry Build()
    {
        var problems = new List<string>();
        var registered = new List<RegisteredTool>();
        CheckNames(problems);
        for (var i = 0; i < _tools.Count; i++)
        {
            var tool = _tools[i];
            var label = IsValidName(tool.Name) ? $"tool '{tool.Name}'" : $"tool #{i + 1}";
            var compiled = Compile(tool, label, problems);
            if (compiled is not null)
            {
                registered.Add(compiled);
            }
        }

        CheckDependencies(problems);
        if (problems.Count > 0)
        {
            throw new ToolRegistryException(problems);
        }

        return new ToolRegistry(registered);
    }

    internal static bool IsValidName(string? name) => name is not null && NamePattern().IsMatch(name);

    private void CheckNames(List<string> problems)
    {
        for (var i = 0; i < _tools.Count; i++)
        {
            var name = _tools[i].Name;
            if (!IsValidName(name))
            {
                problems.Add($"tool #{i + 1}: name '{name}' is invalid: use 1 to {MaxNameLength} characters of A-Z, a-z, 0-9, '_' and '-'");
            }
        }

        foreach (var group in _tools.Select(t => t.Name).Where(IsValidName).GroupBy(n => n, StringComparer.OrdinalIgnoreCase))
        {
            var spellings = group.Distinct(StringComparer.Ordinal).ToArray();
            if (spellings.Length > 1)
            {
                problems.Add($"tool names {string.Join(", ", spellings.Select(s => $"'{s}'"))} differ only in case: the model cannot be relied on to tell them apart");
            }

            foreach (var spelling in spellings.Where(s => group.Count(n => n == s) > 1))
            {
                problems.Add($"tool '{spelling}' is registered {group.Count(n => n == spelling)} times");
            }
        }
    }

    private static RegisteredTool? Compile(ToolDefinition tool, string label, List<string> problems)
    {
        var before = problems.Count;
        if (string.IsNullOrWhiteSpace(tool.Description))
        {
            problems.Add($"{label}: description is empty");
        }

        if (tool.Timeout <= TimeSpan.Zero)
        {
            problems.Add($"{label}: timeout must be positive (was {tool.Timeout})");
        }

        if (tool.MaxRetries < 0)
        {
            problems.Add($"{label}: MaxRetries must be 0 or more (was {tool.MaxRetries})");
        }

        if (tool.MaxConcurrency is < 1)
        {
            problems.Add($"{label}: MaxConcurrency must be at least 1 (was {tool.MaxConcurrency})");
        }

        problems.AddRange((tool.RateLimit?.Problems() ?? []).Select(p => $"{label}: {p}"));

        if (tool.Validator is not null)
        {
            if (tool.ArgumentsType is null)
            {
                problems.Add($"{label}: a Validator needs ArgumentsType, the type the arguments are deserialized to before the rules run");
            }
            else if (!tool.Validator.CanValidateInstancesOfType(tool.ArgumentsType))
            {
                problems.Add($"{label}: the Validator cannot validate {tool.ArgumentsType.Name}, the tool's ArgumentsType");
            }
        }

        var (schema, node) = BuildSchema(tool.ParametersSchema, tool.Name, label, problems);
        if (node is null || schema is null)
        {
            return null;
        }

        var properties = node["properties"] is JsonObject props ? props.Select(p => p.Key).ToArray() : [];
        var allowsUnknown = node["additionalProperties"] is { } additional
            && !(additional.GetValueKind() == JsonValueKind.False);

        foreach (var name in tool.ResourceKeyArguments.Where(n => !properties.Contains(n, StringComparer.Ordinal)))
        {
            problems.Add($"{label}: resource key argument '{name}' is not a property of its schema");
        }

        foreach (var path in tool.SensitiveArguments)
        {
            var top = path.Split('.')[0];
            if (!properties.Contains(top, StringComparer.Ordinal))
            {
                problems.Add($"{label}: sensitive argument '{path}' is not a property of its schema");
            }
        }

        SummaryTemplate? summary = null;
        if (tool.SummaryTemplate is not null)
        {
            if (!SummaryTemplate.TryParse(tool.SummaryTemplate, out summary, out var error))
            {
                problems.Add($"{label}: {error}");
            }
            else
            {
                foreach (var placeholder in summary!.Placeholders.Distinct(StringComparer.Ordinal))
                {
                    if (!properties.Contains(placeholder, StringComparer.Ordinal))
                    {
                        problems.Add($"{label}: summary template placeholder '{{{placeholder}}}' is not a property of its schema");
                    }
                    else if (tool.SensitiveArguments.Any(s => s == placeholder || s.StartsWith(placeholder + ".", StringComparison.Ordinal)))
                    {
                        problems.Add($"{label}: summary template shows '{placeholder}', which is marked sensitive");
                    }
                }
            }
        }

        return problems.Count == before
            ? new RegisteredTool(tool, schema, node, properties, allowsUnknown, summary)
            : null;
    }

    private static (JsonSchema? Schema, JsonObject? Node) BuildSchema(string? text, string name, string label, List<string> problems)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            problems.Add($"{label}: the argument schema is empty");
            return (null, null);
        }

        JsonNode? parsed;
        try
        {
            parsed = JsonNode.Parse(text, documentOptions: CanonicalJson.ParseOptions);
        }
        catch (JsonException ex)
        {
            problems.Add($"{label}: the argument schema is not valid JSON: {ex.Message}");
            return (null, null);
        }

        if (parsed is not JsonObject node)
        {
            problems.Add($"{label}: the argument schema must be a JSON object");
            return (null, null);
        }

        if (node["type"] is not JsonValue type || type.GetValueKind() != JsonValueKind.String || type.GetValue<string>() != "object")
        {
            problems.Add($"{label}: the argument schema's root must have \"type\": \"object\" (arguments are always an object)");
            return (null, null);
        }

        var badReference = node.DescendantsAndSelf()
            .Select(n => n is JsonObject o && o["$ref"] is JsonValue r && r.GetValueKind() == JsonValueKind.String ? r.GetValue<string>() : null)
            .OfType<string>()
            .FirstOrDefault(r => !ResolvesLocally(node, r));
        if (badReference is not null)
        {
            problems.Add($"{label}: the argument schema is not valid JSON Schema: \"$ref\": \"{badReference}\" does not resolve inside the schema (tool schemas must be self-contained)");
            return (null, null);
        }

        try
        {
            // A private registry per tool: two tools with the same $id must not collide in the global one.
            var options = new BuildOptions { SchemaRegistry = new SchemaRegistry() };
            var baseUri = new Uri($"https://tools.orchestrator.invalid/{(IsValidName(name) ? name : "unnamed")}");
            var schema = JsonSchema.FromText(text, options, baseUri);

            // Evaluating once surfaces problems the build defers (an unresolvable $ref) at startup, not on the first call.
            using var empty = JsonDocument.Parse("{}");
            _ = schema.Evaluate(empty.RootElement, new EvaluationOptions { OutputFormat = OutputFormat.Flag });
            return (schema, node);
        }
        catch (Exception ex) when (ex is JsonSchemaException or JsonException or ArgumentException or RegexParseException or InvalidOperationException or NotSupportedException or UriFormatException)
        {
            problems.Add($"{label}: the argument schema is not valid JSON Schema: {ex.Message}");
            return (null, null);
        }
    }

    private static bool ResolvesLocally(JsonObject root, string reference)
    {
        if (reference == "#")
        {
            return true;
        }

        if (!reference.StartsWith("#/", StringComparison.Ordinal))
        {
            return false;
        }

        JsonNode? current = root;
        foreach (var raw in reference[2..].Split('/'))
        {
            var segment = Uri.UnescapeDataString(raw).Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
            current = current switch
            {
                JsonObject o => o[segment],
                JsonArray a when int.TryParse(segment, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var i) && i < a.Count => a[i],
                _ => null,
            };
            if (current is null)
            {
                return false;
            }
        }

        return true;
    }

    private void CheckDependencies(List<string> problems)
    {
        var known = _tools.Select(t => t.Name).Where(IsValidName).ToHashSet(StringComparer.Ordinal);
        foreach (var tool in _tools.Where(t => IsValidName(t.Name)))
        {
            foreach (var dependency in tool.DependsOn)
            {
                if (dependency == tool.Name)
                {
                    problems.Add($"tool '{tool.Name}' depends on itself");
                }
                else if (!known.Contains(dependency))
                {
                    problems.Add($"tool '{tool.Name}' depends on unknown tool '{dependency}'");
                }
            }
        }

        var graph = _tools.Where(t => IsValidName(t.Name))
            .GroupBy(t => t.Name, StringComparer.Ordinal)
            .ToDictionary(
                g => g.Key,
                g => g.SelectMany(t => t.DependsOn).Where(d => known.Contains(d) && d != g.Key).Distinct(StringComparer.Ordinal).ToArray(),
                StringComparer.Ordinal);
        foreach (var cycle in FindCycles(graph))
        {
            problems.Add($"tool dependency cycle: {string.Join(" -> ", cycle)}");
        }
    }

    /// <summary>Each cycle once, as a path that returns to its start; deterministic (registration order).</summary>
    private static IEnumerable<IReadOnlyList<string>> FindCycles(Dictionary<string, string[]> graph)
    {
        var state = new Dictionary<string, int>(StringComparer.Ordinal); // 0 new, 1 on stack, 2 done
        var stack = new List<string>();
        var cycles = new List<IReadOnlyList<string>>();

        void Visit(string node)
        {
            state[node] = 1;
            stack.Add(node);
            foreach (var next in graph[node])
            {
                var s = state.GetValueOrDefault(next);
                if (s == 1)
                {
                    var start = stack.IndexOf(next);
                    cycles.Add([.. stack.Skip(start), next]);
                }
                else if (s == 0)
                {
                    Visit(next);
                }
            }

            stack.RemoveAt(stack.Count - 1);
            state[node] = 2;
        }

        foreach (var node in graph.Keys)
        {
            if (state.GetValueOrDefault(node) == 0)
            {
                Visit(node);
            }
        }

        return cycles;
    }

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$", RegexOptions.CultureInvariant)]
    private static partial Regex NamePattern();
}

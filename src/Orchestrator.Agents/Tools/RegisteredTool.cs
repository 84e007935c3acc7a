using System.Text.Json.Nodes;
using Json.Schema;

namespace Orchestrator.Agents;

/// <summary>A tool that passed the startup checks, with its schema built once for every validation.</summary>
internal sealed class RegisteredTool
{
    internal RegisteredTool(
        ToolDefinition definition,
        JsonSchema schema,
        JsonObject schemaNode,
        IReadOnlyList<string> properties,
        bool allowsUnknownArguments,
        SummaryTemplate? summary)
    {
        Definition = definition;
        Schema = schema;
        SchemaNode = schemaNode;
        Properties = properties;
        AllowsUnknownArguments = allowsUnknownArguments;
        Summary = summary;
        SensitivePaths = definition.SensitiveArguments.ToHashSet(StringComparer.Ordinal);
    }

    internal ToolDefinition Definition { get; }

    internal string Name => Definition.Name;

    internal JsonSchema Schema { get; }

    /// <summary>The schema as a tree, to explain errors in the schema's own terms (the pattern, the enum, the bounds).</summary>
    internal JsonObject SchemaNode { get; }

    /// <summary>The top-level argument names the schema declares, in schema order.</summary>
    internal IReadOnlyList<string> Properties { get; }

    /// <summary>True only when the schema's root explicitly allows undeclared arguments.</summary>
    internal bool AllowsUnknownArguments { get; }

    internal SummaryTemplate? Summary { get; }

    internal IReadOnlySet<string> SensitivePaths { get; }

    internal bool IsSensitive(string path) =>
        SensitivePaths.Contains(path) || SensitivePaths.Any(p => path.StartsWith(p + ".", StringComparison.Ordinal));
}

using System.Diagnostics.CodeAnalysis;

namespace Orchestrator.Agents;

/// <summary>
/// A checked, immutable tool set. Build one with <see cref="ToolRegistryBuilder"/>.
/// </summary>
/// <remarks>Thread-safe: nothing changes after <see cref="ToolRegistryBuilder.Build"/>.</remarks>
public sealed class ToolRegistry
{
    private readonly Dictionary<string, RegisteredTool> _byName;

    internal ToolRegistry(IReadOnlyList<RegisteredTool> tools)
    {
        RegisteredTools = tools;
        Tools = tools.Select(t => t.Definition).ToArray();
        _byName = tools.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    /// <summary>The tools, in registration order (the order their schemas are sent to the model).</summary>
    public IReadOnlyList<ToolDefinition> Tools { get; }

    internal IReadOnlyList<RegisteredTool> RegisteredTools { get; }

    /// <summary>Finds a tool by its exact (case-sensitive) name.</summary>
    /// <param name="name">The name the model used.</param>
    /// <param name="tool">The tool, when found.</param>
    /// <returns>Whether the tool exists.</returns>
    public bool TryGet(string name, [NotNullWhen(true)] out ToolDefinition? tool)
    {
        tool = _byName.TryGetValue(name, out var registered) ? registered.Definition : null;
        return tool is not null;
    }

    /// <summary>
    /// The argument string with every value marked sensitive replaced by <c>"[REDACTED]"</c>, for
    /// logs and stored history. Arguments without sensitive values come back unchanged (byte for
    /// byte); unparseable arguments of a tool that has sensitive arguments are replaced whole, since
    /// where the secret sits cannot be known.
    /// </summary>
    /// <param name="toolName">The tool the arguments were proposed for.</param>
    /// <param name="rawArguments">The raw argument string.</param>
    public string Redact(string toolName, string rawArguments) =>
        _byName.TryGetValue(toolName, out var tool) ? ArgumentRedactor.RedactRaw(tool, rawArguments) : rawArguments;

    internal RegisteredTool? Find(string name) => _byName.GetValueOrDefault(name);
}

using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Tokenizers;

namespace Orchestrator.Agents;

/// <summary>What the tool schemas cost in the model's context window.</summary>
public sealed record ToolSchemaCostOptions
{
    /// <summary>The model name; gpt-4o-family names (gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o1, o3, o4, chatgpt-4o) count with o200k_base, all others with cl100k_base. Required.</summary>
    public required string ModelName { get; init; }

    /// <summary>The model's context window in tokens. Required; must be positive.</summary>
    public required int ContextWindowTokens { get; init; }

    /// <summary>The share of the window above which the report warns. Default 0.20; must be in (0, 1].</summary>
    public double WarningThreshold { get; init; } = 0.20;

    internal ToolSchemaCostOptions Validated()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(ModelName, nameof(ModelName));
        ArgumentOutOfRangeException.ThrowIfLessThan(ContextWindowTokens, 1, nameof(ContextWindowTokens));
        if (!(WarningThreshold > 0 && WarningThreshold <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(WarningThreshold), WarningThreshold, "Must be in (0, 1].");
        }

        return this;
    }
}

/// <summary>The tokens one tool's definition takes.</summary>
/// <param name="ToolName">The tool.</param>
/// <param name="Tokens">Tokens of its definition as sent to the model.</param>
public sealed record ToolTokenCost(string ToolName, int Tokens);

/// <summary>The token cost of a tool set, measured at startup.</summary>
/// <param name="ModelName">The model it was measured for.</param>
/// <param name="Encoding">The tokenizer encoding used (o200k_base or cl100k_base).</param>
/// <param name="TotalTokens">Tokens of all tool definitions together.</param>
/// <param name="ContextWindowTokens">The model's context window.</param>
/// <param name="ShareOfContextWindow">TotalTokens / ContextWindowTokens.</param>
/// <param name="ExceedsThreshold">Whether the share is above the configured threshold: a warning to act on (fewer or terser tools).</param>
/// <param name="Tools">Per tool, in registration order.</param>
public sealed record ToolSchemaCostReport(
    string ModelName,
    string Encoding,
    int TotalTokens,
    int ContextWindowTokens,
    double ShareOfContextWindow,
    bool ExceedsThreshold,
    IReadOnlyList<ToolTokenCost> Tools);

/// <summary>Measures how many tokens the tool schemas take, with Microsoft.ML.Tokenizers.</summary>
/// <remarks>
/// Each tool is counted as the JSON of its OpenAI <c>tools</c> entry
/// (<c>{"type":"function","function":{"name","description","parameters"}}</c>); providers add a
/// little framing of their own, so treat the numbers as a close estimate. Thread-safe.
/// </remarks>
public static class ToolSchemaCost
{
    private static readonly string[] O200kPrefixes = ["gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4"];
    private static readonly Lazy<Tokenizer> O200k = new(() => TiktokenTokenizer.CreateForEncoding("o200k_base"));
    private static readonly Lazy<Tokenizer> Cl100k = new(() => TiktokenTokenizer.CreateForEncoding("cl100k_base"));

    /// <summary>The encoding used for a model name: o200k_base for the gpt-4o family, cl100k_base otherwise.</summary>
    /// <param name="modelName">The model name, optionally with a provider prefix such as <c>openai/</c>.</param>
    public static string EncodingFor(string modelName)
    {
        ArgumentNullException.ThrowIfNull(modelName);
        var name = modelName[(modelName.LastIndexOf('/') + 1)..].ToLowerInvariant();
        return O200kPrefixes.Any(p => name.StartsWith(p, StringComparison.Ordinal)) ? "o200k_base" : "cl100k_base";
    }

    /// <summary>Measures a tool set.</summary>
    /// <param name="registry">The tools.</param>
    /// <param name="options">The model and its window.</param>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public static ToolSchemaCostReport Measure(ToolRegistry registry, ToolSchemaCostOptions options)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(options);
        options.Validated();
        var encoding = EncodingFor(options.ModelName);
        var tokenizer = encoding == "o200k_base" ? O200k.Value : Cl100k.Value;
        var tools = registry.Tools.Select(t => new ToolTokenCost(t.Name, tokenizer.CountTokens(WireJson(t)))).ToArray();
        var total = tools.Sum(t => t.Tokens);
        var share = (double)total / options.ContextWindowTokens;
        return new ToolSchemaCostReport(options.ModelName, encoding, total, options.ContextWindowTokens, share, share > options.WarningThreshold, tools);
    }

    /// <summary>
    /// Measures a tool set and logs the result: for a host to call once at startup. One information line with the total
    /// and its share of the context window; a warning (event id 4013) when the share is above
    /// <see cref="ToolSchemaCostOptions.WarningThreshold"/>, naming the largest tools. Lines carry tool names and counts only.
    /// </summary>
    /// <param name="registry">The tools.</param>
    /// <param name="options">The model and its window.</param>
    /// <param name="logger">Where the lines go.</param>
    /// <returns>The measurement.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public static ToolSchemaCostReport MeasureAndLog(ToolRegistry registry, ToolSchemaCostOptions options, Microsoft.Extensions.Logging.ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(logger);
        var report = Measure(registry, options);
        Log.SchemaCost(logger, report.TotalTokens, report.Encoding, report.ModelName, report.ShareOfContextWindow * 100, report.ContextWindowTokens);
        if (report.ExceedsThreshold)
        {
            var largest = string.Join(", ", report.Tools.OrderByDescending(t => t.Tokens).Take(3).Select(t => $"{t.ToolName} ({t.Tokens})"));
            Log.SchemaCostHigh(logger, report.ShareOfContextWindow * 100, report.TotalTokens, report.ContextWindowTokens, options.WarningThreshold * 100, largest);
        }

        return report;
    }

    internal static string WireJson(ToolDefinition tool)
    {
        var entry = new JsonObject
        {
            ["type"] = "function",
            ["function"] = new JsonObject
            {
                ["name"] = tool.Name,
                ["description"] = tool.Description,
                ["parameters"] = JsonNode.Parse(tool.ParametersSchema),
            },
        };
        return entry.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }
}

using System.Text.Json;
using FluentValidation;

namespace Orchestrator.Agents;

/// <summary>
/// A tool the model may call: its name, description, the JSON Schema of its arguments and the
/// metadata the orchestrator needs to run it safely. Build one with
/// <see cref="FromArguments{TArguments}"/> (schema generated from a C# record) or
/// <see cref="FromJsonSchema"/> (schema given as JSON, for tools defined in configuration), then
/// customise it with a <c>with</c> expression. Nothing is checked here:
/// <see cref="ToolRegistryBuilder.Build"/> checks the whole tool set at startup.
/// </summary>
public sealed record ToolDefinition
{
    /// <summary>Default <see cref="Timeout"/>: 5 seconds.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Default <see cref="MaxRetries"/>: 3.</summary>
    public const int DefaultMaxRetries = 3;

    /// <summary>
    /// The tool name the model uses: 1 to 64 characters of <c>[A-Za-z0-9_-]</c> (what OpenAI-compatible
    /// APIs accept). Names that differ only in case are refused as ambiguous.
    /// </summary>
    public required string Name { get; init; }

    /// <summary>What the tool does, for the model. Must not be empty.</summary>
    public required string Description { get; init; }

    /// <summary>The JSON Schema (draft 2020-12) of the arguments object, as JSON text. The root must be an object schema.</summary>
    public required string ParametersSchema { get; init; }

    /// <summary>
    /// The C# type the validated arguments deserialize to (with <see cref="ArgumentSerializerOptions"/>),
    /// or null for tools that only see JSON. Required when <see cref="Validator"/> is set.
    /// </summary>
    public Type? ArgumentsType { get; init; }

    /// <summary>How <see cref="ArgumentsType"/> maps to JSON. Defaults to <see cref="ToolArgumentSerializer.DefaultOptions"/> (snake_case names).</summary>
    public JsonSerializerOptions ArgumentSerializerOptions { get; init; } = ToolArgumentSerializer.DefaultOptions;

    /// <summary>Read or write. Default <see cref="ToolEffect.Read"/>.</summary>
    public ToolEffect Effect { get; init; } = ToolEffect.Read;

    /// <summary>Whether a human must approve each call (with the exact arguments shown) before it runs. Default false; only meaningful for writes.</summary>
    public bool RequiresConfirmation { get; init; }

    /// <summary>
    /// Top-level argument names whose values name the resource the call touches (for example
    /// <c>order_id</c>). Writes to the same resource are serialized in the model's order, and writes
    /// wait for earlier reads of it. Each name must be a property of the schema.
    /// </summary>
    public IReadOnlyList<string> ResourceKeyArguments { get; init; } = [];

    /// <summary>
    /// Names of tools whose calls in the same reply must complete before a call of this tool runs.
    /// Each must be a registered tool; cycles are refused at startup.
    /// </summary>
    public IReadOnlyList<string> DependsOn { get; init; } = [];

    /// <summary>Time limit of one attempt. Default 5 seconds; must be positive.</summary>
    public TimeSpan Timeout { get; init; } = DefaultTimeout;

    /// <summary>How many times a transient failure is retried (backoff with jitter). Default 3; 0 disables retries.</summary>
    public int MaxRetries { get; init; } = DefaultMaxRetries;

    /// <summary>A token bucket for this tool, or null for none (the default).</summary>
    public ToolRateLimit? RateLimit { get; init; }

    /// <summary>Most calls of this tool running at once, or null for no per-tool limit (the default).</summary>
    public int? MaxConcurrency { get; init; }

    /// <summary>
    /// Argument names (top level, or dotted paths such as <c>card.number</c>) whose values never reach
    /// a log line, the stored history or an error message; each top-level name must be a property of the schema.
    /// </summary>
    public IReadOnlyList<string> SensitiveArguments { get; init; } = [];

    /// <summary>
    /// Business rules checked after the schema (formats such as <c>^A\d{4,}$</c>, ranges, cross-field
    /// rules), run against the arguments deserialized to <see cref="ArgumentsType"/>. Must be
    /// synchronous and deterministic: validation runs in orchestrator code and is replayed.
    /// </summary>
    public IValidator? Validator { get; init; }

    /// <summary>Asks the downstream service whether an in-doubt effect happened; null for none.</summary>
    public ToolReconciler? Reconcile { get; init; }

    /// <summary>
    /// A one-line summary for the confirmation card, with <c>{argument}</c> or <c>{argument:format}</c>
    /// placeholders filled from the canonical arguments, for example
    /// <c>"Refund ${amount:0.00} for order {order_id}"</c>. Placeholders must name schema properties that are not sensitive.
    /// </summary>
    public string? SummaryTemplate { get; init; }

    /// <summary>What a repeated proposal of the same write does. Default <see cref="SemanticRepeatPolicy.ReturnEarlierResult"/>.</summary>
    public SemanticRepeatPolicy SemanticRepeat { get; init; } = SemanticRepeatPolicy.ReturnEarlierResult;

    /// <summary>A tool whose argument schema is generated from <typeparamref name="TArguments"/> (see <see cref="ToolArgumentSerializer"/> for the mapping).</summary>
    /// <typeparam name="TArguments">A record or class whose public properties are the arguments.</typeparam>
    /// <param name="name">The tool name.</param>
    /// <param name="description">What the tool does, for the model.</param>
    /// <param name="serializerOptions">How the type maps to JSON; defaults to <see cref="ToolArgumentSerializer.DefaultOptions"/>.</param>
    public static ToolDefinition FromArguments<TArguments>(string name, string description, JsonSerializerOptions? serializerOptions = null)
    {
        var options = serializerOptions ?? ToolArgumentSerializer.DefaultOptions;
        return new ToolDefinition
        {
            Name = name,
            Description = description,
            ParametersSchema = ToolArgumentSerializer.GenerateSchema(typeof(TArguments), options),
            ArgumentsType = typeof(TArguments),
            ArgumentSerializerOptions = options,
        };
    }

    /// <summary>A tool whose argument schema is given as JSON text (for tools defined in configuration).</summary>
    /// <param name="name">The tool name.</param>
    /// <param name="description">What the tool does, for the model.</param>
    /// <param name="parametersSchema">The JSON Schema of the arguments object.</param>
    public static ToolDefinition FromJsonSchema(string name, string description, string parametersSchema) =>
        new() { Name = name, Description = description, ParametersSchema = parametersSchema };
}

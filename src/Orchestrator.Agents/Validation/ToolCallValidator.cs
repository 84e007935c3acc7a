using System.Globalization;
using System.Text.Json;
using Json.Schema;

namespace Orchestrator.Agents;

/// <summary>
/// Checks proposed tool calls before anything runs: JSON syntax, tool name, the tool's JSON Schema,
/// then its business rules. Every call comes back either validated (with canonical arguments and
/// their hash) or rejected (with a structured error for the model).
/// </summary>
/// <remarks>
/// Deterministic and free of I/O, so it may run in orchestrator code: the same calls and tool set
/// always give the same result. Thread-safe.
/// </remarks>
public sealed class ToolCallValidator
{
    private const int MaxToolsListed = 20;
    private static readonly EvaluationOptions SchemaOptions = new() { OutputFormat = OutputFormat.List, RequireFormatValidation = true };

    private readonly ToolRegistry _registry;
    private readonly ToolValidationOptions _options;

    /// <summary>Creates a validator for a tool set.</summary>
    /// <param name="registry">The checked tool set.</param>
    /// <param name="options">Limits; defaults apply when null.</param>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public ToolCallValidator(ToolRegistry registry, ToolValidationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(registry);
        _registry = registry;
        _options = (options ?? new ToolValidationOptions()).Validated();
    }

    /// <summary>
    /// Validates every call of one model reply, in order. A call whose id is empty or repeats an
    /// earlier id of the same reply is rejected (its result could not be matched).
    /// </summary>
    /// <param name="calls">The calls, in the model's order.</param>
    public ToolCallValidationReport ValidateAll(IReadOnlyList<ProposedToolCall> calls)
    {
        ArgumentNullException.ThrowIfNull(calls);
        var valid = new List<ValidatedToolCall>();
        var rejected = new List<RejectedToolCall>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var position = 0; position < calls.Count; position++)
        {
            var call = calls[position];
            ToolCallValidationResult result;
            if (!string.IsNullOrEmpty(call.Id) && !seen.Add(call.Id))
            {
                result = Reject(call, position, ToolCallErrorKind.InvalidCallId, $"Another call in the same reply already has the id '{call.Id}'; each call needs its own id.", []);
            }
            else
            {
                result = Validate(call, position);
            }

            if (result.Valid is { } v)
            {
                valid.Add(v);
            }
            else
            {
                rejected.Add(result.Rejected!);
            }
        }

        return new ToolCallValidationReport(valid, rejected);
    }

    /// <summary>Validates one call.</summary>
    /// <param name="call">The proposed call.</param>
    /// <param name="position">Its 0-based position in the model's reply.</param>
    public ToolCallValidationResult Validate(ProposedToolCall call, int position)
    {
        ArgumentNullException.ThrowIfNull(call);
        if (string.IsNullOrEmpty(call.Id))
        {
            return Reject(call, position, ToolCallErrorKind.InvalidCallId, "The call has no id.", []);
        }

        var tool = _registry.Find(call.Name ?? "");
        if (tool is null)
        {
            return Reject(call, position, ToolCallErrorKind.UnknownTool, UnknownToolMessage(call.Name ?? ""), []);
        }

        var raw = call.RawArguments ?? "";
        if (raw.Length > _options.MaxArgumentsLength)
        {
            return Reject(call, position, ToolCallErrorKind.MalformedArguments, $"The arguments for '{tool.Name}' are too large ({raw.Length.ToString(CultureInfo.InvariantCulture)} characters; at most {_options.MaxArgumentsLength.ToString(CultureInfo.InvariantCulture)}).", [], tool);
        }

        // Some OpenAI-compatible servers send "" for a call without arguments.
        var text = string.IsNullOrWhiteSpace(raw) ? "{}" : raw;
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(text, CanonicalJson.ParseOptions);
        }
        catch (JsonException ex)
        {
            var detail = ex.Message.Split(" Path:", 2)[0].Split(" LineNumber:", 2)[0].TrimEnd();
            return Reject(call, position, ToolCallErrorKind.MalformedArguments, $"The arguments for '{tool.Name}' are not valid JSON: {detail}", [new("", "malformed", "the arguments are not valid JSON")], tool);
        }

        using (document)
        {
            var arguments = document.RootElement;
            if (arguments.ValueKind != JsonValueKind.Object)
            {
                return Reject(call, position, ToolCallErrorKind.MalformedArguments, $"The arguments for '{tool.Name}' must be a JSON object, not {arguments.ValueKind.ToString().ToLowerInvariant()}.", [new("", "malformed", "the arguments must be a JSON object")], tool);
            }

            var errors = new List<ToolArgumentError>();
            if (!tool.AllowsUnknownArguments)
            {
                foreach (var property in arguments.EnumerateObject().Where(p => !tool.Properties.Contains(p.Name, StringComparer.Ordinal)))
                {
                    errors.Add(new(property.Name, "unknown", SchemaErrorTranslator.UnknownProblem(property.Name, tool.Properties)));
                }
            }

            var evaluation = tool.Schema.Evaluate(arguments, SchemaOptions);
            if (!evaluation.IsValid)
            {
                errors.AddRange(SchemaErrorTranslator.Translate(tool, arguments, evaluation, _options.MaxQuotedValueLength));
            }

            errors = Distinct(errors);
            if (errors.Count > 0)
            {
                return Reject(call, position, ToolCallErrorKind.InvalidArguments, Summarize(tool.Name, "are invalid", errors), errors, tool);
            }

            var canonical = CanonicalJson.Canonicalize(arguments);
            var rules = BusinessRules.Check(tool, canonical);
            if (rules.Errors.Count > 0)
            {
                var kind = rules.CouldNotRun ? ToolCallErrorKind.ValidationFailed : ToolCallErrorKind.BusinessRuleViolation;
                var message = rules.CouldNotRun
                    ? $"The call to '{tool.Name}' could not be checked and was not run."
                    : Summarize(tool.Name, "break the tool's rules", rules.Errors);
                return Reject(call, position, kind, message, Distinct(rules.Errors.ToList()), tool, rules.InternalDetail);
            }

            var definition = tool.Definition;
            using var canonicalDocument = JsonDocument.Parse(canonical);
            var validated = new ValidatedToolCall(
                call.Id,
                tool.Name,
                position,
                canonical,
                CanonicalJson.Sha256Hex(canonical),
                ArgumentRedactor.RedactCanonical(tool, canonical),
                definition.Effect,
                definition.RequiresConfirmation,
                ResourceKeys(tool, canonicalDocument.RootElement),
                tool.Summary?.Render(canonicalDocument.RootElement, tool.SchemaNode["properties"] as System.Text.Json.Nodes.JsonObject));
            return new ToolCallValidationResult(validated, null);
        }
    }

    private ToolCallValidationResult Reject(ProposedToolCall call, int position, ToolCallErrorKind kind, string message, IReadOnlyList<ToolArgumentError> errors, RegisteredTool? tool = null, string? internalDetail = null)
    {
        var raw = call.RawArguments ?? "";
        var redacted = tool is null ? raw : ArgumentRedactor.RedactRaw(tool, raw);
        var capped = errors.Take(_options.MaxErrorsPerCall).ToArray();
        return new ToolCallValidationResult(null, new RejectedToolCall(call.Id ?? "", call.Name ?? "", position, kind, message, capped, redacted) { InternalDetail = internalDetail });
    }

    private string Summarize(string toolName, string verb, IReadOnlyList<ToolArgumentError> errors)
    {
        var shown = errors.Take(Math.Min(3, _options.MaxErrorsPerCall)).Select(e => e.Problem);
        var more = errors.Count > 3 ? $" (and {(errors.Count - 3).ToString(CultureInfo.InvariantCulture)} more)" : "";
        return $"The arguments for '{toolName}' {verb}: {string.Join("; ", shown)}{more}. Correct them and call the tool again.";
    }

    private static List<ToolArgumentError> Distinct(List<ToolArgumentError> errors)
    {
        // The root's own unknown-argument check and the schema's additionalProperties report the same thing.
        var seen = new HashSet<(string, string)>();
        return errors.Where(e => seen.Add((e.Argument, e.Code))).OrderBy(e => e.Argument, StringComparer.Ordinal).ToList();
    }

    private string UnknownToolMessage(string name)
    {
        var names = _registry.RegisteredTools.Select(t => t.Name).ToArray();
        var suggestion = names
            .Select(n => (Name: n, Distance: string.Equals(n, name, StringComparison.OrdinalIgnoreCase) ? 0 : Levenshtein(n, name)))
            .Where(x => x.Distance <= Math.Max(2, name.Length / 4))
            .OrderBy(x => x.Distance)
            .ThenBy(x => x.Name, StringComparer.Ordinal)
            .Select(x => x.Name)
            .FirstOrDefault();
        var listed = string.Join(", ", names.Take(MaxToolsListed)) + (names.Length > MaxToolsListed ? ", ..." : "");
        return $"There is no tool named '{name}'.{(suggestion is null ? "" : $" Did you mean '{suggestion}'?")} Available tools: {listed}.";
    }

    private static IReadOnlyList<string> ResourceKeys(RegisteredTool tool, JsonElement arguments)
    {
        var keys = new List<string>();
        foreach (var name in tool.Definition.ResourceKeyArguments)
        {
            if (!arguments.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            {
                continue;
            }

            var text = value.ValueKind == JsonValueKind.String ? value.GetString()! : CanonicalJson.Canonicalize(value);

            // The plan is shown in custom status: a sensitive key appears only as a hash prefix.
            keys.Add(tool.IsSensitive(name) ? $"{name}=sha256:{CanonicalJson.Sha256Hex(text)[..16]}" : $"{name}={text}");
        }

        return keys;
    }

    private static int Levenshtein(string a, string b)
    {
        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        for (var i = 1; i <= a.Length; i++)
        {
            var current = new int[b.Length + 1];
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = char.ToLowerInvariant(a[i - 1]) == char.ToLowerInvariant(b[j - 1]) ? 0 : 1;
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
            }

            previous = current;
        }

        return previous[b.Length];
    }
}

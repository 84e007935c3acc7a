using System.Text.Json;

namespace Orchestrator.Agents;

/// <summary>A tool call as the model proposed it: untrusted input.</summary>
/// <param name="Id">The <c>tool_call_id</c> its result must carry.</param>
/// <param name="Name">The tool name the model used.</param>
/// <param name="RawArguments">The argument string exactly as the model sent it.</param>
public sealed record ProposedToolCall(string Id, string Name, string RawArguments)
{
    /// <summary>Leaves the arguments out: they may hold values marked sensitive.</summary>
    public override string ToString() => $"ProposedToolCall {{ Id = {Id}, Name = {Name}, RawArguments = ({RawArguments.Length} chars) }}";
}

/// <summary>Why a proposed call will not run.</summary>
public enum ToolCallErrorKind
{
    /// <summary>The argument string is not a JSON object (syntax error, duplicate key, wrong root, too large).</summary>
    MalformedArguments = 0,

    /// <summary>No tool has that name.</summary>
    UnknownTool = 1,

    /// <summary>The arguments break the tool's JSON Schema: missing, unknown, wrong type, enum, pattern, range.</summary>
    InvalidArguments = 2,

    /// <summary>The arguments satisfy the schema but break a business rule of the tool.</summary>
    BusinessRuleViolation = 3,

    /// <summary>The call has no id, or repeats the id of an earlier call of the same reply.</summary>
    InvalidCallId = 4,

    /// <summary>Text in the model's reply looked like a tool call but could not be parsed.</summary>
    UnparseableCall = 5,

    /// <summary>The call could not be checked (a business rule threw); it is refused rather than run unchecked.</summary>
    ValidationFailed = 6,
}

/// <summary>One thing wrong with one argument.</summary>
/// <param name="Argument">The argument's path (<c>order_id</c>, <c>address.zip</c>, <c>items[0].sku</c>); empty for the arguments as a whole.</param>
/// <param name="Code">A stable code: required, unknown, type, enum, const, pattern, range, length, format, rule, malformed, invalid.</param>
/// <param name="Problem">What is wrong, in words the model can act on, naming the argument.</param>
public sealed record ToolArgumentError(string Argument, string Code, string Problem);

/// <summary>
/// A call that passed validation. <see cref="CanonicalArguments"/> is what runs, what is hashed and
/// what a confirmation is bound to.
/// </summary>
/// <param name="ToolCallId">The id its result must carry.</param>
/// <param name="ToolName">The tool.</param>
/// <param name="Position">Its 0-based position in the model's reply.</param>
/// <param name="CanonicalArguments">
/// The arguments in canonical form (sorted keys, normalized numbers, no insignificant whitespace).
/// Holds sensitive values: never log it; log <see cref="RedactedArguments"/>.
/// </param>
/// <param name="ArgumentsHash">Lowercase hex SHA-256 of the UTF-8 canonical arguments.</param>
/// <param name="RedactedArguments">The canonical arguments with sensitive values replaced, for logs and history.</param>
/// <param name="Effect">Read or write, from the tool.</param>
/// <param name="RequiresConfirmation">Whether a human must approve it, from the tool.</param>
/// <param name="ResourceKeys">The resources it touches, as <c>argument=value</c> (hashed when the argument is sensitive).</param>
/// <param name="Summary">The rendered confirmation summary, or null when the tool has no template.</param>
public sealed record ValidatedToolCall(
    string ToolCallId,
    string ToolName,
    int Position,
    string CanonicalArguments,
    string ArgumentsHash,
    string RedactedArguments,
    ToolEffect Effect,
    bool RequiresConfirmation,
    IReadOnlyList<string> ResourceKeys,
    string? Summary)
{
    /// <summary>The canonical arguments parsed, for the code that runs the tool.</summary>
    public JsonElement ParseArguments()
    {
        using var document = JsonDocument.Parse(CanonicalArguments);
        return document.RootElement.Clone();
    }

    /// <summary>Shows the redacted arguments only.</summary>
    public override string ToString() =>
        $"ValidatedToolCall {{ ToolCallId = {ToolCallId}, ToolName = {ToolName}, Position = {Position}, Arguments = {RedactedArguments}, ArgumentsHash = {ArgumentsHash} }}";
}

/// <summary>
/// A call that will not run, with everything the model needs to correct it. Send
/// <see cref="ToModelContent"/> as the tool result for <see cref="ToolCallId"/>.
/// </summary>
/// <param name="ToolCallId">The id its result must carry (may be empty when the model gave none).</param>
/// <param name="ToolName">The tool name the model used.</param>
/// <param name="Position">Its 0-based position in the model's reply.</param>
/// <param name="Kind">Why it was rejected.</param>
/// <param name="Message">One sentence for the model, naming the problem.</param>
/// <param name="Errors">The problems, one per argument where possible.</param>
/// <param name="RedactedArguments">The raw arguments with sensitive values replaced, for logs and history.</param>
public sealed record RejectedToolCall(
    string ToolCallId,
    string ToolName,
    int Position,
    ToolCallErrorKind Kind,
    string Message,
    IReadOnlyList<ToolArgumentError> Errors,
    string RedactedArguments)
{
    /// <summary>
    /// For operators only, never the model: the exception type when a rule threw (<see cref="ToolCallErrorKind.ValidationFailed"/>).
    /// </summary>
    public string? InternalDetail { get; init; }

    /// <summary>The tool result content for the model: compact JSON with the error kind, the message and one entry per problem. No internal detail.</summary>
    public string ToModelContent()
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            writer.WriteString("error", ErrorCode(Kind));
            writer.WriteString("tool", ToolName);
            writer.WriteString("message", Message);
            if (Errors.Count > 0)
            {
                writer.WriteStartArray("problems");
                foreach (var error in Errors)
                {
                    writer.WriteStartObject();
                    if (error.Argument.Length > 0)
                    {
                        writer.WriteString("argument", error.Argument);
                    }

                    writer.WriteString("code", error.Code);
                    writer.WriteString("problem", error.Problem);
                    writer.WriteEndObject();
                }

                writer.WriteEndArray();
            }

            writer.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    internal static string ErrorCode(ToolCallErrorKind kind) => kind switch
    {
        ToolCallErrorKind.MalformedArguments => "malformed_arguments",
        ToolCallErrorKind.UnknownTool => "unknown_tool",
        ToolCallErrorKind.InvalidArguments => "invalid_arguments",
        ToolCallErrorKind.BusinessRuleViolation => "business_rule_violation",
        ToolCallErrorKind.InvalidCallId => "invalid_call_id",
        ToolCallErrorKind.UnparseableCall => "unparseable_call",
        _ => "validation_failed",
    };
}

/// <summary>The outcome of validating one call: exactly one of <see cref="Valid"/> and <see cref="Rejected"/> is set.</summary>
/// <param name="Valid">The validated call, when it passed.</param>
/// <param name="Rejected">The rejection, when it did not.</param>
public sealed record ToolCallValidationResult(ValidatedToolCall? Valid, RejectedToolCall? Rejected)
{
    /// <summary>Whether the call passed.</summary>
    public bool IsValid => Valid is not null;
}

/// <summary>The validation of one model reply: every proposed call is in exactly one list, each keeping its position.</summary>
/// <param name="Valid">The calls that passed, in the model's order.</param>
/// <param name="Rejected">The calls that did not, in the model's order.</param>
public sealed record ToolCallValidationReport(IReadOnlyList<ValidatedToolCall> Valid, IReadOnlyList<RejectedToolCall> Rejected);

/// <summary>Limits of <see cref="ToolCallValidator"/>.</summary>
public sealed record ToolValidationOptions
{
    /// <summary>Longest raw argument string accepted, in characters. Default 65,536; must be positive.</summary>
    public int MaxArgumentsLength { get; init; } = 65_536;

    /// <summary>Most problems listed per call (the model fixes the first ones first). Default 10; must be positive.</summary>
    public int MaxErrorsPerCall { get; init; } = 10;

    /// <summary>Longest argument value quoted back in an error message, in characters; longer values are not quoted. Default 80; 0 never quotes.</summary>
    public int MaxQuotedValueLength { get; init; } = 80;

    internal ToolValidationOptions Validated()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxArgumentsLength, 1, nameof(MaxArgumentsLength));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxErrorsPerCall, 1, nameof(MaxErrorsPerCall));
        ArgumentOutOfRangeException.ThrowIfNegative(MaxQuotedValueLength, nameof(MaxQuotedValueLength));
        return this;
    }
}

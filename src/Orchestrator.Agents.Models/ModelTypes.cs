using System.Text.Json.Serialization;

namespace Orchestrator.Agents.Models;

/// <summary>The role of a conversation message.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ModelRole>))]
public enum ModelRole
{
    /// <summary>Instructions for the model.</summary>
    System,

    /// <summary>The person's message.</summary>
    User,

    /// <summary>The model's message: text and/or tool calls.</summary>
    Assistant,

    /// <summary>The result of one tool call, matched by <see cref="ModelMessage.ToolCallId"/>.</summary>
    Tool,
}

/// <summary>A tool call the model proposed, exactly as it proposed it.</summary>
/// <param name="Id">The call's <c>tool_call_id</c>; its result message must carry the same id.</param>
/// <param name="Name">The tool (function) name, unchecked: it may name no registered tool.</param>
/// <param name="Arguments">The raw argument string as sent by the model, unparsed: it may be malformed JSON.</param>
public sealed record ModelToolCall(string Id, string Name, string Arguments);

/// <summary>A message of the conversation sent to the model. Serializable; persisted in orchestration history.</summary>
/// <param name="Role">Who speaks.</param>
/// <param name="Content">The text; may be null for an assistant message that only calls tools.</param>
public sealed record ModelMessage(ModelRole Role, string? Content)
{
    /// <summary>For an assistant message: the tool calls it made, in order, with raw arguments.</summary>
    public IReadOnlyList<ModelToolCall> ToolCalls { get; init; } = [];

    /// <summary>For a tool message: the id of the call it answers.</summary>
    public string? ToolCallId { get; init; }

    /// <summary>A system message.</summary>
    public static ModelMessage System(string content) => new(ModelRole.System, content);

    /// <summary>A user message.</summary>
    public static ModelMessage User(string content) => new(ModelRole.User, content);

    /// <summary>An assistant message with optional text and the tool calls it made.</summary>
    public static ModelMessage Assistant(string? content, IReadOnlyList<ModelToolCall>? toolCalls = null) =>
        new(ModelRole.Assistant, content) { ToolCalls = toolCalls ?? [] };

    /// <summary>The result of the call <paramref name="toolCallId"/>.</summary>
    public static ModelMessage ToolResult(string toolCallId, string content) =>
        new(ModelRole.Tool, content) { ToolCallId = toolCallId };

    /// <summary>The assistant message that replays <paramref name="reply"/> into the conversation.</summary>
    public static ModelMessage FromReply(ModelReply reply) => Assistant(reply.Text, reply.ToolCalls);
}

/// <summary>A tool as the model sees it: a name, a description and the JSON Schema of its arguments.</summary>
/// <param name="Name">The function name.</param>
/// <param name="Description">What the tool does, for the model.</param>
/// <param name="ParametersSchema">The JSON Schema (an object schema) of the arguments, as JSON text.</param>
public sealed record ModelToolDefinition(string Name, string Description, string ParametersSchema);

/// <summary>Token counts of one model call.</summary>
/// <param name="InputTokens">Prompt tokens.</param>
/// <param name="OutputTokens">Completion tokens.</param>
/// <param name="TotalTokens">Total tokens, as reported by the server.</param>
public sealed record ModelUsage(int InputTokens, int OutputTokens, int TotalTokens);

/// <summary>What the request lets the model do with tools.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ModelToolChoiceKind>))]
public enum ModelToolChoiceKind
{
    /// <summary>The model decides (<c>"auto"</c>).</summary>
    Auto,

    /// <summary>No tool calls (<c>"none"</c>).</summary>
    None,

    /// <summary>At least one tool call (<c>"required"</c>).</summary>
    Required,

    /// <summary>A call of one named function.</summary>
    Function,
}

/// <summary>The <c>tool_choice</c> of a request.</summary>
/// <param name="Kind">The mode.</param>
/// <param name="FunctionName">For <see cref="ModelToolChoiceKind.Function"/>, the function to call.</param>
public sealed record ModelToolChoice(ModelToolChoiceKind Kind, string? FunctionName = null)
{
    /// <summary><c>"auto"</c>.</summary>
    public static ModelToolChoice Auto { get; } = new(ModelToolChoiceKind.Auto);

    /// <summary><c>"none"</c>.</summary>
    public static ModelToolChoice None { get; } = new(ModelToolChoiceKind.None);

    /// <summary><c>"required"</c>.</summary>
    public static ModelToolChoice Required { get; } = new(ModelToolChoiceKind.Required);

    /// <summary>Force a call of <paramref name="name"/>.</summary>
    public static ModelToolChoice Function(string name) => new(ModelToolChoiceKind.Function, name);
}

/// <summary>One model call's input.</summary>
/// <param name="Messages">The (already pruned) conversation.</param>
/// <param name="Tools">The tools offered; may be empty.</param>
public sealed record ModelRequest(IReadOnlyList<ModelMessage> Messages, IReadOnlyList<ModelToolDefinition> Tools)
{
    /// <summary>Overrides the client's configured <c>tool_choice</c> for this call.</summary>
    public ModelToolChoice? ToolChoice { get; init; }
}

/// <summary>
/// The whole of one model reply, as recorded by the Propose activity. Serializable (System.Text.Json); persisted in
/// orchestration history, so treat it as a contract.
/// </summary>
/// <remarks>
/// WARNING: persisted in history. Add members only with defaults that old histories deserialize to.
/// <see cref="ToolCalls"/> holds every call the reply carried, in the model's order, whatever <see cref="FinishReason"/>
/// says; arguments are raw and unvalidated.
/// </remarks>
public sealed record ModelReply
{
    /// <summary>The assistant's text, or null when it sent none.</summary>
    public string? Text { get; init; }

    /// <summary>Every tool call of the reply, in order, with its id and raw arguments.</summary>
    public IReadOnlyList<ModelToolCall> ToolCalls { get; init; } = [];

    /// <summary>The <c>finish_reason</c> exactly as sent (<c>tool_calls</c>, <c>stop</c>, <c>length</c>, ...), or null when absent.</summary>
    public string? FinishReason { get; init; }

    /// <summary>True when the reply was cut off by the output token limit (<c>finish_reason</c> <c>length</c>).</summary>
    public bool IsTruncated { get; init; }

    /// <summary>A refusal message, when the model refused.</summary>
    public string? Refusal { get; init; }

    /// <summary>Token usage, or null when the server reported none.</summary>
    public ModelUsage? Usage { get; init; }

    /// <summary>The model that answered, as reported by the server.</summary>
    public string? Model { get; init; }

    /// <summary>The server's response id.</summary>
    public string? ResponseId { get; init; }

    /// <summary>Whether the reply proposes any tool call.</summary>
    [JsonIgnore]
    public bool HasToolCalls => ToolCalls.Count > 0;
}

/// <summary>A chat model: one call in, one recorded reply out.</summary>
/// <remarks>
/// Implementations do not retry beyond their transport policy and do not parse tool arguments. A failed call throws
/// <see cref="ModelCallException"/> whose <see cref="ModelCallException.IsTransient"/> tells whether retrying may help.
/// </remarks>
public interface IChatModel
{
    /// <summary>Sends <paramref name="request"/> and returns the model's whole reply.</summary>
    Task<ModelReply> CompleteAsync(ModelRequest request, CancellationToken cancellationToken);
}

/// <summary>A model call that failed; the one exception this layer throws for transport and service errors.</summary>
public sealed class ModelCallException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ModelCallException(string message, int? statusCode, bool isTransient, Exception? innerException = null)
        : base(message, innerException)
    {
        StatusCode = statusCode;
        IsTransient = isTransient;
    }

    /// <summary>Creates the exception.</summary>
    public ModelCallException()
        : this("The model call failed.", null, false)
    {
    }

    /// <summary>Creates the exception.</summary>
    public ModelCallException(string message)
        : this(message, null, false)
    {
    }

    /// <summary>Creates the exception.</summary>
    public ModelCallException(string message, Exception innerException)
        : this(message, null, false, innerException)
    {
    }

    /// <summary>The HTTP status, or null when no response came (network failure, timeout).</summary>
    public int? StatusCode { get; }

    /// <summary>True for failures worth retrying later: 408, 429, 5xx, timeouts and network errors.</summary>
    public bool IsTransient { get; }
}

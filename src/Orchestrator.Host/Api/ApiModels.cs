using System.Text.Json;
using System.Text.Json.Serialization;

namespace Orchestrator.Host.Api;

/// <summary>Body of <c>POST /api/conversations/{id}/messages</c> and of a queue trigger message.</summary>
/// <param name="Text">The user's message.</param>
internal sealed record MessageRequest(string? Text);

/// <summary>A queue trigger message.</summary>
/// <param name="ConversationId">The conversation to start or continue.</param>
/// <param name="Text">The user's message.</param>
/// <param name="MessageId">Deduplicates like <c>Idempotency-Key</c>; the queue message's own id when absent.</param>
internal sealed record QueueTriggerMessage(string? ConversationId, string? Text, string? MessageId);

/// <summary>
/// The 202 answer to a message, like Durable Functions' check-status response: the instance id and where to follow it.
/// The URLs carry the conversation's access token.
/// </summary>
internal sealed record CheckStatusResponse(
    string Id,
    string ConversationId,
    bool Started,
    string StatusQueryGetUri,
    string HistoryGetUri,
    string TranscriptGetUri,
    string ConfirmationsGetUri,
    string SendConfirmationPostUri,
    string SendMessagePostUri,
    string TerminatePostUri,
    string PurgeHistoryDeleteUri,
    string AccessToken);

/// <summary>A decision on a pending confirmation (approvals endpoint and confirmation webhook).</summary>
/// <param name="Decision"><c>approve</c> or <c>reject</c>.</param>
/// <param name="ArgumentsHash">The argument hash the decider saw; a different one is refused.</param>
/// <param name="EditedArguments">Approve with these arguments instead (a JSON object); validated again in full.</param>
/// <param name="DecidedBy">Who decided, for the record.</param>
internal sealed record DecisionRequest(string? Decision, string? ArgumentsHash, JsonElement? EditedArguments, string? DecidedBy);

/// <summary>A decision that was sent to the turn.</summary>
internal sealed record DecisionAccepted(string Result, string TurnInstanceId, string ToolCallId, string Decision);

/// <summary>A pending confirmation across conversations, for the approvals page.</summary>
internal sealed record ConfirmationItem(
    string ConversationId,
    string TurnInstanceId,
    string ToolCallId,
    string Tool,
    string Arguments,
    string ArgumentsHash,
    string? Summary,
    int ModelCallIndex,
    int Position,
    int Stage,
    int StageCount,
    IReadOnlyList<string> WaitsFor,
    IReadOnlyList<DependentCall> Dependents,
    DateTime ExpiresAt,
    string DecidePostUri);

/// <summary>A call that runs only if the confirmed one does.</summary>
internal sealed record DependentCall(string ToolCallId, string Tool);

/// <summary>A transcript message, sensitive argument values redacted.</summary>
internal sealed record TranscriptMessage(
    string Role,
    string? Content,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<TranscriptToolCall>? ToolCalls,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? ToolCallId);

/// <summary>A tool call in a transcript.</summary>
internal sealed record TranscriptToolCall(string Id, string Name, string Arguments);

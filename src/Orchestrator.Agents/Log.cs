using Microsoft.Extensions.Logging;

namespace Orchestrator.Agents;

/// <summary>
/// This assembly's log messages, with stable event ids. Every turn message carries the turn's instance id (the
/// correlation id); none carries argument values (only ids, names, hashes and kinds), so sensitive values never
/// reach a log line.
/// </summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 4000, Level = LogLevel.Information, Message = "Turn {TurnId}: call {ToolCallId} ({ToolName}) rejected: {Kind}.")]
    public static partial void CallRejected(ILogger logger, string turnId, string toolCallId, string toolName, string kind);

    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "Turn {TurnId}: running call {ToolCallId} ({ToolName}), idempotency key {IdempotencyKey}.")]
    public static partial void ToolRunning(ILogger logger, string turnId, string toolCallId, string toolName, string? idempotencyKey);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "Turn {TurnId}: call {ToolCallId} ({ToolName}) failed (transient: {Transient}).")]
    public static partial void ToolFailed(ILogger logger, string turnId, string toolCallId, string toolName, bool transient);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Information, Message = "Turn {TurnId}: call {ToolCallId} ({ToolName}) waits for confirmation of arguments {ArgumentsHash}.")]
    public static partial void ConfirmationPending(ILogger logger, string turnId, string toolCallId, string toolName, string argumentsHash);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Warning, Message = "Turn {TurnId}: decision on call {ToolCallId} refused: {Reason}.")]
    public static partial void DecisionRefused(ILogger logger, string turnId, string toolCallId, string reason);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Information, Message = "Turn {TurnId}: ended {Outcome} (budget {Budget}) after {ModelCalls} model calls and {ToolCalls} tool calls.")]
    public static partial void TurnEnded(ILogger logger, string turnId, string outcome, string? budget, int modelCalls, int toolCalls);
}

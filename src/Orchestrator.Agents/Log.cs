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

    [LoggerMessage(EventId = 4006, Level = LogLevel.Warning, Message = "Tools {Tools} have sensitive arguments but no SensitiveValueProtector is configured: their values are stored in orchestration history in the clear (logs stay redacted).")]
    public static partial void SensitiveValuesInTheClear(ILogger logger, string tools);

    [LoggerMessage(EventId = 4007, Level = LogLevel.Warning, Message = "Turn {TurnId}: call {ToolCallId} ({ToolName}) is in doubt: an earlier attempt with idempotency key {IdempotencyKey} did not record its result ({Prior}); reconciling where possible, then retrying with the same key.")]
    public static partial void CallInDoubt(ILogger logger, string turnId, string toolCallId, string toolName, string? idempotencyKey, string prior);

    [LoggerMessage(EventId = 4008, Level = LogLevel.Warning, Message = "Turn {TurnId}: the model's reply was cut off by its length limit ({ToolCallCount} tool calls, {OutputTokens} output tokens).")]
    public static partial void ReplyTruncated(ILogger logger, string turnId, int toolCallCount, int? outputTokens);

    [LoggerMessage(EventId = 4009, Level = LogLevel.Warning, Message = "Turn {TurnId}: the model proposed {ToolCallCount} tool calls in one reply (more than {Threshold}).")]
    public static partial void ManyToolCalls(ILogger logger, string turnId, int toolCallCount, int threshold);

    [LoggerMessage(EventId = 4010, Level = LogLevel.Warning, Message = "Turn {TurnId}: call {ToolCallId} ({ToolName}) took {Seconds:0.###} s (slower than {ThresholdSeconds} s).")]
    public static partial void SlowTool(ILogger logger, string turnId, string toolCallId, string toolName, double seconds, double thresholdSeconds);

    [LoggerMessage(EventId = 4011, Level = LogLevel.Warning, Message = "Turn {TurnId}: near its {Budget} budget: {Used} of {Limit} used.")]
    public static partial void NearBudget(ILogger logger, string turnId, string budget, string used, string limit);

    [LoggerMessage(EventId = 4012, Level = LogLevel.Information, Message = "Tool schemas cost {TotalTokens} tokens ({Encoding}, model {ModelName}): {SharePercent:0.#}% of the {ContextWindowTokens}-token context window.")]
    public static partial void SchemaCost(ILogger logger, int totalTokens, string encoding, string modelName, double sharePercent, int contextWindowTokens);

    [LoggerMessage(EventId = 4013, Level = LogLevel.Warning, Message = "Tool schemas take {SharePercent:0.#}% of the model's context window ({TotalTokens} of {ContextWindowTokens} tokens, above {ThresholdPercent:0.#}%): fewer or terser tools leave more room for the conversation. Largest: {Largest}.")]
    public static partial void SchemaCostHigh(ILogger logger, double sharePercent, int totalTokens, int contextWindowTokens, double thresholdPercent, string largest);

    [LoggerMessage(EventId = 4014, Level = LogLevel.Warning, Message = "Turn {TurnId}: call {ToolCallId} ({ToolName}) was in doubt after a worker died mid-call; resolved as {Resolution} with idempotency key {IdempotencyKey}.")]
    public static partial void InDoubtResolved(ILogger logger, string turnId, string toolCallId, string toolName, string resolution, string? idempotencyKey);
}

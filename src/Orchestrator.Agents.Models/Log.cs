using Microsoft.Extensions.Logging;

namespace Orchestrator.Agents.Models;

/// <summary>This assembly's log messages, with stable event ids.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 3000, Level = LogLevel.Warning, Message = "Scripted model: no script entry matches request #{Number} (last message role {LastRole}).")]
    public static partial void NoEntryMatched(ILogger logger, int number, string lastRole);

    [LoggerMessage(EventId = 3100, Level = LogLevel.Debug, Message = "Model {Model} replied: {ToolCalls} tool calls, finish reason {FinishReason}, {TotalTokens} tokens.")]
    public static partial void ModelReplied(ILogger logger, string model, int toolCalls, string finishReason, int totalTokens);

    [LoggerMessage(EventId = 3101, Level = LogLevel.Warning, Message = "Model {Model} call failed with status {Status} (transient: {Transient}).")]
    public static partial void ModelCallFailed(ILogger logger, string model, int status, bool transient);
}

using Microsoft.Extensions.Logging;

namespace Orchestrator.Durable;

/// <summary>The engine's log messages, with stable event ids.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1000, Level = LogLevel.Information, Message = "Worker {WorkerId} started (orchestrations {MaxOrchestrations}, activities {MaxActivities}).")]
    public static partial void WorkerStarted(ILogger logger, string workerId, int maxOrchestrations, int maxActivities);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Worker {WorkerId} stopped; {Abandoned} in-flight work items abandoned for other workers.")]
    public static partial void WorkerStopped(ILogger logger, string workerId, int abandoned);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Warning, Message = "Fetching {Kind} work failed; retrying.")]
    public static partial void FetchFailed(ILogger logger, Exception exception, string kind);

    [LoggerMessage(EventId = 1100, Level = LogLevel.Debug, Message = "Instance {InstanceId}: episode with {MessageCount} messages, {NewEvents} new events, {Outbox} outbound messages, status {Status}.")]
    public static partial void EpisodeExecuted(ILogger logger, string instanceId, int messageCount, int newEvents, int outbox, OrchestrationRuntimeStatus status);

    [LoggerMessage(EventId = 1101, Level = LogLevel.Debug, Message = "Instance {InstanceId}: dropped message {Reason}.")]
    public static partial void MessageDropped(ILogger logger, string instanceId, string reason);

    [LoggerMessage(EventId = 1102, Level = LogLevel.Warning, Message = "Instance {InstanceId}: lock lost to another worker; checkpoint abandoned.")]
    public static partial void LockLost(ILogger logger, string instanceId);

    [LoggerMessage(EventId = 1103, Level = LogLevel.Error, Message = "Instance {InstanceId}: episode failed and was abandoned; it will be retried.")]
    public static partial void EpisodeFailed(ILogger logger, Exception exception, string instanceId);

    [LoggerMessage(EventId = 1104, Level = LogLevel.Error, Message = "Instance {InstanceId} failed: {ErrorType}: {ErrorMessage}")]
    public static partial void OrchestrationFailed(ILogger logger, string instanceId, string errorType, string errorMessage);

    [LoggerMessage(EventId = 1200, Level = LogLevel.Debug, Message = "Activity {Name} (#{TaskId}) of {InstanceId} {Outcome}.")]
    public static partial void ActivityExecuted(ILogger logger, string name, int taskId, string instanceId, string outcome);

    [LoggerMessage(EventId = 1201, Level = LogLevel.Error, Message = "Activity {Name} (#{TaskId}) of {InstanceId}: recording the result failed; the work item will be delivered again.")]
    public static partial void ActivityCompleteFailed(ILogger logger, Exception exception, string name, int taskId, string instanceId);
}

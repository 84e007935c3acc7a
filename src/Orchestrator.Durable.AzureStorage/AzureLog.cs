using Microsoft.Extensions.Logging;

namespace Orchestrator.Durable.AzureStorage;

/// <summary>The Azure Storage backend's log messages, with stable event ids.</summary>
internal static partial class AzureLog
{
    [LoggerMessage(EventId = 3000, Level = LogLevel.Information, Message = "Worker {WorkerId} acquired partition {Partition} (previous owner '{PreviousOwner}').")]
    public static partial void LeaseAcquired(ILogger logger, string workerId, int partition, string previousOwner);

    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Worker {WorkerId} stopped consuming partition {Partition}.")]
    public static partial void LeaseLost(ILogger logger, string workerId, int partition);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "A lease round failed; leases are retried at the next interval.")]
    public static partial void LeaseRoundFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Information, Message = "Removed the heartbeat of worker {WorkerId}, dead for more than two lease durations.")]
    public static partial void StaleWorkerRemoved(ILogger logger, string workerId);

    [LoggerMessage(EventId = 3010, Level = LogLevel.Warning, Message = "Message {QueueMessageId} for unknown instance '{InstanceId}' was dropped.")]
    public static partial void UnknownInstanceMessageDropped(ILogger logger, string queueMessageId, string instanceId);

    [LoggerMessage(EventId = 3011, Level = LogLevel.Error, Message = "Message {QueueMessageId} from {Queue} moved to the poison queue: {Reason}.")]
    public static partial void MessagePoisoned(ILogger logger, string queueMessageId, string queue, string reason);

    [LoggerMessage(EventId = 3012, Level = LogLevel.Warning, Message = "Background storage operation failed: {Operation}.")]
    public static partial void BackgroundOperationFailed(ILogger logger, Exception exception, string operation);

    [LoggerMessage(EventId = 3013, Level = LogLevel.Information, Message = "Instance '{InstanceId}': re-dispatched {Count} activities found scheduled without a result.")]
    public static partial void ActivitiesRedispatched(ILogger logger, string instanceId, int count);
}

using Microsoft.Extensions.Logging;

namespace Orchestrator.Host.Api;

/// <summary>The API's log lines (event ids 5000-5099). Never message text, arguments, keys or secrets.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 5000, Level = LogLevel.Information, Message = "Serving on {Addresses}; {Backend}")]
    public static partial void Serving(ILogger logger, string addresses, string backend);

    [LoggerMessage(EventId = 5001, Level = LogLevel.Information, Message = "Queue trigger reading queue {Queue} (poison queue {PoisonQueue}, max dequeue count {MaxDequeueCount})")]
    public static partial void QueueTriggerStarted(ILogger logger, string queue, string poisonQueue, int maxDequeueCount);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Information, Message = "Queue message {MessageId} for conversation {ConversationId}: {Outcome}")]
    public static partial void QueueMessageHandled(ILogger logger, string messageId, string conversationId, string outcome);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Warning, Message = "Queue message {MessageId} failed on delivery {DequeueCount}: {Reason}")]
    public static partial void QueueMessageFailed(ILogger logger, string messageId, long dequeueCount, string reason);

    [LoggerMessage(EventId = 5004, Level = LogLevel.Warning, Message = "Queue message {MessageId} moved to {PoisonQueue}: {Reason}")]
    public static partial void QueueMessagePoisoned(ILogger logger, string messageId, string poisonQueue, string reason);

    [LoggerMessage(EventId = 5005, Level = LogLevel.Error, Message = "Queue trigger poll failed; retrying")]
    public static partial void QueuePollFailed(ILogger logger, Exception exception);
}

// CS1591: the properties of these persisted records are named for what they hold; the type docs say what matters.
#pragma warning disable CS1591
namespace Orchestrator.Durable.History;

// WARNING: task messages are persisted in queues and outboxes and may be read by a newer worker
// than the one that wrote them. Change only by adding optional properties, with a fixture test.

/// <summary>
/// A message between the parts of the engine: an event for an orchestration instance
/// (<see cref="Event"/> is what will be appended to its history) or, when the event is a
/// <see cref="TaskScheduledEvent"/>, a work item for an activity worker.
/// </summary>
/// <remarks>
/// <see cref="MessageId"/> is derived from durable identity (instance, execution, event id), so a
/// message re-sent after a crash has the same id and queues that already hold it ignore it.
/// </remarks>
public sealed record TaskMessage
{
    public required string MessageId { get; init; }
    public required string InstanceId { get; init; }

    /// <summary>The execution this message belongs to; null for messages aimed at whichever execution is current.</summary>
    public string? ExecutionId { get; init; }
    public required HistoryEvent Event { get; init; }

    /// <summary>Earliest time the message may be delivered (durable timers, delayed starts).</summary>
    public DateTimeOffset? VisibleAt { get; init; }

    /// <summary>True when the message is an activity work item rather than an orchestration event.</summary>
    public bool IsActivityWorkItem => Event is TaskScheduledEvent;

    internal static string ActivityId(string instanceId, string executionId, int eventId) => $"{instanceId}|{executionId}|task|{eventId}";
    internal static string ActivityResultId(string instanceId, string executionId, int eventId) => $"{instanceId}|{executionId}|result|{eventId}";
    internal static string TimerId(string instanceId, string executionId, int eventId) => $"{instanceId}|{executionId}|timer|{eventId}";
    internal static string SubStartId(string parentInstanceId, string parentExecutionId, int eventId) => $"{parentInstanceId}|{parentExecutionId}|sub|{eventId}";
    internal static string SubResultId(string childInstanceId, string childExecutionId) => $"{childInstanceId}|{childExecutionId}|subresult";
    internal static string ContinueId(string instanceId, string newExecutionId) => $"{instanceId}|{newExecutionId}|start";
}

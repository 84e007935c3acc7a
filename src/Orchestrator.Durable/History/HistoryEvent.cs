// CS1591: the properties of these persisted records are named for what they hold; the type docs say what matters.
#pragma warning disable CS1591
using System.Text.Json.Serialization;

namespace Orchestrator.Durable.History;

// WARNING: history events are persisted (SQLite rows, Azure table rows, queue messages) and
// replayed by every later version of this code. Do not rename types, discriminators or
// properties, or change their meaning. Add new optional properties only, and add a fixture of
// the old shape to tests/Orchestrator.Durable.Tests/Fixtures/History with a replay test.

/// <summary>
/// One recorded fact in an orchestration's event-sourced history. The orchestrator is rebuilt
/// by replaying these events in order.
/// </summary>
/// <remarks>
/// <see cref="EventId"/> is the sequence number of the scheduling action that produced the event
/// (activities, timers, sub-orchestrations), or -1 for events that are not scheduling actions.
/// Completion events point back at the scheduling event through <c>TaskScheduledId</c> or
/// <c>TimerId</c>.
/// </remarks>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "type")]
[JsonDerivedType(typeof(ExecutionStartedEvent), "ExecutionStarted")]
[JsonDerivedType(typeof(OrchestratorStartedEvent), "OrchestratorStarted")]
[JsonDerivedType(typeof(TaskScheduledEvent), "TaskScheduled")]
[JsonDerivedType(typeof(TaskCompletedEvent), "TaskCompleted")]
[JsonDerivedType(typeof(TaskFailedEvent), "TaskFailed")]
[JsonDerivedType(typeof(TimerCreatedEvent), "TimerCreated")]
[JsonDerivedType(typeof(TimerFiredEvent), "TimerFired")]
[JsonDerivedType(typeof(EventRaisedEvent), "EventRaised")]
[JsonDerivedType(typeof(SubOrchestrationInstanceCreatedEvent), "SubOrchestrationInstanceCreated")]
[JsonDerivedType(typeof(SubOrchestrationInstanceCompletedEvent), "SubOrchestrationInstanceCompleted")]
[JsonDerivedType(typeof(SubOrchestrationInstanceFailedEvent), "SubOrchestrationInstanceFailed")]
[JsonDerivedType(typeof(ExecutionTerminatedEvent), "ExecutionTerminated")]
[JsonDerivedType(typeof(ExecutionCompletedEvent), "ExecutionCompleted")]
[JsonDerivedType(typeof(ContinueAsNewEvent), "ContinueAsNew")]
public abstract record HistoryEvent
{
    /// <summary>Sequence number of a scheduling event, or -1.</summary>
    public int EventId { get; init; } = -1;

    /// <summary>When the event was recorded (UTC).</summary>
    public DateTimeOffset Timestamp { get; init; }

    /// <summary>The event's kind, as stored.</summary>
    [JsonIgnore]
    public string EventType => this.GetType().Name[..^"Event".Length];
}

/// <summary>Identifies the parent of a sub-orchestration.</summary>
public sealed record ParentInstance(string InstanceId, string ExecutionId, int TaskScheduledId, string Name);

/// <summary>The instance was started (first event of every execution).</summary>
public sealed record ExecutionStartedEvent : HistoryEvent
{
    public required string Name { get; init; }
    public required string InstanceId { get; init; }
    public required string ExecutionId { get; init; }
    public string? Input { get; init; }
    public ParentInstance? Parent { get; init; }
    public DateTimeOffset? ScheduledStartTime { get; init; }
}

/// <summary>Marks the start of one execution episode; its timestamp is the orchestrator's clock.</summary>
public sealed record OrchestratorStartedEvent : HistoryEvent
{
}

/// <summary>The orchestrator scheduled an activity.</summary>
public sealed record TaskScheduledEvent : HistoryEvent
{
    public required string Name { get; init; }
    public string? Input { get; init; }
}

/// <summary>An activity completed.</summary>
public sealed record TaskCompletedEvent : HistoryEvent
{
    public required int TaskScheduledId { get; init; }
    public string? Result { get; init; }
}

/// <summary>An activity failed.</summary>
public sealed record TaskFailedEvent : HistoryEvent
{
    public required int TaskScheduledId { get; init; }
    public required TaskFailureDetails FailureDetails { get; init; }
}

/// <summary>The orchestrator created a durable timer.</summary>
public sealed record TimerCreatedEvent : HistoryEvent
{
    public required DateTimeOffset FireAt { get; init; }
}

/// <summary>A durable timer fired.</summary>
public sealed record TimerFiredEvent : HistoryEvent
{
    public required int TimerId { get; init; }
    public required DateTimeOffset FireAt { get; init; }
}

/// <summary>An external event was delivered to the instance.</summary>
public sealed record EventRaisedEvent : HistoryEvent
{
    public required string Name { get; init; }
    public string? Input { get; init; }

    /// <summary>The id of the message that carried the event, used to ignore redelivery.</summary>
    public string? MessageId { get; init; }
}

/// <summary>The orchestrator started a sub-orchestration.</summary>
public sealed record SubOrchestrationInstanceCreatedEvent : HistoryEvent
{
    public required string Name { get; init; }
    public required string InstanceId { get; init; }
    public string? Input { get; init; }
}

/// <summary>A sub-orchestration completed.</summary>
public sealed record SubOrchestrationInstanceCompletedEvent : HistoryEvent
{
    public required int TaskScheduledId { get; init; }
    public string? Result { get; init; }
}

/// <summary>A sub-orchestration failed.</summary>
public sealed record SubOrchestrationInstanceFailedEvent : HistoryEvent
{
    public required int TaskScheduledId { get; init; }
    public required TaskFailureDetails FailureDetails { get; init; }
}

/// <summary>A client asked for the instance to be terminated.</summary>
public sealed record ExecutionTerminatedEvent : HistoryEvent
{
    public string? Reason { get; init; }
}

/// <summary>The execution reached a terminal state.</summary>
public sealed record ExecutionCompletedEvent : HistoryEvent
{
    public required OrchestrationRuntimeStatus Status { get; init; }
    public string? Result { get; init; }
    public TaskFailureDetails? FailureDetails { get; init; }
}

/// <summary>The execution restarted itself with new input; a new history begins.</summary>
public sealed record ContinueAsNewEvent : HistoryEvent
{
    public string? Input { get; init; }
    public required string NewExecutionId { get; init; }
}

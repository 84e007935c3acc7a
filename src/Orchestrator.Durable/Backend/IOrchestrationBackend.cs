using Orchestrator.Durable.Core;
using Orchestrator.Durable.History;

namespace Orchestrator.Durable.Backend;

/// <summary>
/// The storage seam of the engine: every backend (SQLite, Azure Storage) implements this, and the
/// conformance suite in the tests holds each one to the same behaviour.
/// </summary>
/// <remarks>
/// <para>A checkpoint happens in three steps, each of which may be interrupted by a crash:</para>
/// <list type="number">
/// <item><see cref="CommitCheckpointAsync"/> writes the new history events, the instance state and
/// the outbox (the messages the events cause) in one atomic, durable write, and only if the caller
/// still holds the instance's lock;</item>
/// <item><see cref="DispatchOutboxAsync"/> moves the outbox to the queues and deletes it;</item>
/// <item><see cref="ReleaseOrchestrationWorkItemAsync"/> deletes the consumed messages and unlocks.</item>
/// </list>
/// <para>A crash after step 1 leaves an outbox that is dispatched when the instance is next loaded;
/// a crash after step 2 leaves consumed messages that are delivered again and recognised as
/// duplicates against history. Message ids are deterministic, so re-dispatch is harmless.</para>
/// All members are thread-safe.
/// </remarks>
public interface IOrchestrationBackend : IAsyncDisposable
{
    /// <summary>Creates the store (tables, queues) if it does not exist. Idempotent.</summary>
    Task CreateIfNotExistsAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Creates an instance in the Pending state and enqueues its start message, atomically.
    /// An instance with the same id that has finished is replaced; one that has not is refused.
    /// </summary>
    /// <exception cref="OrchestrationAlreadyExistsException">The instance exists and has not finished.</exception>
    Task CreateInstanceAsync(TaskMessage startMessage, CancellationToken cancellationToken);

    /// <summary>Enqueues an event (external event or termination) for a running or pending instance.</summary>
    /// <exception cref="OrchestrationNotFoundException">No such instance.</exception>
    /// <exception cref="OrchestrationNotRunningException">The instance has finished.</exception>
    Task SendInstanceMessageAsync(TaskMessage message, CancellationToken cancellationToken);

    /// <summary>Reads an instance's state, or null when it does not exist.</summary>
    Task<OrchestrationMetadata?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken);

    /// <summary>
    /// Lists one page of the instances matching the query, in instance id order, with the token for the next page
    /// (null on the last page).
    /// </summary>
    /// <remarks>
    /// Paging is by key (the last instance id returned, see <see cref="InstanceQueryContinuation"/>), so an instance
    /// that exists and matches throughout a paged read is returned exactly once, and no instance twice, however many
    /// are created or deleted between pages. A page may be shorter than the page size while a token is still returned.
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException">The page size is outside 1-10,000.</exception>
    /// <exception cref="ArgumentException">The continuation token is malformed, or was issued by another backend or for another filter.</exception>
    Task<Page<OrchestrationMetadata>> QueryInstancesAsync(InstanceQuery query, CancellationToken cancellationToken);

    /// <summary>Reads the full history of the instance's current execution, or null when it does not exist.</summary>
    Task<IReadOnlyList<HistoryEvent>?> GetHistoryAsync(string instanceId, CancellationToken cancellationToken);

    /// <summary>Deletes a finished instance with its history and messages.</summary>
    /// <returns>False when no such instance exists.</returns>
    /// <exception cref="OrchestrationNotRunningException">The instance has not finished (status Pending or Running); nothing was deleted.</exception>
    Task<bool> PurgeInstanceAsync(string instanceId, CancellationToken cancellationToken);

    /// <summary>Deletes every finished instance matching the filter; returns how many.</summary>
    Task<int> PurgeInstancesAsync(PurgeInstancesFilter filter, CancellationToken cancellationToken);

    /// <summary>Locks the next instance that has deliverable messages, with its history; null when none.</summary>
    Task<OrchestrationWorkItem?> LockNextOrchestrationWorkItemAsync(TimeSpan lockTimeout, CancellationToken cancellationToken);

    /// <summary>Step 1: durably writes history, state and outbox in one atomic write.</summary>
    /// <exception cref="WorkItemLockLostException">Another worker owns the instance now; nothing was written.</exception>
    Task CommitCheckpointAsync(OrchestrationWorkItem workItem, OrchestrationCheckpoint checkpoint, CancellationToken cancellationToken);

    /// <summary>Step 2: moves the instance's outbox (this checkpoint's and any left by a crash) to the queues.</summary>
    Task DispatchOutboxAsync(OrchestrationWorkItem workItem, CancellationToken cancellationToken);

    /// <summary>Step 3: deletes the consumed messages and unlocks the instance.</summary>
    Task ReleaseOrchestrationWorkItemAsync(OrchestrationWorkItem workItem, IReadOnlyCollection<string> consumedMessageIds, CancellationToken cancellationToken);

    /// <summary>Unlocks the instance without consuming anything; its messages are delivered again.</summary>
    Task AbandonOrchestrationWorkItemAsync(OrchestrationWorkItem workItem, CancellationToken cancellationToken);

    /// <summary>Locks the next deliverable activity work item; null when none.</summary>
    Task<ActivityWorkItem?> LockNextActivityWorkItemAsync(TimeSpan lockTimeout, CancellationToken cancellationToken);

    /// <summary>Extends an activity work item's lock.</summary>
    Task RenewActivityWorkItemLockAsync(ActivityWorkItem workItem, TimeSpan lockTimeout, CancellationToken cancellationToken);

    /// <summary>Atomically deletes the work item and enqueues its result for the orchestration.</summary>
    Task CompleteActivityWorkItemAsync(ActivityWorkItem workItem, TaskMessage result, CancellationToken cancellationToken);

    /// <summary>Makes the work item deliverable again without a result.</summary>
    Task AbandonActivityWorkItemAsync(ActivityWorkItem workItem, CancellationToken cancellationToken);

    /// <summary>
    /// Returns when work of the given kind may have arrived (enqueued by this process), or when the
    /// timeout passes. Backends that cannot tell simply wait for the timeout.
    /// </summary>
    Task WaitForWorkAsync(WorkItemKind kind, TimeSpan timeout, CancellationToken cancellationToken);
}

/// <summary>The two kinds of work a worker fetches.</summary>
public enum WorkItemKind
{
    /// <summary>Orchestration episodes.</summary>
    Orchestration,

    /// <summary>Activity executions.</summary>
    Activity,
}

/// <summary>A locked instance with its history and the messages to apply.</summary>
public sealed class OrchestrationWorkItem
{
    /// <summary>The instance id.</summary>
    public required string InstanceId { get; init; }

    /// <summary>The lock token; commits are refused once another worker holds a newer one.</summary>
    public required string LockToken { get; init; }

    /// <summary>The history of the current execution, in order.</summary>
    public required IReadOnlyList<HistoryEvent> History { get; init; }

    /// <summary>The deliverable messages for the instance, in arrival order.</summary>
    public required IReadOnlyList<TaskMessage> Messages { get; init; }

    /// <summary>Backend-specific state (row counts, ETags).</summary>
    public object? BackendState { get; set; }
}

/// <summary>What one episode writes: the atomic part of a checkpoint.</summary>
public sealed class OrchestrationCheckpoint
{
    /// <summary>True when the history is replaced (a ContinueAsNew restart).</summary>
    public bool ReplaceHistory { get; init; }

    /// <summary>Events to append.</summary>
    public required IReadOnlyList<HistoryEvent> NewEvents { get; init; }

    /// <summary>Messages the events cause.</summary>
    public required IReadOnlyList<TaskMessage> Outbox { get; init; }

    /// <summary>The instance state after the episode.</summary>
    public required InstanceState State { get; init; }
}

/// <summary>A locked activity work item.</summary>
public sealed class ActivityWorkItem
{
    /// <summary>The message id of the work item.</summary>
    public required string MessageId { get; init; }

    /// <summary>The orchestration instance.</summary>
    public required string InstanceId { get; init; }

    /// <summary>Its execution.</summary>
    public required string ExecutionId { get; init; }

    /// <summary>What to run.</summary>
    public required TaskScheduledEvent Event { get; init; }

    /// <summary>The lock token.</summary>
    public required string LockToken { get; init; }

    /// <summary>How many times the item has been delivered, this one included.</summary>
    public int DequeueCount { get; init; }

    /// <summary>Backend-specific state.</summary>
    public object? BackendState { get; set; }

    /// <summary>The work item that runs <paramref name="scheduled"/>, the event <paramref name="message"/> carries, locked with <paramref name="lockToken"/>.</summary>
    internal static ActivityWorkItem For(string messageId, TaskMessage message, TaskScheduledEvent scheduled, string lockToken, int dequeueCount) => new()
    {
        MessageId = messageId,
        InstanceId = message.InstanceId,
        ExecutionId = message.ExecutionId!,
        Event = scheduled,
        LockToken = lockToken,
        DequeueCount = dequeueCount,
    };
}

/// <summary>The caller no longer holds the work item's lock; its changes were not written.</summary>
public sealed class WorkItemLockLostException : Exception
{
    /// <summary>Creates the exception.</summary>
    public WorkItemLockLostException(string instanceId)
        : base($"The lock on orchestration instance '{instanceId}' was lost to another worker; the checkpoint was not written.")
    {
    }
}

/// <summary>Filter for listing instances, one page at a time.</summary>
public sealed record InstanceQuery
{
    /// <summary>The most instances one page may hold.</summary>
    public const int MaxPageSize = 10_000;

    /// <summary>The page size when none is given.</summary>
    public const int DefaultPageSize = 100;

    /// <summary>Statuses to include; null or empty means all.</summary>
    public IReadOnlyCollection<OrchestrationRuntimeStatus>? Statuses { get; init; }

    /// <summary>Only instances created at or after this time.</summary>
    public DateTimeOffset? CreatedFrom { get; init; }

    /// <summary>Only instances created before this time.</summary>
    public DateTimeOffset? CreatedTo { get; init; }

    /// <summary>Only instance ids starting with this prefix.</summary>
    public string? InstanceIdPrefix { get; init; }

    /// <summary>At most this many results per page (1-10,000). Default 100.</summary>
    public int PageSize { get; init; } = DefaultPageSize;

    /// <summary>Include inputs, outputs and custom status. Default true.</summary>
    public bool FetchInputsAndOutputs { get; init; } = true;

    /// <summary>
    /// The <see cref="Page{T}.ContinuationToken"/> of the previous page, to read the next; null for the first page.
    /// Opaque, and valid only with the same filter on the same kind of backend.
    /// </summary>
    public string? ContinuationToken { get; init; }
}

/// <summary>Filter for purging finished instances.</summary>
public sealed record PurgeInstancesFilter
{
    /// <summary>Only instances created at or after this time.</summary>
    public DateTimeOffset? CreatedFrom { get; init; }

    /// <summary>Only instances created before this time.</summary>
    public DateTimeOffset? CreatedTo { get; init; }

    /// <summary>Terminal statuses to purge; null means all terminal statuses. Non-terminal statuses are refused.</summary>
    public IReadOnlyCollection<OrchestrationRuntimeStatus>? Statuses { get; init; }
}

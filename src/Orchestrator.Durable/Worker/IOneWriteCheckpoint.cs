using Orchestrator.Durable.Backend;

namespace Orchestrator.Durable.Worker;

/// <summary>
/// Optional capability of a backend: the three steps of a checkpoint (commit, dispatch, release; see
/// <see cref="IOrchestrationBackend"/>) as one atomic, durable write, for a backend whose history, queues and locks
/// live in one store that can write them together.
/// </summary>
/// <remarks>
/// A crash leaves the instance either as it was before the episode or with the whole checkpoint done: no committed
/// outbox waiting for its dispatch, no consumed message waiting for its release. The worker uses it only while
/// <see cref="CheckpointsInOneWrite"/> is true.
/// </remarks>
internal interface IOneWriteCheckpoint
{
    /// <summary>Whether <see cref="CheckpointAsync"/> is to be used instead of the three steps.</summary>
    bool CheckpointsInOneWrite { get; }

    /// <summary>
    /// In one write, only if <paramref name="workItem"/> still holds the lock: commits <paramref name="checkpoint"/>
    /// (none when the episode produced nothing), routes its outbox and any outbox a crash left, deletes the consumed
    /// messages and unlocks the instance. Up to <paramref name="maxActivities"/> of the activity work items it
    /// enqueues that are visible now come back locked to the caller, as <see cref="IActivityHandOff"/> hands them.
    /// </summary>
    /// <exception cref="WorkItemLockLostException">Another worker owns the instance now; nothing was written.</exception>
    Task<IReadOnlyList<ActivityWorkItem>> CheckpointAsync(
        OrchestrationWorkItem workItem,
        OrchestrationCheckpoint? checkpoint,
        IReadOnlyCollection<string> consumedMessageIds,
        int maxActivities,
        TimeSpan activityLockTimeout,
        CancellationToken cancellationToken);
}

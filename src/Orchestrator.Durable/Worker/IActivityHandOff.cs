using Orchestrator.Durable.Backend;

namespace Orchestrator.Durable.Worker;

/// <summary>
/// Optional capability of a backend: dispatch an episode's outbox and, in the same store operation, lock some of
/// the activity work items it enqueues to the dispatching worker, which runs them at once instead of fetching
/// them in another round trip.
/// </summary>
/// <remarks>
/// The items are exactly what an activity fetch would have returned for those rows (their own lock, token and a
/// dequeue count of 1): if the worker dies before completing them, their locks expire and any worker fetches them.
/// Rows already present (a re-dispatch after a crash) are never handed off.
/// </remarks>
internal interface IActivityHandOff
{
    /// <summary>
    /// Does what <see cref="IOrchestrationBackend.DispatchOutboxAsync"/> does, and locks up to
    /// <paramref name="maxActivities"/> of the activity work items it enqueues that are visible now.
    /// </summary>
    Task<IReadOnlyList<ActivityWorkItem>> DispatchOutboxAsync(OrchestrationWorkItem workItem, int maxActivities, TimeSpan activityLockTimeout, CancellationToken cancellationToken);
}

using Orchestrator.Durable.Core;
using Orchestrator.Durable.Backend;

namespace Orchestrator.Durable.Worker;

/// <summary>
/// Optional capability of a backend: lock several work items in one store round trip. Each item
/// is exactly what the single-item fetch would have returned (its own lock, token and messages);
/// the worker uses this to fill all of its free slots with one fetch.
/// </summary>
internal interface IBatchWorkItemSource
{
    /// <summary>Locks up to <paramref name="maxCount"/> orchestration work items; empty when none.</summary>
    Task<IReadOnlyList<OrchestrationWorkItem>> LockNextOrchestrationWorkItemsAsync(int maxCount, TimeSpan lockTimeout, CancellationToken cancellationToken);

    /// <summary>
    /// As <see cref="LockNextOrchestrationWorkItemsAsync(int, TimeSpan, CancellationToken)"/>; for an instance whose
    /// history <paramref name="keptHistory"/> returns, the backend may check that the stored history is that one
    /// (without reading it all) and then hand out that list as the work item's history.
    /// </summary>
    Task<IReadOnlyList<OrchestrationWorkItem>> LockNextOrchestrationWorkItemsAsync(int maxCount, TimeSpan lockTimeout, Func<string, KeptHistory?> keptHistory, CancellationToken cancellationToken);

    /// <summary>Locks up to <paramref name="maxCount"/> activity work items; empty when none.</summary>
    Task<IReadOnlyList<ActivityWorkItem>> LockNextActivityWorkItemsAsync(int maxCount, TimeSpan lockTimeout, CancellationToken cancellationToken);
}

namespace Orchestrator.Durable.Worker;

/// <summary>Options of a <see cref="DurableTaskWorker"/>.</summary>
public sealed record DurableTaskWorkerOptions
{
    /// <summary>Most orchestration episodes run at once. Default 100 per core (as Microsoft.DurableTask).</summary>
    /// <remarks>
    /// An episode spends most of its time waiting for its three checkpoint writes, not on a CPU; with
    /// more of them in flight, a store that commits in groups (SQLite) writes more of them per sync.
    /// </remarks>
    public int MaxConcurrentOrchestrations { get; init; } = 100 * Environment.ProcessorCount;

    /// <summary>Most activities run at once. Default 100 per core (as Microsoft.DurableTask).</summary>
    public int MaxConcurrentActivities { get; init; } = 100 * Environment.ProcessorCount;

    /// <summary>
    /// How many fetches of each kind (orchestration episodes, activities) may be in flight at once.
    /// Default 2.
    /// </summary>
    /// <remarks>
    /// A fetch is a store round trip. When the backend can lock several work items per round trip,
    /// one fetch fills every free slot; a second fetch in flight refills the slots freed meanwhile.
    /// Otherwise each fetch starts one work item, and more fetches in flight keep more slots busy.
    /// </remarks>
    public int DispatcherCount { get; init; } = 2;

    /// <summary>How long an instance stays locked to this worker per episode. Default 1 minute.</summary>
    public TimeSpan OrchestrationLockTimeout { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>How long an activity stays locked; renewed at half this while it runs. Default 5 minutes.</summary>
    public TimeSpan ActivityLockTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Shortest wait between polls when idle. Default 10 ms.</summary>
    public TimeSpan MinPollingInterval { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>Longest wait between polls when idle (work enqueued by this process wakes the worker at once). Default 1 s.</summary>
    public TimeSpan MaxPollingInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The orchestrations' clock and the one lock expiry is computed with. Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Converts inputs and outputs. Default <see cref="DataConverter.Default"/>.</summary>
    public DataConverter DataConverter { get; init; } = DataConverter.Default;

    /// <summary>A name for this worker in logs. Default machine name and process id.</summary>
    public string WorkerId { get; init; } = $"{Environment.MachineName}:{Environment.ProcessId}";

    /// <summary>
    /// Most orchestrations kept in memory between episodes, so the next episode runs only its new events
    /// instead of replaying the whole history (Durable Functions' extended sessions). Default 1,000; 0 turns it off.
    /// </summary>
    /// <remarks>
    /// A kept orchestration continues only when the instance's stored history is exactly the one it produced
    /// (same execution, same length, same last event); after anything else (another worker committed, a lock
    /// was lost, a checkpoint failed, the process restarted) the episode replays from the stored history as
    /// it does with this off. While an orchestration is kept, its code does not re-run against its history,
    /// so a non-deterministic change is detected only when it is next replayed.
    /// </remarks>
    public int MaxCachedOrchestrations { get; init; } = 1000;

    /// <summary>How long an orchestration is kept in memory without a new episode. Default 30 s.</summary>
    public TimeSpan CachedOrchestrationIdleTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Test hook: called at each step of a checkpoint, before the step runs.</summary>
    internal Action<CheckpointStage, string>? OnCheckpointStage { get; init; }

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(this.MaxConcurrentOrchestrations, 1, nameof(this.MaxConcurrentOrchestrations));
        ArgumentOutOfRangeException.ThrowIfLessThan(this.MaxConcurrentActivities, 1, nameof(this.MaxConcurrentActivities));
        ArgumentOutOfRangeException.ThrowIfLessThan(this.DispatcherCount, 1, nameof(this.DispatcherCount));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(this.OrchestrationLockTimeout, TimeSpan.Zero, nameof(this.OrchestrationLockTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(this.ActivityLockTimeout, TimeSpan.Zero, nameof(this.ActivityLockTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(this.MinPollingInterval, TimeSpan.Zero, nameof(this.MinPollingInterval));
        ArgumentOutOfRangeException.ThrowIfLessThan(this.MaxPollingInterval, this.MinPollingInterval, nameof(this.MaxPollingInterval));
        ArgumentOutOfRangeException.ThrowIfNegative(this.MaxCachedOrchestrations, nameof(this.MaxCachedOrchestrations));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(this.CachedOrchestrationIdleTimeout, TimeSpan.Zero, nameof(this.CachedOrchestrationIdleTimeout));
        ArgumentNullException.ThrowIfNull(this.TimeProvider, nameof(this.TimeProvider));
        ArgumentNullException.ThrowIfNull(this.DataConverter, nameof(this.DataConverter));
    }
}

/// <summary>The points of a checkpoint at which a crash is possible.</summary>
internal enum CheckpointStage
{
    /// <summary>The episode ran; nothing is written yet.</summary>
    BeforeCommit,

    /// <summary>History, state and outbox are committed; the outbox is not dispatched.</summary>
    AfterCommit,

    /// <summary>The outbox is dispatched; the consumed messages are not yet deleted.</summary>
    AfterDispatch,

    /// <summary>
    /// A backend writing the checkpoint in one write (<see cref="IOneWriteCheckpoint"/>) wrote all of it; the activities
    /// it handed to this worker have not started. Such a backend never reaches <see cref="AfterCommit"/> or
    /// <see cref="AfterDispatch"/>.
    /// </summary>
    AfterCheckpoint,
}

using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.History;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Durable.Tests.Conformance;

/// <summary>
/// One backend, one worker and one client sharing one fake clock. Disposing stops the worker
/// before the backend so no episode runs against a closed store.
/// </summary>
internal sealed class ConformanceHarness : IAsyncDisposable
{
    /// <summary>The longest any single wait in a conformance test may take; well under the test timeout.</summary>
    public static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(15);

    private ConformanceHarness(FakeTimeProvider time, IOrchestrationBackend backend, DurableTaskWorker worker, DurableTaskClient client)
    {
        this.Time = time;
        this.Backend = backend;
        this.Worker = worker;
        this.Client = client;
    }

    public FakeTimeProvider Time { get; }

    public IOrchestrationBackend Backend { get; }

    public DurableTaskWorker Worker { get; }

    public DurableTaskClient Client { get; }

    public static async Task<ConformanceHarness> StartAsync(
        Func<TimeProvider, IOrchestrationBackend> createBackend,
        DurableTaskRegistry registry,
        DurableTaskRegistry? clientRegistry = null,
        Action<CheckpointStage, string>? onCheckpointStage = null,
        int dispatcherCount = 2,
        int maxCachedOrchestrations = 1000)
    {
        // Frozen unless a test advances it: timers fire only when a test says so, and every
        // timestamp in history is predictable.
        var time = new FakeTimeProvider(new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero));
        IOrchestrationBackend backend = createBackend(time);
        var worker = new DurableTaskWorker(
            backend,
            registry,
            new DurableTaskWorkerOptions
            {
                TimeProvider = time,

                // Polling runs on real time; a short ceiling makes a fake-clock advance noticed quickly.
                MaxPollingInterval = TimeSpan.FromMilliseconds(50),
                MaxConcurrentOrchestrations = 8,
                MaxConcurrentActivities = 8,
                DispatcherCount = dispatcherCount,
                MaxCachedOrchestrations = maxCachedOrchestrations,
                OnCheckpointStage = onCheckpointStage,
            });
        try
        {
            using var cts = new CancellationTokenSource(WaitLimit);
            await worker.StartAsync(cts.Token);
        }
        catch
        {
            await worker.DisposeAsync();
            await backend.DisposeAsync();
            throw;
        }

        var client = new DurableTaskClient(
            backend,
            new DurableTaskClientOptions { TimeProvider = time, MaxPollingInterval = TimeSpan.FromMilliseconds(50), Registry = clientRegistry });
        return new ConformanceHarness(time, backend, worker, client);
    }

    public Task<string> ScheduleAsync(string orchestratorName, object? input = null, string? instanceId = null) =>
        this.Client.ScheduleNewOrchestrationInstanceAsync(orchestratorName, input, new StartOrchestrationOptions { InstanceId = instanceId });

    /// <summary>Waits for a terminal state, failing with the last known state when it does not come.</summary>
    public async Task<OrchestrationMetadata> WaitForCompletionAsync(string instanceId)
    {
        using var cts = new CancellationTokenSource(WaitLimit);
        try
        {
            return await this.Client.WaitForInstanceCompletionAsync(instanceId, cts.Token);
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            OrchestrationMetadata? last = await this.Client.GetInstanceAsync(instanceId);
            throw new TimeoutException($"Instance '{instanceId}' did not finish within {WaitLimit}; last state: {last}");
        }
    }

    /// <summary>Waits until the instance exists (sub-orchestrations appear asynchronously) and satisfies the condition.</summary>
    public async Task<OrchestrationMetadata> WaitForStatusAsync(string instanceId, Func<OrchestrationMetadata, bool> condition, string what) =>
        (await Eventually.UntilAsync(
            () => this.Client.GetInstanceAsync(instanceId),
            m => m is not null && condition(m),
            $"instance '{instanceId}': {what}"))!;

    /// <summary>Waits until the committed history satisfies the condition (the engine's only observable progress).</summary>
    public Task<IReadOnlyList<HistoryEvent>> WaitForHistoryAsync(string instanceId, Func<IReadOnlyList<HistoryEvent>, bool> condition, string what) =>
        Eventually.UntilAsync(() => this.Client.GetHistoryAsync(instanceId), condition, $"history of '{instanceId}': {what}");

    public async ValueTask DisposeAsync()
    {
        try
        {
            using var cts = new CancellationTokenSource(WaitLimit);
            await this.Worker.StopAsync(cts.Token);
            await this.Worker.DisposeAsync();
        }
        finally
        {
            await this.Backend.DisposeAsync();
        }
    }
}

/// <summary>Bounded polling: the replacement for sleeps in tests that wait on another thread's progress.</summary>
internal static class Eventually
{
    public static async Task<T> UntilAsync<T>(Func<Task<T>> probe, Func<T, bool> condition, string what, TimeSpan? limit = null)
    {
        TimeSpan max = limit ?? ConformanceHarness.WaitLimit;
        var clock = Stopwatch.StartNew();
        while (true)
        {
            T value = await probe();
            if (condition(value))
            {
                return value;
            }

            if (clock.Elapsed > max)
            {
                throw new TimeoutException($"Timed out after {max} waiting for {what}.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(10));
        }
    }
}

/// <summary>A hand-written logger that keeps what was written, for replay-safe logging checks.</summary>
internal sealed class RecordingLogger : ILogger
{
    public ConcurrentQueue<string> Messages { get; } = new();

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        this.Messages.Enqueue(formatter(state, exception));
}

/// <summary>A pass-through backend that records which instances were handed to a worker.</summary>
internal sealed class LockRecordingBackend(IOrchestrationBackend inner) : IOrchestrationBackend
{
    private readonly ConcurrentQueue<string> locked = new();

    public IReadOnlyCollection<string> LockedInstanceIds => this.locked;

    public async Task<OrchestrationWorkItem?> LockNextOrchestrationWorkItemAsync(TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        OrchestrationWorkItem? item = await inner.LockNextOrchestrationWorkItemAsync(lockTimeout, cancellationToken);
        if (item is not null)
        {
            this.locked.Enqueue(item.InstanceId);
        }

        return item;
    }

    public Task CreateIfNotExistsAsync(CancellationToken cancellationToken) => inner.CreateIfNotExistsAsync(cancellationToken);

    public Task CreateInstanceAsync(TaskMessage startMessage, CancellationToken cancellationToken) => inner.CreateInstanceAsync(startMessage, cancellationToken);

    public Task SendInstanceMessageAsync(TaskMessage message, CancellationToken cancellationToken) => inner.SendInstanceMessageAsync(message, cancellationToken);

    public Task<OrchestrationMetadata?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken) => inner.GetInstanceAsync(instanceId, cancellationToken);

    public Task<Page<OrchestrationMetadata>> QueryInstancesAsync(InstanceQuery query, CancellationToken cancellationToken) => inner.QueryInstancesAsync(query, cancellationToken);

    public Task<IReadOnlyList<HistoryEvent>?> GetHistoryAsync(string instanceId, CancellationToken cancellationToken) => inner.GetHistoryAsync(instanceId, cancellationToken);

    public Task<bool> PurgeInstanceAsync(string instanceId, CancellationToken cancellationToken) => inner.PurgeInstanceAsync(instanceId, cancellationToken);

    public Task<int> PurgeInstancesAsync(PurgeInstancesFilter filter, CancellationToken cancellationToken) => inner.PurgeInstancesAsync(filter, cancellationToken);

    public Task CommitCheckpointAsync(OrchestrationWorkItem workItem, OrchestrationCheckpoint checkpoint, CancellationToken cancellationToken) =>
        inner.CommitCheckpointAsync(workItem, checkpoint, cancellationToken);

    public Task DispatchOutboxAsync(OrchestrationWorkItem workItem, CancellationToken cancellationToken) => inner.DispatchOutboxAsync(workItem, cancellationToken);

    public Task ReleaseOrchestrationWorkItemAsync(OrchestrationWorkItem workItem, IReadOnlyCollection<string> consumedMessageIds, CancellationToken cancellationToken) =>
        inner.ReleaseOrchestrationWorkItemAsync(workItem, consumedMessageIds, cancellationToken);

    public Task AbandonOrchestrationWorkItemAsync(OrchestrationWorkItem workItem, CancellationToken cancellationToken) => inner.AbandonOrchestrationWorkItemAsync(workItem, cancellationToken);

    public Task<ActivityWorkItem?> LockNextActivityWorkItemAsync(TimeSpan lockTimeout, CancellationToken cancellationToken) => inner.LockNextActivityWorkItemAsync(lockTimeout, cancellationToken);

    public Task RenewActivityWorkItemLockAsync(ActivityWorkItem workItem, TimeSpan lockTimeout, CancellationToken cancellationToken) =>
        inner.RenewActivityWorkItemLockAsync(workItem, lockTimeout, cancellationToken);

    public Task CompleteActivityWorkItemAsync(ActivityWorkItem workItem, TaskMessage result, CancellationToken cancellationToken) =>
        inner.CompleteActivityWorkItemAsync(workItem, result, cancellationToken);

    public Task AbandonActivityWorkItemAsync(ActivityWorkItem workItem, CancellationToken cancellationToken) => inner.AbandonActivityWorkItemAsync(workItem, cancellationToken);

    public Task WaitForWorkAsync(WorkItemKind kind, TimeSpan timeout, CancellationToken cancellationToken) => inner.WaitForWorkAsync(kind, timeout, cancellationToken);

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}

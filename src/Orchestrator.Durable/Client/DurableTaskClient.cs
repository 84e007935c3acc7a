using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Core;
using Orchestrator.Durable.History;

namespace Orchestrator.Durable.Client;

/// <summary>Options for scheduling an orchestration.</summary>
public sealed record StartOrchestrationOptions
{
    /// <summary>The instance id; by default a new random id.</summary>
    public string? InstanceId { get; init; }

    /// <summary>Start no earlier than this time.</summary>
    public DateTimeOffset? StartAt { get; init; }
}

/// <summary>Options of a <see cref="DurableTaskClient"/>.</summary>
public sealed record DurableTaskClientOptions
{
    /// <summary>Converts inputs and outputs. Default <see cref="DataConverter.Default"/>.</summary>
    public DataConverter DataConverter { get; init; } = DataConverter.Default;

    /// <summary>The clock for timestamps of messages sent. Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// When set, scheduling an orchestrator name that is not registered here is refused at once
    /// instead of failing later in a worker.
    /// </summary>
    public DurableTaskRegistry? Registry { get; init; }

    /// <summary>Longest wait between status polls in the Wait methods. Default 250 ms.</summary>
    public TimeSpan MaxPollingInterval { get; init; } = TimeSpan.FromMilliseconds(250);
}

/// <summary>
/// Starts, queries, signals, terminates and purges orchestration instances. Thread-safe.
/// </summary>
public sealed class DurableTaskClient
{
    private readonly IOrchestrationBackend backend;
    private readonly DurableTaskClientOptions options;

    /// <summary>Creates a client over a backend.</summary>
    public DurableTaskClient(IOrchestrationBackend backend, DurableTaskClientOptions? options = null)
    {
        this.backend = backend;
        this.options = options ?? new DurableTaskClientOptions();
    }

    /// <summary>
    /// Schedules a new instance and returns its id once the start is durably recorded.
    /// </summary>
    /// <exception cref="OrchestrationAlreadyExistsException">An unfinished instance with that id exists; nothing was scheduled.</exception>
    /// <exception cref="ArgumentException">The name or id is invalid, or the orchestrator is unknown to <see cref="DurableTaskClientOptions.Registry"/>.</exception>
    public async Task<string> ScheduleNewOrchestrationInstanceAsync(string orchestratorName, object? input = null, StartOrchestrationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(orchestratorName);
        if (this.options.Registry is { } registry && !registry.ContainsOrchestrator(orchestratorName))
        {
            throw new ArgumentException($"No orchestrator named '{orchestratorName}' is registered; nothing was scheduled.", nameof(orchestratorName));
        }

        string instanceId = options?.InstanceId ?? NewId();
        InstanceIds.Validate(instanceId, nameof(instanceId));
        string executionId = NewId();
        DateTimeOffset now = this.options.TimeProvider.GetUtcNow();
        var message = new TaskMessage
        {
            MessageId = $"{instanceId}|{executionId}|start",
            InstanceId = instanceId,
            ExecutionId = executionId,
            VisibleAt = options?.StartAt,
            Event = new ExecutionStartedEvent
            {
                Timestamp = now,
                Name = orchestratorName,
                InstanceId = instanceId,
                ExecutionId = executionId,
                Input = this.options.DataConverter.Serialize(input),
                ScheduledStartTime = options?.StartAt,
            },
        };
        await this.backend.CreateInstanceAsync(message, cancellationToken).ConfigureAwait(false);
        return instanceId;
    }

    /// <summary>Sends an external event to a running instance; it is buffered if the instance is not waiting yet.</summary>
    /// <exception cref="OrchestrationNotFoundException">No such instance.</exception>
    /// <exception cref="OrchestrationNotRunningException">The instance has finished.</exception>
    public Task RaiseEventAsync(string instanceId, string eventName, object? eventPayload = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        ArgumentException.ThrowIfNullOrWhiteSpace(eventName);
        string messageId = $"{instanceId}|event|{NewId()}";
        return this.backend.SendInstanceMessageAsync(
            new TaskMessage
            {
                MessageId = messageId,
                InstanceId = instanceId,
                Event = new EventRaisedEvent
                {
                    Timestamp = this.options.TimeProvider.GetUtcNow(),
                    Name = eventName,
                    Input = this.options.DataConverter.Serialize(eventPayload),
                    MessageId = messageId,
                },
            },
            cancellationToken);
    }

    /// <summary>Asks a running instance to stop; it ends in the Terminated state with the reason as output.</summary>
    /// <exception cref="OrchestrationNotFoundException">No such instance.</exception>
    /// <exception cref="OrchestrationNotRunningException">The instance has finished.</exception>
    public Task TerminateInstanceAsync(string instanceId, string? reason = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        return this.backend.SendInstanceMessageAsync(
            new TaskMessage
            {
                MessageId = $"{instanceId}|terminate|{NewId()}",
                InstanceId = instanceId,
                Event = new ExecutionTerminatedEvent { Timestamp = this.options.TimeProvider.GetUtcNow(), Reason = reason },
            },
            cancellationToken);
    }

    /// <summary>Reads an instance's status; null when it does not exist.</summary>
    public Task<OrchestrationMetadata?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        return this.backend.GetInstanceAsync(instanceId, cancellationToken);
    }

    /// <summary>
    /// Lists one page of the instances matching the query, in instance id order (ordinal), with the token for the next
    /// page in <see cref="Page{T}.ContinuationToken"/> (null on the last page). <see cref="GetAllInstancesAsync"/> reads every page.
    /// </summary>
    /// <remarks>
    /// Paging is by instance id: an instance that exists and matches throughout a paged read is listed exactly once, and
    /// none twice, while others are created or purged between pages. A page can be shorter than the page size (even empty)
    /// and still carry a token. (The Azure Storage backend orders by its escaped key, which differs from the id's order only
    /// for ids holding '%', '/', '\', '#', '?' or control characters.)
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException">The page size is outside 1-10,000.</exception>
    /// <exception cref="ArgumentException">The continuation token is malformed, or was issued by another backend or for another filter.</exception>
    public Task<Page<OrchestrationMetadata>> QueryInstancesAsync(InstanceQuery? query = null, CancellationToken cancellationToken = default) =>
        this.backend.QueryInstancesAsync(query ?? new InstanceQuery(), cancellationToken);

    /// <summary>
    /// Every instance matching the query, read a page of <see cref="InstanceQuery.PageSize"/> at a time as it is enumerated,
    /// starting at the query's <see cref="InstanceQuery.ContinuationToken"/> (null: the first). In instance id order, with
    /// the guarantees of <see cref="QueryInstancesAsync"/>.
    /// </summary>
    /// <remarks>Nothing is read until enumeration; a bad token or page size fails the first fetch.</remarks>
    public AsyncPageable<OrchestrationMetadata> GetAllInstancesAsync(InstanceQuery? query = null)
    {
        InstanceQuery q = query ?? new InstanceQuery();
        return new AsyncPageable<OrchestrationMetadata>((token, pageSize, cancellationToken) =>
            this.backend.QueryInstancesAsync(
                q with { ContinuationToken = token ?? q.ContinuationToken, PageSize = pageSize ?? q.PageSize },
                cancellationToken));
    }

    /// <summary>Reads the full history of an instance's current execution.</summary>
    /// <exception cref="OrchestrationNotFoundException">No such instance.</exception>
    public async Task<IReadOnlyList<HistoryEvent>> GetHistoryAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        return await this.backend.GetHistoryAsync(instanceId, cancellationToken).ConfigureAwait(false)
            ?? throw new OrchestrationNotFoundException(instanceId);
    }

    /// <summary>Waits until the instance has started (or finished).</summary>
    /// <exception cref="OrchestrationNotFoundException">No such instance.</exception>
    public Task<OrchestrationMetadata> WaitForInstanceStartAsync(string instanceId, CancellationToken cancellationToken = default) =>
        this.WaitAsync(instanceId, m => m.RuntimeStatus != OrchestrationRuntimeStatus.Pending, completion: false, cancellationToken);

    /// <summary>Waits until the instance is Completed, Failed or Terminated. Use the token for a timeout.</summary>
    /// <exception cref="OrchestrationNotFoundException">No such instance.</exception>
    public Task<OrchestrationMetadata> WaitForInstanceCompletionAsync(string instanceId, CancellationToken cancellationToken = default) =>
        this.WaitAsync(instanceId, m => m.IsCompleted, completion: true, cancellationToken);

    /// <summary>Deletes a finished instance with its history.</summary>
    /// <returns>False when no such instance exists.</returns>
    /// <exception cref="OrchestrationNotRunningException">The instance has not finished, or its final messages (such as its result for a parent) are not yet dispatched; nothing was deleted.</exception>
    public Task<bool> PurgeInstanceAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        return this.backend.PurgeInstanceAsync(instanceId, cancellationToken);
    }

    /// <summary>Deletes every finished instance matching the filter; returns how many.</summary>
    public Task<int> PurgeInstancesAsync(PurgeInstancesFilter filter, CancellationToken cancellationToken = default) =>
        this.backend.PurgeInstancesAsync(filter, cancellationToken);

    private static string NewId()
    {
#pragma warning disable RS0030 // Client-side ids are chosen once and recorded; they are never replayed.
        return Guid.NewGuid().ToString("N");
#pragma warning restore RS0030
    }

    private async Task<OrchestrationMetadata> WaitAsync(string instanceId, Func<OrchestrationMetadata, bool> done, bool completion, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        IInstanceCompletionSignal? signal = completion ? this.backend as IInstanceCompletionSignal : null;

        // With a signal the poll is only the fallback, so it runs at the longest interval from the start.
        TimeSpan delay = signal is null ? TimeSpan.FromMilliseconds(5) : this.options.MaxPollingInterval;
        while (true)
        {
            // Listening starts before the read, so a completion committed between the read and the wait is not missed.
            Task signalled = signal?.WaitForCompletionAsync(instanceId, delay, cancellationToken) ?? Task.CompletedTask;
            OrchestrationMetadata m = await this.backend.GetInstanceAsync(instanceId, cancellationToken).ConfigureAwait(false)
                ?? throw new OrchestrationNotFoundException(instanceId);
            if (done(m))
            {
                return m;
            }

            // Polling runs on real time even when the orchestrations' clock is a fake one. A backend that signals
            // completions in this process ends the wait early; the poll stays for everything else (another process
            // finished it, a purge).
            await (signal is null ? Task.Delay(delay, TimeProvider.System, cancellationToken) : signalled).ConfigureAwait(false);
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, this.options.MaxPollingInterval.Ticks));
        }
    }
}

using Orchestrator.Durable.History;

namespace Orchestrator.Durable.Core;

/// <summary>
/// The context handed to orchestrator code during one replay. Every scheduling call records a
/// pending action with the next sequence number; the executor matches those actions against the
/// scheduling events in history, and turns unmatched ones into new history and messages.
/// </summary>
internal sealed class OrchestrationContextImpl : TaskOrchestrationContext
{
    private readonly DataConverter converter;
    private readonly Dictionary<int, OpenTask> openTasks = [];
    private readonly SortedDictionary<int, PendingAction> pendingActions = [];
    private readonly Dictionary<string, LinkedList<EventWaiter>> eventWaiters = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<BufferedEvent> bufferedEvents = [];
    private int sequenceNumber;
    private int guidCounter;

    public OrchestrationContextImpl(ExecutionStartedEvent started, DataConverter converter)
    {
        this.converter = converter;
        this.Name = started.Name;
        this.InstanceId = started.InstanceId;
        this.ExecutionId = started.ExecutionId;
        this.Parent = started.Parent;
    }

    public override string Name { get; }

    public override string InstanceId { get; }

    public override string ExecutionId { get; }

    public override ParentInstance? Parent { get; }

    public override DateTime CurrentUtcDateTime => this.CurrentUtc.UtcDateTime;

    public DateTimeOffset CurrentUtc { get; set; }

    public override bool IsReplaying => this.IsReplayingInternal;

    public bool IsReplayingInternal { get; set; }

    public string? CustomStatus { get; private set; }

    public ContinueAsNewRequest? ContinueAsNewRequested { get; private set; }

    public SortedDictionary<int, PendingAction> PendingActions => this.pendingActions;

    public IReadOnlyList<BufferedEvent> UnconsumedEvents => this.bufferedEvents;

    public override Guid NewGuid() =>
        DeterministicGuid.Create($"{this.InstanceId}|{this.ExecutionId}|{this.guidCounter++}");

    public override Task<TResult> CallActivityAsync<TResult>(string name, object? input = null, TaskOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        string? serialized = this.converter.Serialize(input);
        if (options?.Retry is { } retry)
        {
            return this.WithRetry(retry, () => this.ScheduleActivity<TResult>(name, serialized, options.RunLocally));
        }

        return this.ScheduleActivity<TResult>(name, serialized, options?.RunLocally ?? false);
    }

    public override Task<TResult> CallSubOrchestratorAsync<TResult>(string name, object? input = null, SubOrchestrationOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (options?.RunLocally == true)
        {
            throw new ArgumentException($"Sub-orchestration '{name}' cannot run locally: {nameof(TaskOptions.RunLocally)} applies to activities only.", nameof(options));
        }

        if (options?.InstanceId is { } childId)
        {
            InstanceIds.Validate(childId, nameof(options));
        }

        string? serialized = this.converter.Serialize(input);
        if (options?.Retry is { } retry)
        {
            return this.WithRetry(retry, () => this.ScheduleSubOrchestration<TResult>(name, serialized, options.InstanceId));
        }

        return this.ScheduleSubOrchestration<TResult>(name, serialized, options?.InstanceId);
    }

    public override Task CreateTimer(DateTime fireAt, CancellationToken cancellationToken)
    {
        int id = this.sequenceNumber++;
        var fireAtUtc = new DateTimeOffset(DateTime.SpecifyKind(fireAt.ToUniversalTime(), DateTimeKind.Utc));
        this.pendingActions[id] = new PendingAction(id, new TimerCreatedEvent { EventId = id, FireAt = fireAtUtc }, this.IsReplayingInternal);
        var tcs = new TaskCompletionSource();
        this.openTasks[id] = new OpenTask("timer", e =>
        {
            if (e is TimerFiredEvent)
            {
                tcs.TrySetResult();
            }
        });
        if (cancellationToken.CanBeCanceled)
        {
            cancellationToken.Register(() => tcs.TrySetCanceled(cancellationToken));
        }

        return tcs.Task;
    }

    public override Task<T> WaitForExternalEvent<T>(string eventName, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(eventName);
        int index = this.bufferedEvents.FindIndex(b => string.Equals(b.Name, eventName, StringComparison.OrdinalIgnoreCase));
        if (index >= 0)
        {
            BufferedEvent buffered = this.bufferedEvents[index];
            this.bufferedEvents.RemoveAt(index);
            try
            {
                return Task.FromResult(this.converter.Deserialize<T>(buffered.Input)!);
            }
            catch (Exception ex)
            {
                return Task.FromException<T>(ex);
            }
        }

        var tcs = new TaskCompletionSource<T>();
        if (!this.eventWaiters.TryGetValue(eventName, out var waiters))
        {
            waiters = new LinkedList<EventWaiter>();
            this.eventWaiters[eventName] = waiters;
        }

        var waiter = new EventWaiter(input =>
        {
            try
            {
                tcs.TrySetResult(this.converter.Deserialize<T>(input)!);
            }
            catch (Exception ex)
            {
                tcs.TrySetException(ex);
            }
        });
        LinkedListNode<EventWaiter> node = waiters.AddLast(waiter);
        if (cancellationToken.CanBeCanceled)
        {
            cancellationToken.Register(() =>
            {
                if (node.List is not null)
                {
                    waiters.Remove(node);
                }

                tcs.TrySetCanceled(cancellationToken);
            });
        }

        return tcs.Task;
    }

    public override void ContinueAsNew(object? newInput = null, bool preserveUnprocessedEvents = true) =>
        this.ContinueAsNewRequested = new ContinueAsNewRequest(this.converter.Serialize(newInput), preserveUnprocessedEvents);

    public override void SetCustomStatus(object? customStatus) => this.CustomStatus = this.converter.Serialize(customStatus);

    /// <summary>Delivers a completion event to the task waiting for it; false if nothing waits.</summary>
    public bool TryCompleteTask(int scheduledId, HistoryEvent completion)
    {
        if (!this.openTasks.Remove(scheduledId, out OpenTask? open))
        {
            return false;
        }

        open.Complete(completion);
        return true;
    }

    /// <summary>Delivers an external event to the oldest waiter with that name, or buffers it.</summary>
    public void DeliverEvent(EventRaisedEvent e)
    {
        if (this.eventWaiters.TryGetValue(e.Name, out var waiters) && waiters.First is { } first)
        {
            waiters.RemoveFirst();
            first.Value.Deliver(e.Input);
            return;
        }

        this.bufferedEvents.Add(new BufferedEvent(e.Name, e.Input));
    }

    /// <summary>Buffers an event without offering it to waiters (the orchestrator has already finished).</summary>
    public void BufferEvent(EventRaisedEvent e) => this.bufferedEvents.Add(new BufferedEvent(e.Name, e.Input));

    private Task<TResult> ScheduleActivity<TResult>(string name, string? input, bool runLocally)
    {
        int id = this.sequenceNumber++;
        this.pendingActions[id] = new PendingAction(id, new TaskScheduledEvent { EventId = id, Name = name, Input = input }, this.IsReplayingInternal) { RunLocally = runLocally };
        var tcs = new TaskCompletionSource<TResult>();
        this.openTasks[id] = new OpenTask(name, e => this.CompleteFrom(tcs, name, id, e));
        return tcs.Task;
    }

    private Task<TResult> ScheduleSubOrchestration<TResult>(string name, string? input, string? instanceId)
    {
        int id = this.sequenceNumber++;
        string childId = instanceId ?? $"{this.InstanceId}:{this.ExecutionId[..8]}:{id}";
        this.pendingActions[id] = new PendingAction(
            id,
            new SubOrchestrationInstanceCreatedEvent { EventId = id, Name = name, InstanceId = childId, Input = input },
            this.IsReplayingInternal);
        var tcs = new TaskCompletionSource<TResult>();
        this.openTasks[id] = new OpenTask(name, e => this.CompleteFrom(tcs, name, id, e));
        return tcs.Task;
    }

    private void CompleteFrom<TResult>(TaskCompletionSource<TResult> tcs, string name, int id, HistoryEvent e)
    {
        try
        {
            switch (e)
            {
                case TaskCompletedEvent c:
                    tcs.TrySetResult(this.converter.Deserialize<TResult>(c.Result)!);
                    break;
                case SubOrchestrationInstanceCompletedEvent s:
                    tcs.TrySetResult(this.converter.Deserialize<TResult>(s.Result)!);
                    break;
                case TaskFailedEvent f:
                    tcs.TrySetException(new TaskFailedException(name, id, f.FailureDetails));
                    break;
                case SubOrchestrationInstanceFailedEvent sf:
                    tcs.TrySetException(new TaskFailedException(name, id, sf.FailureDetails));
                    break;
            }
        }
        catch (Exception ex)
        {
            // A result that does not deserialize into the awaited type surfaces where it is awaited.
            tcs.TrySetException(ex);
        }
    }

    private async Task<TResult> WithRetry<TResult>(RetryPolicy policy, Func<Task<TResult>> attemptFactory)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return await attemptFactory();
            }
            catch (TaskFailedException ex) when (attempt < policy.MaxNumberOfAttempts
                && !ex.FailureDetails.IsNonRetriable
                && (policy.Handle?.Invoke(ex.FailureDetails) ?? true))
            {
                await this.CreateTimer(this.CurrentUtcDateTime.Add(policy.GetDelay(attempt + 1)), CancellationToken.None);
            }
        }
    }

    internal sealed record PendingAction(int Id, HistoryEvent Event, bool CreatedDuringReplay)
    {
        /// <summary>An activity the worker runs in process before the checkpoint (<see cref="TaskOptions.RunLocally"/>).</summary>
        public bool RunLocally { get; init; }
    }

    internal sealed record BufferedEvent(string Name, string? Input);

    internal sealed record ContinueAsNewRequest(string? Input, bool PreserveUnprocessedEvents);

    private sealed record OpenTask(string Name, Action<HistoryEvent> Complete);

    private sealed record EventWaiter(Action<string?> Deliver);
}

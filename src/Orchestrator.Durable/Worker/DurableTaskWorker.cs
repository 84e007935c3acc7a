using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Core;
using Orchestrator.Durable.History;

namespace Orchestrator.Durable.Worker;

/// <summary>
/// Fetches orchestration episodes and activities from a backend and runs them, within concurrency
/// limits. Any number of workers, in any number of processes, may share one backend.
/// </summary>
/// <remarks>
/// Each episode loads the history, runs and commits. By default the worker keeps up to
/// <see cref="DurableTaskWorkerOptions.MaxCachedOrchestrations"/> orchestrations in memory between
/// episodes, so the next episode of one of them runs only its new events instead of replaying the whole
/// history; any other orchestration holds no memory here while it waits. Stopping is graceful: no new work is fetched, activities are told to cancel, and work
/// that has not committed is abandoned (unlocked) for another worker; a checkpoint that has begun to
/// commit is finished first, so nothing is half-committed.
/// </remarks>
public sealed class DurableTaskWorker : IAsyncDisposable
{
    /// <summary>Most work items one fetch locks (when the backend can lock several at once).</summary>
    private const int MaxItemsPerFetch = 32;

    /// <summary>At most this many passes of local activities in one episode; what the last one schedules is dispatched.</summary>
    private const int MaxLocalPasses = 16;

    private readonly IOrchestrationBackend backend;
    private readonly DurableTaskRegistry registry;
    private readonly DurableTaskWorkerOptions options;
    private readonly ILogger logger;
    private readonly OrchestrationExecutor executor;
    private readonly SemaphoreSlim orchestrationSlots;
    private readonly SemaphoreSlim activitySlots;
    private readonly OrchestrationSessionCache? sessions;
    private readonly ConcurrentDictionary<Task, byte> inFlight = new();
    private CancellationTokenSource? stopping;
    private Task? orchestrationLoops;
    private Task? activityLoops;
    private int abandoned;
    private long episodesResumed;
    private long episodesReplayed;

    /// <summary>Creates a worker; call <see cref="StartAsync"/> to begin.</summary>
    public DurableTaskWorker(IOrchestrationBackend backend, DurableTaskRegistry registry, DurableTaskWorkerOptions? options = null, ILoggerFactory? loggerFactory = null)
    {
        this.backend = backend;
        this.registry = registry;
        this.options = options ?? new DurableTaskWorkerOptions();
        this.options.Validate();
        this.logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Orchestrator.Durable.Worker");
        this.executor = new OrchestrationExecutor(registry, this.options.DataConverter);
        this.orchestrationSlots = new SemaphoreSlim(this.options.MaxConcurrentOrchestrations);
        this.activitySlots = new SemaphoreSlim(this.options.MaxConcurrentActivities);
        if (this.options.MaxCachedOrchestrations > 0)
        {
            this.sessions = new OrchestrationSessionCache(this.options.MaxCachedOrchestrations, this.options.CachedOrchestrationIdleTimeout, this.options.TimeProvider);
        }
    }

    /// <summary>Episodes that continued an orchestration kept in memory (no replay).</summary>
    internal long EpisodesResumed => Interlocked.Read(ref this.episodesResumed);

    /// <summary>Episodes that replayed the stored history.</summary>
    internal long EpisodesReplayed => Interlocked.Read(ref this.episodesReplayed);

    /// <summary>Orchestrations kept in memory now.</summary>
    internal int CachedOrchestrations => this.sessions?.Count ?? 0;

    /// <summary>Starts fetching work.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (this.stopping is not null)
        {
            throw new InvalidOperationException("The worker has already been started.");
        }

        await this.backend.CreateIfNotExistsAsync(cancellationToken).ConfigureAwait(false);
        this.stopping = new CancellationTokenSource();
        CancellationToken stop = this.stopping.Token;
        this.orchestrationLoops = Task.WhenAll(Enumerable.Range(0, this.options.DispatcherCount)
            .Select(_ => Task.Run(() => this.RunLoopAsync(WorkItemKind.Orchestration, stop), CancellationToken.None)));
        this.activityLoops = Task.WhenAll(Enumerable.Range(0, this.options.DispatcherCount)
            .Select(_ => Task.Run(() => this.RunLoopAsync(WorkItemKind.Activity, stop), CancellationToken.None)));
        Log.WorkerStarted(this.logger, this.options.WorkerId, this.options.MaxConcurrentOrchestrations, this.options.MaxConcurrentActivities);
    }

    /// <summary>Stops fetching, cancels and abandons in-flight work, and waits for it to let go.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (this.stopping is null || this.stopping.IsCancellationRequested)
        {
            return;
        }

        await this.stopping.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(this.orchestrationLoops!, this.activityLoops!).WaitAsync(cancellationToken).ConfigureAwait(false);
        while (this.inFlight.Keys.Any(t => !t.IsCompleted))
        {
            // An episode that finishes its checkpoint may still start the activities handed off to it.
            await Task.WhenAll(this.inFlight.Keys).WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        this.sessions?.Clear();
        Log.WorkerStopped(this.logger, this.options.WorkerId, this.abandoned);
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await this.StopAsync(CancellationToken.None).ConfigureAwait(false);
        this.stopping?.Dispose();
        this.orchestrationSlots.Dispose();
        this.activitySlots.Dispose();
    }

    private async Task RunLoopAsync(WorkItemKind kind, CancellationToken stop)
    {
        SemaphoreSlim slots = kind == WorkItemKind.Orchestration ? this.orchestrationSlots : this.activitySlots;
        TimeSpan delay = this.options.MinPollingInterval;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await slots.WaitAsync(stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            // One fetch fills every free slot (up to a bound) when the backend can lock several
            // items per round trip; each item keeps its slot until its work is done.
            int reserved = 1;
            if (this.backend is IBatchWorkItemSource)
            {
                while (reserved < MaxItemsPerFetch && slots.Wait(0))
                {
                    reserved++;
                }
            }

            IReadOnlyList<Task> started = [];
            try
            {
                started = kind == WorkItemKind.Orchestration
                    ? await this.StartOrchestrationsAsync(reserved, stop).ConfigureAwait(false)
                    : await this.StartActivitiesAsync(reserved, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                slots.Release(reserved);
                break;
            }
            catch (Exception ex)
            {
                Log.FetchFailed(this.logger, ex, kind.ToString());
            }

            if (started.Count < reserved)
            {
                slots.Release(reserved - started.Count);
            }

            if (started.Count == 0)
            {
                if (kind == WorkItemKind.Orchestration)
                {
                    this.sessions?.EvictIdle();
                }

                try
                {
                    await this.backend.WaitForWorkAsync(kind, delay, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, this.options.MaxPollingInterval.Ticks));
                continue;
            }

            delay = this.options.MinPollingInterval;
            foreach (Task work in started)
            {
                this.Track(work, slots);
            }
        }
    }

    /// <summary>Keeps <paramref name="work"/> in flight (StopAsync waits for it) and frees its slot when it ends.</summary>
    private void Track(Task work, SemaphoreSlim slots)
    {
        this.inFlight.TryAdd(work, 0);
        _ = work.ContinueWith(
            t =>
            {
                this.inFlight.TryRemove(t, out _);
                slots.Release();
            },
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    /// <summary>
    /// Dispatches the episode's outbox. When the backend can hand activities off, as many of the episode's activity
    /// work items as there are free activity slots come back locked to this worker; each keeps one slot.
    /// </summary>
    private Task<IReadOnlyList<ActivityWorkItem>> DispatchAsync(OrchestrationWorkItem item, OrchestrationExecutionResult result, CancellationToken stop) =>
        this.backend is IActivityHandOff handOff
            ? this.HandOffAsync(result, stop, reserved => reserved == 0
                ? this.DispatchOnlyAsync(item)
                : handOff.DispatchOutboxAsync(item, reserved, this.options.ActivityLockTimeout, CancellationToken.None))
            : this.DispatchOnlyAsync(item);

    private async Task<IReadOnlyList<ActivityWorkItem>> DispatchOnlyAsync(OrchestrationWorkItem item)
    {
        await this.backend.DispatchOutboxAsync(item, CancellationToken.None).ConfigureAwait(false);
        return [];
    }

    /// <summary>
    /// Takes a free activity slot (without waiting) for each activity the episode schedules to run now, runs
    /// <paramref name="write"/> with that many, and gives back the slots of those it did not hand off (all of them
    /// if it fails).
    /// </summary>
    private async Task<IReadOnlyList<ActivityWorkItem>> HandOffAsync(OrchestrationExecutionResult result, CancellationToken stop, Func<int, Task<IReadOnlyList<ActivityWorkItem>>> write)
    {
        int wanted = stop.IsCancellationRequested ? 0 : result.Outbox.Count(m => m.IsActivityWorkItem && m.VisibleAt is null);
        int reserved = 0;
        while (reserved < wanted && this.activitySlots.Wait(0))
        {
            reserved++;
        }

        IReadOnlyList<ActivityWorkItem> handedOff;
        try
        {
            handedOff = await write(reserved).ConfigureAwait(false);
        }
        catch
        {
            if (reserved > 0)
            {
                this.activitySlots.Release(reserved);
            }

            throw;
        }

        if (handedOff.Count < reserved)
        {
            this.activitySlots.Release(reserved - handedOff.Count);
        }

        return handedOff;
    }

    /// <summary>Runs the test hook at <paramref name="stage"/>; if it throws, the handed-off activities are given back.</summary>
    private async Task AtStageAsync(CheckpointStage stage, OrchestrationWorkItem item, IReadOnlyList<ActivityWorkItem> handedOff)
    {
        try
        {
            this.options.OnCheckpointStage?.Invoke(stage, item.InstanceId);
        }
        catch
        {
            await this.AbandonHandedOffAsync(handedOff).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Activities the episode scheduled and the backend locked to this worker start now, without a fetch.</summary>
    private void Start(IReadOnlyList<ActivityWorkItem> handedOff, CancellationToken stop)
    {
        foreach (ActivityWorkItem activity in handedOff)
        {
            this.Track(Task.Run(() => this.ProcessActivityAsync(activity, stop), CancellationToken.None), this.activitySlots);
        }
    }

    /// <summary>Keeps the orchestration in memory for the instance's next episode; with nothing committed, the kept one still stands.</summary>
    private void Keep(OrchestrationWorkItem item, OrchestrationExecutionResult result, OrchestrationSession? session, CancellationToken stop)
    {
        OrchestrationSession? keep = result.HasWork ? result.Session : session;
        if (keep is not null && this.sessions is not null && !stop.IsCancellationRequested)
        {
            this.sessions.Put(item.InstanceId, keep);
        }
    }

    private void LogCommitted(OrchestrationWorkItem item, OrchestrationExecutionResult result)
    {
        if (!result.HasWork)
        {
            return;
        }

        Log.EpisodeExecuted(this.logger, item.InstanceId, item.Messages.Count, result.NewEvents.Count, result.Outbox.Count, result.State!.Status);
        if (result.State.Status == OrchestrationRuntimeStatus.Failed && result.State.FailureDetails is { } f)
        {
            Log.OrchestrationFailed(this.logger, item.InstanceId, f.ErrorType, f.ErrorMessage);
        }
    }

    private async Task AbandonHandedOffAsync(IReadOnlyList<ActivityWorkItem> handedOff)
    {
        foreach (ActivityWorkItem activity in handedOff)
        {
            try
            {
                await this.backend.AbandonActivityWorkItemAsync(activity, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                // Its lock expires on its own; it is fetched again then.
                Log.ActivityCompleteFailed(this.logger, ex, activity.Event.Name, activity.Event.EventId, activity.InstanceId);
            }
            finally
            {
                this.activitySlots.Release();
            }
        }
    }

    private async Task<IReadOnlyList<Task>> StartOrchestrationsAsync(int maxCount, CancellationToken stop)
    {
        IReadOnlyList<OrchestrationWorkItem> items;
        if (maxCount > 1 && this.backend is IBatchWorkItemSource batch)
        {
            items = this.sessions is { } kept
                ? await batch.LockNextOrchestrationWorkItemsAsync(maxCount, this.options.OrchestrationLockTimeout, kept.PeekHistory, stop).ConfigureAwait(false)
                : await batch.LockNextOrchestrationWorkItemsAsync(maxCount, this.options.OrchestrationLockTimeout, stop).ConfigureAwait(false);
        }
        else
        {
            OrchestrationWorkItem? item = await this.backend.LockNextOrchestrationWorkItemAsync(this.options.OrchestrationLockTimeout, stop).ConfigureAwait(false);
            items = item is null ? [] : [item];
        }

        return items.Select(item => Task.Run(() => this.ProcessOrchestrationAsync(item, stop), CancellationToken.None)).ToList();
    }

    private async Task<IReadOnlyList<Task>> StartActivitiesAsync(int maxCount, CancellationToken stop)
    {
        IReadOnlyList<ActivityWorkItem> items;
        if (maxCount > 1 && this.backend is IBatchWorkItemSource batch)
        {
            items = await batch.LockNextActivityWorkItemsAsync(maxCount, this.options.ActivityLockTimeout, stop).ConfigureAwait(false);
        }
        else
        {
            ActivityWorkItem? item = await this.backend.LockNextActivityWorkItemAsync(this.options.ActivityLockTimeout, stop).ConfigureAwait(false);
            items = item is null ? [] : [item];
        }

        return items.Select(item => Task.Run(() => this.ProcessActivityAsync(item, stop), CancellationToken.None)).ToList();
    }

    private async Task ProcessOrchestrationAsync(OrchestrationWorkItem item, CancellationToken stop)
    {
        bool committed = false;

        // Taken out for this episode; put back (Keep) when its checkpoint is written, before the instance is unlocked.
        OrchestrationSession? session = this.sessions?.TryTake(item.InstanceId);
        try
        {
            OrchestrationExecutionResult result = this.executor.Execute(item.InstanceId, item.History, item.Messages, this.options.TimeProvider.GetUtcNow(), session);
            if (result.HasWork)
            {
                if (result.Resumed)
                {
                    Interlocked.Increment(ref this.episodesResumed);
                }
                else
                {
                    Interlocked.Increment(ref this.episodesReplayed);
                }
            }

            result = await this.RunLocallyAsync(item, result, stop).ConfigureAwait(false);
            foreach (string reason in result.DroppedReasons)
            {
                Log.MessageDropped(this.logger, item.InstanceId, reason);
            }

            if (stop.IsCancellationRequested)
            {
                await this.AbandonAsync(item).ConfigureAwait(false);
                return;
            }

            // From here on the checkpoint runs to the end even if the worker is stopping.
            this.options.OnCheckpointStage?.Invoke(CheckpointStage.BeforeCommit, item.InstanceId);
            OrchestrationCheckpoint? checkpoint = result.HasWork
                ? new OrchestrationCheckpoint { ReplaceHistory = result.ReplaceHistory, NewEvents = result.NewEvents, Outbox = result.Outbox, State = result.State! }
                : null;
            IReadOnlyList<string> consumed = result.Consumed.Select(m => m.MessageId).ToList();
            IReadOnlyList<ActivityWorkItem> handedOff;
            if (this.backend is IOneWriteCheckpoint { CheckpointsInOneWrite: true } oneWrite)
            {
                // Kept before the write: once it commits, the instance is unlocked and its next episode can start at
                // once. If the write fails, the catch below drops it again.
                this.Keep(item, result, session, stop);
                handedOff = await this.HandOffAsync(
                    result,
                    stop,
                    reserved => oneWrite.CheckpointAsync(item, checkpoint, consumed, reserved, this.options.ActivityLockTimeout, CancellationToken.None)).ConfigureAwait(false);
                committed = true;
                this.LogCommitted(item, result);
                await this.AtStageAsync(CheckpointStage.AfterCheckpoint, item, handedOff).ConfigureAwait(false);
                this.Start(handedOff, stop);
                return;
            }

            if (checkpoint is not null)
            {
                await this.backend.CommitCheckpointAsync(item, checkpoint, CancellationToken.None).ConfigureAwait(false);
                this.LogCommitted(item, result);
            }

            committed = true;
            this.options.OnCheckpointStage?.Invoke(CheckpointStage.AfterCommit, item.InstanceId);
            handedOff = await this.DispatchAsync(item, result, stop).ConfigureAwait(false);
            await this.AtStageAsync(CheckpointStage.AfterDispatch, item, handedOff).ConfigureAwait(false);
            this.Start(handedOff, stop);

            // The history is committed and the instance still locked to this episode: the orchestration is kept
            // before the release, so the instance's next episode (which can only start after it) finds it.
            this.Keep(item, result, session, stop);
            await this.backend.ReleaseOrchestrationWorkItemAsync(item, consumed, CancellationToken.None).ConfigureAwait(false);
        }
        catch (WorkItemLockLostException)
        {
            this.sessions?.Remove(item.InstanceId);
            Log.LockLost(this.logger, item.InstanceId);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested && !committed)
        {
            // A local activity was cut short by the stop: nothing was written, the episode runs again elsewhere.
            this.sessions?.Remove(item.InstanceId);
            await this.AbandonAsync(item).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            this.sessions?.Remove(item.InstanceId);
            Log.EpisodeFailed(this.logger, ex, item.InstanceId);
            if (!committed)
            {
                await this.AbandonAsync(item).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Runs the activities the episode asked to run locally (<see cref="TaskOptions.RunLocally"/>) and this worker hosts,
    /// in parallel, here and now, and continues the orchestration with their outcomes as one more pass of the same
    /// episode; again while a pass asks for more. The result is one checkpoint: every pass's events, the outbox without
    /// the activities that ran, the messages the first pass consumed. Nothing is written before it, so a crash runs the
    /// activities again, as a lost completion of a dispatched activity would.
    /// </summary>
    /// <remarks>
    /// The instance stays locked meanwhile, so the local runs of one episode get half the orchestration lock timeout: one
    /// still running then is cancelled and dispatched as an ordinary activity instead (at least once allows the second
    /// run), and no further pass starts.
    /// </remarks>
    private async Task<OrchestrationExecutionResult> RunLocallyAsync(OrchestrationWorkItem item, OrchestrationExecutionResult result, CancellationToken stop)
    {
        if (result.RunLocally.Count == 0)
        {
            return result;
        }

        using var budget = new CancellationTokenSource(this.options.OrchestrationLockTimeout / 2, this.options.TimeProvider);
        using var running = CancellationTokenSource.CreateLinkedTokenSource(stop, budget.Token);
        for (int pass = 0; pass < MaxLocalPasses && result.RunLocally.Count > 0 && !running.IsCancellationRequested; pass++)
        {
            List<TaskMessage> local = result.RunLocally.Where(m => this.registry.ContainsActivity(((TaskScheduledEvent)m.Event).Name)).ToList();
            if (local.Count == 0)
            {
                break;
            }

            List<ActivityWorkItem> items = local.ConvertAll(m => ActivityWorkItem.For(m.MessageId, m, (TaskScheduledEvent)m.Event, lockToken: string.Empty, dequeueCount: 1));
            HistoryEvent?[] outcomes = await Task.WhenAll(items.Select(a => this.RunLocalActivityAsync(a, running.Token, stop))).ConfigureAwait(false);
            var ran = new HashSet<string>(StringComparer.Ordinal);
            var completions = new List<TaskMessage>(items.Count);
            for (int i = 0; i < items.Count; i++)
            {
                if (outcomes[i] is not { } outcome)
                {
                    // Out of time: left in the outbox (and out of the next pass's list), dispatched with the checkpoint.
                    continue;
                }

                ActivityWorkItem a = items[i];
                ran.Add(a.MessageId);
                completions.Add(ResultMessage(a, outcome));
                Log.ActivityExecuted(this.logger, a.Event.Name, a.Event.EventId, a.InstanceId, outcome is TaskCompletedEvent ? "completed locally" : "failed locally");
            }

            if (completions.Count == 0)
            {
                break;
            }

            List<HistoryEvent> history = result.ReplaceHistory ? [.. result.NewEvents] : [.. item.History, .. result.NewEvents];
            OrchestrationExecutionResult next = this.executor.Execute(item.InstanceId, history, completions, this.options.TimeProvider.GetUtcNow(), result.Session);
            if (!next.HasWork)
            {
                // Cannot happen for completions of tasks this episode scheduled; if it did, they are dispatched as usual.
                break;
            }

            result = next with
            {
                ReplaceHistory = result.ReplaceHistory,
                NewEvents = [.. result.NewEvents, .. next.NewEvents],
                Outbox = [.. result.Outbox.Where(m => !ran.Contains(m.MessageId)), .. next.Outbox],
                Consumed = result.Consumed,
                DroppedReasons = [.. result.DroppedReasons, .. next.DroppedReasons],
                Resumed = result.Resumed,
            };
        }

        return result;
    }

    /// <summary>
    /// Runs one local activity; null when the episode's time for local runs is up first (the activity is told to stop, and
    /// is not waited for). The worker's stop propagates as cancellation.
    /// </summary>
    private async Task<HistoryEvent?> RunLocalActivityAsync(ActivityWorkItem item, CancellationToken running, CancellationToken stop)
    {
        try
        {
            return await this.RunActivityAsync(item, running).WaitAsync(running).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (running.IsCancellationRequested && !stop.IsCancellationRequested)
        {
            return null;
        }
    }

    private async Task AbandonAsync(OrchestrationWorkItem item)
    {
        Interlocked.Increment(ref this.abandoned);
        try
        {
            await this.backend.AbandonOrchestrationWorkItemAsync(item, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // The lock expires on its own; the work item is delivered again then.
            Log.EpisodeFailed(this.logger, ex, item.InstanceId);
        }
    }

    private async Task ProcessActivityAsync(ActivityWorkItem item, CancellationToken stop)
    {
        TaskScheduledEvent scheduled = item.Event;
        using var renewal = CancellationTokenSource.CreateLinkedTokenSource(stop);
        Task renewing = this.RenewLockAsync(item, renewal.Token);
        HistoryEvent outcome;
        try
        {
            outcome = await this.RunActivityAsync(item, stop).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            await renewal.CancelAsync().ConfigureAwait(false);
            Interlocked.Increment(ref this.abandoned);
            try
            {
                await this.backend.AbandonActivityWorkItemAsync(item, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                Log.ActivityCompleteFailed(this.logger, ex, scheduled.Name, scheduled.EventId, item.InstanceId);
            }

            return;
        }
        finally
        {
            await renewal.CancelAsync().ConfigureAwait(false);
            await renewing.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        TaskMessage result = ResultMessage(item, outcome);
        try
        {
            await this.backend.CompleteActivityWorkItemAsync(item, result, CancellationToken.None).ConfigureAwait(false);
            Log.ActivityExecuted(this.logger, scheduled.Name, scheduled.EventId, item.InstanceId, outcome is TaskCompletedEvent ? "completed" : "failed");
        }
        catch (Exception ex)
        {
            Log.ActivityCompleteFailed(this.logger, ex, scheduled.Name, scheduled.EventId, item.InstanceId);
        }
    }

    private async Task<HistoryEvent> RunActivityAsync(ActivityWorkItem item, CancellationToken stop)
    {
        TaskScheduledEvent scheduled = item.Event;
        DataConverter converter = this.options.DataConverter;
        ITaskActivity? activity = this.registry.CreateActivity(scheduled.Name);
        if (activity is null)
        {
            return this.Failed(scheduled, new TaskFailureDetails(
                "Orchestrator.Durable.ActivityNotFound",
                $"No activity named '{scheduled.Name}' is registered with this worker.",
                IsNonRetriable: true));
        }

        object? input;
        try
        {
            input = converter.Deserialize(scheduled.Input, activity.InputType);
        }
        catch (Exception ex)
        {
            return this.Failed(scheduled, new TaskFailureDetails(
                ex.GetType().FullName!,
                $"The input of activity '{scheduled.Name}' could not be read as {activity.InputType.Name}: {ex.Message}",
                IsNonRetriable: true));
        }

        var context = new TaskActivityContext(scheduled.Name, item.InstanceId, item.ExecutionId, scheduled.EventId, stop);
        try
        {
            object? output = await activity.RunAsync(context, input).ConfigureAwait(false);
            return new TaskCompletedEvent { Timestamp = this.options.TimeProvider.GetUtcNow(), TaskScheduledId = scheduled.EventId, Result = converter.Serialize(output) };
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            return this.Failed(scheduled, TaskFailureDetails.FromException(ex));
        }
    }

    /// <summary>The message that carries an activity's outcome to its orchestration (its id derived from the task's).</summary>
    private static TaskMessage ResultMessage(ActivityWorkItem item, HistoryEvent outcome) => new()
    {
        MessageId = TaskMessage.ActivityResultId(item.InstanceId, item.ExecutionId, item.Event.EventId),
        InstanceId = item.InstanceId,
        ExecutionId = item.ExecutionId,
        Event = outcome,
    };

    private TaskFailedEvent Failed(TaskScheduledEvent scheduled, TaskFailureDetails details) =>
        new() { Timestamp = this.options.TimeProvider.GetUtcNow(), TaskScheduledId = scheduled.EventId, FailureDetails = details };

    private async Task RenewLockAsync(ActivityWorkItem item, CancellationToken cancellationToken)
    {
        TimeSpan every = this.options.ActivityLockTimeout / 2;
        while (!cancellationToken.IsCancellationRequested)
        {
            await Task.Delay(every, TimeProvider.System, cancellationToken).ConfigureAwait(false);
            await this.backend.RenewActivityWorkItemLockAsync(item, this.options.ActivityLockTimeout, cancellationToken).ConfigureAwait(false);
        }
    }
}

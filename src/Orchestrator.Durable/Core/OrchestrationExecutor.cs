using Orchestrator.Durable.History;

namespace Orchestrator.Durable.Core;

/// <summary>What one execution episode produced: the checkpoint to commit and the messages consumed.</summary>
internal sealed record OrchestrationExecutionResult
{
    /// <summary>False when every message was a duplicate or stale: nothing to commit, only to acknowledge.</summary>
    public required bool HasWork { get; init; }

    /// <summary>True when a ContinueAsNew restart begins: the old history is replaced by <see cref="NewEvents"/>.</summary>
    public bool ReplaceHistory { get; init; }

    public IReadOnlyList<HistoryEvent> NewEvents { get; init; } = [];

    public IReadOnlyList<TaskMessage> Outbox { get; init; } = [];

    /// <summary>
    /// The activity work items of <see cref="Outbox"/> the orchestration asked to run locally
    /// (<see cref="TaskOptions.RunLocally"/>): the worker may run them before the checkpoint instead of dispatching them.
    /// </summary>
    public IReadOnlyList<TaskMessage> RunLocally { get; init; } = [];

    public InstanceState? State { get; init; }

    /// <summary>Messages applied or deliberately dropped; acknowledge these. Others stay queued.</summary>
    public required IReadOnlyList<TaskMessage> Consumed { get; init; }

    /// <summary>Why messages were dropped, for logs.</summary>
    public IReadOnlyList<string> DroppedReasons { get; init; } = [];

    /// <summary>
    /// The orchestration as it stands after this episode, to continue the next episode without a replay;
    /// null when it has finished. Valid only once this result's checkpoint has committed.
    /// </summary>
    public OrchestrationSession? Session { get; init; }

    /// <summary>True when this episode continued a kept session instead of replaying the history.</summary>
    public bool Resumed { get; init; }
}

/// <summary>
/// An orchestration kept in memory between episodes (what Durable Functions calls an extended session):
/// its orchestrator code, context and pending tasks stand exactly where the committed history leaves them.
/// </summary>
/// <remarks>
/// It may continue only a history that is exactly the one it produced: same execution, same length, same
/// last event. Anything else (another worker committed meanwhile, a restart, ContinueAsNew) replays from
/// the stored history instead.
/// </remarks>
internal sealed class OrchestrationSession
{
    internal OrchestrationSession(object run, string executionId, IReadOnlyList<HistoryEvent> past, IReadOnlyList<HistoryEvent> episodeEvents)
    {
        this.Run = run;
        var history = new List<HistoryEvent>(past.Count + episodeEvents.Count);
        history.AddRange(past);
        history.AddRange(episodeEvents);
        this.Kept = new KeptHistory(executionId, history, past.Count);
    }

    /// <summary>The executor's replay state (opaque outside the executor).</summary>
    internal object Run { get; }

    /// <summary>
    /// The whole history this session stands at, once its checkpoint committed; never changed afterwards, so a backend
    /// may hand it out as a work item's history once it checked that the stored one is the same.
    /// </summary>
    internal KeptHistory Kept { get; }

    /// <summary>True if <paramref name="history"/> is exactly the history this session stands at.</summary>
    internal bool Continues(IReadOnlyList<HistoryEvent> history, ExecutionStartedEvent? started) =>
        started is not null
        && history.Count == this.Kept.Events.Count
        && history.Count > 0
        && string.Equals(started.ExecutionId, this.Kept.ExecutionId, StringComparison.Ordinal)
        && history[^1].Equals(this.Kept.LastEvent)
        && history[this.Kept.EpisodeStartIndex].Equals(this.Kept.EpisodeStart);
}

/// <summary>
/// A kept orchestration's history: the stored history is this one if it belongs to the same execution, has as many
/// events, and has the same events at <see cref="EpisodeStartIndex"/> and at its end (the check
/// <see cref="OrchestrationSession.Continues"/> makes, and a backend's fetch can make without reading it all).
/// </summary>
internal sealed record KeptHistory(string ExecutionId, IReadOnlyList<HistoryEvent> Events, int EpisodeStartIndex)
{
    /// <summary>
    /// The last episode's first event (its OrchestratorStarted, stamped with this worker's clock): another
    /// worker that committed the same messages instead would have recorded another one.
    /// </summary>
    public HistoryEvent EpisodeStart => this.Events[this.EpisodeStartIndex];

    public HistoryEvent LastEvent => this.Events[^1];
}

/// <summary>
/// Replays an orchestrator against its history plus newly arrived messages, and returns the
/// checkpoint: new history events, the messages they cause (the outbox) and the instance state.
/// Pure with respect to its inputs: the same history, messages and clock give the same result.
/// </summary>
internal sealed class OrchestrationExecutor(DurableTaskRegistry registry, DataConverter converter)
{
    /// <summary>Runs one episode: replays <paramref name="history"/>, or continues <paramref name="session"/> when it stands exactly there.</summary>
    public OrchestrationExecutionResult Execute(string instanceId, IReadOnlyList<HistoryEvent> history, IReadOnlyList<TaskMessage> messages, DateTimeOffset now, OrchestrationSession? session = null)
    {
        var filter = new MessageFilter(history);
        var consumed = new List<TaskMessage>();
        var accepted = new List<HistoryEvent>();
        var dropped = new List<string>();

        // The next execution's start (ContinueAsNew) is queued after events a client sent while the
        // previous episode ran; classified in arrival order, those would be dropped as "finished".
        foreach (TaskMessage m in messages.OrderBy(m => m.Event is ExecutionStartedEvent ? 0 : 1))
        {
            switch (filter.Classify(m, out string? reason))
            {
                case Verdict.Accept:
                    accepted.Add(m.Event);
                    consumed.Add(m);
                    break;
                case Verdict.Drop:
                    consumed.Add(m);
                    dropped.Add($"{m.MessageId}: {reason}");
                    break;
                case Verdict.Defer:
                    break;
            }
        }

        if (accepted.Count == 0 || filter.Started is null)
        {
            return new OrchestrationExecutionResult { HasWork = false, Consumed = consumed, DroppedReasons = dropped };
        }

        IReadOnlyList<HistoryEvent> past = filter.ReplaceHistory ? [] : history;
        var episode = new List<HistoryEvent>(accepted.Count + 4);
        if (filter.ReplaceHistory || past.Count == 0)
        {
            // The episode's clock must be set before the orchestrator first runs, so
            // OrchestratorStarted precedes ExecutionStarted (the Durable Task order).
            HistoryEvent start = accepted.First(e => e is ExecutionStartedEvent);
            episode.Add(new OrchestratorStartedEvent { Timestamp = now });
            episode.Add(start);
            episode.AddRange(accepted.Where(e => !ReferenceEquals(e, start)));
        }
        else
        {
            episode.Add(new OrchestratorStartedEvent { Timestamp = now });
            episode.AddRange(accepted);
        }

        Run run;
        bool resumed = !filter.ReplaceHistory && session?.Run is Run && session.Continues(history, filter.Started);
        if (resumed)
        {
            // The kept orchestrator already stands at the end of the committed history: only the new events run.
            run = (Run)session!.Run;
            run.Now = now;
            run.Resume(episode);
        }
        else
        {
            run = new Run(registry, converter, filter.Started, now);
            run.Replay(past, episode);
        }

        return run.ToResult(instanceId, filter.ReplaceHistory, past, episode, consumed, dropped) with { Resumed = resumed };
    }

    /// <summary>
    /// Re-runs the orchestrator against a recorded history without applying anything new, and says
    /// whether the current code still produces that history. Never schedules or runs anything.
    /// </summary>
    public ReplayOutcome Replay(IReadOnlyList<HistoryEvent> history)
    {
        ExecutionStartedEvent started = history.OfType<ExecutionStartedEvent>().FirstOrDefault()
            ?? throw new ArgumentException("The history has no ExecutionStarted event.", nameof(history));
        var run = new Run(registry, converter, started, started.Timestamp);
        run.Replay(history, []);
        return run.ToReplayOutcome(history);
    }

    private enum Verdict
    {
        Accept,
        Drop,
        Defer,
    }

    /// <summary>Decides which messages are new facts, which are duplicates or stale, and which must wait.</summary>
    private sealed class MessageFilter
    {
        private readonly HashSet<int> activityIds = [];
        private readonly HashSet<int> timerIds = [];
        private readonly HashSet<int> subIds = [];
        private readonly HashSet<int> completedIds = [];
        private readonly HashSet<string> eventMessageIds = new(StringComparer.Ordinal);
        private readonly string? continueExecutionId;
        private bool terminal;
        private bool terminationAccepted;

        public MessageFilter(IReadOnlyList<HistoryEvent> history)
        {
            foreach (HistoryEvent e in history)
            {
                switch (e)
                {
                    case ExecutionStartedEvent s: this.Started = s; break;
                    case TaskScheduledEvent t: this.activityIds.Add(t.EventId); break;
                    case TimerCreatedEvent t: this.timerIds.Add(t.EventId); break;
                    case SubOrchestrationInstanceCreatedEvent t: this.subIds.Add(t.EventId); break;
                    case TaskCompletedEvent c: this.completedIds.Add(c.TaskScheduledId); break;
                    case TaskFailedEvent c: this.completedIds.Add(c.TaskScheduledId); break;
                    case TimerFiredEvent c: this.completedIds.Add(c.TimerId); break;
                    case SubOrchestrationInstanceCompletedEvent c: this.completedIds.Add(c.TaskScheduledId); break;
                    case SubOrchestrationInstanceFailedEvent c: this.completedIds.Add(c.TaskScheduledId); break;
                    case EventRaisedEvent r when r.MessageId is not null: this.eventMessageIds.Add(r.MessageId); break;
                    case ExecutionCompletedEvent: this.terminal = true; break;
                    case ContinueAsNewEvent c: this.continueExecutionId = c.NewExecutionId; this.terminal = true; break;
                }
            }
        }

        public ExecutionStartedEvent? Started { get; private set; }

        public bool ReplaceHistory { get; private set; }

        public Verdict Classify(TaskMessage m, out string? reason)
        {
            reason = null;
            if (m.Event is ExecutionStartedEvent es)
            {
                if (this.Started is null)
                {
                    this.Started = es;
                    return Verdict.Accept;
                }

                if (!this.ReplaceHistory && this.continueExecutionId is not null && es.ExecutionId == this.continueExecutionId)
                {
                    this.Started = es;
                    this.ReplaceHistory = true;
                    this.terminal = false;
                    this.activityIds.Clear();
                    this.timerIds.Clear();
                    this.subIds.Clear();
                    this.completedIds.Clear();
                    return Verdict.Accept;
                }

                reason = "duplicate start of an execution that already started";
                return Verdict.Drop;
            }

            if (this.Started is null)
            {
                // The instance has not started yet (a delayed start): keep the message until it has.
                return Verdict.Defer;
            }

            if (m.ExecutionId is not null && m.ExecutionId != this.Started.ExecutionId)
            {
                reason = $"message for execution {m.ExecutionId}, current is {this.Started.ExecutionId}";
                return Verdict.Drop;
            }

            if (this.terminal && this.continueExecutionId is not null && !this.ReplaceHistory && m.ExecutionId is null && !this.terminationAccepted)
            {
                // Aimed at the current execution, and the next one has not started: its start is
                // still in the outbox (a crash before dispatch). Keep the message until it has.
                return Verdict.Defer;
            }

            if (this.terminal || this.terminationAccepted)
            {
                reason = "instance has finished";
                return Verdict.Drop;
            }

            switch (m.Event)
            {
                case TaskCompletedEvent c:
                    return this.Complete(this.activityIds, c.TaskScheduledId, out reason);
                case TaskFailedEvent c:
                    return this.Complete(this.activityIds, c.TaskScheduledId, out reason);
                case TimerFiredEvent c:
                    return this.Complete(this.timerIds, c.TimerId, out reason);
                case SubOrchestrationInstanceCompletedEvent c:
                    return this.Complete(this.subIds, c.TaskScheduledId, out reason);
                case SubOrchestrationInstanceFailedEvent c:
                    return this.Complete(this.subIds, c.TaskScheduledId, out reason);
                case EventRaisedEvent r:
                    if (r.MessageId is not null && !this.eventMessageIds.Add(r.MessageId))
                    {
                        reason = "event already delivered";
                        return Verdict.Drop;
                    }

                    return Verdict.Accept;
                case ExecutionTerminatedEvent:
                    this.terminationAccepted = true;
                    return Verdict.Accept;
                default:
                    reason = $"unexpected message kind {m.Event.EventType}";
                    return Verdict.Drop;
            }
        }

        private Verdict Complete(HashSet<int> scheduled, int id, out string? reason)
        {
            if (!scheduled.Contains(id))
            {
                reason = $"completion for task #{id}, which history does not record as scheduled";
                return Verdict.Drop;
            }

            if (!this.completedIds.Add(id))
            {
                reason = $"duplicate completion for task #{id}";
                return Verdict.Drop;
            }

            reason = null;
            return Verdict.Accept;
        }
    }

    /// <summary>One replay of the orchestrator code.</summary>
    private sealed class Run
    {
        private readonly DurableTaskRegistry registry;
        private readonly DataConverter converter;
        private readonly ExecutionStartedEvent started;
        private readonly SynchronousTaskScheduler scheduler = new();
        private readonly OrchestrationContextImpl context;
        private Task<object?>? orchestratorTask;
        private Completion? completion;

        public Run(DurableTaskRegistry registry, DataConverter converter, ExecutionStartedEvent started, DateTimeOffset now)
        {
            this.registry = registry;
            this.converter = converter;
            this.started = started;
            this.Now = now;
            this.context = new OrchestrationContextImpl(started, converter);
        }

        /// <summary>The episode's clock: timestamps of the events it records.</summary>
        public DateTimeOffset Now { get; set; }

        public void Replay(IReadOnlyList<HistoryEvent> past, IReadOnlyList<HistoryEvent> episode)
        {
            try
            {
                // The orchestrator starts on ExecutionStarted, which precedes the first
                // OrchestratorStarted: without this, its first steps would read DateTime.MinValue.
                this.context.CurrentUtc = past.Concat(episode).OfType<OrchestratorStartedEvent>().FirstOrDefault()?.Timestamp ?? this.Now;
                this.context.IsReplayingInternal = true;
                foreach (HistoryEvent e in past)
                {
                    this.Process(e);
                    if (this.completion is not null)
                    {
                        return;
                    }
                }

                PendingFromReplay(this.context);
                this.RunEpisode(episode);
            }
            catch (NonDeterministicOrchestrationException ex)
            {
                this.completion = Completion.Failed(TaskFailureDetails.FromException(ex, isNonRetriable: true), emitActions: false);
            }
        }

        /// <summary>
        /// Continues a run kept from the previous episode, whose history has committed: it has already applied
        /// every recorded event and its scheduled actions are recorded, so only the new events run.
        /// </summary>
        public void Resume(IReadOnlyList<HistoryEvent> episode)
        {
            try
            {
                this.RunEpisode(episode);
            }
            catch (NonDeterministicOrchestrationException ex)
            {
                this.completion = Completion.Failed(TaskFailureDetails.FromException(ex, isNonRetriable: true), emitActions: false);
            }
        }

        private void RunEpisode(IReadOnlyList<HistoryEvent> episode)
        {
            this.context.IsReplayingInternal = false;
            for (int i = 0; i < episode.Count; i++)
            {
                this.Process(episode[i]);
                if (this.completion is not null)
                {
                    this.AfterContinueAsNew(episode.Skip(i + 1));
                    return;
                }
            }
        }

        public OrchestrationExecutionResult ToResult(string instanceId, bool replaceHistory, IReadOnlyList<HistoryEvent> past, List<HistoryEvent> episode, List<TaskMessage> consumed, List<string> dropped)
        {
            var newEvents = new List<HistoryEvent>(episode);
            var outbox = new List<TaskMessage>();
            List<TaskMessage>? runLocally = null;
            string executionId = this.started.ExecutionId;
            bool emitActions = this.completion?.EmitActions ?? true;
            if (emitActions)
            {
                foreach (OrchestrationContextImpl.PendingAction action in this.context.PendingActions.Values)
                {
                    HistoryEvent e = action.Event with { Timestamp = this.Now };
                    newEvents.Add(e);
                    TaskMessage message = this.MessageFor(instanceId, executionId, e);
                    outbox.Add(message);
                    if (action.RunLocally)
                    {
                        (runLocally ??= []).Add(message);
                    }
                }
            }

            var status = OrchestrationRuntimeStatus.Running;
            string? output = null;
            TaskFailureDetails? failure = null;
            if (this.completion is { } c)
            {
                status = c.Status;
                output = c.Output;
                failure = c.Failure;
                if (c.Status == OrchestrationRuntimeStatus.ContinuedAsNew)
                {
                    string newExecutionId = DeterministicGuid.Create($"{instanceId}|{executionId}|continue").ToString("N");
                    newEvents.Add(new ContinueAsNewEvent { Timestamp = this.Now, Input = c.Output, NewExecutionId = newExecutionId });
                    outbox.Add(new TaskMessage
                    {
                        MessageId = TaskMessage.ContinueId(instanceId, newExecutionId),
                        InstanceId = instanceId,
                        ExecutionId = newExecutionId,
                        Event = new ExecutionStartedEvent
                        {
                            Timestamp = this.Now,
                            Name = this.started.Name,
                            InstanceId = instanceId,
                            ExecutionId = newExecutionId,
                            Input = c.Output,
                            Parent = this.started.Parent,
                        },
                    });
                    if (c.CarryOver)
                    {
                        int n = 0;
                        foreach (OrchestrationContextImpl.BufferedEvent b in this.context.UnconsumedEvents)
                        {
                            string id = $"{instanceId}|{newExecutionId}|carry|{n++}";
                            outbox.Add(new TaskMessage
                            {
                                MessageId = id,
                                InstanceId = instanceId,
                                ExecutionId = newExecutionId,
                                Event = new EventRaisedEvent { Timestamp = this.Now, Name = b.Name, Input = b.Input, MessageId = id },
                            });
                        }
                    }

                    // The new execution reports its own status once it starts.
                    output = null;
                }
                else
                {
                    newEvents.Add(new ExecutionCompletedEvent { Timestamp = this.Now, Status = c.Status, Result = c.Output, FailureDetails = c.Failure });
                    if (this.started.Parent is { } parent)
                    {
                        outbox.Add(new TaskMessage
                        {
                            MessageId = TaskMessage.SubResultId(instanceId, executionId),
                            InstanceId = parent.InstanceId,
                            ExecutionId = parent.ExecutionId,
                            Event = c.Status == OrchestrationRuntimeStatus.Completed
                                ? new SubOrchestrationInstanceCompletedEvent { Timestamp = this.Now, TaskScheduledId = parent.TaskScheduledId, Result = c.Output }
                                : new SubOrchestrationInstanceFailedEvent
                                {
                                    Timestamp = this.Now,
                                    TaskScheduledId = parent.TaskScheduledId,
                                    FailureDetails = c.Failure ?? new TaskFailureDetails("Orchestrator.Durable.OrchestrationTerminated", $"Sub-orchestration '{instanceId}' was terminated: {c.Output}", IsNonRetriable: true),
                                },
                        });
                    }
                }
            }

            OrchestrationSession? session = null;
            if (this.completion is null)
            {
                // Once this checkpoint commits, every pending action is recorded history: a replay of the next
                // episode would match each of them against its scheduling event, which is the same as forgetting them.
                this.context.PendingActions.Clear();
                session = new OrchestrationSession(this, executionId, replaceHistory ? [] : past, newEvents);
            }

            return new OrchestrationExecutionResult
            {
                HasWork = true,
                Session = session,
                ReplaceHistory = replaceHistory,
                NewEvents = newEvents,
                Outbox = outbox,

                // An orchestration that finished in this episode is not continued: what it scheduled is dispatched as usual.
                RunLocally = this.completion is null ? (IReadOnlyList<TaskMessage>?)runLocally ?? [] : [],
                Consumed = consumed,
                DroppedReasons = dropped,
                State = new InstanceState
                {
                    InstanceId = instanceId,
                    Name = this.started.Name,
                    ExecutionId = executionId,
                    Status = status,
                    Input = this.started.Input,
                    Output = output,
                    CustomStatus = this.context.CustomStatus,
                    FailureDetails = failure,
                    ParentInstanceId = this.started.Parent?.InstanceId,
                },
            };
        }

        public ReplayOutcome ToReplayOutcome(IReadOnlyList<HistoryEvent> history)
        {
            if (this.completion is { Failure: { ErrorType: var t } f } && t == typeof(NonDeterministicOrchestrationException).FullName)
            {
                return new ReplayOutcome(false, f.ErrorMessage, OrchestrationRuntimeStatus.Failed, null, []);
            }

            OrchestrationRuntimeStatus status = this.completion?.Status ?? OrchestrationRuntimeStatus.Running;
            ExecutionCompletedEvent? recorded = history.OfType<ExecutionCompletedEvent>().LastOrDefault();
            if (recorded is not null && recorded.Status != OrchestrationRuntimeStatus.Terminated)
            {
                if (this.completion is null)
                {
                    return new ReplayOutcome(false, $"History records that '{this.context.Name}' finished as {recorded.Status}, but on replay the orchestrator has not finished.", status, null, []);
                }

                if (recorded.Status != this.completion.Status || (recorded.Status == OrchestrationRuntimeStatus.Completed && recorded.Result != this.completion.Output))
                {
                    return new ReplayOutcome(
                        false,
                        $"History records that '{this.context.Name}' finished as {recorded.Status} with output {recorded.Result ?? "null"}, but on replay it finished as {this.completion.Status} with output {this.completion.Output ?? "null"}.",
                        status,
                        this.completion.Output,
                        []);
                }
            }

            var waitingOn = this.context.PendingActions.Values.Select(a => Describe(a.Event)).ToList();
            return new ReplayOutcome(true, null, status, this.completion?.Output, waitingOn);
        }

        /// <summary>
        /// Messages of this episode that arrived after the orchestrator called ContinueAsNew were
        /// consumed but never seen by it: their events belong to the next execution as much as
        /// buffered ones do, and a termination still stops the instance.
        /// </summary>
        private void AfterContinueAsNew(IEnumerable<HistoryEvent> unseen)
        {
            if (this.completion is not { Status: OrchestrationRuntimeStatus.ContinuedAsNew } c)
            {
                return;
            }

            foreach (HistoryEvent e in unseen)
            {
                if (e is ExecutionTerminatedEvent)
                {
                    this.Process(e);
                    return;
                }

                if (e is EventRaisedEvent r && c.CarryOver)
                {
                    this.context.BufferEvent(r);
                }
            }
        }

        private static void PendingFromReplay(OrchestrationContextImpl context)
        {
            // Everything scheduled while re-running recorded events must itself be recorded;
            // an unmatched one means the code now does more than it did.
            foreach (OrchestrationContextImpl.PendingAction a in context.PendingActions.Values)
            {
                if (a.CreatedDuringReplay)
                {
                    throw new NonDeterministicOrchestrationException(
                        $"Non-deterministic orchestration '{context.Name}' (instance '{context.InstanceId}'): the orchestrator scheduled {Describe(a.Event)}, but the recorded history has no such event at that position.");
                }
            }
        }

        private static string Describe(HistoryEvent e) => e switch
        {
            TaskScheduledEvent t => $"activity '{t.Name}' (TaskScheduled #{t.EventId})",
            TimerCreatedEvent t => $"a timer (TimerCreated #{t.EventId})",
            SubOrchestrationInstanceCreatedEvent s => $"sub-orchestration '{s.Name}' (SubOrchestrationInstanceCreated #{s.EventId})",
            _ => $"{e.EventType} #{e.EventId}",
        };

        private static bool SameAction(HistoryEvent recorded, HistoryEvent scheduled) => (recorded, scheduled) switch
        {
            (TaskScheduledEvent a, TaskScheduledEvent b) => string.Equals(a.Name, b.Name, StringComparison.OrdinalIgnoreCase),
            (TimerCreatedEvent, TimerCreatedEvent) => true,
            (SubOrchestrationInstanceCreatedEvent a, SubOrchestrationInstanceCreatedEvent b) =>
                string.Equals(a.Name, b.Name, StringComparison.OrdinalIgnoreCase) && a.InstanceId == b.InstanceId,
            _ => false,
        };

        private void Process(HistoryEvent e)
        {
            switch (e)
            {
                case ExecutionStartedEvent:
                    this.Start();
                    break;
                case OrchestratorStartedEvent:
                    this.context.CurrentUtc = e.Timestamp;
                    break;
                case TaskScheduledEvent or TimerCreatedEvent or SubOrchestrationInstanceCreatedEvent:
                    this.MatchRecordedAction(e);
                    break;
                case TaskCompletedEvent c:
                    this.context.TryCompleteTask(c.TaskScheduledId, c);
                    break;
                case TaskFailedEvent c:
                    this.context.TryCompleteTask(c.TaskScheduledId, c);
                    break;
                case TimerFiredEvent c:
                    this.context.TryCompleteTask(c.TimerId, c);
                    break;
                case SubOrchestrationInstanceCompletedEvent c:
                    this.context.TryCompleteTask(c.TaskScheduledId, c);
                    break;
                case SubOrchestrationInstanceFailedEvent c:
                    this.context.TryCompleteTask(c.TaskScheduledId, c);
                    break;
                case EventRaisedEvent r:
                    this.context.DeliverEvent(r);
                    break;
                case ExecutionTerminatedEvent t:
                    this.completion = new Completion(OrchestrationRuntimeStatus.Terminated, this.converter.Serialize(t.Reason), null, EmitActions: false, CarryOver: false);
                    return;
            }

            this.CheckCompletion();
        }

        private void MatchRecordedAction(HistoryEvent recorded)
        {
            if (!this.context.PendingActions.Remove(recorded.EventId, out OrchestrationContextImpl.PendingAction? action))
            {
                throw new NonDeterministicOrchestrationException(
                    $"Non-deterministic orchestration '{this.context.Name}' (instance '{this.context.InstanceId}'): history records {Describe(recorded)}, but the orchestrator scheduled nothing at that position.");
            }

            if (!SameAction(recorded, action.Event))
            {
                throw new NonDeterministicOrchestrationException(
                    $"Non-deterministic orchestration '{this.context.Name}' (instance '{this.context.InstanceId}'): history records {Describe(recorded)}, but the orchestrator scheduled {Describe(action.Event)}.");
            }
        }

        private void Start()
        {
            ITaskOrchestrator? orchestrator = this.registry.CreateOrchestrator(this.started.Name);
            if (orchestrator is null)
            {
                this.completion = Completion.Failed(
                    new TaskFailureDetails("Orchestrator.Durable.OrchestratorNotFound", $"No orchestrator named '{this.started.Name}' is registered with this worker.", IsNonRetriable: true),
                    emitActions: false);
                return;
            }

            object? input;
            try
            {
                input = this.converter.Deserialize(this.started.Input, orchestrator.InputType);
            }
            catch (Exception ex)
            {
                this.completion = Completion.Failed(
                    new TaskFailureDetails(ex.GetType().FullName!, $"The input of orchestrator '{this.started.Name}' could not be read as {orchestrator.InputType.Name}: {ex.Message}", IsNonRetriable: true),
                    emitActions: false);
                return;
            }

            this.orchestratorTask = Task.Factory.StartNew(
                () => orchestrator.RunAsync(this.context, input),
                CancellationToken.None,
                TaskCreationOptions.None,
                this.scheduler).Unwrap();
        }

        private void CheckCompletion()
        {
            if (this.completion is not null || this.orchestratorTask is not { IsCompleted: true } task)
            {
                return;
            }

            if (task.IsCompletedSuccessfully)
            {
                if (this.context.ContinueAsNewRequested is { } can)
                {
                    this.completion = new Completion(OrchestrationRuntimeStatus.ContinuedAsNew, can.Input, null, EmitActions: true, CarryOver: can.PreserveUnprocessedEvents);
                }
                else
                {
                    this.completion = new Completion(OrchestrationRuntimeStatus.Completed, this.converter.Serialize(task.Result), null, EmitActions: true, CarryOver: false);
                }

                return;
            }

            Exception ex = task.Exception?.InnerException ?? task.Exception ?? (Exception)new TaskCanceledException(task);
            if (ex is NonDeterministicOrchestrationException)
            {
                throw ex;
            }

            this.completion = Completion.Failed(TaskFailureDetails.FromException(ex), emitActions: true);
        }

        private TaskMessage MessageFor(string instanceId, string executionId, HistoryEvent e) => e switch
        {
            TaskScheduledEvent t => new TaskMessage
            {
                MessageId = TaskMessage.ActivityId(instanceId, executionId, t.EventId),
                InstanceId = instanceId,
                ExecutionId = executionId,
                Event = t,
            },
            TimerCreatedEvent t => new TaskMessage
            {
                MessageId = TaskMessage.TimerId(instanceId, executionId, t.EventId),
                InstanceId = instanceId,
                ExecutionId = executionId,
                Event = new TimerFiredEvent { Timestamp = t.FireAt, TimerId = t.EventId, FireAt = t.FireAt },
                VisibleAt = t.FireAt,
            },
            SubOrchestrationInstanceCreatedEvent s => new TaskMessage
            {
                MessageId = TaskMessage.SubStartId(instanceId, executionId, s.EventId),
                InstanceId = s.InstanceId,
                ExecutionId = DeterministicGuid.Create($"{instanceId}|{executionId}|sub|{s.EventId}").ToString("N"),
                Event = new ExecutionStartedEvent
                {
                    Timestamp = this.Now,
                    Name = s.Name,
                    InstanceId = s.InstanceId,
                    ExecutionId = DeterministicGuid.Create($"{instanceId}|{executionId}|sub|{s.EventId}").ToString("N"),
                    Input = s.Input,
                    Parent = new ParentInstance(instanceId, executionId, s.EventId, this.started.Name),
                },
            },
            _ => throw new InvalidOperationException($"No message for {e.EventType}."),
        };

        private sealed record Completion(OrchestrationRuntimeStatus Status, string? Output, TaskFailureDetails? Failure, bool EmitActions, bool CarryOver)
        {
            public static Completion Failed(TaskFailureDetails failure, bool emitActions) =>
                new(OrchestrationRuntimeStatus.Failed, null, failure, emitActions, CarryOver: false);
        }
    }
}

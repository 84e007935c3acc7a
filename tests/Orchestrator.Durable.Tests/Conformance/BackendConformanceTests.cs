using Microsoft.Extensions.Logging;
using Orchestrator.Durable.Backend;
using Orchestrator.Durable.History;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Durable.Tests.Conformance;

/// <summary>
/// Behaviour every backend must give users, end to end through a real worker and client.
/// A backend's test class derives from this and supplies <see cref="CreateBackend"/>.
/// </summary>
/// <remarks>
/// Each test builds its own backend, which must start empty, so tests never see each other's
/// instances. The clock is a <c>FakeTimeProvider</c> shared by backend, worker and client; it moves
/// only when a test advances it: after the orchestration has durably created its timer, to let a
/// crashed worker's lock expire, or to give instances distinct creation times. A few tests use the
/// worker's checkpoint-stage hook to raise an event mid-episode or to simulate a crash after commit.
/// </remarks>
public abstract class BackendConformanceTests
{
    private const int TestTimeout = 30_000;

    private static readonly string InvalidOperationType = typeof(InvalidOperationException).FullName!;

    /// <summary>Creates an empty store for one test, using the given clock for visibility, locks and timestamps.</summary>
    protected abstract IOrchestrationBackend CreateBackend(TimeProvider timeProvider);

    /// <summary>
    /// Counts every stored record (instances, history, queued messages) so tests can prove that a
    /// refused operation stored nothing. Backends that cannot count return null, and those checks
    /// fall back to what the client can see.
    /// </summary>
    protected virtual Task<long?> CountStoredRecordsAsync(IOrchestrationBackend backend) => Task.FromResult<long?>(null);

    /// <summary>
    /// The worker's <see cref="DurableTaskWorkerOptions.DispatcherCount"/>: how many fetches of each
    /// kind run at once, so every test also checks that concurrent fetches never hand out one
    /// instance twice or split messages that belong together. Default 2 (the worker's default).
    /// </summary>
    protected virtual int DispatcherCount => 2;

    /// <summary>
    /// The worker's <see cref="DurableTaskWorkerOptions.MaxCachedOrchestrations"/>. Default 1,000 (the worker's
    /// default: episodes continue orchestrations kept in memory); 0 makes every episode replay its history.
    /// </summary>
    protected virtual int MaxCachedOrchestrations => 1000;

    /// <summary>
    /// True when the backend writes a checkpoint in one write (<see cref="IOneWriteCheckpoint"/>): a crash then never
    /// falls between commit and dispatch, and the tests that crash there hold the next episode instead. Default false.
    /// </summary>
    protected virtual bool CheckpointsInOneWrite => false;

    // ---------------------------------------------------------------- activities

    [Fact(Timeout = TestTimeout)]
    public async Task CallActivityAsync_Sequence_ReturnsResultsAndRecordsHistoryInOrder()
    {
        var registry = new DurableTaskRegistry()
            .AddActivityFunc<string, string>("Hello", (_, name) => $"Hello {name}!")
            .AddOrchestratorFunc<string[], List<string>>("Sequence", async (ctx, names) =>
            {
                var results = new List<string>();
                foreach (string name in names)
                {
                    results.Add(await ctx.CallActivityAsync<string>("Hello", name));
                }

                return results;
            });
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("Sequence", new[] { "Tokyo", "Seattle", "London" });
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        Assert.Equal(["Hello Tokyo!", "Hello Seattle!", "Hello London!"], m.ReadOutputAs<List<string>>());
        IReadOnlyList<HistoryEvent> history = await h.Client.GetHistoryAsync(id);

        // Each activity is scheduled in one episode and completes in the next.
        Assert.Equal(
            [
                "OrchestratorStarted", "ExecutionStarted", "TaskScheduled",
                "OrchestratorStarted", "TaskCompleted", "TaskScheduled",
                "OrchestratorStarted", "TaskCompleted", "TaskScheduled",
                "OrchestratorStarted", "TaskCompleted", "ExecutionCompleted",
            ],
            history.Select(e => e.EventType));
        var scheduled = history.OfType<TaskScheduledEvent>().ToList();
        var completed = history.OfType<TaskCompletedEvent>().ToList();
        Assert.Equal(["\"Tokyo\"", "\"Seattle\"", "\"London\""], scheduled.Select(s => s.Input));
        Assert.Equal(scheduled.Select(s => s.EventId), completed.Select(c => c.TaskScheduledId));
        Assert.Equal(["\"Hello Tokyo!\"", "\"Hello Seattle!\"", "\"Hello London!\""], completed.Select(c => c.Result));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task CallActivityAsync_FanOutFanInOf100_ReturnsAllResultsEachCompletedOnce()
    {
        var registry = new DurableTaskRegistry()
            .AddActivityFunc<int, int>("Square", (_, x) => x * x)
            .AddOrchestratorFunc<int, int[]>("FanOut", async (ctx, n) =>
                await Task.WhenAll(Enumerable.Range(0, n).Select(i => ctx.CallActivityAsync<int>("Square", i))));
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("FanOut", 100);
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        Assert.Equal(Enumerable.Range(0, 100).Select(i => i * i), m.ReadOutputAs<int[]>()!);
        IReadOnlyList<HistoryEvent> history = await h.Client.GetHistoryAsync(id);
        var scheduledIds = history.OfType<TaskScheduledEvent>().Select(e => e.EventId).ToList();
        Assert.Equal(100, scheduledIds.Distinct().Count());
        Assert.Equal(100, scheduledIds.Count);
        var completionsPerTask = history.OfType<TaskCompletedEvent>().GroupBy(c => c.TaskScheduledId).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(scheduledIds.Order(), completionsPerTask.Keys.Order());
        Assert.All(completionsPerTask.Values, count => Assert.Equal(1, count));
        Assert.Single(history.OfType<ExecutionCompletedEvent>());
        Assert.IsType<ExecutionCompletedEvent>(history[^1]);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task CallActivityAsync_RetryPolicyWithBackoff_RetriesOnDurableTimersThenSucceeds()
    {
        int attempts = 0;
        var registry = new DurableTaskRegistry()
            .AddActivityFunc<string, string>("Flaky", (_, input) =>
            {
                int n = Interlocked.Increment(ref attempts);
                return n <= 2 ? Fail<string>($"attempt {n} failed") : $"{input} after {n} attempts";
            })
            .AddOrchestratorFunc<string, string>("RetryFlaky", (ctx, input) =>
                ctx.CallActivityAsync<string>("Flaky", input, TaskOptions.FromRetryPolicy(new RetryPolicy(3, TimeSpan.FromSeconds(1), backoffCoefficient: 2))));
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("RetryFlaky", "done");

        IReadOnlyList<HistoryEvent> afterFirstFailure = await h.WaitForHistoryAsync(id, e => e.OfType<TimerCreatedEvent>().Any(), "first retry timer");
        TaskFailedEvent failure1 = Assert.Single(afterFirstFailure.OfType<TaskFailedEvent>());
        TimerCreatedEvent timer1 = Assert.Single(afterFirstFailure.OfType<TimerCreatedEvent>());
        Assert.Equal(failure1.Timestamp + TimeSpan.FromSeconds(1), timer1.FireAt);
        Assert.Equal(1, Volatile.Read(ref attempts));
        h.Time.Advance(TimeSpan.FromSeconds(1));

        IReadOnlyList<HistoryEvent> afterSecondFailure = await h.WaitForHistoryAsync(id, e => e.OfType<TimerCreatedEvent>().Count() == 2, "second retry timer");
        TaskFailedEvent failure2 = afterSecondFailure.OfType<TaskFailedEvent>().Last();
        TimerCreatedEvent timer2 = afterSecondFailure.OfType<TimerCreatedEvent>().Last();
        Assert.Equal(failure2.Timestamp + TimeSpan.FromSeconds(2), timer2.FireAt);
        Assert.Equal(2, Volatile.Read(ref attempts));
        h.Time.Advance(TimeSpan.FromSeconds(2));

        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        Assert.Equal("done after 3 attempts", m.ReadOutputAs<string>());
        Assert.Equal(3, Volatile.Read(ref attempts));
        IReadOnlyList<HistoryEvent> history = await h.Client.GetHistoryAsync(id);
        Assert.Equal(3, history.OfType<TaskScheduledEvent>().Count());
        Assert.Equal(2, history.OfType<TaskFailedEvent>().Count());
        Assert.Equal(2, history.OfType<TimerFiredEvent>().Count());
        Assert.Single(history.OfType<TaskCompletedEvent>());
    }

    [Fact(Timeout = TestTimeout)]
    public async Task CallActivityAsync_RetryPolicyExhausted_OrchestrationFailsWithActivityFailureDetails()
    {
        int attempts = 0;
        var registry = new DurableTaskRegistry()
            .AddActivityFunc<string, string>("AlwaysFails", (_, _) =>
            {
                Interlocked.Increment(ref attempts);
                return Fail<string>("boom");
            })
            .AddOrchestratorFunc<string, string>("RetryExhausted", (ctx, _) =>
                ctx.CallActivityAsync<string>("AlwaysFails", null, TaskOptions.FromRetryPolicy(new RetryPolicy(2, TimeSpan.FromSeconds(1)))));
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("RetryExhausted");
        await h.WaitForHistoryAsync(id, e => e.OfType<TimerCreatedEvent>().Any(), "retry timer");
        h.Time.Advance(TimeSpan.FromSeconds(1));
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Failed, m.RuntimeStatus);
        Assert.Equal(2, Volatile.Read(ref attempts));
        TaskFailureDetails failure = Assert.IsType<TaskFailureDetails>(m.FailureDetails);
        Assert.Equal(typeof(TaskFailedException).FullName, failure.ErrorType);
        Assert.Contains("AlwaysFails", failure.ErrorMessage, StringComparison.Ordinal);
        TaskFailureDetails original = Assert.IsType<TaskFailureDetails>(failure.InnerFailure);
        Assert.Equal(InvalidOperationType, original.ErrorType);
        Assert.Equal("boom", original.ErrorMessage);
        Assert.True(failure.IsCausedBy<InvalidOperationException>());
        IReadOnlyList<HistoryEvent> history = await h.Client.GetHistoryAsync(id);
        Assert.Equal(2, history.OfType<TaskScheduledEvent>().Count());
        ExecutionCompletedEvent end = Assert.IsType<ExecutionCompletedEvent>(history[^1]);
        Assert.Equal(OrchestrationRuntimeStatus.Failed, end.Status);
    }

    // ---------------------------------------------------------------- local activities

    [Fact(Timeout = TestTimeout)]
    public async Task CallActivityAsync_RunLocally_RunsInTheSchedulingEpisodeAndTheWholeRunCommitsOnce()
    {
        int runs = 0;
        var registry = new DurableTaskRegistry()
            .AddActivityFunc<string, string>("Hello", (_, name) =>
            {
                Interlocked.Increment(ref runs);
                return $"Hello {name}!";
            })
            .AddOrchestratorFunc<string[], List<string>>("LocalSequence", async (ctx, names) =>
            {
                var results = new List<string>();
                foreach (string name in names)
                {
                    results.Add(await ctx.CallActivityAsync<string>("Hello", name, Local));
                }

                results.AddRange(await Task.WhenAll(ctx.CallActivityAsync<string>("Hello", "A", Local), ctx.CallActivityAsync<string>("Hello", "B", Local)));
                return results;
            });
        var checkpoints = new CheckpointCounter();
        await using ConformanceHarness h = await this.StartAsync(registry, onCheckpointStage: checkpoints.OnStage);

        string id = await h.ScheduleAsync("LocalSequence", new[] { "Tokyo", "Seattle" });
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        Assert.Equal(["Hello Tokyo!", "Hello Seattle!", "Hello A!", "Hello B!"], m.ReadOutputAs<List<string>>());
        Assert.Equal(4, runs);

        // One episode, one checkpoint: no activity went through the store. Its history has the shape a dispatched run
        // has (one pass per outcome), so it replays like one.
        Assert.Equal(1, checkpoints.Count);
        IReadOnlyList<HistoryEvent> history = await h.Client.GetHistoryAsync(id);
        Assert.Equal(
            [
                "OrchestratorStarted", "ExecutionStarted", "TaskScheduled",
                "OrchestratorStarted", "TaskCompleted", "TaskScheduled",
                "OrchestratorStarted", "TaskCompleted", "TaskScheduled", "TaskScheduled",
                "OrchestratorStarted", "TaskCompleted", "TaskCompleted", "ExecutionCompleted",
            ],
            history.Select(e => e.EventType));
        Assert.Equal(
            history.OfType<TaskScheduledEvent>().Select(s => s.EventId).Order(),
            history.OfType<TaskCompletedEvent>().Select(c => c.TaskScheduledId).Order());
        ReplayOutcome replay = new OrchestrationReplayer(registry).Replay(history);
        Assert.True(replay.IsDeterministic, replay.Error);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, replay.Status);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task CallActivityAsync_RunLocallyMoreTimesThanOneEpisodeRuns_TheRestIsDispatchedAndAllComplete()
    {
        var registry = new DurableTaskRegistry()
            .AddActivityFunc<int, int>("Double", (_, x) => 2 * x)
            .AddOrchestratorFunc<int, int[]>("LocalChain", async (ctx, n) =>
            {
                var results = new int[n];
                for (int i = 0; i < n; i++)
                {
                    results[i] = await ctx.CallActivityAsync<int>("Double", i, Local);
                }

                return results;
            });
        var checkpoints = new CheckpointCounter();
        await using ConformanceHarness h = await this.StartAsync(registry, onCheckpointStage: checkpoints.OnStage);

        string id = await h.ScheduleAsync("LocalChain", 20);
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        // An episode runs at most 16 passes of local activities (so one that schedules them forever still checkpoints):
        // the 17th activity is dispatched, its completion starts a second episode, which runs the last three locally.
        Assert.Equal(Enumerable.Range(0, 20).Select(i => 2 * i), m.ReadOutputAs<int[]>()!);
        Assert.Equal(2, checkpoints.Count);
        IReadOnlyList<HistoryEvent> history = await h.Client.GetHistoryAsync(id);
        Assert.Equal(20, history.OfType<TaskCompletedEvent>().Count());
    }

    [Fact(Timeout = TestTimeout)]
    public async Task CallActivityAsync_RunLocallyOutlastsHalfTheLockTimeout_IsCancelledAndDispatchedInstead()
    {
        int runs = 0;
        using var firstRunStarted = new SemaphoreSlim(0);
        var registry = new DurableTaskRegistry()
            .AddActivityFunc<string, string>("SlowOnce", async (ctx, x) =>
            {
                if (Interlocked.Increment(ref runs) == 1)
                {
                    // The local run: waits until it is told to stop.
                    firstRunStarted.Release();
                    await Task.Delay(Timeout.InfiniteTimeSpan, ctx.CancellationToken);
                }

                return $"{x} on run {Volatile.Read(ref runs)}";
            })
            .AddOrchestratorFunc<string, string>("LocalSlow", (ctx, x) => ctx.CallActivityAsync<string>("SlowOnce", x, Local));
        var checkpoints = new CheckpointCounter();
        await using ConformanceHarness h = await this.StartAsync(registry, onCheckpointStage: checkpoints.OnStage);

        string id = await h.ScheduleAsync("LocalSlow", "done");
        Assert.True(await firstRunStarted.WaitAsync(ConformanceHarness.WaitLimit), "the local run did not start");

        // The instance is locked while the local run goes on: at half the lock timeout the worker gives up on it.
        h.Time.Advance(new DurableTaskWorkerOptions().OrchestrationLockTimeout / 2);
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal("done on run 2", m.ReadOutputAs<string>());
        Assert.Equal(2, checkpoints.Count);
        IReadOnlyList<HistoryEvent> history = await h.Client.GetHistoryAsync(id);
        Assert.Single(history.OfType<TaskScheduledEvent>());
        Assert.Equal("\"done on run 2\"", Assert.Single(history.OfType<TaskCompletedEvent>()).Result);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task CallActivityAsync_RunLocally_CrashBeforeTheCheckpoint_RunsAgainAndHistoryHasOneOutcome()
    {
        int runs = 0, crashed = 0;
        var registry = new DurableTaskRegistry()
            .AddActivityFunc<string, string>("Count", (_, x) => $"{x}{Interlocked.Increment(ref runs)}")
            .AddOrchestratorFunc<string, string>("LocalOnce", (ctx, x) => ctx.CallActivityAsync<string>("Count", x, Local));
        await using ConformanceHarness h = await this.StartAsync(registry, onCheckpointStage: (stage, _) =>
        {
            // The worker dies after running the activity, before anything of the episode is written.
            if (stage == CheckpointStage.BeforeCommit && Interlocked.Exchange(ref crashed, 1) == 0)
            {
                throw new InvalidOperationException("simulated crash before the checkpoint");
            }
        });

        string id = await h.ScheduleAsync("LocalOnce", "run ");
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        // At least once, like any activity: it ran twice, and only the second run is recorded.
        Assert.Equal(2, runs);
        Assert.Equal("run 2", m.ReadOutputAs<string>());
        IReadOnlyList<HistoryEvent> history = await h.Client.GetHistoryAsync(id);
        Assert.Single(history.OfType<TaskScheduledEvent>());
        Assert.Equal("\"run 2\"", Assert.Single(history.OfType<TaskCompletedEvent>()).Result);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task CallActivityAsync_RunLocallyWithRetryPolicy_FailureIsRecordedAndRetriedOnADurableTimer()
    {
        int attempts = 0;
        var registry = new DurableTaskRegistry()
            .AddActivityFunc<string, string>("Flaky", (_, x) => Interlocked.Increment(ref attempts) == 1 ? Fail<string>("first attempt failed") : $"{x} on attempt {attempts}")
            .AddOrchestratorFunc<string, string>("LocalRetry", (ctx, x) =>
                ctx.CallActivityAsync<string>("Flaky", x, new TaskOptions { RunLocally = true, Retry = new RetryPolicy(2, TimeSpan.FromSeconds(5)) }));
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("LocalRetry", "done");
        IReadOnlyList<HistoryEvent> waiting = await h.WaitForHistoryAsync(id, e => e.OfType<TimerCreatedEvent>().Any(), "retry timer");
        Assert.Equal("first attempt failed", Assert.Single(waiting.OfType<TaskFailedEvent>()).FailureDetails.ErrorMessage);
        Assert.Equal(1, attempts);
        h.Time.Advance(TimeSpan.FromSeconds(5));
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal("done on attempt 2", m.ReadOutputAs<string>());
        IReadOnlyList<HistoryEvent> history = await h.Client.GetHistoryAsync(id);
        Assert.Equal(2, history.OfType<TaskScheduledEvent>().Count());
        Assert.Single(history.OfType<TaskCompletedEvent>());
    }

    [Fact(Timeout = TestTimeout)]
    public async Task CallActivityAsync_RunLocallyButNotHostedByTheWorker_IsDispatchedAsUsual()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<string, string>("LocalUnknown", async (ctx, x) =>
            {
                try
                {
                    return await ctx.CallActivityAsync<string>("NotHere", x, Local);
                }
                catch (TaskFailedException ex)
                {
                    return ex.FailureDetails.ErrorType;
                }
            });
        var checkpoints = new CheckpointCounter();
        await using ConformanceHarness h = await this.StartAsync(registry, onCheckpointStage: checkpoints.OnStage);

        string id = await h.ScheduleAsync("LocalUnknown", "x");
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        // Not run in the episode (a worker that hosts it may take it): dispatched, so two checkpoints, and here, where
        // no worker hosts it, it fails as any unknown activity does.
        Assert.Equal("Orchestrator.Durable.ActivityNotFound", m.ReadOutputAs<string>());
        Assert.Equal(2, checkpoints.Count);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task CallSubOrchestratorAsync_RunLocally_IsRefusedWithAClearError()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<string, string>("Child", (_, x) => Task.FromResult(x))
            .AddOrchestratorFunc<string, string>("LocalChild", (ctx, x) => ctx.CallSubOrchestratorAsync<string>("Child", x, new SubOrchestrationOptions { RunLocally = true }));
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("LocalChild", "x");
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Failed, m.RuntimeStatus);
        Assert.Equal(typeof(ArgumentException).FullName, m.FailureDetails!.ErrorType);
        Assert.Contains("RunLocally applies to activities only", m.FailureDetails.ErrorMessage, StringComparison.Ordinal);
        Assert.Empty((await h.Client.GetHistoryAsync(id)).OfType<SubOrchestrationInstanceCreatedEvent>());
    }

    // ---------------------------------------------------------------- failures as data

    [Fact(Timeout = TestTimeout)]
    public async Task CallActivityAsync_ActivityThrows_OrchestratorCatchesFailureDetailsWithInnerFailure()
    {
        var registry = new DurableTaskRegistry()
            .AddActivityFunc<string, string>("Boom", (_, _) => Fail<string>("boom", new ArgumentException("inner cause")))
            .AddOrchestratorFunc<string, string[]>("CatchBoom", async (ctx, _) =>
            {
                try
                {
                    await ctx.CallActivityAsync<string>("Boom");
                    return ["no failure"];
                }
                catch (TaskFailedException ex)
                {
                    return
                    [
                        ex.TaskName,
                        ex.FailureDetails.ErrorType,
                        ex.FailureDetails.ErrorMessage,
                        ex.FailureDetails.InnerFailure?.ErrorType ?? "(none)",
                        ex.FailureDetails.InnerFailure?.ErrorMessage ?? "(none)",
                        ex.FailureDetails.IsNonRetriable.ToString(),
                    ];
                }
            });
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("CatchBoom");
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        Assert.Equal(
            ["Boom", InvalidOperationType, "boom", typeof(ArgumentException).FullName!, "inner cause", "False"],
            m.ReadOutputAs<string[]>()!);
        Assert.Null(m.FailureDetails);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task CallActivityAsync_ActivityFailureUncaught_InstanceFailedWithFailureDetails()
    {
        var registry = new DurableTaskRegistry()
            .AddActivityFunc<string, string>("Boom", (_, _) => Fail<string>("boom", new ArgumentException("inner cause")))
            .AddOrchestratorFunc<string, string>("Uncaught", (ctx, _) => ctx.CallActivityAsync<string>("Boom"));
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("Uncaught");
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Failed, m.RuntimeStatus);
        Assert.Null(m.SerializedOutput);
        Assert.NotNull(m.CompletedAt);
        TaskFailureDetails failure = Assert.IsType<TaskFailureDetails>(m.FailureDetails);
        Assert.Equal(typeof(TaskFailedException).FullName, failure.ErrorType);
        Assert.Contains("Boom", failure.ErrorMessage, StringComparison.Ordinal);
        Assert.Equal(InvalidOperationType, failure.InnerFailure?.ErrorType);
        Assert.Equal("boom", failure.InnerFailure?.ErrorMessage);
        Assert.Equal(typeof(ArgumentException).FullName, failure.InnerFailure?.InnerFailure?.ErrorType);
        Assert.Equal("inner cause", failure.InnerFailure?.InnerFailure?.ErrorMessage);
        ExecutionCompletedEvent end = Assert.IsType<ExecutionCompletedEvent>((await h.Client.GetHistoryAsync(id))[^1]);
        Assert.Equal(OrchestrationRuntimeStatus.Failed, end.Status);
        Assert.Equal(failure, end.FailureDetails);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task RunAsync_OrchestratorThrows_InstanceFailedWithOrchestratorException()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<string, string>("Throws", (_, message) => throw new InvalidOperationException(message));
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("Throws", "orchestrator broke");
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Failed, m.RuntimeStatus);
        Assert.Equal(InvalidOperationType, m.FailureDetails?.ErrorType);
        Assert.Equal("orchestrator broke", m.FailureDetails?.ErrorMessage);
    }

    // ---------------------------------------------------------------- timers and the orchestration clock

    [Fact(Timeout = TestTimeout)]
    public async Task CreateTimer_OneHour_CompletesOnlyAfterClockAdvancedAndClockFollowsEpisodes()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<object?, DateTime[]>("Sleeper", async (ctx, _) =>
            {
                DateTime before = ctx.CurrentUtcDateTime;
                await ctx.CreateTimer(TimeSpan.FromHours(1), CancellationToken.None);
                return [before, ctx.CurrentUtcDateTime];
            });
        await using ConformanceHarness h = await this.StartAsync(registry);
        DateTimeOffset start = h.Time.GetUtcNow();

        string id = await h.ScheduleAsync("Sleeper");
        IReadOnlyList<HistoryEvent> history = await h.WaitForHistoryAsync(id, e => e.OfType<TimerCreatedEvent>().Any(), "timer created");
        Assert.Equal(start + TimeSpan.FromHours(1), Assert.Single(history.OfType<TimerCreatedEvent>()).FireAt);

        // Almost an hour later the timer must still be pending. An unrelated event forces an
        // episode at that time, so "nothing happened" is observed rather than assumed.
        h.Time.Advance(TimeSpan.FromMinutes(59));
        await h.Client.RaiseEventAsync(id, "unrelated");
        history = await h.WaitForHistoryAsync(id, e => e.OfType<EventRaisedEvent>().Any(), "unrelated event recorded");
        Assert.DoesNotContain(history, e => e is TimerFiredEvent);
        Assert.Equal(OrchestrationRuntimeStatus.Running, (await h.Client.GetInstanceAsync(id))!.RuntimeStatus);

        h.Time.Advance(TimeSpan.FromMinutes(1));
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        Assert.Equal([start.UtcDateTime, start.UtcDateTime.AddHours(1)], m.ReadOutputAs<DateTime[]>()!);
        Assert.Single((await h.Client.GetHistoryAsync(id)).OfType<TimerFiredEvent>());
    }

    [Fact(Timeout = TestTimeout)]
    public async Task CurrentUtcDateTime_FirstEpisode_EqualsClockAtEpisodeStart()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<object?, DateTime>("WhatTimeIsIt", (ctx, _) => Task.FromResult(ctx.CurrentUtcDateTime));
        await using ConformanceHarness h = await this.StartAsync(registry);
        DateTimeOffset now = h.Time.GetUtcNow();

        string id = await h.ScheduleAsync("WhatTimeIsIt");
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(now.UtcDateTime, m.ReadOutputAs<DateTime>());
        OrchestratorStartedEvent episode = Assert.Single((await h.Client.GetHistoryAsync(id)).OfType<OrchestratorStartedEvent>());
        Assert.Equal(now, episode.Timestamp);
    }

    // ---------------------------------------------------------------- external events

    [Fact(Timeout = TestTimeout)]
    public async Task WaitForExternalEvent_RaisedBeforeWait_IsBufferedAndDelivered()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<object?, string>("GateThenData", async (ctx, _) =>
            {
                await ctx.WaitForExternalEvent<string>("gate");
                return await ctx.WaitForExternalEvent<string>("data");
            });
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("GateThenData");
        await h.WaitForStatusAsync(id, m => m.RuntimeStatus == OrchestrationRuntimeStatus.Running, "running");
        await h.Client.RaiseEventAsync(id, "data", "early payload");

        // The event is recorded while nobody waits for it; only then does the orchestrator ask.
        await h.WaitForHistoryAsync(id, e => e.OfType<EventRaisedEvent>().Any(r => r.Name == "data"), "data event recorded");
        Assert.Equal(OrchestrationRuntimeStatus.Running, (await h.Client.GetInstanceAsync(id))!.RuntimeStatus);
        await h.Client.RaiseEventAsync(id, "gate");
        OrchestrationMetadata done = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal("early payload", done.ReadOutputAs<string>());
    }

    [Fact(Timeout = TestTimeout)]
    public async Task WaitForExternalEvent_RaisedAfterWaitStarts_CompletesWithPayload()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<object?, int>("WaitForNumber", async (ctx, _) =>
            {
                ctx.SetCustomStatus("waiting");
                return await ctx.WaitForExternalEvent<int>("number") + 1;
            });
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("WaitForNumber");
        await h.WaitForStatusAsync(id, m => m.ReadCustomStatusAs<string>() == "waiting", "waiting for the event");
        await h.Client.RaiseEventAsync(id, "number", 41);
        OrchestrationMetadata done = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal(42, done.ReadOutputAs<int>());
    }

    [Fact(Timeout = TestTimeout)]
    public async Task WaitForExternalEvent_TwoEventsSameName_DeliveredInRaiseOrder()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<object?, string[]>("TwoSteps", async (ctx, _) =>
            {
                ctx.SetCustomStatus("waiting");
                string first = await ctx.WaitForExternalEvent<string>("step");
                string second = await ctx.WaitForExternalEvent<string>("step");
                return [first, second];
            });
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("TwoSteps");
        await h.WaitForStatusAsync(id, m => m.ReadCustomStatusAs<string>() == "waiting", "waiting for the events");
        await h.Client.RaiseEventAsync(id, "step", "first");
        await h.Client.RaiseEventAsync(id, "step", "second");
        OrchestrationMetadata done = await h.WaitForCompletionAsync(id);

        Assert.Equal(["first", "second"], done.ReadOutputAs<string[]>()!);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task WaitForExternalEvent_NameDiffersInCase_StillDelivered()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<object?, string>("CaseInsensitive", async (ctx, _) =>
            {
                string buffered = await ctx.WaitForExternalEvent<string>("Approval");
                ctx.SetCustomStatus("waiting");
                string waited = await ctx.WaitForExternalEvent<string>("approval");
                return $"{buffered}+{waited}";
            });
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("CaseInsensitive");
        await h.Client.RaiseEventAsync(id, "APPROVAL", "a");
        await h.WaitForStatusAsync(id, m => m.ReadCustomStatusAs<string>() == "waiting", "waiting for the second event");
        await h.Client.RaiseEventAsync(id, "aPpRoVaL", "b");
        OrchestrationMetadata done = await h.WaitForCompletionAsync(id);

        Assert.Equal("a+b", done.ReadOutputAs<string>());
    }

    [Fact(Timeout = TestTimeout)]
    public async Task WaitForExternalEventWithTimeout_NoEvent_TimesOutOnDurableTimer()
    {
        await using ConformanceHarness h = await this.StartAsync(ApprovalRegistry());
        DateTimeOffset start = h.Time.GetUtcNow();

        string id = await h.ScheduleAsync("Approval");
        IReadOnlyList<HistoryEvent> history = await h.WaitForHistoryAsync(id, e => e.OfType<TimerCreatedEvent>().Any(), "timeout timer");
        Assert.Equal(start + TimeSpan.FromMinutes(30), Assert.Single(history.OfType<TimerCreatedEvent>()).FireAt);
        h.Time.Advance(TimeSpan.FromMinutes(30));
        OrchestrationMetadata done = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal("timed out", done.ReadOutputAs<string>());
    }

    [Fact(Timeout = TestTimeout)]
    public async Task WaitForExternalEventWithTimeout_EventBeforeTimeout_ReturnsEventAndIgnoresLaterTimer()
    {
        await using ConformanceHarness h = await this.StartAsync(ApprovalRegistry());

        string id = await h.ScheduleAsync("Approval");
        await h.WaitForHistoryAsync(id, e => e.OfType<TimerCreatedEvent>().Any(), "timeout timer");
        await h.Client.RaiseEventAsync(id, "approval", "yes");
        OrchestrationMetadata done = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal("approved: yes", done.ReadOutputAs<string>());
        IReadOnlyList<HistoryEvent> history = await h.Client.GetHistoryAsync(id);
        Assert.DoesNotContain(history, e => e is TimerFiredEvent);

        // The abandoned timeout still fires later; it must not touch the finished instance.
        h.Time.Advance(TimeSpan.FromMinutes(31));
        if (await this.CountStoredRecordsAsync(h.Backend) is not null)
        {
            await Eventually.UntilAsync(
                () => this.CountStoredRecordsAsync(h.Backend),
                n => n == 1 + history.Count,
                "the late timer message to be delivered and discarded");
        }
        else
        {
            // Without record counts, use a barrier: an instance scheduled now (its orchestrator is
            // unknown, so it fails at once) is processed by a poll that already sees the due timer.
            await h.WaitForCompletionAsync(await h.ScheduleAsync("UnregisteredBarrier"));
        }

        Assert.Equal(done, await h.Client.GetInstanceAsync(id));
        Assert.Equal(history, await h.Client.GetHistoryAsync(id));
    }

    // ---------------------------------------------------------------- sub-orchestrations

    [Fact(Timeout = TestTimeout)]
    public async Task CallSubOrchestratorAsync_ChildCompletes_ParentGetsResult()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<int, int>("Double", (_, x) => Task.FromResult(x * 2))
            .AddOrchestratorFunc<int, int>("Parent", async (ctx, x) => await ctx.CallSubOrchestratorAsync<int>("Double", x) + 1);
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("Parent", 20);
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        Assert.Equal(41, m.ReadOutputAs<int>());
        IReadOnlyList<HistoryEvent> history = await h.Client.GetHistoryAsync(id);
        SubOrchestrationInstanceCreatedEvent created = Assert.Single(history.OfType<SubOrchestrationInstanceCreatedEvent>());
        SubOrchestrationInstanceCompletedEvent completed = Assert.Single(history.OfType<SubOrchestrationInstanceCompletedEvent>());
        Assert.Equal(created.EventId, completed.TaskScheduledId);
        OrchestrationMetadata? child = await h.Client.GetInstanceAsync(created.InstanceId);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, child?.RuntimeStatus);
        Assert.Equal(id, child?.ParentInstanceId);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task CallSubOrchestratorAsync_ChildFails_ParentCatchesTaskFailedException()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<string, string>("FailingChild", (_, message) => throw new InvalidOperationException(message))
            .AddOrchestratorFunc<object?, string>("CatchingParent", async (ctx, _) =>
            {
                try
                {
                    await ctx.CallSubOrchestratorAsync<string>("FailingChild", "child broke");
                    return "no failure";
                }
                catch (TaskFailedException ex)
                {
                    return $"{ex.TaskName}|{ex.FailureDetails.ErrorType}|{ex.FailureDetails.ErrorMessage}";
                }
            });
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("CatchingParent");
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        Assert.Equal($"FailingChild|{InvalidOperationType}|child broke", m.ReadOutputAs<string>());
        string childId = Assert.Single((await h.Client.GetHistoryAsync(id)).OfType<SubOrchestrationInstanceCreatedEvent>()).InstanceId;
        Assert.Equal(OrchestrationRuntimeStatus.Failed, (await h.Client.GetInstanceAsync(childId))?.RuntimeStatus);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task CallSubOrchestratorAsync_ExplicitChildInstanceId_ChildVisibleWithParentInstanceId()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<int, int>("Double", (_, x) => Task.FromResult(x * 2))
            .AddOrchestratorFunc<int, int>("NamedChildParent", (ctx, x) =>
                ctx.CallSubOrchestratorAsync<int>("Double", x, new SubOrchestrationOptions { InstanceId = ctx.InstanceId + "-child" }));
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("NamedChildParent", 21, instanceId: "parent-1");
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(42, m.ReadOutputAs<int>());
        Assert.Null(m.ParentInstanceId);
        OrchestrationMetadata? child = await h.Client.GetInstanceAsync("parent-1-child");
        Assert.NotNull(child);
        Assert.Equal("Double", child.Name);
        Assert.Equal("parent-1", child.ParentInstanceId);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, child.RuntimeStatus);
        Assert.Equal(21, child.ReadInputAs<int>());
        Assert.Equal(42, child.ReadOutputAs<int>());
        ExecutionStartedEvent childStart = Assert.IsType<ExecutionStartedEvent>((await h.Client.GetHistoryAsync("parent-1-child"))[1]);
        Assert.Equal("parent-1", childStart.Parent?.InstanceId);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task CallSubOrchestratorAsync_ExplicitIdOfRunningInstance_ParentGetsAlreadyExistsFailure()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<string?, string>("WaitForever", (ctx, _) => ctx.WaitForExternalEvent<string>("never"))
            .AddOrchestratorFunc<object?, string>("ClashingParent", async (ctx, _) =>
            {
                try
                {
                    return await ctx.CallSubOrchestratorAsync<string>("WaitForever", null, new SubOrchestrationOptions { InstanceId = "taken" });
                }
                catch (TaskFailedException ex)
                {
                    return ex.FailureDetails.ErrorType;
                }
            });
        await using ConformanceHarness h = await this.StartAsync(registry);
        await h.ScheduleAsync("WaitForever", "original", "taken");
        OrchestrationMetadata original = await h.WaitForStatusAsync("taken", m => m.RuntimeStatus == OrchestrationRuntimeStatus.Running, "running");

        string id = await h.ScheduleAsync("ClashingParent");
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(typeof(OrchestrationAlreadyExistsException).FullName, m.ReadOutputAs<string>());
        OrchestrationMetadata after = (await h.Client.GetInstanceAsync("taken"))!;
        Assert.Equal(original.ExecutionId, after.ExecutionId);
        Assert.Equal("original", after.ReadInputAs<string>());
        Assert.Null(after.ParentInstanceId);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task CallSubOrchestratorAsync_ExplicitIdOfInstanceBetweenExecutions_ParentGetsAlreadyExistsFailure()
    {
        DurableTaskRegistry registry = LooperRegistry(loops: 1)
            .AddOrchestratorFunc<object?, string>("ParentOfBusy", async (ctx, _) =>
            {
                try
                {
                    return await ctx.CallSubOrchestratorAsync<string>("Looper", 0, new SubOrchestrationOptions { InstanceId = "busy" });
                }
                catch (TaskFailedException ex)
                {
                    return ex.FailureDetails.ErrorType;
                }
            });
        int crashed = 0, busyCheckpoints = 0;
        using var held = new ManualResetEventSlim(false);
        bool oneWrite = this.CheckpointsInOneWrite;
        await using ConformanceHarness h = await this.StartAsync(
            registry,
            onCheckpointStage: (stage, instanceId) =>
            {
                // Holds "busy" between its executions (ContinuedAsNew): an unfinished instance another orchestration
                // must not take over. Three steps: the worker dies after the commit, before dispatching the next start.
                // One write: the next start is dispatched with the commit, so the next execution's first episode is
                // held before it commits.
                if (instanceId != "busy")
                {
                    return;
                }

                if (oneWrite && stage == CheckpointStage.BeforeCommit && Interlocked.Increment(ref busyCheckpoints) == 2)
                {
                    held.Wait(ConformanceHarness.WaitLimit);
                }
                else if (!oneWrite && stage == CheckpointStage.AfterCommit && Interlocked.Exchange(ref crashed, 1) == 0)
                {
                    throw new InvalidOperationException("simulated crash after commit");
                }
            });
        await h.ScheduleAsync("Looper", 0, "busy");
        await h.WaitForStatusAsync("busy", m => m.RuntimeStatus == OrchestrationRuntimeStatus.ContinuedAsNew, "between executions");

        string parent = await h.ScheduleAsync("ParentOfBusy");
        OrchestrationMetadata m = await h.WaitForCompletionAsync(parent);

        Assert.Equal(typeof(OrchestrationAlreadyExistsException).FullName, m.ReadOutputAs<string>());

        // The instance that owns the id carries on undisturbed once its worker's lock expires (or its episode goes on).
        held.Set();
        h.Time.Advance(new DurableTaskWorkerOptions().OrchestrationLockTimeout + TimeSpan.FromSeconds(1));
        await h.WaitForStatusAsync("busy", m => m.RuntimeStatus == OrchestrationRuntimeStatus.Running, "next execution running");
        await h.Client.RaiseEventAsync("busy", "late", "mine");
        OrchestrationMetadata busy = await h.WaitForCompletionAsync("busy");
        Assert.Equal("1:mine", busy.ReadOutputAs<string>());
        Assert.Null(busy.ParentInstanceId);
    }

    [Theory(Timeout = TestTimeout)]
    [InlineData("child|1")]
    [InlineData("   ")]
    [InlineData("child\u0007")]
    [InlineData(null)]
    public async Task CallSubOrchestratorAsync_InvalidChildInstanceId_ParentFailsSayingWhyAndNoChildExists(string? childId)
    {
        // null stands for an id one character too long (a theory's data cannot build it).
        string id = childId ?? new string('c', 257);
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<string, string>("Child", (_, x) => Task.FromResult(x))
            .AddOrchestratorFunc<string, string>("ParentOfInvalid", (ctx, child) => ctx.CallSubOrchestratorAsync<string>("Child", "x", new SubOrchestrationOptions { InstanceId = child }));
        await using ConformanceHarness h = await this.StartAsync(registry);

        string parent = await h.ScheduleAsync("ParentOfInvalid", id);
        OrchestrationMetadata m = await h.WaitForCompletionAsync(parent);

        // The same rule a client's schedule call applies: the id would not fit the engine's message ids and keys.
        Assert.Equal(OrchestrationRuntimeStatus.Failed, m.RuntimeStatus);
        Assert.Equal(typeof(ArgumentException).FullName, m.FailureDetails!.ErrorType);
        Assert.Contains("is not a valid instance id", m.FailureDetails.ErrorMessage, StringComparison.Ordinal);
        Assert.Empty((await h.Client.GetHistoryAsync(parent)).OfType<SubOrchestrationInstanceCreatedEvent>());
        Assert.Equal([parent], (await h.Client.QueryInstancesAsync(new InstanceQuery())).Select(i => i.InstanceId));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task CallSubOrchestratorAsync_ChildTerminated_ParentCatchesTaskFailedException()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<string?, string>("WaitForever", (ctx, _) => ctx.WaitForExternalEvent<string>("never"))
            .AddOrchestratorFunc<object?, string>("ParentOfTerminated", async (ctx, _) =>
            {
                try
                {
                    return await ctx.CallSubOrchestratorAsync<string>("WaitForever", null, new SubOrchestrationOptions { InstanceId = ctx.InstanceId + "-child" });
                }
                catch (TaskFailedException ex)
                {
                    return $"{ex.FailureDetails.ErrorType}|{ex.FailureDetails.ErrorMessage}";
                }
            });
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("ParentOfTerminated", null, "parent-2");
        await h.WaitForStatusAsync("parent-2-child", m => m.RuntimeStatus == OrchestrationRuntimeStatus.Running, "child running");
        await h.Client.TerminateInstanceAsync("parent-2-child", "child stopped");
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        string[] parts = m.ReadOutputAs<string>()!.Split('|');
        Assert.Equal("Orchestrator.Durable.OrchestrationTerminated", parts[0]);
        Assert.Contains("child stopped", parts[1], StringComparison.Ordinal);
        Assert.Equal(OrchestrationRuntimeStatus.Terminated, (await h.Client.GetInstanceAsync("parent-2-child"))?.RuntimeStatus);
    }

    // ---------------------------------------------------------------- ContinueAsNew

    [Fact(Timeout = TestTimeout)]
    public async Task ContinueAsNew_CounterLoopsFiveTimes_CompletesWithLastHistoryAndCarriesEventOver()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<int, string>("Counter", async (ctx, count) =>
            {
                if (count == 0)
                {
                    // The test raises "carried" and then "go": "carried" is buffered here, unconsumed.
                    await ctx.WaitForExternalEvent<string>("go");
                }

                if (count < 5)
                {
                    ctx.ContinueAsNew(count + 1);
                    return "continued";
                }

                string carried = await ctx.WaitForExternalEvent<string>("carried");
                return $"{count}:{carried}";
            });
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("Counter", 0);
        await h.WaitForStatusAsync(id, m => m.RuntimeStatus == OrchestrationRuntimeStatus.Running, "running");
        await h.Client.RaiseEventAsync(id, "carried", "kept across executions");
        await h.Client.RaiseEventAsync(id, "go");
        OrchestrationMetadata done = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal("5:kept across executions", done.ReadOutputAs<string>());
        Assert.Equal(5, done.ReadInputAs<int>());
        IReadOnlyList<HistoryEvent> history = await h.Client.GetHistoryAsync(id);
        ExecutionStartedEvent start = Assert.Single(history.OfType<ExecutionStartedEvent>());
        // Durable Task order: the first episode's OrchestratorStarted (its clock), then ExecutionStarted.
        Assert.IsType<OrchestratorStartedEvent>(history[0]);
        Assert.Same(start, history[1]);
        Assert.Equal("5", start.Input);
        Assert.Equal(done.ExecutionId, start.ExecutionId);
        Assert.DoesNotContain(history, e => e is ContinueAsNewEvent);
        Assert.Equal("carried", Assert.Single(history.OfType<EventRaisedEvent>()).Name);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, Assert.IsType<ExecutionCompletedEvent>(history[^1]).Status);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task ContinueAsNew_WithoutPreservingEvents_BufferedEventDropped()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<int, string>("Forgetful", async (ctx, count) =>
            {
                if (count == 0)
                {
                    await ctx.WaitForExternalEvent<string>("go");
                    ctx.ContinueAsNew(1, preserveUnprocessedEvents: false);
                    return "continued";
                }

                ctx.SetCustomStatus("waiting");
                return await ctx.WaitForExternalEvent<string>("data");
            });
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("Forgetful", 0);
        await h.WaitForStatusAsync(id, m => m.RuntimeStatus == OrchestrationRuntimeStatus.Running, "running");
        await h.Client.RaiseEventAsync(id, "data", "stale");
        await h.Client.RaiseEventAsync(id, "go");
        await h.WaitForStatusAsync(id, m => m.ReadCustomStatusAs<string>() == "waiting", "second execution waiting");
        await h.Client.RaiseEventAsync(id, "data", "fresh");
        OrchestrationMetadata done = await h.WaitForCompletionAsync(id);

        Assert.Equal("fresh", done.ReadOutputAs<string>());
        Assert.Equal("\"fresh\"", Assert.Single((await h.Client.GetHistoryAsync(id)).OfType<EventRaisedEvent>()).Input);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task ContinueAsNew_EventRaisedWhileContinuingEpisodeRuns_DeliveredToLaterExecution()
    {
        ConformanceHarness? harness = null;
        int raised = 0;
        await using ConformanceHarness h = await this.StartAsync(
            LooperRegistry(loops: 2),
            onCheckpointStage: (stage, instanceId) =>
            {
                // The first episode has already decided to continue as new; the event lands in
                // the queue before the next execution's start message does.
                if (stage == CheckpointStage.BeforeCommit && Interlocked.Exchange(ref raised, 1) == 0)
                {
                    harness!.Client.RaiseEventAsync(instanceId, "late", "raised mid-episode").GetAwaiter().GetResult();
                }
            });
        harness = h;

        string id = await h.ScheduleAsync("Looper", 0);
        OrchestrationMetadata done = await h.WaitForCompletionAsync(id);

        Assert.Equal(1, Volatile.Read(ref raised));
        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal("2:raised mid-episode", done.ReadOutputAs<string>());
    }

    [Fact(Timeout = TestTimeout)]
    public async Task ContinueAsNew_CrashBeforeOutboxDispatched_EventRaisedMeanwhileNotLost()
    {
        int crashed = 0;

        // Three steps: the checkpoint (status ContinuedAsNew, next start in the outbox) is durable; the worker dies
        // before dispatching it and its lock has to expire. One write: the worker dies right after the whole
        // checkpoint, with the next start dispatched.
        CheckpointStage crashAt = this.CheckpointsInOneWrite ? CheckpointStage.AfterCheckpoint : CheckpointStage.AfterCommit;
        await using ConformanceHarness h = await this.StartAsync(
            LooperRegistry(loops: 1),
            onCheckpointStage: (stage, _) =>
            {
                if (stage == crashAt && Interlocked.Exchange(ref crashed, 1) == 0)
                {
                    throw new InvalidOperationException("simulated crash after commit");
                }
            });

        string id = await h.ScheduleAsync("Looper", 0);
        await h.WaitForStatusAsync(
            id,
            m => m.RuntimeStatus == OrchestrationRuntimeStatus.ContinuedAsNew || (m.RuntimeStatus == OrchestrationRuntimeStatus.Running && m.ReadInputAs<int>() == 1),
            "continued as new");
        await h.Client.RaiseEventAsync(id, "late", "raised while the worker was down");
        h.Time.Advance(new DurableTaskWorkerOptions().OrchestrationLockTimeout + TimeSpan.FromSeconds(1));
        OrchestrationMetadata done = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal("1:raised while the worker was down", done.ReadOutputAs<string>());
    }

    [Fact(Timeout = TestTimeout)]
    public async Task TerminateInstanceAsync_TightContinueAsNewLoop_Terminated()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<int, int>("Forever", (ctx, count) =>
            {
                ctx.ContinueAsNew(count + 1);
                return Task.FromResult(count);
            });
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("Forever", 0);
        await h.WaitForStatusAsync(id, m => m.ReadInputAs<int>() >= 3, "a few loops");
        await h.Client.TerminateInstanceAsync(id, "enough");
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Terminated, m.RuntimeStatus);
        Assert.Equal("enough", m.ReadOutputAs<string>());
    }

    // ---------------------------------------------------------------- status, determinism

    [Fact(Timeout = TestTimeout)]
    public async Task SetCustomStatus_WhileRunningAndAfterCompletion_VisibleViaGetInstance()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<object?, string>("Staged", async (ctx, _) =>
            {
                ctx.SetCustomStatus(new Progress("waiting", 1));
                await ctx.WaitForExternalEvent<string>("continue");
                ctx.SetCustomStatus(new Progress("finished", 2));
                return "ok";
            });
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("Staged");
        OrchestrationMetadata running = await h.WaitForStatusAsync(id, m => m.SerializedCustomStatus is not null, "custom status set");
        Assert.Equal(OrchestrationRuntimeStatus.Running, running.RuntimeStatus);
        Assert.Equal(new Progress("waiting", 1), running.ReadCustomStatusAs<Progress>());

        await h.Client.RaiseEventAsync(id, "continue");
        OrchestrationMetadata done = await h.WaitForCompletionAsync(id);
        Assert.Equal(new Progress("finished", 2), done.ReadCustomStatusAs<Progress>());
    }

    [Fact(Timeout = TestTimeout)]
    public async Task NewGuid_AcrossReplays_ReturnsSameValues()
    {
        var registry = new DurableTaskRegistry()
            .AddActivityFunc<string, string>("Echo", (_, x) => x)
            .AddOrchestratorFunc<object?, Guid[]>("Guids", async (ctx, _) =>
            {
                Guid beforeWait = ctx.NewGuid();
                ctx.SetCustomStatus(beforeWait);
                await ctx.WaitForExternalEvent<string>("go");
                Guid beforeActivity = ctx.NewGuid();
                string echoed = await ctx.CallActivityAsync<string>("Echo", beforeActivity.ToString());
                Guid afterActivity = ctx.NewGuid();
                return [beforeWait, beforeActivity, Guid.Parse(echoed), afterActivity];
            });
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("Guids");
        Guid firstEpisodeGuid = (await h.WaitForStatusAsync(id, m => m.SerializedCustomStatus is not null, "first guid published")).ReadCustomStatusAs<Guid>();
        await h.Client.RaiseEventAsync(id, "go");
        OrchestrationMetadata done = await h.WaitForCompletionAsync(id);

        Guid[] guids = done.ReadOutputAs<Guid[]>()!;

        // [0] was generated in episode 1 and re-generated in two replays; [1] was handed to the
        // activity in episode 2 and re-generated in the replay of episode 3.
        Assert.Equal(firstEpisodeGuid, guids[0]);
        Assert.Equal(guids[1], guids[2]);
        Assert.Equal(3, new[] { guids[0], guids[1], guids[3] }.Distinct().Count());
        Assert.DoesNotContain(Guid.Empty, guids);
        Assert.Equal(firstEpisodeGuid, done.ReadCustomStatusAs<Guid>());
    }

    [Fact(Timeout = TestTimeout)]
    public async Task IsReplaying_ReRunOfRecordedSteps_TrueAndReplaySafeLoggerWritesOnce()
    {
        var logger = new RecordingLogger();
        var observed = new List<(string Step, bool Replaying)>();

        // Nothing kept in memory between episodes: every episode replays its history.
        await using ConformanceHarness h = await this.StartAsync(ReplayProbeRegistry(logger, observed), maxCachedOrchestrations: 0);

        string id = await h.ScheduleAsync("ReplayProbe");
        await h.WaitForCompletionAsync(id);

        Assert.Equal(["start", "after a", "after b"], logger.Messages);

        // Each step runs live exactly once, first, and is replayed in every later episode.
        (string Step, bool Replaying)[] steps = [.. observed];
        foreach (string step in new[] { "start", "after a", "after b" })
        {
            bool[] flags = steps.Where(s => s.Step == step).Select(s => s.Replaying).ToArray();
            Assert.False(flags[0], $"'{step}' first ran as a replay");
            Assert.All(flags.Skip(1), f => Assert.True(f, $"'{step}' re-ran without IsReplaying"));
        }

        Assert.Equal(3, steps.Count(s => s.Step == "start"));
        Assert.Equal(2, steps.Count(s => s.Step == "after a"));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task IsReplaying_OrchestrationKeptBetweenEpisodes_EachStepRunsOnceLiveAndTheHistoryIsTheReplayedOne()
    {
        var logger = new RecordingLogger();
        var observed = new List<(string Step, bool Replaying)>();
        await using ConformanceHarness h = await this.StartAsync(ReplayProbeRegistry(logger, observed), maxCachedOrchestrations: 1000);

        string id = await h.ScheduleAsync("ReplayProbe");
        OrchestrationMetadata done = await h.WaitForCompletionAsync(id);

        Assert.Equal("done", done.ReadOutputAs<string>());
        Assert.Equal(["start", "after a", "after b"], logger.Messages);
        Assert.Equal([("start", false), ("after a", false), ("after b", false)], observed);
        Assert.Equal(3, h.Worker.EpisodesResumed + h.Worker.EpisodesReplayed);
        Assert.Equal(2, h.Worker.EpisodesResumed);
        Assert.Equal(0, h.Worker.CachedOrchestrations);
        Assert.Equal(
            ["OrchestratorStarted", "ExecutionStarted", "TaskScheduled", "OrchestratorStarted", "TaskCompleted", "TaskScheduled", "OrchestratorStarted", "TaskCompleted", "ExecutionCompleted"],
            (await h.Client.GetHistoryAsync(id)).Select(e => e.EventType));
    }

    private static DurableTaskRegistry ReplayProbeRegistry(RecordingLogger logger, List<(string Step, bool Replaying)> observed) => new DurableTaskRegistry()
        .AddActivityFunc<string, string>("Echo", (_, x) => x)
        .AddOrchestratorFunc<object?, string>("ReplayProbe", async (ctx, _) =>
        {
            ILogger log = ctx.CreateReplaySafeLogger(logger);
            observed.Add(("start", ctx.IsReplaying));
            log.LogInformation("start");
            await ctx.CallActivityAsync<string>("Echo", "a");
            observed.Add(("after a", ctx.IsReplaying));
            log.LogInformation("after a");
            await ctx.CallActivityAsync<string>("Echo", "b");
            observed.Add(("after b", ctx.IsReplaying));
            log.LogInformation("after b");
            return "done";
        });

    // ---------------------------------------------------------------- terminate

    [Fact(Timeout = TestTimeout)]
    public async Task TerminateInstanceAsync_WaitingInstance_TerminatedWithReasonAsOutput()
    {
        await using ConformanceHarness h = await this.StartAsync(WaitForeverRegistry());

        string id = await h.ScheduleAsync("WaitForever");
        await h.WaitForStatusAsync(id, m => m.RuntimeStatus == OrchestrationRuntimeStatus.Running, "running");
        await h.Client.TerminateInstanceAsync(id, "operator said stop");
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Terminated, m.RuntimeStatus);
        Assert.Equal("operator said stop", m.ReadOutputAs<string>());
        Assert.NotNull(m.CompletedAt);
        IReadOnlyList<HistoryEvent> history = await h.Client.GetHistoryAsync(id);
        Assert.Equal("operator said stop", Assert.Single(history.OfType<ExecutionTerminatedEvent>()).Reason);
        Assert.Equal(OrchestrationRuntimeStatus.Terminated, Assert.IsType<ExecutionCompletedEvent>(history[^1]).Status);

        // A finished instance no longer takes events.
        await Assert.ThrowsAsync<OrchestrationNotRunningException>(() => h.Client.RaiseEventAsync(id, "never"));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task TerminateInstanceAsync_CompletedInstance_ThrowsNotRunningAndChangesNothing()
    {
        await using ConformanceHarness h = await this.StartAsync(EchoRegistry());
        string id = await h.ScheduleAsync("EchoOrchestrator", "hi");
        OrchestrationMetadata before = await h.WaitForCompletionAsync(id);
        IReadOnlyList<HistoryEvent> historyBefore = await h.Client.GetHistoryAsync(id);

        OrchestrationNotRunningException ex = await Assert.ThrowsAsync<OrchestrationNotRunningException>(() => h.Client.TerminateInstanceAsync(id, "too late"));

        Assert.Equal(id, ex.InstanceId);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, ex.Status);
        Assert.Equal(before, await h.Client.GetInstanceAsync(id));
        Assert.Equal(historyBefore, await h.Client.GetHistoryAsync(id));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task TerminateInstanceAsync_UnknownInstance_ThrowsNotFound()
    {
        await using ConformanceHarness h = await this.StartAsync(EchoRegistry());

        await Assert.ThrowsAsync<OrchestrationNotFoundException>(() => h.Client.TerminateInstanceAsync("no-such-instance", "why"));
        Assert.Null(await h.Client.GetInstanceAsync("no-such-instance"));
    }

    // ---------------------------------------------------------------- purge

    [Fact(Timeout = TestTimeout)]
    public async Task PurgeInstanceAsync_CompletedInstance_RemovesInstanceAndHistory()
    {
        await using ConformanceHarness h = await this.StartAsync(EchoRegistry());
        string id = await h.ScheduleAsync("EchoOrchestrator", "hi");
        await h.WaitForCompletionAsync(id);

        Assert.True(await h.Client.PurgeInstanceAsync(id));

        Assert.Null(await h.Client.GetInstanceAsync(id));
        Assert.Null(await h.Backend.GetHistoryAsync(id, CancellationToken.None));
        await Assert.ThrowsAsync<OrchestrationNotFoundException>(() => h.Client.GetHistoryAsync(id));
        Assert.Empty(await h.Client.QueryInstancesAsync());
        Assert.False(await h.Client.PurgeInstanceAsync(id));
        long? stored = await this.CountStoredRecordsAsync(h.Backend);
        Assert.True(stored is null or 0, $"{stored} records left after purging the only instance");
    }

    [Fact(Timeout = TestTimeout)]
    public async Task PurgeInstanceAsync_RunningInstance_RefusedAndInstanceUnaffected()
    {
        await using ConformanceHarness h = await this.StartAsync(WaitForeverRegistry());
        string id = await h.ScheduleAsync("WaitForever");
        OrchestrationMetadata before = await h.WaitForStatusAsync(id, m => m.RuntimeStatus == OrchestrationRuntimeStatus.Running, "running");
        IReadOnlyList<HistoryEvent> historyBefore = await h.Client.GetHistoryAsync(id);

        await Assert.ThrowsAsync<OrchestrationNotRunningException>(() => h.Client.PurgeInstanceAsync(id));

        Assert.Equal(before, await h.Client.GetInstanceAsync(id));
        Assert.Equal(historyBefore, await h.Client.GetHistoryAsync(id));

        // Still alive: it reacts to an event and can be purged once finished.
        await h.Client.RaiseEventAsync(id, "never", "after all");
        Assert.Equal("after all", (await h.WaitForCompletionAsync(id)).ReadOutputAs<string>());
        Assert.True(await h.Client.PurgeInstanceAsync(id));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task PurgeInstancesAsync_ByStatusAndCreationTime_PurgesOnlyMatchingFinishedInstances()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<string, string>("Outcome", async (ctx, kind) => kind switch
            {
                "fail" => throw new InvalidOperationException("failed on purpose"),
                "wait" => await ctx.WaitForExternalEvent<string>("never"),
                _ => kind,
            });
        await using ConformanceHarness h = await this.StartAsync(registry);

        // Two generations, a minute apart, so the creation-time filter has something to separate.
        DateTimeOffset firstGeneration = h.Time.GetUtcNow();
        string[] oldCompleted = [await h.ScheduleAsync("Outcome", "ok", "old-ok-1"), await h.ScheduleAsync("Outcome", "ok", "old-ok-2")];
        h.Time.Advance(TimeSpan.FromMinutes(1));
        DateTimeOffset secondGeneration = h.Time.GetUtcNow();
        string newCompleted = await h.ScheduleAsync("Outcome", "ok", "new-ok");
        string failed = await h.ScheduleAsync("Outcome", "fail", "new-fail");
        string running = await h.ScheduleAsync("Outcome", "wait", "new-wait");
        foreach (string id in oldCompleted.Append(newCompleted).Append(failed))
        {
            await h.WaitForCompletionAsync(id);
        }

        await h.WaitForStatusAsync(running, m => m.RuntimeStatus == OrchestrationRuntimeStatus.Running, "running");

        int purgedOld = await h.Client.PurgeInstancesAsync(new PurgeInstancesFilter
        {
            CreatedTo = secondGeneration,
            Statuses = [OrchestrationRuntimeStatus.Completed],
        });
        Assert.Equal(2, purgedOld);
        Assert.Equal(["new-fail", "new-ok", "new-wait"], (await h.Client.QueryInstancesAsync()).Select(m => m.InstanceId).Order());

        int purgedCompleted = await h.Client.PurgeInstancesAsync(new PurgeInstancesFilter { CreatedFrom = firstGeneration, Statuses = [OrchestrationRuntimeStatus.Completed] });
        Assert.Equal(1, purgedCompleted);

        int purgedAnyFinished = await h.Client.PurgeInstancesAsync(new PurgeInstancesFilter());
        Assert.Equal(1, purgedAnyFinished);
        OrchestrationMetadata survivor = Assert.Single(await h.Client.QueryInstancesAsync());
        Assert.Equal(running, survivor.InstanceId);
        Assert.Equal(OrchestrationRuntimeStatus.Running, survivor.RuntimeStatus);
        Assert.Equal(0, await h.Client.PurgeInstancesAsync(new PurgeInstancesFilter()));

        await Assert.ThrowsAsync<ArgumentException>(() =>
            h.Client.PurgeInstancesAsync(new PurgeInstancesFilter { Statuses = [OrchestrationRuntimeStatus.Running] }));
        Assert.NotNull(await h.Client.GetInstanceAsync(running));
    }

    // ---------------------------------------------------------------- query

    [Fact(Timeout = TestTimeout)]
    public async Task QueryInstancesAsync_ByStatusAndPrefix_ReturnsMatchesInInstanceIdOrder()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<string, string>("Outcome", async (ctx, kind) => kind == "wait" ? await ctx.WaitForExternalEvent<string>("never") : kind);
        await using ConformanceHarness h = await this.StartAsync(registry);
        foreach ((string id, string kind) in new[] { ("order_2", "ok"), ("order_1", "ok"), ("order_3", "wait"), ("orderX4", "ok"), ("invoice-1", "ok") })
        {
            await h.ScheduleAsync("Outcome", kind, id);

            // Distinct creation times, in an order other than the ids', show that the order is the id's.
            h.Time.Advance(TimeSpan.FromSeconds(1));
        }

        foreach (string id in new[] { "order_1", "order_2", "orderX4", "invoice-1" })
        {
            await h.WaitForCompletionAsync(id);
        }

        await h.WaitForStatusAsync("order_3", m => m.RuntimeStatus == OrchestrationRuntimeStatus.Running, "running");

        Page<OrchestrationMetadata> completedOrders = await h.Client.QueryInstancesAsync(new InstanceQuery
        {
            Statuses = [OrchestrationRuntimeStatus.Completed],
            InstanceIdPrefix = "order_",
        });
        Assert.Equal(["order_1", "order_2"], completedOrders.Select(m => m.InstanceId));
        Assert.Equal("ok", completedOrders[0].ReadOutputAs<string>());
        Assert.Null(completedOrders.ContinuationToken);

        IReadOnlyList<OrchestrationMetadata> running = await h.Client.QueryInstancesAsync(new InstanceQuery { Statuses = [OrchestrationRuntimeStatus.Running] });
        Assert.Equal(["order_3"], running.Select(m => m.InstanceId));

        // Ordinal: 'X' (0x58) sorts before '_' (0x5F).
        IReadOnlyList<OrchestrationMetadata> all = await h.Client.QueryInstancesAsync();
        Assert.Equal(["invoice-1", "orderX4", "order_1", "order_2", "order_3"], all.Select(m => m.InstanceId));

        Page<OrchestrationMetadata> page = await h.Client.QueryInstancesAsync(new InstanceQuery { PageSize = 2, FetchInputsAndOutputs = false });
        Assert.Equal(["invoice-1", "orderX4"], page.Select(m => m.InstanceId));
        Assert.NotNull(page.ContinuationToken);
        Assert.All(page, m => Assert.Null(m.SerializedOutput));
        Assert.All(page, m => Assert.Null(m.SerializedInput));
        Assert.All(page, m => Assert.Equal("Outcome", m.Name));
        Assert.All(page, m => Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus));

        // Created times: [second 2, second 4) holds order_3 and orderX4.
        DateTimeOffset first = all.Min(m => m.CreatedAt);
        IReadOnlyList<OrchestrationMetadata> window = await h.Client.QueryInstancesAsync(new InstanceQuery
        {
            CreatedFrom = first + TimeSpan.FromSeconds(2),
            CreatedTo = first + TimeSpan.FromSeconds(4),
        });
        Assert.Equal(["orderX4", "order_3"], window.Select(m => m.InstanceId));

        Assert.Empty(await h.Client.QueryInstancesAsync(new InstanceQuery { Statuses = [OrchestrationRuntimeStatus.Failed] }));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task QueryInstancesAsync_SmallPages_ReturnEveryInstanceOnceInIdOrder()
    {
        await using ConformanceHarness h = await this.StartAsync(OutcomeRegistry());
        string[] ids = Enumerable.Range(0, 11).Select(i => $"page-{(i * 7) % 11:D2}").ToArray();
        foreach (string id in ids)
        {
            await h.ScheduleAsync("Outcome", "ok", id);
        }

        string[] expected = ids.Order(StringComparer.Ordinal).ToArray();

        // Page by page through the client: no page over the size, a token on all but the last.
        var seen = new List<string>();
        var pages = new List<Page<OrchestrationMetadata>>();
        string? token = null;
        do
        {
            Page<OrchestrationMetadata> page = await h.Client.QueryInstancesAsync(new InstanceQuery { PageSize = 3, FetchInputsAndOutputs = false, ContinuationToken = token });
            Assert.InRange(page.Count, 0, 3);
            pages.Add(page);
            seen.AddRange(page.Select(m => m.InstanceId));
            token = page.ContinuationToken;
            Assert.True(pages.Count <= 5, "paging did not end");
        }
        while (token is not null);

        Assert.Equal(expected, seen);
        Assert.Equal(3, pages[0].Count);

        // The same through the pageable: every value once, and its pages resume from a token.
        var enumerated = new List<string>();
        await foreach (OrchestrationMetadata m in h.Client.GetAllInstancesAsync(new InstanceQuery { PageSize = 4 }))
        {
            enumerated.Add(m.InstanceId);
        }

        Assert.Equal(expected, enumerated);
        var resumed = new List<string>();
        await foreach (Page<OrchestrationMetadata> p in h.Client.GetAllInstancesAsync(new InstanceQuery()).AsPages(pages[0].ContinuationToken, pageSizeHint: 3))
        {
            resumed.AddRange(p.Select(m => m.InstanceId));
        }

        Assert.Equal(expected.Skip(3), resumed);

        // One page as large as everything: the whole list and no token.
        Page<OrchestrationMetadata> whole = await h.Client.QueryInstancesAsync(new InstanceQuery { PageSize = 20 });
        Assert.Equal(expected, whole.Select(m => m.InstanceId));
        Assert.Null(whole.ContinuationToken);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task QueryInstancesAsync_FiltersWithPages_ReturnOnlyMatchesEachOnce()
    {
        await using ConformanceHarness h = await this.StartAsync(OutcomeRegistry());
        var expected = new List<string>();
        for (int i = 0; i < 9; i++)
        {
            // Matches (a-, completed) interleave with the other prefix and with running instances.
            string kind = i % 3 == 2 ? "wait" : "ok";
            string aId = $"a-{i}";
            await h.ScheduleAsync("Outcome", kind, aId);
            await h.ScheduleAsync("Outcome", "ok", $"b-{i}");
            if (kind == "ok")
            {
                expected.Add(aId);
            }
        }

        foreach (string id in expected)
        {
            await h.WaitForCompletionAsync(id);
        }

        var query = new InstanceQuery { Statuses = [OrchestrationRuntimeStatus.Completed], InstanceIdPrefix = "a-", PageSize = 2 };
        var seen = new List<string>();
        int pages = 0;
        await foreach (Page<OrchestrationMetadata> page in h.Client.GetAllInstancesAsync(query).AsPages())
        {
            Assert.InRange(page.Count, 0, 2);
            Assert.All(page, m => Assert.Equal("ok", m.ReadOutputAs<string>()));
            seen.AddRange(page.Select(m => m.InstanceId));
            Assert.True(++pages <= 5, "paging did not end");
        }

        Assert.Equal(expected, seen);

        // The statuses may be listed in another order on the next page: the filter is the same.
        Page<OrchestrationMetadata> first = await h.Client.QueryInstancesAsync(new InstanceQuery
        {
            Statuses = [OrchestrationRuntimeStatus.Completed, OrchestrationRuntimeStatus.Failed],
            InstanceIdPrefix = "b-",
            PageSize = 5,
        });
        Page<OrchestrationMetadata> second = await h.Client.QueryInstancesAsync(new InstanceQuery
        {
            Statuses = [OrchestrationRuntimeStatus.Failed, OrchestrationRuntimeStatus.Completed],
            InstanceIdPrefix = "b-",
            PageSize = 5,
            ContinuationToken = first.ContinuationToken,
        });
        Assert.Equal(["b-0", "b-1", "b-2", "b-3", "b-4"], first.Select(m => m.InstanceId));
        Assert.Equal(["b-5", "b-6", "b-7", "b-8"], second.Select(m => m.InstanceId));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task QueryInstancesAsync_InstancesCreatedAndPurgedBetweenPages_NoDuplicatesAndNoneSkipped()
    {
        await using ConformanceHarness h = await this.StartAsync(OutcomeRegistry());
        string[] initial = Enumerable.Range(1, 10).Select(i => $"m-{i:D2}").ToArray();
        foreach (string id in initial)
        {
            await h.ScheduleAsync("Outcome", "ok", id);
        }

        foreach (string id in initial)
        {
            await h.WaitForCompletionAsync(id);
        }

        var query = new InstanceQuery { PageSize = 3, FetchInputsAndOutputs = false };
        Page<OrchestrationMetadata> page = await h.Client.QueryInstancesAsync(query);
        Assert.Equal(["m-01", "m-02", "m-03"], page.Select(m => m.InstanceId));
        var seen = page.Select(m => m.InstanceId).ToList();

        // Between pages: purge the instance the token points at and one not yet listed; create one before the
        // cursor, one after it, and one at the end.
        Assert.True(await h.Client.PurgeInstanceAsync("m-03"));
        Assert.True(await h.Client.PurgeInstanceAsync("m-06"));
        foreach (string id in new[] { "m-00", "m-045", "m-99" })
        {
            await h.ScheduleAsync("Outcome", "ok", id);
        }

        string? token = page.ContinuationToken;
        int pages = 1;
        while (token is not null)
        {
            page = await h.Client.QueryInstancesAsync(query with { ContinuationToken = token });
            seen.AddRange(page.Select(m => m.InstanceId));
            token = page.ContinuationToken;
            Assert.True(++pages <= 8, "paging did not end");

            if (pages == 2)
            {
                // And while paging on: purge one already listed and one ahead.
                Assert.True(await h.Client.PurgeInstanceAsync(seen.Last(id => initial.Contains(id) && id != "m-03")));
                Assert.True(await h.Client.PurgeInstanceAsync("m-09"));
            }
        }

        Assert.Equal(seen.Distinct().Count(), seen.Count);
        Assert.Equal(seen.Order(StringComparer.Ordinal), seen);

        // Every instance that existed throughout was listed; the purged-ahead were not; the new one behind the cursor was not.
        Assert.Subset(seen.ToHashSet(), new[] { "m-01", "m-02", "m-04", "m-05", "m-07", "m-08", "m-10" }.ToHashSet());
        Assert.DoesNotContain("m-06", seen);
        Assert.DoesNotContain("m-09", seen);
        Assert.DoesNotContain("m-00", seen);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task QueryInstancesAsync_BadContinuationToken_ThrowsArgumentExceptionAndChangesNothing()
    {
        await using ConformanceHarness h = await this.StartAsync(OutcomeRegistry());
        foreach (string id in new[] { "t-1", "t-2", "t-3" })
        {
            await h.ScheduleAsync("Outcome", "ok", id);
        }

        var query = new InstanceQuery { InstanceIdPrefix = "t-", PageSize = 1 };
        string good = (await h.Client.QueryInstancesAsync(query)).ContinuationToken!;
        Assert.NotNull(good);

        string Json(string json) => Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(json)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        InstanceQuery[] bad =
        [
            query with { ContinuationToken = "not a token!" },
            query with { ContinuationToken = string.Empty },
            query with { ContinuationToken = Json("[1,2]") },
            query with { ContinuationToken = Json("{\"v\":1}") },
            query with { ContinuationToken = good[..^4] },

            // A token for another filter, from another kind of backend, or of a version this one does not know.
            query with { InstanceIdPrefix = "u-", ContinuationToken = good },
            query with { Statuses = [OrchestrationRuntimeStatus.Completed], ContinuationToken = good },
            query with { ContinuationToken = InstanceQueryContinuation.Create("some-other-backend", query, "t-1") },
            query with { ContinuationToken = Json(System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(Pad(good.Replace('-', '+').Replace('_', '/')))).Replace("\"v\":1", "\"v\":99", StringComparison.Ordinal)) },
        ];
        foreach (InstanceQuery q in bad)
        {
            ArgumentException ex = await Assert.ThrowsAsync<ArgumentException>(() => h.Client.QueryInstancesAsync(q));
            Assert.Equal(nameof(InstanceQuery.ContinuationToken), ex.ParamName);
            Assert.Contains("continuation token", ex.Message, StringComparison.OrdinalIgnoreCase);
            await Assert.ThrowsAsync<ArgumentException>(async () =>
            {
                await foreach (OrchestrationMetadata unused in h.Client.GetAllInstancesAsync(q))
                {
                }
            });
        }

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => h.Client.QueryInstancesAsync(query with { PageSize = 0 }));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => h.Client.QueryInstancesAsync(query with { PageSize = InstanceQuery.MaxPageSize + 1 }));

        // Nothing changed, and the good token still reads on.
        Assert.Equal(["t-1", "t-2", "t-3"], (await h.Client.QueryInstancesAsync()).Select(m => m.InstanceId));
        Assert.Equal(["t-2"], (await h.Client.QueryInstancesAsync(query with { ContinuationToken = good })).Select(m => m.InstanceId));

        static string Pad(string b64) => b64.PadRight(b64.Length + ((4 - (b64.Length % 4)) % 4), '=');
    }

    [Fact(Timeout = TestTimeout)]
    public async Task QueryInstancesAsync_WithoutInputsAndOutputs_KeepsStatusTimesAndFailure()
    {
        await using ConformanceHarness h = await this.StartAsync(OutcomeRegistry());
        await h.ScheduleAsync("Outcome", "fail", "x-failed");
        await h.ScheduleAsync("Outcome", "ok", "x-ok");
        OrchestrationMetadata failed = await h.WaitForCompletionAsync("x-failed");
        await h.WaitForCompletionAsync("x-ok");

        Page<OrchestrationMetadata> page = await h.Client.QueryInstancesAsync(new InstanceQuery { InstanceIdPrefix = "x-", FetchInputsAndOutputs = false });

        Assert.Equal(["x-failed", "x-ok"], page.Select(m => m.InstanceId));
        OrchestrationMetadata summary = page[0];
        Assert.Equal(OrchestrationRuntimeStatus.Failed, summary.RuntimeStatus);
        Assert.Equal(failed.ExecutionId, summary.ExecutionId);
        Assert.Equal(failed.CreatedAt, summary.CreatedAt);
        Assert.Equal(failed.CompletedAt, summary.CompletedAt);
        Assert.Equal("boom", summary.FailureDetails?.ErrorMessage);
        Assert.Null(summary.SerializedInput);
        Assert.Null(summary.SerializedOutput);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, page[1].RuntimeStatus);
    }

    private static DurableTaskRegistry OutcomeRegistry() => new DurableTaskRegistry()
        .AddOrchestratorFunc<string, string>("Outcome", async (ctx, kind) => kind switch
        {
            "wait" => await ctx.WaitForExternalEvent<string>("never"),
            "fail" => throw new InvalidOperationException("boom"),
            _ => kind,
        });

    // ---------------------------------------------------------------- instance ids

    [Fact(Timeout = TestTimeout)]
    public async Task ScheduleNewOrchestrationInstanceAsync_StartAtInFuture_NotHandedToWorkerUntilDue()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<object?, DateTime>("WhatTimeIsIt", (ctx, _) => Task.FromResult(ctx.CurrentUtcDateTime))
            .AddOrchestratorFunc<object?, DelayedResult>("DelayedGreeter", async (ctx, _) =>
            {
                DateTime started = ctx.CurrentUtcDateTime;
                return new DelayedResult(started, await ctx.WaitForExternalEvent<string>("hello"));
            });
        LockRecordingBackend? recorder = null;
        await using ConformanceHarness h = await ConformanceHarness.StartAsync(t => recorder = new LockRecordingBackend(this.CreateBackend(t)), registry);
        DateTimeOffset due = h.Time.GetUtcNow() + TimeSpan.FromHours(1);

        string id = await h.Client.ScheduleNewOrchestrationInstanceAsync("DelayedGreeter", null, new Client.StartOrchestrationOptions { StartAt = due });

        // An event may be sent before the start; it must wait for the start without the instance
        // being handed out (and spun on) meanwhile. The barrier instance, scheduled later but due
        // now, is processed by polls that also see the early event.
        await h.Client.RaiseEventAsync(id, "hello", "sent early");
        await h.WaitForCompletionAsync(await h.ScheduleAsync("WhatTimeIsIt"));
        Assert.Equal(OrchestrationRuntimeStatus.Pending, (await h.Client.GetInstanceAsync(id))!.RuntimeStatus);
        Assert.DoesNotContain(id, recorder!.LockedInstanceIds);

        h.Time.Advance(TimeSpan.FromHours(1));
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        Assert.Equal(new DelayedResult(due.UtcDateTime, "sent early"), m.ReadOutputAs<DelayedResult>());
        ExecutionStartedEvent started = Assert.IsType<ExecutionStartedEvent>((await h.Client.GetHistoryAsync(id))[1]);
        Assert.Equal(due, started.ScheduledStartTime);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task ScheduleNewOrchestrationInstanceAsync_SameIdWhileRunning_ThrowsAlreadyExistsAndKeepsOriginal()
    {
        await using ConformanceHarness h = await this.StartAsync(WaitForeverRegistry());
        string id = await h.ScheduleAsync("WaitForever", null, "singleton");
        OrchestrationMetadata before = await h.WaitForStatusAsync(id, m => m.RuntimeStatus == OrchestrationRuntimeStatus.Running, "running");
        IReadOnlyList<HistoryEvent> historyBefore = await h.Client.GetHistoryAsync(id);

        OrchestrationAlreadyExistsException ex = await Assert.ThrowsAsync<OrchestrationAlreadyExistsException>(() => h.ScheduleAsync("WaitForever", "second", "singleton"));

        Assert.Equal("singleton", ex.InstanceId);
        Assert.Equal(OrchestrationRuntimeStatus.Running, ex.Status);
        Assert.Single(await h.Client.QueryInstancesAsync(new InstanceQuery { InstanceIdPrefix = "singleton" }));
        Assert.Equal(before, await h.Client.GetInstanceAsync(id));
        Assert.Equal(historyBefore, await h.Client.GetHistoryAsync(id));

        // Once the first run finishes, the id is free again and the new run starts from scratch.
        await h.Client.RaiseEventAsync(id, "never", "first run");
        Assert.Equal("first run", (await h.WaitForCompletionAsync(id)).ReadOutputAs<string>());
        await h.ScheduleAsync("WaitForever", "second", "singleton");
        OrchestrationMetadata second = await h.WaitForStatusAsync(id, m => m.RuntimeStatus == OrchestrationRuntimeStatus.Running, "second run running");
        Assert.Equal("second", second.ReadInputAs<string>());
        Assert.NotEqual(before.ExecutionId, second.ExecutionId);
        await h.Client.RaiseEventAsync(id, "never", "second run");
        Assert.Equal("second run", (await h.WaitForCompletionAsync(id)).ReadOutputAs<string>());
        IReadOnlyList<HistoryEvent> history = await h.Client.GetHistoryAsync(id);
        Assert.Equal("\"second\"", Assert.Single(history.OfType<ExecutionStartedEvent>()).Input);
        Assert.Equal("\"second run\"", Assert.Single(history.OfType<EventRaisedEvent>()).Input);
    }

    [Theory(Timeout = TestTimeout)]
    [InlineData("")]
    [InlineData(" ")]
    [InlineData("a|b")]
    [InlineData("tab\there")]
    public async Task ScheduleNewOrchestrationInstanceAsync_InvalidInstanceId_ThrowsArgumentExceptionAndStoresNothing(string instanceId)
    {
        await using ConformanceHarness h = await this.StartAsync(EchoRegistry());

        await Assert.ThrowsAnyAsync<ArgumentException>(() => h.ScheduleAsync("EchoOrchestrator", "x", instanceId));

        Assert.Empty(await h.Client.QueryInstancesAsync());
        Assert.True(await this.CountStoredRecordsAsync(h.Backend) is null or 0);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task ScheduleNewOrchestrationInstanceAsync_InstanceIdTooLong_ThrowsArgumentException()
    {
        await using ConformanceHarness h = await this.StartAsync(EchoRegistry());

        await Assert.ThrowsAnyAsync<ArgumentException>(() => h.ScheduleAsync("EchoOrchestrator", "x", new string('a', 257)));
        string longest = await h.ScheduleAsync("EchoOrchestrator", "x", new string('a', 256));

        Assert.Equal(OrchestrationRuntimeStatus.Completed, (await h.WaitForCompletionAsync(longest)).RuntimeStatus);
    }

    // ---------------------------------------------------------------- bad input

    [Fact(Timeout = TestTimeout)]
    public async Task ScheduleNewOrchestrationInstanceAsync_UnknownOrchestrator_InstanceFailsWithOrchestratorNotFound()
    {
        await using ConformanceHarness h = await this.StartAsync(EchoRegistry());

        string id = await h.ScheduleAsync("NoSuchOrchestrator");
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Failed, m.RuntimeStatus);
        Assert.Equal("Orchestrator.Durable.OrchestratorNotFound", m.FailureDetails?.ErrorType);
        Assert.Contains("NoSuchOrchestrator", m.FailureDetails?.ErrorMessage, StringComparison.Ordinal);
        Assert.True(m.FailureDetails?.IsNonRetriable);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task ScheduleNewOrchestrationInstanceAsync_UnknownOrchestratorWithClientRegistry_ThrowsAndStoresNothing()
    {
        DurableTaskRegistry registry = EchoRegistry();
        await using ConformanceHarness h = await this.StartAsync(registry, clientRegistry: registry);

        ArgumentException ex = await Assert.ThrowsAsync<ArgumentException>(() => h.ScheduleAsync("NoSuchOrchestrator", null, "refused"));

        Assert.Contains("NoSuchOrchestrator", ex.Message, StringComparison.Ordinal);
        Assert.Null(await h.Client.GetInstanceAsync("refused"));
        Assert.Empty(await h.Client.QueryInstancesAsync());
        Assert.True(await this.CountStoredRecordsAsync(h.Backend) is null or 0);

        // Registered names, in any case, still go through.
        string ok = await h.ScheduleAsync("echoorchestrator", "fine");
        Assert.Equal("fine", (await h.WaitForCompletionAsync(ok)).ReadOutputAs<string>());
    }

    [Fact(Timeout = TestTimeout)]
    public async Task CallActivityAsync_UnknownActivityWithRetryPolicy_FailsNonRetriableWithoutRetry()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<object?, string>("CallsMissing", async (ctx, _) =>
            {
                try
                {
                    await ctx.CallActivityAsync<string>("NoSuchActivity", null, TaskOptions.FromRetryPolicy(new RetryPolicy(5, TimeSpan.FromSeconds(1))));
                    return "no failure";
                }
                catch (TaskFailedException ex)
                {
                    return $"{ex.FailureDetails.ErrorType}|{ex.FailureDetails.IsNonRetriable}|{ex.FailureDetails.ErrorMessage}";
                }
            });
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("CallsMissing");
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        string[] parts = m.ReadOutputAs<string>()!.Split('|');
        Assert.Equal("Orchestrator.Durable.ActivityNotFound", parts[0]);
        Assert.Equal("True", parts[1]);
        Assert.Contains("NoSuchActivity", parts[2], StringComparison.Ordinal);
        IReadOnlyList<HistoryEvent> history = await h.Client.GetHistoryAsync(id);
        Assert.Single(history.OfType<TaskScheduledEvent>());
        Assert.DoesNotContain(history, e => e is TimerCreatedEvent);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task CallActivityAsync_InputNotOfActivityInputType_FailsNonRetriableNamingActivity()
    {
        int runs = 0;
        var registry = new DurableTaskRegistry()
            .AddActivityFunc<int, int>("Increment", (_, x) =>
            {
                Interlocked.Increment(ref runs);
                return x + 1;
            })
            .AddOrchestratorFunc<object?, string>("PassesText", async (ctx, _) =>
            {
                try
                {
                    await ctx.CallActivityAsync<int>("Increment", "not a number", TaskOptions.FromRetryPolicy(new RetryPolicy(3, TimeSpan.FromSeconds(1))));
                    return "no failure";
                }
                catch (TaskFailedException ex)
                {
                    return $"{ex.FailureDetails.IsNonRetriable}|{ex.FailureDetails.ErrorMessage}";
                }
            });
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("PassesText");
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        string[] parts = m.ReadOutputAs<string>()!.Split('|');
        Assert.Equal("True", parts[0]);
        Assert.Contains("Increment", parts[1], StringComparison.Ordinal);
        Assert.Contains(nameof(Int32), parts[1], StringComparison.Ordinal);
        Assert.Equal(0, Volatile.Read(ref runs));
        Assert.Single((await h.Client.GetHistoryAsync(id)).OfType<TaskScheduledEvent>());
    }

    [Fact(Timeout = TestTimeout)]
    public async Task ScheduleNewOrchestrationInstanceAsync_InputNotOfOrchestratorInputType_FailsWithClearMessage()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<int, int>("NeedsNumber", (_, x) => Task.FromResult(x + 1));
        await using ConformanceHarness h = await this.StartAsync(registry);

        string id = await h.ScheduleAsync("NeedsNumber", new { text = "not a number" });
        OrchestrationMetadata m = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Failed, m.RuntimeStatus);
        TaskFailureDetails failure = Assert.IsType<TaskFailureDetails>(m.FailureDetails);
        Assert.Equal(typeof(System.Text.Json.JsonException).FullName, failure.ErrorType);
        Assert.Contains("NeedsNumber", failure.ErrorMessage, StringComparison.Ordinal);
        Assert.Contains(nameof(Int32), failure.ErrorMessage, StringComparison.Ordinal);
        Assert.True(failure.IsNonRetriable);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task RaiseEventAsync_UnknownInstance_ThrowsNotFoundAndStoresNothing()
    {
        await using ConformanceHarness h = await this.StartAsync(EchoRegistry());

        OrchestrationNotFoundException ex = await Assert.ThrowsAsync<OrchestrationNotFoundException>(() => h.Client.RaiseEventAsync("ghost", "hello", 1));

        Assert.Equal("ghost", ex.InstanceId);
        Assert.Null(await h.Client.GetInstanceAsync("ghost"));
        Assert.Empty(await h.Client.QueryInstancesAsync());
        Assert.True(await this.CountStoredRecordsAsync(h.Backend) is null or 0);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task RaiseEventAsync_CompletedInstance_ThrowsNotRunningAndHistoryUnchanged()
    {
        await using ConformanceHarness h = await this.StartAsync(EchoRegistry());
        string id = await h.ScheduleAsync("EchoOrchestrator", "hi");
        OrchestrationMetadata before = await h.WaitForCompletionAsync(id);
        IReadOnlyList<HistoryEvent> historyBefore = await h.Client.GetHistoryAsync(id);
        long? storedBefore = await this.CountStoredRecordsAsync(h.Backend);

        OrchestrationNotRunningException ex = await Assert.ThrowsAsync<OrchestrationNotRunningException>(() => h.Client.RaiseEventAsync(id, "late", 1));

        Assert.Equal(OrchestrationRuntimeStatus.Completed, ex.Status);
        Assert.Equal(before, await h.Client.GetInstanceAsync(id));
        Assert.Equal(historyBefore, await h.Client.GetHistoryAsync(id));
        Assert.Equal(storedBefore, await this.CountStoredRecordsAsync(h.Backend));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task GetInstanceAndHistory_UnknownInstance_NullAndNotFound()
    {
        await using ConformanceHarness h = await this.StartAsync(EchoRegistry());

        Assert.Null(await h.Client.GetInstanceAsync("ghost"));
        Assert.Null(await h.Backend.GetHistoryAsync("ghost", CancellationToken.None));
        await Assert.ThrowsAsync<OrchestrationNotFoundException>(() => h.Client.GetHistoryAsync("ghost"));
        Assert.False(await h.Client.PurgeInstanceAsync("ghost"));
    }

    // ---------------------------------------------------------------- history and timestamps

    [Fact(Timeout = TestTimeout)]
    public async Task GetHistoryAsync_CompletedInstance_RecordsNamesInputsResultsAndClock()
    {
        await using ConformanceHarness h = await this.StartAsync(EchoRegistry());
        DateTimeOffset start = h.Time.GetUtcNow();

        string id = await h.ScheduleAsync("EchoOrchestrator", "payload", "history-1");
        await h.WaitForCompletionAsync(id);
        IReadOnlyList<HistoryEvent> history = await h.Client.GetHistoryAsync(id);

        ExecutionStartedEvent started = Assert.IsType<ExecutionStartedEvent>(history[1]);
        Assert.Equal("EchoOrchestrator", started.Name);
        Assert.Equal("history-1", started.InstanceId);
        Assert.Equal("\"payload\"", started.Input);
        Assert.Null(started.Parent);
        TaskScheduledEvent scheduled = Assert.Single(history.OfType<TaskScheduledEvent>());
        Assert.Equal("Echo", scheduled.Name);
        Assert.Equal("\"payload\"", scheduled.Input);
        TaskCompletedEvent completed = Assert.Single(history.OfType<TaskCompletedEvent>());
        Assert.Equal(scheduled.EventId, completed.TaskScheduledId);
        Assert.Equal("\"payload\"", completed.Result);
        ExecutionCompletedEvent end = Assert.IsType<ExecutionCompletedEvent>(history[^1]);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, end.Status);
        Assert.Equal("\"payload\"", end.Result);
        Assert.All(history, e => Assert.Equal(start, e.Timestamp));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task GetInstanceAsync_Lifecycle_TimestampsAndStatusFollowTheInstance()
    {
        await using ConformanceHarness h = await this.StartAsync(WaitForeverRegistry());
        DateTimeOffset created = h.Time.GetUtcNow();

        string id = await h.ScheduleAsync("WaitForever", "input");
        OrchestrationMetadata pendingOrRunning = (await h.Client.GetInstanceAsync(id))!;
        Assert.Equal(created, pendingOrRunning.CreatedAt);
        Assert.Null(pendingOrRunning.CompletedAt);
        Assert.Equal("WaitForever", pendingOrRunning.Name);
        Assert.Equal("input", pendingOrRunning.ReadInputAs<string>());

        OrchestrationMetadata running = await h.WaitForStatusAsync(id, m => m.RuntimeStatus == OrchestrationRuntimeStatus.Running, "running");
        Assert.Equal(created, running.CreatedAt);
        Assert.True(running.CreatedAt <= running.LastUpdatedAt);
        Assert.Null(running.CompletedAt);

        h.Time.Advance(TimeSpan.FromMinutes(5));
        DateTimeOffset finished = h.Time.GetUtcNow();
        await h.Client.RaiseEventAsync(id, "never", "output");
        OrchestrationMetadata done = await h.WaitForCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal(created, done.CreatedAt);
        Assert.Equal(finished, done.LastUpdatedAt);
        Assert.Equal(finished, done.CompletedAt);
        Assert.Equal("output", done.ReadOutputAs<string>());
        Assert.Equal(running.ExecutionId, done.ExecutionId);
    }

    // ---------------------------------------------------------------- helpers

    private Task<ConformanceHarness> StartAsync(
        DurableTaskRegistry registry,
        DurableTaskRegistry? clientRegistry = null,
        Action<CheckpointStage, string>? onCheckpointStage = null,
        int? maxCachedOrchestrations = null) =>
        ConformanceHarness.StartAsync(this.CreateBackend, registry, clientRegistry, onCheckpointStage, this.DispatcherCount, maxCachedOrchestrations ?? this.MaxCachedOrchestrations);

    private static T Fail<T>(string message, Exception? inner = null) => throw new InvalidOperationException(message, inner);

    private static readonly TaskOptions Local = new() { RunLocally = true };

    /// <summary>A checkpoint-stage hook counting the episodes that reached their commit.</summary>
    private sealed class CheckpointCounter
    {
        private int count;

        public int Count => Volatile.Read(ref this.count);

        public void OnStage(CheckpointStage stage, string instanceId)
        {
            if (stage == CheckpointStage.BeforeCommit)
            {
                Interlocked.Increment(ref this.count);
            }
        }
    }

    private static DurableTaskRegistry EchoRegistry() => new DurableTaskRegistry()
        .AddActivityFunc<string, string>("Echo", (_, x) => x)
        .AddOrchestratorFunc<string, string>("EchoOrchestrator", (ctx, x) => ctx.CallActivityAsync<string>("Echo", x));

    /// <summary>An orchestrator that waits for an event named "never" and returns its payload.</summary>
    private static DurableTaskRegistry WaitForeverRegistry() => new DurableTaskRegistry()
        .AddOrchestratorFunc<string?, string>("WaitForever", (ctx, _) => ctx.WaitForExternalEvent<string>("never"));

    /// <summary>Continues as new until the count reaches <paramref name="loops"/>, then returns the "late" event.</summary>
    private static DurableTaskRegistry LooperRegistry(int loops) => new DurableTaskRegistry()
        .AddOrchestratorFunc<int, string>("Looper", async (ctx, count) =>
        {
            if (count < loops)
            {
                ctx.ContinueAsNew(count + 1);
                return "continued";
            }

            return $"{count}:{await ctx.WaitForExternalEvent<string>("late")}";
        });

    private static DurableTaskRegistry ApprovalRegistry() => new DurableTaskRegistry()
        .AddOrchestratorFunc<object?, string>("Approval", async (ctx, _) =>
        {
            try
            {
                return "approved: " + await ctx.WaitForExternalEvent<string>("approval", TimeSpan.FromMinutes(30));
            }
            catch (TimeoutException)
            {
                return "timed out";
            }
        });

    public sealed record Progress(string Stage, int Step);

    public sealed record DelayedResult(DateTime Started, string Payload);
}

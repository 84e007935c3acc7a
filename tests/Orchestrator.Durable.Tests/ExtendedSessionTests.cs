using Microsoft.Extensions.Time.Testing;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.Core;
using Orchestrator.Durable.History;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;
using Orchestrator.Testing;

namespace Orchestrator.Durable.Tests;

/// <summary>
/// Orchestrations kept in memory between episodes (extended sessions): an episode that continues a kept
/// orchestration must record exactly what a replay of the stored history records, and anything but the
/// exact history the session produced must be replayed.
/// </summary>
public class ExtendedSessionTests
{
    private const string InstanceId = "session-probe";
    private static readonly DateTimeOffset T0 = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Execute_KeptSessionEveryEpisode_RecordsTheSameHistoryOutboxAndStateAsReplaying()
    {
        List<string> replayed = Drive(keepSessions: false, out _, out int replayedResumes);
        List<string> kept = Drive(keepSessions: true, out int episodes, out int resumes);

        Assert.Equal(0, replayedResumes);
        Assert.Equal(replayed, kept);

        // Every episode but the first of each execution (there are two: ContinueAsNew) continued the kept run.
        Assert.True(episodes > 8, $"only {episodes} episodes");
        Assert.Equal(episodes - 2, resumes);
    }

    [Fact]
    public void Execute_HistoryOtherThanTheSessionsOwn_ReplaysInsteadOfContinuing()
    {
        var executor = new OrchestrationExecutor(Registry(), DataConverter.Default);
        OrchestrationExecutionResult first = executor.Execute(InstanceId, [], [Start()], T0);
        List<HistoryEvent> history = RoundTrip(first.NewEvents);
        OrchestrationSession kept = first.Session!;
        TaskScheduledEvent a = first.NewEvents.OfType<TaskScheduledEvent>().Single();

        // Another worker (the lock expired) took A's result and committed its own episode.
        OrchestrationExecutionResult elsewhere = executor.Execute(InstanceId, history, [Completion(a, "\"a\"")], T0.AddSeconds(5));
        List<HistoryEvent> committed = RoundTrip(history.Concat(elsewhere.NewEvents));
        TaskScheduledEvent b0 = elsewhere.NewEvents.OfType<TaskScheduledEvent>().First();

        OrchestrationExecutionResult withStale = executor.Execute(InstanceId, committed, [Completion(b0, "\"b0\"")], T0.AddSeconds(9), kept);
        OrchestrationExecutionResult replayed = executor.Execute(InstanceId, committed, [Completion(b0, "\"b0\"")], T0.AddSeconds(9));

        Assert.False(withStale.Resumed);
        Assert.Equal(HistorySerializer.SerializeHistory(replayed.NewEvents), HistorySerializer.SerializeHistory(withStale.NewEvents));
        Assert.Equal(replayed.State, withStale.State);

        // The same length and last event, but another episode's OrchestratorStarted: not the session's history.
        Assert.True(kept.Continues(history, (ExecutionStartedEvent)history[1]));
        List<HistoryEvent> sameShape = [.. history];
        sameShape[0] = sameShape[0] with { Timestamp = T0.AddTicks(1) };
        Assert.False(kept.Continues(sameShape, (ExecutionStartedEvent)history[1]));
        sameShape = [.. history];
        sameShape[^1] = sameShape[^1] with { Timestamp = T0.AddTicks(1) };
        Assert.False(kept.Continues(sameShape, (ExecutionStartedEvent)history[1]));
    }

    [Fact]
    public void Execute_OrchestrationFinished_KeepsNoSession()
    {
        var executor = new OrchestrationExecutor(
            new DurableTaskRegistry().AddOrchestratorFunc<object?, string>("Quick", (_, _) => Task.FromResult("done")),
            DataConverter.Default);

        OrchestrationExecutionResult result = executor.Execute(InstanceId, [], [Start("Quick")], T0);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, result.State!.Status);
        Assert.Null(result.Session);
    }

    [Fact(Timeout = 60_000)]
    public async Task Worker_KeptOrchestrationWhoseLockWasLost_IsReplayedFromTheStoredHistory()
    {
        var time = new FakeTimeProvider(T0);
        await using var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory(time));
        var client = new DurableTaskClient(backend, new DurableTaskClientOptions { TimeProvider = time, MaxPollingInterval = TimeSpan.FromMilliseconds(50) });
        var registry = new DurableTaskRegistry().AddOrchestratorFunc<object?, int>("Collect", async (ctx, _) =>
        {
            int x = await ctx.WaitForExternalEvent<int>("x");
            int y = await ctx.WaitForExternalEvent<int>("y");
            return (x * 10) + y;
        });
        using var holdCommit = new ManualResetEventSlim(false);
        using var commitHeld = new ManualResetEventSlim(false);
        int holdNext = 0;
        var options = new DurableTaskWorkerOptions
        {
            TimeProvider = time,
            MaxPollingInterval = TimeSpan.FromMilliseconds(50),
            OrchestrationLockTimeout = TimeSpan.FromMinutes(1),

            // One episode at a time: while A's episode stalls, A cannot take the expired lock itself.
            MaxConcurrentOrchestrations = 1,
            OnCheckpointStage = (stage, _) =>
            {
                if (stage == CheckpointStage.BeforeCommit && Interlocked.Exchange(ref holdNext, 0) == 1)
                {
                    commitHeld.Set();
                    holdCommit.Wait(TestWait.DefaultTimeout);
                }
            },
        };
        await using var a = new DurableTaskWorker(backend, registry, options);
        await a.StartAsync(default);
        string id = await client.ScheduleNewOrchestrationInstanceAsync("Collect");
        await TestWait.EventuallyAsync(() => a.CachedOrchestrations == 1, because: "worker A keeps the instance after its first episode");

        // A continues its kept orchestration with x, then stalls before committing while its lock expires.
        Volatile.Write(ref holdNext, 1);
        await client.RaiseEventAsync(id, "x", 1);
        Assert.True(commitHeld.Wait(TestWait.DefaultTimeout), "worker A never reached its commit");
        Assert.Equal(1, a.EpisodesResumed);
        time.Advance(TimeSpan.FromMinutes(2));

        // Worker B takes the expired lock and commits the same episode with its own clock reading.
        await using (var b = new DurableTaskWorker(backend, registry, options with { OnCheckpointStage = null, MaxCachedOrchestrations = 0 }))
        {
            await b.StartAsync(default);
            await TestWait.EventuallyAsync(
                async () => (await client.GetHistoryAsync(id)).OfType<EventRaisedEvent>().Any(),
                because: "worker B commits the episode with x");
            await b.StopAsync(default);
        }

        // A's stale commit is refused; its next episode of the instance must replay B's history.
        holdCommit.Set();
        await client.RaiseEventAsync(id, "y", 2);
        using var cts = new CancellationTokenSource(TestWait.DefaultTimeout);
        OrchestrationMetadata done = await client.WaitForInstanceCompletionAsync(id, cts.Token);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal(12, done.ReadOutputAs<int>());
        Assert.Equal(1, a.EpisodesResumed);
        Assert.Equal(2, a.EpisodesReplayed);
        IReadOnlyList<HistoryEvent> history = await client.GetHistoryAsync(id);
        Assert.Equal(2, history.OfType<EventRaisedEvent>().Count());
        Assert.Equal(3, history.OfType<OrchestratorStartedEvent>().Count());
    }

    [Fact]
    public void SessionCache_CapacityAndIdleTime_EvictLeastRecentlyUsedAndIdle()
    {
        var time = new FakeTimeProvider(T0);
        var cache = new OrchestrationSessionCache(capacity: 2, idleTimeout: TimeSpan.FromSeconds(30), time);
        OrchestrationSession a = SessionFor("a"), b = SessionFor("b"), c = SessionFor("c");

        cache.Put("a", a);
        time.Advance(TimeSpan.FromSeconds(1));
        cache.Put("b", b);
        time.Advance(TimeSpan.FromSeconds(1));
        cache.Put("c", c);

        Assert.Equal(2, cache.Count);
        Assert.Null(cache.TryTake("a"));
        Assert.Same(b, cache.TryTake("b"));
        Assert.Null(cache.TryTake("b"));

        time.Advance(TimeSpan.FromSeconds(30));
        cache.EvictIdle();
        Assert.Equal(0, cache.Count);
        Assert.Null(cache.TryTake("c"));
    }

    [Fact]
    public void WorkerOptions_NegativeCacheSizeOrZeroIdleTime_Refused()
    {
        var backend = new Sqlite.SqliteOrchestrationBackend(Sqlite.SqliteOrchestrationBackendOptions.InMemory());
        Assert.Throws<ArgumentOutOfRangeException>(() => new DurableTaskWorker(backend, new DurableTaskRegistry(), new DurableTaskWorkerOptions { MaxCachedOrchestrations = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DurableTaskWorker(backend, new DurableTaskRegistry(), new DurableTaskWorkerOptions { CachedOrchestrationIdleTimeout = TimeSpan.Zero }));
    }

    private static OrchestrationSession SessionFor(string id)
    {
        var executor = new OrchestrationExecutor(Registry(), DataConverter.Default);
        return executor.Execute(id, [], [Start() with { InstanceId = id }], T0).Session!;
    }

    /// <summary>
    /// Runs the probe to the end the way a worker would, one message per episode (activities answered at once,
    /// timers fired at once, the event raised when nothing else is queued), the history passed through the
    /// persisted format between episodes. Returns every episode's new events, outbox and state, as stored.
    /// </summary>
    private static List<string> Drive(bool keepSessions, out int episodes, out int resumes)
    {
        var executor = new OrchestrationExecutor(Registry(), DataConverter.Default);
        var recorded = new List<string>();
        var history = new List<HistoryEvent>();
        var queue = new Queue<TaskMessage>([Start()]);
        OrchestrationSession? session = null;
        DateTimeOffset now = T0;
        int raised = 0;
        episodes = 0;
        resumes = 0;
        while (episodes < 100)
        {
            if (queue.Count == 0)
            {
                if (raised >= 2)
                {
                    break;
                }

                raised++;
                string id = $"event-{raised}";
                queue.Enqueue(new TaskMessage { MessageId = id, InstanceId = InstanceId, Event = new EventRaisedEvent { Timestamp = now, Name = "go", Input = $"{raised}", MessageId = id } });
            }

            now = now.AddSeconds(1);
            OrchestrationExecutionResult result = executor.Execute(InstanceId, RoundTrip(history), [queue.Dequeue()], now, keepSessions ? session : null);
            if (!result.HasWork)
            {
                continue;
            }

            episodes++;
            resumes += result.Resumed ? 1 : 0;
            session = result.Session;
            if (result.ReplaceHistory)
            {
                history.Clear();
            }

            history.AddRange(result.NewEvents);
            recorded.Add(HistorySerializer.SerializeHistory(result.NewEvents));
            recorded.AddRange(result.Outbox.Select(HistorySerializer.Serialize));
            recorded.Add(System.Text.Json.JsonSerializer.Serialize(result.State));
            foreach (TaskMessage m in result.Outbox)
            {
                queue.Enqueue(m.Event switch
                {
                    TaskScheduledEvent t => Completion(t, DataConverter.Default.Serialize($"{t.Name}({t.Input})")!),
                    _ => m,
                });
            }

            if (result.State!.Status != OrchestrationRuntimeStatus.Running && result.State.Status != OrchestrationRuntimeStatus.ContinuedAsNew)
            {
                break;
            }
        }

        Assert.Equal(OrchestrationRuntimeStatus.Completed, history.OfType<ExecutionCompletedEvent>().Single().Status);
        return recorded;
    }

    private static List<HistoryEvent> RoundTrip(IEnumerable<HistoryEvent> events) =>
        [.. HistorySerializer.DeserializeHistory(HistorySerializer.SerializeHistory(events))];

    private static TaskMessage Start(string name = "Probe") => new()
    {
        MessageId = $"{InstanceId}|start",
        InstanceId = InstanceId,
        Event = new ExecutionStartedEvent { Timestamp = T0, Name = name, InstanceId = InstanceId, ExecutionId = "e1", Input = "0" },
    };

    private static TaskMessage Completion(TaskScheduledEvent t, string result) => new()
    {
        MessageId = $"result|{t.EventId}|{t.Input}",
        InstanceId = InstanceId,
        Event = new TaskCompletedEvent { Timestamp = T0, TaskScheduledId = t.EventId, Result = result },
    };

    /// <summary>Everything a kept run must carry across episodes: results, fan-out, ids, time, status, a timer, events, ContinueAsNew.</summary>
    private static DurableTaskRegistry Registry() => new DurableTaskRegistry()
        .AddOrchestratorFunc<int, string>("Probe", async (ctx, round) =>
        {
            var log = new List<string> { $"round {round} at {ctx.CurrentUtcDateTime:O}", ctx.NewGuid().ToString("N") };
            log.Add(await ctx.CallActivityAsync<string>("A", $"{round}"));
            ctx.SetCustomStatus(new { step = 1, round });
            string[] fan = await Task.WhenAll(Enumerable.Range(0, 3).Select(i => ctx.CallActivityAsync<string>("B", $"{round}.{i}")));
            log.AddRange(fan);
            await ctx.CreateTimer(ctx.CurrentUtcDateTime.AddMinutes(1), CancellationToken.None);
            log.Add($"timer at {ctx.CurrentUtcDateTime:O}, {ctx.NewGuid():N}");
            int go = await ctx.WaitForExternalEvent<int>("go");
            ctx.SetCustomStatus(new { step = 2, round, go });
            log.Add(await ctx.CallActivityAsync<string>("C", $"{go}"));
            if (round == 0)
            {
                ctx.ContinueAsNew(1);
                return string.Empty;
            }

            return string.Join(";", log);
        });
}

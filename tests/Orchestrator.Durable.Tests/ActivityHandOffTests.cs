using Microsoft.Extensions.Time.Testing;
using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.Core;
using Orchestrator.Durable.History;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;
using Orchestrator.Testing;

namespace Orchestrator.Durable.Tests;

/// <summary>
/// The SQLite backend hands the activities an episode schedules to the dispatching worker, locked, in the dispatch
/// itself: no fetch round trip, and nothing lost if that worker dies before running them.
/// </summary>
public class ActivityHandOffTests
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact(Timeout = 30_000)]
    public async Task DispatchOutbox_EpisodeSchedulesActivities_ReturnsThemLockedAndAFetchFindsNothing()
    {
        var time = new FakeTimeProvider(T0);
        await using var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory(time));
        await backend.CreateIfNotExistsAsync(default);
        var client = new DurableTaskClient(backend, new DurableTaskClientOptions { TimeProvider = time });
        string id = await client.ScheduleNewOrchestrationInstanceAsync("Fan");
        OrchestrationWorkItem item = await CommitFirstEpisodeAsync(backend, id, time);

        IReadOnlyList<ActivityWorkItem> handed = await ((IActivityHandOff)backend).DispatchOutboxAsync(item, maxActivities: 2, TimeSpan.FromMinutes(1), default);
        await backend.ReleaseOrchestrationWorkItemAsync(item, [.. item.Messages.Select(m => m.MessageId)], default);

        // Two of the three handed off (the worker had two free slots), locked like a fetch locks them; the third queued.
        Assert.Equal(2, handed.Count);
        Assert.All(handed, a => Assert.Equal(1, a.DequeueCount));
        Assert.Equal(["A", "A"], handed.Select(a => a.Event.Name));
        Assert.Equal(3, (await backend.CountRowsAsync(default))["tasks"]);
        ActivityWorkItem? fetched = await backend.LockNextActivityWorkItemAsync(TimeSpan.FromMinutes(1), default);
        Assert.NotNull(fetched);
        Assert.DoesNotContain(fetched.MessageId, handed.Select(a => a.MessageId));
        Assert.Null(await backend.LockNextActivityWorkItemAsync(TimeSpan.FromMinutes(1), default));

        // The worker that held them died: once their locks expire, any worker fetches them (a second delivery).
        time.Advance(TimeSpan.FromMinutes(2));
        var refetched = new List<ActivityWorkItem>();
        while (await backend.LockNextActivityWorkItemAsync(TimeSpan.FromMinutes(1), default) is { } again)
        {
            refetched.Add(again);
        }

        Assert.Equal(handed.Select(a => a.MessageId).Concat([fetched.MessageId]).Order(), refetched.Select(a => a.MessageId).Order());
        Assert.All(refetched.Where(r => handed.Any(h => h.MessageId == r.MessageId)), r => Assert.Equal(2, r.DequeueCount));
    }

    [Fact(Timeout = 30_000)]
    public async Task DispatchOutbox_RowsAlreadyDispatched_HandsNothingOffTwice()
    {
        var time = new FakeTimeProvider(T0);
        await using var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory(time));
        await backend.CreateIfNotExistsAsync(default);
        var client = new DurableTaskClient(backend, new DurableTaskClientOptions { TimeProvider = time });
        string id = await client.ScheduleNewOrchestrationInstanceAsync("Fan");
        OrchestrationWorkItem item = await CommitFirstEpisodeAsync(backend, id, time);
        var outbox = (await backend.ExecuteRawAsync("UPDATE outbox SET data = data", default));

        // A worker that dispatched and died before deleting the outbox rows: a later dispatch finds the tasks there.
        await backend.DispatchOutboxAsync(item, default);
        await backend.ExecuteRawAsync("INSERT INTO outbox (message_id, instance_id, data) SELECT message_id, instance_id, data FROM tasks", default);
        IReadOnlyList<ActivityWorkItem> handed = await ((IActivityHandOff)backend).DispatchOutboxAsync(item, maxActivities: 3, TimeSpan.FromMinutes(1), default);

        Assert.Equal(3, outbox);
        Assert.Empty(handed);
        Assert.Equal(3, (await backend.CountRowsAsync(default))["tasks"]);
        Assert.Equal(0, (await backend.CountRowsAsync(default))["outbox"]);
    }

    [Theory(Timeout = 30_000)]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Worker_CheckpointFailsAfterHandOff_ActivitiesAreAbandonedAndStillRun(bool oneTransaction)
    {
        var time = new FakeTimeProvider(T0);
        await using var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory(time) with { CheckpointInOneTransaction = oneTransaction });
        CheckpointStage failAt = oneTransaction ? CheckpointStage.AfterCheckpoint : CheckpointStage.AfterDispatch;
        var client = new DurableTaskClient(backend, new DurableTaskClientOptions { TimeProvider = time, MaxPollingInterval = TimeSpan.FromMilliseconds(50) });
        int failed = 0;
        int runs = 0;
        await using var worker = new DurableTaskWorker(backend, Registry(() => Interlocked.Increment(ref runs)), new DurableTaskWorkerOptions
        {
            TimeProvider = time,
            MaxPollingInterval = TimeSpan.FromMilliseconds(50),
            OnCheckpointStage = (stage, _) =>
            {
                if (stage == failAt && Interlocked.Exchange(ref failed, 1) == 0)
                {
                    throw new InvalidOperationException("simulated failure after dispatch");
                }
            },
        });
        await worker.StartAsync(default);

        string id = await client.ScheduleNewOrchestrationInstanceAsync("Fan");

        // The activities were handed off and then given back unrun: they run through a normal fetch, with frozen time
        // (no lock expiry). With three steps the episode's consumed start message is delivered again (the release never
        // ran) and dropped as a duplicate; the one transaction had deleted it.
        await TestWait.EventuallyAsync(() => Volatile.Read(ref runs) == 3, because: "the abandoned activities run");
        time.Advance(new DurableTaskWorkerOptions().OrchestrationLockTimeout + TimeSpan.FromSeconds(1));
        using var cts = new CancellationTokenSource(TestWait.DefaultTimeout);
        OrchestrationMetadata done = await client.WaitForInstanceCompletionAsync(id, cts.Token);

        Assert.Equal(1, failed);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal("a0,a1,b", done.ReadOutputAs<string>());
        Assert.Equal(3, (await client.GetHistoryAsync(id)).OfType<TaskCompletedEvent>().Count());
    }

    [Theory(Timeout = 30_000)]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Worker_CheckpointOfEpisodeWithoutActivitiesLosesItsLock_LoggedAsLockLostNotAsAFailure(bool oneTransaction)
    {
        var time = new FakeTimeProvider(T0);
        await using var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory(time) with { CheckpointInOneTransaction = oneTransaction });
        var client = new DurableTaskClient(backend, new DurableTaskClientOptions { TimeProvider = time });
        var registry = new DurableTaskRegistry().AddOrchestratorFunc<object?, int>("Collect", async (ctx, _) =>
            await ctx.WaitForExternalEvent<int>("x") + await ctx.WaitForExternalEvent<int>("y"));
        var events = new System.Collections.Concurrent.ConcurrentQueue<int>();
        using var loggerFactory = new EventIdRecorder(events);
        int stealNext = 0;
        await using var worker = new DurableTaskWorker(backend, registry, new DurableTaskWorkerOptions
        {
            TimeProvider = time,
            MaxPollingInterval = TimeSpan.FromMilliseconds(50),
            OnCheckpointStage = (stage, instanceId) =>
            {
                // Another worker takes the lock while this episode (which schedules no activity) is about to commit.
                if (stage == CheckpointStage.BeforeCommit && Interlocked.Exchange(ref stealNext, 0) == 1)
                {
                    backend.ExecuteRawAsync("UPDATE instances SET lock_owner = 'someone-else' WHERE instance_id = $id", default, ("$id", instanceId)).GetAwaiter().GetResult();
                }
            },
        }, loggerFactory);
        await worker.StartAsync(default);
        string id = await client.ScheduleNewOrchestrationInstanceAsync("Collect");
        await TestWait.EventuallyAsync(async () => (await client.GetInstanceAsync(id))!.RuntimeStatus == OrchestrationRuntimeStatus.Running, because: "the first episode ran");

        Volatile.Write(ref stealNext, 1);
        await client.RaiseEventAsync(id, "x", 1);
        await TestWait.EventuallyAsync(() => events.Contains(1102), because: "the lost lock is logged");

        Assert.DoesNotContain(1103, events); // EpisodeFailed
        Assert.Empty((await client.GetHistoryAsync(id)).OfType<EventRaisedEvent>());
    }

    private static async Task<OrchestrationWorkItem> CommitFirstEpisodeAsync(SqliteOrchestrationBackend backend, string id, TimeProvider time)
    {
        OrchestrationWorkItem item = (await backend.LockNextOrchestrationWorkItemAsync(TimeSpan.FromMinutes(1), default))!;
        Assert.Equal(id, item.InstanceId);
        OrchestrationExecutionResult result = new OrchestrationExecutor(Registry(() => 0), DataConverter.Default)
            .Execute(item.InstanceId, item.History, item.Messages, time.GetUtcNow());
        await backend.CommitCheckpointAsync(item, new OrchestrationCheckpoint { NewEvents = result.NewEvents, Outbox = result.Outbox, State = result.State! }, default);
        return item;
    }

    private static DurableTaskRegistry Registry(Func<int> onRun) => new DurableTaskRegistry()
        .AddActivityFunc<string, string>("A", (_, x) =>
        {
            onRun();
            return x;
        })
        .AddActivityFunc<string, string>("B", (_, x) =>
        {
            onRun();
            return x;
        })
        .AddOrchestratorFunc<object?, string>("Fan", async (ctx, _) =>
        {
            string[] results = await Task.WhenAll(
                ctx.CallActivityAsync<string>("A", "a0"),
                ctx.CallActivityAsync<string>("A", "a1"),
                ctx.CallActivityAsync<string>("B", "b"));
            return string.Join(",", results);
        });
}

/// <summary>Records the event id of every log entry.</summary>
internal sealed class EventIdRecorder(System.Collections.Concurrent.ConcurrentQueue<int> events) : Microsoft.Extensions.Logging.ILoggerFactory, Microsoft.Extensions.Logging.ILogger
{
    public Microsoft.Extensions.Logging.ILogger CreateLogger(string categoryName) => this;

    public void AddProvider(Microsoft.Extensions.Logging.ILoggerProvider provider)
    {
    }

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

    public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        events.Enqueue(eventId.Id);

    public void Dispose()
    {
    }
}

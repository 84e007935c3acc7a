using Microsoft.Extensions.Time.Testing;
using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.Core;
using Orchestrator.Durable.History;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Durable.Tests;

/// <summary>
/// A fetch for an instance whose orchestration the worker keeps in memory checks the stored history against the
/// kept one (execution, length, the last episode's first and last events) instead of reading and parsing all of it,
/// and hands out the kept list only when they match.
/// </summary>
public sealed class KeptHistoryFetchTests
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact(Timeout = 30_000)]
    public async Task LockNext_StoredHistoryIsTheKeptOne_HandsOutTheKeptList()
    {
        await using Fixture f = await Fixture.StartAsync();

        OrchestrationWorkItem item = await f.LockNextAsync();

        Assert.Same(f.Kept.Events, item.History);
        OrchestrationExecutionResult result = f.Executor.Execute(item.InstanceId, item.History, item.Messages, f.Time.GetUtcNow(), f.Session);
        Assert.True(result.Resumed);
    }

    [Fact(Timeout = 30_000)]
    public async Task LockNext_StoredLastEventDiffers_ReadsTheStoredHistory()
    {
        await using Fixture f = await Fixture.StartAsync();
        var stored = (await f.Backend.GetHistoryAsync(f.Id, default))!.ToList();
        HistoryEvent changed = stored[^1] with { Timestamp = T0.AddMinutes(7) };
        await f.Backend.ExecuteRawAsync(
            "UPDATE history SET data = $data WHERE instance_id = $id AND seq = $seq",
            default,
            ("$data", HistorySerializer.Serialize(changed)),
            ("$id", f.Id),
            ("$seq", stored.Count - 1));

        OrchestrationWorkItem item = await f.LockNextAsync();

        Assert.NotSame(f.Kept.Events, item.History);
        Assert.Equal(stored.Count, item.History.Count);
        Assert.Equal(T0.AddMinutes(7), item.History[^1].Timestamp);
        Assert.False(f.Executor.Execute(item.InstanceId, item.History, item.Messages, f.Time.GetUtcNow(), f.Session).Resumed);
    }

    [Fact(Timeout = 30_000)]
    public async Task LockNext_StoredHistoryLonger_ReadsTheStoredHistory()
    {
        await using Fixture f = await Fixture.StartAsync();
        int count = (await f.Backend.GetHistoryAsync(f.Id, default))!.Count;

        // Another worker appended an episode (here: one more event) and its count.
        await f.Backend.ExecuteRawAsync(
            "INSERT INTO history (instance_id, seq, event_type, data) VALUES ($id, $seq, 'OrchestratorStarted', $data)",
            default,
            ("$id", f.Id),
            ("$seq", count),
            ("$data", HistorySerializer.Serialize(new OrchestratorStartedEvent { Timestamp = T0.AddMinutes(1) })));
        await f.Backend.ExecuteRawAsync("UPDATE instances SET history_count = history_count + 1 WHERE instance_id = $id", default, ("$id", f.Id));

        OrchestrationWorkItem item = await f.LockNextAsync();

        Assert.NotSame(f.Kept.Events, item.History);
        Assert.Equal(count + 1, item.History.Count);
        Assert.Equal(f.Kept.Events, item.History.Take(count));
    }

    /// <summary>An instance that ran its first episode (waiting for "go"), checkpointed in one write, with "go" raised.</summary>
    private sealed class Fixture : IAsyncDisposable
    {
        private Fixture(FakeTimeProvider time, SqliteOrchestrationBackend backend, OrchestrationExecutor executor, string id, OrchestrationSession session)
        {
            (this.Time, this.Backend, this.Executor, this.Id, this.Session) = (time, backend, executor, id, session);
        }

        public FakeTimeProvider Time { get; }

        public SqliteOrchestrationBackend Backend { get; }

        public OrchestrationExecutor Executor { get; }

        public string Id { get; }

        public OrchestrationSession Session { get; }

        public KeptHistory Kept => this.Session.Kept;

        public static async Task<Fixture> StartAsync()
        {
            var time = new FakeTimeProvider(T0);
            var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory(time));
            await backend.CreateIfNotExistsAsync(default);
            var client = new DurableTaskClient(backend, new DurableTaskClientOptions { TimeProvider = time });
            string id = await client.ScheduleNewOrchestrationInstanceAsync("Go");
            var registry = new DurableTaskRegistry().AddOrchestratorFunc<object?, string>("Go", (ctx, _) => ctx.WaitForExternalEvent<string>("go"));
            var executor = new OrchestrationExecutor(registry, DataConverter.Default);

            OrchestrationWorkItem first = (await backend.LockNextOrchestrationWorkItemAsync(TimeSpan.FromMinutes(1), default))!;
            OrchestrationExecutionResult result = executor.Execute(first.InstanceId, first.History, first.Messages, time.GetUtcNow());
            await ((IOneWriteCheckpoint)backend).CheckpointAsync(
                first,
                new OrchestrationCheckpoint { NewEvents = result.NewEvents, Outbox = result.Outbox, State = result.State! },
                result.Consumed.Select(m => m.MessageId).ToList(),
                0,
                TimeSpan.FromMinutes(1),
                default);
            await client.RaiseEventAsync(id, "go", "now");
            return new Fixture(time, backend, executor, id, result.Session!);
        }

        public async Task<OrchestrationWorkItem> LockNextAsync()
        {
            IReadOnlyList<OrchestrationWorkItem> items = await ((IBatchWorkItemSource)this.Backend).LockNextOrchestrationWorkItemsAsync(
                8, TimeSpan.FromMinutes(1), id => id == this.Id ? this.Kept : null, default);
            return Assert.Single(items);
        }

        public ValueTask DisposeAsync() => this.Backend.DisposeAsync();
    }
}

using System.Text.Json;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.History;
using Orchestrator.Durable.Sqlite;

namespace Orchestrator.Durable.Tests;

/// <summary>
/// The SQLite backend parses fetched rows off its store thread; unreadable rows must still end in the
/// poison table and leave nothing locked.
/// </summary>
public class SqliteFetchParsingTests
{
    private static readonly TimeSpan Lock = TimeSpan.FromMinutes(1);

    [Fact(Timeout = 30_000)]
    public async Task UnreadableMessage_IsPoisoned_AndTheReadableOnesAreDelivered()
    {
        await using var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory());
        await backend.CreateIfNotExistsAsync(default);
        var client = new DurableTaskClient(backend);
        await client.ScheduleNewOrchestrationInstanceAsync("Any", options: new StartOrchestrationOptions { InstanceId = "a" });
        await backend.ExecuteRawAsync("INSERT INTO inbox (message_id, instance_id, visible_at, data) VALUES ('bad', 'a', 0, 'not json')", default);

        var item = await backend.LockNextOrchestrationWorkItemAsync(Lock, default);

        Assert.NotNull(item);
        Assert.Equal("a", item.InstanceId);
        Assert.Single(item.Messages);
        var rows = await backend.CountRowsAsync(default);
        Assert.Equal(1, rows["poison"]);
        Assert.Equal(1, rows["inbox"]);
    }

    [Fact(Timeout = 30_000)]
    public async Task InstanceWithOnlyUnreadableMessages_IsPoisonedAndUnlocked_AndTheNextInstanceIsFetched()
    {
        await using var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory());
        await backend.CreateIfNotExistsAsync(default);
        var client = new DurableTaskClient(backend);
        await client.ScheduleNewOrchestrationInstanceAsync("Any", options: new StartOrchestrationOptions { InstanceId = "c" });
        await backend.ExecuteRawAsync("UPDATE inbox SET data = 'not json', visible_at = 0 WHERE instance_id = 'c'", default);
        await client.ScheduleNewOrchestrationInstanceAsync("Any", options: new StartOrchestrationOptions { InstanceId = "d" });

        var item = await backend.LockNextOrchestrationWorkItemAsync(Lock, default);

        Assert.NotNull(item);
        Assert.Equal("d", item.InstanceId);
        var rows = await backend.CountRowsAsync(default);
        Assert.Equal(1, rows["poison"]);
        Assert.Equal(0, await backend.ExecuteRawAsync("UPDATE instances SET status = status WHERE instance_id = 'c' AND lock_owner IS NOT NULL", default));
    }

    [Fact(Timeout = 30_000)]
    public async Task UnreadableHistory_FailsTheFetch_AndLeavesTheInstanceUnlocked()
    {
        await using var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory());
        await backend.CreateIfNotExistsAsync(default);
        var client = new DurableTaskClient(backend);
        await client.ScheduleNewOrchestrationInstanceAsync("Any", options: new StartOrchestrationOptions { InstanceId = "h" });
        await backend.ExecuteRawAsync("INSERT INTO history (instance_id, seq, event_type, data) VALUES ('h', 0, 'X', 'not json')", default);

        await Assert.ThrowsAnyAsync<JsonException>(() => backend.LockNextOrchestrationWorkItemAsync(Lock, default));

        Assert.Equal(0, await backend.ExecuteRawAsync("UPDATE instances SET status = status WHERE instance_id = 'h' AND lock_owner IS NOT NULL", default));
        var rows = await backend.CountRowsAsync(default);
        Assert.Equal(1, rows["inbox"]);
    }

    [Fact(Timeout = 30_000)]
    public async Task UnreadableActivityWorkItem_IsPoisoned()
    {
        await using var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory());
        await backend.CreateIfNotExistsAsync(default);
        await backend.ExecuteRawAsync("INSERT INTO tasks (message_id, instance_id, visible_at, data) VALUES ('bad', 'x', 0, 'not json')", default);

        Assert.Null(await backend.LockNextActivityWorkItemAsync(Lock, default));

        var rows = await backend.CountRowsAsync(default);
        Assert.Equal(1, rows["poison"]);
        Assert.Equal(0, rows["tasks"]);
    }

    [Fact(Timeout = 30_000)]
    public async Task BatchFetch_LocksDistinctInstances_EachWithItsOwnToken_OldestFirst()
    {
        await using var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory());
        await backend.CreateIfNotExistsAsync(default);
        var client = new DurableTaskClient(backend);
        foreach (string id in new[] { "i1", "i2", "i3", "i4", "i5" })
        {
            await client.ScheduleNewOrchestrationInstanceAsync("Any", options: new StartOrchestrationOptions { InstanceId = id });
        }

        await client.RaiseEventAsync("i1", "e");

        var first = await backend.LockNextOrchestrationWorkItemsAsync(3, Lock, default);
        var second = await backend.LockNextOrchestrationWorkItemsAsync(3, Lock, default);
        var third = await backend.LockNextOrchestrationWorkItemsAsync(3, Lock, default);

        Assert.Equal(["i1", "i2", "i3"], first.Select(w => w.InstanceId));
        Assert.Equal(2, first[0].Messages.Count);
        Assert.Equal(["i4", "i5"], second.Select(w => w.InstanceId));
        Assert.Empty(third);
        Assert.Equal(5, first.Concat(second).Select(w => w.LockToken).Distinct().Count());
    }

    [Fact(Timeout = 30_000)]
    public async Task BatchActivityFetch_LocksEachItemOnce()
    {
        await using var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory());
        await backend.CreateIfNotExistsAsync(default);
        for (int i = 0; i < 5; i++)
        {
            var m = new TaskMessage
            {
                MessageId = $"x|e|task|{i}",
                InstanceId = "x",
                ExecutionId = "e",
                Event = new TaskScheduledEvent { EventId = i, Name = "A" },
            };
            await backend.ExecuteRawAsync(
                "INSERT INTO tasks (message_id, instance_id, visible_at, data) VALUES ($mid, 'x', 0, $data)",
                default,
                ("$mid", m.MessageId),
                ("$data", HistorySerializer.Serialize(m)));
        }

        var first = await backend.LockNextActivityWorkItemsAsync(3, Lock, default);
        var second = await backend.LockNextActivityWorkItemsAsync(3, Lock, default);

        Assert.Equal([0, 1, 2], first.Select(w => w.Event.EventId));
        Assert.Equal([3, 4], second.Select(w => w.Event.EventId));
        Assert.Empty(await backend.LockNextActivityWorkItemsAsync(3, Lock, default));
        Assert.All(first.Concat(second), w => Assert.Equal(1, w.DequeueCount));
    }

    [Fact(Timeout = 30_000)]
    public async Task CommitAfterTheLockWentToAnotherWorker_IsRefused_AndWritesNothing()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
        await using var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory(time));
        await backend.CreateIfNotExistsAsync(default);
        var client = new DurableTaskClient(backend, new DurableTaskClientOptions { TimeProvider = time });
        await client.ScheduleNewOrchestrationInstanceAsync("Any", options: new StartOrchestrationOptions { InstanceId = "l" });
        var stale = await backend.LockNextOrchestrationWorkItemAsync(Lock, default);
        Assert.NotNull(stale);
        time.Advance(Lock + TimeSpan.FromSeconds(1));
        var current = await backend.LockNextOrchestrationWorkItemAsync(Lock, default);
        Assert.NotNull(current);

        var start = (ExecutionStartedEvent)stale.Messages[0].Event;
        var checkpoint = new Orchestrator.Durable.Backend.OrchestrationCheckpoint
        {
            NewEvents = [start, new OrchestratorStartedEvent { Timestamp = time.GetUtcNow() }],
            Outbox = [],
            State = new Orchestrator.Durable.Core.InstanceState
            {
                InstanceId = "l",
                Name = "Any",
                ExecutionId = start.ExecutionId,
                Status = OrchestrationRuntimeStatus.Running,
            },
        };
        await Assert.ThrowsAsync<Orchestrator.Durable.Backend.WorkItemLockLostException>(() => backend.CommitCheckpointAsync(stale, checkpoint, default));
        Assert.Equal(0, (await backend.CountRowsAsync(default))["history"]);
        Assert.Equal(OrchestrationRuntimeStatus.Pending, (await backend.GetInstanceAsync("l", default))!.RuntimeStatus);

        await backend.CommitCheckpointAsync(current, checkpoint, default);
        Assert.Equal(2, (await backend.CountRowsAsync(default))["history"]);
        Assert.Equal(OrchestrationRuntimeStatus.Running, (await backend.GetInstanceAsync("l", default))!.RuntimeStatus);
    }
}

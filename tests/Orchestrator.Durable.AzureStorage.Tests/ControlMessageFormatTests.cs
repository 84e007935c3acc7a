using Azure.Storage.Queues.Models;
using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.Core;
using Orchestrator.Durable.History;

namespace Orchestrator.Durable.AzureStorage.Tests;

/// <summary>
/// Control-queue bodies are persisted: these fixtures are bodies as written by this and earlier
/// versions, and must keep reading the same way.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class ControlMessageFormatTests(AzuriteFixture azurite)
{
    // Written by every version: one task message per queue message.
    private const string SingleMessageFixture =
        """{"messageId":"i1|e1|result|0","instanceId":"i1","executionId":"e1","event":{"type":"TaskCompleted","eventId":-1,"timestamp":"2030-01-01T00:00:00+00:00","taskScheduledId":0,"result":"42"}}""";

    [Fact]
    public void DeserializeBody_SingleMessageFixture_ReadsOneMessage()
    {
        ControlBody body = AzureStorageOrchestrationBackend.DeserializeBody(SingleMessageFixture);
        TaskMessage m = Assert.Single(body.Messages);
        Assert.False(body.NewInstance);

        Assert.Equal("i1|e1|result|0", m.MessageId);
        Assert.Equal("i1", m.InstanceId);
        Assert.Equal("e1", m.ExecutionId);
        TaskCompletedEvent completed = Assert.IsType<TaskCompletedEvent>(m.Event);
        Assert.Equal(0, completed.TaskScheduledId);
        Assert.Equal("42", completed.Result);
    }

    [Fact]
    public void DeserializeBody_BatchWrittenBySerializeBatch_ReadsMessagesInOrder()
    {
        TaskMessage start = StartMessage("i1", "e2");
        TaskMessage carried = CarriedEvent("i1", "e2", "approval", "\"yes\"");

        string body = AzureStorageOrchestrationBackend.SerializeBatch([start, carried]);
        ControlBody decoded = AzureStorageOrchestrationBackend.DeserializeBody(body);
        IReadOnlyList<TaskMessage> read = decoded.Messages;
        Assert.False(decoded.NewInstance);

        Assert.StartsWith("{\"$batch\":[", body, StringComparison.Ordinal);
        Assert.Equal([start.MessageId, carried.MessageId], read.Select(m => m.MessageId));
        Assert.Equal("e2", Assert.IsType<ExecutionStartedEvent>(read[0].Event).ExecutionId);
        Assert.Equal("\"yes\"", Assert.IsType<EventRaisedEvent>(read[1].Event).Input);
    }

    [Fact]
    public void DeserializeBody_NewInstanceStartFixture_ReadsTheFlag()
    {
        const string fixture =
            """{"$batch":[{"messageId":"i1|e1|start","instanceId":"i1","executionId":"e1","event":{"type":"ExecutionStarted","name":"Loop","instanceId":"i1","executionId":"e1","input":"1","eventId":-1,"timestamp":"2030-01-01T00:00:00+00:00"}}],"instanceId":"i1","newInstance":true}""";

        ControlBody body = AzureStorageOrchestrationBackend.DeserializeBody(fixture);

        Assert.True(body.NewInstance);
        Assert.Equal("e1", Assert.IsType<ExecutionStartedEvent>(Assert.Single(body.Messages).Event).ExecutionId);
        Assert.True(AzureStorageOrchestrationBackend.DeserializeBody(AzureStorageOrchestrationBackend.SerializeBatch(body.Messages, newInstance: true)).NewInstance);
    }

    /// <summary>
    /// Scheduling a new id costs one insert and one send, and its first episode reads nothing; if a
    /// start claims a new instance that has a history after all, the insert-if-absent checkpoint
    /// refuses it and the next episode reads the history.
    /// </summary>
    [Fact(Timeout = 60_000)]
    public async Task NewInstanceStart_NoHistoryRead_AndAFalseClaimIsRefusedByTheCheckpoint()
    {
        await using var backend = new AzureStorageOrchestrationBackend(TestHost.Options(azurite, AzuriteFixture.NewHubName("fresh")) with { PartitionCount = 1, HistoryCacheSize = 0 });
        await backend.CreateIfNotExistsAsync(default);
        var client = new DurableTaskClient(backend);
        string id = await client.ScheduleNewOrchestrationInstanceAsync("Anything", "in");

        OrchestrationWorkItem first = await LockAsync(backend, expectedMessages: 1);
        Assert.Empty(first.History);
        // Point reads: none (the partition scan when the lease is acquired is a query).
        Assert.DoesNotContain("GET Instances(entity)", backend.StorageOperationsByKind.Keys);
        Assert.DoesNotContain("GET History(entity)", backend.StorageOperationsByKind.Keys);
        Assert.Equal(1, backend.StorageOperationsByKind["POST Instances"]);
        await backend.CommitCheckpointAsync(first, RunningCheckpoint(first), default);
        await backend.DispatchOutboxAsync(first, default);
        await backend.ReleaseOrchestrationWorkItemAsync(first, first.Messages.Select(m => m.MessageId).ToList(), default);

        // The same start again, wrongly claiming a new instance (no cache: HistoryCacheSize = 0).
        await backend.ControlQueueFor(id).SendMessageAsync(AzureStorageOrchestrationBackend.SerializeBatch(first.Messages, newInstance: true));
        OrchestrationWorkItem claimed = await LockAsync(backend, expectedMessages: 1);
        Assert.Empty(claimed.History);
        await Assert.ThrowsAsync<WorkItemLockLostException>(() => backend.CommitCheckpointAsync(claimed, RunningCheckpoint(claimed), default));

        OrchestrationWorkItem reread = await LockAsync(backend, expectedMessages: 1);
        Assert.Equal(["OrchestratorStarted", "ExecutionStarted"], reread.History.Select(e => e.EventType));
        Assert.Equal(2, (await backend.GetHistoryAsync(id, default))!.Count);
    }

    [Theory]
    [InlineData("""{"$batch":[]}""")]
    [InlineData("""{"$batch":"not an array"}""")]
    [InlineData("""{"$batch":[{"messageId":"a","instanceId":"i1","event":{"type":"EventRaised","eventId":-1,"timestamp":"2030-01-01T00:00:00+00:00","name":"x"}},{"messageId":"b","instanceId":"i2","event":{"type":"EventRaised","eventId":-1,"timestamp":"2030-01-01T00:00:00+00:00","name":"x"}}]}""")]
    public void DeserializeBody_MalformedBatch_RefusedWithJsonException(string body)
    {
        Assert.ThrowsAny<System.Text.Json.JsonException>(() => AzureStorageOrchestrationBackend.DeserializeBody(body));
    }

    [Fact]
    public void SerializeBatch_MessagesForTwoInstances_Refused()
    {
        Assert.Throws<ArgumentException>(() => AzureStorageOrchestrationBackend.SerializeBatch([StartMessage("i1", "e1"), StartMessage("i2", "e1")]));
    }

    /// <summary>
    /// The cause of the lost carried event under concurrent fetches: a ContinueAsNew start and its
    /// carried events were sent as separate queue messages, so a fetch could hand the new execution
    /// its start alone; an execution that continues at once then finished before the event arrived
    /// and dropped it as stale. They must travel, and be handed out, together.
    /// </summary>
    [Fact(Timeout = 60_000)]
    public async Task DispatchOutbox_ContinueAsNewWithCarriedEvent_OneQueueMessageAndOneWorkItem()
    {
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<int, string>("Loop", async (ctx, count) =>
            {
                if (count == 0)
                {
                    ctx.ContinueAsNew(1);
                    return "continued";
                }

                return await ctx.WaitForExternalEvent<string>("carried");
            });
        var executor = new OrchestrationExecutor(registry, DataConverter.Default);
        await using var backend = new AzureStorageOrchestrationBackend(TestHost.Options(azurite, AzuriteFixture.NewHubName("batch")) with { PartitionCount = 1 });
        await backend.CreateIfNotExistsAsync(default);
        var client = new DurableTaskClient(backend);
        string id = await client.ScheduleNewOrchestrationInstanceAsync("Loop", 0);
        await client.RaiseEventAsync(id, "carried", "kept");

        // First episode: start + event; the orchestrator continues as new without reading the event.
        OrchestrationWorkItem first = await LockAsync(backend, expectedMessages: 2);
        OrchestrationExecutionResult run = executor.Execute(id, first.History, first.Messages, DateTimeOffset.UtcNow);
        Assert.Equal(OrchestrationRuntimeStatus.ContinuedAsNew, run.State!.Status);
        Assert.Equal(2, run.Outbox.Count); // the next start and the carried event
        await backend.CommitCheckpointAsync(first, new OrchestrationCheckpoint { ReplaceHistory = run.ReplaceHistory, NewEvents = run.NewEvents, Outbox = run.Outbox, State = run.State }, default);
        await backend.DispatchOutboxAsync(first, default);

        await backend.ReleaseOrchestrationWorkItemAsync(first, run.Consumed.Select(m => m.MessageId).ToList(), default);

        // One queue message left (the start and event consumed); this worker consumes the partition,
        // so it holds the new one from the send, hidden.
        Assert.Equal(1, (await backend.ControlQueueFor(id).GetPropertiesAsync()).Value.ApproximateMessagesCount);

        // Second episode: the new execution gets its start and the carried event in one work item,
        // both from that one queue message.
        OrchestrationWorkItem second = await LockAsync(backend, expectedMessages: 2);
        Assert.Equal(run.Outbox.Select(m => m.MessageId).Order(StringComparer.Ordinal), second.Messages.Select(m => m.MessageId).Order(StringComparer.Ordinal));
        Assert.NotNull(Assert.Single(((Episode)second.BackendState!).Snapshot.Select(h => h.QueueMessageId).Distinct()));
        OrchestrationExecutionResult next = executor.Execute(id, second.History, second.Messages, DateTimeOffset.UtcNow);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, next.State!.Status);
        Assert.Equal("\"kept\"", next.State.Output);
        Assert.Empty(next.DroppedReasons);
        await backend.CommitCheckpointAsync(second, new OrchestrationCheckpoint { ReplaceHistory = next.ReplaceHistory, NewEvents = next.NewEvents, Outbox = next.Outbox, State = next.State }, default);
        await backend.DispatchOutboxAsync(second, default);
        await backend.ReleaseOrchestrationWorkItemAsync(second, next.Consumed.Select(m => m.MessageId).ToList(), default);

        // Both members consumed: the shared queue message is gone.
        Assert.Equal(0, (await backend.ControlQueueFor(id).GetPropertiesAsync()).Value.ApproximateMessagesCount);
    }

    private static async Task<OrchestrationWorkItem> LockAsync(AzureStorageOrchestrationBackend backend, int expectedMessages)
    {
        OrchestrationWorkItem? item = null;
        await TestWait.EventuallyAsync(
            async () => (item = await backend.LockNextOrchestrationWorkItemAsync(TimeSpan.FromSeconds(30), default)) is not null,
            TimeSpan.FromSeconds(20),
            "a work item");
        Assert.Equal(expectedMessages, item!.Messages.Count);
        return item;
    }

    private static OrchestrationCheckpoint RunningCheckpoint(OrchestrationWorkItem item)
    {
        var start = (ExecutionStartedEvent)item.Messages.Single().Event;
        return new OrchestrationCheckpoint
        {
            NewEvents = [new OrchestratorStartedEvent { Timestamp = DateTimeOffset.UnixEpoch }, start],
            Outbox = [],
            State = new InstanceState { InstanceId = item.InstanceId, Name = start.Name, ExecutionId = start.ExecutionId, Status = OrchestrationRuntimeStatus.Running },
        };
    }

    private static TaskMessage StartMessage(string instanceId, string executionId) => new()
    {
        MessageId = $"{instanceId}|{executionId}|start",
        InstanceId = instanceId,
        ExecutionId = executionId,
        Event = new ExecutionStartedEvent { Timestamp = DateTimeOffset.UnixEpoch, Name = "Loop", InstanceId = instanceId, ExecutionId = executionId, Input = "1" },
    };

    private static TaskMessage CarriedEvent(string instanceId, string executionId, string name, string input) => new()
    {
        MessageId = $"{instanceId}|{executionId}|carry|0",
        InstanceId = instanceId,
        ExecutionId = executionId,
        Event = new EventRaisedEvent { Timestamp = DateTimeOffset.UnixEpoch, Name = name, Input = input, MessageId = $"{instanceId}|{executionId}|carry|0" },
    };
}

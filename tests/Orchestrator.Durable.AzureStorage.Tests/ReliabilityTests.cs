using System.Diagnostics;
using System.Text.Json;
using Azure.Data.Tables;
using Azure.Storage.Queues;
using Azure.Storage.Queues.Models;
using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Core;
using Orchestrator.Durable.History;
using Orchestrator.Durable.Worker;
using Xunit.Abstractions;

namespace Orchestrator.Durable.AzureStorage.Tests;

[Collection(AzuriteCollection.Name)]
public sealed class ReliabilityTests(AzuriteFixture azurite, ITestOutputHelper output)
{
    private static readonly TimeSpan LeaseDuration = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan RenewInterval = TimeSpan.FromMilliseconds(500);

    private AzureStorageOrchestrationBackendOptions ShortLeases(string hub, int partitions) =>
        TestHost.Options(azurite, hub) with { PartitionCount = partitions, LeaseDuration = LeaseDuration, LeaseRenewInterval = RenewInterval };

    [Fact(Timeout = 60_000)]
    public async Task Commit_TwoWorkersRaceForOneInstance_OneWinsOtherLosesLockAndWritesNothing()
    {
        string hub = AzuriteFixture.NewHubName("race");
        await using var a = new AzureStorageOrchestrationBackend(this.ShortLeases(hub, 1) with { WorkerId = "worker-a" });
        await using var b = new AzureStorageOrchestrationBackend(this.ShortLeases(hub, 1) with { WorkerId = "worker-b" });
        await a.CreateIfNotExistsAsync(default);
        await b.CreateIfNotExistsAsync(default);
        var client = new Client.DurableTaskClient(a);
        string id = await client.ScheduleNewOrchestrationInstanceAsync("Anything", "in");

        OrchestrationWorkItem itemA = await LockAsync(a);
        a.Leases.StopRenewing(); // worker A hangs: its lease runs out, its message's visibility (1 s) too
        OrchestrationWorkItem itemB = await LockAsync(b);
        Assert.Equal(id, itemA.InstanceId);
        Assert.Equal(id, itemB.InstanceId);
        Assert.Empty(itemA.History);
        Assert.Empty(itemB.History);

        await b.CommitCheckpointAsync(itemB, Checkpoint(itemB, "from-b", withTimer: false), default);
        await Assert.ThrowsAsync<WorkItemLockLostException>(() => a.CommitCheckpointAsync(itemA, Checkpoint(itemA, "from-a", withTimer: true), default));

        IReadOnlyList<HistoryEvent>? history = await b.GetHistoryAsync(id, default);
        Assert.NotNull(history);
        Assert.Equal(2, history.Count);
        var rows = new List<string>();
        await foreach (TableEntity e in b.HistoryTable.QueryAsync<TableEntity>($"PartitionKey eq '{id}'"))
        {
            rows.Add(e.RowKey);
        }

        Assert.Equal(2, rows.Count); // B's chunk and the sentinel: no chunk or outbox row of A
        Assert.DoesNotContain(rows, r => r.StartsWith('o'));
        Assert.Equal("from-b", (await b.GetInstanceAsync(id, default))!.SerializedCustomStatus);

        // A commit after a successful one, with the loser's stale view, is refused as well.
        await b.ReleaseOrchestrationWorkItemAsync(itemB, itemB.Messages.Select(m => m.MessageId).ToList(), default);
    }

    [Fact(Timeout = 60_000)]
    public async Task Leases_WorkerStopsRenewing_OtherTakesOverWithinBoundAfterFirstStopsConsuming()
    {
        string hub = AzuriteFixture.NewHubName("lease");
        await using var a = new AzureStorageOrchestrationBackend(this.ShortLeases(hub, 4) with { WorkerId = "worker-a" });
        await a.CreateIfNotExistsAsync(default);
        await a.LockNextOrchestrationWorkItemAsync(TimeSpan.FromSeconds(5), default);
        Assert.Equal(4, a.Leases.ConsumablePartitions().Count());

        await using var b = new AzureStorageOrchestrationBackend(this.ShortLeases(hub, 4) with { WorkerId = "worker-b" });
        await b.CreateIfNotExistsAsync(default);
        a.Leases.StopRenewing();
        var sw = Stopwatch.StartNew();
        var takenAt = new TimeSpan?[4];
        while (takenAt.Any(t => t is null))
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), "partitions were not taken over");
            await b.LockNextOrchestrationWorkItemAsync(TimeSpan.FromSeconds(5), default);
            for (int p = 0; p < 4; p++)
            {
                if (takenAt[p] is null && b.Leases.IsConsumable(p))
                {
                    takenAt[p] = sw.Elapsed;
                    Assert.False(a.Leases.IsConsumable(p), $"worker A still consumed partition {p} when B took it");
                }
            }

            await Task.Delay(20);
        }

        TimeSpan last = takenAt.Max()!.Value;
        output.WriteLine($"taken over after {string.Join(", ", takenAt.Select(t => t!.Value.TotalMilliseconds.ToString("F0")))} ms");
        Assert.True(last <= LeaseDuration + RenewInterval + TimeSpan.FromSeconds(1), $"takeover took {last}, bound is {LeaseDuration + RenewInterval} (+1 s slack)");
    }

    [Fact(Timeout = 60_000)]
    public async Task Takeover_WorkerHangsHoldingFetchedMessage_NextOwnerGetsItWithinLeaseBound()
    {
        string hub = AzuriteFixture.NewHubName("held");
        await using var a = new AzureStorageOrchestrationBackend(this.ShortLeases(hub, 1) with { WorkerId = "worker-a" });
        await a.CreateIfNotExistsAsync(default);
        string id = await new Client.DurableTaskClient(a).ScheduleNewOrchestrationInstanceAsync("Anything", "in");

        // A fetches the start under a lock far longer than the lease, then hangs: no lease renewals,
        // no release. Its process still runs, so it would keep the message hidden if it were allowed to.
        OrchestrationWorkItem held = await LockAsync(a, TimeSpan.FromMinutes(5));
        Assert.Equal(id, held.InstanceId);
        a.Leases.StopRenewing();
        var sw = Stopwatch.StartNew();

        await using var b = new AzureStorageOrchestrationBackend(this.ShortLeases(hub, 1) with { WorkerId = "worker-b" });
        await b.CreateIfNotExistsAsync(default);
        OrchestrationWorkItem? taken = null;
        await TestWait.EventuallyAsync(
            async () => (taken = await b.LockNextOrchestrationWorkItemAsync(TimeSpan.FromMinutes(5), default)) is not null,
            TimeSpan.FromSeconds(30),
            "B gets the message A held");

        output.WriteLine($"B got the message after {sw.Elapsed.TotalMilliseconds:F0} ms");
        Assert.Equal(id, taken!.InstanceId);
        Assert.Equal(held.Messages.Select(m => m.MessageId), taken.Messages.Select(m => m.MessageId));
        // Visibility is whole seconds on the service, so allow one more second than the lease bound.
        Assert.True(sw.Elapsed <= LeaseDuration + RenewInterval + TimeSpan.FromSeconds(2), $"took {sw.Elapsed}; bound {LeaseDuration + RenewInterval} (+2 s slack)");
    }

    [Fact(Timeout = 60_000)]
    public async Task Schedule_OnWorkerConsumingThePartition_HeldFromTheSendWithoutPollAndDeletedOnRelease()
    {
        string hub = AzuriteFixture.NewHubName("sendhold");
        await using var a = new AzureStorageOrchestrationBackend(this.ShortLeases(hub, 1) with { WorkerId = "worker-a" });
        await a.CreateIfNotExistsAsync(default);
        Assert.Null(await a.LockNextOrchestrationWorkItemAsync(TimeSpan.FromMinutes(5), default));
        Assert.True(a.Leases.IsConsumable(0));

        string id = await new Client.DurableTaskClient(a).ScheduleNewOrchestrationInstanceAsync("Anything", "in");
        QueueClient queue = a.ControlQueueFor(id);
        Assert.Empty((await queue.PeekMessagesAsync(32)).Value); // sent hidden: no other worker can take it
        Assert.Equal(1, (await queue.GetPropertiesAsync()).Value.ApproximateMessagesCount);

        // (A peek counts as a GET of the messages as well, so count from here.)
        long polls = Polls(a);

        OrchestrationWorkItem? item = await a.LockNextOrchestrationWorkItemAsync(TimeSpan.FromMinutes(5), default);
        Assert.NotNull(item);
        Assert.Equal(id, item.InstanceId);
        Assert.Empty(item.History);
        Assert.Equal(polls, Polls(a)); // handed over from the send, not fetched

        await a.CommitCheckpointAsync(item, Checkpoint(item, "done", withTimer: false), default);
        await a.ReleaseOrchestrationWorkItemAsync(item, item.Messages.Select(m => m.MessageId).ToList(), default);
        Assert.Equal(0, (await queue.GetPropertiesAsync()).Value.ApproximateMessagesCount); // deleted with the send's receipt
        Assert.Equal(OrchestrationRuntimeStatus.Running, (await a.GetInstanceAsync(id, default))!.RuntimeStatus);
    }

    [Fact(Timeout = 60_000)]
    public async Task Takeover_WorkerHangsHoldingMessageItSent_NextOwnerGetsItWithinLeaseBound()
    {
        string hub = AzuriteFixture.NewHubName("senthang");
        await using var a = new AzureStorageOrchestrationBackend(this.ShortLeases(hub, 1) with { WorkerId = "worker-a" });
        await a.CreateIfNotExistsAsync(default);
        Assert.Null(await a.LockNextOrchestrationWorkItemAsync(TimeSpan.FromMinutes(5), default));
        Assert.True(a.Leases.IsConsumable(0));

        // A sends the start to the partition it consumes, so it holds it from the send; then it
        // hangs (no lease renewals, no episode) before running it.
        string id = await new Client.DurableTaskClient(a).ScheduleNewOrchestrationInstanceAsync("Anything", "in");
        a.Leases.StopRenewing();
        var sw = Stopwatch.StartNew();

        await using var b = new AzureStorageOrchestrationBackend(this.ShortLeases(hub, 1) with { WorkerId = "worker-b" });
        await b.CreateIfNotExistsAsync(default);
        OrchestrationWorkItem? taken = null;
        await TestWait.EventuallyAsync(
            async () => (taken = await b.LockNextOrchestrationWorkItemAsync(TimeSpan.FromMinutes(5), default)) is not null,
            TimeSpan.FromSeconds(30),
            "B gets the start A held from its send");

        output.WriteLine($"B got the message after {sw.Elapsed.TotalMilliseconds:F0} ms");
        Assert.Equal(id, taken!.InstanceId);
        Assert.IsType<ExecutionStartedEvent>(Assert.Single(taken.Messages).Event);
        Assert.True(sw.Elapsed <= LeaseDuration + RenewInterval + TimeSpan.FromSeconds(2), $"took {sw.Elapsed}; bound {LeaseDuration + RenewInterval} (+2 s slack)");
    }

    [Fact(Timeout = 60_000)]
    public async Task HeldMessage_EpisodeOutlastsVisibility_NotReceivedAgainAndDeletedOnRelease()
    {
        string hub = AzuriteFixture.NewHubName("keep");
        await using var a = new AzureStorageOrchestrationBackend(this.ShortLeases(hub, 1) with { WorkerId = "worker-a" });
        await a.CreateIfNotExistsAsync(default);
        string id = await new Client.DurableTaskClient(a).ScheduleNewOrchestrationInstanceAsync("Anything", "in");
        OrchestrationWorkItem item = await LockAsync(a, TimeSpan.FromMinutes(5));

        // The episode runs for several visibility periods (1 s each with these leases) while the worker keeps
        // polling; the held message is renewed, so it is never fetched as a new one. The queue's visibility runs on
        // Azurite's real clock, so the test waits (bounded) until the message's visibility was renewed three times.
        long Renewals() => a.StorageOperationsByKind.GetValueOrDefault("PUT control/messages/{id}");
        long before = Renewals();
        await TestWait.EventuallyAsync(
            async () =>
            {
                Assert.Null(await a.LockNextOrchestrationWorkItemAsync(TimeSpan.FromMinutes(5), default));
                return Renewals() - before >= 3;
            },
            TimeSpan.FromSeconds(30),
            "the held message's visibility renewed three times");

        Assert.Empty((await a.ControlQueueFor(id).PeekMessagesAsync(32)).Value); // still hidden
        await a.CommitCheckpointAsync(item, Checkpoint(item, "done", withTimer: false), default);
        await a.ReleaseOrchestrationWorkItemAsync(item, item.Messages.Select(m => m.MessageId).ToList(), default);

        // Deleted with its current receipt, not just hidden again: the queue holds no message at all, visible or not.
        Assert.Equal(0, (await a.ControlQueueFor(id).GetPropertiesAsync()).Value.ApproximateMessagesCount);
        Assert.Null(await a.LockNextOrchestrationWorkItemAsync(TimeSpan.FromMinutes(5), default));
    }

    [Fact(Timeout = 60_000)]
    public async Task Leases_TwoLiveWorkers_SharePartitionsEvenly()
    {
        string hub = AzuriteFixture.NewHubName("share");
        await using var a = new AzureStorageOrchestrationBackend(this.ShortLeases(hub, 4) with { WorkerId = "worker-a" });
        await a.CreateIfNotExistsAsync(default);
        await a.LockNextOrchestrationWorkItemAsync(TimeSpan.FromSeconds(5), default);
        Assert.Equal(4, a.Leases.ConsumablePartitions().Count());
        await using var b = new AzureStorageOrchestrationBackend(this.ShortLeases(hub, 4) with { WorkerId = "worker-b" });
        await b.CreateIfNotExistsAsync(default);
        await TestWait.EventuallyAsync(
            async () =>
            {
                await a.LockNextOrchestrationWorkItemAsync(TimeSpan.FromSeconds(5), default);
                await b.LockNextOrchestrationWorkItemAsync(TimeSpan.FromSeconds(5), default);
                return a.Leases.ConsumablePartitions().Count() == 2 && b.Leases.ConsumablePartitions().Count() == 2;
            },
            TimeSpan.FromSeconds(20));
        Assert.Empty(a.Leases.ConsumablePartitions().Intersect(b.Leases.ConsumablePartitions()));
    }

    [Theory]
    [InlineData(4, 3, new[] { 2, 1, 1 })]
    [InlineData(4, 2, new[] { 2, 2 })]
    [InlineData(2, 3, new[] { 1, 1, 0 })]
    [InlineData(16, 3, new[] { 6, 5, 5 })]
    [InlineData(1, 1, new[] { 1 })]
    public void ShareOf_LiveWorkersOrderedById_FirstRemainderTakeOneMore(int partitions, int workers, int[] expected)
    {
        string[] ids = Enumerable.Range(0, workers).Select(i => $"worker-{(char)('a' + i)}").Reverse().ToArray(); // any order in
        Assert.Equal(expected, ids.Order(StringComparer.Ordinal).Select(id => PartitionLeaseManager.ShareOf(partitions, ids, id)));
        Assert.Equal(partitions, ids.Sum(id => PartitionLeaseManager.ShareOf(partitions, ids, id)));
    }

    [Fact(Timeout = 90_000)]
    public async Task Leases_FourPartitionsThreeWorkers_SplitTwoOneOneThenTwoTwoWhenOneLeaves()
    {
        string hub = AzuriteFixture.NewHubName("bal");
        var workers = new List<AzureStorageOrchestrationBackend>();
        try
        {
            foreach (string id in new[] { "worker-a", "worker-b", "worker-c" })
            {
                var w = new AzureStorageOrchestrationBackend(this.ShortLeases(hub, 4) with { WorkerId = id });
                workers.Add(w);
                await w.CreateIfNotExistsAsync(default);
                await w.LockNextOrchestrationWorkItemAsync(TimeSpan.FromSeconds(5), default); // starts its lease loop
            }

            await TestWait.EventuallyAsync(
                async () =>
                {
                    foreach (AzureStorageOrchestrationBackend w in workers)
                    {
                        await w.LockNextOrchestrationWorkItemAsync(TimeSpan.FromSeconds(5), default);
                    }

                    return workers.Select(w => w.Leases.ConsumablePartitions().Count()).SequenceEqual([2, 1, 1]);
                },
                TimeSpan.FromSeconds(40),
                "4 partitions split 2/1/1 (worker-a first by id)");
            Assert.Equal(4, workers.SelectMany(w => w.Leases.ConsumablePartitions()).Distinct().Count());

            // worker-c leaves (disposing releases its lease and deletes its heartbeat): 2/2.
            await workers[2].DisposeAsync();
            workers.RemoveAt(2);
            await TestWait.EventuallyAsync(
                async () =>
                {
                    foreach (AzureStorageOrchestrationBackend w in workers)
                    {
                        await w.LockNextOrchestrationWorkItemAsync(TimeSpan.FromSeconds(5), default);
                    }

                    return workers.Select(w => w.Leases.ConsumablePartitions().Count()).SequenceEqual([2, 2]);
                },
                TimeSpan.FromSeconds(40),
                "4 partitions split 2/2 after worker-c left");
            Assert.Equal(4, workers.SelectMany(w => w.Leases.ConsumablePartitions()).Distinct().Count());
        }
        finally
        {
            foreach (AzureStorageOrchestrationBackend w in workers)
            {
                await w.DisposeAsync();
            }
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Heartbeats_WorkerDeadForTwoLeaseDurations_RowDeletedLiveOnesKept()
    {
        string hub = AzuriteFixture.NewHubName("beat");
        await using var a = new AzureStorageOrchestrationBackend(this.ShortLeases(hub, 2) with { WorkerId = "worker-a" });
        await a.CreateIfNotExistsAsync(default);
        DateTimeOffset now = DateTimeOffset.UtcNow;
        await a.LeasesTable.AddEntityAsync(new TableEntity(PartitionLeaseManager.WorkerPartition, "dead-worker") { ["ExpiresAt"] = now - TimeSpan.FromHours(1), ["WorkerId"] = "dead-worker" });
        await a.LeasesTable.AddEntityAsync(new TableEntity(PartitionLeaseManager.WorkerPartition, "live-worker") { ["ExpiresAt"] = now + TimeSpan.FromHours(1), ["WorkerId"] = "live-worker" });

        await TestWait.EventuallyAsync(
            async () =>
            {
                await a.LockNextOrchestrationWorkItemAsync(TimeSpan.FromSeconds(5), default);
                return !(await a.LeasesTable.GetEntityIfExistsAsync<TableEntity>(PartitionLeaseManager.WorkerPartition, "dead-worker")).HasValue;
            },
            TimeSpan.FromSeconds(20),
            "the dead worker's heartbeat deleted");
        Assert.True((await a.LeasesTable.GetEntityIfExistsAsync<TableEntity>(PartitionLeaseManager.WorkerPartition, "live-worker")).HasValue);
        Assert.True((await a.LeasesTable.GetEntityIfExistsAsync<TableEntity>(PartitionLeaseManager.WorkerPartition, "worker-a")).HasValue);
    }

    [Fact(Timeout = 60_000)]
    public async Task Poison_MessageArrivesWhileEpisodeRuns_InstanceFailedAfterTheEpisodeLetsGo()
    {
        await using var a = new AzureStorageOrchestrationBackend(TestHost.Options(azurite, AzuriteFixture.NewHubName("poir")) with { PartitionCount = 1 });
        await a.CreateIfNotExistsAsync(default);
        var client = new Client.DurableTaskClient(a);
        string id = await client.ScheduleNewOrchestrationInstanceAsync("Anything", "in");
        OrchestrationWorkItem item = await LockAsync(a, TimeSpan.FromMinutes(1));

        // While the episode runs, an unreadable message for the instance is fetched and poisoned.
        string body = JsonSerializer.Serialize(new { messageId = "bad-during-episode", instanceId = id, @event = new { type = "NoSuchEvent" } });
        await a.ControlQueueFor(id).SendMessageAsync(body);
        await TestWait.EventuallyAsync(
            async () =>
            {
                Assert.Null(await a.LockNextOrchestrationWorkItemAsync(TimeSpan.FromMinutes(1), default));
                return (await a.PoisonQueue.PeekMessagesAsync(10)).Value.Length == 1;
            },
            TimeSpan.FromSeconds(20),
            "the message poisoned");

        await a.CommitCheckpointAsync(item, Checkpoint(item, "running", withTimer: false), default);
        await a.ReleaseOrchestrationWorkItemAsync(item, item.Messages.Select(m => m.MessageId).ToList(), default);

        OrchestrationMetadata m = await TestWait.CompletionAsync(client, id, TimeSpan.FromSeconds(20));
        Assert.Equal(OrchestrationRuntimeStatus.Failed, m.RuntimeStatus);
        Assert.Contains("bad-during-episode", m.FailureDetails!.ErrorMessage, StringComparison.Ordinal);
        Assert.Equal(["OrchestratorStarted", "ExecutionStarted", "OrchestratorStarted", "ExecutionCompleted"], (await client.GetHistoryAsync(id)).Select(e => e.EventType));
    }

    [Fact(Timeout = 60_000)]
    public async Task CreateInstance_SameStartSentAgain_TreatedAsRetryOfOwnInsertNotAsExisting()
    {
        await using TestHost host = await TestHost.StartAsync(TestHost.Options(azurite, AzuriteFixture.NewHubName("retry")), WaitRegistry());
        var start = new TaskMessage
        {
            MessageId = "retried|e1|start",
            InstanceId = "retried",
            ExecutionId = "e1",
            Event = new ExecutionStartedEvent { Timestamp = DateTimeOffset.UtcNow, Name = "Wait", InstanceId = "retried", ExecutionId = "e1", Input = "null" },
        };

        // As when the insert's response is lost and the storage client sends it again.
        await host.Backend.CreateInstanceAsync(start, default);
        await host.Backend.CreateInstanceAsync(start, default);
        var other = start with { MessageId = "retried|e2|start", ExecutionId = "e2", Event = ((ExecutionStartedEvent)start.Event) with { ExecutionId = "e2" } };
        await Assert.ThrowsAsync<OrchestrationAlreadyExistsException>(() => host.Backend.CreateInstanceAsync(other, default));

        await host.Client.WaitForInstanceStartAsync("retried");
        await host.Client.RaiseEventAsync("retried", "Go", "done");
        OrchestrationMetadata m = await TestWait.CompletionAsync(host.Client, "retried");
        Assert.Equal("done", m.ReadOutputAs<string>());
        Assert.Single((await host.Client.GetHistoryAsync("retried")).OfType<ExecutionStartedEvent>());
    }

    [Fact(Timeout = 90_000)]
    public async Task Recovery_WorkerDiesWithActivityInFlight_OtherWorkerCompletesInstance()
    {
        string hub = AzuriteFixture.NewHubName("rec");
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var hanging = new DurableTaskRegistry()
            .AddActivityFunc<int, int>("Work", async (ctx, x) =>
            {
                started.TrySetResult();
                await Task.Delay(Timeout.Infinite, ctx.CancellationToken);
                return x;
            })
            .AddOrchestratorFunc<int, int>("Job", async (ctx, x) => await ctx.CallActivityAsync<int>("Work", x) + 1);
        var healthy = new DurableTaskRegistry()
            .AddActivityFunc<int, int>("Work", (ctx, x) => x * 10)
            .AddOrchestratorFunc<int, int>("Job", async (ctx, x) => await ctx.CallActivityAsync<int>("Work", x) + 1);

        TestHost first = await TestHost.StartAsync(this.ShortLeases(hub, 2) with { WorkerId = "first" }, hanging);
        string id = await first.Client.ScheduleNewOrchestrationInstanceAsync("Job", 4);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(30));

        // The first worker dies: no more renewals, no release; its in-process activity is gone.
        first.Backend.Leases.StopRenewing();
        await first.DisposeAsync();

        await using TestHost second = await TestHost.StartAsync(this.ShortLeases(hub, 2) with { WorkerId = "second" }, healthy);
        var m = await TestWait.CompletionAsync(second.Client, id, TimeSpan.FromSeconds(45));
        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        Assert.Equal(41, m.ReadOutputAs<int>());
    }

    [Fact(Timeout = 60_000)]
    public async Task Poison_MalformedMessage_MovedToPoisonQueueAndInstanceFailedNamingIt()
    {
        await using TestHost host = await TestHost.StartAsync(TestHost.Options(azurite, AzuriteFixture.NewHubName("poim")), WaitRegistry());
        string id = await host.Client.ScheduleNewOrchestrationInstanceAsync("Wait");
        await host.Client.WaitForInstanceStartAsync(id);
        await TestWait.EventuallyAsync(async () => (await host.Client.GetHistoryAsync(id)).Count > 0);
        string body = JsonSerializer.Serialize(new { messageId = "bad-message-1", instanceId = id, @event = new { type = "NoSuchEvent" } });
        SendReceipt sent = (await host.Backend.ControlQueueFor(id).SendMessageAsync(body)).Value;

        var m = await TestWait.CompletionAsync(host.Client, id);
        Assert.Equal(OrchestrationRuntimeStatus.Failed, m.RuntimeStatus);
        Assert.Contains("bad-message-1", m.FailureDetails!.ErrorMessage, StringComparison.Ordinal);
        Assert.Contains(sent.MessageId, m.FailureDetails.ErrorMessage, StringComparison.Ordinal);
        JsonElement poisoned = await SinglePoisonAsync(host.Backend);
        Assert.Equal(sent.MessageId, poisoned.GetProperty("queueMessageId").GetString());
        Assert.Contains("unreadable", poisoned.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Equal(body, poisoned.GetProperty("body").GetString());

        // Plain garbage (no instance to blame) only goes to the poison queue.
        await host.Backend.ControlQueueFor(id).SendMessageAsync("not json at all");
        await TestWait.EventuallyAsync(async () => (await host.Backend.PoisonQueue.PeekMessagesAsync(10)).Value.Length == 2);
    }

    [Fact(Timeout = 60_000)]
    public async Task Poison_MessageDequeuedTooOften_MovedToPoisonQueueAndInstanceFailedNamingIt()
    {
        string hub = AzuriteFixture.NewHubName("poid");
        AzureStorageOrchestrationBackendOptions options = TestHost.Options(azurite, hub) with { MaxDequeueCount = 2 };
        string id;
        await using (TestHost first = await TestHost.StartAsync(options, WaitRegistry()))
        {
            id = await first.Client.ScheduleNewOrchestrationInstanceAsync("Wait");
            await TestWait.EventuallyAsync(async () => (await first.Client.GetHistoryAsync(id)).Count > 0);
        }

        // While no worker runs, an event message is delivered three times without being processed.
        await using var raw = new AzureStorageOrchestrationBackend(options);
        QueueClient queue = raw.ControlQueueFor(id);
        var message = new TaskMessage { MessageId = "event-that-keeps-failing", InstanceId = id, Event = new EventRaisedEvent { Name = "Go", Input = "\"x\"" } };
        await queue.SendMessageAsync(HistorySerializer.Serialize(message));
        for (int i = 0; i < 3; i++)
        {
            QueueMessage got = (await queue.ReceiveMessagesAsync(1, TimeSpan.FromSeconds(30))).Value.Single();
            await queue.UpdateMessageAsync(got.MessageId, got.PopReceipt, visibilityTimeout: TimeSpan.Zero);
        }

        await using TestHost second = await TestHost.StartAsync(options, WaitRegistry());
        var m = await TestWait.CompletionAsync(second.Client, id);
        Assert.Equal(OrchestrationRuntimeStatus.Failed, m.RuntimeStatus);
        Assert.Contains("event-that-keeps-failing", m.FailureDetails!.ErrorMessage, StringComparison.Ordinal);
        Assert.Contains("MaxDequeueCount", m.FailureDetails.ErrorMessage, StringComparison.Ordinal);
        JsonElement poisoned = await SinglePoisonAsync(second.Backend);
        Assert.Equal(4, poisoned.GetProperty("dequeueCount").GetInt64());
        IReadOnlyList<HistoryEvent> history = await second.Client.GetHistoryAsync(id);
        Assert.DoesNotContain(history, e => e is EventRaisedEvent);
    }

    [Fact(Timeout = 60_000)]
    public async Task UnknownInstance_MessageInControlQueue_IsDropped()
    {
        await using TestHost host = await TestHost.StartAsync(TestHost.Options(azurite, AzuriteFixture.NewHubName("ghost")), WaitRegistry());
        var message = new TaskMessage { MessageId = "ghost-1", InstanceId = "ghost", Event = new EventRaisedEvent { Name = "Go" } };
        QueueClient queue = host.Backend.ControlQueueFor("ghost");
        await queue.SendMessageAsync(HistorySerializer.Serialize(message));
        await TestWait.EventuallyAsync(async () => (await queue.GetPropertiesAsync()).Value.ApproximateMessagesCount == 0);
        Assert.Null(await host.Client.GetInstanceAsync("ghost"));
        Assert.Empty((await host.Backend.PoisonQueue.PeekMessagesAsync(10)).Value);
    }

    [Fact(Timeout = 60_000)]
    public async Task CreateIfNotExists_UnreachableAccount_FailsNamingTheSetting()
    {
        int port = FreePort();
        var backend = new AzureStorageOrchestrationBackend(new AzureStorageOrchestrationBackendOptions
        {
            ConnectionString = AzuriteFixture.ConnectionStringFor(port, port, port),
            TaskHubName = "unreachable",
        });
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => backend.CreateIfNotExistsAsync(default));
        Assert.Contains("AzureWebJobsStorage", ex.Message, StringComparison.Ordinal);
        Assert.Contains("unreachable", ex.Message, StringComparison.Ordinal);
        await backend.DisposeAsync();
    }

    [Fact]
    public void Constructor_MalformedConnectionStringOrBadOptions_FailsWithClearMessage()
    {
        var ex = Assert.Throws<ArgumentException>(() => new AzureStorageOrchestrationBackend(new AzureStorageOrchestrationBackendOptions { ConnectionString = "this is not a connection string" }));
        Assert.Contains("AzureWebJobsStorage", ex.Message, StringComparison.Ordinal);
        Assert.Contains("TaskHubName", Assert.Throws<ArgumentException>(() => new AzureStorageOrchestrationBackendOptions { TaskHubName = "my-hub" }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("PartitionCount", Assert.ThrowsAny<ArgumentException>(() => new AzureStorageOrchestrationBackendOptions { PartitionCount = 17 }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("LeaseRenewInterval", Assert.ThrowsAny<ArgumentException>(() => new AzureStorageOrchestrationBackendOptions { LeaseRenewInterval = TimeSpan.FromSeconds(20) }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("AzureWebJobsStorage", Assert.Throws<InvalidOperationException>(() => AzureStorageOrchestrationBackendOptions.FromConfiguration(_ => null, "hub")).Message, StringComparison.Ordinal);
        Assert.Equal("UseDevelopmentStorage=true", AzureStorageOrchestrationBackendOptions.FromConfiguration(k => k == "AzureWebJobsStorage" ? "UseDevelopmentStorage=true" : null, "hub").ConnectionString);
    }

    [Fact(Timeout = 60_000)]
    public async Task CreateIfNotExists_DifferentPartitionCountThanRecorded_FailsNamingBoth()
    {
        string hub = AzuriteFixture.NewHubName("parts");
        await using var four = new AzureStorageOrchestrationBackend(TestHost.Options(azurite, hub) with { PartitionCount = 4 });
        await four.CreateIfNotExistsAsync(default);
        await using var two = new AzureStorageOrchestrationBackend(TestHost.Options(azurite, hub) with { PartitionCount = 2 });
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => two.CreateIfNotExistsAsync(default));
        Assert.Contains("PartitionCount = 4", ex.Message, StringComparison.Ordinal);
        Assert.Contains("PartitionCount = 2", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PartitionOf_IsStableFnv1a()
    {
        // FNV-1a 32 of "a" is 0xE40C292C; placement must never depend on string.GetHashCode.
        Assert.Equal((int)(0xE40C292Cu % 16u), StorageNames.PartitionOf("a", 16));
        Assert.Equal(StorageNames.PartitionOf("instance-42", 4), StorageNames.PartitionOf("instance-42", 4));
    }

    private static DurableTaskRegistry WaitRegistry() => new DurableTaskRegistry()
        .AddOrchestratorFunc<string, string>("Wait", async (ctx, _) => await ctx.WaitForExternalEvent<string>("Go"));

    private static async Task<OrchestrationWorkItem> LockAsync(AzureStorageOrchestrationBackend backend, TimeSpan? lockTimeout = null)
    {
        OrchestrationWorkItem? item = null;
        await TestWait.EventuallyAsync(async () => (item = await backend.LockNextOrchestrationWorkItemAsync(lockTimeout ?? TimeSpan.FromSeconds(1), default)) is not null, TimeSpan.FromSeconds(20));
        return item!;
    }

    private static long Polls(AzureStorageOrchestrationBackend backend) => backend.StorageOperationsByKind.GetValueOrDefault("GET control/messages");

    private static OrchestrationCheckpoint Checkpoint(OrchestrationWorkItem item, string customStatus, bool withTimer)
    {
        var start = (ExecutionStartedEvent)item.Messages.Single().Event;
        DateTimeOffset now = DateTimeOffset.UnixEpoch;
        var events = new List<HistoryEvent> { new OrchestratorStartedEvent { Timestamp = now }, start };
        var outbox = new List<TaskMessage>();
        if (withTimer)
        {
            events.Add(new TimerCreatedEvent { EventId = 0, Timestamp = now, FireAt = now });
            outbox.Add(new TaskMessage { MessageId = "timer", InstanceId = item.InstanceId, ExecutionId = start.ExecutionId, Event = new TimerFiredEvent { TimerId = 0, FireAt = now } });
        }

        return new OrchestrationCheckpoint
        {
            NewEvents = events,
            Outbox = outbox,
            State = new InstanceState { InstanceId = item.InstanceId, Name = start.Name, ExecutionId = start.ExecutionId, Status = OrchestrationRuntimeStatus.Running, CustomStatus = customStatus },
        };
    }

    private static async Task<JsonElement> SinglePoisonAsync(AzureStorageOrchestrationBackend backend)
    {
        PeekedMessage[] peeked = [];
        await TestWait.EventuallyAsync(async () => (peeked = (await backend.PoisonQueue.PeekMessagesAsync(10)).Value).Length > 0);
        return JsonDocument.Parse(Assert.Single(peeked).Body.ToString()).RootElement.Clone();
    }

    private static int FreePort()
    {
        var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        int port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }
}

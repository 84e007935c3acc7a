using Azure.Data.Tables;
using Microsoft.Extensions.Time.Testing;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.Worker;
using Xunit.Abstractions;

namespace Orchestrator.Durable.AzureStorage.Tests;

[Collection(AzuriteCollection.Name)]
public sealed class OrchestrationTests(AzuriteFixture azurite, ITestOutputHelper output)
{
    private static DurableTaskRegistry Registry() => new DurableTaskRegistry()
        .AddActivityFunc<string, string>("Hello", (ctx, name) => $"Hello {name}!")
        .AddActivityFunc<int, int>("Double", (ctx, x) => x * 2)
        .AddActivityFunc<string, string>("Echo", (ctx, s) => s)
        .AddOrchestratorFunc<string, List<string>>("Seq", async (ctx, _) =>
        [
            await ctx.CallActivityAsync<string>("Hello", "Tokyo"),
            await ctx.CallActivityAsync<string>("Hello", "Seattle"),
            await ctx.CallActivityAsync<string>("Hello", "London"),
        ])
        .AddOrchestratorFunc<int, int>("FanOut", async (ctx, n) =>
        {
            int[] r = await Task.WhenAll(Enumerable.Range(1, n).Select(i => ctx.CallActivityAsync<int>("Double", i)));
            return r.Sum();
        })
        .AddOrchestratorFunc<string, string>("WaitEvent", async (ctx, _) =>
        {
            string a = await ctx.WaitForExternalEvent<string>("Go");
            return "got " + a;
        })
        .AddOrchestratorFunc<int, double>("Timer", async (ctx, hours) =>
        {
            DateTime start = ctx.CurrentUtcDateTime;
            await ctx.CreateTimer(TimeSpan.FromHours(hours), CancellationToken.None);
            return (ctx.CurrentUtcDateTime - start).TotalHours;
        })
        .AddOrchestratorFunc<int, int>("Child", async (ctx, x) => await ctx.CallActivityAsync<int>("Double", x) + 1)
        .AddOrchestratorFunc<int, int>("Parent", async (ctx, x) =>
        {
            int a = await ctx.CallSubOrchestratorAsync<int>("Child", x);
            int b = await ctx.CallSubOrchestratorAsync<int>("Child", a);
            return b;
        })
        .AddOrchestratorFunc<int, int>("Counter", async (ctx, n) =>
        {
            int doubled = await ctx.CallActivityAsync<int>("Double", n);
            if (n < 3)
            {
                ctx.ContinueAsNew(n + 1);
                return 0;
            }

            return doubled;
        })
        .AddOrchestratorFunc<string, string>("EchoBig", async (ctx, s) => await ctx.CallActivityAsync<string>("Echo", s) + "!");

    [Fact(Timeout = 60_000)]
    public async Task Sequence_ThreeActivities_CompletesInOrder()
    {
        await using TestHost host = await TestHost.StartAsync(TestHost.Options(azurite, AzuriteFixture.NewHubName("seq")), Registry());
        long before = host.Backend.StorageOperationCount;
        string id = await host.Client.ScheduleNewOrchestrationInstanceAsync("Seq");
        OrchestrationMetadata m = await TestWait.CompletionAsync(host.Client, id);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        Assert.Equal(["Hello Tokyo!", "Hello Seattle!", "Hello London!"], m.ReadOutputAs<List<string>>());
        output.WriteLine($"{azurite.Description}; storage operations: {host.Backend.StorageOperationCount - before}");
        IReadOnlyList<History.HistoryEvent> history = await host.Client.GetHistoryAsync(id);
        Assert.Equal(3, history.OfType<History.TaskCompletedEvent>().Count());
        Assert.IsType<History.ExecutionCompletedEvent>(history[^1]);
    }

    [Fact(Timeout = 90_000)]
    public async Task FanOut_HundredActivities_SumsAllResults()
    {
        await using TestHost host = await TestHost.StartAsync(TestHost.Options(azurite, AzuriteFixture.NewHubName("fan")), Registry());
        string id = await host.Client.ScheduleNewOrchestrationInstanceAsync("FanOut", 100);
        OrchestrationMetadata m = await TestWait.CompletionAsync(host.Client, id);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        Assert.Equal(Enumerable.Range(1, 100).Sum() * 2, m.ReadOutputAs<int>());
        output.WriteLine($"storage operations: {host.Backend.StorageOperationCount}");
    }

    [Fact(Timeout = 60_000)]
    public async Task ExternalEvent_RaisedWhileWaiting_Completes()
    {
        await using TestHost host = await TestHost.StartAsync(TestHost.Options(azurite, AzuriteFixture.NewHubName("evt")), Registry());
        string id = await host.Client.ScheduleNewOrchestrationInstanceAsync("WaitEvent");
        await host.Client.WaitForInstanceStartAsync(id);
        await host.Client.RaiseEventAsync(id, "Go", "tea");
        OrchestrationMetadata m = await TestWait.CompletionAsync(host.Client, id);
        Assert.Equal("got tea", m.ReadOutputAs<string>());
        await Assert.ThrowsAsync<OrchestrationNotRunningException>(() => host.Client.RaiseEventAsync(id, "Go", "again"));
        await Assert.ThrowsAsync<OrchestrationNotFoundException>(() => host.Client.RaiseEventAsync("no-such-instance", "Go", "x"));
    }

    [Fact(Timeout = 60_000)]
    public async Task Timer_FakeClockAdvanced_FiresOnlyAfterFireTime()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var options = TestHost.Options(azurite, AzuriteFixture.NewHubName("tmr"), clock) with { MaxMessageVisibilityDelay = TimeSpan.FromSeconds(1) };
        await using TestHost host = await TestHost.StartAsync(options, Registry());
        string id = await host.Client.ScheduleNewOrchestrationInstanceAsync("Timer", 2);
        await TestWait.EventuallyAsync(async () => (await host.Client.GetHistoryAsync(id)).OfType<History.TimerCreatedEvent>().Any());

        // The timer surfaces and is hidden again while the fake clock says it is not due.
        await this.WaitForRequeuesAsync(host.Backend, 2);
        Assert.Equal(OrchestrationRuntimeStatus.Running, (await host.Client.GetInstanceAsync(id))!.RuntimeStatus);
        clock.Advance(TimeSpan.FromMinutes(119));
        await this.WaitForRequeuesAsync(host.Backend, 2);
        Assert.Equal(OrchestrationRuntimeStatus.Running, (await host.Client.GetInstanceAsync(id))!.RuntimeStatus);
        clock.Advance(TimeSpan.FromMinutes(2));
        OrchestrationMetadata m = await TestWait.CompletionAsync(host.Client, id);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        Assert.InRange(m.ReadOutputAs<double>(), 2, 2 + (2.0 / 60));
    }

    [Fact(Timeout = 60_000)]
    public async Task Timer_BeyondSevenDays_FiresAfterReenqueues()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var options = TestHost.Options(azurite, AzuriteFixture.NewHubName("long"), clock) with { MaxMessageVisibilityDelay = TimeSpan.FromSeconds(1) };
        await using TestHost host = await TestHost.StartAsync(options, Registry());
        string id = await host.Client.ScheduleNewOrchestrationInstanceAsync("Timer", 24 * 10);
        await TestWait.EventuallyAsync(async () => (await host.Client.GetHistoryAsync(id)).OfType<History.TimerCreatedEvent>().Any());
        clock.Advance(TimeSpan.FromDays(7));
        await this.WaitForRequeuesAsync(host.Backend, 2);
        Assert.Equal(OrchestrationRuntimeStatus.Running, (await host.Client.GetInstanceAsync(id))!.RuntimeStatus);
        clock.Advance(TimeSpan.FromDays(3) - TimeSpan.FromMinutes(1));
        await this.WaitForRequeuesAsync(host.Backend, 2);
        Assert.Equal(OrchestrationRuntimeStatus.Running, (await host.Client.GetInstanceAsync(id))!.RuntimeStatus);
        clock.Advance(TimeSpan.FromMinutes(2));
        OrchestrationMetadata m = await TestWait.CompletionAsync(host.Client, id);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        Assert.InRange(m.ReadOutputAs<double>(), 240, 240 + (2.0 / 60));
    }

    [Fact(Timeout = 60_000)]
    public async Task SubOrchestration_TwoChildren_ResultReturnedToParent()
    {
        await using TestHost host = await TestHost.StartAsync(TestHost.Options(azurite, AzuriteFixture.NewHubName("sub")), Registry());
        string id = await host.Client.ScheduleNewOrchestrationInstanceAsync("Parent", 5);
        OrchestrationMetadata m = await TestWait.CompletionAsync(host.Client, id);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        Assert.Equal(((5 * 2) + 1) * 2 + 1, m.ReadOutputAs<int>());
        IReadOnlyList<OrchestrationMetadata> children = await host.Client.QueryInstancesAsync(new Backend.InstanceQuery { InstanceIdPrefix = id + ":" });
        Assert.All(children, c => Assert.Equal(id, c.ParentInstanceId));
        IReadOnlyList<OrchestrationMetadata> all = await host.Client.QueryInstancesAsync(new Backend.InstanceQuery { Statuses = [OrchestrationRuntimeStatus.Completed] });
        Assert.Equal(3, all.Count);
    }

    [Fact(Timeout = 60_000)]
    public async Task SubOrchestration_ChildFinishes_RowPendingFlagClearedWithItsOutboxNotByASeparateRequest()
    {
        await using TestHost host = await TestHost.StartAsync(TestHost.Options(azurite, AzuriteFixture.NewHubName("subflag")), Registry());
        string id = await host.Client.ScheduleNewOrchestrationInstanceAsync("Parent", 5);
        await TestWait.CompletionAsync(host.Client, id);
        IReadOnlyList<OrchestrationMetadata> children = await host.Client.QueryInstancesAsync(new Backend.InstanceQuery { InstanceIdPrefix = id + ":" });
        Assert.Equal(2, children.Count);
        await TestWait.EventuallyAsync(async () => !await RowPendingAsync(host.Backend, id), TimeSpan.FromSeconds(10), "the parent's flag is cleared");

        foreach (OrchestrationMetadata child in children)
        {
            Assert.Equal(OrchestrationRuntimeStatus.Completed, child.RuntimeStatus);
            Assert.False(await RowPendingAsync(host.Backend, child.InstanceId));
            await foreach (TableEntity row in host.Backend.HistoryTable.QueryAsync<TableEntity>($"PartitionKey eq '{StorageNames.EscapeKey(child.InstanceId)}'", select: ["RowKey"]))
            {
                Assert.False(row.RowKey.StartsWith('o'), $"outbox row {row.RowKey} of {child.InstanceId} left behind");
            }
        }

        // One flag-clearing request in all: the parent's final checkpoint has no outbox; each child's
        // (its result for the parent) is deleted in the same transaction that clears its flag.
        Assert.Equal(1, host.Backend.StorageOperationsByKind.GetValueOrDefault("PATCH History(entity)"));
    }

    private static async Task<bool> RowPendingAsync(AzureStorageOrchestrationBackend backend, string instanceId) =>
        (await backend.HistoryTable.GetEntityAsync<TableEntity>(StorageNames.EscapeKey(instanceId), "~sentinel")).Value.GetBoolean("RowPending") ?? false;

    [Fact(Timeout = 60_000)]
    public async Task ContinueAsNew_CountsToThree_CompletesWithLastExecution()
    {
        await using TestHost host = await TestHost.StartAsync(TestHost.Options(azurite, AzuriteFixture.NewHubName("can")), Registry());
        string id = await host.Client.ScheduleNewOrchestrationInstanceAsync("Counter", 0);
        OrchestrationMetadata m = await TestWait.CompletionAsync(host.Client, id);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        Assert.Equal(6, m.ReadOutputAs<int>());
        Assert.Equal("3", m.SerializedInput);
        IReadOnlyList<History.HistoryEvent> history = await host.Client.GetHistoryAsync(id);
        Assert.Single(history.OfType<History.ExecutionStartedEvent>());
        Assert.Equal(m.ExecutionId, history.OfType<History.ExecutionStartedEvent>().Single().ExecutionId);
    }

    [Fact(Timeout = 60_000)]
    public async Task HistoryCache_WaitingInstance_NextEpisodeReadsNoHistoryAndFinishedOneIsEvicted()
    {
        await using TestHost host = await TestHost.StartAsync(TestHost.Options(azurite, AzuriteFixture.NewHubName("cache")), Registry());
        string id = await host.Client.ScheduleNewOrchestrationInstanceAsync("WaitEvent");
        await TestWait.EventuallyAsync(async () => (await host.Client.GetHistoryAsync(id)).Count > 0);

        // The committed sentinel's ETag came back from the transaction, so the history stays cached.
        Assert.Equal(1, host.Backend.CachedHistories);
        await host.Client.RaiseEventAsync(id, "Go", "now");
        await TestWait.CompletionAsync(host.Client, id);
        Assert.Equal(0, host.Backend.CachedHistories);
    }

    [Fact(Timeout = 60_000)]
    public async Task Terminate_WaitingInstance_IsTerminatedWithReason()
    {
        await using TestHost host = await TestHost.StartAsync(TestHost.Options(azurite, AzuriteFixture.NewHubName("term")), Registry());
        string id = await host.Client.ScheduleNewOrchestrationInstanceAsync("WaitEvent");
        await host.Client.WaitForInstanceStartAsync(id);
        await host.Client.TerminateInstanceAsync(id, "enough");
        OrchestrationMetadata m = await TestWait.CompletionAsync(host.Client, id);
        Assert.Equal(OrchestrationRuntimeStatus.Terminated, m.RuntimeStatus);
        Assert.Contains("enough", m.SerializedOutput, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task CreateInstance_SameIdRunningThenFinished_RefusedThenReplaced()
    {
        await using TestHost host = await TestHost.StartAsync(TestHost.Options(azurite, AzuriteFixture.NewHubName("dup")), Registry());
        const string id = "fixed/id#1?";
        await host.Client.ScheduleNewOrchestrationInstanceAsync("WaitEvent", options: new StartOrchestrationOptions { InstanceId = id });
        await host.Client.WaitForInstanceStartAsync(id);
        await Assert.ThrowsAsync<OrchestrationAlreadyExistsException>(() => host.Client.ScheduleNewOrchestrationInstanceAsync("WaitEvent", options: new StartOrchestrationOptions { InstanceId = id }));
        await host.Client.RaiseEventAsync(id, "Go", "one");
        Assert.Equal("got one", (await TestWait.CompletionAsync(host.Client, id)).ReadOutputAs<string>());

        await host.Client.ScheduleNewOrchestrationInstanceAsync("Seq", options: new StartOrchestrationOptions { InstanceId = id });
        OrchestrationMetadata m = await TestWait.CompletionAsync(host.Client, id);
        Assert.Equal("Seq", m.Name);
        Assert.Equal(3, m.ReadOutputAs<List<string>>()!.Count);
        IReadOnlyList<History.HistoryEvent> history = await host.Client.GetHistoryAsync(id);
        Assert.Equal("Seq", history.OfType<History.ExecutionStartedEvent>().Single().Name);
    }

    [Theory(Timeout = 90_000)]
    [InlineData(20_000)] // 80,000 characters: queue message and instance fields in blobs, history split across properties
    [InlineData(150_000)] // 600,000 characters: the history chunk itself goes to a blob too
    public async Task LargePayload_InputAndOutputOver64KiB_RoundTripThroughBlobs(int quarterLength)
    {
        await using TestHost host = await TestHost.StartAsync(TestHost.Options(azurite, AzuriteFixture.NewHubName("big")), Registry());
        string big = string.Concat(Enumerable.Range(0, quarterLength).Select(i => (char)('a' + (i % 26)) + "xyz"));
        string id = await host.Client.ScheduleNewOrchestrationInstanceAsync("EchoBig", big);
        OrchestrationMetadata m = await TestWait.CompletionAsync(host.Client, id);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        Assert.Equal(big, m.ReadInputAs<string>());
        Assert.Equal(big + "!", m.ReadOutputAs<string>());
        Assert.Contains(
            await ListBlobsAsync(host.Backend),
            b => b.StartsWith("messages/" + id + "/", StringComparison.Ordinal) || b.StartsWith("instances/" + id + "/", StringComparison.Ordinal));
        IReadOnlyList<History.HistoryEvent> history = await host.Client.GetHistoryAsync(id);
        Assert.Equal(big, history.OfType<History.TaskScheduledEvent>().Single().Input!.Trim('"'));
        if (big.Length > 400_000)
        {
            Assert.Contains(await ListBlobsAsync(host.Backend), b => b.StartsWith("history/" + id + "/", StringComparison.Ordinal));
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Purge_CompletedInstanceWithBlobs_RemovesRowsAndBlobs()
    {
        await using TestHost host = await TestHost.StartAsync(TestHost.Options(azurite, AzuriteFixture.NewHubName("purge")), Registry());
        string big = new('p', 100_000);
        string id = await host.Client.ScheduleNewOrchestrationInstanceAsync("EchoBig", big);
        await TestWait.CompletionAsync(host.Client, id);
        string running = await host.Client.ScheduleNewOrchestrationInstanceAsync("WaitEvent");
        await host.Client.WaitForInstanceStartAsync(running);
        Assert.NotEmpty(await ListBlobsAsync(host.Backend));
        await Assert.ThrowsAsync<OrchestrationNotRunningException>(() => host.Client.PurgeInstanceAsync(running));

        Assert.True(await host.Client.PurgeInstanceAsync(id));
        Assert.Null(await host.Client.GetInstanceAsync(id));
        Assert.False(await host.Client.PurgeInstanceAsync(id));
        int rows = 0;
        await foreach (var _ in host.Backend.HistoryTable.QueryAsync<Azure.Data.Tables.TableEntity>($"PartitionKey eq '{id}'"))
        {
            rows++;
        }

        Assert.Equal(0, rows);
        Assert.DoesNotContain(await ListBlobsAsync(host.Backend), b => b.Contains("/" + id + "/", StringComparison.Ordinal));
        Assert.NotNull(await host.Client.GetInstanceAsync(running));
    }

    [Fact(Timeout = 60_000)]
    public async Task Purge_FinishedChildWithUndispatchedResult_RefusedUntilDispatched()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        int crashed = 0;
        var workerOptions = new DurableTaskWorkerOptions
        {
            TimeProvider = clock,
            MaxPollingInterval = TimeSpan.FromMilliseconds(100),
            OnCheckpointStage = (stage, instanceId) =>
            {
                // The child's final checkpoint (its result for the parent in the outbox) commits; the worker dies before dispatch.
                if (stage == CheckpointStage.AfterCommit && instanceId == "child" && Interlocked.Exchange(ref crashed, 1) == 0)
                {
                    throw new InvalidOperationException("simulated crash after commit");
                }
            },
        };
        var registry = new DurableTaskRegistry()
            .AddOrchestratorFunc<int, int>("Leaf", (ctx, x) => Task.FromResult(x + 1))
            .AddOrchestratorFunc<int, int>("Root", (ctx, x) => ctx.CallSubOrchestratorAsync<int>("Leaf", x, new SubOrchestrationOptions { InstanceId = "child" }));
        await using TestHost host = await TestHost.StartAsync(TestHost.Options(azurite, AzuriteFixture.NewHubName("purgeob"), clock), registry, workerOptions);
        string parent = await host.Client.ScheduleNewOrchestrationInstanceAsync("Root", 1);
        await TestWait.EventuallyAsync(async () => (await host.Client.GetInstanceAsync("child"))?.IsCompleted == true);

        await Assert.ThrowsAsync<OrchestrationNotRunningException>(() => host.Client.PurgeInstanceAsync("child"));
        Assert.Equal(0, await host.Client.PurgeInstancesAsync(new Backend.PurgeInstancesFilter()));

        // The lock of the dead episode lapses; the next episode finds the outbox and sends the result.
        clock.Advance(workerOptions.OrchestrationLockTimeout + TimeSpan.FromSeconds(1));
        OrchestrationMetadata m = await TestWait.CompletionAsync(host.Client, parent);
        Assert.Equal(2, m.ReadOutputAs<int>());
        await TestWait.EventuallyAsync(async () =>
        {
            try
            {
                return await host.Client.PurgeInstanceAsync("child");
            }
            catch (OrchestrationNotRunningException)
            {
                return false;
            }
        });
    }

    [Fact(Timeout = 60_000)]
    public async Task PurgeInstances_ByStatus_DeletesOnlyFinished()
    {
        await using TestHost host = await TestHost.StartAsync(TestHost.Options(azurite, AzuriteFixture.NewHubName("purges")), Registry());
        string a = await host.Client.ScheduleNewOrchestrationInstanceAsync("Seq");
        string b = await host.Client.ScheduleNewOrchestrationInstanceAsync("Seq");
        string c = await host.Client.ScheduleNewOrchestrationInstanceAsync("WaitEvent");
        await TestWait.CompletionAsync(host.Client, a);
        await TestWait.CompletionAsync(host.Client, b);
        await host.Client.WaitForInstanceStartAsync(c);
        Assert.Equal(2, await host.Client.PurgeInstancesAsync(new Backend.PurgeInstancesFilter()));
        IReadOnlyList<OrchestrationMetadata> left = await host.Client.QueryInstancesAsync(new Backend.InstanceQuery());
        Assert.Equal(c, Assert.Single(left).InstanceId);
    }

    private async Task WaitForRequeuesAsync(AzureStorageOrchestrationBackend backend, int cycles)
    {
        long target = backend.DeferredRequeues + cycles;
        await TestWait.EventuallyAsync(() => Task.FromResult(backend.DeferredRequeues >= target), TimeSpan.FromSeconds(20), $"{cycles} re-enqueue cycles of the timer");
        output.WriteLine($"timer hidden again {backend.DeferredRequeues} times so far");
    }

    private static async Task<List<string>> ListBlobsAsync(AzureStorageOrchestrationBackend backend)
    {
        var names = new List<string>();
        await foreach (var b in backend.Container.GetBlobsAsync(Azure.Storage.Blobs.Models.BlobTraits.None, Azure.Storage.Blobs.Models.BlobStates.None, null, default))
        {
            names.Add(b.Name);
        }

        return names;
    }
}

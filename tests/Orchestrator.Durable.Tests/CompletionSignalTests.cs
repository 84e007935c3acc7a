using System.Diagnostics;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Durable.Tests;

/// <summary>
/// The SQLite backend tells a waiting client in its process the moment a checkpoint finishes an instance, so
/// <see cref="DurableTaskClient.WaitForInstanceCompletionAsync"/> does not sit out its backed-off poll.
/// </summary>
public sealed class CompletionSignalTests
{
    private static DurableTaskRegistry Registry() => new DurableTaskRegistry()
        .AddOrchestratorFunc<object?, string>("AwaitGo", (ctx, _) => ctx.WaitForExternalEvent<string>("go"));

    [Fact(Timeout = 30_000)]
    public async Task WaitForInstanceCompletionAsync_FinishedInThisProcess_ReturnsWithoutWaitingForTheNextPoll()
    {
        await using var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory());
        await using var worker = new DurableTaskWorker(backend, Registry());
        await worker.StartAsync(default);

        // With the signal the fallback poll runs every MaxPollingInterval: an hour here.
        var client = new DurableTaskClient(backend, new DurableTaskClientOptions { MaxPollingInterval = TimeSpan.FromHours(1) });
        string id = await client.ScheduleNewOrchestrationInstanceAsync("AwaitGo");
        Task<OrchestrationMetadata> waiting = client.WaitForInstanceCompletionAsync(id);
        await client.WaitForInstanceStartAsync(id);

        // A poll-only wait (backing off from 5 ms, doubling) sleeps in its 2.56 s step from 2.555 to 5.115 s, and
        // would return about 2.4 s after the event.
        await Task.Delay(TimeSpan.FromMilliseconds(2700));
        Assert.False(waiting.IsCompleted);
        var sinceEvent = Stopwatch.StartNew();
        await client.RaiseEventAsync(id, "go", "now");
        OrchestrationMetadata done = await waiting;
        sinceEvent.Stop();

        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal("now", done.ReadOutputAs<string>());
        Assert.True(sinceEvent.Elapsed < TimeSpan.FromMilliseconds(1500), $"returned {sinceEvent.ElapsedMilliseconds} ms after the event");
    }

    [Fact(Timeout = 30_000)]
    public async Task WaitForCompletionAsync_InstanceNeverFinishes_TimesOutAndLeavesNoWaiter()
    {
        await using var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory());
        await using var worker = new DurableTaskWorker(backend, Registry());
        await worker.StartAsync(default);
        var client = new DurableTaskClient(backend);
        string id = await client.ScheduleNewOrchestrationInstanceAsync("AwaitGo");

        Task first = backend.WaitForCompletionAsync(id, TimeSpan.FromMilliseconds(50), default);
        Task second = backend.WaitForCompletionAsync(id, TimeSpan.FromMilliseconds(80), default);
        Assert.Equal(1, backend.CompletionWaiterCount);
        await Task.WhenAll(first, second);

        Assert.Equal(0, backend.CompletionWaiterCount);
        Assert.Equal(OrchestrationRuntimeStatus.Running, (await client.GetInstanceAsync(id))!.RuntimeStatus);
    }

    [Theory(Timeout = 30_000)]
    [InlineData(true)]
    [InlineData(false)]
    public async Task WaitForCompletionAsync_CheckpointFinishesInstance_SignalsEveryWaiter(bool oneTransaction)
    {
        await using var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory() with { CheckpointInOneTransaction = oneTransaction });
        await using var worker = new DurableTaskWorker(backend, Registry());
        await worker.StartAsync(default);
        var client = new DurableTaskClient(backend);
        string id = await client.ScheduleNewOrchestrationInstanceAsync("AwaitGo");
        await client.WaitForInstanceStartAsync(id);

        Task[] waiters = [.. Enumerable.Range(0, 3).Select(_ => backend.WaitForCompletionAsync(id, TimeSpan.FromMinutes(5), default))];
        await client.RaiseEventAsync(id, "go", "now");
        await Task.WhenAll(waiters).WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(OrchestrationRuntimeStatus.Completed, (await client.GetInstanceAsync(id))!.RuntimeStatus);
        Assert.Equal(0, backend.CompletionWaiterCount);
    }
}

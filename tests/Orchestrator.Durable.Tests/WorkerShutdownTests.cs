using Orchestrator.Durable.Client;
using Orchestrator.Durable.History;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Durable.Tests;

public class WorkerShutdownTests
{
    [Fact(Timeout = 30_000)]
    public async Task StopAsync_ActivityInFlight_AbandonsItForAnotherWorkerWithoutRecordingAResult()
    {
        await using var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory());
        var client = new DurableTaskClient(backend);
        var started = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var fast = new DurableTaskWorkerOptions { MaxPollingInterval = TimeSpan.FromMilliseconds(50) };

        DurableTaskRegistry Registry(Func<TaskActivityContext, Task<string>> work) => new DurableTaskRegistry()
            .AddActivityFunc<string?, string>("Work", (ctx, _) => work(ctx))
            .AddOrchestratorFunc<string?, string>("Job", (ctx, _) => ctx.CallActivityAsync<string>("Work"));

        var first = new DurableTaskWorker(backend, Registry(async ctx =>
        {
            started.TrySetResult(ctx.IdempotencyKey);
            await Task.Delay(Timeout.InfiniteTimeSpan, ctx.CancellationToken);
            return "never";
        }), fast);
        await first.StartAsync(default);
        string id = await client.ScheduleNewOrchestrationInstanceAsync("Job");
        string firstKey = await started.Task;

        await first.StopAsync(default);
        await first.DisposeAsync();

        // Abandoned, not failed: no result was recorded and the work item is back in the queue, unlocked.
        IReadOnlyList<HistoryEvent> afterStop = await client.GetHistoryAsync(id);
        Assert.Empty(afterStop.OfType<TaskCompletedEvent>());
        Assert.Empty(afterStop.OfType<TaskFailedEvent>());
        Assert.Equal(1, (await backend.CountRowsAsync(default))["tasks"]);

        string? secondKey = null;
        await using var second = new DurableTaskWorker(backend, Registry(ctx =>
        {
            secondKey = ctx.IdempotencyKey;
            return Task.FromResult("done");
        }), fast);
        await second.StartAsync(default);
        OrchestrationMetadata done = await client.WaitForInstanceCompletionAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal("done", done.ReadOutputAs<string>());
        Assert.Equal(firstKey, secondKey);
        Assert.Single((await client.GetHistoryAsync(id)).OfType<TaskCompletedEvent>());
    }

    [Fact(Timeout = 30_000)]
    public async Task StopAsync_Idle_ReturnsPromptlyAndIsIdempotent()
    {
        await using var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory());
        var worker = new DurableTaskWorker(backend, new DurableTaskRegistry());
        await worker.StartAsync(default);
        var sw = System.Diagnostics.Stopwatch.StartNew();

        await worker.StopAsync(default);
        await worker.StopAsync(default);
        await worker.DisposeAsync();

        // The idle poll waits up to MaxPollingInterval (1 s); stopping must not wait for more than that.
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"stop took {sw.Elapsed}");
        await Assert.ThrowsAsync<InvalidOperationException>(() => worker.StartAsync(default));
    }
}

using Orchestrator.Durable.Client;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Durable.Tests;

/// <summary>
/// Scheduling an id whose instance has finished replaces it (history and all) on SQLite, except while its last
/// checkpoint's messages (such as its result for a parent) are still waiting to be dispatched: a worker that died between
/// the commit and the dispatch leaves them for the next one, and deleting them would leave the parent waiting forever.
/// </summary>
public sealed class InstanceReplacementTests
{
    [Fact(Timeout = 30_000)]
    public async Task ScheduleNew_FinishedInstanceWithUndispatchedMessages_IsRefusedAndKeepsThemThenReplacedOnceSent()
    {
        await using var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory());
        var registry = new DurableTaskRegistry().AddOrchestratorFunc<string, string>("Done", (_, x) => Task.FromResult(x));
        await using var worker = new DurableTaskWorker(backend, registry, new DurableTaskWorkerOptions { MaxPollingInterval = TimeSpan.FromMilliseconds(50) });
        await worker.StartAsync(default);
        var client = new DurableTaskClient(backend, new DurableTaskClientOptions { MaxPollingInterval = TimeSpan.FromMilliseconds(50) });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await client.ScheduleNewOrchestrationInstanceAsync("Done", "first", new StartOrchestrationOptions { InstanceId = "job" }, cts.Token);
        OrchestrationMetadata first = await client.WaitForInstanceCompletionAsync("job", cts.Token);

        // As a worker that died after the final checkpoint's commit, before its dispatch, leaves it.
        await backend.ExecuteRawAsync("INSERT INTO outbox (message_id, instance_id, data) VALUES ('job|e|subresult', 'job', '{}')", default);
        var refused = await Assert.ThrowsAsync<OrchestrationAlreadyExistsException>(
            () => client.ScheduleNewOrchestrationInstanceAsync("Done", "second", new StartOrchestrationOptions { InstanceId = "job" }, cts.Token));

        Assert.Equal(OrchestrationRuntimeStatus.Completed, refused.Status);
        Assert.Contains("final messages are not dispatched yet", refused.Message, StringComparison.Ordinal);
        Assert.Equal(1, (await backend.CountRowsAsync(default))["outbox"]);
        OrchestrationMetadata kept = (await client.GetInstanceAsync("job", cts.Token))!;
        Assert.Equal(first.ExecutionId, kept.ExecutionId);
        Assert.Equal("first", kept.ReadOutputAs<string>());

        // Once they are sent, the id is free to schedule again.
        await backend.ExecuteRawAsync("DELETE FROM outbox", default);
        await client.ScheduleNewOrchestrationInstanceAsync("Done", "second", new StartOrchestrationOptions { InstanceId = "job" }, cts.Token);
        OrchestrationMetadata second = await client.WaitForInstanceCompletionAsync("job", cts.Token);
        Assert.NotEqual(first.ExecutionId, second.ExecutionId);
        Assert.Equal("second", second.ReadOutputAs<string>());
    }
}

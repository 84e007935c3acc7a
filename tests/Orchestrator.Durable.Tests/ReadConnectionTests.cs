using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Durable.Tests;

/// <summary>
/// On a database file the SQLite backend answers the client's reads (an instance, a query, a history) on a second
/// connection, so a status or approvals page neither waits behind the store's queue of commits nor adds to it.
/// </summary>
public sealed class ReadConnectionTests : IDisposable
{
    private readonly string path = Path.Combine(Path.GetTempPath(), $"reads-{Guid.NewGuid():N}.db");

    [Fact(Timeout = 60_000)]
    public async Task Reads_WhileTheStoreIsHeldUp_AnswerWithTheLastCommittedState()
    {
        await using var backend = new SqliteOrchestrationBackend(new SqliteOrchestrationBackendOptions { DataSource = this.path });
        var registry = new DurableTaskRegistry().AddOrchestratorFunc<string, string>("Upper", (_, x) => Task.FromResult(x.ToUpperInvariant()));
        await using var worker = new DurableTaskWorker(backend, registry);
        await worker.StartAsync(default);
        var client = new DurableTaskClient(backend);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(45));
        string id = await client.ScheduleNewOrchestrationInstanceAsync("Upper", "abc", new StartOrchestrationOptions { InstanceId = "reads-1" }, cts.Token);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, (await client.WaitForInstanceCompletionAsync(id, cts.Token)).RuntimeStatus);

        // Hold the store's thread inside a transaction; a write queued behind it waits, reads do not.
        using var release = new ManualResetEventSlim();
        using var entered = new SemaphoreSlim(0);
        Task held = backend.RunOnStoreAsync(
            () =>
            {
                entered.Release();
                release.Wait(cts.Token);
            },
            cts.Token);
        await entered.WaitAsync(cts.Token);
        Task<string> queuedWrite = client.ScheduleNewOrchestrationInstanceAsync("Upper", "def", new StartOrchestrationOptions { InstanceId = "reads-2" }, cts.Token);
        try
        {
            OrchestrationMetadata? instance = await backend.GetInstanceAsync(id, cts.Token);
            Page<OrchestrationMetadata> page = await backend.QueryInstancesAsync(new InstanceQuery { InstanceIdPrefix = "reads-", FetchInputsAndOutputs = true }, cts.Token);
            IReadOnlyList<History.HistoryEvent>? history = await backend.GetHistoryAsync(id, cts.Token);

            Assert.False(held.IsCompleted);
            Assert.False(queuedWrite.IsCompleted);
            Assert.Equal("\"ABC\"", instance!.SerializedOutput);
            Assert.Equal(["reads-1"], page.Select(m => m.InstanceId));
            Assert.IsType<History.ExecutionCompletedEvent>(history![^1]);
        }
        finally
        {
            release.Set();
        }

        await held;
        await queuedWrite;

        // And once the write commits, a read sees it.
        Assert.NotNull(await backend.GetInstanceAsync("reads-2", cts.Token));
    }

    public void Dispose()
    {
        foreach (string file in new[] { this.path, this.path + "-wal", this.path + "-shm" })
        {
            File.Delete(file);
        }
    }
}

using Orchestrator.Durable.Client;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Durable.Tests;

/// <summary>Many instances at once on a file database, the way the benchmark drives the engine.</summary>
public class WorkerThroughputTests
{
    [Theory(Timeout = 60_000)]
    [InlineData(1)]
    [InlineData(4)]
    public async Task ManySequences_AllComplete_WithConcurrentFetches(int dispatchers)
    {
        var registry = new DurableTaskRegistry()
            .AddActivityFunc<int, int>("Inc", (_, x) => x + 1)
            .AddOrchestratorFunc<int, int>("Seq", async (ctx, x) =>
            {
                for (int i = 0; i < 5; i++)
                {
                    x = await ctx.CallActivityAsync<int>("Inc", x);
                }

                return x;
            });
        string path = Path.Combine(Path.GetTempPath(), $"throughput-{Path.GetRandomFileName()}.db");
        try
        {
            await using var backend = new SqliteOrchestrationBackend(new SqliteOrchestrationBackendOptions { DataSource = path });
            await using var worker = new DurableTaskWorker(backend, registry, new DurableTaskWorkerOptions { DispatcherCount = dispatchers });
            await worker.StartAsync(default);
            var client = new DurableTaskClient(backend);
            string[] ids = await Task.WhenAll(Enumerable.Range(0, 200).Select(i =>
                client.ScheduleNewOrchestrationInstanceAsync("Seq", i, new StartOrchestrationOptions { InstanceId = $"seq-{i}" })));
            OrchestrationMetadata[] done = await Task.WhenAll(ids.Select(id => client.WaitForInstanceCompletionAsync(id)));
            for (int i = 0; i < done.Length; i++)
            {
                Assert.Equal(OrchestrationRuntimeStatus.Completed, done[i].RuntimeStatus);
                Assert.Equal(i + 5, done[i].ReadOutputAs<int>());
            }

            // Nothing is left behind: every message was consumed, every lock released.
            Dictionary<string, long> rows = await backend.CountRowsAsync(default);
            Assert.Equal(0, rows["inbox"]);
            Assert.Equal(0, rows["tasks"]);
            Assert.Equal(0, rows["outbox"]);
            Assert.Equal(0, rows["poison"]);
        }
        finally
        {
            foreach (string suffix in new[] { string.Empty, "-wal", "-shm" })
            {
                File.Delete(path + suffix);
            }
        }
    }
}

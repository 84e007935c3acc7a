using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.Core;
using Orchestrator.Durable.History;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Durable.Tests;

/// <summary>Many instances at once on a file database, the way the benchmark drives the engine.</summary>
public class WorkerThroughputTests
{
    [Theory(Timeout = 60_000)]
    [InlineData(1, true)]
    [InlineData(4, true)]
    [InlineData(1, false)]
    [InlineData(4, false)]
    public async Task ManySequences_AllComplete_WithConcurrentFetches(int dispatchers, bool batchFetch)
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
            IOrchestrationBackend seen = batchFetch ? backend : new SingleFetchBackend(backend);
            await using var worker = new DurableTaskWorker(seen, registry, new DurableTaskWorkerOptions { DispatcherCount = dispatchers });
            await worker.StartAsync(default);
            var client = new DurableTaskClient(seen);
            string[] ids = await Task.WhenAll(Enumerable.Range(0, 200).Select(i =>
                client.ScheduleNewOrchestrationInstanceAsync("Seq", i, new StartOrchestrationOptions { InstanceId = $"seq-{i}" })));
            OrchestrationMetadata[] done = await Task.WhenAll(ids.Select(id => client.WaitForInstanceCompletionAsync(id)));
            for (int i = 0; i < done.Length; i++)
            {
                Assert.Equal(OrchestrationRuntimeStatus.Completed, done[i].RuntimeStatus);
                Assert.Equal(i + 5, done[i].ReadOutputAs<int>());
            }

            // Nothing is left behind once in-flight checkpoints have finished (the status is written
            // in step 1; steps 2 and 3 may still be running when a client sees it).
            await worker.StopAsync(default);
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

    /// <summary>Hides the batch fetch of the SQLite backend, as a backend without it would.</summary>
    private sealed class SingleFetchBackend(IOrchestrationBackend inner) : IOrchestrationBackend
    {
        public Task CreateIfNotExistsAsync(CancellationToken cancellationToken) => inner.CreateIfNotExistsAsync(cancellationToken);

        public Task CreateInstanceAsync(TaskMessage startMessage, CancellationToken cancellationToken) => inner.CreateInstanceAsync(startMessage, cancellationToken);

        public Task SendInstanceMessageAsync(TaskMessage message, CancellationToken cancellationToken) => inner.SendInstanceMessageAsync(message, cancellationToken);

        public Task<OrchestrationMetadata?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken) => inner.GetInstanceAsync(instanceId, cancellationToken);

        public Task<Page<OrchestrationMetadata>> QueryInstancesAsync(InstanceQuery query, CancellationToken cancellationToken) => inner.QueryInstancesAsync(query, cancellationToken);

        public Task<IReadOnlyList<HistoryEvent>?> GetHistoryAsync(string instanceId, CancellationToken cancellationToken) => inner.GetHistoryAsync(instanceId, cancellationToken);

        public Task<bool> PurgeInstanceAsync(string instanceId, CancellationToken cancellationToken) => inner.PurgeInstanceAsync(instanceId, cancellationToken);

        public Task<int> PurgeInstancesAsync(PurgeInstancesFilter filter, CancellationToken cancellationToken) => inner.PurgeInstancesAsync(filter, cancellationToken);

        public Task<OrchestrationWorkItem?> LockNextOrchestrationWorkItemAsync(TimeSpan lockTimeout, CancellationToken cancellationToken) => inner.LockNextOrchestrationWorkItemAsync(lockTimeout, cancellationToken);

        public Task CommitCheckpointAsync(OrchestrationWorkItem workItem, OrchestrationCheckpoint checkpoint, CancellationToken cancellationToken) => inner.CommitCheckpointAsync(workItem, checkpoint, cancellationToken);

        public Task DispatchOutboxAsync(OrchestrationWorkItem workItem, CancellationToken cancellationToken) => inner.DispatchOutboxAsync(workItem, cancellationToken);

        public Task ReleaseOrchestrationWorkItemAsync(OrchestrationWorkItem workItem, IReadOnlyCollection<string> consumedMessageIds, CancellationToken cancellationToken) => inner.ReleaseOrchestrationWorkItemAsync(workItem, consumedMessageIds, cancellationToken);

        public Task AbandonOrchestrationWorkItemAsync(OrchestrationWorkItem workItem, CancellationToken cancellationToken) => inner.AbandonOrchestrationWorkItemAsync(workItem, cancellationToken);

        public Task<ActivityWorkItem?> LockNextActivityWorkItemAsync(TimeSpan lockTimeout, CancellationToken cancellationToken) => inner.LockNextActivityWorkItemAsync(lockTimeout, cancellationToken);

        public Task RenewActivityWorkItemLockAsync(ActivityWorkItem workItem, TimeSpan lockTimeout, CancellationToken cancellationToken) => inner.RenewActivityWorkItemLockAsync(workItem, lockTimeout, cancellationToken);

        public Task CompleteActivityWorkItemAsync(ActivityWorkItem workItem, TaskMessage result, CancellationToken cancellationToken) => inner.CompleteActivityWorkItemAsync(workItem, result, cancellationToken);

        public Task AbandonActivityWorkItemAsync(ActivityWorkItem workItem, CancellationToken cancellationToken) => inner.AbandonActivityWorkItemAsync(workItem, cancellationToken);

        public Task WaitForWorkAsync(WorkItemKind kind, TimeSpan timeout, CancellationToken cancellationToken) => inner.WaitForWorkAsync(kind, timeout, cancellationToken);

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}

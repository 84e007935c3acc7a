using System.Diagnostics;
using System.Globalization;
using Orchestrator.Durable;
using Orchestrator.Durable.AzureStorage;
using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Testing;

namespace Orchestrator.Bench;

/// <summary>
/// The <c>query</c> workload: creates N instances (no worker, so they stay Pending), then times paged instance
/// queries: a full walk through every page (is the last page as cheap as the first? keyset paging says yes, an
/// OFFSET would not), a narrow prefix, and a status no instance has.
/// </summary>
internal sealed class QueryBenchRunner(BenchOptions options)
{
    private const int PageSize = 100;
    private const int CreateConcurrency = 32;

    public async Task<Dictionary<string, object?>> RunAsync(CancellationToken cancellationToken)
    {
        bool azure = options.Backend == "azurite";
        int count = options.Count ?? (azure ? 2_000 : 20_000);
        string dbPath = azure ? string.Empty : options.DbPath ?? Path.Combine(Path.GetTempPath(), $"orchestrator-bench-{Path.GetRandomFileName()}.db");
        AzuriteInstance? azurite = null;
        AzureStorageOrchestrationBackend? azureBackend = null;
        IOrchestrationBackend backend;
        try
        {
            if (azure)
            {
                azurite = await AzuriteHost.StartAsync(cancellationToken).ConfigureAwait(false);
#pragma warning disable RS0030 // A task hub name, not replayed code.
                string hub = "benchq" + Guid.NewGuid().ToString("N")[..16];
#pragma warning restore RS0030
                azureBackend = new AzureStorageOrchestrationBackend(new AzureStorageOrchestrationBackendOptions { ConnectionString = azurite.ConnectionString, TaskHubName = hub });
                backend = azureBackend;
                BenchRunner.Progress($"query: backend azurite ({azurite.Description}), task hub {hub}, count {count}");
            }
            else
            {
                backend = new SqliteOrchestrationBackend(options.SqliteOptions(dbPath));
                BenchRunner.Progress($"query: backend sqlite, db {dbPath}, count {count}");
            }

            await using (backend.ConfigureAwait(false))
            {
                await backend.CreateIfNotExistsAsync(cancellationToken).ConfigureAwait(false);
                var client = new DurableTaskClient(backend);
                var created = Stopwatch.StartNew();
                int next = -1;
                await Task.WhenAll(Enumerable.Range(0, CreateConcurrency).Select(async _ =>
                {
                    int i;
                    while ((i = Interlocked.Increment(ref next)) < count)
                    {
                        // Ids in a shuffled order, so creation order is not key order.
                        int key = (int)((i * 7919L) % count);
                        await client.ScheduleNewOrchestrationInstanceAsync(Workloads.Waiter, null, new() { InstanceId = $"q-{key.ToString("D6", CultureInfo.InvariantCulture)}" }, cancellationToken).ConfigureAwait(false);
                    }
                })).ConfigureAwait(false);
                BenchRunner.Progress($"created {count} instances in {created.Elapsed.TotalSeconds:0.0} s");

                // Warm-up: one page of each shape, so the JIT and the statement caches are not measured.
                await backend.QueryInstancesAsync(new InstanceQuery { PageSize = PageSize, FetchInputsAndOutputs = false }, cancellationToken).ConfigureAwait(false);

                long requestsBefore = azureBackend?.StorageOperationCount ?? 0;
                var walk = Stopwatch.StartNew();
                List<double> pageMs = await WalkAsync(backend, new InstanceQuery { PageSize = PageSize, FetchInputsAndOutputs = false }, count, cancellationToken).ConfigureAwait(false);
                walk.Stop();
                long walkRequests = (azureBackend?.StorageOperationCount ?? 0) - requestsBefore;

                // Every instance again, through a filter on two statuses (all are Pending).
                var statusWalk = Stopwatch.StartNew();
                List<double> statusPageMs = await WalkAsync(
                    backend,
                    new InstanceQuery { Statuses = [OrchestrationRuntimeStatus.Pending, OrchestrationRuntimeStatus.Running], PageSize = PageSize, FetchInputsAndOutputs = false },
                    count,
                    cancellationToken).ConfigureAwait(false);
                statusWalk.Stop();

                // A prefix matching 1% of the ids ("q-0001" + two digits: 100 of them when count >= 10,000), and a status none has.
                double prefixMs = await TimeAsync(backend, new InstanceQuery { InstanceIdPrefix = "q-0001", PageSize = PageSize, FetchInputsAndOutputs = false }, cancellationToken).ConfigureAwait(false);
                double noMatchMs = await TimeAsync(backend, new InstanceQuery { Statuses = [OrchestrationRuntimeStatus.Running], PageSize = PageSize, FetchInputsAndOutputs = false }, cancellationToken).ConfigureAwait(false);
                int edge = Math.Min(10, pageMs.Count / 2);
                var result = new Dictionary<string, object?>
                {
                    ["workload"] = "query",
                    ["backend"] = options.Backend,
                    ["count"] = count,
                    ["pageSize"] = PageSize,
                    ["pages"] = pageMs.Count,
                    ["walkSeconds"] = Math.Round(walk.Elapsed.TotalSeconds, 3),
                    ["instancesPerSecond"] = Math.Round(count / walk.Elapsed.TotalSeconds, 1),
                    ["firstPagesMs"] = Math.Round(pageMs.Take(edge).Average(), 3),
                    ["lastPagesMs"] = Math.Round(pageMs.Skip(pageMs.Count - edge).Average(), 3),
                    ["statusWalkSeconds"] = Math.Round(statusWalk.Elapsed.TotalSeconds, 3),
                    ["statusFirstPagesMs"] = Math.Round(statusPageMs.Take(edge).Average(), 3),
                    ["statusLastPagesMs"] = Math.Round(statusPageMs.Skip(statusPageMs.Count - edge).Average(), 3),
                    ["prefixPageMs"] = Math.Round(prefixMs, 3),
                    ["noMatchStatusMs"] = Math.Round(noMatchMs, 3),
                    ["storageRequestsPerPage"] = azureBackend is null ? null : Math.Round((double)walkRequests / pageMs.Count, 2),
                };
                return result;
            }
        }
        finally
        {
            azurite?.Dispose();
            if (!azure && options.DbPath is null)
            {
                foreach (string f in new[] { dbPath, dbPath + "-wal", dbPath + "-shm" })
                {
                    File.Delete(f);
                }
            }
        }
    }

    /// <summary>Reads every page of the query; returns each page's time. Fails the run unless exactly <paramref name="expected"/> instances came back.</summary>
    private static async Task<List<double>> WalkAsync(IOrchestrationBackend backend, InstanceQuery query, int expected, CancellationToken cancellationToken)
    {
        var pageMs = new List<double>();
        int seen = 0;
        string? token = null;
        do
        {
            long t = Stopwatch.GetTimestamp();
            Page<OrchestrationMetadata> page = await backend.QueryInstancesAsync(query with { ContinuationToken = token }, cancellationToken).ConfigureAwait(false);
            pageMs.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            seen += page.Count;
            token = page.ContinuationToken;
        }
        while (token is not null);

        return seen == expected ? pageMs : throw new BenchFailedException($"a walk through every page returned {seen} instances, not {expected}");
    }

    /// <summary>The median of five runs of one page of the query.</summary>
    private static async Task<double> TimeAsync(IOrchestrationBackend backend, InstanceQuery query, CancellationToken cancellationToken)
    {
        var runs = new List<double>();
        for (int i = 0; i < 5; i++)
        {
            long t = Stopwatch.GetTimestamp();
            await backend.QueryInstancesAsync(query, cancellationToken).ConfigureAwait(false);
            runs.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
        }

        return runs.Order().ElementAt(runs.Count / 2);
    }
}

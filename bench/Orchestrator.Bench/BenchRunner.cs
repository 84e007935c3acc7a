using Orchestrator.Testing;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Orchestrator.Durable;
using Orchestrator.Durable.AzureStorage;
using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Bench;

/// <summary>The run failed (an orchestration did not complete as expected).</summary>
internal sealed class BenchFailedException(string message) : Exception(message);

/// <summary>
/// Runs one workload against a fresh store: a warm-up batch, then the measured batch. All
/// orchestrations of a batch are scheduled at once (a burst), and the run ends when none is left
/// unfinished. Times come from the store's own timestamps (completion time of each instance), so
/// polling for the end does not blur them.
/// </summary>
internal sealed class BenchRunner(BenchOptions options)
{
    private static readonly TimeSpan DonePollInterval = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan AzurePollInterval = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromSeconds(1);
    private readonly TimeProvider clock = TimeProvider.System;
    private IOrchestrationBackend backend = null!;
    private DurableTaskClient client = null!;

    public async Task<Dictionary<string, object?>> RunAsync(CancellationToken cancellationToken)
    {
        int count = options.Count ?? options.Workload switch
        {
            "fan-out" => 20,
            _ => 1000,
        };
        // The measured batch is the second of its size by default: on a small machine the JIT is
        // still optimizing hot code well into the first thousand orchestrations.
        int warmup = options.Warmup ?? options.Workload switch
        {
            "waiting" => Math.Min(count, 1000),
            _ => count,
        };

        bool azure = options.Backend == "azurite";
        bool tempDb = !azure && options.DbPath is null;
        string dbPath = azure ? string.Empty : options.DbPath ?? Path.Combine(Path.GetTempPath(), $"orchestrator-bench-{Path.GetRandomFileName()}.db");
        var workerOptions = new DurableTaskWorkerOptions();
        workerOptions = workerOptions with
        {
            MaxConcurrentOrchestrations = options.MaxConcurrentOrchestrations ?? workerOptions.MaxConcurrentOrchestrations,
            MaxConcurrentActivities = options.MaxConcurrentActivities ?? workerOptions.MaxConcurrentActivities,
            DispatcherCount = options.DispatcherCount ?? workerOptions.DispatcherCount,
            MaxCachedOrchestrations = options.MaxCachedOrchestrations ?? workerOptions.MaxCachedOrchestrations,
        };

        using ILoggerFactory loggerFactory = LoggerFactory.Create(b => b
            .SetMinimumLevel(LogLevel.Warning)
            .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
        AzuriteInstance? azurite = null;
        WorkerProcesses? extraWorkers = null;
        try
        {
            SqliteOrchestrationBackend? sqlite = null;
            AzureStorageOrchestrationBackend? azureBackend = null;
            if (azure)
            {
                azurite = await AzuriteHost.StartAsync(cancellationToken).ConfigureAwait(false);
                var azureOptions = new AzureStorageOrchestrationBackendOptions
                {
                    ConnectionString = azurite.ConnectionString,
                    TaskHubName = NewHubName(),
                    LoggerFactory = loggerFactory,
                };
                Progress($"{options.Workload}: backend azurite ({azurite.Description}), task hub {azureOptions.TaskHubName}, {azureOptions.PartitionCount} partitions, count {count}, warm-up {warmup}");
                azureBackend = new AzureStorageOrchestrationBackend(azureOptions);
                this.backend = azureBackend;
            }
            else
            {
                Progress($"{options.Workload}: backend sqlite, db {dbPath}, synchronous={(options.DurableCommits ? "FULL" : "NORMAL")}, count {count}, warm-up {warmup}");
                sqlite = new SqliteOrchestrationBackend(options.SqliteOptions(dbPath));
                this.backend = sqlite;
            }

            await using (this.backend.ConfigureAwait(false))
            {
                this.client = new DurableTaskClient(this.backend);
                var worker = new DurableTaskWorker(this.backend, Workloads.CreateRegistry(), workerOptions, loggerFactory);
                await using (worker.ConfigureAwait(false))
                {
                    await worker.StartAsync(cancellationToken).ConfigureAwait(false);
                    if (azureBackend is not null && options.Workers > 1)
                    {
                        Progress($"starting {options.Workers - 1} worker process(es) on task hub {azureBackend.Options.TaskHubName}");
                        extraWorkers = await WorkerProcesses.StartAsync(options.Workers - 1, azurite!.ConnectionString, azureBackend.Options.TaskHubName, options, cancellationToken).ConfigureAwait(false);
                        await WaitForBalancedLeasesAsync(azureBackend, options.Workers, cancellationToken).ConfigureAwait(false);
                    }

                    if (warmup > 0)
                    {
                        Progress($"warm-up: {warmup} orchestrations");
                        await this.RunBatchAsync("warmup", warmup, cancellationToken).ConfigureAwait(false);
                    }

                    Progress($"measuring: {count} orchestrations");
                    SqliteExecutorStats before = sqlite?.Stats ?? default;
                    long extraOpsBefore = extraWorkers is null ? 0 : await extraWorkers.StorageOperationCountAsync(cancellationToken).ConfigureAwait(false);
                    long storageOpsBefore = (azureBackend?.StorageOperationCount ?? 0) + extraOpsBefore;
                    IReadOnlyDictionary<string, long> kindsBefore = azureBackend?.StorageOperationsByKind ?? new Dictionary<string, long>();
                    var startCpu = Process.GetCurrentProcess().TotalProcessorTime;
                    long? startWritten = BytesWritten();
                    (long Cpu, long Wait)? startStore = StoreThreadSchedStat();
                    long wallStart = Stopwatch.GetTimestamp();
                    Measurement m = await this.RunBatchAsync("run", count, cancellationToken).ConfigureAwait(false);
                    double wall = Stopwatch.GetElapsedTime(wallStart).TotalSeconds;
                    var cpu = Process.GetCurrentProcess().TotalProcessorTime - startCpu;
                    long extraOps = (extraWorkers is null ? 0 : await extraWorkers.StorageOperationCountAsync(cancellationToken).ConfigureAwait(false)) - extraOpsBefore;
                    long storageOps = (azureBackend?.StorageOperationCount ?? 0) + extraOps + extraOpsBefore - storageOpsBefore;
                    SqliteExecutorStats? stats = sqlite is null ? null : sqlite.Stats - before;
                    long? written = BytesWritten() - startWritten;
                    (long Cpu, long Wait)? endStore = StoreThreadSchedStat();
                    await worker.StopAsync(cancellationToken).ConfigureAwait(false);

                    using var process = Process.GetCurrentProcess();
                    process.Refresh();
                    int activities = count * options.Workload switch
                    {
                        "hello-sequence" => Workloads.SequenceLength,
                        "fan-out" => Workloads.FanOutWidth,
                        _ => 0,
                    };
                    var result = new Dictionary<string, object?>
                    {
                        ["workload"] = options.Workload,
                        ["backend"] = options.Backend,
                        ["count"] = count,
                        ["seconds"] = Round(m.Seconds, 3),
                        ["orchestrationsPerSecond"] = Round(count / m.Seconds, 1),
                        ["activitiesPerSecond"] = Round(activities / m.Seconds, 1),
                        ["p50Ms"] = Round(Percentile(m.LatenciesMs, 0.50), 1),
                        ["p99Ms"] = Round(Percentile(m.LatenciesMs, 0.99), 1),
                        ["maxMs"] = Round(m.LatenciesMs.Max(), 1),
                        ["latency"] = m.LatencyMeasures,
                        ["peakWorkingSetMb"] = Round(process.PeakWorkingSet64 / 1048576.0, 1),
                        ["synchronous"] = stats is null ? null : options.DurableCommits ? "FULL" : "NORMAL",
                        ["journalMode"] = stats is null ? null : "WAL",
                        ["walCheckpoints"] = sqlite is null ? null : sqlite.WalCheckpointer is null ? "inline" : "background",
                        ["activities"] = activities,
                        ["warmup"] = warmup,
                        ["concurrency"] = options.Workload == "waiting" ? null : options.Concurrency,
                        ["maxConcurrentOrchestrations"] = workerOptions.MaxConcurrentOrchestrations,
                        ["maxConcurrentActivities"] = workerOptions.MaxConcurrentActivities,
                        ["dispatcherCount"] = workerOptions.DispatcherCount,
                        ["maxCachedOrchestrations"] = workerOptions.MaxCachedOrchestrations,
                        ["transactions"] = stats?.Transactions,
                        ["operations"] = stats?.Operations,
                        ["operationsPerTransaction"] = stats is { } st1 ? Round(st1.Transactions == 0 ? 0 : (double)st1.Operations / st1.Transactions, 2) : null,
                        ["storeBusyPercent"] = stats is { } st2 ? Round(100.0 * st2.BusyTime.TotalSeconds / wall, 1) : null,
                        ["storeCommitMs"] = stats is { } st3 ? Round(st3.CommitTime.TotalMilliseconds, 0) : null,
                        ["storeWorkMs"] = stats is { } st4 ? Round((st4.BusyTime - st4.CommitTime).TotalMilliseconds, 0) : null,
                        ["commitAvgMs"] = stats is { } st5 ? Round(st5.Transactions == 0 ? 0 : st5.CommitTime.TotalMilliseconds / st5.Transactions, 3) : null,
                        ["storeThreadCpuMs"] = startStore is { } s0 && endStore is { } s1 ? Round((s1.Cpu - s0.Cpu) / 1e6, 0) : null,
                        ["storeThreadRunQueueMs"] = startStore is { } s2 && endStore is { } s3 ? Round((s3.Wait - s2.Wait) / 1e6, 0) : null,
                        ["diskWriteMb"] = written is { } w ? Round(w / 1048576.0, 1) : null,
                        ["diskWriteKbPerTransaction"] = written is { } w2 && stats is { Transactions: > 0 } st6 ? Round(w2 / 1024.0 / st6.Transactions, 1) : null,
                        ["cpuPercent"] = Round(100.0 * cpu.TotalSeconds / wall, 1),
                        ["cpuMsPerOrchestration"] = Round(cpu.TotalMilliseconds / count, 2),
                        ["wallSeconds"] = Round(wall, 3),
                        ["processorCount"] = Environment.ProcessorCount,
                        ["loadAverage"] = LoadAverage(),
                        ["tieredPgo"] = TieredPgoEnabled(),
                        ["runtime"] = System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription,
                    };
                    if (azureBackend is not null)
                    {
                        result["storageOps"] = storageOps;
                        result["storageOpsPerOrchestration"] = Round((double)storageOps / count, 2);
                        result["storageOpsPerOrchestrationByKind"] = azureBackend.StorageOperationsByKind
                            .Select(kv => (kv.Key, PerOrchestration: Round((double)(kv.Value - kindsBefore.GetValueOrDefault(kv.Key)) / count, 2)))
                            .Where(k => k.PerOrchestration > 0)
                            .ToDictionary(k => k.Key, k => (object?)k.PerOrchestration);
                        result["storageOpsCounted"] = "every HTTP request (retries included) the backend, worker(s) and client sent to tables, queues and blobs from the first schedule call until all were read back: scheduling, worker polling and leases, status polling and the final read-back of every instance";
                        result["workers"] = options.Workers;
                        result["storageOpsWorkerProcesses"] = extraOps;
                        result["partitionCount"] = azureBackend.Options.PartitionCount;
                        result["taskHub"] = azureBackend.Options.TaskHubName;
                        result["azurite"] = azurite?.Description;
                    }

                    foreach (var (k, v) in m.Extra)
                    {
                        result[k] = v;
                    }

                    return result;
                }
            }
        }
        finally
        {
            extraWorkers?.Dispose();
            azurite?.Dispose();
            if (tempDb)
            {
                foreach (string suffix in new[] { string.Empty, "-wal", "-shm", "-journal" })
                {
                    File.Delete(dbPath + suffix);
                }
            }
        }
    }

    /// <summary>Whether dynamic PGO is on: an environment override (DOTNET_TieredPGO) wins over the runtimeconfig.json setting.</summary>
    internal static bool TieredPgoEnabled()
    {
        string? env = Environment.GetEnvironmentVariable("DOTNET_TieredPGO") ?? Environment.GetEnvironmentVariable("COMPlus_TieredPGO");
        if (env is not null)
        {
            return env.Trim() != "0";
        }

        return AppContext.GetData("System.Runtime.TieredPGO") is not (false or "false");
    }

    /// <summary>The machine's 1-minute load average at the end of the run (Linux), or null: others' load skews the figures.</summary>
    internal static double? LoadAverage()
    {
        try
        {
            string first = File.ReadAllText("/proc/loadavg").Split(' ')[0];
            return double.Parse(first, CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Bytes this process has caused to be written to storage (Linux /proc/self/io), or null.</summary>
    private static long? BytesWritten()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/io"))
            {
                if (line.StartsWith("write_bytes:", StringComparison.Ordinal))
                {
                    return long.Parse(line.AsSpan("write_bytes:".Length).Trim(), CultureInfo.InvariantCulture);
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return null;
    }

    /// <summary>
    /// The store thread's time on a CPU and waiting for one, in nanoseconds (Linux schedstat), or null.
    /// Unlike wall-clock busy time, this separates the store's own work from time lost to other load.
    /// </summary>
    private static (long Cpu, long Wait)? StoreThreadSchedStat()
    {
        try
        {
            foreach (string task in Directory.EnumerateDirectories("/proc/self/task"))
            {
                // Linux keeps the first 15 characters of the thread name.
                if (File.ReadAllText(Path.Combine(task, "comm")).Trim() == "sqlite-orchestr")
                {
                    string[] f = File.ReadAllText(Path.Combine(task, "schedstat")).Split(' ');
                    return (long.Parse(f[0], CultureInfo.InvariantCulture), long.Parse(f[1], CultureInfo.InvariantCulture));
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return null;
    }

    /// <summary>Waits until every partition's lease is held and spread over min(workers, partitions) distinct live workers.</summary>
    private static async Task WaitForBalancedLeasesAsync(AzureStorageOrchestrationBackend backend, int workers, CancellationToken cancellationToken)
    {
        int partitions = backend.Options.PartitionCount;
        int wanted = Math.Min(workers, partitions);
        var sw = Stopwatch.StartNew();
        while (true)
        {
            DateTimeOffset now = TimeProvider.System.GetUtcNow();
            var owners = new List<string>();
            await foreach (Azure.Data.Tables.TableEntity row in backend.LeasesTable.QueryAsync<Azure.Data.Tables.TableEntity>(e => e.PartitionKey == "lease", cancellationToken: cancellationToken).ConfigureAwait(false))
            {
                string owner = row.GetString("Owner") ?? string.Empty;
                if (owner.Length > 0 && row.GetDateTimeOffset("ExpiresAt") > now)
                {
                    owners.Add(owner);
                }
            }

            if (owners.Count == partitions && owners.Distinct().Count() == wanted)
            {
                Progress($"leases balanced over {wanted} workers after {sw.Elapsed.TotalSeconds:0.0} s");
                return;
            }

            if (sw.Elapsed > TimeSpan.FromSeconds(120))
            {
                throw new BenchFailedException($"the {partitions} partition leases were not spread over {wanted} workers within 120 s ({owners.Count} held by {owners.Distinct().Count()}).");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500), TimeProvider.System, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>A fresh task hub name per run: letters and digits, starting with a letter.</summary>
    private static string NewHubName()
    {
#pragma warning disable RS0030 // A task hub name, not replayed code.
        return "bench" + Guid.NewGuid().ToString("N")[..16];
#pragma warning restore RS0030
    }

    internal static void Progress(string message) => Console.Error.WriteLine($"[bench] {message}");

    internal static double Round(double value, int digits) => Math.Round(value, digits, MidpointRounding.AwayFromZero);

    internal static double Percentile(List<double> values, double p)
    {
        if (values.Count == 0)
        {
            return 0;
        }

        var sorted = values.Order().ToList();
        int rank = (int)Math.Ceiling(p * sorted.Count) - 1;
        return sorted[Math.Clamp(rank, 0, sorted.Count - 1)];
    }

    private static string Id(string prefix, int i) => $"{prefix}-{i.ToString("D6", CultureInfo.InvariantCulture)}";

    private async Task<Measurement> RunBatchAsync(string prefix, int count, CancellationToken cancellationToken)
    {
        DateTimeOffset t0 = this.clock.GetUtcNow();
        (string name, object? input) = options.Workload switch
        {
            "hello-sequence" => (Workloads.HelloSequence, (object?)"bench"),
            "fan-out" => (Workloads.FanOut, Workloads.FanOutWidth),
            _ => (Workloads.Waiter, null),
        };
        var scheduledAt = new DateTimeOffset[count];
        if (options.Concurrency is { } limit && options.Workload != "waiting")
        {
            // Closed loop: at most `limit` orchestrations in flight; each slot schedules the next
            // one when its previous one has completed (seen by polling, which only delays the next
            // start; the latency is taken from the stored completion time).
            int next = -1;
            await Task.WhenAll(Enumerable.Range(0, Math.Min(limit, count)).Select(async _ =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < count)
                {
                    scheduledAt[i] = this.clock.GetUtcNow();
                    string id = await this.client.ScheduleNewOrchestrationInstanceAsync(name, input, new StartOrchestrationOptions { InstanceId = Id(prefix, i) }, cancellationToken).ConfigureAwait(false);
                    await this.client.WaitForInstanceCompletionAsync(id, cancellationToken).ConfigureAwait(false);
                }
            })).ConfigureAwait(false);
        }
        else
        {
            await Task.WhenAll(Enumerable.Range(0, count).Select(async i =>
            {
                scheduledAt[i] = this.clock.GetUtcNow();
                await this.client.ScheduleNewOrchestrationInstanceAsync(name, input, new StartOrchestrationOptions { InstanceId = Id(prefix, i) }, cancellationToken).ConfigureAwait(false);
            })).ConfigureAwait(false);
            Progress($"{prefix}: {count} scheduled in {(this.clock.GetUtcNow() - t0).TotalSeconds:0.000} s");
        }

        var extra = new Dictionary<string, object?>();
        DateTimeOffset[] latencyFrom = scheduledAt;
        string latencyMeasures = "scheduled-to-completed";
        DateTimeOffset? releaseStart = null;
        if (options.Workload == "waiting")
        {
            await this.WaitUntilNoneAsync(prefix, count, [OrchestrationRuntimeStatus.Pending], "waiting", cancellationToken).ConfigureAwait(false);
            DateTimeOffset allWaiting = this.clock.GetUtcNow();
            Progress($"{prefix}: all {count} waiting after {(allWaiting - t0).TotalSeconds:0.000} s; raising the event");
            GC.Collect();
            using (var p = Process.GetCurrentProcess())
            {
                extra["workingSetWhileWaitingMb"] = Math.Round(p.WorkingSet64 / 1048576.0, 1);
            }

            var raisedAt = new DateTimeOffset[count];
            releaseStart = this.clock.GetUtcNow();
            await Task.WhenAll(Enumerable.Range(0, count).Select(async i =>
            {
                raisedAt[i] = this.clock.GetUtcNow();
                await this.client.RaiseEventAsync(Id(prefix, i), Workloads.EventName, "released", cancellationToken).ConfigureAwait(false);
            })).ConfigureAwait(false);
            extra["allWaitingSeconds"] = Math.Round((allWaiting - t0).TotalSeconds, 3);
            latencyFrom = raisedAt;
            latencyMeasures = "event-raised-to-completed";
        }

        await this.WaitUntilNoneAsync(prefix, count, [OrchestrationRuntimeStatus.Pending, OrchestrationRuntimeStatus.Running], "completed", cancellationToken).ConfigureAwait(false);

        // Read every instance back (one query, not a read per instance: on Azure Storage each read
        // is a billed request): its completion time and status are the measurement.
        var readBack = new InstanceQuery { InstanceIdPrefix = prefix + "-", PageSize = InstanceQuery.MaxPageSize, FetchInputsAndOutputs = false };
        Dictionary<string, OrchestrationMetadata> byId = (await this.ReadAllAsync(readBack, cancellationToken).ConfigureAwait(false))
            .ToDictionary(m => m.InstanceId, StringComparer.Ordinal);
        OrchestrationMetadata?[] metas = Enumerable.Range(0, count).Select(i => byId.GetValueOrDefault(Id(prefix, i))).ToArray();
        var latencies = new List<double>(count);
        DateTimeOffset last = t0;
        for (int i = 0; i < count; i++)
        {
            OrchestrationMetadata? m = metas[i];
            if (m is null || m.RuntimeStatus != OrchestrationRuntimeStatus.Completed || m.CompletedAt is not { } done)
            {
                throw new BenchFailedException($"instance {Id(prefix, i)} ended {m?.RuntimeStatus.ToString() ?? "missing"}"
                    + (m?.FailureDetails is { } f ? $": {f.ErrorType}: {f.ErrorMessage}" : string.Empty));
            }

            latencies.Add((done - latencyFrom[i]).TotalMilliseconds);
            if (done > last)
            {
                last = done;
            }
        }

        if (releaseStart is { } rs)
        {
            extra["releaseSeconds"] = Math.Round((last - rs).TotalSeconds, 3);
        }

        double seconds = (last - t0).TotalSeconds;
        Progress($"{prefix}: {count} completed in {seconds:0.000} s ({count / seconds:0.0}/s)");
        return new Measurement(seconds, latencies, latencyMeasures, extra);
    }

    /// <summary>Every instance matching the query, following the continuation tokens.</summary>
    private async Task<List<OrchestrationMetadata>> ReadAllAsync(InstanceQuery query, CancellationToken cancellationToken)
    {
        var all = new List<OrchestrationMetadata>();
        string? token = null;
        do
        {
            Page<OrchestrationMetadata> page = await this.backend.QueryInstancesAsync(query with { ContinuationToken = token }, cancellationToken).ConfigureAwait(false);
            all.AddRange(page.Values);
            token = page.ContinuationToken;
        }
        while (token is not null);

        return all;
    }

    /// <summary>Polls until no instance of the batch is in one of the statuses; reports progress every second.</summary>
    /// <remarks>One cheap query per status (the prefix's key range, stops at the first row), so
    /// polling takes little of the store's time; the full count runs only once a second.</remarks>
    private async Task WaitUntilNoneAsync(string prefix, int count, OrchestrationRuntimeStatus[] statuses, string what, CancellationToken cancellationToken)
    {
        long nextProgress = Stopwatch.GetTimestamp() + (long)(ProgressInterval.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            bool any = false;
            foreach (OrchestrationRuntimeStatus status in statuses)
            {
                var query = new InstanceQuery { Statuses = [status], InstanceIdPrefix = prefix + "-", PageSize = 1, FetchInputsAndOutputs = false };
                if ((await this.backend.QueryInstancesAsync(query, cancellationToken).ConfigureAwait(false)).Count > 0)
                {
                    any = true;
                    break;
                }
            }

            if (!any)
            {
                return;
            }

            if (Stopwatch.GetTimestamp() >= nextProgress)
            {
                var all = new InstanceQuery { Statuses = statuses, InstanceIdPrefix = prefix + "-", PageSize = InstanceQuery.MaxPageSize, FetchInputsAndOutputs = false };
                int left = (await this.ReadAllAsync(all, cancellationToken).ConfigureAwait(false)).Count;
                Progress($"{prefix}: {count - left}/{count} {what}");
                nextProgress = Stopwatch.GetTimestamp() + (long)(ProgressInterval.TotalSeconds * Stopwatch.Frequency);
            }

            // Azure Storage: each poll is a query, work taken from the emulator the worker shares. The
            // measurement comes from the stored completion times, so polling less often does not change it.
            await Task.Delay(options.Backend == "azurite" ? AzurePollInterval : DonePollInterval, this.clock, cancellationToken).ConfigureAwait(false);
        }
    }

    private sealed record Measurement(double Seconds, List<double> LatenciesMs, string LatencyMeasures, Dictionary<string, object?> Extra);
}

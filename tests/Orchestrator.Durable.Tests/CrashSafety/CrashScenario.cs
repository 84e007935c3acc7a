using Microsoft.Data.Sqlite;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.CrashHost;
using Orchestrator.Durable.History;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Durable.Tests.CrashSafety;

/// <summary>What the store held right after the crash host was killed.</summary>
internal sealed record StoreSnapshot(
    IReadOnlyDictionary<string, long> Rows,
    IReadOnlyDictionary<string, OrchestrationMetadata?> Instances,
    IReadOnlyDictionary<string, IReadOnlyList<HistoryEvent>> Histories,
    IReadOnlySet<string> CommittedResultKeys,
    IReadOnlySet<string> LockedInstances)
{
    public IReadOnlyList<HistoryEvent> History(string instanceId) => this.Histories.GetValueOrDefault(instanceId) ?? [];
}

/// <summary>
/// One crash test's world: a fresh SQLite file and side-effect log in a temp folder, a client in
/// the test process, the crash host process, and the in-process worker that resumes after the kill.
/// </summary>
internal sealed class CrashScenario : IAsyncDisposable
{
    public const string CrashTag = "crash";
    public const string ResumeTag = "resume";

    public static readonly TimeSpan HostTimeout = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan CompletionTimeout = TimeSpan.FromSeconds(30);

    private readonly string folder;
    private DurableTaskWorker? worker;

    private CrashScenario(string folder)
    {
        this.folder = folder;
        this.DbPath = Path.Combine(folder, "store.db");
        this.LogPath = Path.Combine(folder, "side-effects.log");
        this.Backend = new SqliteOrchestrationBackend(new SqliteOrchestrationBackendOptions { DataSource = this.DbPath });
        this.Client = new DurableTaskClient(this.Backend, new DurableTaskClientOptions { MaxPollingInterval = TimeSpan.FromMilliseconds(50) });
    }

    public string DbPath { get; }

    public string LogPath { get; }

    public SqliteOrchestrationBackend Backend { get; }

    public DurableTaskClient Client { get; }

    public IReadOnlyList<ActivityRun> SideEffects => CrashWorkloads.ReadLog(this.LogPath);

    public static async Task<CrashScenario> CreateAsync()
    {
        string folder = Path.Combine(Path.GetTempPath(), "orchestrator-crash-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        var scenario = new CrashScenario(folder);
        await scenario.Backend.CreateIfNotExistsAsync(CancellationToken.None);
        return scenario;
    }

    public Task<string> ScheduleAsync(string orchestrator, object input, string instanceId) =>
        this.Client.ScheduleNewOrchestrationInstanceAsync(orchestrator, input, new StartOrchestrationOptions { InstanceId = instanceId });

    /// <summary>Starts the crash host on this scenario's store and log, tagged <see cref="CrashTag"/>.</summary>
    public CrashHostProcess StartHost(params string[] arguments) =>
        CrashHostProcess.Start(["--db", this.DbPath, "--log", this.LogPath, "--tag", CrashTag, .. arguments]);

    /// <summary>
    /// Reads the store as the killed host left it. A result is "committed" when it is durably recorded:
    /// a TaskCompleted/TaskFailed in history, or the activity's result message in the inbox.
    /// </summary>
    public async Task<StoreSnapshot> SnapshotAsync(params string[] instanceIds)
    {
        var instances = new Dictionary<string, OrchestrationMetadata?>();
        var histories = new Dictionary<string, IReadOnlyList<HistoryEvent>>();
        var committed = new HashSet<string>(StringComparer.Ordinal);
        foreach (string id in instanceIds)
        {
            instances[id] = await this.Client.GetInstanceAsync(id);
            IReadOnlyList<HistoryEvent> history = await this.Backend.GetHistoryAsync(id, CancellationToken.None) ?? [];
            histories[id] = history;
            string? executionId = history.OfType<ExecutionStartedEvent>().FirstOrDefault()?.ExecutionId;
            foreach (HistoryEvent e in history)
            {
                switch (e)
                {
                    case TaskCompletedEvent c: committed.Add($"{id}:{executionId}:{c.TaskScheduledId}"); break;
                    case TaskFailedEvent f: committed.Add($"{id}:{executionId}:{f.TaskScheduledId}"); break;
                }
            }
        }

        foreach (string messageId in await this.ReadColumnAsync("SELECT message_id FROM inbox"))
        {
            // Activity result ids are "{instance}|{execution}|result|{task id}".
            string[] parts = messageId.Split('|');
            if (parts is [var instance, var execution, "result", var task])
            {
                committed.Add($"{instance}:{execution}:{task}");
            }
        }

        var locked = new HashSet<string>(await this.ReadColumnAsync("SELECT instance_id FROM instances WHERE lock_owner IS NOT NULL"), StringComparer.Ordinal);

        Dictionary<string, long> rows = await this.Backend.CountRowsAsync(CancellationToken.None);
        return new StoreSnapshot(rows, instances, histories, committed, locked);
    }

    /// <summary>The first column of every row of <paramref name="sql"/>, read with a connection of its own.</summary>
    private async Task<List<string>> ReadColumnAsync(string sql)
    {
        var values = new List<string>();
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = this.DbPath, Pooling = false }.ToString());
        await connection.OpenAsync();
        await using SqliteCommand cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        await using SqliteDataReader r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync())
        {
            values.Add(r.GetString(0));
        }

        return values;
    }

    /// <summary>Starts the worker that takes over after the kill: in this process, same registry, tagged <see cref="ResumeTag"/>.</summary>
    public Task ResumeAsync(string tag = ResumeTag)
    {
        if (this.worker is not null)
        {
            throw new InvalidOperationException("Already resumed.");
        }

        var workloads = new CrashWorkloads(this.LogPath, tag);
        this.worker = new DurableTaskWorker(this.Backend, workloads.CreateRegistry(), CrashHostDefaults.WorkerOptions(tag));
        return this.worker.StartAsync(CancellationToken.None);
    }

    /// <summary>
    /// Waits until the instance is finished and the store holds no queued work at all (a checkpoint
    /// whose release the crash cut off is cleaned up only when its lock has expired, possibly after
    /// the instance already shows as finished).
    /// </summary>
    public async Task<OrchestrationMetadata> WaitForCompletionAndDrainAsync(string instanceId)
    {
        using var cts = new CancellationTokenSource(CompletionTimeout);
        OrchestrationMetadata m;
        try
        {
            m = await this.Client.WaitForInstanceCompletionAsync(instanceId, cts.Token);
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            throw new TimeoutException($"Instance {instanceId} did not complete within {CompletionTimeout}; rows: {Format(await this.Backend.CountRowsAsync(CancellationToken.None))}.");
        }

        while (true)
        {
            Dictionary<string, long> rows = await this.Backend.CountRowsAsync(CancellationToken.None);
            if (rows["inbox"] == 0 && rows["outbox"] == 0 && rows["tasks"] == 0)
            {
                return m;
            }

            if (cts.IsCancellationRequested)
            {
                throw new TimeoutException($"Queued work for {instanceId} was not cleaned up within {CompletionTimeout} of the start: {Format(rows)}.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(20), CancellationToken.None);
        }
    }

    public static string Format(IReadOnlyDictionary<string, long> rows) => string.Join(", ", rows.Select(kv => $"{kv.Key}={kv.Value}"));

    public async ValueTask DisposeAsync()
    {
        if (this.worker is not null)
        {
            await this.worker.DisposeAsync();
        }

        await this.Backend.DisposeAsync();
        try
        {
            Directory.Delete(this.folder, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a temp folder left behind is harmless.
        }
    }
}

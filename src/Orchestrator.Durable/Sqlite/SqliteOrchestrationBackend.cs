using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Core;
using Orchestrator.Durable.History;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Durable.Sqlite;

/// <summary>
/// The embedded backend: one SQLite file in WAL mode, no server. A checkpoint commit is one
/// transaction; with <see cref="SqliteOrchestrationBackendOptions.DurableCommits"/> it is on disk
/// before it is acknowledged. Several processes may share one file (SQLite's file locks serialize
/// their writes; instance and task locks expire, so a dead process's work moves on).
/// </summary>
public sealed class SqliteOrchestrationBackend : IOrchestrationBackend, IBatchWorkItemSource, IActivityHandOff, IOneWriteCheckpoint, IInstanceCompletionSignal
{
    // WARNING: the schema is a persisted format. Change it only with a migration keyed on
    // schema_info.version and a test that opens a database written by the previous version.
    // (An index added with IF NOT EXISTS is not such a change: this script runs on every open, so an
    // older file gets it then, and older builds keep reading and writing a file that has it.
    // ix_instances_status_id lets a status-filtered page start at its key instead of sorting every match.)
    private const int SchemaVersion = 1;

    private const string Schema = """
        CREATE TABLE IF NOT EXISTS schema_info (version INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS instances (
            instance_id TEXT NOT NULL PRIMARY KEY,
            execution_id TEXT NOT NULL,
            name TEXT NOT NULL,
            status TEXT NOT NULL,
            input TEXT, output TEXT, custom_status TEXT, failure TEXT,
            parent_instance_id TEXT,
            created_at INTEGER NOT NULL,
            last_updated_at INTEGER NOT NULL,
            completed_at INTEGER,
            history_count INTEGER NOT NULL DEFAULT 0,
            lock_owner TEXT,
            lock_expires_at INTEGER);
        CREATE INDEX IF NOT EXISTS ix_instances_status ON instances (status, created_at);
        CREATE INDEX IF NOT EXISTS ix_instances_status_id ON instances (status, instance_id);
        CREATE TABLE IF NOT EXISTS history (
            instance_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            event_type TEXT NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (instance_id, seq)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS inbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            message_id TEXT NOT NULL UNIQUE,
            instance_id TEXT NOT NULL,
            visible_at INTEGER NOT NULL,
            dequeue_count INTEGER NOT NULL DEFAULT 0,
            data TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS ix_inbox_visible ON inbox (visible_at);
        CREATE INDEX IF NOT EXISTS ix_inbox_instance ON inbox (instance_id, id);
        CREATE TABLE IF NOT EXISTS tasks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            message_id TEXT NOT NULL UNIQUE,
            instance_id TEXT NOT NULL,
            visible_at INTEGER NOT NULL,
            lock_owner TEXT,
            dequeue_count INTEGER NOT NULL DEFAULT 0,
            data TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS ix_tasks_visible ON tasks (visible_at);
        CREATE INDEX IF NOT EXISTS ix_tasks_instance ON tasks (instance_id);
        CREATE TABLE IF NOT EXISTS outbox (
            message_id TEXT NOT NULL PRIMARY KEY,
            instance_id TEXT NOT NULL,
            data TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS ix_outbox_instance ON outbox (instance_id);
        CREATE TABLE IF NOT EXISTS poison (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            source TEXT NOT NULL,
            message_id TEXT,
            instance_id TEXT,
            reason TEXT NOT NULL,
            data TEXT,
            created_at INTEGER NOT NULL);
        """;

    private readonly SqliteOrchestrationBackendOptions options;
    private readonly TimeProvider time;
    private readonly SqliteExecutor executor;
    private readonly SqliteWalCheckpointer? checkpointer;

    /// <summary>Runs the client's reads (instances, queries, history): a second connection for a file, else the store's.</summary>
    private readonly SqliteExecutor reads;
    private readonly WorkSignal orchestrationSignal = new();
    private readonly WorkSignal activitySignal = new();
    private readonly ConcurrentDictionary<string, TaskCompletionSource> completionWaiters = new(StringComparer.Ordinal);
    private int disposed;

    /// <summary>Opens (and if needed creates) the database.</summary>
    public SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions? options = null)
    {
        this.options = options ?? new SqliteOrchestrationBackendOptions();
        this.options.Validate();
        this.time = this.options.TimeProvider;
        var csb = new SqliteConnectionStringBuilder
        {
            DataSource = this.options.DataSource,
            Mode = this.options.IsInMemory ? SqliteOpenMode.Memory : SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
            DefaultTimeout = (int)Math.Ceiling(this.options.BusyTimeout.TotalSeconds),
        };
        string connectionString = csb.ToString();
        string busyTimeout = $"PRAGMA busy_timeout={(long)this.options.BusyTimeout.TotalMilliseconds};";
        string durability = $"PRAGMA synchronous={(this.options.DurableCommits ? "FULL" : "NORMAL")};" + busyTimeout;
        bool backgroundCheckpoints = !this.options.IsInMemory && this.options.BackgroundWalCheckpoints;
        SqliteConnection connection = Open(
            connectionString,
            $"PRAGMA journal_mode={(this.options.IsInMemory ? "MEMORY" : "WAL")};"
                + durability
                + (backgroundCheckpoints ? $"PRAGMA wal_autocheckpoint={SqliteWalCheckpointer.FallbackPages};" : string.Empty)
                + Schema);

        if (this.options.IsInMemory)
        {
            this.reads = this.executor = new SqliteExecutor(connection, this.options.MaxBatchSize);
            return;
        }

        // WAL lets a second connection read the last committed state while the store writes: the client's reads
        // (a status page, an approvals page) then neither wait behind the store's queue of commits nor add to it.
        SqliteConnection? readConnection = null;
        SqliteConnection? checkpointConnection = null;
        try
        {
            readConnection = Open(connectionString, "PRAGMA query_only=1;" + busyTimeout);
            if (backgroundCheckpoints)
            {
                checkpointConnection = Open(connectionString, durability);
            }
        }
        catch
        {
            readConnection?.Dispose();
            connection.Dispose();
            throw;
        }

        this.reads = new SqliteExecutor(readConnection, this.options.MaxBatchSize, readOnly: true);
        if (checkpointConnection is null)
        {
            this.executor = new SqliteExecutor(connection, this.options.MaxBatchSize);
            return;
        }

        this.checkpointer = new SqliteWalCheckpointer(checkpointConnection, this.options.WalQuietPeriod);
        this.executor = new SqliteExecutor(connection, this.options.MaxBatchSize, this.checkpointer.Wrote);
    }

    /// <summary>Opens a connection and runs <paramref name="setup"/> on it; disposes it if either fails.</summary>
    private static SqliteConnection Open(string connectionString, string setup)
    {
        var connection = new SqliteConnection(connectionString);
        try
        {
            connection.Open();
            using SqliteCommand command = connection.CreateCommand();
            command.CommandText = setup;
            command.ExecuteNonQuery();
            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>The options in use.</summary>
    public SqliteOrchestrationBackendOptions Options => this.options;

    /// <summary>Transactions and operations run so far; for benchmarks and diagnostics.</summary>
    internal SqliteExecutorStats Stats => this.executor.Stats;

    /// <summary>The background WAL checkpointer, or null (in memory, or <see cref="SqliteOrchestrationBackendOptions.BackgroundWalCheckpoints"/> off).</summary>
    internal SqliteWalCheckpointer? WalCheckpointer => this.checkpointer;

    /// <inheritdoc/>
    public Task CreateIfNotExistsAsync(CancellationToken cancellationToken) =>
        this.executor.RunAsync(
            x =>
            {
                object? v = x.Scalar("SELECT version FROM schema_info LIMIT 1");
                if (v is null)
                {
                    x.Execute("INSERT INTO schema_info (version) VALUES ($v)", ("$v", SchemaVersion));
                }
                else if (Convert.ToInt32(v) != SchemaVersion)
                {
                    throw new InvalidOperationException($"The database has schema version {v}; this build reads version {SchemaVersion}.");
                }

                return true;
            },
            cancellationToken);

    /// <inheritdoc/>
    public async Task CreateInstanceAsync(TaskMessage startMessage, CancellationToken cancellationToken)
    {
        if (startMessage.Event is not ExecutionStartedEvent started)
        {
            throw new ArgumentException("A start message must carry an ExecutionStarted event.", nameof(startMessage));
        }

        long now = this.Now;
        string data = HistorySerializer.Serialize(startMessage);
        await this.executor.RunAsync(
            x =>
            {
                string? status = (string?)x.Scalar("SELECT status FROM instances WHERE instance_id = $id", ("$id", started.InstanceId));
                if (status is not null)
                {
                    var s = Enum.Parse<OrchestrationRuntimeStatus>(status);
                    if (!s.IsTerminal())
                    {
                        throw new OrchestrationAlreadyExistsException(started.InstanceId, s);
                    }

                    // As for a purge: replacing it now would delete the messages its last checkpoint sends (a parent's
                    // result), which a worker that died before dispatching them left for the next one.
                    if (x.Scalar("SELECT 1 FROM outbox WHERE instance_id = $id LIMIT 1", ("$id", started.InstanceId)) is not null)
                    {
                        throw new OrchestrationAlreadyExistsException(
                            started.InstanceId,
                            s,
                            "its final messages are not dispatched yet (a worker sends them once the instance's lock expires); schedule it again then");
                    }

                    DeleteInstance(x, started.InstanceId);
                }

                InsertNewInstance(x, started, now);
                x.Execute(
                    "INSERT INTO inbox (message_id, instance_id, visible_at, data) VALUES ($mid, $iid, $vis, $data)",
                    ("$mid", startMessage.MessageId),
                    ("$iid", started.InstanceId),
                    ("$vis", startMessage.VisibleAt?.UtcTicks ?? now),
                    ("$data", data));
                return true;
            },
            cancellationToken).ConfigureAwait(false);
        this.orchestrationSignal.Set();
    }

    /// <inheritdoc/>
    public async Task SendInstanceMessageAsync(TaskMessage message, CancellationToken cancellationToken)
    {
        long now = this.Now;
        string data = HistorySerializer.Serialize(message);
        await this.executor.RunAsync(
            x =>
            {
                string? status = (string?)x.Scalar("SELECT status FROM instances WHERE instance_id = $id", ("$id", message.InstanceId));
                if (status is null)
                {
                    throw new OrchestrationNotFoundException(message.InstanceId);
                }

                var s = Enum.Parse<OrchestrationRuntimeStatus>(status);
                if (s.IsTerminal())
                {
                    throw new OrchestrationNotRunningException(message.InstanceId, s, message.Event is ExecutionTerminatedEvent ? "terminate" : "raise an event");
                }

                x.Execute(
                    "INSERT OR IGNORE INTO inbox (message_id, instance_id, visible_at, data) VALUES ($mid, $iid, $vis, $data)",
                    ("$mid", message.MessageId),
                    ("$iid", message.InstanceId),
                    ("$vis", message.VisibleAt?.UtcTicks ?? now),
                    ("$data", data));
                return true;
            },
            cancellationToken).ConfigureAwait(false);
        this.orchestrationSignal.Set();
    }

    /// <inheritdoc/>
    public Task<OrchestrationMetadata?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken) =>
        this.reads.RunAsync(
            x =>
            {
                using SqliteDataReader r = x.Query(SelectInstance + " WHERE instance_id = $id", ("$id", instanceId));
                return r.Read() ? ReadMetadata(r, true) : null;
            },
            cancellationToken);

    /// <inheritdoc/>
    public Task<Page<OrchestrationMetadata>> QueryInstancesAsync(InstanceQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentOutOfRangeException.ThrowIfLessThan(query.PageSize, 1, nameof(query.PageSize));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(query.PageSize, InstanceQuery.MaxPageSize, nameof(query.PageSize));
        string? after = InstanceQueryContinuation.ReadLastKey(QueryTokenKind, query);
        return this.reads.RunAsync(
            x =>
            {
                var where = new List<string>();
                var ps = new List<(string, object?)>();
                if (query.Statuses is { Count: > 0 })
                {
                    int i = 0;
                    var names = new List<string>();
                    foreach (OrchestrationRuntimeStatus s in query.Statuses)
                    {
                        names.Add($"$s{i}");
                        ps.Add(($"$s{i}", s.ToString()));
                        i++;
                    }

                    where.Add($"status IN ({string.Join(',', names)})");
                }

                if (query.CreatedFrom is { } from)
                {
                    where.Add("created_at >= $from");
                    ps.Add(("$from", from.UtcTicks));
                }

                if (query.CreatedTo is { } to)
                {
                    where.Add("created_at < $to");
                    ps.Add(("$to", to.UtcTicks));
                }

                if (query.InstanceIdPrefix is { Length: > 0 } prefix)
                {
                    // The range lets the primary key index find the prefix; the substr test is the exact match.
                    where.Add("instance_id >= $prefix AND substr(instance_id, 1, length($prefix)) = $prefix");
                    ps.Add(("$prefix", prefix));
                    if (PrefixUpperBound(prefix) is { } end)
                    {
                        where.Add("instance_id < $prefixEnd");
                        ps.Add(("$prefixEnd", end));
                    }
                }

                if (after is not null)
                {
                    // Keyset paging: the page after the last id returned, never an OFFSET (which would skip or
                    // repeat rows when instances are created or deleted between pages, and rescans what it skips).
                    where.Add("instance_id > $after");
                    ps.Add(("$after", after));
                }

                // One row more than the page tells whether there is a next page. The count is a validated int,
                // written into the text: SQLite re-plans (re-prepares) a statement on every run when its LIMIT
                // is a bound parameter. instance_id compares as BINARY (UTF-8 bytes), the same order as ordinal
                // UTF-16 comparison except for characters outside the BMP against U+E000-U+FFFF.
                int limit = query.PageSize + 1;
                string sql = (query.FetchInputsAndOutputs ? SelectInstance : SelectInstanceSummary)
                    + (where.Count > 0 ? " WHERE " + string.Join(" AND ", where) : string.Empty)
                    + $" ORDER BY instance_id LIMIT {limit.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
                var list = new List<OrchestrationMetadata>();
                using SqliteDataReader r = x.Query(sql, [.. ps]);
                while (r.Read())
                {
                    list.Add(ReadMetadata(r, query.FetchInputsAndOutputs));
                }

                string? next = null;
                if (list.Count > query.PageSize)
                {
                    list.RemoveAt(list.Count - 1);
                    next = InstanceQueryContinuation.Create(QueryTokenKind, query, list[^1].InstanceId);
                }

                return new Page<OrchestrationMetadata>(list, next);
            },
            cancellationToken);
    }

    /// <inheritdoc/>
    public Task<IReadOnlyList<HistoryEvent>?> GetHistoryAsync(string instanceId, CancellationToken cancellationToken) =>
        this.reads.RunAsync<IReadOnlyList<HistoryEvent>?>(
            x =>
            {
                if (x.Scalar("SELECT 1 FROM instances WHERE instance_id = $id", ("$id", instanceId)) is null)
                {
                    return null;
                }

                return LoadHistory(x, instanceId);
            },
            cancellationToken);

    /// <inheritdoc/>
    public Task<bool> PurgeInstanceAsync(string instanceId, CancellationToken cancellationToken) =>
        this.executor.RunAsync(
            x =>
            {
                string? status = (string?)x.Scalar("SELECT status FROM instances WHERE instance_id = $id", ("$id", instanceId));
                if (status is null)
                {
                    return false;
                }

                var s = Enum.Parse<OrchestrationRuntimeStatus>(status);
                if (!s.IsTerminal())
                {
                    throw new OrchestrationNotRunningException(instanceId, s, "purge (only finished instances can be purged; terminate it first)");
                }

                // A worker that died between committing the final checkpoint and dispatching it leaves
                // an outbox (e.g. the result for a parent) that only the instance's next work item sends.
                if (x.Scalar("SELECT 1 FROM outbox WHERE instance_id = $id LIMIT 1", ("$id", instanceId)) is not null)
                {
                    throw new OrchestrationNotRunningException(instanceId, s, "purge yet (its final messages are not dispatched; a worker sends them once the instance's lock expires)");
                }

                DeleteInstance(x, instanceId);
                return true;
            },
            cancellationToken);

    /// <inheritdoc/>
    public Task<int> PurgeInstancesAsync(PurgeInstancesFilter filter, CancellationToken cancellationToken)
    {
        IReadOnlyCollection<OrchestrationRuntimeStatus> statuses = filter.Statuses is { Count: > 0 } given
            ? given
            : [OrchestrationRuntimeStatus.Completed, OrchestrationRuntimeStatus.Failed, OrchestrationRuntimeStatus.Terminated];
        if (statuses.FirstOrDefault(s => !s.IsTerminal()) is var bad && statuses.Any(s => !s.IsTerminal()))
        {
            throw new ArgumentException($"Only finished instances can be purged; {bad} is not a terminal status.", nameof(filter));
        }

        return this.executor.RunAsync(
            x =>
            {
                var ids = new List<string>();
                string sql = $"SELECT instance_id FROM instances WHERE status IN ({string.Join(',', statuses.Select(s => $"'{s}'"))})"
                    + " AND created_at >= $from AND created_at < $to"
                    + " AND instance_id NOT IN (SELECT instance_id FROM outbox)"; // final messages not yet dispatched (see PurgeInstanceAsync)
                using (SqliteDataReader r = x.Query(sql, ("$from", filter.CreatedFrom?.UtcTicks ?? long.MinValue), ("$to", filter.CreatedTo?.UtcTicks ?? long.MaxValue)))
                {
                    while (r.Read())
                    {
                        ids.Add(r.GetString(0));
                    }
                }

                foreach (string id in ids)
                {
                    DeleteInstance(x, id);
                }

                return ids.Count;
            },
            cancellationToken);
    }

    /// <inheritdoc/>
    public async Task<OrchestrationWorkItem?> LockNextOrchestrationWorkItemAsync(TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        IReadOnlyList<OrchestrationWorkItem> items = await this.LockNextOrchestrationWorkItemsAsync(1, lockTimeout, cancellationToken).ConfigureAwait(false);
        return items.Count == 0 ? null : items[0];
    }

    /// <summary>
    /// Locks up to <paramref name="maxCount"/> instances that have deliverable messages (oldest message
    /// first), each with its own lock token, in one store operation; empty when none.
    /// </summary>
    /// <remarks>
    /// The store thread only reads and locks rows; the JSON is parsed afterwards on the caller's
    /// thread, because the store thread serializes every operation of the process. Unreadable
    /// messages go to the poison table in a follow-up operation; an instance left with no readable
    /// message is unlocked again.
    /// </remarks>
    public Task<IReadOnlyList<OrchestrationWorkItem>> LockNextOrchestrationWorkItemsAsync(int maxCount, TimeSpan lockTimeout, CancellationToken cancellationToken) =>
        this.LockNextAsync(maxCount, lockTimeout, null, cancellationToken);

    /// <inheritdoc/>
    /// <remarks>
    /// For an instance with a kept history, only its execution id, history count and the two events the check compares
    /// are read; if they match, the work item's history is the kept list, and if not, the whole history is read after all.
    /// </remarks>
    Task<IReadOnlyList<OrchestrationWorkItem>> IBatchWorkItemSource.LockNextOrchestrationWorkItemsAsync(int maxCount, TimeSpan lockTimeout, Func<string, KeptHistory?> keptHistory, CancellationToken cancellationToken) =>
        this.LockNextAsync(maxCount, lockTimeout, keptHistory, cancellationToken);

    private async Task<IReadOnlyList<OrchestrationWorkItem>> LockNextAsync(int maxCount, TimeSpan lockTimeout, Func<string, KeptHistory?>? keptHistory, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCount, 1);
        int maxMessages = this.options.MaxMessagesPerWorkItem;
        for (int attempt = 0; attempt < 16; attempt++)
        {
            List<LockedInstance> locked = await this.executor.RunAsync(
                x => this.LockInstances(x, maxCount, maxMessages, lockTimeout, keptHistory),
                cancellationToken).ConfigureAwait(false);
            if (locked.Count == 0)
            {
                return [];
            }

            var items = new List<OrchestrationWorkItem>(locked.Count);
            var poisoned = new List<(long Id, string MessageId, string InstanceId, string Data, string Reason)>();
            var unlock = new List<LockedInstance>();
            JsonException? historyError = null;
            foreach (LockedInstance l in locked)
            {
                var messages = new List<TaskMessage>(l.Messages.Count);
                foreach (var (id, messageId, data) in l.Messages)
                {
                    try
                    {
                        messages.Add(HistorySerializer.DeserializeMessage(data));
                    }
                    catch (JsonException ex)
                    {
                        poisoned.Add((id, messageId, l.InstanceId, data, $"unreadable message: {ex.Message}"));
                    }
                }

                IReadOnlyList<HistoryEvent> history;
                try
                {
                    history = l.Kept is { } kept && KeptHistoryMatches(kept, l.History)
                        ? kept.Events
                        : ParseHistory(l.Kept is null ? l.History : await this.executor.RunAsync(x => ReadHistoryRows(x, l.InstanceId), cancellationToken).ConfigureAwait(false));
                }
                catch (JsonException ex)
                {
                    // As before, a history that cannot be read fails the fetch and leaves the instance unlocked.
                    historyError ??= ex;
                    unlock.Add(l);
                    continue;
                }

                if (messages.Count == 0)
                {
                    unlock.Add(l);
                    continue;
                }

                items.Add(new OrchestrationWorkItem
                {
                    InstanceId = l.InstanceId,
                    LockToken = l.LockToken,
                    History = history,
                    Messages = messages,
                    BackendState = new WorkItemState { HistoryCount = history.Count },
                });
            }

            if (poisoned.Count > 0 || unlock.Count > 0)
            {
                await this.executor.RunAsync(
                    x =>
                    {
                        long now = this.Now;
                        foreach (var p in poisoned)
                        {
                            MoveToPoison(x, "inbox", p.Id, p.MessageId, p.InstanceId, p.Data, p.Reason, now);
                        }

                        foreach (LockedInstance l in unlock)
                        {
                            x.Execute(
                                "UPDATE instances SET lock_owner = NULL, lock_expires_at = NULL WHERE instance_id = $id AND lock_owner = $owner",
                                ("$id", l.InstanceId),
                                ("$owner", l.LockToken));
                        }

                        return true;
                    },
                    CancellationToken.None).ConfigureAwait(false);
            }

            if (items.Count > 0)
            {
                return items;
            }

            if (historyError is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(historyError);
            }

            // Every message of the instances found was unreadable and is now in the poison table: look again.
        }

        return [];
    }

    /// <inheritdoc/>
    public async Task CommitCheckpointAsync(OrchestrationWorkItem workItem, OrchestrationCheckpoint checkpoint, CancellationToken cancellationToken)
    {
        var itemState = (WorkItemState)workItem.BackendState!;
        long now = this.Now;
        var write = new CheckpointWrite(checkpoint);
        int historyCount = await this.executor.RunAsync(
            x =>
            {
                int seq = WriteCheckpoint(x, workItem, itemState, write, now);
                foreach (OutboxRow row in write.Outbox)
                {
                    x.Execute(
                        "INSERT OR IGNORE INTO outbox (message_id, instance_id, data) VALUES ($mid, $id, $data)",
                        ("$mid", row.MessageId),
                        ("$id", workItem.InstanceId),
                        ("$data", row.Data));
                }

                return seq;
            },
            cancellationToken).ConfigureAwait(false);

        // Only once committed: the next checkpoint appends after these events, and dispatch can route
        // this checkpoint's outbox rows without parsing them again.
        this.SignalIfFinished(workItem.InstanceId, write);
        itemState.HistoryCount = historyCount;
        itemState.Outbox = checkpoint.Outbox.Count == 0 ? null : checkpoint.Outbox.ToDictionary(m => m.MessageId, StringComparer.Ordinal);
    }

    /// <inheritdoc/>
    public Task DispatchOutboxAsync(OrchestrationWorkItem workItem, CancellationToken cancellationToken) =>
        this.DispatchOutboxAsync(workItem, 0, TimeSpan.Zero, cancellationToken);

    /// <inheritdoc/>
    public async Task<IReadOnlyList<ActivityWorkItem>> DispatchOutboxAsync(OrchestrationWorkItem workItem, int maxActivities, TimeSpan activityLockTimeout, CancellationToken cancellationToken)
    {
        long now = this.Now;
        Dictionary<string, TaskMessage>? known = (workItem.BackendState as WorkItemState)?.Outbox;
        var handedOff = new List<ActivityWorkItem>();
        var (orchestrations, activities) = await this.executor.RunAsync(
            x =>
            {
                handedOff.Clear();
                List<OutboxRow> rows = ReadOutbox(x, workItem.InstanceId, known);
                var routed = DispatchRows(x, workItem.InstanceId, rows, maxActivities, activityLockTimeout, now, handedOff);
                x.Execute("DELETE FROM outbox WHERE instance_id = $id", ("$id", workItem.InstanceId));
                return routed;
            },
            cancellationToken).ConfigureAwait(false);
        this.Signal(orchestrations > 0, activities > 0);
        return handedOff;
    }

    /// <inheritdoc/>
    public async Task ReleaseOrchestrationWorkItemAsync(OrchestrationWorkItem workItem, IReadOnlyCollection<string> consumedMessageIds, CancellationToken cancellationToken)
    {
        long now = this.Now;
        bool more = await this.executor.RunAsync(x => Release(x, workItem, consumedMessageIds, now), cancellationToken).ConfigureAwait(false);
        this.Signal(more, activities: false);
    }

    /// <inheritdoc/>
    public bool CheckpointsInOneWrite => this.options.CheckpointInOneTransaction;

    /// <inheritdoc/>
    public async Task<IReadOnlyList<ActivityWorkItem>> CheckpointAsync(
        OrchestrationWorkItem workItem,
        OrchestrationCheckpoint? checkpoint,
        IReadOnlyCollection<string> consumedMessageIds,
        int maxActivities,
        TimeSpan activityLockTimeout,
        CancellationToken cancellationToken)
    {
        var itemState = (WorkItemState)workItem.BackendState!;
        long now = this.Now;
        CheckpointWrite? write = checkpoint is null ? null : new CheckpointWrite(checkpoint);
        var handedOff = new List<ActivityWorkItem>();
        var (historyCount, orchestrations, activities, more) = await this.executor.RunAsync(
            x =>
            {
                handedOff.Clear();
                int seq = write is null ? itemState.HistoryCount : WriteCheckpoint(x, workItem, itemState, write, now);

                // Rows a crashed three-step checkpoint left go first; this checkpoint's outbox is routed from memory
                // and never written to the outbox table.
                List<OutboxRow> rows = ReadOutbox(x, workItem.InstanceId, itemState.Outbox);
                if (rows.Count > 0)
                {
                    x.Execute("DELETE FROM outbox WHERE instance_id = $id", ("$id", workItem.InstanceId));
                }

                if (write is not null)
                {
                    rows.AddRange(write.Outbox);
                }

                var (o, a) = DispatchRows(x, workItem.InstanceId, rows, maxActivities, activityLockTimeout, now, handedOff);
                return (seq, o, a, Release(x, workItem, consumedMessageIds, now));
            },
            cancellationToken).ConfigureAwait(false);
        itemState.HistoryCount = historyCount;
        itemState.Outbox = null;
        this.Signal(orchestrations > 0 || more, activities > 0);
        this.SignalIfFinished(workItem.InstanceId, write);
        return handedOff;
    }

    /// <inheritdoc/>
    public async Task AbandonOrchestrationWorkItemAsync(OrchestrationWorkItem workItem, CancellationToken cancellationToken)
    {
        await this.executor.RunAsync(
            x => x.Execute(
                "UPDATE instances SET lock_owner = NULL, lock_expires_at = NULL WHERE instance_id = $id AND lock_owner = $owner",
                ("$id", workItem.InstanceId),
                ("$owner", workItem.LockToken)),
            cancellationToken).ConfigureAwait(false);
        this.orchestrationSignal.Set();
    }

    /// <inheritdoc/>
    public async Task<ActivityWorkItem?> LockNextActivityWorkItemAsync(TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        IReadOnlyList<ActivityWorkItem> items = await this.LockNextActivityWorkItemsAsync(1, lockTimeout, cancellationToken).ConfigureAwait(false);
        return items.Count == 0 ? null : items[0];
    }

    /// <summary>
    /// Locks up to <paramref name="maxCount"/> deliverable activity work items, oldest first, each with
    /// its own lock token, in one store operation; empty when none. Parsing happens off the store
    /// thread; unreadable items go to the poison table in a follow-up operation.
    /// </summary>
    public async Task<IReadOnlyList<ActivityWorkItem>> LockNextActivityWorkItemsAsync(int maxCount, TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCount, 1);
        for (int attempt = 0; attempt < 16; attempt++)
        {
            List<(long Id, string MessageId, string Data, int DequeueCount, string Token)> rows = await this.executor.RunAsync(
                x =>
                {
                    long now = this.Now;
                    long expires = now + lockTimeout.Ticks;
                    var found = new List<(long Id, string MessageId, string Data, int DequeueCount, string Token)>();
                    // A constant LIMIT (a bound one makes SQLite re-prepare the statement on every run).
                    using (SqliteDataReader r = x.Query(
                        "SELECT id, message_id, data, dequeue_count FROM tasks WHERE visible_at <= $now ORDER BY visible_at, id LIMIT 256",
                        ("$now", now)))
                    {
                        while (found.Count < maxCount && r.Read())
                        {
                            found.Add((r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetInt32(3) + 1, NewLockToken()));
                        }
                    }

                    foreach (var f in found)
                    {
                        x.Execute(
                            "UPDATE tasks SET visible_at = $exp, lock_owner = $owner, dequeue_count = $dc WHERE id = $id",
                            ("$exp", expires),
                            ("$owner", f.Token),
                            ("$dc", f.DequeueCount),
                            ("$id", f.Id));
                    }

                    return found;
                },
                cancellationToken).ConfigureAwait(false);
            if (rows.Count == 0)
            {
                return [];
            }

            var items = new List<ActivityWorkItem>(rows.Count);
            var poisoned = new List<(long Id, string MessageId, string Data, string Token, string Reason)>();
            foreach (var (id, messageId, data, dequeueCount, token) in rows)
            {
                try
                {
                    TaskMessage m = HistorySerializer.DeserializeMessage(data);
                    if (m.Event is not TaskScheduledEvent scheduled || m.ExecutionId is null)
                    {
                        throw new JsonException("an activity work item must carry a TaskScheduled event and an execution id");
                    }

                    items.Add(ActivityWorkItem.For(messageId, m, scheduled, token, dequeueCount));
                }
                catch (JsonException ex)
                {
                    poisoned.Add((id, messageId, data, token, $"unreadable message: {ex.Message}"));
                }
            }

            if (poisoned.Count > 0)
            {
                await this.executor.RunAsync(
                    x =>
                    {
                        long now = this.Now;
                        foreach (var p in poisoned)
                        {
                            // Still ours (locked above): move it; otherwise its lock expired and someone else has it.
                            if (x.Scalar("SELECT 1 FROM tasks WHERE id = $id AND lock_owner = $owner", ("$id", p.Id), ("$owner", p.Token)) is not null)
                            {
                                MoveToPoison(x, "tasks", p.Id, p.MessageId, null, p.Data, p.Reason, now);
                            }
                        }

                        return true;
                    },
                    CancellationToken.None).ConfigureAwait(false);
            }

            if (items.Count > 0)
            {
                return items;
            }
        }

        return [];
    }

    /// <inheritdoc/>
    public Task RenewActivityWorkItemLockAsync(ActivityWorkItem workItem, TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        long expires = this.Now + lockTimeout.Ticks;
        return this.executor.RunAsync(
            x => x.Execute(
                "UPDATE tasks SET visible_at = $exp WHERE message_id = $mid AND lock_owner = $owner",
                ("$exp", expires),
                ("$mid", workItem.MessageId),
                ("$owner", workItem.LockToken)),
            cancellationToken);
    }

    /// <inheritdoc/>
    public async Task CompleteActivityWorkItemAsync(ActivityWorkItem workItem, TaskMessage result, CancellationToken cancellationToken)
    {
        long now = this.Now;
        string data = HistorySerializer.Serialize(result);
        await this.executor.RunAsync(
            x =>
            {
                // Even if the lock was lost, the work is done: record the result (duplicates are
                // ignored by message id here and by task id against history).
                x.Execute("DELETE FROM tasks WHERE message_id = $mid", ("$mid", workItem.MessageId));
                if (x.Scalar("SELECT 1 FROM instances WHERE instance_id = $id", ("$id", result.InstanceId)) is not null)
                {
                    x.Execute(
                        "INSERT OR IGNORE INTO inbox (message_id, instance_id, visible_at, data) VALUES ($mid, $iid, $vis, $data)",
                        ("$mid", result.MessageId),
                        ("$iid", result.InstanceId),
                        ("$vis", now),
                        ("$data", data));
                }

                return true;
            },
            cancellationToken).ConfigureAwait(false);
        this.orchestrationSignal.Set();
    }

    /// <inheritdoc/>
    public async Task AbandonActivityWorkItemAsync(ActivityWorkItem workItem, CancellationToken cancellationToken)
    {
        long now = this.Now;
        await this.executor.RunAsync(
            x => x.Execute(
                "UPDATE tasks SET visible_at = $now, lock_owner = NULL WHERE message_id = $mid AND lock_owner = $owner",
                ("$now", now),
                ("$mid", workItem.MessageId),
                ("$owner", workItem.LockToken)),
            cancellationToken).ConfigureAwait(false);
        this.activitySignal.Set();
    }

    /// <inheritdoc/>
    public Task WaitForWorkAsync(WorkItemKind kind, TimeSpan timeout, CancellationToken cancellationToken) =>
        (kind == WorkItemKind.Orchestration ? this.orchestrationSignal : this.activitySignal).WaitAsync(timeout, cancellationToken);

    /// <summary>Counts rows per table; for tests and diagnostics.</summary>
    internal Task<Dictionary<string, long>> CountRowsAsync(CancellationToken cancellationToken) =>
        this.executor.RunAsync(
            x =>
            {
                var d = new Dictionary<string, long>();
                foreach (string t in new[] { "instances", "history", "inbox", "tasks", "outbox", "poison" })
                {
                    d[t] = (long)x.Scalar($"SELECT COUNT(*) FROM {t}")!;
                }

                return d;
            },
            cancellationToken);

    /// <summary>Runs <paramref name="action"/> on the store's thread, inside its transaction; for tests that hold the store up.</summary>
    internal Task RunOnStoreAsync(Action action, CancellationToken cancellationToken) =>
        this.executor.RunAsync(
            _ =>
            {
                action();
                return true;
            },
            cancellationToken);

    /// <summary>Runs raw SQL; for tests that corrupt the store on purpose.</summary>
    internal Task<int> ExecuteRawAsync(string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters) =>
        this.executor.RunAsync(x => x.Execute(sql, parameters), cancellationToken);

    /// <inheritdoc/>
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref this.disposed, 1) == 0)
        {
            // The checkpointer's connection first: the store's, closed last, then checkpoints and removes the log.
            this.checkpointer?.Dispose();
            if (!ReferenceEquals(this.reads, this.executor))
            {
                this.reads.Dispose();
            }

            this.executor.Dispose();
        }

        return ValueTask.CompletedTask;
    }

    private const string SelectInstance =
        "SELECT instance_id, name, execution_id, status, created_at, last_updated_at, completed_at, input, output, custom_status, failure, parent_instance_id FROM instances";

    /// <summary>As <see cref="SelectInstance"/> without input, output and custom status (the large columns), for queries that leave them out.</summary>
    private const string SelectInstanceSummary =
        "SELECT instance_id, name, execution_id, status, created_at, last_updated_at, completed_at, NULL, NULL, NULL, failure, parent_instance_id FROM instances";

    /// <summary>The backend kind named in instance query continuation tokens.</summary>
    private const string QueryTokenKind = "sqlite";

    private long Now => this.time.GetUtcNow().UtcTicks;

    private static string NewLockToken()
    {
#pragma warning disable RS0030 // A lock token is not replayed; it only has to be unique.
        return Guid.NewGuid().ToString("N");
#pragma warning restore RS0030
    }

    private static OrchestrationMetadata ReadMetadata(SqliteDataReader r, bool withData) => new()
    {
        InstanceId = r.GetString(0),
        Name = r.GetString(1),
        ExecutionId = r.GetString(2),
        RuntimeStatus = Enum.Parse<OrchestrationRuntimeStatus>(r.GetString(3)),
        CreatedAt = new DateTimeOffset(r.GetInt64(4), TimeSpan.Zero),
        LastUpdatedAt = new DateTimeOffset(r.GetInt64(5), TimeSpan.Zero),
        CompletedAt = r.IsDBNull(6) ? null : new DateTimeOffset(r.GetInt64(6), TimeSpan.Zero),
        SerializedInput = withData && !r.IsDBNull(7) ? r.GetString(7) : null,
        SerializedOutput = withData && !r.IsDBNull(8) ? r.GetString(8) : null,
        SerializedCustomStatus = withData && !r.IsDBNull(9) ? r.GetString(9) : null,
        FailureDetails = r.IsDBNull(10) ? null : HistorySerializer.DeserializeFailure(r.GetString(10)),
        ParentInstanceId = r.IsDBNull(11) ? null : r.GetString(11),
    };

    /// <summary>
    /// A string above every string that starts with <paramref name="prefix"/> (its last character plus one) in SQLite's
    /// BINARY order; null when that character is a surrogate or would step into one or past the BMP (then only the exact
    /// test bounds the range).
    /// </summary>
    private static string? PrefixUpperBound(string prefix)
    {
        char last = prefix[^1];
        return (last >= 0xD7FF && last <= 0xDFFF) || last == char.MaxValue ? null : prefix[..^1] + (char)(last + 1);
    }

    private static List<HistoryEvent> LoadHistory(SqliteExecutor x, string instanceId) => ParseHistory(ReadHistoryRows(x, instanceId));

    private static void InsertNewInstance(SqliteExecutor x, ExecutionStartedEvent started, long now) =>
        x.Execute(
            """
            INSERT INTO instances (instance_id, execution_id, name, status, input, parent_instance_id, created_at, last_updated_at, history_count)
            VALUES ($id, $exec, $name, 'Pending', $input, $parent, $now, $now, 0)
            """,
            ("$id", started.InstanceId),
            ("$exec", started.ExecutionId),
            ("$name", started.Name),
            ("$input", started.Input),
            ("$parent", started.Parent?.InstanceId),
            ("$now", now));

    /// <summary>
    /// Makes sure the instance a start message targets exists: creates it, or re-creates it if a
    /// finished instance holds the id. False when a different, unfinished instance holds the id;
    /// the parent is then told that the sub-orchestration could not start.
    /// </summary>
    private static bool EnsureSubOrchestrationInstance(SqliteExecutor x, ExecutionStartedEvent started, long now, bool isOwnRestart)
    {
        OrchestrationRuntimeStatus? status = null;
        string? exec = null;
        using (SqliteDataReader r = x.Query("SELECT status, execution_id FROM instances WHERE instance_id = $id", ("$id", started.InstanceId)))
        {
            if (r.Read())
            {
                status = Enum.Parse<OrchestrationRuntimeStatus>(r.GetString(0));
                exec = r.GetString(1);
            }
        }

        if (status is null)
        {
            InsertNewInstance(x, started, now);
            return true;
        }

        // A re-dispatch of the same start, or the instance's own ContinueAsNew restart (from its own
        // outbox: a parent's start aimed at an instance between executions must be refused).
        if (exec == started.ExecutionId || (status == OrchestrationRuntimeStatus.ContinuedAsNew && isOwnRestart))
        {
            return true;
        }

        if (status.Value.IsTerminal())
        {
            DeleteInstance(x, started.InstanceId);
            InsertNewInstance(x, started, now);
            return true;
        }

        if (started.Parent is { } parent)
        {
            var failed = new TaskMessage
            {
                MessageId = $"{parent.InstanceId}|{parent.ExecutionId}|subfail|{parent.TaskScheduledId}",
                InstanceId = parent.InstanceId,
                ExecutionId = parent.ExecutionId,
                Event = new SubOrchestrationInstanceFailedEvent
                {
                    Timestamp = new DateTimeOffset(now, TimeSpan.Zero),
                    TaskScheduledId = parent.TaskScheduledId,
                    FailureDetails = new TaskFailureDetails(
                        typeof(OrchestrationAlreadyExistsException).FullName!,
                        $"Sub-orchestration '{started.Name}' could not start: instance '{started.InstanceId}' already exists and is {status}.",
                        IsNonRetriable: true),
                },
            };
            x.Execute(
                "INSERT OR IGNORE INTO inbox (message_id, instance_id, visible_at, data) VALUES ($mid, $iid, $vis, $data)",
                ("$mid", failed.MessageId),
                ("$iid", failed.InstanceId),
                ("$vis", now),
                ("$data", HistorySerializer.Serialize(failed)));
        }

        return false;
    }

    private static void DeleteInstance(SqliteExecutor x, string instanceId)
    {
        foreach (string table in new[] { "instances", "history", "inbox", "tasks", "outbox" })
        {
            x.Execute($"DELETE FROM {table} WHERE instance_id = $id", ("$id", instanceId));
        }
    }

    private static void MoveToPoison(SqliteExecutor x, string source, long rowId, string messageId, string? instanceId, string data, string reason, long now)
    {
        x.Execute(
            "INSERT INTO poison (source, message_id, instance_id, reason, data, created_at) VALUES ($src, $mid, $iid, $reason, $data, $now)",
            ("$src", source),
            ("$mid", messageId),
            ("$iid", instanceId),
            ("$reason", reason),
            ("$data", data),
            ("$now", now));
        x.Execute($"DELETE FROM {source} WHERE id = $id", ("$id", rowId));
    }

    /// <summary>True if the two stored events read for <paramref name="kept"/> are the ones it has at those positions.</summary>
    private static bool KeptHistoryMatches(KeptHistory kept, List<string> rows) =>
        rows.Count == 2
        && HistorySerializer.DeserializeEvent(rows[0]).Equals(kept.EpisodeStart)
        && HistorySerializer.DeserializeEvent(rows[1]).Equals(kept.LastEvent);

    private static List<HistoryEvent> ParseHistory(List<string> rows)
    {
        var history = new List<HistoryEvent>(rows.Count);
        foreach (string data in rows)
        {
            history.Add(HistorySerializer.DeserializeEvent(data));
        }

        return history;
    }

    private static List<string> ReadHistoryRows(SqliteExecutor x, string instanceId)
    {
        var history = new List<string>();
        using SqliteDataReader r = x.Query("SELECT data FROM history WHERE instance_id = $id ORDER BY seq", ("$id", instanceId));
        while (r.Read())
        {
            history.Add(r.GetString(0));
        }

        return history;
    }

    /// <summary>
    /// The two events of a kept history's check (its last episode's first event, its last event) as stored, if the
    /// stored history has the kept one's execution and length; null otherwise.
    /// </summary>
    private static List<string>? ReadKeptHistoryCheck(SqliteExecutor x, string instanceId, KeptHistory kept)
    {
        using (SqliteDataReader r = x.Query("SELECT execution_id, history_count FROM instances WHERE instance_id = $id", ("$id", instanceId)))
        {
            if (!r.Read() || r.IsDBNull(0) || r.GetString(0) != kept.ExecutionId || r.GetInt64(1) != kept.Events.Count)
            {
                return null;
            }
        }

        var rows = new List<string>(2);
        using (SqliteDataReader r = x.Query(
            "SELECT data FROM history WHERE instance_id = $id AND seq IN ($start, $last) ORDER BY seq",
            ("$id", instanceId),
            ("$start", kept.EpisodeStartIndex),
            ("$last", kept.Events.Count - 1)))
        {
            while (r.Read())
            {
                rows.Add(r.GetString(0));
            }
        }

        // One row when the last episode is a single event; the check then compares it twice.
        return rows.Count == 1 ? [rows[0], rows[0]] : rows;
    }

    /// <summary>On the store thread: finds and locks instances with deliverable messages, and reads their rows unparsed.</summary>
    private List<LockedInstance> LockInstances(SqliteExecutor x, int maxCount, int maxMessages, TimeSpan lockTimeout, Func<string, KeptHistory?>? keptHistory)
    {
        long now = this.Now;
        long expires = now + lockTimeout.Ticks;
        var ids = new List<string>(maxCount);
        // A Pending instance has no timers, so a message of it not yet visible is its delayed
        // start: until that is due, other messages (early events) cannot make progress.
        using (SqliteDataReader r = x.Query(
            """
            SELECT m.instance_id FROM inbox m JOIN instances i ON i.instance_id = m.instance_id
            WHERE m.visible_at <= $now AND (i.lock_expires_at IS NULL OR i.lock_expires_at <= $now)
              AND (i.status <> 'Pending' OR NOT EXISTS (SELECT 1 FROM inbox s WHERE s.instance_id = i.instance_id AND s.visible_at > $now))
            ORDER BY m.visible_at, m.id LIMIT 256
            """,
            ("$now", now)))
        {
            // Several messages of one instance come one after another; each instance is locked once.
            while (ids.Count < maxCount && r.Read())
            {
                string id = r.GetString(0);
                if (!ids.Contains(id))
                {
                    ids.Add(id);
                }
            }
        }

        if (ids.Count == 0)
        {
            this.DeleteOrphanMessages(x, now);
            return [];
        }

        var locked = new List<LockedInstance>(ids.Count);
        foreach (string instanceId in ids)
        {
            string token = NewLockToken();
            x.Execute(
                "UPDATE instances SET lock_owner = $owner, lock_expires_at = $exp WHERE instance_id = $id",
                ("$owner", token),
                ("$exp", expires),
                ("$id", instanceId));

            var messages = new List<(long, string, string)>();
            using (SqliteDataReader r = x.Query(
                "SELECT id, message_id, data FROM inbox WHERE instance_id = $id AND visible_at <= $now ORDER BY id",
                ("$id", instanceId),
                ("$now", now)))
            {
                while (messages.Count < maxMessages && r.Read())
                {
                    messages.Add((r.GetInt64(0), r.GetString(1), r.GetString(2)));
                }
            }

            x.Execute(
                "UPDATE inbox SET dequeue_count = dequeue_count + 1 WHERE instance_id = $id AND visible_at <= $now",
                ("$id", instanceId),
                ("$now", now));

            // A history the worker keeps is only checked here (off this thread); anything else is read whole.
            KeptHistory? kept = keptHistory?.Invoke(instanceId);
            List<string>? check = kept is null ? null : ReadKeptHistoryCheck(x, instanceId, kept);
            locked.Add(check is null
                ? new LockedInstance(instanceId, token, messages, ReadHistoryRows(x, instanceId), null)
                : new LockedInstance(instanceId, token, messages, check, kept));
        }

        return locked;
    }

    /// <summary>An instance locked by <see cref="LockInstances"/>, with its rows as stored.</summary>
    /// <remarks>With <paramref name="Kept"/>, <paramref name="History"/> holds only the two rows its check compares.</remarks>
    private sealed record LockedInstance(string InstanceId, string LockToken, List<(long Id, string MessageId, string Data)> Messages, List<string> History, KeptHistory? Kept);

    /// <summary>What the backend keeps in <see cref="OrchestrationWorkItem.BackendState"/>.</summary>
    private sealed class WorkItemState
    {
        /// <summary>History rows of the current execution; the next checkpoint appends after them.</summary>
        public int HistoryCount { get; set; }

        /// <summary>The outbox of the last committed checkpoint, by message id; null when empty.</summary>
        public Dictionary<string, TaskMessage>? Outbox { get; set; }
    }

    /// <summary>
    /// Writes a checkpoint's state and history events, only if <paramref name="workItem"/> still holds the lock;
    /// returns the history count after it.
    /// </summary>
    private static int WriteCheckpoint(SqliteExecutor x, OrchestrationWorkItem workItem, WorkItemState itemState, CheckpointWrite write, long now)
    {
        // The state update doubles as the lock check: it matches no row unless this work item
        // still holds the lock, and then nothing has been written.
        InstanceState state = write.State;
        int count = (write.ReplaceHistory ? 0 : itemState.HistoryCount) + write.Events.Count;
        int updated = x.Execute(
            """
            UPDATE instances SET execution_id = $exec, name = $name, status = $status, input = $input, output = $output,
                custom_status = $custom, failure = $failure, parent_instance_id = $parent, last_updated_at = $now,
                completed_at = $completed, history_count = $count
            WHERE instance_id = $id AND lock_owner = $owner
            """,
            ("$exec", state.ExecutionId),
            ("$name", state.Name),
            ("$status", state.Status.ToString()),
            ("$input", state.Input),
            ("$output", state.Output),
            ("$custom", state.CustomStatus),
            ("$failure", write.Failure),
            ("$parent", state.ParentInstanceId),
            ("$now", now),
            ("$completed", state.Status.IsTerminal() ? now : null),
            ("$count", count),
            ("$id", workItem.InstanceId),
            ("$owner", workItem.LockToken));
        if (updated == 0)
        {
            throw new WorkItemLockLostException(workItem.InstanceId);
        }

        int seq = itemState.HistoryCount;
        if (write.ReplaceHistory)
        {
            x.Execute("DELETE FROM history WHERE instance_id = $id", ("$id", workItem.InstanceId));
            seq = 0;
        }

        foreach (var (type, data) in write.Events)
        {
            // The primary key (instance, seq) refuses a second writer appending at the same position.
            x.Execute(
                "INSERT INTO history (instance_id, seq, event_type, data) VALUES ($id, $seq, $type, $data)",
                ("$id", workItem.InstanceId),
                ("$seq", seq++),
                ("$type", type),
                ("$data", data));
        }

        return seq;
    }

    /// <summary>The instance's outbox rows; those this work item committed come with their message, known in memory.</summary>
    private static List<OutboxRow> ReadOutbox(SqliteExecutor x, string instanceId, Dictionary<string, TaskMessage>? known)
    {
        var rows = new List<OutboxRow>();
        using SqliteDataReader r = x.Query("SELECT message_id, data FROM outbox WHERE instance_id = $id", ("$id", instanceId));
        while (r.Read())
        {
            string messageId = r.GetString(0);
            rows.Add(new OutboxRow(messageId, r.GetString(1), known is not null && known.TryGetValue(messageId, out TaskMessage? k) ? k : null));
        }

        return rows;
    }

    /// <summary>
    /// Routes outbox rows to the task queue and the instances' inboxes; up to <paramref name="maxActivities"/> activity
    /// work items visible now are enqueued locked to the caller and added to <paramref name="handedOff"/>. Returns how
    /// many rows went to inboxes and how many to the task queue unlocked.
    /// </summary>
    private static (int Orchestrations, int Activities) DispatchRows(
        SqliteExecutor x, string instanceId, List<OutboxRow> rows, int maxActivities, TimeSpan activityLockTimeout, long now, List<ActivityWorkItem> handedOff)
    {
        int o = 0, a = 0;
        foreach (OutboxRow row in rows)
        {
            // Rows a crashed worker left are parsed here.
            string messageId = row.MessageId, data = row.Data;
            TaskMessage m = row.Message ?? HistorySerializer.DeserializeMessage(data);
            if (m.IsActivityWorkItem)
            {
                long visibleAt = m.VisibleAt?.UtcTicks ?? now;
                if (handedOff.Count < maxActivities && visibleAt <= now && m.Event is TaskScheduledEvent scheduled && m.ExecutionId is not null)
                {
                    // Enqueued already locked to the dispatching worker, as a fetch would lock it (dequeue count 1).
                    string token = NewLockToken();
                    if (x.Execute(
                        "INSERT OR IGNORE INTO tasks (message_id, instance_id, visible_at, lock_owner, dequeue_count, data) VALUES ($mid, $iid, $vis, $owner, 1, $data)",
                        ("$mid", messageId),
                        ("$iid", m.InstanceId),
                        ("$vis", now + activityLockTimeout.Ticks),
                        ("$owner", token),
                        ("$data", data)) == 1)
                    {
                        handedOff.Add(ActivityWorkItem.For(messageId, m, scheduled, token, dequeueCount: 1));
                    }
                    else
                    {
                        a++;
                    }

                    continue;
                }

                x.Execute(
                    "INSERT OR IGNORE INTO tasks (message_id, instance_id, visible_at, data) VALUES ($mid, $iid, $vis, $data)",
                    ("$mid", messageId),
                    ("$iid", m.InstanceId),
                    ("$vis", visibleAt),
                    ("$data", data));
                a++;
                continue;
            }

            if (m.Event is ExecutionStartedEvent started)
            {
                if (!EnsureSubOrchestrationInstance(x, started, now, isOwnRestart: m.InstanceId == instanceId))
                {
                    continue;
                }
            }
            else if (x.Scalar("SELECT 1 FROM instances WHERE instance_id = $id", ("$id", m.InstanceId)) is null)
            {
                // The target was purged; its messages have nowhere to go.
                continue;
            }

            x.Execute(
                "INSERT OR IGNORE INTO inbox (message_id, instance_id, visible_at, data) VALUES ($mid, $iid, $vis, $data)",
                ("$mid", messageId),
                ("$iid", m.InstanceId),
                ("$vis", m.VisibleAt?.UtcTicks ?? now),
                ("$data", data));
            o++;
        }

        return (o, a);
    }

    /// <summary>Deletes the consumed messages and unlocks; true when the instance has more deliverable messages.</summary>
    private static bool Release(SqliteExecutor x, OrchestrationWorkItem workItem, IReadOnlyCollection<string> consumedMessageIds, long now)
    {
        foreach (string id in consumedMessageIds)
        {
            x.Execute("DELETE FROM inbox WHERE message_id = $mid AND instance_id = $iid", ("$mid", id), ("$iid", workItem.InstanceId));
        }

        x.Execute(
            "UPDATE instances SET lock_owner = NULL, lock_expires_at = NULL WHERE instance_id = $id AND lock_owner = $owner",
            ("$id", workItem.InstanceId),
            ("$owner", workItem.LockToken));
        return x.Scalar("SELECT 1 FROM inbox WHERE instance_id = $id AND visible_at <= $now LIMIT 1", ("$id", workItem.InstanceId), ("$now", now)) is not null;
    }

    /// <summary>Instances some caller is waiting on right now; for tests.</summary>
    internal int CompletionWaiterCount => this.completionWaiters.Count;

    /// <inheritdoc/>
    public async Task WaitForCompletionAsync(string instanceId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        TaskCompletionSource waiter = this.completionWaiters.GetOrAdd(instanceId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        try
        {
            await waiter.Task.WaitAsync(timeout, TimeProvider.System, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // The caller polls now.
        }
        finally
        {
            // Dropped unless signalled meanwhile, so an instance nobody finishes leaves nothing behind; another waiter
            // sharing it falls back to its own poll.
            if (!waiter.Task.IsCompleted)
            {
                this.completionWaiters.TryRemove(new KeyValuePair<string, TaskCompletionSource>(instanceId, waiter));
            }
        }
    }

    private void SignalIfFinished(string instanceId, CheckpointWrite? write)
    {
        if (write is not null && write.State.Status.IsTerminal() && this.completionWaiters.TryRemove(instanceId, out TaskCompletionSource? waiter))
        {
            waiter.TrySetResult();
        }
    }

    private void Signal(bool orchestrations, bool activities)
    {
        if (orchestrations)
        {
            this.orchestrationSignal.Set();
        }

        if (activities)
        {
            this.activitySignal.Set();
        }
    }

    /// <summary>An outbox message as stored: its id, its JSON and, when known in memory, the message itself.</summary>
    private sealed record OutboxRow(string MessageId, string Data, TaskMessage? Message);

    /// <summary>A checkpoint serialized off the store thread.</summary>
    private sealed class CheckpointWrite(OrchestrationCheckpoint checkpoint)
    {
        public InstanceState State { get; } = checkpoint.State;

        public bool ReplaceHistory { get; } = checkpoint.ReplaceHistory;

        public string? Failure { get; } = checkpoint.State.FailureDetails is null ? null : HistorySerializer.Serialize(checkpoint.State.FailureDetails);

        public List<(string EventType, string Data)> Events { get; } = checkpoint.NewEvents.Select(e => (e.EventType, HistorySerializer.Serialize(e))).ToList();

        public List<OutboxRow> Outbox { get; } = checkpoint.Outbox.Select(m => new OutboxRow(m.MessageId, HistorySerializer.Serialize(m), m)).ToList();
    }

    private void DeleteOrphanMessages(SqliteExecutor x, long now)
    {
        // Messages whose instance no longer exists (purged meanwhile) would otherwise sit forever.
        x.Execute("DELETE FROM inbox WHERE visible_at <= $now AND instance_id NOT IN (SELECT instance_id FROM instances)", ("$now", now));
    }

    /// <summary>
    /// Wakes the dispatcher loops waiting for work of one kind. A signal is never lost: one given
    /// while no loop waits (say, during a fetch that ran just before the work was committed) makes the
    /// next wait return at once, instead of after the polling interval (up to a second when idle).
    /// </summary>
    private sealed class WorkSignal
    {
        private TaskCompletionSource tcs = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int pending;

        public void Set()
        {
            // Flag first, then wake: a waiter that read the old source is woken by it, one that
            // reads the new source sees the flag.
            Volatile.Write(ref this.pending, 1);
            Interlocked.Exchange(ref this.tcs, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        }

        public async Task WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
        {
            Task signal = Volatile.Read(ref this.tcs).Task;
            if (Interlocked.Exchange(ref this.pending, 0) == 1)
            {
                return;
            }

            try
            {
                await signal.WaitAsync(timeout, TimeProvider.System, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // No local signal within the polling interval: poll the store anyway (other processes).
            }
        }
    }
}

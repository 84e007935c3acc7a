using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Azure;
using Azure.Core;
using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using Azure.Storage.Queues.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Core;
using Orchestrator.Durable.History;

namespace Orchestrator.Durable.AzureStorage;

/// <summary>
/// The Azure Storage backend (Azurite locally): control queues partition the instances between
/// workers by lease, each checkpoint is one conditional entity-group transaction on the instance's
/// history partition, and activities run in the worker that owns their instance.
/// </summary>
/// <remarks>
/// <para><b>Layout</b> (hub <c>H</c>, lower-cased where the service requires): control queues
/// <c>h-control-00..NN</c> (partition = FNV-1a of the instance id mod PartitionCount), <c>h-workitems</c>,
/// <c>h-poison</c>; tables <c>HHistory</c> (PartitionKey = instance id; one chunk row per checkpoint
/// <c>h{executionId}-{seq}</c>, one outbox row per checkpoint with queue-bound messages
/// <c>o{executionId}-{seq}</c>, and the sentinel <c>~sentinel</c> holding the current execution, the next
/// sequence number and a summary), <c>HInstances</c>, <c>HLeases</c>; container <c>h-large</c>.</para>
/// <para><b>Checkpoint</b>: chunk + outbox + sentinel in one transaction, the sentinel written with
/// If-Match on the ETag read at load, so a concurrent writer makes the whole transaction fail
/// (<see cref="WorkItemLockLostException"/>). The instances row is written afterwards, only when
/// something a client sees changed.</para>
/// <para><b>Activities</b> scheduled by an instance go to an in-process queue and their results come
/// back in memory; nothing is lost if the process dies, because activities recorded as scheduled
/// without a result are dispatched again when the instance is next loaded, and a worker that
/// acquires a partition scans it for such instances (at-least-once; the engine drops duplicates).</para>
/// </remarks>
public sealed class AzureStorageOrchestrationBackend : IOrchestrationBackend
{
    private const string SentinelKey = "~sentinel";
    private const string InstanceRowKey = "";

    private const int MaxMessagesPerFetch = 32;

    /// <summary>The backend kind named in instance query continuation tokens.</summary>
    private const string QueryTokenKind = "azure-storage";

    /// <summary>
    /// The instance row's columns a query reads when it leaves out inputs and outputs: the key (for the continuation),
    /// the summary, and the failure (one property or a blob: instance rows keep at most one part per value).
    /// </summary>
    private static readonly string[] InstanceSummaryColumns =
        ["PartitionKey", "InstanceId", "Name", "ExecutionId", "Status", "CreatedAt", "LastUpdatedAt", "CompletedAt", "ParentInstanceId", "FailureCount", "FailureBlob", "Failure0"];

    private readonly AzureStorageOrchestrationBackendOptions options;
    private readonly TimeProvider time;
    private readonly ILogger logger;
    private readonly StorageNames names;
    private readonly StorageRequestCounter counter;
    private readonly TableClient historyTable;
    private readonly TableClient instancesTable;
    private readonly TableClient leasesTable;
    private readonly QueueClient[] controlQueues;
    private readonly QueueClient workItemQueue;
    private readonly QueueClient poisonQueue;
    private readonly PayloadStore payloads;
    private readonly PartitionLeaseManager leases;
    private readonly object gate = new();
    private readonly Dictionary<string, InstanceSession> sessions = new(StringComparer.Ordinal);
    private readonly Queue<InstanceSession> ready = new();
    private readonly HistoryCache cache;
    private readonly ConcurrentQueue<TaskMessage> localActivities = new();
    private readonly ConcurrentDictionary<string, byte> localActivityIds = new(StringComparer.Ordinal);
    private readonly WorkSignal orchestrationSignal = new();
    private readonly WorkSignal activitySignal = new();
    private readonly SemaphoreSlim pollGate = new(1, 1);
    private readonly PollBackoff[] partitionBackoff;
    private readonly PollBackoff workItemBackoff;
    private readonly ConcurrentDictionary<Task, byte> background = new();
    private readonly CancellationTokenSource stopping = new();

    // Queue message id -> times this worker received a message it already held (its visibility ran
    // out while it waited): those raise the dequeue count without being failed deliveries.
    private readonly ConcurrentDictionary<string, long> benignReceives = new(StringComparer.Ordinal);
    private int keeperStarted;
    private int created;
    private int disposed;
    private long deferredRequeues;

    /// <summary>Creates the backend; call <see cref="CreateIfNotExistsAsync"/> before use.</summary>
    /// <exception cref="ArgumentException">The options are invalid, or the connection string cannot be parsed.</exception>
    public AzureStorageOrchestrationBackend(AzureStorageOrchestrationBackendOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        this.options = options;
        this.time = options.TimeProvider;
        this.logger = (options.LoggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Orchestrator.Durable.AzureStorage");
        this.names = new StorageNames(options.TaskHubName, options.PartitionCount);
        this.counter = new StorageRequestCounter(options.TaskHubName);
        TableServiceClient tables;
        QueueServiceClient queues;
        BlobServiceClient blobs;
        try
        {
            tables = options.CreateTableServiceClient(this.Configure(new TableClientOptions()));
            queues = options.CreateQueueServiceClient(this.Configure(new QueueClientOptions { MessageEncoding = QueueMessageEncoding.None }));
            blobs = options.CreateBlobServiceClient(this.Configure(new BlobClientOptions()));
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or InvalidOperationException or UriFormatException)
        {
            throw new ArgumentException(
                $"ConnectionString (setting '{AzureStorageOrchestrationBackendOptions.ConnectionStringSetting}') is not a valid Azure Storage connection string: {ex.Message}",
                nameof(options),
                ex);
        }

        this.historyTable = tables.GetTableClient(this.names.HistoryTable);
        this.instancesTable = tables.GetTableClient(this.names.InstancesTable);
        this.leasesTable = tables.GetTableClient(this.names.LeasesTable);
        this.controlQueues = this.names.ControlQueues.Select(queues.GetQueueClient).ToArray();
        this.workItemQueue = queues.GetQueueClient(this.names.WorkItemQueue);
        this.poisonQueue = queues.GetQueueClient(this.names.PoisonQueue);
        this.payloads = new PayloadStore(blobs.GetBlobContainerClient(this.names.Container));
        this.cache = new HistoryCache(options.HistoryCacheSize);
        this.partitionBackoff = Enumerable.Range(0, options.PartitionCount).Select(_ => new PollBackoff(options.MinPollingInterval, options.MaxPollingInterval)).ToArray();
        this.workItemBackoff = new PollBackoff(options.MinPollingInterval, options.MaxPollingInterval);
        this.leases = new PartitionLeaseManager(this.leasesTable, options, this.logger, this.OnPartitionsAcquiredAsync, this.OnPartitionsLost);
    }

    /// <summary>The options in use.</summary>
    public AzureStorageOrchestrationBackendOptions Options => this.options;

    /// <summary>Requests sent to storage by this backend (tables, queues and blobs, retries included).</summary>
    public long StorageOperationCount => this.counter.Count;

    /// <summary>The requests of <see cref="StorageOperationCount"/> by method and resource kind.</summary>
    internal IReadOnlyDictionary<string, long> StorageOperationsByKind => this.counter.ByKind;

    internal PartitionLeaseManager Leases => this.leases;

    internal QueueClient PoisonQueue => this.poisonQueue;

    internal TableClient HistoryTable => this.historyTable;

    internal TableClient InstancesTable => this.instancesTable;

    internal TableClient LeasesTable => this.leasesTable;

    internal BlobContainerClient Container => this.payloads.Container;

    internal int CachedHistories => this.cache.Count;

    /// <summary>How often a message fetched before it was due (a far timer, a delayed start) was hidden again.</summary>
    internal long DeferredRequeues => Interlocked.Read(ref this.deferredRequeues);

    internal QueueClient ControlQueueFor(string instanceId) => this.controlQueues[this.PartitionOf(instanceId)];

    internal int PartitionOf(string instanceId) => StorageNames.PartitionOf(instanceId, this.options.PartitionCount);

    /// <inheritdoc/>
    public async Task CreateIfNotExistsAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref this.created) == 1)
        {
            return;
        }

        string setting = this.options.DescribeAccount();
        try
        {
            var tasks = new List<Task>
            {
                this.historyTable.CreateIfNotExistsAsync(cancellationToken),
                this.instancesTable.CreateIfNotExistsAsync(cancellationToken),
                this.leasesTable.CreateIfNotExistsAsync(cancellationToken),
                this.payloads.Container.CreateIfNotExistsAsync(cancellationToken: cancellationToken),
                this.workItemQueue.CreateIfNotExistsAsync(cancellationToken: cancellationToken),
                this.poisonQueue.CreateIfNotExistsAsync(cancellationToken: cancellationToken),
            };
            tasks.AddRange(this.controlQueues.Select(q => (Task)q.CreateIfNotExistsAsync(cancellationToken: cancellationToken)));
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            string detail = ex is RequestFailedException rf ? StorageFailure.Describe(rf) : FirstLine(ex.Message);
            throw new InvalidOperationException(
                $"Could not create task hub '{this.options.TaskHubName}' in the storage account named by {setting}: {detail}. {(this.options.ServiceUris is null
                    ? "Check the account name, key and endpoints (UseDevelopmentStorage=true needs Azurite on ports 10000-10002)."
                    : "Check the endpoints, that the credential can obtain a token for https://storage.azure.com, and that its identity has Storage Blob, Queue and Table Data Contributor on the account.")}",
                ex);
        }

        await this.EnsureHubInfoAsync(cancellationToken).ConfigureAwait(false);
        Volatile.Write(ref this.created, 1);
    }

    /// <inheritdoc/>
    public async Task CreateInstanceAsync(TaskMessage startMessage, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(startMessage);
        if (startMessage.Event is not ExecutionStartedEvent started)
        {
            throw new ArgumentException("A start message must carry an ExecutionStarted event.", nameof(startMessage));
        }

        string pk = StorageNames.EscapeKey(started.InstanceId);
        TableEntity entity = await this.NewInstanceEntityAsync(started, cancellationToken).ConfigureAwait(false);
        ETag etag;
        bool fresh = false;
        try
        {
            // Insert first: a new id (the common case) costs one request, not a read and a write.
            etag = (await this.instancesTable.AddEntityAsync(entity, cancellationToken).ConfigureAwait(false)).Headers.ETag ?? ETag.All;
            fresh = true;
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            NullableResponse<TableEntity> existing = await this.instancesTable.GetEntityIfExistsAsync<TableEntity>(pk, InstanceRowKey, ["Status", "ExecutionId"], cancellationToken).ConfigureAwait(false);
            OrchestrationRuntimeStatus status = existing.HasValue ? ParseStatus(existing.Value!) : OrchestrationRuntimeStatus.Pending;
            if (existing.HasValue && existing.Value!.GetString("ExecutionId") == started.ExecutionId)
            {
                // Our own insert: its response was lost and the client retried it (a busy account).
                etag = existing.Value.ETag;
                fresh = true;
            }
            else if (!existing.HasValue || !status.IsTerminal())
            {
                // Running, or purged and claimed again by someone else meanwhile.
                throw new OrchestrationAlreadyExistsException(started.InstanceId, status);
            }
            else
            {
                try
                {
                    // The old history stays until purge: its sentinel records a finished execution, and a
                    // start for a different execution after a finished one begins a fresh history.
                    etag = (await this.instancesTable.UpdateEntityAsync(entity, existing.Value!.ETag, TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false)).Headers.ETag ?? ETag.All;
                }
                catch (RequestFailedException ex2) when (ex2.Status == 412)
                {
                    throw new OrchestrationAlreadyExistsException(started.InstanceId, OrchestrationRuntimeStatus.Pending);
                }
            }
        }

        try
        {
            await this.EnqueueControlAsync([startMessage], fresh, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // Undo the claim so the id can be scheduled again; the start was not recorded.
            try
            {
                await this.instancesTable.DeleteEntityAsync(pk, InstanceRowKey, etag, CancellationToken.None).ConfigureAwait(false);
            }
            catch (RequestFailedException)
            {
                // The row stays Pending without a start message; scheduling the id again reports it.
            }

            throw;
        }
    }

    /// <inheritdoc/>
    public async Task SendInstanceMessageAsync(TaskMessage message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        NullableResponse<TableEntity> row = await this.instancesTable.GetEntityIfExistsAsync<TableEntity>(StorageNames.EscapeKey(message.InstanceId), InstanceRowKey, ["Status"], cancellationToken).ConfigureAwait(false);
        if (!row.HasValue)
        {
            throw new OrchestrationNotFoundException(message.InstanceId);
        }

        OrchestrationRuntimeStatus status = ParseStatus(row.Value!);
        if (status.IsTerminal())
        {
            throw new OrchestrationNotRunningException(message.InstanceId, status, message.Event is ExecutionTerminatedEvent ? "terminate" : "raise an event");
        }

        await this.EnqueueControlAsync(message, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public async Task<OrchestrationMetadata?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken)
    {
        NullableResponse<TableEntity> row = await this.instancesTable.GetEntityIfExistsAsync<TableEntity>(StorageNames.EscapeKey(instanceId), InstanceRowKey, cancellationToken: cancellationToken).ConfigureAwait(false);
        return row.HasValue ? await this.ToMetadataAsync(row.Value!, true, cancellationToken).ConfigureAwait(false) : null;
    }

    /// <inheritdoc/>
    /// <remarks>
    /// The filter runs in the Table service, which returns rows in PartitionKey order (the escaped instance id); the
    /// continuation token holds the last PartitionKey returned, and the next page asks for the keys above it. The service
    /// may answer a filtered query in several responses (it stops at partition-range boundaries and after a few seconds):
    /// this follows its own continuation until the page is full or the table ends. Without inputs and outputs only the
    /// summary columns are read.
    /// </remarks>
    public async Task<Page<OrchestrationMetadata>> QueryInstancesAsync(InstanceQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentOutOfRangeException.ThrowIfLessThan(query.PageSize, 1, nameof(query.PageSize));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(query.PageSize, InstanceQuery.MaxPageSize, nameof(query.PageSize));
        string? after = InstanceQueryContinuation.ReadLastKey(QueryTokenKind, query);
        string filter = BuildInstanceFilter(query.Statuses, query.CreatedFrom, query.CreatedTo, query.InstanceIdPrefix);
        if (after is not null)
        {
            filter = (filter.Length > 0 ? filter + " and " : string.Empty) + $"PartitionKey gt '{Quote(after)}'";
        }

        IEnumerable<string>? select = query.FetchInputsAndOutputs ? null : InstanceSummaryColumns;
        var rows = new List<TableEntity>(Math.Min(query.PageSize, 1000));
        string? serverToken = null;
        bool more;
        do
        {
            // Each request asks for no more than the page still needs (the service caps one response at 1,000).
            int want = Math.Min(query.PageSize - rows.Count, 1000);
            Azure.Page<TableEntity>? response = null;
            await foreach (Azure.Page<TableEntity> p in this.instancesTable.QueryAsync<TableEntity>(filter, want, select, cancellationToken).AsPages(serverToken, want).ConfigureAwait(false))
            {
                response = p;
                break;
            }

            foreach (TableEntity e in response?.Values ?? [])
            {
                // The key range already bounds the prefix; the id test guards against a key range that could not be bounded.
                if (query.InstanceIdPrefix is not { Length: > 0 } prefix || (e.GetString("InstanceId") ?? string.Empty).StartsWith(prefix, StringComparison.Ordinal))
                {
                    rows.Add(e);
                }
            }

            serverToken = response?.ContinuationToken;
            more = serverToken is not null;
        }
        while (more && rows.Count < query.PageSize);

        var list = new List<OrchestrationMetadata>(rows.Count);
        foreach (TableEntity e in rows)
        {
            list.Add(await this.ToMetadataAsync(e, query.FetchInputsAndOutputs, cancellationToken).ConfigureAwait(false));
        }

        // With the page full and the service holding more, continue after the last row returned. The service's own token
        // is not handed out: it marks where the service stopped scanning, which is not where this page stopped.
        return new Page<OrchestrationMetadata>(list, more && rows.Count > 0 ? InstanceQueryContinuation.Create(QueryTokenKind, query, rows[^1].PartitionKey) : null);
    }

    /// <inheritdoc/>
    public async Task<IReadOnlyList<HistoryEvent>?> GetHistoryAsync(string instanceId, CancellationToken cancellationToken)
    {
        string pk = StorageNames.EscapeKey(instanceId);
        NullableResponse<TableEntity> row = await this.instancesTable.GetEntityIfExistsAsync<TableEntity>(pk, InstanceRowKey, ["ExecutionId"], cancellationToken).ConfigureAwait(false);
        if (!row.HasValue)
        {
            return null;
        }

        (HistoryState state, _) = await this.LoadAsync(instanceId, cancellationToken).ConfigureAwait(false);
        return state.ExecutionId == row.Value!.GetString("ExecutionId") ? state.Events : [];
    }

    /// <inheritdoc/>
    public async Task<bool> PurgeInstanceAsync(string instanceId, CancellationToken cancellationToken)
    {
        NullableResponse<TableEntity> row = await this.instancesTable.GetEntityIfExistsAsync<TableEntity>(StorageNames.EscapeKey(instanceId), InstanceRowKey, ["Status"], cancellationToken).ConfigureAwait(false);
        if (!row.HasValue)
        {
            return false;
        }

        OrchestrationRuntimeStatus status = ParseStatus(row.Value!);
        if (!status.IsTerminal())
        {
            throw new OrchestrationNotRunningException(instanceId, status, "purge (only finished instances can be purged; terminate it first)");
        }

        if (!await this.DeleteInstanceDataAsync(instanceId, row.Value!.ETag, cancellationToken).ConfigureAwait(false))
        {
            throw new OrchestrationNotRunningException(instanceId, status, "purge yet (its final messages are not dispatched; the worker that owns its partition sends them once its lock lapses or the partition moves)");
        }

        return true;
    }

    /// <inheritdoc/>
    public async Task<int> PurgeInstancesAsync(PurgeInstancesFilter filter, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(filter);
        IReadOnlyCollection<OrchestrationRuntimeStatus> statuses = filter.Statuses is { Count: > 0 } given
            ? given
            : [OrchestrationRuntimeStatus.Completed, OrchestrationRuntimeStatus.Failed, OrchestrationRuntimeStatus.Terminated];
        if (statuses.Any(s => !s.IsTerminal()))
        {
            throw new ArgumentException($"Only finished instances can be purged; {statuses.First(s => !s.IsTerminal())} is not a terminal status.", nameof(filter));
        }

        var rows = new List<TableEntity>();
        await foreach (TableEntity e in this.instancesTable.QueryAsync<TableEntity>(
            BuildInstanceFilter(statuses, filter.CreatedFrom, filter.CreatedTo, null), select: ["InstanceId", "Status"], cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            rows.Add(e);
        }

        int purged = 0;
        foreach (TableEntity e in rows)
        {
            if (await this.DeleteInstanceDataAsync(e.GetString("InstanceId")!, e.ETag, cancellationToken).ConfigureAwait(false))
            {
                purged++;
            }
        }

        return purged;
    }

    /// <inheritdoc/>
    public async Task<OrchestrationWorkItem?> LockNextOrchestrationWorkItemAsync(TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        this.ThrowIfDisposed();
        await this.leases.EnsureRunningAsync(cancellationToken).ConfigureAwait(false);
        this.EnsureVisibilityKeeper();
        this.ExpireLapsedLocks();
        for (int attempt = 0; attempt < 8; attempt++)
        {
            (InstanceSession session, HashSet<HeldMessage> snapshot, string token)? next = this.TakeReady(lockTimeout);
            if (next is null)
            {
                if (!await this.PollAsync(lockTimeout, cancellationToken).ConfigureAwait(false))
                {
                    return null;
                }

                continue;
            }

            (InstanceSession s, HashSet<HeldMessage> snap, string tok) = next.Value;
            OrchestrationWorkItem? item;
            try
            {
                item = await this.BuildWorkItemAsync(s, snap, tok, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                this.Unlock(s, tok, snap, requeue: true);
                throw;
            }

            if (item is not null)
            {
                return item;
            }
        }

        return null;
    }

    /// <inheritdoc/>
    public async Task CommitCheckpointAsync(OrchestrationWorkItem workItem, OrchestrationCheckpoint checkpoint, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(workItem);
        ArgumentNullException.ThrowIfNull(checkpoint);
        Episode ep = (Episode)workItem.BackendState!;

        // No in-process lock check: the sentinel's ETag decides. An episode whose in-process lock
        // lapsed may still commit if nobody wrote the instance since it loaded.
        string id = workItem.InstanceId;
        string pk = StorageNames.EscapeKey(id);
        HistoryState st = ep.State;
        InstanceState state = checkpoint.State;
        string exec = state.ExecutionId;
        bool newExecution = checkpoint.ReplaceHistory || exec != st.ExecutionId || workItem.History.Count == 0;
        int seq = newExecution && exec != st.ExecutionId ? 0 : st.NextSeq;
        List<HistoryEvent> all = newExecution ? [.. checkpoint.NewEvents] : [.. st.Events, .. checkpoint.NewEvents];
        var queueBound = checkpoint.Outbox.Where(m => !m.IsActivityWorkItem).ToList();
        string seqKey = $"{exec}-{seq:D10}";

        var actions = new List<TableTransactionAction>(3);
        var chunk = new TableEntity(pk, "h" + seqKey) { ["Seq"] = seq };
        await this.payloads.SetLargeAsync(chunk, "D", HistorySerializer.SerializeHistory(checkpoint.NewEvents), $"history/{pk}/h{seqKey}", PayloadStore.MaxRowChars, cancellationToken).ConfigureAwait(false);
        actions.Add(new TableTransactionAction(TableTransactionActionType.UpsertReplace, chunk));
        OutboxRow? outbox = null;
        if (queueBound.Count > 0)
        {
            var row = new TableEntity(pk, "o" + seqKey) { ["Partition"] = ep.Session.Partition, ["InstanceId"] = id };
            await this.payloads.SetLargeAsync(row, "M", SerializeMessages(queueBound), $"history/{pk}/o{seqKey}", PayloadStore.MaxRowChars, cancellationToken).ConfigureAwait(false);
            actions.Add(new TableTransactionAction(TableTransactionActionType.UpsertReplace, row));
            outbox = new OutboxRow(row.RowKey, queueBound);
        }

        string customHash = Hash(state.CustomStatus);
        string commitId = $"{ep.Token}:{seq}";
        var sentinel = new TableEntity(pk, SentinelKey)
        {
            ["InstanceId"] = id,
            ["Exec"] = exec,
            ["NextSeq"] = seq + 1,
            ["Status"] = state.Status.ToString(),
            ["CustomHash"] = customHash,
            ["Partition"] = ep.Session.Partition,
            ["PendingActivities"] = CountPendingActivities(all),

            // Tells this commit apart from another writer's when a retried request conflicts.
            ["Commit"] = commitId,

            // Set until the instances row shows the final state: a worker that dies in between
            // leaves it set, and the next owner of the partition repairs the row.
            ["RowPending"] = state.Status.IsTerminal(),
        };
        actions.Add(st.ETag is { } etag
            ? new TableTransactionAction(TableTransactionActionType.UpdateReplace, sentinel, etag)
            : new TableTransactionAction(TableTransactionActionType.Add, sentinel));
        ETag? newETag;
        try
        {
            Response<IReadOnlyList<Response>> response = await this.historyTable.SubmitTransactionAsync(actions, cancellationToken).ConfigureAwait(false);
            newETag = response.Value.Count == actions.Count ? response.Value[^1].Headers.ETag : null;
        }
        catch (RequestFailedException ex) when (ex.Status is 409 or 412 or 404)
        {
            // A conflict is another writer, or this very transaction: its response was lost and the
            // client retried it (a busy account). The sentinel's commit id tells which.
            NullableResponse<TableEntity> now = await this.historyTable.GetEntityIfExistsAsync<TableEntity>(pk, SentinelKey, ["Commit"], cancellationToken).ConfigureAwait(false);
            if (!now.HasValue || now.Value!.GetString("Commit") != commitId)
            {
                this.LoseLock(ep);
                throw new WorkItemLockLostException(id);
            }

            newETag = now.Value.ETag;
        }

        var newState = new HistoryState
        {
            ExecutionId = exec,
            NextSeq = seq + 1,
            ETag = newETag,
            Events = all,
            Status = state.Status,
            CustomStatusHash = customHash,
        };
        ep.State = newState;
        ep.CommittedOutbox = outbox;
        ep.LocalActivities.AddRange(checkpoint.Outbox.Where(m => m.IsActivityWorkItem));
        ep.Committed = true;
        if (state.Status.IsTerminal() || newETag is null)
        {
            this.cache.Remove(id);
        }
        else
        {
            this.cache.Set(id, newState);
        }

        bool visibleChange = (ep.FromStorage && !ep.InstanceRowWritten) || st.Status != state.Status || st.ExecutionId != exec || st.CustomStatusHash != customHash;
        if (visibleChange)
        {
            await this.WriteInstanceStateAsync(state, writeInput: st.ExecutionId != exec, cancellationToken).ConfigureAwait(false);
            ep.InstanceRowWritten = true;
        }

        if (state.Status.IsTerminal() && newETag is { } written)
        {
            if (outbox is not null)
            {
                // The outbox rows are deleted in one transaction after dispatch: the flag is cleared in
                // it, a request saved. Until then the outbox row alone makes a new owner look here.
                ep.RowPendingETag = written;
            }
            else
            {
                await this.ClearRowPendingAsync(pk, written, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <inheritdoc/>
    public async Task DispatchOutboxAsync(OrchestrationWorkItem workItem, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(workItem);
        Episode ep = (Episode)workItem.BackendState!;
        foreach (TaskMessage m in ep.LocalActivities)
        {
            this.EnqueueLocalActivity(m);
        }

        ep.LocalActivities.Clear();
        var rows = new List<OutboxRow>(ep.Leftover);
        if (ep.CommittedOutbox is { } committed)
        {
            rows.Add(committed);
        }

        if (rows.Count == 0)
        {
            return;
        }

        // Messages to this instance that become due together travel in one queue message, so they
        // are received together: a ContinueAsNew start and the events it carries over must reach
        // the new execution in one episode, or an execution that continues at once would finish
        // before its carried events arrive (and drop them as stale).
        var messages = rows.SelectMany(r => r.Messages).ToList();
        var groups = messages.Where(m => m.InstanceId == workItem.InstanceId).GroupBy(m => m.VisibleAt).Select(g => (IReadOnlyList<TaskMessage>)g.ToList())
            .Concat(messages.Where(m => m.InstanceId != workItem.InstanceId).Select(m => (IReadOnlyList<TaskMessage>)[m]))
            .ToList();
        await Parallel.ForEachAsync(
            groups,
            new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = cancellationToken },
            async (group, ct) =>
            {
                bool fresh = false;
                if (group is [{ Event: ExecutionStartedEvent started } m] && m.InstanceId != workItem.InstanceId)
                {
                    SubStart verdict = await this.EnsureSubOrchestrationInstanceAsync(started, ct).ConfigureAwait(false);
                    if (verdict == SubStart.Refused)
                    {
                        return;
                    }

                    fresh = verdict == SubStart.Created;
                }

                await this.EnqueueControlAsync(group, fresh, ct).ConfigureAwait(false);
            }).ConfigureAwait(false);

        string pk = StorageNames.EscapeKey(workItem.InstanceId);
        var deletes = rows.Select(r => new TableTransactionAction(TableTransactionActionType.Delete, new TableEntity(pk, r.RowKey), ETag.All)).ToList();
        ETag? clearAfter = null;
        if (ep.RowPendingETag is { } rowPending)
        {
            ep.RowPendingETag = null;
            try
            {
                await this.historyTable.SubmitTransactionAsync(
                    [.. deletes, new TableTransactionAction(TableTransactionActionType.UpdateMerge, new TableEntity(pk, SentinelKey) { ["RowPending"] = false }, rowPending)],
                    cancellationToken).ConfigureAwait(false);
                ep.Leftover.Clear();
                ep.CommittedOutbox = null;
                return;
            }
            catch (RequestFailedException ex) when (ex.Status is 404 or 412)
            {
                // The sentinel was written again (whoever wrote it owns the flag) or purged, or a row
                // is gone: the transaction wrote nothing, so delete the rows alone, then clear the flag
                // alone (it refuses a sentinel written since).
                clearAfter = rowPending;
            }
        }

        try
        {
            await this.historyTable.SubmitTransactionAsync(deletes, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            foreach (OutboxRow r in rows)
            {
                await this.historyTable.DeleteEntityAsync(pk, r.RowKey, ETag.All, cancellationToken).ConfigureAwait(false);
            }
        }

        if (clearAfter is { } etag)
        {
            await this.ClearRowPendingAsync(pk, etag, cancellationToken).ConfigureAwait(false);
        }

        ep.Leftover.Clear();
        ep.CommittedOutbox = null;
    }

    /// <inheritdoc/>
    public async Task ReleaseOrchestrationWorkItemAsync(OrchestrationWorkItem workItem, IReadOnlyCollection<string> consumedMessageIds, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(workItem);
        ArgumentNullException.ThrowIfNull(consumedMessageIds);
        Episode ep = (Episode)workItem.BackendState!;
        var consumed = new HashSet<string>(consumedMessageIds, StringComparer.Ordinal);
        var done = ep.Snapshot.Where(h => consumed.Contains(h.Message.MessageId)).ToHashSet();
        List<QueueCopy> finished;
        lock (this.gate)
        {
            // A queue message that carried several messages goes only when all of them are consumed.
            finished = done.Where(h => h.Copy is not null).Select(h => h.Copy!).Distinct()
                .Where(c => !ep.Session.Messages.Any(h => h.Copy == c && !done.Contains(h)))
                .ToList();
        }

        await Task.WhenAll(finished.Select(c => this.DeleteCopyAsync(c, cancellationToken))).ConfigureAwait(false);
        bool terminal = ep.State.Status is { } s && s.IsTerminal();
        if (terminal)
        {
            this.cache.Remove(workItem.InstanceId);
        }

        if (!ep.Committed && ep.FromStorage && terminal)
        {
            await this.RepairInstanceRowAsync(workItem.InstanceId, ep.State, cancellationToken).ConfigureAwait(false);
        }

        lock (this.gate)
        {
            foreach (HeldMessage h in done)
            {
                ep.Session.Messages.Remove(h);
            }
        }

        this.Unlock(ep.Session, ep.Token, ep.Snapshot, requeue: false);
    }

    /// <inheritdoc/>
    public async Task AbandonOrchestrationWorkItemAsync(OrchestrationWorkItem workItem, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(workItem);
        Episode ep = (Episode)workItem.BackendState!;
        this.cache.Remove(workItem.InstanceId);
        var queued = ep.Snapshot.Where(h => h.QueueMessageId is not null).ToList();
        lock (this.gate)
        {
            // Queue messages go back to the queue (their dequeue count grows, so a message that
            // always fails ends in the poison queue); in-memory results stay, a bounded number of times.
            foreach (HeldMessage h in queued)
            {
                ep.Session.Messages.Remove(h);
            }

            if (ep.Session.Messages.Count > 0 && ++ep.Session.InMemoryAbandons > this.options.MaxDequeueCount)
            {
                ep.Session.Messages.Clear();
            }
        }

        this.Unlock(ep.Session, ep.Token, [], requeue: true);
        await Task.WhenAll(queued.Select(h => h.Copy!).Distinct().Select(c => this.MakeVisibleAsync(c, cancellationToken))).ConfigureAwait(false);
        this.orchestrationSignal.Set();
    }

    /// <inheritdoc/>
    public async Task<ActivityWorkItem?> LockNextActivityWorkItemAsync(TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        this.ThrowIfDisposed();
        if (this.localActivities.TryDequeue(out TaskMessage? local))
        {
            return new ActivityWorkItem
            {
                MessageId = local.MessageId,
                InstanceId = local.InstanceId,
                ExecutionId = local.ExecutionId!,
                Event = (TaskScheduledEvent)local.Event,
                LockToken = NewToken(),
                DequeueCount = 1,
                BackendState = new LocalActivity { Message = local },
            };
        }

        if (Volatile.Read(ref this.created) == 0 || !this.workItemBackoff.Due)
        {
            return null;
        }

        QueueMessage[] received = (await this.workItemQueue.ReceiveMessagesAsync(1, VisibilityFor(lockTimeout), cancellationToken).ConfigureAwait(false)).Value;
        if (received.Length == 0)
        {
            this.workItemBackoff.Idle();
            return null;
        }

        this.workItemBackoff.Reset();
        QueueMessage qm = received[0];
        string body = qm.Body.ToString();
        (ControlBody? decoded, string? blob, string? error) = await this.TryDecodeAsync(body, cancellationToken).ConfigureAwait(false);
        if (decoded?.Messages is not [{ Event: TaskScheduledEvent, ExecutionId: not null } m])
        {
            await this.PoisonAsync(this.workItemQueue, qm, body, error ?? "an activity work item must carry a TaskScheduled event and an execution id", cancellationToken).ConfigureAwait(false);
            return null;
        }

        if (qm.DequeueCount > this.options.MaxDequeueCount)
        {
            await this.PoisonAsync(this.workItemQueue, qm, body, $"dequeued {qm.DequeueCount} times, more than MaxDequeueCount ({this.options.MaxDequeueCount})", cancellationToken).ConfigureAwait(false);
            return null;
        }

        return new ActivityWorkItem
        {
            MessageId = m.MessageId,
            InstanceId = m.InstanceId,
            ExecutionId = m.ExecutionId,
            Event = (TaskScheduledEvent)m.Event,
            LockToken = qm.PopReceipt,
            DequeueCount = (int)qm.DequeueCount,
            BackendState = new QueuedActivity { QueueMessageId = qm.MessageId, PopReceipt = qm.PopReceipt, BlobPath = blob },
        };
    }

    /// <inheritdoc/>
    public async Task RenewActivityWorkItemLockAsync(ActivityWorkItem workItem, TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(workItem);
        if (workItem.BackendState is QueuedActivity q)
        {
            UpdateReceipt r = (await this.workItemQueue.UpdateMessageAsync(q.QueueMessageId, q.PopReceipt, visibilityTimeout: VisibilityFor(lockTimeout), cancellationToken: cancellationToken).ConfigureAwait(false)).Value;
            q.PopReceipt = r.PopReceipt;
        }
    }

    /// <inheritdoc/>
    public async Task CompleteActivityWorkItemAsync(ActivityWorkItem workItem, TaskMessage result, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(workItem);
        ArgumentNullException.ThrowIfNull(result);
        if (workItem.BackendState is QueuedActivity q)
        {
            // Deliver first: if the process dies in between, the item runs again (at-least-once).
            await this.DeliverResultAsync(result, cancellationToken).ConfigureAwait(false);
            try
            {
                await this.workItemQueue.DeleteMessageAsync(q.QueueMessageId, q.PopReceipt, cancellationToken).ConfigureAwait(false);
            }
            catch (RequestFailedException ex) when (ex.Status == 404)
            {
                // The lock was lost and the item redelivered; its duplicate result is dropped by the engine.
            }

            if (q.BlobPath is not null)
            {
                await this.payloads.DeleteAsync(q.BlobPath, cancellationToken).ConfigureAwait(false);
            }

            return;
        }

        this.localActivityIds.TryRemove(workItem.MessageId, out _);
        await this.DeliverResultAsync(result, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public async Task AbandonActivityWorkItemAsync(ActivityWorkItem workItem, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(workItem);
        switch (workItem.BackendState)
        {
            case QueuedActivity q:
                await this.workItemQueue.UpdateMessageAsync(q.QueueMessageId, q.PopReceipt, visibilityTimeout: TimeSpan.Zero, cancellationToken: cancellationToken).ConfigureAwait(false);
                break;
            case LocalActivity l:
                this.localActivities.Enqueue(l.Message);
                break;
        }

        this.activitySignal.Set();
    }

    /// <inheritdoc/>
    public Task WaitForWorkAsync(WorkItemKind kind, TimeSpan timeout, CancellationToken cancellationToken) =>
        (kind == WorkItemKind.Orchestration ? this.orchestrationSignal : this.activitySignal).WaitAsync(timeout, cancellationToken);

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref this.disposed, 1) != 0)
        {
            return;
        }

        await this.stopping.CancelAsync().ConfigureAwait(false);
        await this.leases.DisposeAsync().ConfigureAwait(false);
        await Task.WhenAll(this.background.Keys).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        this.pollGate.Dispose();
        this.stopping.Dispose();
    }

    // ---------------------------------------------------------------- fetching

    /// <summary>
    /// How long a fetched control message stays hidden: at most two lease renew intervals. Messages
    /// held longer (a long episode, messages waiting for a start) are kept hidden by
    /// <see cref="KeepHeldMessagesHiddenAsync"/> only while their partition is consumable, which ends
    /// one renew interval before the lease can expire; so the messages of a worker that dies or
    /// hangs reappear within LeaseDuration + LeaseRenewInterval, when its partitions can be taken over.
    /// </summary>
    private TimeSpan ControlVisibility(TimeSpan lockTimeout)
    {
        TimeSpan bound = this.options.LeaseRenewInterval * 2;
        return VisibilityFor(lockTimeout < bound ? lockTimeout : bound);
    }

    private void EnsureVisibilityKeeper()
    {
        if (Interlocked.Exchange(ref this.keeperStarted, 1) == 0)
        {
            this.RunInBackground("keep held control messages hidden", this.KeepHeldMessagesHiddenAsync);
        }
    }

    /// <summary>
    /// Renews the visibility of control messages this worker still holds, in partitions it still
    /// consumes, before it runs out. A lost partition's messages are not renewed and reappear for
    /// the next owner. Runs on real time: queue visibility is the service's clock, not the backend's.
    /// </summary>
    private async Task KeepHeldMessagesHiddenAsync()
    {
        TimeSpan visibility = this.ControlVisibility(TimeSpan.MaxValue);
        TimeSpan every = TimeSpan.FromTicks(Math.Max(visibility.Ticks / 4, TimeSpan.FromMilliseconds(200).Ticks));
        long renewBelow = (long)(visibility.TotalSeconds / 2 * Stopwatch.Frequency);
        CancellationToken stop = this.stopping.Token;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(every, TimeProvider.System, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            long now = Stopwatch.GetTimestamp();
            List<(QueueCopy Copy, string Receipt)> due;
            lock (this.gate)
            {
                due = this.sessions.Values.SelectMany(s => s.Messages).Select(h => h.Copy)
                    .OfType<QueueCopy>().Distinct()
                    .Where(c => !c.Released && c.Renewal is null && c.VisibleUntil - now < renewBelow && this.leases.IsConsumable(c.Partition))
                    .Select(c => (c, c.PopReceipt))
                    .ToList();
            }

            foreach ((QueueCopy copy, string receipt) in due)
            {
                var renewal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                lock (this.gate)
                {
                    if (copy.Released || copy.PopReceipt != receipt)
                    {
                        continue;
                    }

                    copy.Renewal = renewal.Task;
                }

                try
                {
                    UpdateReceipt r = (await this.controlQueues[copy.Partition].UpdateMessageAsync(copy.QueueMessageId, receipt, visibilityTimeout: visibility, cancellationToken: stop).ConfigureAwait(false)).Value;
                    lock (this.gate)
                    {
                        if (copy.PopReceipt == receipt)
                        {
                            copy.PopReceipt = r.PopReceipt;
                            copy.VisibleUntil = Stopwatch.GetTimestamp() + (long)(visibility.TotalSeconds * Stopwatch.Frequency);
                        }
                    }
                }
                catch (RequestFailedException ex) when (ex.Status is 404 or 400)
                {
                    // Deleted meanwhile (consumed), or received again with a new receipt.
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    return;
                }
                finally
                {
                    lock (this.gate)
                    {
                        copy.Renewal = null;
                    }

                    renewal.TrySetResult();
                }
            }
        }
    }

    /// <summary>
    /// Unlocks sessions whose episode held the lock past its timeout without releasing it (the
    /// episode died after its commit, or hangs): their messages are offered again, with the history
    /// re-read from storage so an outbox left undispatched is found.
    /// </summary>
    private void ExpireLapsedLocks()
    {
        DateTimeOffset now = this.time.GetUtcNow();
        List<string>? expired = null;
        lock (this.gate)
        {
            foreach (InstanceSession s in this.sessions.Values)
            {
                if (s.Locked && s.LockedUntil <= now)
                {
                    s.Locked = false;
                    s.Token = null;
                    (expired ??= []).Add(s.InstanceId);
                    this.MarkReady(s);
                }
            }
        }

        foreach (string id in expired ?? [])
        {
            this.cache.Remove(id);
        }
    }

    private (InstanceSession, HashSet<HeldMessage>, string)? TakeReady(TimeSpan lockTimeout)
    {
        lock (this.gate)
        {
            List<InstanceSession>? waiting = null;
            try
            {
                while (this.ready.Count > 0)
                {
                    InstanceSession s = this.ready.Dequeue();
                    s.Queued = false;
                    if (s.Locked || s.Messages.Count == 0 || !this.sessions.TryGetValue(s.InstanceId, out InstanceSession? current) || current != s)
                    {
                        continue;
                    }

                    if (!this.leases.IsConsumable(s.Partition))
                    {
                        // The lease is near expiry (a slow renewal) but not lost: keep the session
                        // for when it is renewed. A lost partition's sessions are removed on loss.
                        (waiting ??= []).Add(s);
                        continue;
                    }

                    s.Locked = true;
                    s.Token = NewToken();
                    s.LockedUntil = this.time.GetUtcNow() + lockTimeout;
                    return (s, [.. s.Messages], s.Token);
                }
            }
            finally
            {
                foreach (InstanceSession s in waiting ?? [])
                {
                    this.MarkReady(s);
                }
            }
        }

        return null;
    }

    private async Task<bool> PollAsync(TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        if (!await this.pollGate.WaitAsync(0, cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        try
        {
            var partitions = this.leases.ConsumablePartitions().Where(p => this.partitionBackoff[p].Due).ToList();
            if (partitions.Count == 0)
            {
                return false;
            }

            TimeSpan visibility = this.ControlVisibility(lockTimeout);
            QueueMessage[][] results = await Task.WhenAll(partitions.Select(async p =>
                (await this.controlQueues[p].ReceiveMessagesAsync(MaxMessagesPerFetch, visibility, cancellationToken).ConfigureAwait(false)).Value)).ConfigureAwait(false);
            bool any = false;
            for (int i = 0; i < partitions.Count; i++)
            {
                int p = partitions[i];
                if (results[i].Length == 0)
                {
                    this.partitionBackoff[p].Idle();
                    continue;
                }

                this.partitionBackoff[p].Reset();
                any = true;
                await this.HandleFetchedAsync(p, results[i], visibility, cancellationToken).ConfigureAwait(false);
            }

            return any;
        }
        finally
        {
            this.pollGate.Release();
        }
    }

    private async Task HandleFetchedAsync(int partition, QueueMessage[] fetched, TimeSpan visibility, CancellationToken cancellationToken)
    {
        long visibleUntil = Stopwatch.GetTimestamp() + (long)(visibility.TotalSeconds * Stopwatch.Frequency);
        QueueClient queue = this.controlQueues[partition];
        DateTimeOffset now = this.time.GetUtcNow();
        foreach (QueueMessage qm in fetched)
        {
            string body = qm.Body.ToString();
            (ControlBody? decoded, string? blob, string? error) = await this.TryDecodeAsync(body, cancellationToken).ConfigureAwait(false);
            if (decoded is null)
            {
                string reason = $"unreadable message: {error}";
                await this.PoisonAsync(queue, qm, body, reason, cancellationToken).ConfigureAwait(false);
                if (TryReadProperty(body, "instanceId") is { } target)
                {
                    await this.FailInstanceAsync(target, qm.MessageId, TryReadProperty(body, "messageId"), reason, cancellationToken).ConfigureAwait(false);
                }

                continue;
            }

            TaskMessage m = decoded.Messages[0];
            bool alreadyHeld = false;
            lock (this.gate)
            {
                if (this.sessions.TryGetValue(m.InstanceId, out InstanceSession? s) && s.Messages.FirstOrDefault(h => h.QueueMessageId == qm.MessageId) is { } held)
                {
                    // Its visibility ran out while it waited here: keep one copy, with the new receipt.
                    held.Copy!.PopReceipt = qm.PopReceipt;
                    held.Copy.VisibleUntil = visibleUntil;

                    // Not a failed delivery: it must not count towards the poison threshold.
                    this.benignReceives.AddOrUpdate(qm.MessageId, 1, (_, n) => n + 1);
                    alreadyHeld = true;
                    this.MarkReady(s);
                }
            }

            if (alreadyHeld)
            {
                continue;
            }

            long deliveries = qm.DequeueCount - this.benignReceives.GetValueOrDefault(qm.MessageId);
            if (deliveries > this.options.MaxDequeueCount)
            {
                string reason = $"dequeued {qm.DequeueCount} times ({deliveries} deliveries not counting re-fetches while held), more than MaxDequeueCount ({this.options.MaxDequeueCount})";
                await this.PoisonAsync(queue, qm, body, reason, cancellationToken).ConfigureAwait(false);
                await this.FailInstanceAsync(m.InstanceId, qm.MessageId, m.MessageId, reason, cancellationToken).ConfigureAwait(false);
                this.benignReceives.TryRemove(qm.MessageId, out _);
                continue;
            }

            if (m.VisibleAt is { } visibleAt && visibleAt > now)
            {
                // A timer further out than the queue can hide a message, or an early delivery: hide it again.
                await queue.SendMessageAsync(body, VisibilityFor(visibleAt - now, this.options.MaxMessageVisibilityDelay), TimeSpan.FromSeconds(-1), cancellationToken).ConfigureAwait(false);
                await DeleteQuietlyAsync(queue, qm.MessageId, qm.PopReceipt, cancellationToken).ConfigureAwait(false);
                Interlocked.Increment(ref this.deferredRequeues);
                continue;
            }

            var copy = new QueueCopy { QueueMessageId = qm.MessageId, Partition = partition, PopReceipt = qm.PopReceipt, BlobPath = blob, VisibleUntil = visibleUntil };
            lock (this.gate)
            {
                InstanceSession s = this.GetOrAddSession(m.InstanceId);
                foreach (TaskMessage member in decoded.Messages)
                {
                    s.Messages.Add(new HeldMessage { Message = member, Partition = partition, Copy = copy, NewInstance = decoded.NewInstance && member.Event is ExecutionStartedEvent });
                }

                this.MarkReady(s);
            }
        }
    }

    private async Task<OrchestrationWorkItem?> BuildWorkItemAsync(InstanceSession session, HashSet<HeldMessage> snapshot, string token, CancellationToken cancellationToken)
    {
        string id = session.InstanceId;
        bool fromStorage = false;
        List<OutboxRow> leftover = [];
        bool mustLoad;
        lock (this.gate)
        {
            mustLoad = session.MustLoad;
        }

        if (this.cache.TryGet(id, out HistoryState state))
        {
            // Written by this worker's last checkpoint of the instance, which still owns it.
        }
        else if (!mustLoad && snapshot.Any(h => h.NewInstance))
        {
            // The start of an instance whose row was just inserted: there is no history to read. The
            // first checkpoint inserts the sentinel (insert-if-absent), so if a history exists after
            // all the commit fails, and the next episode reads it.
            state = new HistoryState { Events = [] };
        }
        else
        {
            (state, leftover) = await this.LoadAsync(id, cancellationToken).ConfigureAwait(false);
            fromStorage = true;
        }

        var starts = snapshot.Select(h => h.Message.Event).OfType<ExecutionStartedEvent>().ToList();
        if (state.ExecutionId is null && starts.Count == 0)
        {
            NullableResponse<TableEntity> row = await this.instancesTable.GetEntityIfExistsAsync<TableEntity>(StorageNames.EscapeKey(id), InstanceRowKey, ["Status"], cancellationToken).ConfigureAwait(false);
            if (row.HasValue)
            {
                // Messages that arrived before a delayed start: hide them until the start is due
                // (fresh copies, so waiting does not count towards the poison threshold).
                DateTimeOffset now = this.time.GetUtcNow();
                DateTimeOffset? due = row.Value!.GetDateTimeOffset("ScheduledStartTime");
                TimeSpan delay = due is { } d && d > now ? d - now : TimeSpan.FromSeconds(1);
                var early = snapshot.Where(h => h.Copy is not null).ToList();
                foreach (HeldMessage h in early)
                {
                    string body = await this.EncodeAsync(h.Message, cancellationToken).ConfigureAwait(false);
                    await this.controlQueues[h.Partition].SendMessageAsync(body, VisibilityFor(delay, this.options.MaxMessageVisibilityDelay), TimeSpan.FromSeconds(-1), cancellationToken).ConfigureAwait(false);
                }

                foreach (QueueCopy c in early.Select(h => h.Copy!).Distinct())
                {
                    await this.DeleteCopyAsync(c, cancellationToken).ConfigureAwait(false);
                }

                lock (this.gate)
                {
                    foreach (HeldMessage h in early)
                    {
                        session.Messages.Remove(h);
                    }
                }

                this.Unlock(session, token, snapshot, requeue: false);
                return null;
            }
            else
            {
                // Purged, or never created: nothing will ever read these messages.
                foreach (HeldMessage h in snapshot)
                {
                    AzureLog.UnknownInstanceMessageDropped(this.logger, h.QueueMessageId ?? h.Message.MessageId, id);
                }

                await Task.WhenAll(snapshot.Where(h => h.Copy is not null).Select(h => h.Copy!).Distinct().Select(c => this.DeleteCopyAsync(c, cancellationToken))).ConfigureAwait(false);
                lock (this.gate)
                {
                    foreach (HeldMessage h in snapshot)
                    {
                        session.Messages.Remove(h);
                    }
                }

                this.Unlock(session, token, snapshot, requeue: false);
                return null;
            }
        }

        IReadOnlyList<HistoryEvent> presented = state.Events;
        if (state.Status is { } status && status.IsTerminal() && starts.Any(s => s.ExecutionId != state.ExecutionId))
        {
            // The instance finished and was created again under the same id: a fresh history.
            presented = [];
        }
        else if (fromStorage)
        {
            this.RedispatchActivities(id, state);
        }

        var ep = new Episode { Session = session, Token = token, Snapshot = snapshot, State = state, FromStorage = fromStorage, Leftover = leftover };
        return new OrchestrationWorkItem
        {
            InstanceId = id,
            LockToken = token,
            History = presented,
            Messages = session.Messages.Where(snapshot.Contains).Select(h => h.Message).ToList(),
            BackendState = ep,
        };
    }

    private async Task<(HistoryState State, List<OutboxRow> Outbox)> LoadAsync(string instanceId, CancellationToken cancellationToken)
    {
        string pk = StorageNames.EscapeKey(instanceId);
        NullableResponse<TableEntity> sentinelResponse = await this.historyTable.GetEntityIfExistsAsync<TableEntity>(pk, SentinelKey, cancellationToken: cancellationToken).ConfigureAwait(false);
        if (!sentinelResponse.HasValue)
        {
            return (new HistoryState { Events = [] }, []);
        }

        TableEntity sentinel = sentinelResponse.Value!;
        string exec = sentinel.GetString("Exec") ?? string.Empty;
        string q = Quote(pk);
        string e = Quote(exec);
        string filter = $"PartitionKey eq '{q}' and ((RowKey ge 'h{e}-' and RowKey lt 'h{e}.') or (RowKey ge 'o' and RowKey lt 'p'))";
        var chunks = new SortedList<string, TableEntity>(StringComparer.Ordinal);
        var outboxRows = new List<TableEntity>();
        await foreach (TableEntity row in this.historyTable.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            if (row.RowKey.StartsWith('o'))
            {
                outboxRows.Add(row);
            }
            else if (row.RowKey.Length == exec.Length + 12)
            {
                chunks.Add(row.RowKey, row);
            }
        }

        var events = new List<HistoryEvent>();
        foreach (TableEntity chunk in chunks.Values)
        {
            string json = await this.payloads.GetLargeAsync(chunk, "D", cancellationToken).ConfigureAwait(false) ?? "[]";
            events.AddRange(HistorySerializer.DeserializeHistory(json));
        }

        var outbox = new List<OutboxRow>();
        foreach (TableEntity row in outboxRows)
        {
            string json = await this.payloads.GetLargeAsync(row, "M", cancellationToken).ConfigureAwait(false) ?? "[]";
            outbox.Add(new OutboxRow(row.RowKey, DeserializeMessages(json)));
        }

        var state = new HistoryState
        {
            ExecutionId = exec,
            NextSeq = sentinel.GetInt32("NextSeq") ?? chunks.Count,
            ETag = sentinel.ETag,
            Events = events,
            Status = Enum.TryParse(sentinel.GetString("Status"), out OrchestrationRuntimeStatus s) ? s : null,
            CustomStatusHash = sentinel.GetString("CustomHash"),
        };
        return (state, outbox);
    }

    private void RedispatchActivities(string instanceId, HistoryState state)
    {
        if (state.ExecutionId is null)
        {
            return;
        }

        var done = new HashSet<int>();
        foreach (HistoryEvent e in state.Events)
        {
            switch (e)
            {
                case TaskCompletedEvent c: done.Add(c.TaskScheduledId); break;
                case TaskFailedEvent f: done.Add(f.TaskScheduledId); break;
            }
        }

        HashSet<string> heldIds;
        lock (this.gate)
        {
            heldIds = this.sessions.TryGetValue(instanceId, out InstanceSession? s) ? s.Messages.Select(h => h.Message.MessageId).ToHashSet(StringComparer.Ordinal) : [];
        }

        int n = 0;
        foreach (TaskScheduledEvent t in state.Events.OfType<TaskScheduledEvent>())
        {
            if (done.Contains(t.EventId) || heldIds.Contains($"{instanceId}|{state.ExecutionId}|result|{t.EventId}"))
            {
                continue;
            }

            // The id format of TaskMessage.ActivityId, so a re-dispatch is recognised as the same work item.
            if (this.EnqueueLocalActivity(new TaskMessage { MessageId = $"{instanceId}|{state.ExecutionId}|task|{t.EventId}", InstanceId = instanceId, ExecutionId = state.ExecutionId, Event = t }))
            {
                n++;
            }
        }

        if (n > 0)
        {
            AzureLog.ActivitiesRedispatched(this.logger, instanceId, n);
        }
    }

    // ---------------------------------------------------------------- sessions

    private InstanceSession GetOrAddSession(string instanceId)
    {
        if (!this.sessions.TryGetValue(instanceId, out InstanceSession? s))
        {
            s = new InstanceSession(instanceId, this.PartitionOf(instanceId));
            this.sessions[instanceId] = s;
        }

        return s;
    }

    private void MarkReady(InstanceSession s)
    {
        if (!s.Locked && !s.Queued && s.Messages.Count > 0)
        {
            s.Queued = true;
            this.ready.Enqueue(s);
        }
    }

    /// <summary>Unlocks a session; it is queued again if messages arrived that the episode did not see (or when asked).</summary>
    private void Unlock(InstanceSession s, string token, HashSet<HeldMessage> seen, bool requeue)
    {
        bool signal = false;
        List<HeldMessage>? evicted = null;
        List<Func<Task>>? failures = null;
        lock (this.gate)
        {
            if (s.Token != token)
            {
                // The lock lapsed and another episode holds the session now; it unlocks it.
                return;
            }

            s.Locked = false;
            s.Token = null;
            if (s.PendingFailures.Count > 0)
            {
                failures = [.. s.PendingFailures];
                s.PendingFailures.Clear();
            }

            if (!this.leases.IsConsumable(s.Partition))
            {
                evicted = [.. s.Messages];
                s.Messages.Clear();
            }

            if (s.Messages.Count == 0)
            {
                if (this.sessions.TryGetValue(s.InstanceId, out InstanceSession? current) && current == s)
                {
                    this.sessions.Remove(s.InstanceId);
                }
            }
            else if (requeue || s.Messages.Any(h => !seen.Contains(h)))
            {
                this.MarkReady(s);
                signal = true;
            }
        }

        if (evicted is { Count: > 0 })
        {
            this.cache.Remove(s.InstanceId);
            this.HandOver(evicted);
        }

        if (signal)
        {
            this.orchestrationSignal.Set();
        }

        foreach (Func<Task> fail in failures ?? [])
        {
            this.RunInBackground("fail an instance whose message was poisoned while an episode ran", fail);
        }
    }

    private void LoseLock(Episode ep)
    {
        // Someone else wrote the instance: forget what we knew and offer the messages again; the
        // next episode re-reads the history and the engine drops what is now a duplicate. If the
        // partition is gone, unlocking hands the messages over.
        this.cache.Remove(ep.Session.InstanceId);
        lock (this.gate)
        {
            ep.Session.MustLoad = true;
        }

        this.Unlock(ep.Session, ep.Token, ep.Snapshot, requeue: true);
    }

    private void OnPartitionsLost(IReadOnlyList<int> partitions)
    {
        var lost = partitions.ToHashSet();
        var handOver = new List<HeldMessage>();
        lock (this.gate)
        {
            foreach (InstanceSession s in this.sessions.Values.Where(s => lost.Contains(s.Partition) && !s.Locked).ToList())
            {
                handOver.AddRange(s.Messages);
                s.Messages.Clear();
                this.sessions.Remove(s.InstanceId);
            }
        }

        this.cache.RemoveWhere(id => lost.Contains(this.PartitionOf(id)));
        this.HandOver(handOver);
    }

    /// <summary>Gives messages of a partition this worker no longer owns to the next owner.</summary>
    private void HandOver(List<HeldMessage> messages)
    {
        if (messages.Count == 0)
        {
            return;
        }

        this.RunInBackground("hand over messages of a lost partition", async () =>
        {
            foreach (HeldMessage h in messages.Where(h => h.Copy is null))
            {
                await this.EnqueueControlAsync(h.Message, CancellationToken.None).ConfigureAwait(false);
            }

            foreach (QueueCopy c in messages.Where(h => h.Copy is not null).Select(h => h.Copy!).Distinct())
            {
                await this.MakeVisibleAsync(c, CancellationToken.None).ConfigureAwait(false);
            }
        });
    }

    private async Task OnPartitionsAcquiredAsync(IReadOnlyList<int> partitions)
    {
        foreach (int p in partitions)
        {
            this.partitionBackoff[p].Reset();
        }

        this.orchestrationSignal.Set();

        // Instances whose activities ran in a worker that is gone, or whose outbox was not dispatched,
        // have no queue message to wake them: find them by their sentinels and outbox rows.
        string parts = string.Join(" or ", partitions.Select(p => $"Partition eq {p}"));
        string filter = $"(({parts}) and ((RowKey eq '{SentinelKey}' and (PendingActivities gt 0 or RowPending eq true)) or (RowKey ge 'o' and RowKey lt 'p')))";
        this.RunInBackground("recover instances of acquired partitions", async () =>
        {
            var ids = new HashSet<string>(StringComparer.Ordinal);
            await foreach (TableEntity e in this.historyTable.QueryAsync<TableEntity>(filter, select: ["InstanceId"]).ConfigureAwait(false))
            {
                if (e.GetString("InstanceId") is { } id)
                {
                    ids.Add(id);
                }
            }

            foreach (string id in ids)
            {
                await this.RecoverInstanceAsync(id, CancellationToken.None).ConfigureAwait(false);
            }
        });
        await Task.CompletedTask.ConfigureAwait(false);
    }

    private async Task RecoverInstanceAsync(string instanceId, CancellationToken cancellationToken)
    {
        InstanceSession session;
        string token;
        lock (this.gate)
        {
            session = this.GetOrAddSession(instanceId);
            if (session.Locked || !this.leases.IsConsumable(session.Partition))
            {
                return;
            }

            session.Locked = true;
            session.LockedUntil = this.time.GetUtcNow() + TimeSpan.FromMinutes(1);
            token = session.Token = NewToken();
        }

        try
        {
            (HistoryState state, List<OutboxRow> leftover) = await this.LoadAsync(instanceId, cancellationToken).ConfigureAwait(false);
            this.RedispatchActivities(instanceId, state);
            if (state.Status is { } s && !s.IsTerminal())
            {
                this.cache.Set(instanceId, state);
            }
            else if (state.Status is not null && state.ETag is { } etag)
            {
                await this.RepairInstanceRowAsync(instanceId, state, cancellationToken).ConfigureAwait(false);
                await this.ClearRowPendingAsync(StorageNames.EscapeKey(instanceId), etag, cancellationToken).ConfigureAwait(false);
            }

            var ep = new Episode { Session = session, Token = token, Snapshot = [], State = state, FromStorage = true, Leftover = leftover };
            var item = new OrchestrationWorkItem { InstanceId = instanceId, LockToken = token, History = state.Events, Messages = [], BackendState = ep };
            await this.DispatchOutboxAsync(item, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            this.Unlock(session, token, [], requeue: false);
        }
    }

    // ---------------------------------------------------------------- activities

    private bool EnqueueLocalActivity(TaskMessage m)
    {
        if (!this.localActivityIds.TryAdd(m.MessageId, 0))
        {
            return false;
        }

        this.localActivities.Enqueue(m);
        this.activitySignal.Set();
        return true;
    }

    private async Task DeliverResultAsync(TaskMessage result, CancellationToken cancellationToken)
    {
        int p = this.PartitionOf(result.InstanceId);
        if (this.leases.IsConsumable(p))
        {
            lock (this.gate)
            {
                InstanceSession s = this.GetOrAddSession(result.InstanceId);
                if (!s.Messages.Any(h => h.Message.MessageId == result.MessageId))
                {
                    s.Messages.Add(new HeldMessage { Message = result, Partition = p });
                }

                this.MarkReady(s);
            }

            this.orchestrationSignal.Set();
            return;
        }

        // Another worker owns the instance now: send the result through its control queue.
        await this.EnqueueControlAsync(result, cancellationToken).ConfigureAwait(false);
    }

    // ---------------------------------------------------------------- queues and messages

    private Task EnqueueControlAsync(TaskMessage m, CancellationToken cancellationToken) => this.EnqueueControlAsync([m], false, cancellationToken);

    /// <summary>
    /// Sends messages for one instance, due at one time, as one queue message. <paramref name="newInstance"/>
    /// says the instance row was just inserted, so the instance has no history to read.
    /// </summary>
    private async Task EnqueueControlAsync(IReadOnlyList<TaskMessage> group, bool newInstance, CancellationToken cancellationToken)
    {
        TaskMessage first = group[0];
        int p = this.PartitionOf(first.InstanceId);
        string body = group.Count == 1 && !newInstance
            ? await this.EncodeAsync(first, cancellationToken).ConfigureAwait(false)
            : await this.EncodeBatchAsync(group, newInstance, cancellationToken).ConfigureAwait(false);
        TimeSpan delay = first.VisibleAt is { } at ? at - this.time.GetUtcNow() : TimeSpan.Zero;
        TimeSpan visibility = VisibilityFor(delay, this.options.MaxMessageVisibilityDelay);
        if (visibility == TimeSpan.Zero && this.leases.IsConsumable(p) && !body.StartsWith("{\"$blob\"", StringComparison.Ordinal))
        {
            await this.SendAndHoldAsync(p, group, newInstance, body, cancellationToken).ConfigureAwait(false);
            return;
        }

        await this.controlQueues[p].SendMessageAsync(body, visibility, TimeSpan.FromSeconds(-1), cancellationToken).ConfigureAwait(false);
        if (visibility == TimeSpan.Zero)
        {
            this.partitionBackoff[p].Reset();
            this.orchestrationSignal.Set();
        }
    }

    /// <summary>
    /// Sends a due message for a partition this worker consumes already hidden, as if fetched, and
    /// holds it at once: the receipt of the send deletes it or gives it back, so no poll has to
    /// fetch it. It is held under the same rules as a fetched message (renewed only while the
    /// partition is consumable), so if this worker dies or loses the partition the message
    /// surfaces for the next owner within the same bound.
    /// </summary>
    private async Task SendAndHoldAsync(int partition, IReadOnlyList<TaskMessage> group, bool newInstance, string body, CancellationToken cancellationToken)
    {
        TimeSpan hidden = this.ControlVisibility(TimeSpan.MaxValue);

        // Taken before the send, so the worker's idea of when it surfaces is never late.
        long visibleUntil = Stopwatch.GetTimestamp() + (long)(hidden.TotalSeconds * Stopwatch.Frequency);
        SendReceipt sent = (await this.controlQueues[partition].SendMessageAsync(body, hidden, TimeSpan.FromSeconds(-1), cancellationToken).ConfigureAwait(false)).Value;
        this.EnsureVisibilityKeeper();
        var copy = new QueueCopy { QueueMessageId = sent.MessageId, Partition = partition, PopReceipt = sent.PopReceipt, VisibleUntil = visibleUntil };
        bool held = false;
        lock (this.gate)
        {
            // Partition loss hands over the sessions it finds under this gate; checked again here
            // so a message is never added to a session after its partition was handed over.
            if (this.leases.IsConsumable(partition))
            {
                InstanceSession s = this.GetOrAddSession(group[0].InstanceId);
                foreach (TaskMessage member in group)
                {
                    s.Messages.Add(new HeldMessage { Message = member, Partition = partition, Copy = copy, NewInstance = newInstance && member.Event is ExecutionStartedEvent });
                }

                this.MarkReady(s);
                held = true;
            }
        }

        if (held)
        {
            this.orchestrationSignal.Set();
        }
        else
        {
            try
            {
                await this.MakeVisibleAsync(copy, CancellationToken.None).ConfigureAwait(false);
            }
            catch (RequestFailedException)
            {
                // The message is sent, so this must not report a failure (a client would undo the
                // instance's row); not given back, it surfaces when its visibility runs out.
            }
        }
    }

    private async Task<string> EncodeAsync(TaskMessage m, CancellationToken cancellationToken)
    {
        string json = HistorySerializer.Serialize(m);
        if (Encoding.UTF8.GetByteCount(json) <= PayloadStore.MaxQueueMessageBytes)
        {
            return json;
        }

        string path = $"messages/{StorageNames.EscapeKey(m.InstanceId)}/{StorageNames.EscapeKey(m.MessageId)}";
        await this.payloads.UploadAsync(path, json, cancellationToken).ConfigureAwait(false);
        return JsonSerializer.Serialize(new Dictionary<string, string> { ["$blob"] = path, ["instanceId"] = m.InstanceId, ["messageId"] = m.MessageId });
    }

    private async Task<string> EncodeBatchAsync(IReadOnlyList<TaskMessage> group, bool newInstance, CancellationToken cancellationToken)
    {
        string json = SerializeBatch(group, newInstance);
        if (Encoding.UTF8.GetByteCount(json) <= PayloadStore.MaxQueueMessageBytes)
        {
            return json;
        }

        TaskMessage first = group[0];
        string path = $"messages/{StorageNames.EscapeKey(first.InstanceId)}/{StorageNames.EscapeKey(first.MessageId)}.batch";
        await this.payloads.UploadAsync(path, json, cancellationToken).ConfigureAwait(false);
        return JsonSerializer.Serialize(new Dictionary<string, string> { ["$blob"] = path, ["instanceId"] = first.InstanceId, ["messageId"] = first.MessageId });
    }

    // WARNING: control-queue bodies are persisted and may be read by a newer worker than the one
    // that wrote them. Three shapes, told apart by their first property: a task message (the
    // engine's TaskMessage JSON), {"$blob": path, "instanceId", "messageId"} (the body is in a blob),
    // and {"$batch": [task messages], "instanceId", "newInstance"?} (messages for one instance,
    // delivered together; newInstance true when the start of an instance whose row was just
    // inserted, so no history exists). Add shapes only with a fixture in ControlMessageFormatTests.

    /// <summary>Serializes messages for one instance as one batch body.</summary>
    internal static string SerializeBatch(IReadOnlyList<TaskMessage> group, bool newInstance = false)
    {
        if (group.Count == 0 || group.Any(m => m.InstanceId != group[0].InstanceId))
        {
            throw new ArgumentException("A batch holds one or more messages for one instance.", nameof(group));
        }

        return "{\"$batch\":" + SerializeMessages(group) + ",\"instanceId\":" + JsonSerializer.Serialize(group[0].InstanceId)
            + (newInstance ? ",\"newInstance\":true}" : "}");
    }

    /// <summary>Reads a body that is not a blob reference: one task message or a batch.</summary>
    /// <exception cref="JsonException">The body is neither, or a message lacks its id, instance or event, or a batch mixes instances.</exception>
    internal static ControlBody DeserializeBody(string json)
    {
        IReadOnlyList<TaskMessage> messages;
        bool newInstance = false;
        if (json.StartsWith("{\"$batch\"", StringComparison.Ordinal))
        {
            using var doc = JsonDocument.Parse(json);
            if (!doc.RootElement.TryGetProperty("$batch", out JsonElement batch) || batch.ValueKind != JsonValueKind.Array || batch.GetArrayLength() == 0)
            {
                throw new JsonException("a batch must hold a non-empty array of task messages");
            }

            messages = batch.EnumerateArray().Select(e => HistorySerializer.DeserializeMessage(e.GetRawText())).ToList();
            newInstance = doc.RootElement.TryGetProperty("newInstance", out JsonElement flag) && flag.ValueKind == JsonValueKind.True;
        }
        else
        {
            messages = [HistorySerializer.DeserializeMessage(json)];
        }

        foreach (TaskMessage m in messages)
        {
            if (m.Event is null || string.IsNullOrEmpty(m.InstanceId) || string.IsNullOrEmpty(m.MessageId))
            {
                throw new JsonException("a task message needs an instance id, a message id and an event");
            }
        }

        if (messages.Any(m => m.InstanceId != messages[0].InstanceId))
        {
            throw new JsonException("a batch must hold messages for one instance");
        }

        return new ControlBody(messages, newInstance);
    }

    private async Task<(ControlBody? Body, string? BlobPath, string? Error)> TryDecodeAsync(string body, CancellationToken cancellationToken)
    {
        string? blob = null;
        try
        {
            string json = body;
            if (body.StartsWith("{\"$blob\"", StringComparison.Ordinal))
            {
                blob = TryReadProperty(body, "$blob") ?? throw new JsonException("the blob reference is empty");
                json = await this.payloads.DownloadAsync(blob, cancellationToken).ConfigureAwait(false);
            }

            return (DeserializeBody(json), blob, null);
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or InvalidOperationException or FormatException or RequestFailedException)
        {
            return (null, blob, FirstLine(ex.Message));
        }
    }

    private async Task PoisonAsync(QueueClient source, QueueMessage qm, string body, string reason, CancellationToken cancellationToken)
    {
        var record = new Dictionary<string, object?>
        {
            ["reason"] = reason,
            ["queue"] = source.Name,
            ["queueMessageId"] = qm.MessageId,
            ["dequeueCount"] = qm.DequeueCount,
            ["insertedOn"] = qm.InsertedOn,
        };
        if (Encoding.UTF8.GetByteCount(body) > PayloadStore.MaxQueueMessageBytes - 4096)
        {
            string path = $"poison/{StorageNames.EscapeKey(qm.MessageId)}";
            await this.payloads.UploadAsync(path, body, cancellationToken).ConfigureAwait(false);
            record["bodyBlob"] = path;
        }
        else
        {
            record["body"] = body;
        }

        await this.poisonQueue.SendMessageAsync(JsonSerializer.Serialize(record), null, TimeSpan.FromSeconds(-1), cancellationToken).ConfigureAwait(false);
        await DeleteQuietlyAsync(source, qm.MessageId, qm.PopReceipt, cancellationToken).ConfigureAwait(false);
        AzureLog.MessagePoisoned(this.logger, qm.MessageId, source.Name, reason);
    }

    /// <summary>Fails a running instance because one of its messages is poison: a Failed checkpoint naming the message.</summary>
    private async Task FailInstanceAsync(string instanceId, string queueMessageId, string? messageId, string reason, CancellationToken cancellationToken)
    {
        var failure = new TaskFailureDetails(
            "Orchestrator.Durable.PoisonMessage",
            $"Message '{messageId ?? "(unreadable)"}' (queue message {queueMessageId}) could not be processed and was moved to the poison queue '{this.names.PoisonQueue}': {reason}.",
            IsNonRetriable: true);
        InstanceSession session;
        string token;
        lock (this.gate)
        {
            session = this.GetOrAddSession(instanceId);
            if (session.Locked)
            {
                // An episode runs: fail the instance once it lets go (its checkpoint, if any, first).
                session.PendingFailures.Add(() => this.FailInstanceAsync(instanceId, queueMessageId, messageId, reason, CancellationToken.None));
                return;
            }

            session.Locked = true;
            session.LockedUntil = this.time.GetUtcNow() + TimeSpan.FromMinutes(1);
            token = session.Token = NewToken();
        }

        try
        {
            if (!this.cache.TryGet(instanceId, out HistoryState state))
            {
                (state, _) = await this.LoadAsync(instanceId, cancellationToken).ConfigureAwait(false);
            }

            ExecutionStartedEvent? started = state.Events.OfType<ExecutionStartedEvent>().LastOrDefault();
            if (state.Status is { } s && s.IsTerminal())
            {
                return;
            }

            DateTimeOffset now = this.time.GetUtcNow();
            if (started is null)
            {
                // Never started: only the instance row records the failure.
                var row = new TableEntity(StorageNames.EscapeKey(instanceId), InstanceRowKey)
                {
                    ["Status"] = nameof(OrchestrationRuntimeStatus.Failed),
                    ["LastUpdatedAt"] = now,
                    ["CompletedAt"] = now,
                };
                await this.payloads.SetLargeAsync(row, "Failure", HistorySerializer.Serialize(failure), $"instances/{row.PartitionKey}/failure", PayloadStore.MaxPropertyChars, cancellationToken).ConfigureAwait(false);
                try
                {
                    await this.instancesTable.UpdateEntityAsync(row, ETag.All, TableUpdateMode.Merge, cancellationToken).ConfigureAwait(false);
                }
                catch (RequestFailedException ex) when (ex.Status == 404)
                {
                    // Unknown instance: the poison queue keeps the message.
                }

                return;
            }

            var outbox = new List<TaskMessage>();
            if (started.Parent is { } parent)
            {
                outbox.Add(new TaskMessage
                {
                    MessageId = $"{instanceId}|{started.ExecutionId}|subresult",
                    InstanceId = parent.InstanceId,
                    ExecutionId = parent.ExecutionId,
                    Event = new SubOrchestrationInstanceFailedEvent { Timestamp = now, TaskScheduledId = parent.TaskScheduledId, FailureDetails = failure },
                });
            }

            var checkpoint = new OrchestrationCheckpoint
            {
                NewEvents =
                [
                    new OrchestratorStartedEvent { Timestamp = now },
                    new ExecutionCompletedEvent { Timestamp = now, Status = OrchestrationRuntimeStatus.Failed, FailureDetails = failure },
                ],
                Outbox = outbox,
                State = new InstanceState
                {
                    InstanceId = instanceId,
                    Name = started.Name,
                    ExecutionId = started.ExecutionId,
                    Status = OrchestrationRuntimeStatus.Failed,
                    Input = started.Input,
                    FailureDetails = failure,
                    ParentInstanceId = started.Parent?.InstanceId,
                },
            };
            var ep = new Episode { Session = session, Token = token, Snapshot = [], State = state, FromStorage = true };
            var item = new OrchestrationWorkItem { InstanceId = instanceId, LockToken = token, History = state.Events, Messages = [], BackendState = ep };
            await this.CommitCheckpointAsync(item, checkpoint, cancellationToken).ConfigureAwait(false);
            await this.DispatchOutboxAsync(item, cancellationToken).ConfigureAwait(false);
            this.cache.Remove(instanceId);
        }
        catch (WorkItemLockLostException)
        {
            // Another worker wrote the instance meanwhile; the poison queue keeps the message.
            return;
        }
        finally
        {
            this.Unlock(session, token, [], requeue: false);
        }
    }

    private async Task DeleteCopyAsync(QueueCopy c, CancellationToken cancellationToken)
    {
        string receipt = await this.ReleaseCopyAsync(c).ConfigureAwait(false);

        this.benignReceives.TryRemove(c.QueueMessageId, out _);
        if (!await DeleteQuietlyAsync(this.controlQueues[c.Partition], c.QueueMessageId, receipt, cancellationToken).ConfigureAwait(false))
        {
            // A visibility renewal may have changed the receipt while the delete was in flight.
            string now;
            lock (this.gate)
            {
                now = c.PopReceipt;
            }

            if (now != receipt)
            {
                await DeleteQuietlyAsync(this.controlQueues[c.Partition], c.QueueMessageId, now, cancellationToken).ConfigureAwait(false);
            }
        }
        if (c.BlobPath is not null)
        {
            await this.payloads.DeleteAsync(c.BlobPath, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Stops renewals of the copy, waits for one in flight, and returns the receipt to delete or give it back with.</summary>
    private async Task<string> ReleaseCopyAsync(QueueCopy c)
    {
        Task? renewal;
        lock (this.gate)
        {
            c.Released = true;
            renewal = c.Renewal;
        }

        if (renewal is not null)
        {
            await renewal.ConfigureAwait(false);
        }

        lock (this.gate)
        {
            return c.PopReceipt;
        }
    }

    private async Task MakeVisibleAsync(QueueCopy c, CancellationToken cancellationToken)
    {
        string receipt = await this.ReleaseCopyAsync(c).ConfigureAwait(false);

        try
        {
            await this.controlQueues[c.Partition].UpdateMessageAsync(c.QueueMessageId, receipt, visibilityTimeout: TimeSpan.Zero, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.Status is 404 or 400)
        {
            // Deleted or received again meanwhile; nothing to give back.
        }
    }

    /// <summary>Deletes a queue message; false when it was gone or its receipt no longer valid.</summary>
    private static async Task<bool> DeleteQuietlyAsync(QueueClient queue, string messageId, string popReceipt, CancellationToken cancellationToken)
    {
        try
        {
            await queue.DeleteMessageAsync(messageId, popReceipt, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (RequestFailedException ex) when (ex.Status is 404 or 400)
        {
            // Already deleted, or received again by someone else (a duplicate the engine drops).
            return false;
        }
    }

    // ---------------------------------------------------------------- instances table

    private async Task<TableEntity> NewInstanceEntityAsync(ExecutionStartedEvent started, CancellationToken cancellationToken)
    {
        DateTimeOffset now = this.time.GetUtcNow();
        string pk = StorageNames.EscapeKey(started.InstanceId);
        var e = new TableEntity(pk, InstanceRowKey)
        {
            ["InstanceId"] = started.InstanceId,
            ["Name"] = started.Name,
            ["ExecutionId"] = started.ExecutionId,
            ["Status"] = nameof(OrchestrationRuntimeStatus.Pending),
            ["ParentInstanceId"] = started.Parent?.InstanceId ?? string.Empty,
            ["CreatedAt"] = now,
            ["LastUpdatedAt"] = now,
            ["Partition"] = this.PartitionOf(started.InstanceId),
        };
        if (started.ScheduledStartTime is { } startAt)
        {
            e["ScheduledStartTime"] = startAt;
        }

        await this.payloads.SetLargeAsync(e, "Input", started.Input, $"instances/{pk}/input", PayloadStore.MaxPropertyChars, cancellationToken).ConfigureAwait(false);
        await this.payloads.SetLargeAsync(e, "Output", null, string.Empty, PayloadStore.MaxPropertyChars, cancellationToken).ConfigureAwait(false);
        await this.payloads.SetLargeAsync(e, "CustomStatus", null, string.Empty, PayloadStore.MaxPropertyChars, cancellationToken).ConfigureAwait(false);
        await this.payloads.SetLargeAsync(e, "Failure", null, string.Empty, PayloadStore.MaxPropertyChars, cancellationToken).ConfigureAwait(false);
        return e;
    }

    private async Task WriteInstanceStateAsync(InstanceState state, bool writeInput, CancellationToken cancellationToken)
    {
        DateTimeOffset now = this.time.GetUtcNow();
        string pk = StorageNames.EscapeKey(state.InstanceId);
        var e = new TableEntity(pk, InstanceRowKey)
        {
            ["InstanceId"] = state.InstanceId,
            ["Name"] = state.Name,
            ["ExecutionId"] = state.ExecutionId,
            ["Status"] = state.Status.ToString(),
            ["ParentInstanceId"] = state.ParentInstanceId ?? string.Empty,
            ["LastUpdatedAt"] = now,
        };
        if (state.Status.IsTerminal())
        {
            e["CompletedAt"] = now;
        }

        if (writeInput)
        {
            await this.payloads.SetLargeAsync(e, "Input", state.Input, $"instances/{pk}/input", PayloadStore.MaxPropertyChars, cancellationToken).ConfigureAwait(false);
        }

        await this.payloads.SetLargeAsync(e, "Output", state.Output, $"instances/{pk}/output", PayloadStore.MaxPropertyChars, cancellationToken).ConfigureAwait(false);
        await this.payloads.SetLargeAsync(e, "CustomStatus", state.CustomStatus, $"instances/{pk}/customstatus", PayloadStore.MaxPropertyChars, cancellationToken).ConfigureAwait(false);
        await this.payloads.SetLargeAsync(e, "Failure", state.FailureDetails is null ? null : HistorySerializer.Serialize(state.FailureDetails), $"instances/{pk}/failure", PayloadStore.MaxPropertyChars, cancellationToken).ConfigureAwait(false);
        try
        {
            await this.instancesTable.UpdateEntityAsync(e, ETag.All, TableUpdateMode.Merge, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            // Purged meanwhile; the history is authoritative and nothing reads this instance any more.
        }
    }

    private async Task ClearRowPendingAsync(string pk, ETag etag, CancellationToken cancellationToken)
    {
        try
        {
            await this.historyTable.UpdateEntityAsync(new TableEntity(pk, SentinelKey) { ["RowPending"] = false }, etag, TableUpdateMode.Merge, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.Status is 404 or 412)
        {
            // Purged or written again meanwhile; whoever wrote it owns the flag.
        }
    }

    /// <summary>After a crash between a final checkpoint and its instance-row write, brings the row up to date from history.</summary>
    private async Task RepairInstanceRowAsync(string instanceId, HistoryState state, CancellationToken cancellationToken)
    {
        NullableResponse<TableEntity> row = await this.instancesTable.GetEntityIfExistsAsync<TableEntity>(StorageNames.EscapeKey(instanceId), InstanceRowKey, ["Status", "ExecutionId", "Name"], cancellationToken).ConfigureAwait(false);
        if (!row.HasValue || ParseStatus(row.Value!) == state.Status || row.Value!.GetString("ExecutionId") != state.ExecutionId)
        {
            return;
        }

        ExecutionCompletedEvent? done = state.Events.OfType<ExecutionCompletedEvent>().LastOrDefault();
        ExecutionStartedEvent? started = state.Events.OfType<ExecutionStartedEvent>().LastOrDefault();
        if (done is null || started is null)
        {
            return;
        }

        await this.WriteInstanceStateAsync(
            new InstanceState
            {
                InstanceId = instanceId,
                Name = started.Name,
                ExecutionId = started.ExecutionId,
                Status = done.Status,
                Input = started.Input,
                Output = done.Result,
                FailureDetails = done.FailureDetails,
                ParentInstanceId = started.Parent?.InstanceId,
            },
            writeInput: false,
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Creates the instance a sub-orchestration start targets, or re-creates it over a finished one.
    /// Refused when an unfinished instance of another execution holds the id; the parent is told.
    /// </summary>
    private async Task<SubStart> EnsureSubOrchestrationInstanceAsync(ExecutionStartedEvent started, CancellationToken cancellationToken)
    {
        string pk = StorageNames.EscapeKey(started.InstanceId);
        for (int attempt = 0; attempt < 3; attempt++)
        {
            NullableResponse<TableEntity> row = await this.instancesTable.GetEntityIfExistsAsync<TableEntity>(pk, InstanceRowKey, ["Status", "ExecutionId"], cancellationToken).ConfigureAwait(false);
            try
            {
                if (!row.HasValue)
                {
                    await this.instancesTable.AddEntityAsync(await this.NewInstanceEntityAsync(started, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
                    return SubStart.Created;
                }

                OrchestrationRuntimeStatus status = ParseStatus(row.Value!);
                // A re-dispatch of the same start. (An instance's own ContinueAsNew restart never
                // comes here; a parent's start aimed at an instance between executions is refused.)
                if (row.Value!.GetString("ExecutionId") == started.ExecutionId)
                {
                    return SubStart.Existing;
                }

                if (status.IsTerminal())
                {
                    await this.instancesTable.UpdateEntityAsync(await this.NewInstanceEntityAsync(started, cancellationToken).ConfigureAwait(false), row.Value!.ETag, TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
                    return SubStart.Existing;
                }

                if (started.Parent is { } parent)
                {
                    await this.EnqueueControlAsync(
                        new TaskMessage
                        {
                            MessageId = $"{parent.InstanceId}|{parent.ExecutionId}|subfail|{parent.TaskScheduledId}",
                            InstanceId = parent.InstanceId,
                            ExecutionId = parent.ExecutionId,
                            Event = new SubOrchestrationInstanceFailedEvent
                            {
                                Timestamp = this.time.GetUtcNow(),
                                TaskScheduledId = parent.TaskScheduledId,
                                FailureDetails = new TaskFailureDetails(
                                    typeof(OrchestrationAlreadyExistsException).FullName!,
                                    $"Sub-orchestration '{started.Name}' could not start: instance '{started.InstanceId}' already exists and is {status}.",
                                    IsNonRetriable: true),
                            },
                        },
                        cancellationToken).ConfigureAwait(false);
                }

                return SubStart.Refused;
            }
            catch (RequestFailedException ex) when (ex.Status is 409 or 412)
            {
                // Raced with another writer: look again.
            }
        }

        return SubStart.Refused;
    }

    /// <summary>Deletes a finished instance's rows and blobs; false (nothing deleted) while it has an undispatched outbox.</summary>
    private async Task<bool> DeleteInstanceDataAsync(string instanceId, ETag instanceETag, CancellationToken cancellationToken)
    {
        string pk = StorageNames.EscapeKey(instanceId);
        var keys = new List<string>();
        await foreach (TableEntity e in this.historyTable.QueryAsync<TableEntity>($"PartitionKey eq '{Quote(pk)}'", select: ["RowKey"], cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            keys.Add(e.RowKey);
        }

        if (keys.Any(k => k.StartsWith('o')))
        {
            // A worker died between the final checkpoint and its dispatch (e.g. the result for a
            // parent): purging now would lose those messages.
            return false;
        }

        this.cache.Remove(instanceId);

        foreach (string[] batch in keys.Chunk(100))
        {
            await this.historyTable.SubmitTransactionAsync(
                batch.Select(k => new TableTransactionAction(TableTransactionActionType.Delete, new TableEntity(pk, k), ETag.All)),
                cancellationToken).ConfigureAwait(false);
        }

        await this.payloads.DeleteInstanceBlobsAsync(instanceId, cancellationToken).ConfigureAwait(false);

        // Last, so an interrupted purge can be run again.
        try
        {
            await this.instancesTable.DeleteEntityAsync(pk, InstanceRowKey, instanceETag, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.Status is 404 or 412)
        {
            // Deleted or re-created meanwhile.
        }

        return true;
    }

    private async Task<OrchestrationMetadata> ToMetadataAsync(TableEntity e, bool withData, CancellationToken cancellationToken)
    {
        string? failure = await this.payloads.GetLargeAsync(e, "Failure", cancellationToken).ConfigureAwait(false);
        string? parent = e.GetString("ParentInstanceId");
        return new OrchestrationMetadata
        {
            InstanceId = e.GetString("InstanceId") ?? e.PartitionKey,
            Name = e.GetString("Name") ?? string.Empty,
            ExecutionId = e.GetString("ExecutionId") ?? string.Empty,
            RuntimeStatus = ParseStatus(e),
            CreatedAt = e.GetDateTimeOffset("CreatedAt") ?? default,
            LastUpdatedAt = e.GetDateTimeOffset("LastUpdatedAt") ?? default,
            CompletedAt = e.GetDateTimeOffset("CompletedAt"),
            SerializedInput = withData ? await this.payloads.GetLargeAsync(e, "Input", cancellationToken).ConfigureAwait(false) : null,
            SerializedOutput = withData ? await this.payloads.GetLargeAsync(e, "Output", cancellationToken).ConfigureAwait(false) : null,
            SerializedCustomStatus = withData ? await this.payloads.GetLargeAsync(e, "CustomStatus", cancellationToken).ConfigureAwait(false) : null,
            FailureDetails = HistorySerializer.DeserializeFailure(failure),
            ParentInstanceId = string.IsNullOrEmpty(parent) ? null : parent,
        };
    }

    private async Task EnsureHubInfoAsync(CancellationToken cancellationToken)
    {
        var info = new TableEntity("hub", "info") { ["PartitionCount"] = this.options.PartitionCount, ["CreatedAt"] = this.time.GetUtcNow() };
        try
        {
            await this.leasesTable.AddEntityAsync(info, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            TableEntity existing = (await this.leasesTable.GetEntityAsync<TableEntity>("hub", "info", cancellationToken: cancellationToken).ConfigureAwait(false)).Value;
            int recorded = existing.GetInt32("PartitionCount") ?? -1;
            if (recorded != this.options.PartitionCount)
            {
                throw new InvalidOperationException(
                    $"Task hub '{this.options.TaskHubName}' was created with PartitionCount = {recorded}, but this worker is configured with PartitionCount = {this.options.PartitionCount}. "
                    + "The partition count of a hub cannot change (instances are placed by it); configure the recorded value or use a new task hub.");
            }
        }

        var present = new HashSet<string>(StringComparer.Ordinal);
        await foreach (TableEntity e in this.leasesTable.QueryAsync<TableEntity>($"PartitionKey eq '{PartitionLeaseManager.LeasePartition}'", select: ["RowKey"], cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            present.Add(e.RowKey);
        }

        for (int p = 0; p < this.options.PartitionCount; p++)
        {
            string key = PartitionLeaseManager.LeaseKey(p);
            if (present.Contains(key))
            {
                continue;
            }

            try
            {
                await this.leasesTable.AddEntityAsync(
                    new TableEntity(PartitionLeaseManager.LeasePartition, key) { ["Owner"] = string.Empty, ["ExpiresAt"] = new DateTimeOffset(2000, 1, 1, 0, 0, 0, TimeSpan.Zero) },
                    cancellationToken).ConfigureAwait(false);
            }
            catch (RequestFailedException ex) when (ex.Status == 409)
            {
                // Another worker created it.
            }
        }
    }

    // ---------------------------------------------------------------- helpers

    private T Configure<T>(T clientOptions)
        where T : ClientOptions
    {
        clientOptions.AddPolicy(this.counter, HttpPipelinePosition.PerRetry);
        clientOptions.Retry.MaxRetries = 3;
        clientOptions.Retry.Delay = TimeSpan.FromMilliseconds(200);
        clientOptions.Retry.MaxDelay = TimeSpan.FromSeconds(5);
        clientOptions.Retry.NetworkTimeout = TimeSpan.FromSeconds(30);
        return clientOptions;
    }

    private void RunInBackground(string operation, Func<Task> work)
    {
        Task t = Task.Run(async () =>
        {
            try
            {
                await work().ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                AzureLog.BackgroundOperationFailed(this.logger, ex, operation);
            }
        });
        this.background.TryAdd(t, 0);
        _ = t.ContinueWith(done => this.background.TryRemove(done, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref this.disposed) != 0, this);

    private static string BuildInstanceFilter(IReadOnlyCollection<OrchestrationRuntimeStatus>? statuses, DateTimeOffset? from, DateTimeOffset? to, string? prefix)
    {
        var parts = new List<string>();
        if (statuses is { Count: > 0 })
        {
            parts.Add("(" + string.Join(" or ", statuses.Distinct().Select(s => $"Status eq '{s}'")) + ")");
        }

        if (from is { } f)
        {
            parts.Add(TableClient.CreateQueryFilter($"CreatedAt ge {f}"));
        }

        if (to is { } t)
        {
            parts.Add(TableClient.CreateQueryFilter($"CreatedAt lt {t}"));
        }

        if (prefix is { Length: > 0 })
        {
            // Escaping works character by character, so the escaped prefix is a prefix of exactly the escaped ids
            // that start with the prefix; they lie between it and its last character plus one.
            string key = StorageNames.EscapeKey(prefix);
            parts.Add($"PartitionKey ge '{Quote(key)}'");
            char last = key[^1];
            if (!char.IsSurrogate(last) && last < 0xD7FF)
            {
                parts.Add($"PartitionKey lt '{Quote(key[..^1] + (char)(last + 1))}'");
            }
        }

        return parts.Count == 0 ? string.Empty : string.Join(" and ", parts);
    }

    private static OrchestrationRuntimeStatus ParseStatus(TableEntity e) =>
        Enum.TryParse(e.GetString("Status"), out OrchestrationRuntimeStatus s) ? s : OrchestrationRuntimeStatus.Pending;

    private static string Quote(string value) => value.Replace("'", "''", StringComparison.Ordinal);

    private static string FirstLine(string message)
    {
        int i = message.IndexOf('\n', StringComparison.Ordinal);
        return (i < 0 ? message : message[..i]).Trim();
    }

    private static string? TryReadProperty(string json, string name)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.String
                ? v.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string SerializeMessages(IEnumerable<TaskMessage> messages) => "[" + string.Join(",", messages.Select(HistorySerializer.Serialize)) + "]";

    private static List<TaskMessage> DeserializeMessages(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.EnumerateArray().Select(e => HistorySerializer.DeserializeMessage(e.GetRawText())).ToList();
    }

    private static int CountPendingActivities(IEnumerable<HistoryEvent> events)
    {
        var pending = new HashSet<int>();
        foreach (HistoryEvent e in events)
        {
            switch (e)
            {
                case TaskScheduledEvent t: pending.Add(t.EventId); break;
                case TaskCompletedEvent c: pending.Remove(c.TaskScheduledId); break;
                case TaskFailedEvent f: pending.Remove(f.TaskScheduledId); break;
            }
        }

        return pending.Count;
    }

    private static string Hash(string? value) =>
        value is null ? string.Empty : Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(value)), 0, 12);

    /// <summary>Queue visibility in whole seconds (the service's unit), rounded up, within 0..max.</summary>
    private static TimeSpan VisibilityFor(TimeSpan delay, TimeSpan max)
    {
        if (delay <= TimeSpan.Zero)
        {
            return TimeSpan.Zero;
        }

        double seconds = Math.Ceiling(Math.Min(delay.TotalSeconds, Math.Floor(max.TotalSeconds)));
        return TimeSpan.FromSeconds(seconds);
    }

    private static TimeSpan VisibilityFor(TimeSpan lockTimeout) => TimeSpan.FromSeconds(Math.Clamp(Math.Ceiling(lockTimeout.TotalSeconds), 1, 7 * 24 * 3600 - 1));

    private static string NewToken()
    {
#pragma warning disable RS0030 // A lock token is not replayed; it only has to be unique.
        return Guid.NewGuid().ToString("N");
#pragma warning restore RS0030
    }
}

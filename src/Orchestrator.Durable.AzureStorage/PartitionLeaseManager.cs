using Azure;
using Azure.Data.Tables;
using Microsoft.Extensions.Logging;

namespace Orchestrator.Durable.AzureStorage;

/// <summary>
/// Partition ownership through ETag-conditional rows in the leases table: one row per partition
/// (Owner, ExpiresAt) and one heartbeat row per live worker. Each run renews what this worker
/// holds, lists the live workers, releases leases above its share and claims free or expired ones
/// up to it, and deletes heartbeats of workers dead for a while.
/// </summary>
/// <remarks>
/// Shares: with P partitions and W live workers ordered by id, the first P mod W workers take
/// ceil(P/W) and the others floor(P/W), so 4 partitions over 3 workers split 2/1/1 (not 2/2/0, which
/// "at most ceil(P/W) each" alone allows). Every worker computes the same shares from the same
/// heartbeats; while they disagree (a heartbeat just appeared or expired) a worker may hold one
/// lease too few for a round, never two owners for one lease (the claims are ETag-conditional).
/// </remarks>
/// <remarks>
/// A partition is consumed only while its lease has more than one renew interval left, so a worker
/// whose renewals fail stops fetching before the lease can expire and another worker can claim it.
/// </remarks>
internal sealed class PartitionLeaseManager : IAsyncDisposable
{
    public const string LeasePartition = "lease";
    public const string WorkerPartition = "worker";

    private readonly TableClient table;
    private readonly AzureStorageOrchestrationBackendOptions options;
    private readonly TimeProvider time;
    private readonly ILogger logger;
    private readonly string workerKey;
    private readonly Func<IReadOnlyList<int>, Task> onAcquired;
    private readonly Action<IReadOnlyList<int>> onLost;
    private readonly long[] heldUntil; // UTC ticks of the lease expiry as written; 0 = not held
    private readonly SemaphoreSlim gate = new(1, 1);
    private readonly object loopLock = new();
    private readonly CancellationTokenSource stop = new();
    private DateTimeOffset nextRun = DateTimeOffset.MinValue;
    private Task? loop;
    private volatile bool renewalStopped;

    public PartitionLeaseManager(TableClient table, AzureStorageOrchestrationBackendOptions options, ILogger logger, Func<IReadOnlyList<int>, Task> onAcquired, Action<IReadOnlyList<int>> onLost)
    {
        this.table = table;
        this.options = options;
        this.time = options.TimeProvider;
        this.logger = logger;
        this.workerKey = StorageNames.EscapeKey(options.WorkerId);
        this.onAcquired = onAcquired;
        this.onLost = onLost;
        this.heldUntil = new long[options.PartitionCount];
    }

    public static string LeaseKey(int partition) => partition.ToString("D2", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>True while this worker holds the partition's lease with more than one renew interval left.</summary>
    public bool IsConsumable(int partition)
    {
        long until = Volatile.Read(ref this.heldUntil[partition]);
        return until != 0 && this.time.GetUtcNow().UtcTicks < until - this.options.LeaseRenewInterval.Ticks;
    }

    /// <summary>Partitions this worker may fetch from now.</summary>
    public IEnumerable<int> ConsumablePartitions() => Enumerable.Range(0, this.heldUntil.Length).Where(this.IsConsumable);

    /// <summary>Starts the background renewal loop (once) and runs a first round if one is due.</summary>
    public async Task EnsureRunningAsync(CancellationToken cancellationToken)
    {
        if (this.loop is null && !this.renewalStopped)
        {
            lock (this.loopLock)
            {
                this.loop ??= Task.Run(this.LoopAsync, CancellationToken.None);
            }
        }

        await this.RunIfDueAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Test hook: behave like a hung worker (no renewals, no release); leases run out.</summary>
    internal void StopRenewing()
    {
        this.renewalStopped = true;
        this.stop.Cancel();
    }

    public async ValueTask DisposeAsync()
    {
        await this.stop.CancelAsync().ConfigureAwait(false);
        if (this.loop is not null)
        {
            await this.loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        if (!this.renewalStopped && this.loop is not null)
        {
            try
            {
                await this.ReleaseAllAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RequestFailedException or AggregateException or HttpRequestException)
            {
                // The leases run out on their own.
                AzureLog.LeaseRoundFailed(this.logger, ex);
            }
        }

        this.stop.Dispose();
        this.gate.Dispose();
    }

    private async Task LoopAsync()
    {
        while (!this.stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(this.options.LeaseRenewInterval, this.time, this.stop.Token).ConfigureAwait(false);
                await this.RunIfDueAsync(this.stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (this.stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                AzureLog.LeaseRoundFailed(this.logger, ex);
            }
        }
    }

    private async Task RunIfDueAsync(CancellationToken cancellationToken)
    {
        if (this.renewalStopped || this.time.GetUtcNow() < this.nextRun)
        {
            return;
        }

        if (!await this.gate.WaitAsync(0, cancellationToken).ConfigureAwait(false))
        {
            return;
        }

        try
        {
            if (this.time.GetUtcNow() >= this.nextRun)
            {
                await this.RunOnceAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            this.gate.Release();
        }
    }

    private async Task RunOnceAsync(CancellationToken cancellationToken)
    {
        DateTimeOffset now = this.time.GetUtcNow();
        this.nextRun = now + this.options.LeaseRenewInterval;
        DateTimeOffset expires = now + this.options.LeaseDuration;
        await this.table.UpsertEntityAsync(
            new TableEntity(WorkerPartition, this.workerKey) { ["ExpiresAt"] = expires, ["WorkerId"] = this.options.WorkerId },
            TableUpdateMode.Replace,
            cancellationToken).ConfigureAwait(false);

        var leases = new TableEntity?[this.heldUntil.Length];
        var live = new SortedSet<string>(StringComparer.Ordinal) { this.options.WorkerId };
        var stale = new List<TableEntity>();
        await foreach (TableEntity e in this.table.QueryAsync<TableEntity>(
            $"PartitionKey eq '{LeasePartition}' or PartitionKey eq '{WorkerPartition}'", cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            if (e.PartitionKey == WorkerPartition)
            {
                DateTimeOffset expiresAt = e.GetDateTimeOffset("ExpiresAt") ?? DateTimeOffset.MinValue;
                if (expiresAt > now)
                {
                    live.Add(e.GetString("WorkerId") ?? e.RowKey);
                }
                else if (e.RowKey != this.workerKey && expiresAt < now - this.StaleAfter)
                {
                    stale.Add(e);
                }
            }
            else if (int.TryParse(e.RowKey, out int p) && p >= 0 && p < leases.Length)
            {
                leases[p] = e;
            }
        }

        int target = ShareOf(leases.Length, [.. live], this.options.WorkerId);
        var lost = new List<int>();
        var acquired = new List<int>();
        int held = 0;

        // Renew what we hold; anything now owned by someone else is lost.
        for (int p = 0; p < leases.Length; p++)
        {
            TableEntity? row = leases[p];
            bool ours = row is not null && row.GetString("Owner") == this.options.WorkerId;
            if (!ours)
            {
                if (this.heldUntil[p] != 0)
                {
                    this.Drop(p, lost);
                }

                continue;
            }

            if (await this.TryWriteAsync(row!, this.options.WorkerId, expires, cancellationToken).ConfigureAwait(false))
            {
                if (this.heldUntil[p] == 0)
                {
                    acquired.Add(p);
                }

                Volatile.Write(ref this.heldUntil[p], expires.UtcTicks);
                held++;
            }
            else
            {
                this.Drop(p, lost);
            }
        }

        // Give back leases above the fair share: stop consuming first, then release.
        for (int p = leases.Length - 1; p >= 0 && held > target; p--)
        {
            if (this.heldUntil[p] == 0 || leases[p] is null)
            {
                continue;
            }

            this.Drop(p, lost);
            held--;
            TableEntity fresh = (await this.table.GetEntityAsync<TableEntity>(LeasePartition, LeaseKey(p), cancellationToken: cancellationToken).ConfigureAwait(false)).Value;
            if (fresh.GetString("Owner") == this.options.WorkerId)
            {
                await this.TryWriteAsync(fresh, string.Empty, now, cancellationToken).ConfigureAwait(false);
            }
        }

        // Claim free or expired leases up to the fair share.
        for (int p = 0; p < leases.Length && held < target; p++)
        {
            TableEntity? row = leases[p];
            if (row is null || this.heldUntil[p] != 0 || lost.Contains(p))
            {
                continue;
            }

            string owner = row.GetString("Owner") ?? string.Empty;
            bool free = owner.Length == 0 || row.GetDateTimeOffset("ExpiresAt") <= now;
            if (free && await this.TryWriteAsync(row, this.options.WorkerId, expires, cancellationToken).ConfigureAwait(false))
            {
                Volatile.Write(ref this.heldUntil[p], expires.UtcTicks);
                acquired.Add(p);
                held++;
                AzureLog.LeaseAcquired(this.logger, this.options.WorkerId, p, owner);
            }
        }

        if (lost.Count > 0)
        {
            this.onLost(lost);
        }

        if (acquired.Count > 0)
        {
            await this.onAcquired(acquired).ConfigureAwait(false);
        }

        foreach (TableEntity dead in stale)
        {
            try
            {
                // If-Match: a worker that came back and beat again keeps its row.
                await this.table.DeleteEntityAsync(WorkerPartition, dead.RowKey, dead.ETag, cancellationToken).ConfigureAwait(false);
                AzureLog.StaleWorkerRemoved(this.logger, dead.GetString("WorkerId") ?? dead.RowKey);
            }
            catch (RequestFailedException ex) when (ex.Status is 404 or 412)
            {
                // Deleted by another worker, or alive again.
            }
        }
    }

    /// <summary>
    /// How many partitions a worker should hold: with the live workers ordered by id, the first
    /// P mod W take ceil(P/W), the rest floor(P/W).
    /// </summary>
    internal static int ShareOf(int partitions, IReadOnlyList<string> liveWorkers, string workerId)
    {
        var ordered = liveWorkers.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        int w = Math.Max(1, ordered.Count);
        int rank = ordered.IndexOf(workerId);
        if (rank < 0)
        {
            rank = ordered.Count(id => string.CompareOrdinal(id, workerId) < 0);
            w++;
        }

        return (partitions / w) + (rank < partitions % w ? 1 : 0);
    }

    /// <summary>A heartbeat this long past its expiry belongs to a dead worker and is deleted.</summary>
    private TimeSpan StaleAfter => this.options.LeaseDuration * 2;

    private void Drop(int partition, List<int> lost)
    {
        Volatile.Write(ref this.heldUntil[partition], 0L);
        lost.Add(partition);
        AzureLog.LeaseLost(this.logger, this.options.WorkerId, partition);
    }

    private async Task<bool> TryWriteAsync(TableEntity row, string owner, DateTimeOffset expires, CancellationToken cancellationToken)
    {
        var update = new TableEntity(LeasePartition, row.RowKey) { ["Owner"] = owner, ["ExpiresAt"] = expires };
        try
        {
            await this.table.UpdateEntityAsync(update, row.ETag, TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (RequestFailedException ex) when (ex.Status is 412 or 404)
        {
            return false;
        }
    }

    private async Task ReleaseAllAsync()
    {
        var released = new List<int>();
        for (int p = 0; p < this.heldUntil.Length; p++)
        {
            if (this.heldUntil[p] == 0)
            {
                continue;
            }

            this.Drop(p, released);
            try
            {
                TableEntity row = (await this.table.GetEntityAsync<TableEntity>(LeasePartition, LeaseKey(p)).ConfigureAwait(false)).Value;
                if (row.GetString("Owner") == this.options.WorkerId)
                {
                    await this.TryWriteAsync(row, string.Empty, this.time.GetUtcNow(), CancellationToken.None).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is RequestFailedException or AggregateException)
            {
                AzureLog.LeaseRoundFailed(this.logger, ex);
            }
        }

        try
        {
            await this.table.DeleteEntityAsync(WorkerPartition, this.workerKey, ETag.All).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RequestFailedException or AggregateException)
        {
            AzureLog.LeaseRoundFailed(this.logger, ex);
        }

        if (released.Count > 0)
        {
            this.onLost(released);
        }
    }
}

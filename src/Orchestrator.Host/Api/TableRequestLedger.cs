using Azure;
using Azure.Data.Tables;

namespace Orchestrator.Host.Api;

/// <summary>
/// The request ledger as an Azure table (<c>{hub}Requests</c>) in the account AzureWebJobsStorage names (connection string or identity-based). Partition key:
/// hash of the scope; row key: hash of the key (table keys forbid characters that ids may hold). Claims are
/// insert-if-absent; a takeover is an ETag-conditional update.
/// </summary>
internal sealed class TableRequestLedger : IRequestLedger
{
    private readonly TableClient table;
    private readonly TimeProvider time;
    private readonly LedgerRetention retention;

    /// <param name="tables">The account's table service, made the way the backend makes its own (connection string or credential).</param>
    /// <param name="hubName">The task hub; the table is <c>{hubName}Requests</c>.</param>
    /// <param name="time">The clock of claims, their lease and their retention.</param>
    /// <param name="retention">How long keys are kept; <see cref="LedgerRetention.Default"/> when null.</param>
    public TableRequestLedger(TableServiceClient tables, string hubName, TimeProvider time, LedgerRetention? retention = null)
    {
        ArgumentNullException.ThrowIfNull(tables);
        this.table = tables.GetTableClient(hubName + "Requests");
        this.time = time;
        this.retention = retention ?? LedgerRetention.Default;
    }

    public Task InitializeAsync(CancellationToken cancellationToken) => this.table.CreateIfNotExistsAsync(cancellationToken);

    public async Task<LedgerClaim> ClaimAsync(string scope, string key, string requestHash, CancellationToken cancellationToken)
    {
        DateTimeOffset now = this.time.GetUtcNow();
        // WARNING: persisted entity shape; change only compatibly.
        var entity = new TableEntity(RequestHash.Of(scope), RequestHash.Of(key))
        {
            ["RequestHash"] = requestHash,
            ["ClaimedAt"] = now,
        };
        try
        {
            await this.table.AddEntityAsync(entity, cancellationToken).ConfigureAwait(false);
            return new LedgerClaim(ClaimKind.Began);
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
        }

        NullableResponse<TableEntity> found = await this.table.GetEntityIfExistsAsync<TableEntity>(entity.PartitionKey, entity.RowKey, cancellationToken: cancellationToken).ConfigureAwait(false);
        if (!found.HasValue)
        {
            // Released or expired and deleted between the insert and the read: claim it anew, once.
            return await this.InsertAsync(entity, cancellationToken).ConfigureAwait(false);
        }

        TableEntity row = found.Value!;
        if (now - (row.GetDateTimeOffset("ClaimedAt") ?? now) >= this.retention.For(scope))
        {
            // Expired: the key is new again. Replaced (stored response dropped) on the ETag read: of two requests reusing it, one begins.
            try
            {
                await this.table.UpdateEntityAsync(entity, row.ETag, TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
                return new LedgerClaim(ClaimKind.Began);
            }
            catch (RequestFailedException ex) when (ex.Status == 412)
            {
                return new LedgerClaim(ClaimKind.InProgress);
            }
            catch (RequestFailedException ex) when (ex.Status == 404)
            {
                // The cleanup deleted the expired row meanwhile.
                return await this.InsertAsync(entity, cancellationToken).ConfigureAwait(false);
            }
        }

        if (row.GetString("RequestHash") != requestHash)
        {
            return new LedgerClaim(ClaimKind.Mismatch);
        }

        if (row.GetInt32("Status") is int status)
        {
            return new LedgerClaim(ClaimKind.Completed, new StoredResponse(status, row.GetString("Body") ?? string.Empty, row.GetString("Location")));
        }

        if (now - (row.GetDateTimeOffset("ClaimedAt") ?? now) < IRequestLedger.Lease)
        {
            return new LedgerClaim(ClaimKind.InProgress);
        }

        row["ClaimedAt"] = now;
        try
        {
            await this.table.UpdateEntityAsync(row, row.ETag, TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
            return new LedgerClaim(ClaimKind.TookOver);
        }
        catch (RequestFailedException ex) when (ex.Status is 412 or 404)
        {
            return new LedgerClaim(ClaimKind.InProgress);
        }
    }

    private async Task<LedgerClaim> InsertAsync(TableEntity entity, CancellationToken cancellationToken)
    {
        try
        {
            await this.table.AddEntityAsync(entity, cancellationToken).ConfigureAwait(false);
            return new LedgerClaim(ClaimKind.Began);
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            return new LedgerClaim(ClaimKind.InProgress);
        }
    }

    public async Task CompleteAsync(string scope, string key, StoredResponse response, CancellationToken cancellationToken)
    {
        var entity = new TableEntity(RequestHash.Of(scope), RequestHash.Of(key))
        {
            ["Status"] = response.Status,
            ["Body"] = response.Body,
            ["Location"] = response.Location,
        };
        await this.table.UpdateEntityAsync(entity, ETag.All, TableUpdateMode.Merge, cancellationToken).ConfigureAwait(false);
    }

    public async Task ReleaseAsync(string scope, string key, CancellationToken cancellationToken)
    {
        NullableResponse<TableEntity> found = await this.table.GetEntityIfExistsAsync<TableEntity>(RequestHash.Of(scope), RequestHash.Of(key), cancellationToken: cancellationToken).ConfigureAwait(false);
        if (found.HasValue && found.Value!.GetInt32("Status") is null)
        {
            try
            {
                await this.table.DeleteEntityAsync(found.Value.PartitionKey, found.Value.RowKey, found.Value.ETag, cancellationToken).ConfigureAwait(false);
            }
            catch (RequestFailedException ex) when (ex.Status is 412 or 404)
            {
                // Completed or taken over meanwhile: not ours to drop.
            }
        }
    }

    public async Task ForgetScopeAsync(string scope, CancellationToken cancellationToken)
    {
        string partition = RequestHash.Of(scope);
        await foreach (TableEntity row in this.table.QueryAsync<TableEntity>(e => e.PartitionKey == partition, select: ["PartitionKey", "RowKey"], cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            await this.table.DeleteEntityAsync(row.PartitionKey, row.RowKey, ETag.All, cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task<int> DeleteExpiredAsync(int maxRows, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRows, 1);
        DateTimeOffset now = this.time.GetUtcNow();
        string webhooks = RequestHash.Of(LedgerRetention.WebhookScope);
        // Column names are literal text: an interpolated one would be quoted as a string.
        string webhookFilter = TableClient.CreateQueryFilter($"PartitionKey eq {webhooks} and ClaimedAt le {(now - this.retention.Webhooks).ToUniversalTime()}");
        string messageFilter = TableClient.CreateQueryFilter($"PartitionKey ne {webhooks} and ClaimedAt le {(now - this.retention.Messages).ToUniversalTime()}");
        int deleted = 0;
        int seen = 0;
        foreach (string filter in new[] { webhookFilter, messageFilter })
        {
            // Rows, not pages: a cross-partition query may answer with short or empty pages before the end.
            await foreach (TableEntity row in this.table.QueryAsync<TableEntity>(filter, maxPerPage: maxRows, select: ["PartitionKey", "RowKey"], cancellationToken: cancellationToken).ConfigureAwait(false))
            {
                try
                {
                    // On the ETag read: a key reused (renewed) or taken over since the query is kept.
                    await this.table.DeleteEntityAsync(row.PartitionKey, row.RowKey, row.ETag, cancellationToken).ConfigureAwait(false);
                    deleted++;
                }
                catch (RequestFailedException ex) when (ex.Status is 404 or 412)
                {
                }

                if (++seen >= maxRows)
                {
                    return deleted;
                }
            }
        }

        return deleted;
    }

    public async Task CheckAsync(CancellationToken cancellationToken)
    {
        await foreach (TableEntity _ in this.table.QueryAsync<TableEntity>(maxPerPage: 1, select: ["PartitionKey"], cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            break;
        }

    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

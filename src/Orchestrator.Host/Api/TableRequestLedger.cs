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

    /// <param name="tables">The account's table service, made the way the backend makes its own (connection string or credential).</param>
    /// <param name="hubName">The task hub; the table is <c>{hubName}Requests</c>.</param>
    /// <param name="time">The clock of claims and their lease.</param>
    public TableRequestLedger(TableServiceClient tables, string hubName, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(tables);
        this.table = tables.GetTableClient(hubName + "Requests");
        this.time = time;
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
            return new LedgerClaim(ClaimKind.InProgress);
        }

        TableEntity row = found.Value!;
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

    public async Task CheckAsync(CancellationToken cancellationToken)
    {
        await foreach (TableEntity _ in this.table.QueryAsync<TableEntity>(maxPerPage: 1, select: ["PartitionKey"], cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            break;
        }

    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

using System.Security.Cryptography;
using System.Text;
using Azure;
using Azure.Data.Tables;
using Orchestrator.Agents;

namespace Orchestrator.Host;

/// <summary>
/// The <see cref="IToolCallJournal"/> of a task hub on Azure Storage: one table, <c>{hub}ToolCalls</c>, in the hub's
/// account, shared by every worker process of the hub, so a write retried in another process after its worker died is
/// recognised as in doubt. Same states and answers as <see cref="SqliteToolCallJournal"/>.
/// </summary>
/// <remarks>
/// One row per write: partition key the SHA-256 (hex) of the idempotency key (table keys forbid characters an id may
/// hold; a partition per write spreads the load), row key empty. A begin reads the row and then writes it
/// conditionally: insert-if-absent when there was none (a concurrent insert gets 409), replace with <c>If-Match</c> on
/// the ETag it read otherwise (a concurrent begin or end gets 412); a refused write reads again. So of any number of
/// concurrent begins of one write, in any processes, exactly one sees each prior state, as the SQLite journal's
/// immediate transaction guarantees. Each begin is acknowledged by the service before the handler runs. Thread-safe.
/// </remarks>
internal sealed class TableToolCallJournal : IPurgeableToolCallJournal, IDisposable
{
    /// <summary>What follows the hub name in the table's name.</summary>
    public const string TableSuffix = "ToolCalls";

    // Optimistic concurrency: each refused write means another begin or end of the same write won; that many in a row
    // is not contention but a fault.
    private const int MaxConflicts = 64;

    private readonly TableClient _table;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _create = new(1, 1);
    private volatile bool _created;

    /// <summary>Creates the journal of task hub <paramref name="hubName"/> in the account of <paramref name="serviceClient"/>; the table is created when first used.</summary>
    /// <exception cref="ArgumentException">The hub name is not a task hub name (letters and digits, starting with a letter, 3-45 characters).</exception>
    public TableToolCallJournal(TableServiceClient serviceClient, string hubName, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(serviceClient);
        _table = serviceClient.GetTableClient(TableNameFor(hubName));
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>The table's name: the hub name and <see cref="TableSuffix"/> (at most 54 characters, within the service's 63).</summary>
    /// <exception cref="ArgumentException">The hub name is not a task hub name.</exception>
    public static string TableNameFor(string hubName)
    {
        ArgumentNullException.ThrowIfNull(hubName);
        if (hubName.Length is < 3 or > 45 || !char.IsAsciiLetter(hubName[0]) || !hubName.All(char.IsAsciiLetterOrDigit))
        {
            throw new ArgumentException($"'{hubName}' is not a task hub name: letters and digits, starting with a letter, 3-45 characters.", nameof(hubName));
        }

        return hubName + TableSuffix;
    }

    /// <summary>The table's name.</summary>
    public string TableName => _table.Name;

    /// <inheritdoc/>
    public async ValueTask<PriorAttempt> BeginAttemptAsync(string idempotencyKey, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(idempotencyKey);
        await EnsureTableAsync(cancellationToken).ConfigureAwait(false);
        string partition = PartitionKeyOf(idempotencyKey);
        for (int conflicts = 0; conflicts < MaxConflicts; conflicts++)
        {
            NullableResponse<TableEntity> found = await _table.GetEntityIfExistsAsync<TableEntity>(partition, string.Empty, cancellationToken: cancellationToken).ConfigureAwait(false);
            try
            {
                if (!found.HasValue)
                {
                    await _table.AddEntityAsync(Row(partition, idempotencyKey, Started, attempts: 1), cancellationToken).ConfigureAwait(false);
                    return PriorAttempt.None;
                }

                TableEntity row = found.Value!;
                TableEntity next = Row(partition, idempotencyKey, Started, (row.GetInt32(AttemptsColumn) ?? 0) + 1);
                await _table.UpdateEntityAsync(next, row.ETag, TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
                return ToPrior(row.GetInt32(StateColumn) ?? 0);
            }
            catch (RequestFailedException ex) when (ex.Status is 409 or 412 or 404)
            {
                // Another begin (or an end, or a purge) of this write got in between the read and the write: read again.
            }
        }

        throw new InvalidOperationException($"The tool-call journal ({_table.Name}) refused {MaxConflicts} conditional writes in a row for one write; giving up.");
    }

    /// <inheritdoc/>
    public async ValueTask EndAttemptAsync(string idempotencyKey, AttemptEnd end, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(idempotencyKey);
        await EnsureTableAsync(cancellationToken).ConfigureAwait(false);
        var entity = new TableEntity(PartitionKeyOf(idempotencyKey), string.Empty)
        {
            [StateColumn] = (int)end,
            [UpdatedAtColumn] = _time.GetUtcNow(),
        };
        try
        {
            // Merge: the attempt count stays. Unconditional, as in the SQLite journal: the last end recorded is the one that counts.
            await _table.UpdateEntityAsync(entity, ETag.All, TableUpdateMode.Merge, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            // No begin recorded (purged meanwhile): like the SQLite journal's UPDATE of no row, nothing to record.
        }
    }

    /// <summary>Deletes entries not touched since <paramref name="olderThan"/> (their turns are long finished).</summary>
    /// <remarks>Each delete is conditional on the ETag read, so an entry touched while the purge runs is kept.</remarks>
    /// <returns>How many were deleted.</returns>
    public Task<int> PurgeAsync(DateTimeOffset olderThan, CancellationToken cancellationToken) => PurgeAsync(olderThan, int.MaxValue, cancellationToken);

    /// <summary>
    /// Deletes entries not touched since <paramref name="olderThan"/>, looking at no more than <paramref name="maxRows"/>
    /// of them; call again while it returns <paramref name="maxRows"/> to purge the rest.
    /// </summary>
    /// <remarks>Each delete is conditional on the ETag read, so an entry touched while the purge runs is kept.</remarks>
    /// <returns>How many were deleted.</returns>
    public async Task<int> PurgeAsync(DateTimeOffset olderThan, int maxRows, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRows, 1);
        await EnsureTableAsync(cancellationToken).ConfigureAwait(false);
        int deleted = 0;
        int seen = 0;
        // The column name is part of the format: an interpolated one would be quoted as a string literal.
        string filter = TableClient.CreateQueryFilter($"UpdatedAt lt {olderThan.ToUniversalTime()}");
        await foreach (TableEntity row in _table.QueryAsync<TableEntity>(filter, maxPerPage: Math.Min(maxRows, 1000), select: ["PartitionKey", "RowKey"], cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            if (seen++ >= maxRows)
            {
                break;
            }

            try
            {
                await _table.DeleteEntityAsync(row.PartitionKey, row.RowKey, row.ETag, cancellationToken).ConfigureAwait(false);
                deleted++;
            }
            catch (RequestFailedException ex) when (ex.Status is 404 or 412)
            {
                // Touched (a new attempt began) or deleted since the query: not ours to drop.
            }
        }

        return deleted;
    }

    /// <inheritdoc/>
    public void Dispose() => _create.Dispose();

    // WARNING: persisted entity shape; change only compatibly.
    // PartitionKey: lower-case hex SHA-256 of the UTF-8 idempotency key; RowKey: empty.
    // State: -1 started, otherwise the AttemptEnd value; Attempts: begins recorded; UpdatedAt: last begin or end;
    // IdempotencyKey: the key itself, for people reading the table.
    private const string StateColumn = "State";
    private const string AttemptsColumn = "Attempts";
    private const string UpdatedAtColumn = "UpdatedAt";
    private const string KeyColumn = "IdempotencyKey";
    private const int Started = -1;

    private static PriorAttempt ToPrior(int state) => state switch
    {
        Started => PriorAttempt.Unfinished,
        (int)AttemptEnd.Succeeded => PriorAttempt.SucceededUnrecorded,
        (int)AttemptEnd.FailedTransiently => PriorAttempt.FailedTransiently,
        (int)AttemptEnd.FailedPermanently => PriorAttempt.FailedPermanently,
        _ => PriorAttempt.None,
    };

    internal static string PartitionKeyOf(string idempotencyKey) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(idempotencyKey)));

    private TableEntity Row(string partition, string idempotencyKey, int state, int attempts) => new(partition, string.Empty)
    {
        [StateColumn] = state,
        [AttemptsColumn] = attempts,
        [UpdatedAtColumn] = _time.GetUtcNow(),
        [KeyColumn] = idempotencyKey,
    };

    private async ValueTask EnsureTableAsync(CancellationToken cancellationToken)
    {
        if (_created)
        {
            return;
        }

        await _create.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_created)
            {
                await _table.CreateIfNotExistsAsync(cancellationToken).ConfigureAwait(false);
                _created = true;
            }
        }
        finally
        {
            _create.Release();
        }
    }
}

using System.Collections.Concurrent;
using Microsoft.Data.Sqlite;

namespace Orchestrator.Agents;

/// <summary>What a <see cref="IToolCallJournal"/> knew about a write before an attempt of it began.</summary>
public enum PriorAttempt
{
    /// <summary>No attempt was recorded: this is the first.</summary>
    None = 0,

    /// <summary>An earlier attempt began and never recorded its end: the worker died while calling out. The outcome is in doubt.</summary>
    Unfinished = 1,

    /// <summary>An earlier attempt ended with a transient failure: an ordinary retry.</summary>
    FailedTransiently = 2,

    /// <summary>An earlier attempt's handler returned, but its result never reached history (the worker died before the checkpoint). In doubt: the effect happened.</summary>
    SucceededUnrecorded = 3,

    /// <summary>An earlier attempt ended with a permanent failure that never reached history.</summary>
    FailedPermanently = 4,
}

/// <summary>How an attempt ended, as recorded by <see cref="IToolCallJournal.EndAttemptAsync"/>.</summary>
public enum AttemptEnd
{
    /// <summary>The handler returned a result.</summary>
    Succeeded = 1,

    /// <summary>The handler failed transiently (retried).</summary>
    FailedTransiently = 2,

    /// <summary>The handler failed permanently.</summary>
    FailedPermanently = 3,
}

/// <summary>
/// A record, outside orchestration history, of the attempts of each write, keyed by its idempotency key. The
/// ExecuteTool activity records an attempt before calling the handler and its end after; an attempt that finds an
/// earlier one unfinished knows the worker died mid-call, so the write is in doubt.
/// </summary>
/// <remarks>Implementations must be safe for concurrent use; <see cref="BeginAttemptAsync"/> must read and write atomically.</remarks>
public interface IToolCallJournal
{
    /// <summary>Records that an attempt of the write <paramref name="idempotencyKey"/> begins, and returns what was known before.</summary>
    ValueTask<PriorAttempt> BeginAttemptAsync(string idempotencyKey, CancellationToken cancellationToken);

    /// <summary>Records how the current attempt ended.</summary>
    ValueTask EndAttemptAsync(string idempotencyKey, AttemptEnd end, CancellationToken cancellationToken);
}

/// <summary>A <see cref="IToolCallJournal"/> whose old entries a host can delete in bounded batches (retention cleanup).</summary>
public interface IPurgeableToolCallJournal : IToolCallJournal
{
    /// <summary>
    /// Deletes at most <paramref name="maxRows"/> entries not touched since <paramref name="olderThan"/>; call again while
    /// it returns <paramref name="maxRows"/> to purge the rest.
    /// </summary>
    /// <returns>How many were deleted.</returns>
    Task<int> PurgeAsync(DateTimeOffset olderThan, int maxRows, CancellationToken cancellationToken);
}

/// <summary>An in-memory <see cref="IToolCallJournal"/>: sees re-runs within one process only (tests, single-process hosts).</summary>
/// <remarks>
/// To keep memory bounded in a long-running worker it forgets a write once an attempt of it ends with success or a
/// permanent failure; it therefore never reports <see cref="PriorAttempt.SucceededUnrecorded"/> or
/// <see cref="PriorAttempt.FailedPermanently"/> (a process that dies takes this journal with it anyway).
/// </remarks>
public sealed class InMemoryToolCallJournal : IToolCallJournal
{
    private readonly ConcurrentDictionary<string, int> _states = new(StringComparer.Ordinal);

    /// <inheritdoc/>
    public ValueTask<PriorAttempt> BeginAttemptAsync(string idempotencyKey, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(idempotencyKey);
        int prior = 0;
        _states.AddOrUpdate(idempotencyKey, _ => Started, (_, old) =>
        {
            prior = old;
            return Started;
        });
        return ValueTask.FromResult(ToPrior(prior));
    }

    /// <inheritdoc/>
    public ValueTask EndAttemptAsync(string idempotencyKey, AttemptEnd end, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(idempotencyKey);
        if (end == AttemptEnd.FailedTransiently)
        {
            _states[idempotencyKey] = (int)end;
        }
        else
        {
            _states.TryRemove(idempotencyKey, out _);
        }

        return ValueTask.CompletedTask;
    }

    // Stored states: 0 none, -1 started, otherwise the AttemptEnd value.
    internal const int Started = -1;

    internal static PriorAttempt ToPrior(long state) => state switch
    {
        Started => PriorAttempt.Unfinished,
        (int)AttemptEnd.Succeeded => PriorAttempt.SucceededUnrecorded,
        (int)AttemptEnd.FailedTransiently => PriorAttempt.FailedTransiently,
        (int)AttemptEnd.FailedPermanently => PriorAttempt.FailedPermanently,
        _ => PriorAttempt.None,
    };
}

/// <summary>
/// A durable <see cref="IToolCallJournal"/> in a SQLite file, shared by every worker process on the machine (point them at
/// the same file; with the SQLite backend, a file beside the orchestration database). Each begin is one transaction
/// committed before the handler runs, so a worker that dies mid-call leaves its attempt recorded as unfinished.
/// </summary>
public sealed class SqliteToolCallJournal : IPurgeableToolCallJournal, IDisposable
{
    // WARNING: persisted table; change only compatibly.
    private const string Schema = """
        PRAGMA journal_mode = WAL;
        CREATE TABLE IF NOT EXISTS tool_call_journal (
            idempotency_key TEXT PRIMARY KEY NOT NULL,
            state INTEGER NOT NULL,
            attempts INTEGER NOT NULL,
            updated_at TEXT NOT NULL
        ) WITHOUT ROWID;
        """;

    private readonly string _connectionString;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _schema = new(1, 1);
    private bool _created;

    /// <summary>Creates the journal over <paramref name="path"/> (created when missing).</summary>
    public SqliteToolCallJournal(string path, TimeProvider? timeProvider = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        _connectionString = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = true, DefaultTimeout = 30 }.ToString();
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <inheritdoc/>
    public async ValueTask<PriorAttempt> BeginAttemptAsync(string idempotencyKey, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(idempotencyKey);
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        // Immediate: the write lock is taken before the read, so two workers cannot both see the same prior state.
        await using var transaction = connection.BeginTransaction(deferred: false);
        long prior = 0;
        await using (var read = connection.CreateCommand())
        {
            read.Transaction = transaction;
            read.CommandText = "SELECT state FROM tool_call_journal WHERE idempotency_key = $k";
            read.Parameters.AddWithValue("$k", idempotencyKey);
            if (await read.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is long state)
            {
                prior = state;
            }
        }

        await using (var write = connection.CreateCommand())
        {
            write.Transaction = transaction;
            write.CommandText = """
                INSERT INTO tool_call_journal (idempotency_key, state, attempts, updated_at) VALUES ($k, $s, 1, $t)
                ON CONFLICT (idempotency_key) DO UPDATE SET state = $s, attempts = attempts + 1, updated_at = $t
                """;
            write.Parameters.AddWithValue("$k", idempotencyKey);
            write.Parameters.AddWithValue("$s", InMemoryToolCallJournal.Started);
            write.Parameters.AddWithValue("$t", _time.GetUtcNow().ToString("O", System.Globalization.CultureInfo.InvariantCulture));
            await write.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return InMemoryToolCallJournal.ToPrior(prior);
    }

    /// <inheritdoc/>
    public async ValueTask EndAttemptAsync(string idempotencyKey, AttemptEnd end, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(idempotencyKey);
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var write = connection.CreateCommand();
        write.CommandText = "UPDATE tool_call_journal SET state = $s, updated_at = $t WHERE idempotency_key = $k";
        write.Parameters.AddWithValue("$k", idempotencyKey);
        write.Parameters.AddWithValue("$s", (int)end);
        write.Parameters.AddWithValue("$t", _time.GetUtcNow().ToString("O", System.Globalization.CultureInfo.InvariantCulture));
        await write.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Deletes entries not touched since <paramref name="olderThan"/> (their turns are long finished).</summary>
    /// <returns>How many were deleted.</returns>
    public Task<int> PurgeAsync(DateTimeOffset olderThan, CancellationToken cancellationToken) => PurgeAsync(olderThan, int.MaxValue, cancellationToken);

    /// <summary>
    /// Deletes at most <paramref name="maxRows"/> entries not touched since <paramref name="olderThan"/>, in one short
    /// transaction; call again while it returns <paramref name="maxRows"/> to purge the rest.
    /// </summary>
    /// <returns>How many were deleted.</returns>
    public async Task<int> PurgeAsync(DateTimeOffset olderThan, int maxRows, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRows, 1);
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var delete = connection.CreateCommand();
        delete.CommandText = "DELETE FROM tool_call_journal WHERE idempotency_key IN (SELECT idempotency_key FROM tool_call_journal WHERE updated_at < $t LIMIT $max)";
        delete.Parameters.AddWithValue("$t", olderThan.ToUniversalTime().ToString("O", System.Globalization.CultureInfo.InvariantCulture));
        delete.Parameters.AddWithValue("$max", maxRows);
        return await delete.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public void Dispose() => _schema.Dispose();

    private async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            await using (var pragma = connection.CreateCommand())
            {
                // The begin record must survive a crash: it is the only evidence that a call went out.
                pragma.CommandText = "PRAGMA synchronous = FULL; PRAGMA busy_timeout = 30000;";
                await pragma.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            if (!_created)
            {
                await _schema.WaitAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    if (!_created)
                    {
                        await using var create = connection.CreateCommand();
                        create.CommandText = Schema;
                        await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                        _created = true;
                    }
                }
                finally
                {
                    _schema.Release();
                }
            }

            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }
}

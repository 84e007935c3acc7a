using Microsoft.Data.Sqlite;

namespace Orchestrator.Host.Api;

/// <summary>The request ledger in its own SQLite file next to the embedded backend's (WAL, synchronous=FULL).</summary>
internal sealed class SqliteRequestLedger : IRequestLedger
{
    private readonly string connectionString;
    private readonly TimeProvider time;
    private readonly LedgerRetention retention;

    /// <param name="path">The ledger file.</param>
    /// <param name="time">The clock of claims, their lease and their retention.</param>
    /// <param name="retention">How long keys are kept; <see cref="LedgerRetention.Default"/> when null.</param>
    public SqliteRequestLedger(string path, TimeProvider time, LedgerRetention? retention = null)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null)
        {
            Directory.CreateDirectory(dir);
        }

        this.connectionString = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = true }.ToString();
        this.time = time;
        this.retention = retention ?? LedgerRetention.Default;
    }

    /// <summary>The ledger file for a backend file: <c>orchestrator.db</c> gives <c>orchestrator.requests.db</c>.</summary>
    public static string PathFor(string backendDataSource) =>
        Path.Combine(Path.GetDirectoryName(backendDataSource) ?? string.Empty, Path.GetFileNameWithoutExtension(backendDataSource) + ".requests.db");

    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        await using SqliteConnection connection = await this.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using SqliteCommand command = connection.CreateCommand();
        // WARNING: persisted table; change only with a migration.
        command.CommandText = """
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS requests (
                scope TEXT NOT NULL,
                key TEXT NOT NULL,
                request_hash TEXT NOT NULL,
                claimed_at INTEGER NOT NULL,
                status INTEGER NULL,
                body TEXT NULL,
                location TEXT NULL,
                PRIMARY KEY (scope, key)) WITHOUT ROWID;
            """;
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<LedgerClaim> ClaimAsync(string scope, string key, string requestHash, CancellationToken cancellationToken)
    {
        long now = this.time.GetUtcNow().ToUnixTimeMilliseconds();
        await using SqliteConnection connection = await this.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (SqliteCommand insert = connection.CreateCommand())
        {
            insert.CommandText = "INSERT INTO requests (scope, key, request_hash, claimed_at) VALUES ($s, $k, $h, $now) ON CONFLICT DO NOTHING";
            Bind(insert, scope, key, requestHash, now);
            if (await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1)
            {
                return new LedgerClaim(ClaimKind.Began);
            }
        }

        await using (SqliteCommand select = connection.CreateCommand())
        {
            select.CommandText = "SELECT request_hash, claimed_at, status, body, location FROM requests WHERE scope = $s AND key = $k";
            Bind(select, scope, key, requestHash, now);
            await using SqliteDataReader reader = await select.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                // Released or expired and deleted between the insert and the read: claim it anew, once.
                await reader.DisposeAsync().ConfigureAwait(false);
                await using SqliteCommand again = connection.CreateCommand();
                again.CommandText = "INSERT INTO requests (scope, key, request_hash, claimed_at) VALUES ($s, $k, $h, $now) ON CONFLICT DO NOTHING";
                Bind(again, scope, key, requestHash, now);
                return await again.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1
                    ? new LedgerClaim(ClaimKind.Began)
                    : new LedgerClaim(ClaimKind.InProgress);
            }

            long claimedAt = reader.GetInt64(1);
            if (now - claimedAt >= (long)this.retention.For(scope).TotalMilliseconds)
            {
                // Expired: the key is new again. Conditional on the claim time read, so of two requests reusing it one
                // begins; an upsert, so a row the cleanup deleted meanwhile is simply claimed anew.
                await reader.DisposeAsync().ConfigureAwait(false);
                await using SqliteCommand renew = connection.CreateCommand();
                renew.CommandText = """
                    INSERT INTO requests (scope, key, request_hash, claimed_at) VALUES ($s, $k, $h, $now)
                    ON CONFLICT (scope, key) DO UPDATE SET request_hash = $h, claimed_at = $now, status = NULL, body = NULL, location = NULL
                    WHERE claimed_at = $old
                    """;
                Bind(renew, scope, key, requestHash, now);
                renew.Parameters.AddWithValue("$old", claimedAt);
                return await renew.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1
                    ? new LedgerClaim(ClaimKind.Began)
                    : new LedgerClaim(ClaimKind.InProgress);
            }

            if (reader.GetString(0) != requestHash)
            {
                return new LedgerClaim(ClaimKind.Mismatch);
            }

            if (!reader.IsDBNull(2))
            {
                return new LedgerClaim(ClaimKind.Completed, new StoredResponse(reader.GetInt32(2), reader.GetString(3), reader.IsDBNull(4) ? null : reader.GetString(4)));
            }

            if (now - claimedAt < (long)IRequestLedger.Lease.TotalMilliseconds)
            {
                return new LedgerClaim(ClaimKind.InProgress);
            }

            await reader.DisposeAsync().ConfigureAwait(false);
            await using SqliteCommand take = connection.CreateCommand();
            // Conditional on the claim time read: of two retries taking over, one wins.
            take.CommandText = "UPDATE requests SET claimed_at = $now WHERE scope = $s AND key = $k AND status IS NULL AND claimed_at = $old";
            Bind(take, scope, key, requestHash, now);
            take.Parameters.AddWithValue("$old", claimedAt);
            return await take.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1
                ? new LedgerClaim(ClaimKind.TookOver)
                : new LedgerClaim(ClaimKind.InProgress);
        }
    }

    public async Task CompleteAsync(string scope, string key, StoredResponse response, CancellationToken cancellationToken)
    {
        await using SqliteConnection connection = await this.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using SqliteCommand command = connection.CreateCommand();
        command.CommandText = "UPDATE requests SET status = $status, body = $body, location = $location WHERE scope = $s AND key = $k";
        command.Parameters.AddWithValue("$s", scope);
        command.Parameters.AddWithValue("$k", key);
        command.Parameters.AddWithValue("$status", response.Status);
        command.Parameters.AddWithValue("$body", response.Body);
        command.Parameters.AddWithValue("$location", (object?)response.Location ?? DBNull.Value);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task ReleaseAsync(string scope, string key, CancellationToken cancellationToken)
    {
        await using SqliteConnection connection = await this.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using SqliteCommand command = connection.CreateCommand();
        command.CommandText = "DELETE FROM requests WHERE scope = $s AND key = $k AND status IS NULL";
        command.Parameters.AddWithValue("$s", scope);
        command.Parameters.AddWithValue("$k", key);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task ForgetScopeAsync(string scope, CancellationToken cancellationToken)
    {
        await using SqliteConnection connection = await this.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using SqliteCommand command = connection.CreateCommand();
        command.CommandText = "DELETE FROM requests WHERE scope = $s";
        command.Parameters.AddWithValue("$s", scope);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<int> DeleteExpiredAsync(int maxRows, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRows, 1);
        long now = this.time.GetUtcNow().ToUnixTimeMilliseconds();
        await using SqliteConnection connection = await this.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using SqliteCommand command = connection.CreateCommand();
        // One bounded statement: the write lock is held for at most maxRows deletes.
        command.CommandText = """
            DELETE FROM requests WHERE (scope, key) IN (
                SELECT scope, key FROM requests
                WHERE (scope = $webhooks AND claimed_at <= $webhookCutoff) OR (scope <> $webhooks AND claimed_at <= $messageCutoff)
                LIMIT $max)
            """;
        command.Parameters.AddWithValue("$webhooks", LedgerRetention.WebhookScope);
        command.Parameters.AddWithValue("$webhookCutoff", now - (long)this.retention.Webhooks.TotalMilliseconds);
        command.Parameters.AddWithValue("$messageCutoff", now - (long)this.retention.Messages.TotalMilliseconds);
        command.Parameters.AddWithValue("$max", maxRows);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task CheckAsync(CancellationToken cancellationToken)
    {
        await using SqliteConnection connection = await this.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using SqliteCommand command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*) FROM requests WHERE 0";
        await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
    }

    public ValueTask DisposeAsync()
    {
        using var connection = new SqliteConnection(this.connectionString);
        SqliteConnection.ClearPool(connection);
        return ValueTask.CompletedTask;
    }

    private static void Bind(SqliteCommand command, string scope, string key, string hash, long now)
    {
        command.Parameters.AddWithValue("$s", scope);
        command.Parameters.AddWithValue("$k", key);
        command.Parameters.AddWithValue("$h", hash);
        command.Parameters.AddWithValue("$now", now);
    }

    private async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(this.connectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using SqliteCommand pragma = connection.CreateCommand();
        pragma.CommandText = "PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;";
        await pragma.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return connection;
    }
}

using System.Globalization;
using Microsoft.Data.Sqlite;

namespace PaymentsService;

/// <summary>A stored idempotency record: the request fingerprint, and the response once the request completed.</summary>
internal sealed record IdempotencyRecord(
    string Key,
    PaymentKind Kind,
    string Fingerprint,
    bool Completed,
    string ClaimToken,
    DateTimeOffset LockedUntil,
    int? StatusCode,
    string? ResponseBody);

/// <summary>
/// The SQLite ledger: effects and idempotency records in one file. Every decision about a key is a conditional
/// write (insert-if-absent, update-where-token), never a read followed by a write.
/// </summary>
internal sealed class Ledger
{
    // WARNING: the ledger file is persisted; change the schema only compatibly.
    private const string Schema = """
        PRAGMA journal_mode = WAL;
        CREATE TABLE IF NOT EXISTS idempotency_keys (
            key            TEXT PRIMARY KEY,
            kind           TEXT NOT NULL,
            fingerprint    TEXT NOT NULL,
            state          TEXT NOT NULL CHECK (state IN ('in_flight', 'completed')),
            claim_token    TEXT NOT NULL,
            locked_until   INTEGER NOT NULL,
            status_code    INTEGER,
            response_body  TEXT,
            created_at     INTEGER NOT NULL,
            completed_at   INTEGER
        );
        CREATE TABLE IF NOT EXISTS ledger (
            seq              INTEGER PRIMARY KEY AUTOINCREMENT,
            kind             TEXT NOT NULL,
            idempotency_key  TEXT NOT NULL UNIQUE REFERENCES idempotency_keys (key),
            order_id         TEXT NOT NULL,
            amount_minor     INTEGER NOT NULL,
            currency         TEXT NOT NULL,
            reason           TEXT,
            created_at       INTEGER NOT NULL
        );
        """;

    private readonly string _connectionString;

    public Ledger(PaymentsOptions options)
    {
        _connectionString = new SqliteConnectionStringBuilder { DataSource = options.DatabasePath, Pooling = true, DefaultTimeout = 30 }.ToString();
    }

    public void EnsureCreated()
    {
        using SqliteConnection c = Open();
        using SqliteCommand cmd = c.CreateCommand();
        cmd.CommandText = Schema;
        cmd.ExecuteNonQuery();
    }

    /// <summary>Claims <paramref name="key"/> for this request if no request holds it: true when this call inserted the row.</summary>
    public async Task<bool> TryClaimAsync(string key, PaymentKind kind, string fingerprint, string token, DateTimeOffset now, DateTimeOffset lockedUntil, CancellationToken ct)
    {
        await using SqliteConnection c = await OpenAsync(ct).ConfigureAwait(false);
        await using SqliteCommand cmd = c.CreateCommand();
        cmd.CommandText = """
            INSERT INTO idempotency_keys (key, kind, fingerprint, state, claim_token, locked_until, created_at)
            VALUES ($key, $kind, $fp, 'in_flight', $token, $until, $now)
            ON CONFLICT (key) DO NOTHING
            """;
        cmd.Parameters.AddWithValue("$key", key);
        cmd.Parameters.AddWithValue("$kind", kind.ToString());
        cmd.Parameters.AddWithValue("$fp", fingerprint);
        cmd.Parameters.AddWithValue("$token", token);
        cmd.Parameters.AddWithValue("$until", lockedUntil.ToUnixTimeMilliseconds());
        cmd.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 1;
    }

    /// <summary>Takes over an in-flight claim whose lease has run out (its request died): true when this call won it.</summary>
    public async Task<bool> TryTakeOverAsync(string key, string staleToken, string token, DateTimeOffset now, DateTimeOffset lockedUntil, CancellationToken ct)
    {
        await using SqliteConnection c = await OpenAsync(ct).ConfigureAwait(false);
        await using SqliteCommand cmd = c.CreateCommand();
        cmd.CommandText = """
            UPDATE idempotency_keys SET claim_token = $token, locked_until = $until
            WHERE key = $key AND state = 'in_flight' AND claim_token = $stale AND locked_until <= $now
            """;
        cmd.Parameters.AddWithValue("$key", key);
        cmd.Parameters.AddWithValue("$stale", staleToken);
        cmd.Parameters.AddWithValue("$token", token);
        cmd.Parameters.AddWithValue("$until", lockedUntil.ToUnixTimeMilliseconds());
        cmd.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 1;
    }

    /// <summary>Gives up a claim without a result (the effect did not happen), so that a retry with the key may run.</summary>
    public async Task ReleaseAsync(string key, string token, CancellationToken ct)
    {
        await using SqliteConnection c = await OpenAsync(ct).ConfigureAwait(false);
        await using SqliteCommand cmd = c.CreateCommand();
        cmd.CommandText = "DELETE FROM idempotency_keys WHERE key = $key AND claim_token = $token AND state = 'in_flight'";
        cmd.Parameters.AddWithValue("$key", key);
        cmd.Parameters.AddWithValue("$token", token);
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>
    /// In one transaction: writes the effect (when <paramref name="effect"/> is given) and stores the response under
    /// the key, provided this request still holds the claim. Returns the stored body, or null when the claim was lost
    /// (nothing is written then).
    /// </summary>
    public async Task<string?> CompleteAsync(
        string key,
        string token,
        PaymentKind kind,
        PaymentRequest? effect,
        int statusCode,
        Func<LedgerEntry?, string> responseBody,
        DateTimeOffset now,
        CancellationToken ct)
    {
        await using SqliteConnection c = await OpenAsync(ct).ConfigureAwait(false);
        await using var tx = (SqliteTransaction)await c.BeginTransactionAsync(ct).ConfigureAwait(false);

        // First the claim check, inside the transaction: a request whose key was taken over writes nothing at all.
        await using SqliteCommand claim = c.CreateCommand();
        claim.Transaction = tx;
        claim.CommandText = """
            UPDATE idempotency_keys SET state = 'completed', status_code = $status, completed_at = $now
            WHERE key = $key AND claim_token = $token AND state = 'in_flight'
            """;
        claim.Parameters.AddWithValue("$key", key);
        claim.Parameters.AddWithValue("$token", token);
        claim.Parameters.AddWithValue("$status", statusCode);
        claim.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
        if (await claim.ExecuteNonQueryAsync(ct).ConfigureAwait(false) != 1)
        {
            await tx.RollbackAsync(ct).ConfigureAwait(false);
            return null;
        }

        LedgerEntry? entry = null;
        if (effect is not null)
        {
            await using SqliteCommand insert = c.CreateCommand();
            insert.Transaction = tx;
            insert.CommandText = """
                INSERT INTO ledger (kind, idempotency_key, order_id, amount_minor, currency, reason, created_at)
                VALUES ($kind, $key, $order, $amount, $currency, $reason, $now)
                RETURNING seq
                """;
            insert.Parameters.AddWithValue("$kind", kind.ToString());
            insert.Parameters.AddWithValue("$key", key);
            insert.Parameters.AddWithValue("$order", effect.OrderId);
            insert.Parameters.AddWithValue("$amount", (long)(effect.Amount * 100));
            insert.Parameters.AddWithValue("$currency", effect.Currency);
            insert.Parameters.AddWithValue("$reason", (object?)effect.Reason ?? DBNull.Value);
            insert.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
            long seq = (long)(await insert.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
            entry = new LedgerEntry(EntryId(kind, seq), KindName(kind), effect.OrderId, effect.Amount, effect.Currency, effect.Reason, key, DateTimeOffset.FromUnixTimeMilliseconds(now.ToUnixTimeMilliseconds()));
        }

        string body = responseBody(entry);
        await using SqliteCommand store = c.CreateCommand();
        store.Transaction = tx;
        store.CommandText = "UPDATE idempotency_keys SET response_body = $body WHERE key = $key";
        store.Parameters.AddWithValue("$key", key);
        store.Parameters.AddWithValue("$body", body);
        await store.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return body;
    }

    public async Task<IdempotencyRecord?> FindAsync(string key, CancellationToken ct)
    {
        await using SqliteConnection c = await OpenAsync(ct).ConfigureAwait(false);
        await using SqliteCommand cmd = c.CreateCommand();
        cmd.CommandText = "SELECT kind, fingerprint, state, claim_token, locked_until, status_code, response_body FROM idempotency_keys WHERE key = $key";
        cmd.Parameters.AddWithValue("$key", key);
        await using SqliteDataReader r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        if (!await r.ReadAsync(ct).ConfigureAwait(false))
        {
            return null;
        }

        return new IdempotencyRecord(
            key,
            Enum.Parse<PaymentKind>(r.GetString(0)),
            r.GetString(1),
            r.GetString(2) == "completed",
            r.GetString(3),
            DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(4)),
            r.IsDBNull(5) ? null : r.GetInt32(5),
            r.IsDBNull(6) ? null : r.GetString(6));
    }

    public async Task<IReadOnlyList<LedgerEntry>> ListAsync(string? orderId, string? key, CancellationToken ct)
    {
        await using SqliteConnection c = await OpenAsync(ct).ConfigureAwait(false);
        await using SqliteCommand cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT seq, kind, idempotency_key, order_id, amount_minor, currency, reason, created_at FROM ledger
            WHERE ($order IS NULL OR order_id = $order) AND ($key IS NULL OR idempotency_key = $key)
            ORDER BY seq
            """;
        cmd.Parameters.AddWithValue("$order", (object?)orderId ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$key", (object?)key ?? DBNull.Value);
        var entries = new List<LedgerEntry>();
        await using SqliteDataReader r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            PaymentKind kind = Enum.Parse<PaymentKind>(r.GetString(1));
            entries.Add(new LedgerEntry(
                EntryId(kind, r.GetInt64(0)),
                KindName(kind),
                r.GetString(3),
                decimal.Round(r.GetInt64(4) / 100m, 2) + 0.00m,
                r.GetString(5),
                r.IsDBNull(6) ? null : r.GetString(6),
                r.GetString(2),
                DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(7))));
        }

        return entries;
    }

    public static string KindName(PaymentKind kind) => kind == PaymentKind.Refund ? "refund" : "charge";

    private static string EntryId(PaymentKind kind, long seq) =>
        (kind == PaymentKind.Refund ? "re_" : "ch_") + seq.ToString("D6", CultureInfo.InvariantCulture);

    private SqliteConnection Open()
    {
        var c = new SqliteConnection(_connectionString);
        c.Open();
        return c;
    }

    private async Task<SqliteConnection> OpenAsync(CancellationToken ct)
    {
        var c = new SqliteConnection(_connectionString);
        await c.OpenAsync(ct).ConfigureAwait(false);
        return c;
    }
}

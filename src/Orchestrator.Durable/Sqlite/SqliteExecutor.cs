using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Orchestrator.Durable.Sqlite;

/// <summary>
/// Owns the one connection to the database and runs every operation on a dedicated thread,
/// committing the operations that queued up meanwhile in one transaction (group commit). An
/// operation's task completes only after its transaction committed, so an acknowledged write is
/// durable. Each operation runs inside a savepoint: one that throws is rolled back alone.
/// </summary>
internal sealed class SqliteExecutor : IDisposable
{
    private readonly Channel<Op> channel = Channel.CreateUnbounded<Op>(new UnboundedChannelOptions { SingleReader = true });
    private readonly SqliteConnection connection;
    private readonly Dictionary<string, SqliteCommand> commands = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RawStatement?> statements = new(StringComparer.Ordinal);
    private readonly Thread thread;
    private readonly int maxBatchSize;
    private readonly Action? afterWrite;
    private readonly string begin;
    private long transactions;
    private long operations;
    private long busyTicks;
    private long commitTicks;

    /// <param name="connection">The open connection; the executor owns it from now on.</param>
    /// <param name="maxBatchSize">The most operations committed in one transaction.</param>
    /// <param name="afterWrite">Called on the executor thread after each transaction that changed a row.</param>
    /// <param name="readOnly">True for a connection that only reads: its transactions take no write lock.</param>
    public SqliteExecutor(SqliteConnection connection, int maxBatchSize, Action? afterWrite = null, bool readOnly = false)
    {
        this.connection = connection;
        this.maxBatchSize = maxBatchSize;
        this.afterWrite = afterWrite;
        this.begin = readOnly ? "BEGIN" : "BEGIN IMMEDIATE";
        this.thread = new Thread(this.Loop) { IsBackground = true, Name = readOnly ? "sqlite-orchestration-reads" : "sqlite-orchestration-store" };
        this.thread.Start();
    }

    /// <summary>Counters since the executor started; for benchmarks and diagnostics.</summary>
    public SqliteExecutorStats Stats => new(
        Interlocked.Read(ref this.transactions),
        Interlocked.Read(ref this.operations),
        TimeSpan.FromSeconds((double)Interlocked.Read(ref this.busyTicks) / System.Diagnostics.Stopwatch.Frequency),
        TimeSpan.FromSeconds((double)Interlocked.Read(ref this.commitTicks) / System.Diagnostics.Stopwatch.Frequency));

    public Task<T> RunAsync<T>(Func<SqliteExecutor, T> work, CancellationToken cancellationToken)
    {
        var op = new Op<T>(work, cancellationToken);
        if (!this.channel.Writer.TryWrite(op))
        {
            return Task.FromException<T>(new ObjectDisposedException(nameof(SqliteExecutor)));
        }

        return op.Completion.Task;
    }

    /// <summary>A cached prepared command for the SQL text; only valid on the executor thread.</summary>
    public SqliteCommand Command(string sql)
    {
        if (!this.commands.TryGetValue(sql, out SqliteCommand? cmd))
        {
            cmd = this.connection.CreateCommand();
            cmd.CommandText = sql;
            this.commands[sql] = cmd;
        }

        cmd.Parameters.Clear();
        return cmd;
    }

    /// <summary>
    /// Runs a statement that returns no rows the caller reads; returns the rows it inserted, updated or deleted (-1 for
    /// a statement that writes none, such as BEGIN). A single statement whose parameters are all strings, integers,
    /// floating-point numbers, byte arrays or nulls runs as a cached prepared statement straight through SQLitePCL
    /// (the store thread runs every write of the process, and Microsoft.Data.Sqlite's per-call machinery around the
    /// same native calls cost about as much CPU as SQLite itself); anything else through <see cref="SqliteCommand"/>.
    /// </summary>
    public int Execute(string sql, params (string Name, object? Value)[] parameters)
    {
        RawStatement? raw = this.Statement(sql);
        if (raw is not null && raw.TryBind(parameters))
        {
            return raw.Execute(this.connection.Handle!);
        }

        SqliteCommand cmd = this.Command(sql);
        foreach (var (name, value) in parameters)
        {
            cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return cmd.ExecuteNonQuery();
    }

    /// <summary>Runs a query and returns the first column of its first row (null for none or NULL).</summary>
    public object? Scalar(string sql, params (string Name, object? Value)[] parameters)
    {
        RawStatement? raw = this.Statement(sql);
        if (raw is not null && raw.TryBind(parameters))
        {
            return raw.Scalar(this.connection.Handle!);
        }

        SqliteCommand cmd = this.Command(sql);
        foreach (var (name, value) in parameters)
        {
            cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        object? r = cmd.ExecuteScalar();
        return r is DBNull ? null : r;
    }

    public SqliteDataReader Query(string sql, params (string Name, object? Value)[] parameters)
    {
        SqliteCommand cmd = this.Command(sql);
        foreach (var (name, value) in parameters)
        {
            cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return cmd.ExecuteReader();
    }

    public void Dispose()
    {
        this.channel.Writer.TryComplete();
        this.thread.Join();
        foreach (SqliteCommand c in this.commands.Values)
        {
            c.Dispose();
        }

        foreach (RawStatement? st in this.statements.Values)
        {
            st?.Dispose();
        }

        this.connection.Dispose();
    }

    /// <summary>The cached prepared statement for the SQL text; null when it is not exactly one statement.</summary>
    private RawStatement? Statement(string sql)
    {
        if (!this.statements.TryGetValue(sql, out RawStatement? st))
        {
            st = RawStatement.TryPrepare(this.connection.Handle!, sql);
            this.statements[sql] = st;
        }

        return st;
    }

    private void Loop()
    {
        var batch = new List<Op>(this.maxBatchSize);
        ChannelReader<Op> reader = this.channel.Reader;
        long changes = raw.sqlite3_total_changes(this.connection.Handle!);
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            batch.Clear();
            while (batch.Count < this.maxBatchSize && reader.TryRead(out Op? op))
            {
                if (!op.CancellationToken.IsCancellationRequested)
                {
                    batch.Add(op);
                }
                else
                {
                    op.Cancel();
                }
            }

            if (batch.Count > 0)
            {
                long start = System.Diagnostics.Stopwatch.GetTimestamp();
                this.RunBatch(batch);
                Interlocked.Add(ref this.busyTicks, System.Diagnostics.Stopwatch.GetTimestamp() - start);
                Interlocked.Increment(ref this.transactions);
                Interlocked.Add(ref this.operations, batch.Count);
                if (this.afterWrite is not null)
                {
                    long changesNow = raw.sqlite3_total_changes(this.connection.Handle!);
                    if (changesNow != changes)
                    {
                        changes = changesNow;
                        this.afterWrite();
                    }
                }
            }
        }
    }

    private void RunBatch(List<Op> batch)
    {
        try
        {
            this.Execute(this.begin);
        }
        catch (Exception ex)
        {
            foreach (Op op in batch)
            {
                op.Fail(ex);
            }

            return;
        }

        var succeeded = new List<Op>(batch.Count);
        foreach (Op op in batch)
        {
            this.Execute("SAVEPOINT op");
            try
            {
                op.Run(this);
                this.Execute("RELEASE op");
                succeeded.Add(op);
            }
            catch (Exception ex)
            {
                try
                {
                    this.Execute("ROLLBACK TO op");
                    this.Execute("RELEASE op");
                }
                catch (SqliteException)
                {
                    // The rollback itself failed: the whole transaction is gone, fail the batch below.
                    this.FailAll(batch, ex);
                    return;
                }

                op.Fail(ex);
            }
        }

        try
        {
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            this.Execute("COMMIT");
            Interlocked.Add(ref this.commitTicks, System.Diagnostics.Stopwatch.GetTimestamp() - start);
        }
        catch (Exception ex)
        {
            this.FailAll(batch, ex);
            return;
        }

        foreach (Op op in succeeded)
        {
            op.Complete();
        }
    }

    private void FailAll(List<Op> batch, Exception ex)
    {
        try
        {
            if (!this.connection.State.HasFlag(System.Data.ConnectionState.Closed))
            {
                this.Execute("ROLLBACK");
            }
        }
        catch (SqliteException)
        {
            // No transaction left to roll back.
        }

        // Nothing of this batch was committed; an op that already failed keeps its own error.
        foreach (Op op in batch)
        {
            op.Fail(ex);
        }
    }

    private abstract class Op(CancellationToken cancellationToken)
    {
        public CancellationToken CancellationToken { get; } = cancellationToken;

        public abstract void Run(SqliteExecutor executor);

        public abstract void Complete();

        public abstract void Fail(Exception ex);

        public abstract void Cancel();
    }

    private sealed class Op<T>(Func<SqliteExecutor, T> work, CancellationToken cancellationToken) : Op(cancellationToken)
    {
        private T? result;

        public TaskCompletionSource<T> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override void Run(SqliteExecutor executor) => this.result = work(executor);

        public override void Complete() => this.Completion.TrySetResult(this.result!);

        public override void Fail(Exception ex) => this.Completion.TrySetException(ex);

        public override void Cancel() => this.Completion.TrySetCanceled(this.CancellationToken);
    }
}

/// <summary>
/// What the executor did: transactions (each one fsync with durable commits), operations, time spent
/// in transactions, and the part of it spent committing (writing and syncing the log).
/// </summary>
internal readonly record struct SqliteExecutorStats(long Transactions, long Operations, TimeSpan BusyTime, TimeSpan CommitTime)
{
    public static SqliteExecutorStats operator -(SqliteExecutorStats a, SqliteExecutorStats b) =>
        new(a.Transactions - b.Transactions, a.Operations - b.Operations, a.BusyTime - b.BusyTime, a.CommitTime - b.CommitTime);
}

/// <summary>
/// One prepared statement, kept for the connection's lifetime and only used on the executor thread: parameters are
/// bound by their cached index, and the statement is reset and its bindings cleared after every run.
/// </summary>
internal sealed class RawStatement : IDisposable
{
    private readonly sqlite3_stmt stmt;
    private readonly Dictionary<string, int> indexes;
    private readonly bool readOnly;

    private RawStatement(sqlite3_stmt stmt)
    {
        this.stmt = stmt;
        int count = raw.sqlite3_bind_parameter_count(stmt);
        this.indexes = new Dictionary<string, int>(count, StringComparer.Ordinal);
        for (int i = 1; i <= count; i++)
        {
            string? name = raw.sqlite3_bind_parameter_name(stmt, i).utf8_to_string();
            if (name is not null)
            {
                this.indexes[name] = i;
            }
        }

        this.readOnly = raw.sqlite3_stmt_readonly(stmt) != 0;
    }

    /// <summary>Prepares <paramref name="sql"/> if it is exactly one statement; null otherwise (or if it does not prepare).</summary>
    public static RawStatement? TryPrepare(sqlite3 db, string sql)
    {
        int rc = raw.sqlite3_prepare_v3(db, sql, raw.SQLITE_PREPARE_PERSISTENT, out sqlite3_stmt stmt, out string tail);
        if (rc != raw.SQLITE_OK || stmt is null || stmt.IsInvalid || !string.IsNullOrWhiteSpace(tail))
        {
            // A preparation error is reported by the fallback with the usual exception.
            stmt?.Dispose();
            return null;
        }

        return new RawStatement(stmt);
    }

    /// <summary>Binds every parameter; false (nothing left bound) when a name is unknown or a value of another type.</summary>
    public bool TryBind((string Name, object? Value)[] parameters)
    {
        foreach (var (name, value) in parameters)
        {
            if (!this.indexes.TryGetValue(name, out int i) || !Bind(i, value))
            {
                raw.sqlite3_clear_bindings(this.stmt);
                return false;
            }
        }

        return true;
    }

    public int Execute(sqlite3 db)
    {
        try
        {
            int rc;
            while ((rc = raw.sqlite3_step(this.stmt)) == raw.SQLITE_ROW)
            {
            }

            if (rc != raw.SQLITE_DONE)
            {
                throw Error(db, rc);
            }

            return this.readOnly ? -1 : raw.sqlite3_changes(db);
        }
        finally
        {
            raw.sqlite3_reset(this.stmt);
            raw.sqlite3_clear_bindings(this.stmt);
        }
    }

    public object? Scalar(sqlite3 db)
    {
        try
        {
            int rc = raw.sqlite3_step(this.stmt);
            if (rc == raw.SQLITE_DONE)
            {
                return null;
            }

            if (rc != raw.SQLITE_ROW)
            {
                throw Error(db, rc);
            }

            // The values Microsoft.Data.Sqlite's ExecuteScalar returns for each storage class.
            return raw.sqlite3_column_type(this.stmt, 0) switch
            {
                raw.SQLITE_INTEGER => raw.sqlite3_column_int64(this.stmt, 0),
                raw.SQLITE_FLOAT => raw.sqlite3_column_double(this.stmt, 0),
                raw.SQLITE_TEXT => raw.sqlite3_column_text(this.stmt, 0).utf8_to_string(),
                raw.SQLITE_BLOB => raw.sqlite3_column_blob(this.stmt, 0).ToArray(),
                _ => null,
            };
        }
        finally
        {
            raw.sqlite3_reset(this.stmt);
            raw.sqlite3_clear_bindings(this.stmt);
        }
    }

    public void Dispose() => this.stmt.Dispose();

    private static SqliteException Error(sqlite3 db, int rc) =>
        new(raw.sqlite3_errmsg(db).utf8_to_string() ?? $"SQLite error {rc}", rc, raw.sqlite3_extended_errcode(db));

    private bool Bind(int i, object? value)
    {
        int rc = value switch
        {
            null or DBNull => raw.sqlite3_bind_null(this.stmt, i),
            string t => raw.sqlite3_bind_text(this.stmt, i, t),
            long n => raw.sqlite3_bind_int64(this.stmt, i, n),
            int n => raw.sqlite3_bind_int64(this.stmt, i, n),
            bool b => raw.sqlite3_bind_int64(this.stmt, i, b ? 1 : 0),
            double d => raw.sqlite3_bind_double(this.stmt, i, d),
            byte[] bytes => raw.sqlite3_bind_blob(this.stmt, i, bytes),
            _ => -1,
        };
        return rc == raw.SQLITE_OK;
    }
}

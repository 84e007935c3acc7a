using System.Threading.Channels;
using Microsoft.Data.Sqlite;

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
    private readonly Thread thread;
    private readonly int maxBatchSize;
    private long transactions;
    private long operations;
    private long busyTicks;
    private long commitTicks;

    public SqliteExecutor(SqliteConnection connection, int maxBatchSize)
    {
        this.connection = connection;
        this.maxBatchSize = maxBatchSize;
        this.thread = new Thread(this.Loop) { IsBackground = true, Name = "sqlite-orchestration-store" };
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

    public int Execute(string sql, params (string Name, object? Value)[] parameters)
    {
        SqliteCommand cmd = this.Command(sql);
        foreach (var (name, value) in parameters)
        {
            cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return cmd.ExecuteNonQuery();
    }

    public object? Scalar(string sql, params (string Name, object? Value)[] parameters)
    {
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

        this.connection.Dispose();
    }

    private void Loop()
    {
        var batch = new List<Op>(this.maxBatchSize);
        ChannelReader<Op> reader = this.channel.Reader;
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
            }
        }
    }

    private void RunBatch(List<Op> batch)
    {
        try
        {
            this.Execute("BEGIN IMMEDIATE");
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

using System.Threading.Channels;
using Microsoft.Data.Sqlite;

namespace Orchestrator.Durable.Sqlite;

/// <summary>
/// Copies the write-ahead log into the database (a passive WAL checkpoint) on a connection of its own once the store
/// has had no write for a quiet period (20 ms by default), so that copy and its sync happen between bursts of work, not inside
/// whichever commit fills the log. The store's own connection keeps SQLite's automatic checkpoint at
/// <see cref="FallbackPages"/> as the bound for writes that never pause.
/// </summary>
/// <remarks>
/// A passive checkpoint takes no write lock: the store keeps committing while it runs. Once it has copied every frame,
/// the store's next transaction starts the log from its beginning again. The checkpoint syncs as the store's
/// connection does (<c>synchronous</c> is set alike), and SQLite keeps every frame in the log until the database file
/// has it, so durability is unchanged.
/// </remarks>
internal sealed class SqliteWalCheckpointer : IDisposable
{
    /// <summary>The log size (in pages) at which the store's own connection checkpoints after a commit; SQLite's default is 1,000.</summary>
    internal const int FallbackPages = 4000;

    /// <summary>How long the store must have made no write before the log is checkpointed, by default.</summary>
    internal static readonly TimeSpan DefaultQuietPeriod = TimeSpan.FromMilliseconds(20);

    private readonly SqliteConnection connection;
    private readonly TimeSpan quietPeriod;
    private readonly Channel<bool> wrote = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
    private readonly CancellationTokenSource stop = new();
    private readonly Task loop;
    private long writes;
    private long checkpoints;
    private long failures;
    private long lastLogFrames;
    private long lastCopiedFrames;
    private long writesCopied = -1;

    /// <param name="connection">An open connection of its own to the store's database; owned from now on.</param>
    /// <param name="quietPeriod">How long the store must have made no write before the log is checkpointed.</param>
    public SqliteWalCheckpointer(SqliteConnection connection, TimeSpan quietPeriod)
    {
        this.connection = connection;
        this.quietPeriod = quietPeriod;
        this.loop = Task.Run(this.RunAsync);
    }

    /// <summary>Checkpoints run so far.</summary>
    public long Checkpoints => Interlocked.Read(ref this.checkpoints);

    /// <summary>Checkpoints that failed (the database was busy, or the disk refused); the next write's quiet period tries again.</summary>
    public long Failures => Interlocked.Read(ref this.failures);

    /// <summary>Frames in the log at the last checkpoint, and how many of them it copied into the database.</summary>
    public (long LogFrames, long CopiedFrames) LastCheckpoint => (Interlocked.Read(ref this.lastLogFrames), Interlocked.Read(ref this.lastCopiedFrames));

    /// <summary>
    /// True when the last checkpoint copied the whole log and the store has committed no write since it started: the
    /// database file alone then holds every committed transaction.
    /// </summary>
    public bool UpToDate
    {
        get
        {
            (long log, long copied) = this.LastCheckpoint;
            return copied == log && Interlocked.Read(ref this.writesCopied) == Interlocked.Read(ref this.writes);
        }
    }

    /// <summary>Tells the checkpointer that the store committed a write; called on the store's thread after each such transaction, never blocks.</summary>
    public void Wrote()
    {
        Interlocked.Increment(ref this.writes);
        this.wrote.Writer.TryWrite(true);
    }

    public void Dispose()
    {
        this.stop.Cancel();
        this.wrote.Writer.TryComplete();
        try
        {
            this.loop.GetAwaiter().GetResult();
        }
        catch (OperationCanceledException)
        {
        }

        this.connection.Dispose();
        this.stop.Dispose();
    }

    private async Task RunAsync()
    {
        CancellationToken cancel = this.stop.Token;
        while (await this.wrote.Reader.WaitToReadAsync(cancel).ConfigureAwait(false))
        {
            this.wrote.Reader.TryRead(out _);

            // Real time on purpose: this is about the disk's idle moments, not the store's clock (which tests may fake).
            long seen;
            do
            {
                seen = Interlocked.Read(ref this.writes);
                await Task.Delay(this.quietPeriod, TimeProvider.System, cancel).ConfigureAwait(false);
            }
            while (Interlocked.Read(ref this.writes) != seen);

            // A write during the checkpoint signals again, so the frames it adds are copied after the next quiet period.
            this.wrote.Reader.TryRead(out _);
            this.Checkpoint(seen);
        }
    }

    /// <param name="writesBefore">The store's write transactions committed before the checkpoint starts.</param>
    private void Checkpoint(long writesBefore)
    {
        try
        {
            using SqliteCommand command = this.connection.CreateCommand();
            command.CommandText = "PRAGMA wal_checkpoint(PASSIVE)";
            using SqliteDataReader reader = command.ExecuteReader();
            if (reader.Read())
            {
                Interlocked.Exchange(ref this.lastLogFrames, reader.GetInt64(1));
                Interlocked.Exchange(ref this.lastCopiedFrames, reader.GetInt64(2));
            }

            Interlocked.Exchange(ref this.writesCopied, writesBefore);
            Interlocked.Increment(ref this.checkpoints);
        }
        catch (SqliteException)
        {
            // Busy or refused: the log stays as it is (the store's own checkpoint still bounds it).
            Interlocked.Increment(ref this.failures);
        }
    }
}

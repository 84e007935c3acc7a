namespace Orchestrator.Durable.Sqlite;

/// <summary>Options of the SQLite backend.</summary>
public sealed record SqliteOrchestrationBackendOptions
{
    /// <summary>
    /// The database file path, or <c>:memory:</c> for a private in-memory database (tests). Default
    /// <c>orchestrator.db</c> in the current directory.
    /// </summary>
    public string DataSource { get; init; } = "orchestrator.db";

    /// <summary>The clock used for visibility, locks and timestamps. Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// The most operations committed together in one transaction (group commit). Default 128.
    /// Each transaction is one fsync with <see cref="DurableCommits"/>, so batching is what makes
    /// durable commits fast.
    /// </summary>
    public int MaxBatchSize { get; init; } = 128;

    /// <summary>
    /// True (default): <c>PRAGMA synchronous=FULL</c>, so a transaction is on disk before any of its
    /// operations is acknowledged, surviving power loss, not only a process crash. False: NORMAL,
    /// which in WAL mode survives process crashes but may lose the last commits on power loss.
    /// </summary>
    public bool DurableCommits { get; init; } = true;

    /// <summary>How long to wait for another process holding the database's write lock. Default 30 s.</summary>
    public TimeSpan BusyTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// False (default): an episode's checkpoint is written in three transactions, commit (history, state, outbox),
    /// dispatch (the messages it sends) and release (the messages it consumed, the lock), the protocol every backend
    /// runs; a crash can fall between them and the next episode finishes what it left. True: all of it in one
    /// transaction, one durable commit per episode instead of three, for disks where a commit's sync is slow. Both are
    /// crash-safe. On the development machine (a sync takes 0.2 ms) one transaction cut the store operations of an
    /// agent turn from 40 to 24 but did not change its wall time, and lowered hello-sequence throughput by 15-20%
    /// (bench/README.md), hence the default.
    /// </summary>
    public bool CheckpointInOneTransaction { get; init; }

    /// <summary>
    /// True (default): the write-ahead log is copied into the database (a passive WAL checkpoint) on a second
    /// connection once the store has made no write for 20 ms, so that copy and its sync fall between bursts of work
    /// instead of into the commit that fills the log (SQLite's default checkpoints inside the commit that brings the log
    /// to 1,000 pages, a stall of several milliseconds for every operation of that batch). The store's own connection
    /// still checkpoints when the log reaches 4,000 pages, which bounds it when writes never pause. False: SQLite's
    /// automatic checkpoint alone. Ignored for in-memory databases.
    /// </summary>
    public bool BackgroundWalCheckpoints { get; init; } = true;

    /// <summary>How long the store must have made no write before the background checkpoint runs; tests lengthen it.</summary>
    internal TimeSpan WalQuietPeriod { get; init; } = SqliteWalCheckpointer.DefaultQuietPeriod;

    /// <summary>Most messages delivered to one orchestration episode. Default 500.</summary>
    public int MaxMessagesPerWorkItem { get; init; } = 500;

    /// <summary>Creates options for a private in-memory database.</summary>
    public static SqliteOrchestrationBackendOptions InMemory(TimeProvider? timeProvider = null) =>
        new() { DataSource = ":memory:", TimeProvider = timeProvider ?? TimeProvider.System };

    internal bool IsInMemory => this.DataSource == ":memory:";

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(this.DataSource))
        {
            throw new ArgumentException("DataSource must name a file or ':memory:'.", nameof(this.DataSource));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(this.MaxBatchSize, 1, nameof(this.MaxBatchSize));
        ArgumentOutOfRangeException.ThrowIfLessThan(this.MaxMessagesPerWorkItem, 1, nameof(this.MaxMessagesPerWorkItem));
        ArgumentOutOfRangeException.ThrowIfLessThan(this.BusyTimeout, TimeSpan.Zero, nameof(this.BusyTimeout));
        ArgumentNullException.ThrowIfNull(this.TimeProvider, nameof(this.TimeProvider));
    }
}

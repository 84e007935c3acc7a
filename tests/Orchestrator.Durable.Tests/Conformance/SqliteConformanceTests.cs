using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Sqlite;

namespace Orchestrator.Durable.Tests.Conformance;

/// <summary>The conformance suite against a private in-memory SQLite database per test.</summary>
public sealed class SqliteInMemoryConformanceTests : BackendConformanceTests
{
    protected override IOrchestrationBackend CreateBackend(TimeProvider timeProvider) =>
        new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory(timeProvider));

    protected override Task<long?> CountStoredRecordsAsync(IOrchestrationBackend backend) => SqliteRecords.CountAsync(backend);
}

/// <summary>
/// The conformance suite with nothing kept in memory between episodes: every episode replays its stored
/// history, so the replay path passes the whole suite too (the other classes run with the worker's default,
/// which continues kept orchestrations).
/// </summary>
public sealed class SqliteInMemoryReplayOnlyConformanceTests : BackendConformanceTests
{
    protected override int MaxCachedOrchestrations => 0;

    protected override IOrchestrationBackend CreateBackend(TimeProvider timeProvider) =>
        new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory(timeProvider));

    protected override Task<long?> CountStoredRecordsAsync(IOrchestrationBackend backend) => SqliteRecords.CountAsync(backend);
}

/// <summary>
/// The conformance suite with each checkpoint written in one transaction (<see cref="SqliteOrchestrationBackendOptions.CheckpointInOneTransaction"/>);
/// the other classes run the default three.
/// </summary>
public sealed class SqliteInMemoryOneTransactionConformanceTests : BackendConformanceTests
{
    protected override bool CheckpointsInOneWrite => true;

    protected override IOrchestrationBackend CreateBackend(TimeProvider timeProvider) =>
        new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory(timeProvider) with { CheckpointInOneTransaction = true });

    protected override Task<long?> CountStoredRecordsAsync(IOrchestrationBackend backend) => SqliteRecords.CountAsync(backend);
}

/// <summary>
/// The conformance suite against a database file per test, with the production defaults (WAL,
/// durable commits), so file-only behaviour such as journaling is covered too.
/// </summary>
public sealed class SqliteFileConformanceTests : BackendConformanceTests, IDisposable
{
    private readonly List<string> files = [];

    protected override IOrchestrationBackend CreateBackend(TimeProvider timeProvider)
    {
        string path = Path.Combine(Path.GetTempPath(), $"conformance-{Guid.NewGuid():N}.db");
        this.files.Add(path);
        return new SqliteOrchestrationBackend(new SqliteOrchestrationBackendOptions { DataSource = path, TimeProvider = timeProvider });
    }

    protected override Task<long?> CountStoredRecordsAsync(IOrchestrationBackend backend) => SqliteRecords.CountAsync(backend);

    public void Dispose()
    {
        // The harness disposed the backend (and so closed the file) when the test ended.
        foreach (string path in this.files)
        {
            foreach (string file in new[] { path, path + "-wal", path + "-shm", path + "-journal" })
            {
                File.Delete(file);
            }
        }
    }
}

internal static class SqliteRecords
{
    /// <summary>Every row that belongs to instances: the schema_info row is the store's, not theirs.</summary>
    public static async Task<long?> CountAsync(IOrchestrationBackend backend)
    {
        Dictionary<string, long> rows = await ((SqliteOrchestrationBackend)backend).CountRowsAsync(CancellationToken.None);
        return rows.Values.Sum();
    }
}

using Microsoft.Data.Sqlite;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;
using Orchestrator.Testing;

namespace Orchestrator.Durable.Tests;

/// <summary>
/// The SQLite backend copies its write-ahead log into the database file on a second connection once the store has
/// made no write for a quiet period (<see cref="SqliteOrchestrationBackendOptions.BackgroundWalCheckpoints"/>), instead
/// of inside the commit that fills the log.
/// </summary>
public sealed class WalCheckpointTests : IDisposable
{
    private readonly string path = Path.Combine(Path.GetTempPath(), $"wal-checkpoint-{Guid.NewGuid():N}.db");

    private static DurableTaskRegistry Registry() => new DurableTaskRegistry()
        .AddActivityFunc<string, string>("Echo", (_, x) => Task.FromResult(x))
        .AddOrchestratorFunc<string, string>("Twice", async (ctx, x) => await ctx.CallActivityAsync<string>("Echo", x) + await ctx.CallActivityAsync<string>("Echo", x));

    [Fact(Timeout = 60_000)]
    public async Task Quiet_AfterWork_DatabaseFileAloneHoldsEveryCommittedInstance()
    {
        await using var backend = new SqliteOrchestrationBackend(new SqliteOrchestrationBackendOptions { DataSource = this.path });
        await using var worker = new DurableTaskWorker(backend, Registry());
        await worker.StartAsync(default);
        var client = new DurableTaskClient(backend);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(45));
        string[] ids = await Task.WhenAll(Enumerable.Range(0, 30).Select(i =>
            client.ScheduleNewOrchestrationInstanceAsync("Twice", $"x{i}", new StartOrchestrationOptions { InstanceId = $"wal-{i}" }, cts.Token)));
        foreach (string id in ids)
        {
            Assert.Equal(OrchestrationRuntimeStatus.Completed, (await client.WaitForInstanceCompletionAsync(id, cts.Token)).RuntimeStatus);
        }

        // Once writes stop, the background connection copies every frame of the log into the database.
        SqliteWalCheckpointer checkpointer = backend.WalCheckpointer!;
        await TestWait.EventuallyAsync(() => checkpointer.UpToDate, because: "a checkpoint of the whole log after the last write");
        Assert.True(checkpointer.LastCheckpoint.LogFrames > 0);
        Assert.Equal(0, checkpointer.Failures);

        // So the database file alone, without its log, has all of it: copy it away from its -wal and read the copy.
        string copy = this.path + ".copy";
        File.Copy(this.path, copy);
        Assert.False(File.Exists(copy + "-wal"));
        await using var alone = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = copy, Mode = SqliteOpenMode.ReadWrite, Pooling = false }.ToString());
        await alone.OpenAsync();
        await using SqliteCommand count = alone.CreateCommand();
        count.CommandText = "SELECT COUNT(*) FROM instances WHERE status = 'Completed' AND output IS NOT NULL";
        Assert.Equal(30L, (long)(await count.ExecuteScalarAsync())!);
    }

    [Fact(Timeout = 60_000)]
    public async Task Writes_NeverQuietForThePeriod_NoBackgroundCheckpointUntilTheyStop()
    {
        // A long quiet period against writes every 50 ms: only a stall of two seconds between two writes would let
        // a checkpoint in while they go on.
        await using var backend = new SqliteOrchestrationBackend(new SqliteOrchestrationBackendOptions { DataSource = this.path, WalQuietPeriod = TimeSpan.FromSeconds(2) });
        SqliteWalCheckpointer checkpointer = backend.WalCheckpointer!;
        for (int i = 0; i < 30; i++)
        {
            await backend.ExecuteRawAsync("INSERT INTO poison (source, reason, created_at) VALUES ('test', $r, 0)", default, ("$r", $"write {i}"));
            await Task.Delay(TimeSpan.FromMilliseconds(50));
        }

        Assert.Equal(0, checkpointer.Checkpoints);
        await TestWait.EventuallyAsync(() => checkpointer.Checkpoints == 1, because: "one checkpoint once the writes stopped");
        Assert.True(checkpointer.UpToDate);
    }

    [Fact]
    public async Task Off_OrInMemory_NoSecondConnection()
    {
        await using var off = new SqliteOrchestrationBackend(new SqliteOrchestrationBackendOptions { DataSource = this.path, BackgroundWalCheckpoints = false });
        await using var inMemory = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory());

        Assert.Null(off.WalCheckpointer);
        Assert.Null(inMemory.WalCheckpointer);
    }

    public void Dispose()
    {
        foreach (string file in new[] { this.path, this.path + "-wal", this.path + "-shm", this.path + ".copy", this.path + ".copy-wal", this.path + ".copy-shm" })
        {
            File.Delete(file);
        }
    }
}

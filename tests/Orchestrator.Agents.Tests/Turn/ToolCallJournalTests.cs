using Microsoft.Data.Sqlite;
using Orchestrator.Testing;

namespace Orchestrator.Agents.Tests.Turn;

/// <summary>The journal contract (tests/Shared/ToolCallJournalContract.cs) on the in-memory journal: one per process.</summary>
public sealed class InMemoryToolCallJournalTests : ToolCallJournalContract
{
    protected override bool RemembersFinishedWrites => false;

    protected override Task<IJournalStore> CreateStoreAsync() => Task.FromResult<IJournalStore>(new Store());

    private sealed class Store : IJournalStore
    {
        private readonly InMemoryToolCallJournal _journal = new();

        public IToolCallJournal Open() => _journal;

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}

/// <summary>The journal contract on the SQLite journal: each open is another journal object over one file.</summary>
public sealed class SqliteToolCallJournalTests : ToolCallJournalContract
{
    [Fact]
    public async Task Purge_EntriesOlderThanTheCutoff_AreForgotten()
    {
        await using var store = new Store();
        var journal = (SqliteToolCallJournal)store.Open();
        Assert.Equal(PriorAttempt.None, await journal.BeginAttemptAsync("tc1_abc", CancellationToken.None));

        Assert.Equal(0, await journal.PurgeAsync(TimeProvider.System.GetUtcNow().AddHours(-1), CancellationToken.None));
        Assert.Equal(1, await journal.PurgeAsync(TimeProvider.System.GetUtcNow().AddHours(1), CancellationToken.None));
        Assert.Equal(PriorAttempt.None, await journal.BeginAttemptAsync("tc1_abc", CancellationToken.None));
    }

    [Fact]
    public async Task Purge_WithARowLimit_DeletesAtMostThatManyOfTheOldOnes()
    {
        await using var store = new Store();
        var journal = (SqliteToolCallJournal)store.Open();
        foreach (string key in new[] { "a", "b", "c" })
        {
            await journal.BeginAttemptAsync(key, CancellationToken.None);
        }

        DateTimeOffset cutoff = TimeProvider.System.GetUtcNow().AddHours(1);
        Assert.Equal(2, await journal.PurgeAsync(cutoff, 2, CancellationToken.None));
        Assert.Equal(1, await journal.PurgeAsync(cutoff, 2, CancellationToken.None));
        Assert.Equal(0, await journal.PurgeAsync(cutoff, 2, CancellationToken.None));
        Assert.Equal(PriorAttempt.None, await journal.BeginAttemptAsync("b", CancellationToken.None));
    }

    protected override Task<IJournalStore> CreateStoreAsync() => Task.FromResult<IJournalStore>(new Store());

    private sealed class Store : IJournalStore
    {
        private readonly string _path = Path.Combine(Path.GetTempPath(), $"journal-{Environment.ProcessId}-{Guid.NewGuid():N}.db");
        private readonly List<SqliteToolCallJournal> _opened = [];

        public IToolCallJournal Open()
        {
            var journal = new SqliteToolCallJournal(_path);
            _opened.Add(journal);
            return journal;
        }

        public ValueTask DisposeAsync()
        {
            _opened.ForEach(j => j.Dispose());
            SqliteConnection.ClearAllPools();
            foreach (string suffix in new[] { string.Empty, "-wal", "-shm" })
            {
                File.Delete(_path + suffix);
            }

            return ValueTask.CompletedTask;
        }
    }
}

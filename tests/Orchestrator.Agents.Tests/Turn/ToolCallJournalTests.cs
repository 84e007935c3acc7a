using Microsoft.Data.Sqlite;

namespace Orchestrator.Agents.Tests.Turn;

public sealed class ToolCallJournalTests
{
    public static TheoryData<string> Kinds => new() { "memory", "sqlite" };

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task BeginAttempt_AfterEachKindOfEnd_ReportsWhatCameBefore(string kind)
    {
        await WithJournalAsync(kind, async journal =>
        {
            var ct = CancellationToken.None;
            Assert.Equal(PriorAttempt.None, await journal.BeginAttemptAsync("k1", ct));

            // Began and never ended: the worker died mid-call.
            Assert.Equal(PriorAttempt.Unfinished, await journal.BeginAttemptAsync("k1", ct));
            await journal.EndAttemptAsync("k1", AttemptEnd.FailedTransiently, ct);
            Assert.Equal(PriorAttempt.FailedTransiently, await journal.BeginAttemptAsync("k1", ct));
            await journal.EndAttemptAsync("k1", AttemptEnd.Succeeded, ct);

            // The in-memory journal forgets finished writes (bounded memory); the durable one remembers them.
            Assert.Equal(kind == "memory" ? PriorAttempt.None : PriorAttempt.SucceededUnrecorded, await journal.BeginAttemptAsync("k1", ct));
            await journal.EndAttemptAsync("k1", AttemptEnd.FailedPermanently, ct);
            Assert.Equal(kind == "memory" ? PriorAttempt.None : PriorAttempt.FailedPermanently, await journal.BeginAttemptAsync("k1", ct));

            // Keys are independent.
            Assert.Equal(PriorAttempt.None, await journal.BeginAttemptAsync("k2", ct));
        });
    }

    [Fact]
    public async Task SqliteJournal_TwoInstancesOverOneFile_SecondSeesFirstsUnfinishedAttempt()
    {
        string path = Path.Combine(Path.GetTempPath(), $"journal-{Environment.ProcessId}-{Guid.NewGuid():N}.db");
        try
        {
            using (var first = new SqliteToolCallJournal(path))
            {
                Assert.Equal(PriorAttempt.None, await first.BeginAttemptAsync("tc1_abc", CancellationToken.None));
            }

            using var second = new SqliteToolCallJournal(path);
            Assert.Equal(PriorAttempt.Unfinished, await second.BeginAttemptAsync("tc1_abc", CancellationToken.None));
            Assert.Equal(0, await second.PurgeAsync(TimeProvider.System.GetUtcNow().AddHours(-1), CancellationToken.None));
            Assert.Equal(1, await second.PurgeAsync(TimeProvider.System.GetUtcNow().AddHours(1), CancellationToken.None));
            Assert.Equal(PriorAttempt.None, await second.BeginAttemptAsync("tc1_abc", CancellationToken.None));
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            foreach (string suffix in new[] { string.Empty, "-wal", "-shm" })
            {
                File.Delete(path + suffix);
            }
        }
    }

    [Fact]
    public async Task SqliteJournal_ConcurrentBeginsOfOneKey_ExactlyOneSeesNone()
    {
        string path = Path.Combine(Path.GetTempPath(), $"journal-{Environment.ProcessId}-{Guid.NewGuid():N}.db");
        try
        {
            using var journal = new SqliteToolCallJournal(path);
            var priors = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () => await journal.BeginAttemptAsync("same", CancellationToken.None))));
            Assert.Single(priors, p => p == PriorAttempt.None);
            Assert.Equal(7, priors.Count(p => p == PriorAttempt.Unfinished));
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            foreach (string suffix in new[] { string.Empty, "-wal", "-shm" })
            {
                File.Delete(path + suffix);
            }
        }
    }

    private static async Task WithJournalAsync(string kind, Func<IToolCallJournal, Task> test)
    {
        if (kind == "memory")
        {
            await test(new InMemoryToolCallJournal());
            return;
        }

        string path = Path.Combine(Path.GetTempPath(), $"journal-{Environment.ProcessId}-{Guid.NewGuid():N}.db");
        try
        {
            using var journal = new SqliteToolCallJournal(path);
            await test(journal);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            foreach (string suffix in new[] { string.Empty, "-wal", "-shm" })
            {
                File.Delete(path + suffix);
            }
        }
    }
}

using Orchestrator.Agents;
using Xunit;

namespace Orchestrator.Testing;

/// <summary>
/// What every <see cref="IToolCallJournal"/> must do, run against each one (the in-memory and SQLite journals in
/// Orchestrator.Agents.Tests, the Azure table journal in Orchestrator.Host.Api.Tests): what a begin reports after each
/// kind of end, independent keys, an end without a begin, two journal objects over one store (two worker processes), and
/// concurrent begins of one write from both.
/// </summary>
public abstract class ToolCallJournalContract
{
    /// <summary>False for a journal that forgets a write once it ends with success or a permanent failure (in memory).</summary>
    protected virtual bool RemembersFinishedWrites => true;

    /// <summary>A new, empty store of the journal under test.</summary>
    protected abstract Task<IJournalStore> CreateStoreAsync();

    [Fact(Timeout = 60_000)]
    public async Task BeginAttempt_AfterEachKindOfEnd_ReportsWhatCameBefore()
    {
        await using IJournalStore store = await CreateStoreAsync();
        IToolCallJournal journal = store.Open();
        var ct = CancellationToken.None;
        Assert.Equal(PriorAttempt.None, await journal.BeginAttemptAsync("k1", ct));

        // Began and never ended: the worker died mid-call.
        Assert.Equal(PriorAttempt.Unfinished, await journal.BeginAttemptAsync("k1", ct));
        await journal.EndAttemptAsync("k1", AttemptEnd.FailedTransiently, ct);
        Assert.Equal(PriorAttempt.FailedTransiently, await journal.BeginAttemptAsync("k1", ct));
        await journal.EndAttemptAsync("k1", AttemptEnd.Succeeded, ct);

        // The in-memory journal forgets finished writes (bounded memory); the durable ones remember them.
        Assert.Equal(RemembersFinishedWrites ? PriorAttempt.SucceededUnrecorded : PriorAttempt.None, await journal.BeginAttemptAsync("k1", ct));
        await journal.EndAttemptAsync("k1", AttemptEnd.FailedPermanently, ct);
        Assert.Equal(RemembersFinishedWrites ? PriorAttempt.FailedPermanently : PriorAttempt.None, await journal.BeginAttemptAsync("k1", ct));

        // Keys are independent.
        Assert.Equal(PriorAttempt.None, await journal.BeginAttemptAsync("k2", ct));
    }

    [Fact(Timeout = 60_000)]
    public async Task EndAttempt_WithoutBegin_RecordsNothing()
    {
        await using IJournalStore store = await CreateStoreAsync();
        IToolCallJournal journal = store.Open();

        await journal.EndAttemptAsync("never-begun", AttemptEnd.Succeeded, CancellationToken.None);

        Assert.Equal(PriorAttempt.None, await journal.BeginAttemptAsync("never-begun", CancellationToken.None));
    }

    [Fact(Timeout = 60_000)]
    public async Task BeginAttempt_KeysWithCharactersStoresForbid_AreDistinctWrites()
    {
        await using IJournalStore store = await CreateStoreAsync();
        IToolCallJournal journal = store.Open();
        string[] keys = ["conv/1#a?b\\c", "conv/1#a?b\\d", "tc\u0001x", "ключ", new string('k', 2000)];

        foreach (string key in keys)
        {
            Assert.Equal(PriorAttempt.None, await journal.BeginAttemptAsync(key, CancellationToken.None));
        }

        foreach (string key in keys)
        {
            Assert.Equal(PriorAttempt.Unfinished, await journal.BeginAttemptAsync(key, CancellationToken.None));
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task TwoJournalsOverOneStore_EachSeesTheOthersAttempts()
    {
        await using IJournalStore store = await CreateStoreAsync();
        IToolCallJournal first = store.Open();
        IToolCallJournal second = store.Open();
        var ct = CancellationToken.None;

        // The first "process" calls out and dies; the second retries the write and knows it is in doubt.
        Assert.Equal(PriorAttempt.None, await first.BeginAttemptAsync("tc1_abc", ct));
        Assert.Equal(PriorAttempt.Unfinished, await second.BeginAttemptAsync("tc1_abc", ct));
        await second.EndAttemptAsync("tc1_abc", AttemptEnd.FailedTransiently, ct);
        Assert.Equal(PriorAttempt.FailedTransiently, await first.BeginAttemptAsync("tc1_abc", ct));
    }

    [Fact(Timeout = 60_000)]
    public async Task ConcurrentBeginsOfOneKeyFromTwoJournals_ExactlyOneSeesNone()
    {
        await using IJournalStore store = await CreateStoreAsync();
        IToolCallJournal[] journals = [store.Open(), store.Open()];

        PriorAttempt[] priors = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => Task.Run(async () => await journals[i % 2].BeginAttemptAsync("same", CancellationToken.None))));

        Assert.Single(priors, p => p == PriorAttempt.None);
        Assert.Equal(7, priors.Count(p => p == PriorAttempt.Unfinished));
    }

    [Fact(Timeout = 60_000)]
    public async Task BeginAndEndAttempt_NullKey_Throw()
    {
        await using IJournalStore store = await CreateStoreAsync();
        IToolCallJournal journal = store.Open();

        await Assert.ThrowsAsync<ArgumentNullException>(async () => await journal.BeginAttemptAsync(null!, CancellationToken.None));
        await Assert.ThrowsAsync<ArgumentNullException>(async () => await journal.EndAttemptAsync(null!, AttemptEnd.Succeeded, CancellationToken.None));
    }

    /// <summary>One store of a journal; each <see cref="Open"/> is another journal object over it, as another worker process would have.</summary>
    protected interface IJournalStore : IAsyncDisposable
    {
        /// <summary>A journal over this store (the in-memory journal has one per process: the same object).</summary>
        IToolCallJournal Open();
    }
}

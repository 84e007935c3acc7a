using Azure.Data.Tables;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Orchestrator.Agents;

namespace Orchestrator.Host.Api.Tests;

/// <summary>The journal contract (tests/Shared/ToolCallJournalContract.cs) on the Azure table journal, against Azurite: each open is another client and journal object over the hub's table.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class TableToolCallJournalTests(AzuriteFixture azurite) : ToolCallJournalContract
{
    [Fact(Timeout = 60_000)]
    public async Task FirstUse_TableAbsent_CreatesTheHubsTable()
    {
        string hub = AzuriteFixture.NewName("jhub");
        var service = new TableServiceClient(azurite.ConnectionString);
        using var journal = new TableToolCallJournal(service, hub);
        Assert.Equal(hub + "ToolCalls", journal.TableName);
        Assert.False(await TableExistsAsync(service, journal.TableName));

        Assert.Equal(PriorAttempt.None, await journal.BeginAttemptAsync("k", CancellationToken.None));

        Assert.True(await TableExistsAsync(service, journal.TableName));
        await service.DeleteTableAsync(journal.TableName);
    }

    [Theory]
    [InlineData("")]
    [InlineData("ab")]
    [InlineData("1hub")]
    [InlineData("my-hub")]
    [InlineData("hub_name")]
    [InlineData("abcdefghijabcdefghijabcdefghijabcdefghijabcdef")]
    public void Constructor_NotATaskHubName_ThrowsNamingTheRule(string hub)
    {
        var ex = Assert.Throws<ArgumentException>(() => new TableToolCallJournal(new TableServiceClient(azurite.ConnectionString), hub));
        Assert.Contains("letters and digits, starting with a letter, 3-45 characters", ex.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Purge_EntriesNotTouchedSinceTheCutoff_AreForgottenOthersKept()
    {
        string hub = AzuriteFixture.NewName("jhub");
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var service = new TableServiceClient(azurite.ConnectionString);
        using var journal = new TableToolCallJournal(service, hub, clock);
        try
        {
            Assert.Equal(PriorAttempt.None, await journal.BeginAttemptAsync("old", CancellationToken.None));
            clock.Advance(TimeSpan.FromDays(2));
            Assert.Equal(PriorAttempt.None, await journal.BeginAttemptAsync("recent", CancellationToken.None));

            Assert.Equal(1, await journal.PurgeAsync(clock.GetUtcNow().AddDays(-1), CancellationToken.None));

            Assert.Equal(PriorAttempt.None, await journal.BeginAttemptAsync("old", CancellationToken.None));
            Assert.Equal(PriorAttempt.Unfinished, await journal.BeginAttemptAsync("recent", CancellationToken.None));
        }
        finally
        {
            await service.DeleteTableAsync(journal.TableName);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Purge_WithARowLimit_DeletesAtMostThatManyOfTheOldOnes()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var service = new TableServiceClient(azurite.ConnectionString);
        using var journal = new TableToolCallJournal(service, AzuriteFixture.NewName("jhub"), clock);
        try
        {
            foreach (string key in new[] { "a", "b", "c" })
            {
                await journal.BeginAttemptAsync(key, CancellationToken.None);
            }

            clock.Advance(TimeSpan.FromDays(2));
            await journal.BeginAttemptAsync("recent", CancellationToken.None);
            DateTimeOffset cutoff = clock.GetUtcNow().AddDays(-1);

            Assert.Equal(2, await journal.PurgeAsync(cutoff, 2, CancellationToken.None));
            Assert.Equal(1, await journal.PurgeAsync(cutoff, 2, CancellationToken.None));
            Assert.Equal(0, await journal.PurgeAsync(cutoff, 2, CancellationToken.None));
            Assert.Equal(PriorAttempt.Unfinished, await journal.BeginAttemptAsync("recent", CancellationToken.None));
        }
        finally
        {
            await service.DeleteTableAsync(journal.TableName);
        }
    }

    [Fact]
    public void HostTurnOptions_OnAzureStorage_JournalIsTheHubsTable()
    {
        var settings = new HostSettings { StorageConnectionString = azurite.ConnectionString, HubName = "HostHub7" };

        AgentTurnOptions options = HostTurnOptions.Create(settings, NullLoggerFactory.Instance);

        using var journal = Assert.IsType<TableToolCallJournal>(options.CallJournal);
        Assert.Equal("HostHub7ToolCalls", journal.TableName);
    }

    protected override Task<IJournalStore> CreateStoreAsync() => Task.FromResult<IJournalStore>(new Store(azurite.ConnectionString, AzuriteFixture.NewName("jhub")));

    private static async Task<bool> TableExistsAsync(TableServiceClient service, string name)
    {
        await foreach (var _ in service.QueryAsync(t => t.Name == name))
        {
            return true;
        }

        return false;
    }

    private sealed class Store(string connectionString, string hub) : IJournalStore
    {
        private readonly List<TableToolCallJournal> _opened = [];

        // Each journal has its own service client, as each worker process would.
        public IToolCallJournal Open()
        {
            var journal = new TableToolCallJournal(new TableServiceClient(connectionString), hub);
            _opened.Add(journal);
            return journal;
        }

        public async ValueTask DisposeAsync()
        {
            _opened.ForEach(j => j.Dispose());
            await new TableServiceClient(connectionString).DeleteTableAsync(TableToolCallJournal.TableNameFor(hub));
        }
    }
}

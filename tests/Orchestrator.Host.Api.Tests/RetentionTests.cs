using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Azure.Data.Tables;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Orchestrator.Agents;

namespace Orchestrator.Host.Api.Tests;

/// <summary>
/// Retention of the host's bookkeeping rows, on both backends: an expired <c>Idempotency-Key</c> is a new request, a
/// <c>webhook-id</c> is refused as a replay within its window and its row removed after it, journal entries older than
/// the retention are purged while fresh ones stay. The API clock is fake; the cleanup runs on it.
/// </summary>
public abstract class RetentionApiContract
{
    private static readonly TimeSpan Interval = TimeSpan.FromMinutes(1);

    private protected abstract Task<ApiHarness> StartAsync(ApiSettings api, TimeProvider clock);

    /// <summary>Rows of the request ledger in <paramref name="scope"/>.</summary>
    private protected abstract Task<int> CountLedgerRowsAsync(ApiHarness api, string scope);

    /// <summary>A journal over the host's own store (its file or table), writing on <paramref name="clock"/>.</summary>
    private protected abstract IToolCallJournal OpenJournal(ApiHarness? api, TimeProvider clock);

    /// <summary>Whether the host's journal holds an entry for <paramref name="key"/> (read without writing).</summary>
    private protected abstract Task<bool> JournalHoldsAsync(ApiHarness api, string key);

    private static ApiSettings Settings(TimeSpan? webhookIds = null, TimeSpan? journal = null) => new()
    {
        ManagementKey = ApiHarness.ManagementKey,
        WebhookSecrets = [ApiHarness.Secret],
        WebhookIdRetention = webhookIds ?? LedgerRetention.Default.Webhooks,
        ToolCallJournalRetention = journal ?? TimeSpan.FromDays(7),
        CleanupInterval = Interval,
    };

    [Fact(Timeout = 180_000)]
    public async Task IdempotencyKey_PastItsRetention_StartsANewTurnWhileAFreshKeyReplays()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using ApiHarness api = await this.StartAsync(Settings(), clock);
        using HttpResponseMessage first = await api.PostMessageAsync("conv-expiry", "hello", idempotencyKey: "key-1");
        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        string token = (string)(await first.Content.ReadFromJsonAsync<JsonObject>())!["accessToken"]!;
        await api.StatusEventuallyAsync("conv-expiry", s => (int?)s["turns"] == 1 && s["currentTurn"] is null, "first turn done");

        clock.Advance(TimeSpan.FromHours(24) - TimeSpan.FromMinutes(1));
        using HttpResponseMessage withinDay = await api.PostMessageAsync("conv-expiry", "hello", idempotencyKey: "key-1", token: token);
        Assert.True(withinDay.Headers.Contains("Idempotent-Replayed"), "a retry within 24 hours gets the first response");
        using HttpResponseMessage fresh = await api.PostMessageAsync("conv-expiry", "second", idempotencyKey: "key-2", token: token);
        Assert.Equal(HttpStatusCode.Accepted, fresh.StatusCode);
        await api.StatusEventuallyAsync("conv-expiry", s => (int?)s["turns"] == 2 && s["currentTurn"] is null, "second turn done");

        clock.Advance(TimeSpan.FromMinutes(2));
        using HttpResponseMessage expired = await api.PostMessageAsync("conv-expiry", "hello", idempotencyKey: "key-1", token: token);
        using HttpResponseMessage freshRetry = await api.PostMessageAsync("conv-expiry", "second", idempotencyKey: "key-2", token: token);

        Assert.Equal(HttpStatusCode.Accepted, expired.StatusCode);
        Assert.False(expired.Headers.Contains("Idempotent-Replayed"), "an expired key is a new request");
        Assert.True(freshRetry.Headers.Contains("Idempotent-Replayed"), "key-2 is minutes old: still replayed");
        await api.StatusEventuallyAsync("conv-expiry", s => (int?)s["turns"] == 3 && s["currentTurn"] is null, "the expired key's message became a third turn");
        Assert.Equal(["hello", "second", "hello"], api.Agent.UserMessagesSeen);
    }

    [Fact(Timeout = 180_000)]
    public async Task WebhookId_WithinItsWindowRefusedAsAReplay_RowRemovedAfterTheWindow()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        TimeSpan window = ApiSettings.MinWebhookIdRetention;
        await using ApiHarness api = await this.StartAsync(Settings(webhookIds: window), clock);
        await api.StartAsync("conv-whret", "refund A8472");
        string hash = (string)(await api.PendingEventuallyAsync("conv-whret"))["argumentsHash"]!;
        string body = JsonSerializer.Serialize(new { decision = "approve", argumentsHash = hash, decidedBy = "webhook" });
        long sent = clock.GetUtcNow().ToUnixTimeSeconds();

        var delivered = await api.SendWebhookAsync("conv-whret", "call_refund", body, "msg_window", timestamp: sent);
        Assert.Equal(202, delivered.Status);
        await api.StatusEventuallyAsync("conv-whret", s => (int?)s["turns"] == 1 && s["currentTurn"] is null, "the approved turn finished");
        Assert.Equal(1, await this.CountLedgerRowsAsync(api, LedgerRetention.WebhookScope));

        // Within the timestamp tolerance the captured delivery passes the signature check: the ledger refuses it.
        clock.Advance(StandardWebhookVerifier.Tolerance - TimeSpan.FromSeconds(5));
        var replay = await api.SendWebhookAsync("conv-whret", "call_refund", body, "msg_window", timestamp: sent);
        Assert.Equal((202, delivered.Body), (replay.Status, replay.Body));
        Assert.True(replay.Response.Headers.Contains("Idempotent-Replayed"));

        // Past the window the row goes; the same delivery is now refused by its timestamp.
        clock.Advance(window - StandardWebhookVerifier.Tolerance + TimeSpan.FromSeconds(10));
        await Eventually.Async(
            async () =>
            {
                clock.Advance(Interval);
                return await this.CountLedgerRowsAsync(api, LedgerRetention.WebhookScope) == 0;
            },
            "the cleanup removed the expired webhook id");
        var late = await api.SendWebhookAsync("conv-whret", "call_refund", body, "msg_window", timestamp: sent);
        Assert.Equal(401, late.Status);
        Assert.Equal(1, Assert.Single(api.Agent.Refunds).Value);
    }

    [Fact(Timeout = 180_000)]
    public async Task JournalEntries_OlderThanTheRetention_PurgedWhileFreshOnesStay()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        TimeSpan retention = TimeSpan.FromDays(2);
        await using ApiHarness api = await this.StartAsync(Settings(journal: retention), clock);
        var writer = new FakeTimeProvider(clock.GetUtcNow() - TimeSpan.FromDays(3));
        IToolCallJournal journal = this.OpenJournal(api, writer);
        try
        {
            await journal.BeginAttemptAsync("old-write", default);
            await journal.EndAttemptAsync("old-write", AttemptEnd.Succeeded, default);
            writer.Advance(TimeSpan.FromDays(2));
            await journal.BeginAttemptAsync("fresh-write", default);
        }
        finally
        {
            (journal as IDisposable)?.Dispose();
        }

        await Eventually.Async(
            async () =>
            {
                clock.Advance(Interval);
                return !await this.JournalHoldsAsync(api, "old-write");
            },
            "the cleanup purged the 3-day-old entry");
        Assert.True(await this.JournalHoldsAsync(api, "fresh-write"), "a 1-day-old entry stays (its turn may still retry the write)");

        clock.Advance(TimeSpan.FromDays(1));
        await Eventually.Async(
            async () =>
            {
                clock.Advance(Interval);
                return !await this.JournalHoldsAsync(api, "fresh-write");
            },
            "the cleanup purged it once older than the retention");
    }
}

public sealed class SqliteRetentionTests : RetentionApiContract
{
    private protected override Task<ApiHarness> StartAsync(ApiSettings api, TimeProvider clock) => ApiHarness.StartSqliteAsync(api: api, apiClock: clock);

    private protected override async Task<int> CountLedgerRowsAsync(ApiHarness api, string scope)
    {
        await using var connection = new SqliteConnection($"Data Source={SqliteRequestLedger.PathFor(api.Options.DataSource!)};Pooling=False");
        await connection.OpenAsync();
        await using SqliteCommand count = connection.CreateCommand();
        count.CommandText = "SELECT COUNT(*) FROM requests WHERE scope = $s";
        count.Parameters.AddWithValue("$s", scope);
        return Convert.ToInt32(await count.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private protected override IToolCallJournal OpenJournal(ApiHarness? api, TimeProvider clock) => new SqliteToolCallJournal(JournalPath(api!), clock);

    private protected override async Task<bool> JournalHoldsAsync(ApiHarness api, string key)
    {
        await using var connection = new SqliteConnection($"Data Source={JournalPath(api)};Pooling=False");
        await connection.OpenAsync();
        await using SqliteCommand count = connection.CreateCommand();
        count.CommandText = "SELECT COUNT(*) FROM tool_call_journal WHERE idempotency_key = $k";
        count.Parameters.AddWithValue("$k", key);
        return Convert.ToInt32(await count.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture) == 1;
    }

    private static string JournalPath(ApiHarness api) => Path.Combine(Path.GetDirectoryName(api.Options.DataSource!)!, "orchestrator.journal.db");
}

[Collection(AzuriteCollection.Name)]
public sealed class AzureRetentionTests(AzuriteFixture azurite) : RetentionApiContract
{
    private TableServiceClient Tables => new(azurite.ConnectionString);

    private protected override Task<ApiHarness> StartAsync(ApiSettings api, TimeProvider clock) =>
        ApiHarness.StartAsync(new HostSettings { StorageConnectionString = azurite.ConnectionString, HubName = AzuriteFixture.NewName("retention"), PartitionCount = 1 }, dataSource: null, api: api, apiClock: clock);

    private protected override async Task<int> CountLedgerRowsAsync(ApiHarness api, string scope)
    {
        string partition = RequestHash.Of(scope);
        int rows = 0;
        await foreach (TableEntity _ in this.Tables.GetTableClient(api.Options.Settings.HubName + "Requests").QueryAsync<TableEntity>(e => e.PartitionKey == partition))
        {
            rows++;
        }

        return rows;
    }

    private protected override IToolCallJournal OpenJournal(ApiHarness? api, TimeProvider clock) => new TableToolCallJournal(this.Tables, api!.Options.Settings.HubName, clock);

    private protected override async Task<bool> JournalHoldsAsync(ApiHarness api, string key)
    {
        TableClient table = this.Tables.GetTableClient(TableToolCallJournal.TableNameFor(api.Options.Settings.HubName));
        return (await table.GetEntityIfExistsAsync<TableEntity>(TableToolCallJournal.PartitionKeyOf(key), string.Empty)).HasValue;
    }
}

/// <summary>The cleanup service itself, on fake time with hand-written targets.</summary>
public sealed class RetentionCleanupServiceTests
{
    [Fact(Timeout = 30_000)]
    public async Task Cleanup_PassFails_LoggedOtherKindStillCleanedAndRetriedNextInterval()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var logger = new RecordingLogger();
        int failingCalls = 0;
        var healthyBatches = new ConcurrentQueue<int>();
        var backlog = new Queue<int>([3, 3, 1]);
        var targets = new List<CleanupTarget>
        {
            new("flaky rows", (max, _) => Interlocked.Increment(ref failingCalls) == 1
                ? throw new InvalidOperationException("storage unreachable")
                : Task.FromResult(2)),
            new("healthy rows", (max, _) =>
            {
                int n = backlog.TryDequeue(out int b) ? b : 0;
                healthyBatches.Enqueue(n);
                return Task.FromResult(n);
            }),
        };
        using var service = new RetentionCleanupService(targets, TimeSpan.FromMinutes(5), batchSize: 3, clock, logger);

        await service.StartAsync(CancellationToken.None);
        await Eventually.Async(() => Task.FromResult(logger.Has(5020, "7 expired healthy rows")), "the first pass cleaned the other kind");
        Assert.Single(logger.Entries, e => e.EventId == 5022 && e.Exception is InvalidOperationException && e.Message.Contains("flaky rows", StringComparison.Ordinal));
        // Full batches repeat; the short one ends the pass.
        Assert.Equal([3, 3, 1], healthyBatches);

        await Eventually.Async(
            () =>
            {
                clock.Advance(TimeSpan.FromMinutes(5));
                return Task.FromResult(logger.Has(5020, "2 expired flaky rows"));
            },
            "the next interval retried the failed kind");
        Assert.True(service.ExecuteTask is { IsCompleted: false }, "the service still runs");
        await service.StopAsync(CancellationToken.None);
    }

    private sealed class RecordingLogger : ILogger
    {
        public ConcurrentQueue<(int EventId, string Message, Exception? Exception)> Entries { get; } = new();

        public bool Has(int eventId, string part) => this.Entries.Any(e => e.EventId == eventId && e.Message.Contains(part, StringComparison.Ordinal));

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            this.Entries.Enqueue((eventId.Id, formatter(state, exception), exception));
    }
}

public sealed class RetentionSettingsTests
{
    private static ApiSettings Read(params (string Key, string Value)[] values) =>
        ApiSettings.FromConfiguration(new ConfigurationBuilder().AddInMemoryCollection(values.ToDictionary(v => v.Key, v => (string?)v.Value)).Build(), new HostSettings());

    [Fact]
    public void Defaults_WhatAUserExpects()
    {
        ApiSettings settings = Read();

        Assert.Equal(TimeSpan.FromHours(24), settings.IdempotencyKeyRetention);
        Assert.Equal(TimeSpan.FromHours(1), settings.WebhookIdRetention);
        Assert.True(settings.WebhookIdRetention >= StandardWebhookVerifier.Tolerance * 2);
        Assert.Equal(TimeSpan.FromDays(7), settings.ToolCallJournalRetention);
        Assert.Equal(TimeSpan.FromMinutes(15), settings.CleanupInterval);
        settings.CheckJournalRetention(null);
    }

    [Fact]
    public void Values_ShortFormsAndTimeSpans_Read()
    {
        ApiSettings settings = Read(
            ("Values:Retention__IdempotencyKeys", "48h"),
            ("Values:Retention__WebhookIds", "00:10:00"),
            ("Retention:ToolCallJournal", "30d"),
            ("Retention:CleanupInterval", "90s"),
            ("Retention:CleanupBatchSize", "50"));

        Assert.Equal(
            (TimeSpan.FromHours(48), TimeSpan.FromMinutes(10), TimeSpan.FromDays(30), TimeSpan.FromSeconds(90), 50),
            (settings.IdempotencyKeyRetention, settings.WebhookIdRetention, settings.ToolCallJournalRetention, settings.CleanupInterval, settings.CleanupBatchSize));
        Assert.Equal(new LedgerRetention(TimeSpan.FromHours(48), TimeSpan.FromMinutes(10)), settings.LedgerRetention);
    }

    [Theory]
    [InlineData("Retention:WebhookIds", "9m")] // under twice the 5-minute tolerance: a replay could be accepted again
    [InlineData("Retention:WebhookIds", "soon")]
    [InlineData("Retention:IdempotencyKeys", "1m")]
    [InlineData("Retention:IdempotencyKeys", "-1.00:00:00")]
    [InlineData("Retention:ToolCallJournal", "0d")]
    [InlineData("Retention:CleanupInterval", "0s")]
    [InlineData("Retention:CleanupInterval", "2d")]
    [InlineData("Retention:CleanupBatchSize", "0")]
    public void InvalidValue_StopsStartupNamingTheSetting(string key, string value)
    {
        var ex = Assert.Throws<InvalidOperationException>(() => Read((key, value)));

        Assert.Contains(key, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void JournalRetention_ShorterThanConfirmationPlusTurn_StopsStartupNamingIt()
    {
        ApiSettings settings = Read(("Retention:ToolCallJournal", "3d"));

        settings.CheckJournalRetention(new TurnOptions { ConfirmationTimeout = TimeSpan.FromDays(2) });
        var ex = Assert.Throws<InvalidOperationException>(() => settings.CheckJournalRetention(new TurnOptions { ConfirmationTimeout = TimeSpan.FromDays(2), MaxDuration = TimeSpan.FromDays(1) + TimeSpan.FromMinutes(1) }));

        Assert.Contains("Retention:ToolCallJournal", ex.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Serve_JournalRetentionTooShortForTheAgent_RefusesToStart()
    {
        var agent = new TestAgent();
        AgentDefinition definition = agent.Definition() with { TurnOptions = new TurnOptions { ConfirmationTimeout = TimeSpan.FromDays(10) } };

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => ApiHarness.StartAsync(new HostSettings(), Path.Combine(Directory.CreateTempSubdirectory("retention-short-").FullName, "orchestrator.db"), agent, definition: definition));

        Assert.Contains("Retention:ToolCallJournal", ex.Message, StringComparison.Ordinal);
    }
}

using Microsoft.Extensions.Time.Testing;

namespace Orchestrator.Host.Api.Tests;

/// <summary>The ledger's contract, run on both stores.</summary>
public abstract class RequestLedgerContract
{
    private protected abstract Task<IRequestLedger> CreateAsync(TimeProvider time, LedgerRetention? retention = null);

    [Fact(Timeout = 60_000)]
    public async Task Claim_FirstRetryMismatchCompleteRelease_FollowTheIdempotencyRules()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using IRequestLedger ledger = await this.CreateAsync(time);
        var response = new StoredResponse(202, "{\"id\":\"c\"}", "http://x/api/conversations/c?token=t");

        Assert.Equal(ClaimKind.Began, (await ledger.ClaimAsync("s", "k/1#?", "h1", default)).Kind);
        Assert.Equal(ClaimKind.InProgress, (await ledger.ClaimAsync("s", "k/1#?", "h1", default)).Kind);
        Assert.Equal(ClaimKind.Mismatch, (await ledger.ClaimAsync("s", "k/1#?", "h2", default)).Kind);
        Assert.Equal(ClaimKind.Began, (await ledger.ClaimAsync("other-scope", "k/1#?", "h2", default)).Kind);

        await ledger.CompleteAsync("s", "k/1#?", response, default);
        LedgerClaim done = await ledger.ClaimAsync("s", "k/1#?", "h1", default);
        Assert.Equal(ClaimKind.Completed, done.Kind);
        Assert.Equal(response, done.Response);
        Assert.Equal(ClaimKind.Mismatch, (await ledger.ClaimAsync("s", "k/1#?", "h2", default)).Kind);

        // A released claim (the work failed) can be claimed again; a completed one cannot be released.
        Assert.Equal(ClaimKind.Began, (await ledger.ClaimAsync("s", "k2", "h", default)).Kind);
        await ledger.ReleaseAsync("s", "k2", default);
        Assert.Equal(ClaimKind.Began, (await ledger.ClaimAsync("s", "k2", "h", default)).Kind);
        await ledger.ReleaseAsync("s", "k/1#?", default);
        Assert.Equal(ClaimKind.Completed, (await ledger.ClaimAsync("s", "k/1#?", "h1", default)).Kind);
    }

    [Fact(Timeout = 60_000)]
    public async Task Claim_HolderDiedPastTheLease_OneRetryTakesOver()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using IRequestLedger ledger = await this.CreateAsync(time);
        Assert.Equal(ClaimKind.Began, (await ledger.ClaimAsync("s", "k", "h", default)).Kind);

        time.Advance(IRequestLedger.Lease - TimeSpan.FromSeconds(1));
        Assert.Equal(ClaimKind.InProgress, (await ledger.ClaimAsync("s", "k", "h", default)).Kind);
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(ClaimKind.TookOver, (await ledger.ClaimAsync("s", "k", "h", default)).Kind);
        Assert.Equal(ClaimKind.InProgress, (await ledger.ClaimAsync("s", "k", "h", default)).Kind);
        Assert.Equal(ClaimKind.Mismatch, (await ledger.ClaimAsync("s", "k", "other", default)).Kind);
    }

    [Fact(Timeout = 60_000)]
    public async Task Claim_KeyPastItsRetention_IsNewAgainWhileAFreshOneStillReplays()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using IRequestLedger ledger = await this.CreateAsync(time);
        var response = new StoredResponse(202, "{}", null);
        await ledger.ClaimAsync("messages:c", "old", "h1", default);
        await ledger.CompleteAsync("messages:c", "old", response, default);

        time.Advance(LedgerRetention.Default.Messages - TimeSpan.FromSeconds(1));
        Assert.Equal(ClaimKind.Completed, (await ledger.ClaimAsync("messages:c", "old", "h1", default)).Kind);
        Assert.Equal(ClaimKind.Mismatch, (await ledger.ClaimAsync("messages:c", "old", "h2", default)).Kind);
        await ledger.ClaimAsync("messages:c", "fresh", "h1", default);
        await ledger.CompleteAsync("messages:c", "fresh", response, default);

        time.Advance(TimeSpan.FromSeconds(1));
        // Expired: a new request, even with other content (Stripe's 24-hour keys); once, then it is held again.
        Assert.Equal(ClaimKind.Began, (await ledger.ClaimAsync("messages:c", "old", "h2", default)).Kind);
        Assert.Equal(ClaimKind.InProgress, (await ledger.ClaimAsync("messages:c", "old", "h2", default)).Kind);
        Assert.Equal(ClaimKind.Mismatch, (await ledger.ClaimAsync("messages:c", "old", "h1", default)).Kind);
        LedgerClaim fresh = await ledger.ClaimAsync("messages:c", "fresh", "h1", default);
        Assert.Equal((ClaimKind.Completed, response), (fresh.Kind, fresh.Response));
    }

    [Fact(Timeout = 60_000)]
    public async Task Claim_WebhookIds_KeptForTheirOwnRetention()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using IRequestLedger ledger = await this.CreateAsync(time, new LedgerRetention(TimeSpan.FromHours(2), TimeSpan.FromMinutes(10)));
        await ledger.ClaimAsync(LedgerRetention.WebhookScope, "msg_1", "h", default);
        await ledger.CompleteAsync(LedgerRetention.WebhookScope, "msg_1", new StoredResponse(202, "{}", null), default);
        await ledger.ClaimAsync("messages:c", "k", "h", default);
        await ledger.CompleteAsync("messages:c", "k", new StoredResponse(202, "{}", null), default);

        time.Advance(TimeSpan.FromMinutes(10) - TimeSpan.FromSeconds(1));
        Assert.Equal(ClaimKind.Completed, (await ledger.ClaimAsync(LedgerRetention.WebhookScope, "msg_1", "h", default)).Kind);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(ClaimKind.Began, (await ledger.ClaimAsync(LedgerRetention.WebhookScope, "msg_1", "h", default)).Kind);
        Assert.Equal(ClaimKind.Completed, (await ledger.ClaimAsync("messages:c", "k", "h", default)).Kind);
    }

    [Fact(Timeout = 60_000)]
    public async Task DeleteExpired_RemovesOnlyExpiredKeys_InBoundedBatches()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using IRequestLedger ledger = await this.CreateAsync(time, new LedgerRetention(TimeSpan.FromHours(2), TimeSpan.FromMinutes(10)));
        var response = new StoredResponse(202, "{}", null);
        foreach (string id in new[] { "msg_1", "msg_2", "msg_3" })
        {
            await ledger.ClaimAsync(LedgerRetention.WebhookScope, id, "h", default);
            await ledger.CompleteAsync(LedgerRetention.WebhookScope, id, response, default);
        }

        await ledger.ClaimAsync("messages:a", "k", "h", default);
        await ledger.CompleteAsync("messages:a", "k", response, default);
        await ledger.ClaimAsync("messages:b", "unfinished", "h", default);
        time.Advance(TimeSpan.FromMinutes(5));
        await ledger.ClaimAsync(LedgerRetention.WebhookScope, "msg_fresh", "h", default);
        await ledger.CompleteAsync(LedgerRetention.WebhookScope, "msg_fresh", response, default);
        Assert.Equal(0, await ledger.DeleteExpiredAsync(10, default));

        time.Advance(TimeSpan.FromMinutes(6));
        Assert.Equal(2, await ledger.DeleteExpiredAsync(2, default));
        Assert.Equal(1, await ledger.DeleteExpiredAsync(2, default));
        Assert.Equal(0, await ledger.DeleteExpiredAsync(2, default));
        // What is kept still answers: the fresh webhook id and the message keys.
        Assert.Equal(ClaimKind.Completed, (await ledger.ClaimAsync(LedgerRetention.WebhookScope, "msg_fresh", "h", default)).Kind);
        Assert.Equal(ClaimKind.Completed, (await ledger.ClaimAsync("messages:a", "k", "h", default)).Kind);

        time.Advance(TimeSpan.FromHours(2));
        // Finished or not (a claim whose holder died), an expired key goes.
        Assert.Equal(3, await ledger.DeleteExpiredAsync(10, default));
        Assert.Equal(0, await ledger.DeleteExpiredAsync(10, default));
        await ledger.CheckAsync(default);
    }

    [Fact(Timeout = 60_000)]
    public async Task ForgetScope_DropsOnlyThatScope()
    {
        await using IRequestLedger ledger = await this.CreateAsync(TimeProvider.System);
        await ledger.ClaimAsync("a", "k", "h", default);
        await ledger.CompleteAsync("a", "k", new StoredResponse(202, "{}", null), default);
        await ledger.ClaimAsync("b", "k", "h", default);
        await ledger.CompleteAsync("b", "k", new StoredResponse(202, "{}", null), default);

        await ledger.ForgetScopeAsync("a", default);

        Assert.Equal(ClaimKind.Began, (await ledger.ClaimAsync("a", "k", "other", default)).Kind);
        Assert.Equal(ClaimKind.Completed, (await ledger.ClaimAsync("b", "k", "h", default)).Kind);
        await ledger.CheckAsync(default);
    }
}

public sealed class SqliteRequestLedgerTests : RequestLedgerContract
{
    private protected override async Task<IRequestLedger> CreateAsync(TimeProvider time, LedgerRetention? retention = null)
    {
        var ledger = new SqliteRequestLedger(Path.Combine(Directory.CreateTempSubdirectory("ledger-").FullName, "o.requests.db"), time, retention);
        await ledger.InitializeAsync(default);
        return ledger;
    }
}

[Collection(AzuriteCollection.Name)]
public sealed class TableRequestLedgerTests(AzuriteFixture azurite) : RequestLedgerContract
{
    private protected override async Task<IRequestLedger> CreateAsync(TimeProvider time, LedgerRetention? retention = null)
    {
        var ledger = new TableRequestLedger(new Azure.Data.Tables.TableServiceClient(azurite.ConnectionString), AzuriteFixture.NewName("ledger"), time, retention);
        await ledger.InitializeAsync(default);
        return ledger;
    }
}

using Microsoft.Extensions.Time.Testing;

namespace Orchestrator.Host.Api.Tests;

/// <summary>The ledger's contract, run on both stores.</summary>
public abstract class RequestLedgerContract
{
    private protected abstract Task<IRequestLedger> CreateAsync(TimeProvider time);

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
    private protected override async Task<IRequestLedger> CreateAsync(TimeProvider time)
    {
        var ledger = new SqliteRequestLedger(Path.Combine(Directory.CreateTempSubdirectory("ledger-").FullName, "o.requests.db"), time);
        await ledger.InitializeAsync(default);
        return ledger;
    }
}

[Collection(AzuriteCollection.Name)]
public sealed class TableRequestLedgerTests(AzuriteFixture azurite) : RequestLedgerContract
{
    private protected override async Task<IRequestLedger> CreateAsync(TimeProvider time)
    {
        var ledger = new TableRequestLedger(new Azure.Data.Tables.TableServiceClient(azurite.ConnectionString), AzuriteFixture.NewName("ledger"), time);
        await ledger.InitializeAsync(default);
        return ledger;
    }
}

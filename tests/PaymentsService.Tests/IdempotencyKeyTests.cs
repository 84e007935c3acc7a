using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;

namespace PaymentsService.Tests;

public sealed class IdempotencyKeyTests
{
    private const string Refund = """{"order_id":"A8472","amount":47.00,"currency":"USD","reason":"damaged"}""";

    private static async Task<(HttpStatusCode Status, string Body, bool Replayed)> ReadAsync(Task<HttpResponseMessage> send)
    {
        using HttpResponseMessage response = await send;
        return (response.StatusCode, await response.Content.ReadAsStringAsync(), response.Headers.TryGetValues("Idempotent-Replayed", out IEnumerable<string>? v) && v.Single() == "true");
    }

    private static string ErrorType(string body)
    {
        using JsonDocument doc = JsonDocument.Parse(body);
        return doc.RootElement.GetProperty("error").GetProperty("type").GetString()!;
    }

    [Fact(Timeout = 30_000)]
    public async Task PostRefund_NewKey_Returns200AndWritesOneLedgerRow()
    {
        await using PaymentsHost host = await PaymentsHost.StartAsync();

        var (status, body, replayed) = await ReadAsync(host.PostAsync("/refunds", "key-1", Refund));

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.False(replayed);
        using JsonDocument doc = JsonDocument.Parse(body);
        Assert.Equal("re_000001", doc.RootElement.GetProperty("id").GetString());
        Assert.Equal("refund", doc.RootElement.GetProperty("object").GetString());
        Assert.Equal("succeeded", doc.RootElement.GetProperty("status").GetString());
        Assert.Equal(47.00m, doc.RootElement.GetProperty("amount").GetDecimal());
        JsonElement row = Assert.Single(await host.LedgerAsync());
        Assert.Equal("A8472", row.GetProperty("order_id").GetString());
        Assert.Equal("key-1", row.GetProperty("idempotency_key").GetString());
        Assert.Equal("refund", row.GetProperty("kind").GetString());
    }

    [Theory(Timeout = 30_000)]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    public async Task Post_MissingKey_Returns400AndWritesNothing(string? key)
    {
        await using PaymentsHost host = await PaymentsHost.StartAsync();

        var (refund, refundBody, _) = await ReadAsync(host.PostAsync("/refunds", key, Refund));
        var (charge, _, _) = await ReadAsync(host.PostAsync("/charges", key, Refund));

        Assert.Equal(HttpStatusCode.BadRequest, refund);
        Assert.Equal(HttpStatusCode.BadRequest, charge);
        Assert.Equal("idempotency_key_missing", ErrorType(refundBody));
        Assert.Empty(await host.LedgerAsync());
    }

    [Fact(Timeout = 30_000)]
    public async Task Post_KeyTooLong_Returns400()
    {
        await using PaymentsHost host = await PaymentsHost.StartAsync();

        var (status, body, _) = await ReadAsync(host.PostAsync("/refunds", new string('k', 256), Refund));

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("idempotency_key_invalid", ErrorType(body));
    }

    [Theory(Timeout = 30_000)]
    [InlineData("{not json")]
    [InlineData("[]")]
    [InlineData("""{"amount":47,"currency":"USD"}""")]
    [InlineData("""{"order_id":"A1","amount":-5,"currency":"USD"}""")]
    [InlineData("""{"order_id":"A1","amount":1.234,"currency":"USD"}""")]
    [InlineData("""{"order_id":"A1","amount":"47","currency":"USD"}""")]
    [InlineData("""{"order_id":"A1","amount":47,"currency":"usd"}""")]
    [InlineData("""{"order_id":"A1","amount":47,"currency":"USD","account":"99812345"}""")]
    public async Task Post_InvalidBody_Returns400AndLeavesTheKeyUnused(string json)
    {
        await using PaymentsHost host = await PaymentsHost.StartAsync();

        var (invalid, body, _) = await ReadAsync(host.PostAsync("/refunds", "key-1", json));
        var (valid, _, replayed) = await ReadAsync(host.PostAsync("/refunds", "key-1", Refund));

        Assert.Equal(HttpStatusCode.BadRequest, invalid);
        Assert.Equal("invalid_request", ErrorType(body));
        Assert.Equal(HttpStatusCode.OK, valid);
        Assert.False(replayed);
        Assert.Single(await host.LedgerAsync());
    }

    [Fact(Timeout = 30_000)]
    public async Task Post_SameKeySameBody_ReplaysTheStoredResponseWithoutASecondEffect()
    {
        var processor = new GatedProcessor();
        processor.Release();
        await using PaymentsHost host = await PaymentsHost.StartAsync(processor);

        var first = await ReadAsync(host.PostAsync("/refunds", "key-1", Refund));
        var second = await ReadAsync(host.PostAsync("/refunds", "key-1", Refund));
        var reordered = await ReadAsync(host.PostAsync("/refunds", "key-1", """{"currency":"USD","reason":"damaged","amount":47,"order_id":"A8472"}"""));

        Assert.Equal(HttpStatusCode.OK, second.Status);
        Assert.Equal(first.Body, second.Body);
        Assert.True(second.Replayed);
        Assert.Equal(first.Body, reordered.Body);
        Assert.True(reordered.Replayed);
        Assert.Equal(1, processor.Calls);
        Assert.Single(await host.LedgerAsync());
    }

    [Fact(Timeout = 30_000)]
    public async Task Post_SameKeyDifferentBody_Returns422AndNoSecondEffect()
    {
        await using PaymentsHost host = await PaymentsHost.StartAsync();
        await ReadAsync(host.PostAsync("/refunds", "key-1", Refund));

        var (status, body, replayed) = await ReadAsync(host.PostAsync("/refunds", "key-1", """{"order_id":"A8472","amount":470.00,"currency":"USD","reason":"damaged"}"""));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.False(replayed);
        Assert.Equal("idempotency_key_reused", ErrorType(body));
        JsonElement row = Assert.Single(await host.LedgerAsync());
        Assert.Equal(47m, row.GetProperty("amount").GetDecimal());
    }

    [Fact(Timeout = 30_000)]
    public async Task Post_SameKeyOnTheOtherEndpoint_Returns422()
    {
        await using PaymentsHost host = await PaymentsHost.StartAsync();
        await ReadAsync(host.PostAsync("/refunds", "key-1", Refund));

        var (status, body, _) = await ReadAsync(host.PostAsync("/charges", "key-1", Refund));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.Equal("idempotency_key_reused", ErrorType(body));
        Assert.Equal("refund", Assert.Single(await host.LedgerAsync()).GetProperty("kind").GetString());
    }

    [Fact(Timeout = 30_000)]
    public async Task Post_SameKeyStillInFlight_Returns409ThenTheRetryGetsTheOneResult()
    {
        var processor = new GatedProcessor();
        await using PaymentsHost host = await PaymentsHost.StartAsync(processor);
        Task<(HttpStatusCode Status, string Body, bool Replayed)> first = ReadAsync(host.PostAsync("/refunds", "key-1", Refund));
        await processor.Entered.WaitAsync(TimeSpan.FromSeconds(10));

        using HttpResponseMessage conflict = await host.PostAsync("/refunds", "key-1", Refund);
        processor.Release();
        var done = await first.WaitAsync(TimeSpan.FromSeconds(10));
        var retry = await ReadAsync(host.PostAsync("/refunds", "key-1", Refund));

        Assert.Equal(HttpStatusCode.Conflict, conflict.StatusCode);
        Assert.Equal("idempotency_request_in_flight", ErrorType(await conflict.Content.ReadAsStringAsync()));
        Assert.NotNull(conflict.Headers.RetryAfter);
        Assert.Equal(HttpStatusCode.OK, done.Status);
        Assert.Equal(done.Body, retry.Body);
        Assert.True(retry.Replayed);
        Assert.Equal(1, processor.Calls);
        Assert.Single(await host.LedgerAsync());
    }

    [Fact(Timeout = 60_000)]
    public async Task Post_ConcurrentSameKey_ExactlyOneLedgerRowAndOneBody()
    {
        await using PaymentsHost host = await PaymentsHost.StartAsync();
        const int Requests = 16;

        var results = await Task.WhenAll(Enumerable.Range(0, Requests).Select(_ => Task.Run(() => ReadAsync(host.PostAsync("/charges", "same-key", Refund)))));

        Assert.Single(await host.LedgerAsync());
        Assert.Single(results, r => r.Status == HttpStatusCode.OK && !r.Replayed);
        Assert.All(results, r => Assert.True(r.Status is HttpStatusCode.OK or HttpStatusCode.Conflict, r.Status + " " + r.Body));
        Assert.Single(results.Where(r => r.Status == HttpStatusCode.OK).Select(r => r.Body).Distinct());
    }

    [Fact(Timeout = 60_000)]
    public async Task Post_ConcurrentSameKeyWhileProcessing_OthersGet409AndOneEffect()
    {
        var processor = new GatedProcessor();
        await using PaymentsHost host = await PaymentsHost.StartAsync(processor);
        Task<(HttpStatusCode Status, string Body, bool Replayed)> holder = ReadAsync(host.PostAsync("/refunds", "k", Refund));
        await processor.Entered.WaitAsync(TimeSpan.FromSeconds(10));

        var contenders = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => Task.Run(() => ReadAsync(host.PostAsync("/refunds", "k", Refund)))));
        processor.Release();
        var won = await holder.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.All(contenders, c => Assert.Equal(HttpStatusCode.Conflict, c.Status));
        Assert.Equal(HttpStatusCode.OK, won.Status);
        Assert.Equal(1, processor.Calls);
        Assert.Single(await host.LedgerAsync());
    }

    [Fact(Timeout = 30_000)]
    public async Task Post_DifferentKeys_EachMakesItsOwnEffect()
    {
        await using PaymentsHost host = await PaymentsHost.StartAsync();

        await Task.WhenAll(Enumerable.Range(0, 8).Select(i => ReadAsync(host.PostAsync("/charges", "key-" + i, Refund))));

        Assert.Equal(8, (await host.LedgerAsync()).Length);
    }

    [Fact(Timeout = 30_000)]
    public async Task Post_Declined_Stores402AndReplaysItWithoutAnEffect()
    {
        await using PaymentsHost host = await PaymentsHost.StartAsync();
        const string Big = """{"order_id":"A1","amount":20000,"currency":"USD"}""";

        var first = await ReadAsync(host.PostAsync("/refunds", "big", Big));
        var again = await ReadAsync(host.PostAsync("/refunds", "big", Big));

        Assert.Equal(HttpStatusCode.PaymentRequired, first.Status);
        Assert.Equal("refund_limit_exceeded", ErrorType(first.Body));
        Assert.Equal(HttpStatusCode.PaymentRequired, again.Status);
        Assert.Equal(first.Body, again.Body);
        Assert.True(again.Replayed);
        Assert.Empty(await host.LedgerAsync());
    }

    [Fact(Timeout = 30_000)]
    public async Task Post_ProcessorFails_Returns500AndTheRetryWithTheKeyRuns()
    {
        var processor = new FailOnceProcessor();
        await using PaymentsHost host = await PaymentsHost.StartAsync(processor);

        var failed = await ReadAsync(host.PostAsync("/refunds", "key-1", Refund));
        Assert.Empty(await host.LedgerAsync());
        var retried = await ReadAsync(host.PostAsync("/refunds", "key-1", Refund));

        Assert.Equal(HttpStatusCode.InternalServerError, failed.Status);
        Assert.Equal(HttpStatusCode.OK, retried.Status);
        Assert.False(retried.Replayed);
        Assert.Equal(2, processor.Calls);
        Assert.Single(await host.LedgerAsync());
    }

    [Fact(Timeout = 30_000)]
    public async Task Post_InFlightLeaseExpired_IsTakenOverAndTheStaleHolderWritesNothing()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2025-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var processor = new GatedProcessor { OnlyFirstWaits = true };
        await using PaymentsHost host = await PaymentsHost.StartAsync(processor, clock);
        Task<(HttpStatusCode Status, string Body, bool Replayed)> stale = ReadAsync(host.PostAsync("/refunds", "key-1", Refund));
        await processor.Entered.WaitAsync(TimeSpan.FromSeconds(10));

        var beforeExpiry = await ReadAsync(host.PostAsync("/refunds", "key-1", Refund));
        clock.Advance(TimeSpan.FromSeconds(31));
        var takeover = await ReadAsync(host.PostAsync("/refunds", "key-1", Refund));
        processor.Release();
        var staleResult = await stale.WaitAsync(TimeSpan.FromSeconds(10));
        var replay = await ReadAsync(host.PostAsync("/refunds", "key-1", Refund));

        Assert.Equal(HttpStatusCode.Conflict, beforeExpiry.Status);
        Assert.Equal(HttpStatusCode.OK, takeover.Status);
        Assert.Equal(HttpStatusCode.Conflict, staleResult.Status);
        Assert.Equal(takeover.Body, replay.Body);
        Assert.True(replay.Replayed);
        Assert.Single(await host.LedgerAsync());
    }

    [Fact(Timeout = 30_000)]
    public async Task Post_BodyTooLarge_Returns413()
    {
        await using PaymentsHost host = await PaymentsHost.StartAsync();

        var (status, _, _) = await ReadAsync(host.PostAsync("/refunds", "k", "{\"reason\":\"" + new string('x', 20_000) + "\"}"));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
    }
}

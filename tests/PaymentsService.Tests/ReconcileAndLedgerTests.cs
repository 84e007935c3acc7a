using System.Net;
using System.Text.Json;

namespace PaymentsService.Tests;

public sealed class ReconcileAndLedgerTests
{
    private const string Refund = """{"order_id":"A8472","amount":47.00,"currency":"USD"}""";

    private static async Task<(HttpStatusCode Status, JsonElement Body)> GetAsync(PaymentsHost host, string path)
    {
        using HttpResponseMessage response = await host.Client.GetAsync(path);
        using JsonDocument doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return (response.StatusCode, doc.RootElement.Clone());
    }

    [Fact(Timeout = 30_000)]
    public async Task GetRefunds_CompletedKey_ReportsTheEffectAndStoredResponse()
    {
        await using PaymentsHost host = await PaymentsHost.StartAsync();
        using HttpResponseMessage posted = await host.PostAsync("/refunds", "key-1", Refund);

        var (status, body) = await GetAsync(host, "/refunds?key=key-1");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("completed", body.GetProperty("state").GetString());
        Assert.Equal(200, body.GetProperty("status_code").GetInt32());
        Assert.Equal("re_000001", body.GetProperty("effect").GetProperty("id").GetString());
        Assert.Equal("re_000001", body.GetProperty("response").GetProperty("id").GetString());
    }

    [Fact(Timeout = 30_000)]
    public async Task GetRefunds_UnknownKey_Returns404Unknown()
    {
        await using PaymentsHost host = await PaymentsHost.StartAsync();

        var (status, body) = await GetAsync(host, "/refunds?key=never-sent");

        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Equal("unknown", body.GetProperty("state").GetString());
    }

    [Fact(Timeout = 30_000)]
    public async Task GetCharges_KeyOfARefund_Returns404()
    {
        await using PaymentsHost host = await PaymentsHost.StartAsync();
        using HttpResponseMessage posted = await host.PostAsync("/refunds", "key-1", Refund);

        var (status, _) = await GetAsync(host, "/charges?key=key-1");

        Assert.Equal(HttpStatusCode.NotFound, status);
    }

    [Fact(Timeout = 30_000)]
    public async Task GetRefunds_NoKey_Returns400()
    {
        await using PaymentsHost host = await PaymentsHost.StartAsync();

        var (status, body) = await GetAsync(host, "/refunds");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("key_missing", body.GetProperty("error").GetProperty("type").GetString());
    }

    [Fact(Timeout = 30_000)]
    public async Task GetRefunds_InFlightKey_ReportsInFlightWithoutEffect()
    {
        var processor = new GatedProcessor();
        await using PaymentsHost host = await PaymentsHost.StartAsync(processor);
        Task<HttpResponseMessage> pending = host.PostAsync("/refunds", "key-1", Refund);
        await processor.Entered.WaitAsync(TimeSpan.FromSeconds(10));

        var (status, body) = await GetAsync(host, "/refunds?key=key-1");
        processor.Release();
        (await pending.WaitAsync(TimeSpan.FromSeconds(10))).Dispose();

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("in_flight", body.GetProperty("state").GetString());
        Assert.Equal(JsonValueKind.Null, body.GetProperty("effect").ValueKind);
    }

    [Fact(Timeout = 30_000)]
    public async Task GetRefunds_DeclinedKey_ReportsCompletedWithoutEffect()
    {
        await using PaymentsHost host = await PaymentsHost.StartAsync();
        using HttpResponseMessage posted = await host.PostAsync("/refunds", "big", """{"order_id":"A1","amount":50000,"currency":"USD"}""");

        var (status, body) = await GetAsync(host, "/refunds?key=big");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(402, body.GetProperty("status_code").GetInt32());
        Assert.Equal(JsonValueKind.Null, body.GetProperty("effect").ValueKind);
    }

    [Fact(Timeout = 30_000)]
    public async Task GetLedger_ListsEffectsInOrderAndFiltersByOrder()
    {
        await using PaymentsHost host = await PaymentsHost.StartAsync();
        (await host.PostAsync("/refunds", "k1", Refund)).Dispose();
        (await host.PostAsync("/charges", "k2", """{"order_id":"B1","amount":12.5,"currency":"EUR"}""")).Dispose();
        (await host.PostAsync("/refunds", "k3", """{"order_id":"A8472","amount":3,"currency":"USD"}""")).Dispose();

        JsonElement[] all = await host.LedgerAsync();
        JsonElement[] forA = await host.LedgerAsync("A8472");

        Assert.Equal(["re_000001", "ch_000002", "re_000003"], all.Select(e => e.GetProperty("id").GetString()));
        Assert.Equal(12.5m, all[1].GetProperty("amount").GetDecimal());
        Assert.Equal("EUR", all[1].GetProperty("currency").GetString());
        Assert.Equal(["k1", "k3"], forA.Select(e => e.GetProperty("idempotency_key").GetString()));
    }
}

using System.Text.Json;

namespace SupportDesk;

/// <summary>One effect in the payments service's ledger (<c>GET /ledger</c>).</summary>
/// <param name="Id">The refund or charge id.</param>
/// <param name="Kind">refund or charge.</param>
/// <param name="OrderId">The order.</param>
/// <param name="Amount">The amount.</param>
/// <param name="Currency">The currency.</param>
/// <param name="IdempotencyKey">The key it was made under.</param>
public sealed record LedgerEffect(string Id, string Kind, string OrderId, decimal Amount, string Currency, string IdempotencyKey);

/// <summary>Reads the payments service's ledger: what effects really happened.</summary>
public static class PaymentsLedger
{
    /// <summary>Every effect in the ledger, in order.</summary>
    /// <param name="payments">A client whose base address is the payments service.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    public static async Task<IReadOnlyList<LedgerEffect>> ReadAsync(HttpClient payments, CancellationToken cancellationToken)
    {
        Uri url = new(SupportDeskHandlers.PaymentsBase(payments), "ledger");
        string json = await payments.GetStringAsync(url, cancellationToken).ConfigureAwait(false);
        using JsonDocument doc = JsonDocument.Parse(json);
        return [.. doc.RootElement.GetProperty("entries").EnumerateArray().Select(e => new LedgerEffect(
            e.GetProperty("id").GetString()!,
            e.GetProperty("kind").GetString()!,
            e.GetProperty("order_id").GetString()!,
            e.GetProperty("amount").GetDecimal(),
            e.GetProperty("currency").GetString()!,
            e.GetProperty("idempotency_key").GetString()!))];
    }
}

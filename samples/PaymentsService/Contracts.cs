using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace PaymentsService;

/// <summary>Refund or charge.</summary>
internal enum PaymentKind
{
    Refund,
    Charge,
}

/// <summary>A validated refund or charge request.</summary>
internal sealed record PaymentRequest(string OrderId, decimal Amount, string Currency, string? Reason);

/// <summary>One effect in the ledger.</summary>
internal sealed record LedgerEntry(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("kind")] string Kind,
    [property: JsonPropertyName("order_id")] string OrderId,
    [property: JsonPropertyName("amount")] decimal Amount,
    [property: JsonPropertyName("currency")] string Currency,
    [property: JsonPropertyName("reason")] string? Reason,
    [property: JsonPropertyName("idempotency_key")] string IdempotencyKey,
    [property: JsonPropertyName("created_at")] DateTimeOffset CreatedAt);

/// <summary>Parsing, validation and the canonical form that decides "same body".</summary>
internal static class PaymentJson
{
    public const int MaxBodyBytes = 16 * 1024;
    public const int MaxKeyLength = 255;
    private static readonly string[] Allowed = ["order_id", "amount", "currency", "reason"];

    public static JsonSerializerOptions Options { get; } = new() { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    public static string Error(string type, string message) =>
        new JsonObject { ["error"] = new JsonObject { ["type"] = type, ["message"] = message } }.ToJsonString();

    /// <summary>Parses and validates a body; on failure returns the message for a 400.</summary>
    public static PaymentRequest? Parse(string body, out JsonObject? node, out string? error)
    {
        node = null;
        try
        {
            node = JsonNode.Parse(body) as JsonObject;
        }
        catch (JsonException)
        {
            // Fall through: reported below as not a JSON object.
        }

        if (node is null)
        {
            error = "The body must be a JSON object.";
            return null;
        }

        string? unknown = node.Select(p => p.Key).FirstOrDefault(k => !Allowed.Contains(k));
        if (unknown is not null)
        {
            error = $"Unknown parameter '{unknown}'.";
            return null;
        }

        if (node["order_id"] is not JsonValue o || o.GetValueKind() != JsonValueKind.String || o.GetValue<string>().Trim().Length is 0 or > 64)
        {
            error = "order_id is required: a string of 1 to 64 characters.";
            return null;
        }

        if (node["amount"] is not JsonValue a || a.GetValueKind() != JsonValueKind.Number || !a.TryGetValue(out decimal amount) || amount <= 0 || amount > 1_000_000 || decimal.Round(amount, 2) != amount)
        {
            error = "amount is required: a positive number with at most two decimals, up to 1000000.";
            return null;
        }

        if (node["currency"] is not JsonValue c || c.GetValueKind() != JsonValueKind.String || c.GetValue<string>() is not { Length: 3 } currency || !currency.All(char.IsAsciiLetterUpper))
        {
            error = "currency is required: an ISO 4217 code such as USD.";
            return null;
        }

        string? reason = null;
        if (node["reason"] is JsonNode r)
        {
            if (r.GetValueKind() != JsonValueKind.String || r.GetValue<string>().Length > 500)
            {
                error = "reason must be a string of at most 500 characters.";
                return null;
            }

            reason = r.GetValue<string>();
        }

        error = null;
        return new PaymentRequest(o.GetValue<string>(), amount, currency, reason);
    }

    /// <summary>
    /// The fingerprint of a request: the operation and the body with members sorted and numbers normalized, so that
    /// member order or <c>47</c> vs <c>47.00</c> do not make a retry look like a different request.
    /// </summary>
    public static string Fingerprint(PaymentKind kind, JsonObject body)
    {
        var sb = new StringBuilder(kind.ToString()).Append('\n');
        foreach (KeyValuePair<string, JsonNode?> p in body.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            sb.Append(JsonSerializer.Serialize(p.Key)).Append(':');
            sb.Append(p.Value switch
            {
                JsonValue v when v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out decimal d) =>
                    (d / 1.000000000000000000000000000000000m).ToString(CultureInfo.InvariantCulture),
                null => "null",
                _ => p.Value.ToJsonString(),
            }).Append(',');
        }

        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())));
    }
}

using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http.HttpResults;

namespace PaymentsService;

/// <summary>The HTTP surface: <c>POST /refunds</c>, <c>POST /charges</c>, <c>GET /refunds?key=</c>, <c>GET /charges?key=</c>, <c>GET /ledger</c>.</summary>
internal static class PaymentEndpoints
{
    public static void MapPayments(this IEndpointRouteBuilder app)
    {
        app.MapPost("/refunds", (HttpContext http, IdempotentPayments payments) => PostAsync(PaymentKind.Refund, http, payments));
        app.MapPost("/charges", (HttpContext http, IdempotentPayments payments) => PostAsync(PaymentKind.Charge, http, payments));
        app.MapGet("/refunds", (string? key, Ledger ledger, CancellationToken ct) => ReconcileAsync(PaymentKind.Refund, key, ledger, ct));
        app.MapGet("/charges", (string? key, Ledger ledger, CancellationToken ct) => ReconcileAsync(PaymentKind.Charge, key, ledger, ct));
        app.MapGet("/ledger", ListAsync);
        app.MapGet("/health", () => TypedResults.Ok("ok"));
    }

    private static async Task PostAsync(PaymentKind kind, HttpContext http, IdempotentPayments payments)
    {
        CancellationToken ct = http.RequestAborted;
        string? body = await ReadBodyAsync(http.Request, ct);
        PaymentResponse response = body is null
            ? new(413, PaymentJson.Error("body_too_large", $"The body must be at most {PaymentJson.MaxBodyBytes} bytes."))
            : await payments.HandleAsync(kind, http.Request.Headers["Idempotency-Key"].FirstOrDefault(), body, ct);
        if (response.Replayed)
        {
            http.Response.Headers["Idempotent-Replayed"] = "true";
        }

        if (response.RetryAfterSeconds is int seconds)
        {
            http.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        http.Response.StatusCode = response.StatusCode;
        http.Response.ContentType = "application/json";
        await http.Response.WriteAsync(response.Body, CancellationToken.None);
    }

    private static async Task<string?> ReadBodyAsync(HttpRequest request, CancellationToken ct)
    {
        if (request.ContentLength > PaymentJson.MaxBodyBytes)
        {
            return null;
        }

        using var buffer = new MemoryStream();
        byte[] chunk = new byte[4096];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, ct)) > 0)
        {
            if (buffer.Length + read > PaymentJson.MaxBodyBytes)
            {
                return null;
            }

            buffer.Write(chunk, 0, read);
        }

        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    /// <summary>Whether the effect under <paramref name="key"/> happened: what an orchestrator asks about an in-doubt call.</summary>
    private static async Task<Results<ContentHttpResult, NotFound<JsonObject>, BadRequest<JsonObject>>> ReconcileAsync(PaymentKind kind, string? key, Ledger ledger, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(key))
        {
            return TypedResults.BadRequest(JsonNode.Parse(PaymentJson.Error("key_missing", "Give the Idempotency-Key as ?key=."))!.AsObject());
        }

        IdempotencyRecord? record = await ledger.FindAsync(key, ct);
        if (record is null || record.Kind != kind)
        {
            return TypedResults.NotFound(new JsonObject { ["key"] = key, ["state"] = "unknown", ["effect"] = null });
        }

        LedgerEntry? effect = (await ledger.ListAsync(null, key, ct)).SingleOrDefault();
        var result = new JsonObject
        {
            ["key"] = key,
            ["state"] = record.Completed ? "completed" : "in_flight",
            ["status_code"] = record.StatusCode,
            ["effect"] = effect is null ? null : JsonSerializer.SerializeToNode(effect, PaymentJson.Options),
            ["response"] = record.ResponseBody is null ? null : JsonNode.Parse(record.ResponseBody),
        };
        return TypedResults.Content(result.ToJsonString(), "application/json", Encoding.UTF8, 200);
    }

    private static async Task<ContentHttpResult> ListAsync(string? order_id, Ledger ledger, CancellationToken ct)
    {
        IReadOnlyList<LedgerEntry> entries = await ledger.ListAsync(order_id, null, ct);
        return TypedResults.Content(JsonSerializer.Serialize(new { entries }, PaymentJson.Options), "application/json", Encoding.UTF8, 200);
    }
}

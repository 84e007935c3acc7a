using System.Text.Json;
using System.Text.Json.Nodes;

namespace PaymentsService;

/// <summary>What the card network said.</summary>
internal sealed record ProcessorOutcome(bool Approved, string? DeclineCode = null, string? DeclineMessage = null);

/// <summary>The external step of a payment (the card network); tests replace it to hold a request in flight.</summary>
internal interface IPaymentProcessor
{
    Task<ProcessorOutcome> ProcessAsync(PaymentKind kind, PaymentRequest request, string idempotencyKey, CancellationToken cancellationToken);
}

/// <summary>A card network that takes <see cref="PaymentsOptions.ProcessingDelay"/> and declines amounts over the limit.</summary>
internal sealed class SimulatedCardNetwork(PaymentsOptions options, TimeProvider time) : IPaymentProcessor
{
    public async Task<ProcessorOutcome> ProcessAsync(PaymentKind kind, PaymentRequest request, string idempotencyKey, CancellationToken cancellationToken)
    {
        if (options.ProcessingDelay > TimeSpan.Zero)
        {
            await Task.Delay(options.ProcessingDelay, time, cancellationToken).ConfigureAwait(false);
        }

        return request.Amount > options.DeclineAbove
            ? new ProcessorOutcome(false, kind == PaymentKind.Refund ? "refund_limit_exceeded" : "card_declined", $"Amounts above {options.DeclineAbove} are declined.")
            : new ProcessorOutcome(true);
    }
}

/// <summary>The answer to one POST: status, JSON body, and whether it is a replay of a stored response.</summary>
internal sealed record PaymentResponse(int StatusCode, string Body, bool Replayed = false, int? RetryAfterSeconds = null);

/// <summary>
/// The idempotency rules of <c>POST /refunds</c> and <c>POST /charges</c>, as payment APIs apply them: a key names one
/// request; the first claims it (insert-if-absent), its outcome is stored with its effect in one transaction, and a
/// retry gets that stored response; a different body under the key is refused (422), and so is a retry while the
/// first is still running (409).
/// </summary>
internal sealed class IdempotentPayments(Ledger ledger, IPaymentProcessor processor, PaymentsOptions options, TimeProvider time)
{
    public async Task<PaymentResponse> HandleAsync(PaymentKind kind, string? idempotencyKey, string body, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(idempotencyKey))
        {
            return new(400, PaymentJson.Error("idempotency_key_missing", "An Idempotency-Key header is required."));
        }

        if (idempotencyKey.Length > PaymentJson.MaxKeyLength)
        {
            return new(400, PaymentJson.Error("idempotency_key_invalid", $"The Idempotency-Key must be at most {PaymentJson.MaxKeyLength} characters."));
        }

        // Requests that fail validation never reach the key: nothing started, so nothing is stored (as payment APIs do).
        PaymentRequest? request = PaymentJson.Parse(body, out JsonObject? node, out string? error);
        if (request is null)
        {
            return new(400, PaymentJson.Error("invalid_request", error!));
        }

        string fingerprint = PaymentJson.Fingerprint(kind, node!);
        DateTimeOffset now = time.GetUtcNow();
        string token = Guid.CreateVersion7(now).ToString("N");
        if (!await ledger.TryClaimAsync(idempotencyKey, kind, fingerprint, token, now, now + options.InFlightLease, cancellationToken).ConfigureAwait(false))
        {
            IdempotencyRecord? existing = await ledger.FindAsync(idempotencyKey, cancellationToken).ConfigureAwait(false);
            if (existing is null)
            {
                // The holder released the key between our insert and our read: the client may simply retry.
                return Conflict();
            }

            if (existing.Fingerprint != fingerprint)
            {
                return new(422, PaymentJson.Error("idempotency_key_reused", "This Idempotency-Key was already used with a different request; use a new key for a new request."));
            }

            if (existing.Completed)
            {
                return new(existing.StatusCode!.Value, existing.ResponseBody!, Replayed: true);
            }

            if (existing.LockedUntil > now ||
                !await ledger.TryTakeOverAsync(idempotencyKey, existing.ClaimToken, token, now, now + options.InFlightLease, cancellationToken).ConfigureAwait(false))
            {
                return Conflict();
            }
        }

        // The key is ours. From here on the client going away must not stop the request half-way: the outcome is
        // stored either way so that its retry gets it.
        ProcessorOutcome outcome;
        try
        {
            outcome = await processor.ProcessAsync(kind, request, idempotencyKey, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // No effect happened: give the key back so that a retry with it runs the request again.
            await ledger.ReleaseAsync(idempotencyKey, token, CancellationToken.None).ConfigureAwait(false);
            return new(500, PaymentJson.Error("processing_error", "The payment could not be processed; retry with the same Idempotency-Key."));
        }

        int status = outcome.Approved ? 200 : 402;
        string? stored = await ledger.CompleteAsync(
            idempotencyKey,
            token,
            kind,
            outcome.Approved ? request : null,
            status,
            entry => entry is not null
                ? JsonSerializer.Serialize(new PaymentResult(entry.Id, entry.Kind, "succeeded", entry.OrderId, entry.Amount, entry.Currency, entry.Reason, entry.CreatedAt), PaymentJson.Options)
                : PaymentJson.Error(outcome.DeclineCode ?? "declined", outcome.DeclineMessage ?? "The payment was declined."),
            time.GetUtcNow(),
            CancellationToken.None).ConfigureAwait(false);
        return stored is null
            ? Conflict() // our lease ran out and another request took the key over; it will store the one outcome
            : new(status, stored);
    }

    private static PaymentResponse Conflict() =>
        new(409, PaymentJson.Error("idempotency_request_in_flight", "A request with this Idempotency-Key is still being processed; retry later."), RetryAfterSeconds: 1);
}

/// <summary>The body of a successful refund or charge.</summary>
internal sealed record PaymentResult(
    [property: System.Text.Json.Serialization.JsonPropertyName("id")] string Id,
    [property: System.Text.Json.Serialization.JsonPropertyName("object")] string Object,
    [property: System.Text.Json.Serialization.JsonPropertyName("status")] string Status,
    [property: System.Text.Json.Serialization.JsonPropertyName("order_id")] string OrderId,
    [property: System.Text.Json.Serialization.JsonPropertyName("amount")] decimal Amount,
    [property: System.Text.Json.Serialization.JsonPropertyName("currency")] string Currency,
    [property: System.Text.Json.Serialization.JsonPropertyName("reason")] string? Reason,
    [property: System.Text.Json.Serialization.JsonPropertyName("created_at")] DateTimeOffset CreatedAt);

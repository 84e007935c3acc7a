using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Orchestrator.Agents;

namespace Orchestrator.Host.Api;

/// <summary>
/// The confirmation webhook: a decision signed as Standard Webhooks specifies. The signature is checked before anything
/// else; the <c>webhook-id</c> is deduplicated durably: a delivery repeated with the same id and body gets the first
/// response again (header <c>Idempotent-Replayed: true</c>) and changes nothing, the same id with another body is refused.
/// </summary>
internal static class WebhookEndpoints
{
    public const int MaxBodyBytes = 64 * 1024;

    public static IEndpointRouteBuilder MapWebhookEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/conversations/{conversationId}/confirmations/{toolCallId}", ReceiveAsync)
            .WithTags("Webhooks")
            .WithName("ConfirmationWebhook")
            .WithSummary("Decides a pending confirmation of the conversation's current turn. Signed (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature).")
            .Accepts<DecisionRequest>("application/json")
            .Produces<DecisionAccepted>(StatusCodes.Status202Accepted)
            .ProducesProblem(400).ProducesProblem(401).ProducesProblem(404).ProducesProblem(409).ProducesProblem(410).ProducesProblem(413).ProducesProblem(422);
        return app;
    }

    private static async Task<IResult> ReceiveAsync(
        string conversationId,
        string toolCallId,
        HttpContext http,
        StandardWebhookVerifier verifier,
        ConversationRuntime runtime,
        ConfirmationDecider decider,
        CancellationToken cancellationToken)
    {
        if (http.Request.ContentLength > MaxBodyBytes)
        {
            return ApiResponses.Problem(http, 413, "Too large", $"The body is over {MaxBodyBytes} bytes.");
        }

        byte[] body;
        using (var buffer = new MemoryStream())
        {
            await http.Request.Body.CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (buffer.Length > MaxBodyBytes)
            {
                return ApiResponses.Problem(http, 413, "Too large", $"The body is over {MaxBodyBytes} bytes.");
            }

            body = buffer.ToArray();
        }

        string? id = http.Request.Headers["webhook-id"];
        if (!verifier.IsConfigured)
        {
            return ApiResponses.Problem(http, 401, "Unauthorized", "No confirmation webhook secret is configured (Webhooks:ConfirmationSecrets): every delivery is refused.");
        }

        switch (verifier.Verify(id, http.Request.Headers["webhook-timestamp"], http.Request.Headers["webhook-signature"], body))
        {
            case WebhookVerification.MissingHeaders:
                return ApiResponses.Problem(http, 401, "Unsigned", "webhook-id, webhook-timestamp and webhook-signature are required.");
            case WebhookVerification.MalformedTimestamp:
                return ApiResponses.Problem(http, 400, "Bad timestamp", "webhook-timestamp must be whole seconds since the Unix epoch.");
            case WebhookVerification.TimestampOutOfTolerance:
                return ApiResponses.Problem(http, 401, "Stale or future timestamp", $"webhook-timestamp is more than {StandardWebhookVerifier.Tolerance.TotalMinutes} minutes from now.");
            case WebhookVerification.NoMatchingSignature:
                return ApiResponses.Problem(http, 401, "Bad signature", "No v1 signature matches a configured secret.");
        }

        const string scope = LedgerRetention.WebhookScope;
        LedgerClaim claim = await runtime.Ledger.ClaimAsync(scope, id!, RequestHash.Of(conversationId, toolCallId, Convert.ToBase64String(body)), cancellationToken).ConfigureAwait(false);
        switch (claim.Kind)
        {
            case ClaimKind.Completed:
                return claim.Response!.ToResult(http, replayed: true);
            case ClaimKind.Mismatch:
                return ApiResponses.Problem(http, 422, "webhook-id reused", "This webhook-id was already delivered with another payload; nothing was changed.");
            case ClaimKind.InProgress:
                http.Response.Headers.RetryAfter = "1";
                return ApiResponses.Problem(http, 409, "Delivery in progress", "A delivery with this webhook-id is being handled; retry shortly.");
        }

        StoredResponse response;
        try
        {
            response = await DecideAsync(conversationId, toolCallId, body, runtime, decider, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await runtime.Ledger.ReleaseAsync(scope, id!, CancellationToken.None).ConfigureAwait(false);
            throw;
        }

        // A final answer is kept for retries of the delivery; "not pending (yet)" is not final: a retry may find the call waiting.
        if (response.Status is >= 200 and < 300 or 400 or 409 or 410 or 422)
        {
            await runtime.Ledger.CompleteAsync(scope, id!, response, CancellationToken.None).ConfigureAwait(false);
        }
        else
        {
            await runtime.Ledger.ReleaseAsync(scope, id!, CancellationToken.None).ConfigureAwait(false);
        }

        return response.ToResult(http);
    }

    private static async Task<StoredResponse> DecideAsync(string conversationId, string toolCallId, byte[] body, ConversationRuntime runtime, ConfirmationDecider decider, CancellationToken cancellationToken)
    {
        DecisionRequest? request;
        try
        {
            request = JsonSerializer.Deserialize<DecisionRequest>(body, ApiResponses.Json);
        }
        catch (JsonException ex)
        {
            return ApiResponses.Problem(400, "Bad request", $"The body is not a decision: {ex.Message}");
        }

        var conversation = await ConversationEndpoints.GetConversationAsync(runtime, conversationId, cancellationToken).ConfigureAwait(false);
        string? turnId = conversation?.ReadCustomStatusAs<ConversationStatus>()?.CurrentTurnInstanceId;
        if (turnId is null)
        {
            return ApiResponses.Problem(404, "Not pending", $"No turn of conversation '{conversationId}' is waiting for a confirmation.");
        }

        return await decider.DecideAsync(turnId, toolCallId, request, cancellationToken).ConfigureAwait(false);
    }
}

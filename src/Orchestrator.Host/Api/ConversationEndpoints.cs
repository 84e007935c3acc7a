using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Orchestrator.Agents;
using Orchestrator.Agents.Models;
using Orchestrator.Durable;
using Orchestrator.Durable.History;

namespace Orchestrator.Host.Api;

/// <summary>The conversation endpoints: send a message (HTTP trigger), status, history, transcript, confirmations, terminate, purge.</summary>
internal static class ConversationEndpoints
{
    public const string IdempotencyKeyHeader = "Idempotency-Key";
    private const int MaxIdempotencyKeyLength = 255;

    public static RouteGroupBuilder MapConversationEndpoints(this IEndpointRouteBuilder app)
    {
        RouteGroupBuilder group = app.MapGroup("/api/conversations/{conversationId}").WithTags("Conversations");
        group.MapPost("/messages", SendMessageAsync)
            .WithName("SendMessage")
            .WithSummary("Starts the conversation if new, or queues the message; answers 202 with the URLs to follow it.")
            .Accepts<MessageRequest>("application/json")
            .Produces<CheckStatusResponse>(StatusCodes.Status202Accepted)
            .ProducesProblem(400).ProducesProblem(401).ProducesProblem(403).ProducesProblem(409).ProducesProblem(422);

        RouteGroupBuilder scoped = group.MapGroup(string.Empty).AddEndpointFilter(RequireConversationAccessAsync);
        scoped.MapGet("/", GetStatusAsync).WithName("GetConversationStatus")
            .WithSummary("Runtime status, current turn (phase, plan, pending confirmations), last result.")
            .Produces<JsonObject>().ProducesProblem(401).ProducesProblem(403).ProducesProblem(404);
        scoped.MapGet("/history", GetHistoryAsync).WithName("GetConversationHistory")
            .WithSummary("The engine's recorded events of the conversation and of each of its turns (sensitive arguments redacted).")
            .Produces<JsonObject>().ProducesProblem(401).ProducesProblem(403).ProducesProblem(404);
        scoped.MapGet("/transcript", GetTranscriptAsync).WithName("GetConversationTranscript")
            .WithSummary("The conversation's messages after its finished turns (sensitive arguments redacted).")
            .Produces<JsonObject>().ProducesProblem(401).ProducesProblem(403).ProducesProblem(404);
        scoped.MapGet("/confirmations", GetConfirmationsAsync).WithName("GetConversationConfirmations")
            .WithSummary("Confirmations the conversation's current turn waits for.")
            .Produces<ConfirmationItem[]>().ProducesProblem(401).ProducesProblem(403).ProducesProblem(404);
        scoped.MapPost("/terminate", TerminateAsync).WithName("TerminateConversation")
            .WithSummary("Terminates the conversation and its running turn.")
            .Produces(StatusCodes.Status202Accepted).ProducesProblem(401).ProducesProblem(403).ProducesProblem(404).ProducesProblem(409);
        scoped.MapDelete("/", PurgeAsync).WithName("PurgeConversation")
            .WithSummary("Deletes a finished conversation and its turns with their history.")
            .Produces<JsonObject>().ProducesProblem(401).ProducesProblem(403).ProducesProblem(404).ProducesProblem(409);
        return group;
    }

    /// <summary>The conversation's URLs, as absolute URIs under <paramref name="baseUri"/> (empty for relative ones).</summary>
    public static CheckStatusResponse CheckStatus(string baseUri, string conversationId, bool started, AccessKeys keys)
    {
        string token = keys.TokenFor(conversationId);
        string root = $"{baseUri}/api/conversations/{Uri.EscapeDataString(conversationId)}";
        string q = $"?{AccessKeys.ConversationTokenQuery}={token}";
        return new CheckStatusResponse(
            conversationId,
            conversationId,
            started,
            root + q,
            root + "/history" + q,
            root + "/transcript" + q,
            root + "/confirmations" + q,
            root + "/confirmations/{toolCallId}",
            root + "/messages" + q,
            root + "/terminate" + q,
            root + q,
            token);
    }

    private static async ValueTask<object?> RequireConversationAccessAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        HttpContext http = context.HttpContext;
        string conversationId = http.GetRouteValue("conversationId") as string ?? string.Empty;
        AccessKeys keys = http.RequestServices.GetRequiredService<AccessKeys>();
        return keys.CanAccessConversation(http, conversationId)
            ? await next(context).ConfigureAwait(false)
            : ApiResponses.Denied(http, $"conversation '{conversationId}'");
    }

    private static async Task<IResult> SendMessageAsync(
        string conversationId,
        [FromHeader(Name = IdempotencyKeyHeader)] string? idempotencyKey,
        [FromBody] MessageRequest? body,
        HttpContext http,
        ConversationService conversations,
        ConversationRuntime runtime,
        AccessKeys keys,
        CancellationToken cancellationToken)
    {
        if (!ConversationService.IsValidConversationId(conversationId))
        {
            return ApiResponses.Problem(http, 400, "Bad conversation id", "A conversation id is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit.");
        }

        if (ConversationService.CheckText(body?.Text) is { } problem)
        {
            return ApiResponses.Problem(http, 400, "Bad message", problem);
        }

        string baseUri = $"{http.Request.Scheme}://{http.Request.Host}{http.Request.PathBase}";
        bool authorized = keys.CanAccessConversation(http, conversationId);
        if (idempotencyKey is null)
        {
            return (await SendAsync(conversations, keys, baseUri, conversationId, body!.Text!, authorized, http, cancellationToken).ConfigureAwait(false)).ToResult(http);
        }

        if (idempotencyKey.Length is 0 or > MaxIdempotencyKeyLength)
        {
            return ApiResponses.Problem(http, 400, "Bad Idempotency-Key", $"Idempotency-Key must be 1-{MaxIdempotencyKeyLength} characters.");
        }

        string scope = MessageScope(conversationId);
        LedgerClaim claim = await runtime.Ledger.ClaimAsync(scope, idempotencyKey, MessageHash(body!.Text!), cancellationToken).ConfigureAwait(false);
        switch (claim.Kind)
        {
            case ClaimKind.Completed:
                return claim.Response!.ToResult(http, replayed: true);
            case ClaimKind.Mismatch:
                return ApiResponses.Problem(http, 422, "Idempotency-Key reused", "This Idempotency-Key was used with a different message; nothing was sent. Use a new key for a new message.");
            case ClaimKind.InProgress:
                http.Response.Headers.RetryAfter = "1";
                return ApiResponses.Problem(http, 409, "Request in progress", "A request with this Idempotency-Key is being handled; retry shortly.");
        }

        StoredResponse response;
        try
        {
            // Taking over a dead request's claim means holding its key: the request that created the conversation may finish.
            response = await SendAsync(conversations, keys, baseUri, conversationId, body.Text!, authorized || claim.Kind == ClaimKind.TookOver, http, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await runtime.Ledger.ReleaseAsync(scope, idempotencyKey, CancellationToken.None).ConfigureAwait(false);
            throw;
        }

        if (response.Status is >= 200 and < 300)
        {
            await runtime.Ledger.CompleteAsync(scope, idempotencyKey, response, CancellationToken.None).ConfigureAwait(false);
        }
        else
        {
            await runtime.Ledger.ReleaseAsync(scope, idempotencyKey, CancellationToken.None).ConfigureAwait(false);
        }

        return response.ToResult(http);
    }

    /// <summary>The ledger scope of a conversation's messages: the HTTP Idempotency-Key and the queue messageId share it.</summary>
    public static string MessageScope(string conversationId) => "messages:" + conversationId;

    public static string MessageHash(string text) => RequestHash.Of("message", text);

    private static async Task<StoredResponse> SendAsync(ConversationService conversations, AccessKeys keys, string baseUri, string conversationId, string text, bool authorized, HttpContext http, CancellationToken cancellationToken)
    {
        SendOutcome outcome = await conversations.SendAsync(conversationId, text, authorized, cancellationToken).ConfigureAwait(false);
        switch (outcome)
        {
            case SendOutcome.Forbidden:
                return AccessKeys.PresentsCredentials(http)
                    ? ApiResponses.Problem(403, "Forbidden", $"Conversation '{conversationId}' exists and the credentials given do not grant access to it.")
                    : ApiResponses.Problem(401, "Unauthorized", $"Conversation '{conversationId}' exists: sending to it needs its access token or the management key.");
            case SendOutcome.Closed:
                return ApiResponses.Problem(409, "Conversation ended", $"Conversation '{conversationId}' has ended and takes no more messages; purge it to reuse the id.");
            default:
                CheckStatusResponse body = CheckStatus(baseUri, conversationId, outcome == SendOutcome.Started, keys);
                return ApiResponses.Ok(202, body, body.StatusQueryGetUri);
        }
    }

    private static async Task<IResult> GetStatusAsync(string conversationId, HttpContext http, ConversationRuntime runtime, CancellationToken cancellationToken)
    {
        OrchestrationMetadata? meta = await GetConversationAsync(runtime, conversationId, cancellationToken).ConfigureAwait(false);
        if (meta is null)
        {
            return NotFound(http, conversationId);
        }

        ConversationStatus? status = meta.ReadCustomStatusAs<ConversationStatus>();
        JsonObject? currentTurn = null;
        if (status?.CurrentTurnInstanceId is { } turnId && await runtime.Client.GetInstanceAsync(turnId, cancellationToken).ConfigureAwait(false) is { } turn)
        {
            TurnStatus? ts = turn.ReadCustomStatusAs<TurnStatus>();
            currentTurn = new JsonObject
            {
                ["instanceId"] = turnId,
                ["runtimeStatus"] = turn.RuntimeStatus.ToString(),
                ["phase"] = ts?.Phase,
                ["modelCalls"] = ts?.ModelCalls,
                ["toolCalls"] = ts?.ToolCalls,
                ["plan"] = ToNode(ts?.Plan),
                ["pendingConfirmations"] = ToNode(ts?.PendingConfirmations ?? []),
                ["decided"] = ToNode(ts?.Decided ?? []),
                ["refusals"] = ToNode(ts?.Refusals ?? []),
            };
        }

        var body = new JsonObject
        {
            ["conversationId"] = conversationId,
            ["runtimeStatus"] = meta.RuntimeStatus.ToString(),
            ["createdAt"] = meta.CreatedAt,
            ["lastUpdatedAt"] = meta.LastUpdatedAt,
            ["turns"] = status?.Turns ?? 0,
            ["currentTurn"] = currentTurn,
            ["lastOutcome"] = status?.LastOutcome?.ToString(),
            ["lastMessage"] = status?.LastMessage,
            ["output"] = meta.IsCompleted ? meta.SerializedOutput : null,
            ["failure"] = meta.FailureDetails?.ErrorMessage,
        };
        return TypedResults.Json(body, ApiResponses.Json);
    }

    private static async Task<IResult> GetHistoryAsync(string conversationId, HttpContext http, ConversationRuntime runtime, CancellationToken cancellationToken)
    {
        OrchestrationMetadata? meta = await GetConversationAsync(runtime, conversationId, cancellationToken).ConfigureAwait(false);
        if (meta is null)
        {
            return NotFound(http, conversationId);
        }

        var turns = new JsonArray();
        foreach (string turnId in TurnIds(conversationId, meta))
        {
            OrchestrationMetadata? turn = await runtime.Client.GetInstanceAsync(turnId, cancellationToken).ConfigureAwait(false);
            if (turn is null)
            {
                continue;
            }

            turns.Add(new JsonObject
            {
                ["instanceId"] = turnId,
                ["runtimeStatus"] = turn.RuntimeStatus.ToString(),
                ["events"] = await ReadHistoryAsync(runtime, turnId, cancellationToken).ConfigureAwait(false),
            });
        }

        var body = new JsonObject
        {
            ["conversationId"] = conversationId,
            ["note"] = "The conversation continues as new after each turn: its events are those of the current execution; each turn's events are complete.",
            ["conversation"] = await ReadHistoryAsync(runtime, conversationId, cancellationToken).ConfigureAwait(false),
            ["turns"] = turns,
        };
        return TypedResults.Json(body, ApiResponses.Json);
    }

    private static async Task<IResult> GetTranscriptAsync(string conversationId, HttpContext http, ConversationRuntime runtime, CancellationToken cancellationToken)
    {
        OrchestrationMetadata? meta = await GetConversationAsync(runtime, conversationId, cancellationToken).ConfigureAwait(false);
        if (meta is null)
        {
            return NotFound(http, conversationId);
        }

        ConversationState? state = meta.ReadInputAs<ConversationState>();
        var messages = (state?.Messages ?? []).Select(m => new TranscriptMessage(
            m.Role.ToString().ToLowerInvariant(),
            m.Content,
            m.ToolCalls.Count == 0 ? null : m.ToolCalls.Select(c => new TranscriptToolCall(c.Id, c.Name, SensitiveRedaction.RedactArguments(runtime.Validator, c.Name, c.Arguments))).ToArray(),
            m.ToolCallId)).ToArray();
        ConversationStatus? status = meta.ReadCustomStatusAs<ConversationStatus>();
        return TypedResults.Json(
            new { conversationId, turns = status?.Turns ?? state?.Turns ?? 0, turnRunning = status?.CurrentTurnInstanceId, messages },
            ApiResponses.Json);
    }

    private static async Task<IResult> GetConfirmationsAsync(string conversationId, HttpContext http, ConversationRuntime runtime, CancellationToken cancellationToken)
    {
        OrchestrationMetadata? meta = await GetConversationAsync(runtime, conversationId, cancellationToken).ConfigureAwait(false);
        if (meta is null)
        {
            return NotFound(http, conversationId);
        }

        var items = new List<ConfirmationItem>();
        if (meta.ReadCustomStatusAs<ConversationStatus>()?.CurrentTurnInstanceId is { } turnId
            && await runtime.Client.GetInstanceAsync(turnId, cancellationToken).ConfigureAwait(false) is { IsCompleted: false } turn)
        {
            items.AddRange(ApprovalEndpoints.ItemsOf(conversationId, turn));
        }

        return TypedResults.Json(items, ApiResponses.Json);
    }

    private static async Task<IResult> TerminateAsync(string conversationId, HttpContext http, ConversationRuntime runtime, CancellationToken cancellationToken)
    {
        OrchestrationMetadata? meta = await GetConversationAsync(runtime, conversationId, cancellationToken).ConfigureAwait(false);
        if (meta is null)
        {
            return NotFound(http, conversationId);
        }

        if (meta.IsCompleted)
        {
            return ApiResponses.Problem(http, 409, "Not running", $"Conversation '{conversationId}' is already {meta.RuntimeStatus}.");
        }

        try
        {
            await runtime.Client.TerminateInstanceAsync(conversationId, "terminated through the API", cancellationToken).ConfigureAwait(false);
        }
        catch (OrchestrationNotRunningException)
        {
            return ApiResponses.Problem(http, 409, "Not running", $"Conversation '{conversationId}' has already ended.");
        }

        if (meta.ReadCustomStatusAs<ConversationStatus>()?.CurrentTurnInstanceId is { } turnId)
        {
            try
            {
                await runtime.Client.TerminateInstanceAsync(turnId, "its conversation was terminated", cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OrchestrationNotRunningException or OrchestrationNotFoundException)
            {
                // The turn ended on its own meanwhile.
            }
        }

        return TypedResults.Json(new { conversationId, result = "terminating" }, ApiResponses.Json, statusCode: 202);
    }

    private static async Task<IResult> PurgeAsync(string conversationId, HttpContext http, ConversationRuntime runtime, CancellationToken cancellationToken)
    {
        OrchestrationMetadata? meta = await GetConversationAsync(runtime, conversationId, cancellationToken).ConfigureAwait(false);
        if (meta is null)
        {
            return NotFound(http, conversationId);
        }

        if (!meta.IsCompleted)
        {
            return ApiResponses.Problem(http, 409, "Still running", $"Conversation '{conversationId}' is {meta.RuntimeStatus}: terminate it first.");
        }

        int purged = 0;
        try
        {
            foreach (string turnId in TurnIds(conversationId, meta))
            {
                purged += await runtime.Client.PurgeInstanceAsync(turnId, cancellationToken).ConfigureAwait(false) ? 1 : 0;
            }

            purged += await runtime.Client.PurgeInstanceAsync(conversationId, cancellationToken).ConfigureAwait(false) ? 1 : 0;

            // Its keys go with it: a new conversation under the same id must not be answered from the old one's responses.
            await runtime.Ledger.ForgetScopeAsync(MessageScope(conversationId), cancellationToken).ConfigureAwait(false);
        }
        catch (OrchestrationNotRunningException ex)
        {
            return ApiResponses.Problem(http, 409, "Still finishing", ex.Message + " Retry shortly.");
        }

        return TypedResults.Json(new { conversationId, purgedInstances = purged }, ApiResponses.Json);
    }

    internal static async Task<OrchestrationMetadata?> GetConversationAsync(ConversationRuntime runtime, string conversationId, CancellationToken cancellationToken)
    {
        if (!ConversationService.IsValidConversationId(conversationId))
        {
            return null;
        }

        OrchestrationMetadata? meta = await runtime.Client.GetInstanceAsync(conversationId, cancellationToken).ConfigureAwait(false);
        return meta?.Name == TurnRegistration.ConversationOrchestrator ? meta : null;
    }

    private static IEnumerable<string> TurnIds(string conversationId, OrchestrationMetadata meta)
    {
        ConversationStatus? status = meta.ReadCustomStatusAs<ConversationStatus>();
        int last = (status?.Turns ?? 0) + (status?.CurrentTurnInstanceId is null ? 0 : 1);
        return Enumerable.Range(1, last).Select(n => Conversations.TurnInstanceId(conversationId, n));
    }

    private static async Task<JsonNode?> ReadHistoryAsync(ConversationRuntime runtime, string instanceId, CancellationToken cancellationToken)
    {
        IReadOnlyList<HistoryEvent> events = await runtime.Client.GetHistoryAsync(instanceId, cancellationToken).ConfigureAwait(false);
        return SensitiveRedaction.Redact(runtime.Validator, JsonNode.Parse(HistorySerializer.SerializeHistory(events)));
    }

    private static JsonNode? ToNode(object? value) => value is null ? null : System.Text.Json.JsonSerializer.SerializeToNode(value, value.GetType(), ApiResponses.Json);

    private static IResult NotFound(HttpContext http, string conversationId) =>
        ApiResponses.Problem(http, 404, "Not found", $"No conversation '{conversationId}'.");
}

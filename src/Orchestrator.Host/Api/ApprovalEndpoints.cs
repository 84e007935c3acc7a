using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Orchestrator.Agents;
using Orchestrator.Durable;
using Orchestrator.Durable.Backend;

namespace Orchestrator.Host.Api;

/// <summary>The management endpoints the approvals page uses: every pending confirmation, and deciding one.</summary>
internal static class ApprovalEndpoints
{
    public static IEndpointRouteBuilder MapApprovalEndpoints(this IEndpointRouteBuilder app)
    {
        RouteGroupBuilder group = app.MapGroup("/api").WithTags("Approvals").AddEndpointFilter(RequireManagementKeyAsync);
        group.MapGet("/confirmations", ListAsync).WithName("ListPendingConfirmations")
            .WithSummary("Every pending confirmation across conversations, with exact (redacted) arguments, hash, summary, plan position and dependents. Management key.")
            .Produces<ConfirmationItem[]>().ProducesProblem(401).ProducesProblem(403);
        group.MapPost("/approvals/{turnInstanceId}/{toolCallId}", DecideAsync).WithName("DecideConfirmation")
            .WithSummary("Approves (optionally with edited arguments) or rejects a pending call, bound to its argument hash. Management key.")
            .Accepts<DecisionRequest>("application/json")
            .Produces<DecisionAccepted>(StatusCodes.Status202Accepted)
            .ProducesProblem(400).ProducesProblem(401).ProducesProblem(403).ProducesProblem(404).ProducesProblem(409).ProducesProblem(410).ProducesProblem(422);
        return app;
    }

    /// <summary>The pending confirmations of one turn as list items.</summary>
    public static IEnumerable<ConfirmationItem> ItemsOf(string conversationId, OrchestrationMetadata turn)
    {
        TurnStatus? status = turn.ReadCustomStatusAs<TurnStatus>();
        if (status is null)
        {
            yield break;
        }

        foreach (PendingConfirmation p in status.PendingConfirmations)
        {
            PlannedToolCall? planned = status.Plan?.Calls.FirstOrDefault(c => c.ToolCallId == p.ToolCallId);
            IReadOnlyList<DependentCall> dependents = status.Plan is null
                ? []
                : status.Plan.SkipsAfterFailure(p.ToolCallId, "was not approved").Select(s => new DependentCall(s.ToolCallId, s.ToolName)).ToArray();
            yield return new ConfirmationItem(
                conversationId,
                turn.InstanceId,
                p.ToolCallId,
                p.ToolName,
                p.Arguments,
                p.ArgumentsHash,
                p.Summary,
                p.ModelCallIndex,
                p.Position,
                p.Stage,
                status.Plan?.Stages.Count ?? 0,
                planned?.WaitsFor ?? [],
                dependents,
                p.ExpiresAt,
                $"/api/approvals/{Uri.EscapeDataString(turn.InstanceId)}/{Uri.EscapeDataString(p.ToolCallId)}");
        }
    }

    private static async ValueTask<object?> RequireManagementKeyAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        HttpContext http = context.HttpContext;
        return http.RequestServices.GetRequiredService<AccessKeys>().IsManagement(http)
            ? await next(context).ConfigureAwait(false)
            : http.Request.Headers.ContainsKey(AccessKeys.ManagementKeyHeader)
                ? ApiResponses.Problem(http, 403, "Forbidden", "The management key is wrong.")
                : ApiResponses.Problem(http, 401, "Unauthorized", $"This endpoint needs the management key (header {AccessKeys.ManagementKeyHeader}).");
    }

    private static async Task<IResult> ListAsync(ConversationRuntime runtime, ApiSettings settings, CancellationToken cancellationToken)
    {
        // Every running instance, a page at a time: the list is sorted by expiry, so it needs them all.
        var pending = new List<ConfirmationItem>();
        var running = new InstanceQuery { Statuses = [OrchestrationRuntimeStatus.Running], PageSize = settings.ConfirmationListPageSize };
        await foreach (OrchestrationMetadata m in runtime.Client.GetAllInstancesAsync(running).WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            if (m.Name == TurnRegistration.TurnOrchestrator)
            {
                pending.AddRange(ItemsOf(m.ReadInputAs<TurnInput>()?.ConversationId ?? m.ParentInstanceId ?? string.Empty, m));
            }
        }

        var items = pending
            .OrderBy(i => i.ExpiresAt)
            .ThenBy(i => i.TurnInstanceId, StringComparer.Ordinal)
            .ThenBy(i => i.Position)
            .ToArray();
        return TypedResults.Json(items, ApiResponses.Json);
    }

    private static async Task<IResult> DecideAsync(string turnInstanceId, string toolCallId, [FromBody] DecisionRequest? body, HttpContext http, ConfirmationDecider decider, CancellationToken cancellationToken) =>
        (await decider.DecideAsync(turnInstanceId, toolCallId, body, cancellationToken).ConfigureAwait(false)).ToResult(http);
}

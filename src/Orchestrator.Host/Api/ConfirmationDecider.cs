using System.Text.Json;
using Orchestrator.Agents;
using Orchestrator.Durable;

namespace Orchestrator.Host.Api;

/// <summary>
/// Decides a pending confirmation for the approvals endpoint and the confirmation webhook: checks the body, the
/// pending call, the hash, the expiry and edited arguments (validated in full, here, so the caller gets the errors),
/// then sends the decision through <see cref="TurnConfirmations.DecideAsync"/>, edited arguments sealed with the hub's key
/// (<see cref="ConversationRuntime.SensitiveValues"/>) when there is one. A refusal changes nothing.
/// </summary>
internal sealed class ConfirmationDecider(ConversationRuntime runtime)
{
    public async Task<StoredResponse> DecideAsync(string turnInstanceId, string toolCallId, DecisionRequest? request, CancellationToken cancellationToken)
    {
        if (request is null)
        {
            return ApiResponses.Problem(400, "Bad request", "A JSON body {\"decision\":\"approve|reject\",\"argumentsHash\":\"...\"} is required.");
        }

        bool approve;
        switch (request.Decision)
        {
            case "approve":
                approve = true;
                break;
            case "reject":
                approve = false;
                break;
            default:
                return ApiResponses.Problem(400, "Bad request", "decision must be \"approve\" or \"reject\".");
        }

        if (string.IsNullOrWhiteSpace(request.ArgumentsHash))
        {
            return ApiResponses.Problem(400, "Bad request", "argumentsHash is required: the hash shown with the confirmation, which binds the decision to those exact arguments.");
        }

        string? edited = null;
        if (request.EditedArguments is { ValueKind: not JsonValueKind.Null and not JsonValueKind.Undefined } editedElement)
        {
            if (!approve)
            {
                return ApiResponses.Problem(400, "Bad request", "editedArguments can only come with decision \"approve\".");
            }

            edited = editedElement.GetRawText();
        }

        TurnStatus? status = await TurnConfirmations.GetStatusAsync(runtime.Client, turnInstanceId, cancellationToken).ConfigureAwait(false);
        PendingConfirmation? pending = status?.PendingConfirmations.FirstOrDefault(p => p.ToolCallId == toolCallId);
        if (pending is null)
        {
            return status?.Decided.Any(d => d.ToolCallId == toolCallId) == true
                ? ApiResponses.Problem(409, "Already decided", $"Call '{toolCallId}' was already decided.")
                : ApiResponses.Problem(404, "Not pending", $"No confirmation for call '{toolCallId}' is pending in turn '{turnInstanceId}'.");
        }

        if (!string.Equals(pending.ArgumentsHash, request.ArgumentsHash, StringComparison.Ordinal))
        {
            return ApiResponses.Problem(409, "Argument hash mismatch", "The decision carries a different argument hash than the pending call: it was made on other arguments. Reload the confirmation and decide again.");
        }

        if (runtime.Time.GetUtcNow().UtcDateTime >= pending.ExpiresAt)
        {
            return ApiResponses.Problem(410, "Expired", $"The confirmation for call '{toolCallId}' expired at {pending.ExpiresAt:O}.");
        }

        if (edited is not null && this.CheckEdit(pending, edited) is { } refusal)
        {
            return refusal;
        }

        if (edited is not null && runtime.SensitiveValues is { } protector)
        {
            // The decision is an event payload the engine stores as given: sealed, history holds no sensitive value.
            edited = TurnConfirmations.SealEditedArguments(protector, runtime.Agent.Tools, pending.ToolName, edited);
        }

        var decision = new ConfirmationDecision(approve, request.ArgumentsHash, request.DecidedBy) { EditedArguments = edited };
        ConfirmationDecisionResult result;
        try
        {
            result = await TurnConfirmations.DecideAsync(runtime.Client, turnInstanceId, toolCallId, decision, runtime.Time, cancellationToken).ConfigureAwait(false);
        }
        catch (OrchestrationNotRunningException)
        {
            return ApiResponses.Problem(410, "Turn ended", $"Turn '{turnInstanceId}' is no longer running.");
        }

        return result switch
        {
            ConfirmationDecisionResult.Accepted => ApiResponses.Ok(202, new DecisionAccepted("accepted", turnInstanceId, toolCallId, request.Decision!)),
            ConfirmationDecisionResult.AlreadyDecided => ApiResponses.Problem(409, "Already decided", $"Call '{toolCallId}' was already decided."),
            ConfirmationDecisionResult.HashMismatch => ApiResponses.Problem(409, "Argument hash mismatch", "The pending call's arguments changed."),
            ConfirmationDecisionResult.Expired => ApiResponses.Problem(410, "Expired", $"The confirmation for call '{toolCallId}' expired."),
            _ => ApiResponses.Problem(404, "Not pending", $"No confirmation for call '{toolCallId}' is pending in turn '{turnInstanceId}'."),
        };
    }

    private StoredResponse? CheckEdit(PendingConfirmation pending, string edited)
    {
        EditCheck check = Recheck(runtime.Validator, pending, edited);
        if (check.Invalid is { } rejected)
        {
            return ApiResponses.Problem(422, "Edited arguments invalid", rejected.Message, new Dictionary<string, object?>
            {
                ["code"] = "edited_arguments_invalid",
                ["errors"] = rejected.Errors,
            });
        }

        if (check.ChangesResource)
        {
            return ApiResponses.Problem(422, "Edit changes the resource", "Edited arguments may not name another resource than the call that was proposed (for example another order).", new Dictionary<string, object?>
            {
                ["code"] = "edit_changes_resource",
            });
        }

        return null;
    }

    /// <summary>
    /// Re-validates edited arguments of <paramref name="pending"/> in full (the turn does it again; here the caller gets
    /// the errors), for every decision path (approvals endpoint, webhook, CLI).
    /// </summary>
    internal static EditCheck Recheck(ToolCallValidator validator, PendingConfirmation pending, string edited)
    {
        ToolCallValidationResult revalidated = validator.Validate(new ProposedToolCall(pending.ToolCallId, pending.ToolName, edited), pending.Position);
        if (revalidated.Rejected is { } rejected)
        {
            return new EditCheck(null, rejected, ChangesResource: false);
        }

        // The pending arguments are shown redacted; when nothing was redacted they are the real ones, so the resource
        // check can be made here. Otherwise the turn makes it (and records a refusal) when the decision arrives.
        bool changesResource = !pending.Arguments.Contains("[REDACTED", StringComparison.Ordinal)
            && validator.Validate(new ProposedToolCall(pending.ToolCallId, pending.ToolName, pending.Arguments), pending.Position).Valid is { } original
            && !original.ResourceKeys.SequenceEqual(revalidated.Valid!.ResourceKeys, StringComparer.Ordinal);
        return new EditCheck(revalidated.Valid, null, changesResource);
    }
}

/// <summary>What re-validating edited arguments found: the valid call, or why they are invalid; and whether they name another resource.</summary>
internal sealed record EditCheck(ValidatedToolCall? Valid, RejectedToolCall? Invalid, bool ChangesResource);

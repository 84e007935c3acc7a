using System.Text.Json.Nodes;
using Orchestrator.Agents;

namespace Orchestrator.Host.Cli;

/// <summary>
/// <c>approve</c> / <c>reject &lt;turnInstanceId&gt;/&lt;toolCallId&gt;</c>: shows the confirmation card (exact arguments,
/// hash, summary) and sends the decision bound to the hash it showed, through <see cref="TurnConfirmations.DecideAsync"/>,
/// which checks pending, hash and expiry before raising anything.
/// </summary>
internal static class DecideCommand
{
    public static async Task<int> RunAsync(bool approve, ReadOnlyMemory<string> args, HostSettings settings, CliContext context, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        string command = approve ? "approve" : "reject";
        var a = CliArguments.Parse(command, args.Span, [], ["--hash", "--by"]);
        string name = a.Single(command, "confirmation ({turnInstanceId}/{toolCallId})");
        int slash = name.LastIndexOf('/');
        if (slash <= 0 || slash == name.Length - 1)
        {
            throw new ArgumentException($"'{name}' is not a confirmation: expected {{turnInstanceId}}/{{toolCallId}}, as listed by `status <turnInstanceId>`.");
        }

        string instanceId = name[..slash];
        string toolCallId = name[(slash + 1)..];
        string? insistedHash = a.Value("--hash");
        string decidedBy = a.Value("--by") ?? $"cli:{Environment.UserName}";

        await using var store = CliStore.Open(settings, a.Db);
        TurnStatus? status = await TurnConfirmations.GetStatusAsync(store.Client, instanceId, cancellationToken).ConfigureAwait(false);
        PendingConfirmation? pending = status?.PendingConfirmations.FirstOrDefault(p => p.ToolCallId == toolCallId);
        if (pending is null)
        {
            string why = status is null
                ? $"no turn '{instanceId}' (or it has no status yet)"
                : status.Decided.FirstOrDefault(d => d.ToolCallId == toolCallId) is { } decided
                    ? $"already decided: {decided.Decision}{(decided.DecidedBy is null ? string.Empty : $" by {decided.DecidedBy}")}"
                    : $"turn '{instanceId}' has no pending confirmation for call '{toolCallId}'";
            return await RefuseAsync(a.Json, name, "not_pending", why, stdout, stderr).ConfigureAwait(false);
        }

        if (!a.Json)
        {
            await InspectCommands.WriteCardAsync(instanceId, pending, stdout).ConfigureAwait(false);
        }

        // The decision carries the hash the decider saw: the one printed above, or the one insisted on with --hash
        // (seen on another screen). A hash that no longer matches is refused and nothing is sent.
        string hash = insistedHash ?? pending.ArgumentsHash;
        if (!string.Equals(hash, pending.ArgumentsHash, StringComparison.Ordinal))
        {
            return await RefuseAsync(a.Json, name, "hash_mismatch", $"the arguments now pending have hash {pending.ArgumentsHash}, not {hash}: they are not the arguments you saw; nothing was sent", stdout, stderr).ConfigureAwait(false);
        }

        ConfirmationDecisionResult result = await TurnConfirmations.DecideAsync(
            store.Client, instanceId, toolCallId, new ConfirmationDecision(approve, hash, decidedBy), context.TimeProvider, cancellationToken).ConfigureAwait(false);
        if (result != ConfirmationDecisionResult.Accepted)
        {
            string why = result switch
            {
                ConfirmationDecisionResult.AlreadyDecided => "already decided",
                ConfirmationDecisionResult.Expired => $"the confirmation expired at {InspectCommands.Time(new DateTimeOffset(DateTime.SpecifyKind(pending.ExpiresAt, DateTimeKind.Utc)))}",
                ConfirmationDecisionResult.HashMismatch => "the arguments changed since they were shown",
                _ => "it is no longer pending",
            };
            return await RefuseAsync(a.Json, name, Snake(result), why, stdout, stderr).ConfigureAwait(false);
        }

        if (a.Json)
        {
            await stdout.WriteLineAsync(new JsonObject
            {
                ["confirmation"] = name,
                ["decision"] = approve ? "approved" : "rejected",
                ["result"] = "accepted",
                ["argumentsHash"] = hash,
                ["toolName"] = pending.ToolName,
                ["arguments"] = pending.Arguments,
                ["summary"] = pending.Summary,
                ["decidedBy"] = decidedBy,
            }.ToJsonString()).ConfigureAwait(false);
        }
        else
        {
            await stdout.WriteLineAsync($"{(approve ? "Approved" : "Rejected")} {name} (hash {hash}) as {decidedBy}; the turn continues on its worker.").ConfigureAwait(false);
        }

        return 0;
    }

    private static async Task<int> RefuseAsync(bool json, string name, string code, string why, TextWriter stdout, TextWriter stderr)
    {
        if (json)
        {
            await stdout.WriteLineAsync(new JsonObject { ["confirmation"] = name, ["result"] = "refused", ["reason"] = code, ["message"] = why }.ToJsonString()).ConfigureAwait(false);
        }

        await stderr.WriteLineAsync($"refused: {why}.").ConfigureAwait(false);
        return 1;
    }

    private static string Snake(ConfirmationDecisionResult r) => r switch
    {
        ConfirmationDecisionResult.NotPending => "not_pending",
        ConfirmationDecisionResult.AlreadyDecided => "already_decided",
        ConfirmationDecisionResult.HashMismatch => "hash_mismatch",
        ConfirmationDecisionResult.Expired => "expired",
        _ => r.ToString(),
    };
}

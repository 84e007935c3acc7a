using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using Orchestrator.Agents;
using Orchestrator.Host.Api;

namespace Orchestrator.Host.Cli;

/// <summary>
/// <c>approve</c> / <c>reject &lt;turnInstanceId&gt;/&lt;toolCallId&gt;</c>: shows the confirmation card (exact arguments,
/// hash, summary) and sends the decision bound to the hash it showed, through <see cref="TurnConfirmations.DecideAsync"/>,
/// which checks pending, hash and expiry before raising anything. <c>approve --edit JSON</c> approves with edited
/// arguments: validated with the agent's tools first, their sensitive values sealed with the hub's key.
/// <c>--edit-file PATH</c> and <c>--edit -</c> (standard input) keep the edit off the command line, where shell history
/// and <c>ps</c> would show a card number.
/// </summary>
internal static class DecideCommand
{
    public static async Task<int> RunAsync(bool approve, ReadOnlyMemory<string> args, HostSettings settings, CliContext context, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        string command = approve ? "approve" : "reject";
        var a = CliArguments.Parse(command, args.Span, [], ["--hash", "--by", "--edit", "--edit-file"]);
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
        string? edit = await ReadEditAsync(command, a, context, cancellationToken).ConfigureAwait(false);
        if (edit is not null)
        {
            if (!approve)
            {
                throw new ArgumentException("reject: --edit can only come with approve.");
            }

            try
            {
                if (JsonNode.Parse(edit) is not JsonObject)
                {
                    throw new ArgumentException("approve: --edit must be the edited arguments as one JSON object.");
                }
            }
            catch (JsonException ex)
            {
                throw new ArgumentException($"approve: --edit is not JSON: {ex.Message}");
            }
        }

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

        string? shownEdit = null;
        if (edit is not null)
        {
            SealedEdit check = await CheckEditAsync(pending, edit, settings, a.Db, context, cancellationToken).ConfigureAwait(false);
            if (check.Refusal is { } refusal)
            {
                return await RefuseAsync(a.Json, name, refusal.Code, refusal.Why, stdout, stderr).ConfigureAwait(false);
            }

            (edit, shownEdit) = (check.Sealed, check.Redacted);
        }

        ConfirmationDecisionResult result = await TurnConfirmations.DecideAsync(
            store.Client, instanceId, toolCallId, new ConfirmationDecision(approve, hash, decidedBy) { EditedArguments = edit }, context.TimeProvider, cancellationToken).ConfigureAwait(false);
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
                ["editedArguments"] = shownEdit,
            }.ToJsonString()).ConfigureAwait(false);
        }
        else
        {
            string with = shownEdit is null ? string.Empty : $" with edited arguments {shownEdit}";
            await stdout.WriteLineAsync($"{(approve ? "Approved" : "Rejected")} {name} (hash {hash}){with} as {decidedBy}; the turn continues on its worker.").ConfigureAwait(false);
        }

        return 0;
    }

    /// <summary>
    /// Validates edited arguments in full with the agent's tools (the turn does it again; here the caller gets the
    /// errors) and seals their sensitive values with the hub's key, so the decision event stored in history holds none.
    /// </summary>
    private static async Task<SealedEdit> CheckEditAsync(PendingConfirmation pending, string edit, HostSettings settings, string? db, CliContext context, CancellationToken cancellationToken)
    {
        await using HostAgentRuntime agent = await context.AgentFactory(settings, NullLoggerFactory.Instance, cancellationToken).ConfigureAwait(false);
        ToolRegistry tools = agent.Agent.Tools;
        EditCheck check = ConfirmationDecider.Recheck(new ToolCallValidator(tools), pending, edit);
        if (check.Invalid is { } rejected)
        {
            string errors = string.Join("; ", rejected.Errors.Select(e => $"{e.Argument}: {e.Problem}"));
            return new SealedEdit(null, null, ("edited_arguments_invalid", $"the edited arguments are invalid: {rejected.Message}{(errors.Length == 0 ? string.Empty : $" ({errors})")}; nothing was sent"));
        }

        if (check.ChangesResource)
        {
            return new SealedEdit(null, null, ("edit_changes_resource", "edited arguments may not name another resource than the call that was proposed (for example another order); nothing was sent"));
        }

        // Only an existing key: a SQLite store whose worker generated none seals nothing, and one made here could not be opened there.
        SensitiveValueProtector? protector = HostTurnOptions.SensitiveValues(settings, db, createLocalKey: false);
        string sealedEdit = protector is null ? edit : TurnConfirmations.SealEditedArguments(protector, tools, pending.ToolName, edit);
        return new SealedEdit(sealedEdit, check.Valid!.RedactedArguments, null);
    }

    /// <summary>The longest edit read from a file or standard input; a decision body is small.</summary>
    internal const int MaxEditChars = 64 * 1024;

    /// <summary>
    /// The edited arguments from <c>--edit JSON</c>, <c>--edit -</c> (standard input) or <c>--edit-file PATH</c>; null
    /// without either. Read before anything is opened, so a bad source changes nothing.
    /// </summary>
    private static async Task<string?> ReadEditAsync(string command, CliArguments a, CliContext context, CancellationToken cancellationToken)
    {
        string? inline = a.Value("--edit");
        string? file = a.Value("--edit-file");
        if (inline is not null && file is not null)
        {
            throw new ArgumentException($"{command}: give --edit or --edit-file, not both.");
        }

        string? text;
        string source;
        if (file is not null)
        {
            source = $"--edit-file {file}";
            try
            {
                if (new FileInfo(file).Length > MaxEditChars * 4L)
                {
                    throw new ArgumentException($"{command}: {source} is over {MaxEditChars} characters; edited arguments are one small JSON object.");
                }

                text = await File.ReadAllTextAsync(file, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new ArgumentException($"{command}: cannot read {source}: {ex.Message}");
            }
        }
        else if (inline == "-")
        {
            source = "--edit - (standard input)";
            TextReader stdin = context.Stdin ?? Console.In;
            var buffer = new char[MaxEditChars + 1];
            int read = 0;
            int n;
            while (read < buffer.Length && (n = await stdin.ReadAsync(buffer.AsMemory(read), cancellationToken).ConfigureAwait(false)) > 0)
            {
                read += n;
            }

            text = new string(buffer, 0, read);
        }
        else
        {
            return inline;
        }

        if (text.Length > MaxEditChars)
        {
            throw new ArgumentException($"{command}: {source} is over {MaxEditChars} characters; edited arguments are one small JSON object.");
        }

        return string.IsNullOrWhiteSpace(text)
            ? throw new ArgumentException($"{command}: {source} is empty; it must hold the edited arguments as one JSON object.")
            : text;
    }

    private sealed record SealedEdit(string? Sealed, string? Redacted, (string Code, string Why)? Refusal);

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

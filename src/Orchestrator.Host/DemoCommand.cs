using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using Orchestrator.Agents;
using Orchestrator.Agents.Models;
using Orchestrator.Durable;
using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.History;
using Orchestrator.Durable.Worker;
using Orchestrator.Host.Observability;
using SupportDesk;

namespace Orchestrator.Host;

/// <summary>
/// The demo: the support-desk refund incident end to end, as one durable conversation turn (AgentConversation /
/// AgentTurn) on the configured backend, the default agent's model (scripted unless configured) and payments service.
/// Every number it reports is counted from what happened: the turn's history and output, and the payments ledger.
/// </summary>
internal static class DemoCommand
{
    private static readonly string[] ValidationErrors =
        ["malformed_arguments", "unknown_tool", "invalid_arguments", "business_rule_violation", "invalid_call_id", "unparseable_call", "validation_failed"];

    public static async Task<int> RunAsync(DemoOptions options, HostSettings settings, TextWriter stdout, CancellationToken cancellationToken)
    {
        if (options.DataSource is not null)
        {
            settings = settings with { DataSource = options.DataSource };
        }

        // --telemetry: the agent layer's and engine's spans and metrics on the console, flushed before the summary.
        using IDisposable? telemetry = options.Telemetry ? HostObservability.StartConsoleTelemetry() : null;
        await using HostAgentRuntime runtime = await HostAgents.CreateDefaultAsync(settings, NullLoggerFactory.Instance, cancellationToken).ConfigureAwait(false);
        AgentDefinition agent = runtime.Agent;
        AgentTurnOptions turnOptions = HostTurnOptions.Create(settings, NullLoggerFactory.Instance);
        using var journal = turnOptions.CallJournal as IDisposable;
        DurableTaskRegistry registry = new DurableTaskRegistry().AddAgentTurn(agent.Tools, agent.Handlers, agent.Model, turnOptions);
        await using IOrchestrationBackend backend = settings.CreateBackend();
        await using var worker = new DurableTaskWorker(backend, registry, new DurableTaskWorkerOptions
        {
            MaxConcurrentActivities = settings.MaxConcurrentActivityFunctions,
            MaxConcurrentOrchestrations = settings.MaxConcurrentOrchestratorFunctions,
        });
        var client = new DurableTaskClient(backend, new DurableTaskClientOptions { Registry = registry });
        await worker.StartAsync(cancellationToken).ConfigureAwait(false);

        var o = new Narrator(stdout);
        await o.LineAsync($"Support-desk refund incident ({agent.Name} agent)").ConfigureAwait(false);
        await o.LineAsync($"  state:    {settings.Describe()}").ConfigureAwait(false);
        await o.LineAsync($"  model:    {runtime.ModelDescription}").ConfigureAwait(false);
        await o.LineAsync($"  payments: {runtime.PaymentsDescription}").ConfigureAwait(false);
        await o.LineAsync("  tools:    " + string.Join(", ", agent.Tools.Tools.Select(t =>
            $"{t.Name} ({(t.Effect == ToolEffect.Write ? "write" : "read")}{(t.RequiresConfirmation ? ", confirmed by a person" : string.Empty)})"))).ConfigureAwait(false);

        string conversationId = NewConversationId();
        await Conversations.StartAsync(client, new ConversationState(conversationId, SupportDeskAgent.NewConversation()) { TurnOptions = agent.TurnOptions }, cancellationToken).ConfigureAwait(false);
        await o.LineAsync().ConfigureAwait(false);
        await o.LineAsync($"customer> {SupportDeskAgent.IncidentMessage}").ConfigureAwait(false);
        await Conversations.SendUserMessageAsync(client, conversationId, SupportDeskAgent.IncidentMessage, cancellationToken).ConfigureAwait(false);
        string turnId = Conversations.TurnInstanceId(conversationId, 1);
        await o.LineAsync($"  conversation {conversationId}; this turn is durable orchestration {turnId} (accepted before this line was printed)").ConfigureAwait(false);

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(3));
        var decided = new HashSet<string>(StringComparer.Ordinal);
        var decisions = new List<bool>();
        OrchestrationMetadata done = await WatchTurnAsync(client, turnId, o, decided, decisions, options, timeout.Token).ConfigureAwait(false);

        TurnOutput? output = done.RuntimeStatus == OrchestrationRuntimeStatus.Completed ? done.ReadOutputAs<TurnOutput>() : null;
        IReadOnlyList<HistoryEvent> history = await client.GetHistoryAsync(turnId, cancellationToken).ConfigureAwait(false);
        Dictionary<string, string> keys = IdempotencyKeysByCall(history);
        if (output is not null)
        {
            await o.NarrateAsync(output.Messages, keys).ConfigureAwait(false);
        }

        IReadOnlyList<LedgerEffect> ledger = runtime.Payments is null ? [] : await PaymentsLedger.ReadAsync(runtime.Payments, cancellationToken).ConfigureAwait(false);
        LedgerEffect[] effects = [.. ledger.Where(e => keys.ContainsValue(e.IdempotencyKey))];
        IReadOnlyList<ModelMessage> messages = output?.Messages ?? [];
        int toolCalls = messages.Where(m => m.Role == ModelRole.Assistant).Sum(m => m.ToolCalls.Count);
        int duplicates = messages.Count(m => m.Role == ModelRole.Tool && ResultStatus(m.Content) == "already_done");
        int rejected = messages.Count(m => m.Role == ModelRole.Tool && ValidationErrors.Contains(ResultError(m.Content)));
        int executions = history.OfType<TaskScheduledEvent>().Count(e => e.Name == TurnRegistration.ExecuteToolActivity);

        await o.LineAsync().ConfigureAwait(false);
        await o.LineAsync($"Turn {turnId}: {done.RuntimeStatus}{(output is null ? $" ({done.FailureDetails?.ErrorMessage})" : $", {output.Outcome}")}, {history.Count} history events").ConfigureAwait(false);
        await o.LineAsync($"  {toolCalls} tool calls proposed, {rejected} rejected by validation, {executions} executed, {duplicates} duplicate(s) refused").ConfigureAwait(false);
        await o.LineAsync($"  payments ledger for this conversation: {(effects.Length == 0 ? "no effect" : string.Join("; ", effects.Select(e => $"{e.Id} {e.Kind} {e.Amount.ToString("0.00", CultureInfo.InvariantCulture)} {e.Currency} for {e.OrderId}, key {e.IdempotencyKey}")))}").ConfigureAwait(false);

        await worker.StopAsync(cancellationToken).ConfigureAwait(false);
        telemetry?.Dispose();
        if (options.Json)
        {
            var summary = new JsonObject
            {
                ["instanceId"] = turnId,
                ["conversationId"] = conversationId,
                ["status"] = done.RuntimeStatus.ToString(),
                ["outcome"] = output?.Outcome.ToString(),
                ["toolCalls"] = toolCalls,
                ["toolExecutions"] = executions,
                ["effectsExecuted"] = effects.Length,
                ["duplicatesPrevented"] = duplicates,
                ["rejectedByValidation"] = rejected,
                ["confirmationsApproved"] = decisions.Count(d => d),
                ["confirmationsRejected"] = decisions.Count(d => !d),
                ["modelCalls"] = output?.ModelCalls,
                ["historyEvents"] = history.Count,
                ["reply"] = output?.Message,
            };
            await stdout.WriteLineAsync(summary.ToJsonString()).ConfigureAwait(false);
        }

        return done.RuntimeStatus == OrchestrationRuntimeStatus.Completed && output?.Outcome == TurnOutcome.Answered ? 0 : 1;
    }

    /// <summary>Follows the turn until it ends, narrating up to each confirmation and deciding it.</summary>
    private static async Task<OrchestrationMetadata> WatchTurnAsync(
        DurableTaskClient client, string turnId, Narrator o, HashSet<string> decided, List<bool> decisions, DemoOptions options, CancellationToken cancellationToken)
    {
        while (true)
        {
            // The turn is a sub-orchestration the conversation schedules; it may not exist yet.
            OrchestrationMetadata? turn = await client.GetInstanceAsync(turnId, cancellationToken).ConfigureAwait(false);
            if (turn is { IsCompleted: true })
            {
                return turn;
            }

            TurnStatus? status = turn?.ReadCustomStatusAs<TurnStatus>();
            PendingConfirmation[] pending = [.. (status?.PendingConfirmations ?? []).Where(p => !decided.Contains(p.ToolCallId))];
            if (pending.Length > 0)
            {
                IReadOnlyList<HistoryEvent> history = await client.GetHistoryAsync(turnId, cancellationToken).ConfigureAwait(false);
                await o.NarrateAsync(MessagesSoFar(history), IdempotencyKeysByCall(history)).ConfigureAwait(false);
                if (status!.Plan is { } plan)
                {
                    await o.PlanAsync(plan).ConfigureAwait(false);
                }

                foreach (PendingConfirmation p in pending)
                {
                    await o.CardAsync(p).ConfigureAwait(false);
                    bool approve = options.Approve ?? await AskAsync(o).ConfigureAwait(false);
                    var decision = new ConfirmationDecision(approve, p.ArgumentsHash, "demo terminal");
                    ConfirmationDecisionResult result = await TurnConfirmations.DecideAsync(client, turnId, p.ToolCallId, decision, TimeProvider.System, cancellationToken).ConfigureAwait(false);
                    decided.Add(p.ToolCallId);
                    decisions.Add(approve);
                    await o.LineAsync($"  {(approve ? "Approved" : "Rejected")}, bound to hash {p.ArgumentsHash[..12]}...: {(result == ConfirmationDecisionResult.Accepted ? "the turn has the decision" : $"refused ({result})")}").ConfigureAwait(false);
                }

                continue;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(25), TimeProvider.System, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The conversation as the turn's latest model call saw it, plus that call's reply.</summary>
    private static List<ModelMessage> MessagesSoFar(IReadOnlyList<HistoryEvent> history)
    {
        TaskScheduledEvent? propose = history.OfType<TaskScheduledEvent>().LastOrDefault(e => e.Name == TurnRegistration.ProposeActivity);
        if (propose?.Input is null)
        {
            return [];
        }

        var messages = DataConverter.Default.Deserialize<ProposeInputView>(propose.Input)?.Messages.ToList() ?? [];
        TaskCompletedEvent? reply = history.OfType<TaskCompletedEvent>().FirstOrDefault(c => c.TaskScheduledId == propose.EventId);
        if (reply?.Result is not null && DataConverter.Default.Deserialize<ModelReply>(reply.Result) is { } r)
        {
            messages.Add(ModelMessage.FromReply(r));
        }

        return messages;
    }

    /// <summary>The idempotency key each executed write was sent with, read from the ExecuteTool inputs in history.</summary>
    private static Dictionary<string, string> IdempotencyKeysByCall(IReadOnlyList<HistoryEvent> history)
    {
        var keys = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (TaskScheduledEvent e in history.OfType<TaskScheduledEvent>().Where(e => e.Name == TurnRegistration.ExecuteToolActivity && e.Input is not null))
        {
            if (DataConverter.Default.Deserialize<ExecuteToolView>(e.Input!) is { IdempotencyKey: { } key } call)
            {
                keys[call.ToolCallId] = key;
            }
        }

        return keys;
    }

    private static string? ResultError(string? content) => Field(content, "error");

    private static string? ResultStatus(string? content) => Field(content, "status");

    private static string? Field(string? content, string name)
    {
        try
        {
            return content is not null && JsonNode.Parse(content) is JsonObject obj && obj[name] is JsonValue v && v.TryGetValue(out string? s) ? s : null;
        }
        catch (JsonException)
        {
            return null; // a tool result in plain text
        }
    }

    private static string NewConversationId()
    {
#pragma warning disable RS0030 // Not orchestrator code: a fresh conversation id for each demo run, so runs on one database never collide.
        return "support-" + Guid.NewGuid().ToString("N")[..12];
#pragma warning restore RS0030
    }

    private static async Task<bool> AskAsync(Narrator o)
    {
        if (Console.IsInputRedirected)
        {
            await o.LineAsync("  No terminal to ask and no --approve given: approving.").ConfigureAwait(false);
            return true;
        }

        await o.WriteAsync("  Approve this action? [y/N] ").ConfigureAwait(false);
        string? answer = Console.ReadLine();
        return answer is not null && answer.Trim().StartsWith('y');
    }

    /// <summary>The part of the Propose activity's input the demo reads (the activity's own type is internal to the agent layer).</summary>
    private sealed record ProposeInputView(IReadOnlyList<ModelMessage> Messages);

    /// <summary>The part of the ExecuteTool activity's input the demo reads.</summary>
    private sealed record ExecuteToolView(string ToolCallId, string ToolName, string? IdempotencyKey);

    /// <summary>Prints the conversation as it grows, each message once.</summary>
    private sealed class Narrator(TextWriter stdout)
    {
        private int _printed;
        private int _modelCalls;

        public Task LineAsync(string line = "") => stdout.WriteLineAsync(line);

        public Task WriteAsync(string text) => stdout.WriteAsync(text);

        public async Task NarrateAsync(IReadOnlyList<ModelMessage> messages, IReadOnlyDictionary<string, string> keys)
        {
            for (; _printed < messages.Count; _printed++)
            {
                ModelMessage m = messages[_printed];
                switch (m.Role)
                {
                    case ModelRole.Assistant when m.ToolCalls.Count > 0:
                        _modelCalls++;
                        await LineAsync().ConfigureAwait(false);
                        await LineAsync($"model call {_modelCalls}: proposes {m.ToolCalls.Count} tool call(s){(string.IsNullOrWhiteSpace(m.Content) ? string.Empty : $" and says \"{m.Content}\"")}").ConfigureAwait(false);
                        foreach (ModelToolCall call in m.ToolCalls)
                        {
                            await LineAsync($"  [{call.Id}] {call.Name} {call.Arguments}").ConfigureAwait(false);
                        }

                        break;
                    case ModelRole.Assistant:
                        _modelCalls++;
                        await LineAsync().ConfigureAwait(false);
                        await LineAsync($"model call {_modelCalls}: answers in text").ConfigureAwait(false);
                        await LineAsync($"agent> {m.Content}").ConfigureAwait(false);
                        break;
                    case ModelRole.Tool:
                        await LineAsync($"  [{m.ToolCallId}] {Describe(m, keys)}").ConfigureAwait(false);
                        break;
                    default:
                        break; // the system prompt and the customer's message were shown already
                }
            }
        }

        public async Task PlanAsync(ToolCallPlan plan)
        {
            await LineAsync("  plan: " + string.Join(" -> ", plan.Stages.Select((s, i) => $"stage {i + 1} [{string.Join(", ", s)}]"))
                + (plan.Edges.Count == 0 ? string.Empty : "; " + string.Join("; ", plan.Edges.Select(e => $"{e.To} waits for {e.From} ({e.Detail})")))).ConfigureAwait(false);
        }

        public async Task CardAsync(PendingConfirmation p)
        {
            string[] lines =
            [
                $"Confirmation needed: {p.Summary ?? p.ToolName}",
                $"tool       {p.ToolName} (call {p.ToolCallId}, reply {p.ModelCallIndex + 1}, position {p.Position + 1}, stage {p.Stage + 1})",
                $"arguments  {p.Arguments}",
                $"hash       sha256:{p.ArgumentsHash}",
                $"expires    {p.ExpiresAt.ToString("u", CultureInfo.InvariantCulture)} (the turn waits durably, in the store, not in memory)",
            ];
            int width = lines.Max(l => l.Length);
            await LineAsync().ConfigureAwait(false);
            await LineAsync("  +-" + new string('-', width) + "-+").ConfigureAwait(false);
            foreach (string line in lines)
            {
                await LineAsync($"  | {line.PadRight(width)} |").ConfigureAwait(false);
            }

            await LineAsync("  +-" + new string('-', width) + "-+").ConfigureAwait(false);
        }

        private static string Describe(ModelMessage result, IReadOnlyDictionary<string, string> keys)
        {
            string content = result.Content ?? string.Empty;
            string? error = ResultError(content);
            if (error is not null && ValidationErrors.Contains(error))
            {
                return $"REJECTED by validation, not run ({error}): {Field(content, "message")}";
            }

            if (error is not null)
            {
                return $"not run ({error}): {Field(content, "message")}";
            }

            if (ResultStatus(content) == "already_done")
            {
                string earlier = Field(content, "earlier_tool_call_id") ?? "?";
                return $"DUPLICATE refused, no second effect: the same refund as [{earlier}]{(keys.TryGetValue(earlier, out string? k) ? $" (key {k})" : string.Empty)}, answered as already_done with its result";
            }

            return keys.TryGetValue(result.ToolCallId ?? string.Empty, out string? key)
                ? $"executed once with Idempotency-Key {key} -> {content}"
                : $"executed -> {content}";
        }
    }
}

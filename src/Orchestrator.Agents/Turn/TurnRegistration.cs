using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Orchestrator.Agents.Models;
using Orchestrator.Durable;
using Orchestrator.Durable.Client;

namespace Orchestrator.Agents;

/// <summary>Registers the agent turn (orchestrator and activities) with a worker.</summary>
public static class TurnRegistration
{
    /// <summary>The orchestrator name to schedule a turn with (input <see cref="TurnInput"/>, output <see cref="TurnOutput"/>).</summary>
    public const string TurnOrchestrator = "AgentTurn";

    /// <summary>
    /// The conversation orchestrator (input <see cref="ConversationState"/>, instance id = conversation id): one turn
    /// at a time; send user messages with <see cref="Conversations.SendUserMessageAsync"/>.
    /// </summary>
    public const string ConversationOrchestrator = "AgentConversation";

    /// <summary>The Propose activity.</summary>
    public const string ProposeActivity = "ProposeModelReply";

    /// <summary>The ExecuteTool activity.</summary>
    public const string ExecuteToolActivity = "ExecuteTool";

    /// <summary>
    /// Adds the turn orchestrator and its activities. Every tool of <paramref name="tools"/> must have a handler
    /// in <paramref name="handlers"/>, or this throws.
    /// </summary>
    /// <param name="registry">The worker's registry.</param>
    /// <param name="tools">The checked tool set.</param>
    /// <param name="handlers">The code behind each tool.</param>
    /// <param name="model">The chat model the Propose activity calls.</param>
    /// <param name="timeProvider">The clock for tool timeouts and rate limits; the system clock by default.</param>
    /// <param name="loggerFactory">Where turn and tool logs go (each line carries the turn instance id, never argument values); none by default.</param>
    public static DurableTaskRegistry AddAgentTurn(this DurableTaskRegistry registry, ToolRegistry tools, ToolHandlers handlers, IChatModel model, TimeProvider? timeProvider = null, ILoggerFactory? loggerFactory = null) =>
        registry.AddAgentTurn(tools, handlers, model, new AgentTurnOptions { TimeProvider = timeProvider ?? TimeProvider.System, LoggerFactory = loggerFactory });

    /// <summary>
    /// Adds the turn orchestrator and its activities with <paramref name="options"/> (clock, logs, the key that seals
    /// sensitive argument values in history, the journal that detects in-doubt writes). Every tool of
    /// <paramref name="tools"/> must have a handler in <paramref name="handlers"/>, or this throws.
    /// </summary>
    /// <param name="registry">The worker's registry.</param>
    /// <param name="tools">The checked tool set.</param>
    /// <param name="handlers">The code behind each tool.</param>
    /// <param name="model">The chat model the Propose activity calls.</param>
    /// <param name="options">How the turn runs on this worker.</param>
    public static DurableTaskRegistry AddAgentTurn(this DurableTaskRegistry registry, ToolRegistry tools, ToolHandlers handlers, IChatModel model, AgentTurnOptions options)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(tools);
        ArgumentNullException.ThrowIfNull(handlers);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        var missing = tools.Tools.Where(t => handlers.Find(t.Name) is null).Select(t => t.Name).ToArray();
        if (missing.Length > 0)
        {
            throw new ToolRegistryException(missing.Select(m => $"Tool '{m}' has no handler.").ToArray());
        }

        var logger = (options.LoggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Orchestrator.Agents.Turn");
        var sensitive = tools.Tools.Where(t => t.SensitiveArguments.Count > 0).Select(t => t.Name).ToArray();
        if (sensitive.Length > 0 && options.SensitiveValues is null)
        {
            Log.SensitiveValuesInTheClear(logger, string.Join(", ", sensitive));
        }

        var propose = new ProposeActivity(model, tools, options.SensitiveValues, logger);
        var execute = new ExecuteToolActivity(tools, handlers, options, logger);
        return registry
            .AddOrchestrator(TurnOrchestrator, () => new TurnOrchestrator(tools, logger, options.SensitiveValues))
            .AddOrchestrator(ConversationOrchestrator, () => new ConversationOrchestrator())
            .AddActivity(ProposeActivity, () => propose)
            .AddActivity(ExecuteToolActivity, () => execute);
    }
}

/// <summary>How the agent turn runs on one worker: its clock, logs and protections. Defaults suit tests; a host sets <see cref="SensitiveValues"/> and <see cref="CallJournal"/>.</summary>
public sealed record AgentTurnOptions
{
    /// <summary>The clock for tool timeouts and rate limits. Default: the system clock.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Where turn and tool logs go (each line carries the turn instance id, never argument values). Default: none.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>
    /// Seals the values of arguments marked sensitive wherever the turn persists them (the Propose activity's recorded
    /// reply, the turn's messages and output, ExecuteTool inputs); the handler, validation and the confirmation hash see
    /// the real values. Null (the default) stores them in the clear, and registration logs a warning when a tool has
    /// sensitive arguments. Every worker of a task hub needs the same keys.
    /// </summary>
    public SensitiveValueProtector? SensitiveValues { get; init; }

    /// <summary>
    /// Records each write attempt before its handler runs, so a re-run of the same write after a worker died mid-call
    /// is recognised as in doubt (its tool's Reconcile runs before the retry). Must be durable and shared by every
    /// worker of the task hub to see across processes (<see cref="SqliteToolCallJournal"/>). Default: an in-memory
    /// journal per registration, which sees re-runs within this worker process only.
    /// </summary>
    public IToolCallJournal? CallJournal { get; init; }
}

/// <summary>Conversations: start one, send it user messages, find its turns.</summary>
public static class Conversations
{
    /// <summary>Starts a conversation orchestration whose instance id is the conversation id.</summary>
    public static Task<string> StartAsync(DurableTaskClient client, ConversationState state, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(state);
        return client.ScheduleNewOrchestrationInstanceAsync(
            TurnRegistration.ConversationOrchestrator, state, new StartOrchestrationOptions { InstanceId = state.ConversationId }, cancellationToken);
    }

    /// <summary>Queues a user message; it starts a turn as soon as no other turn of the conversation runs.</summary>
    public static Task SendUserMessageAsync(DurableTaskClient client, string conversationId, string text, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        return client.RaiseEventAsync(conversationId, Agents.ConversationOrchestrator.UserMessageEvent, text, cancellationToken);
    }

    /// <summary>The instance id of the conversation's <paramref name="turn"/>-th turn (1-based).</summary>
    public static string TurnInstanceId(string conversationId, int turn) => Agents.ConversationOrchestrator.TurnInstanceId(conversationId, turn);

    /// <summary>The conversation's status, or null when it has none.</summary>
    public static async Task<ConversationStatus?> GetStatusAsync(DurableTaskClient client, string conversationId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        var metadata = await client.GetInstanceAsync(conversationId, cancellationToken).ConfigureAwait(false);
        return metadata?.ReadCustomStatusAs<ConversationStatus>();
    }
}

/// <summary>What <see cref="TurnConfirmations.DecideAsync"/> did with a decision.</summary>
public enum ConfirmationDecisionResult
{
    /// <summary>Sent to the turn.</summary>
    Accepted = 0,

    /// <summary>Refused: no such confirmation is pending (unknown call or instance).</summary>
    NotPending = 1,

    /// <summary>Refused: the confirmation was already decided.</summary>
    AlreadyDecided = 2,

    /// <summary>Refused: the decision carries a different argument hash than the one shown.</summary>
    HashMismatch = 3,

    /// <summary>Refused: the confirmation expired.</summary>
    Expired = 4,
}

/// <summary>Deciding pending confirmations from outside the turn (a webhook, an approvals page, a test).</summary>
public static class TurnConfirmations
{
    /// <summary>The external event that carries the decision on call <paramref name="toolCallId"/>.</summary>
    public static string EventName(string toolCallId) => $"confirm:{toolCallId}";

    /// <summary>
    /// Seals the sensitive values of edited arguments before they go into a <see cref="ConfirmationDecision"/>, so the
    /// event payload stored in history holds no secret; the turn opens them with the same keys. Arguments of a tool
    /// without sensitive arguments come back unchanged.
    /// </summary>
    /// <param name="protector">The task hub's <see cref="AgentTurnOptions.SensitiveValues"/>.</param>
    /// <param name="tools">The tool set.</param>
    /// <param name="toolName">The tool of the call being decided.</param>
    /// <param name="editedArguments">The edited arguments (JSON).</param>
    public static string SealEditedArguments(SensitiveValueProtector protector, ToolRegistry tools, string toolName, string editedArguments)
    {
        ArgumentNullException.ThrowIfNull(protector);
        ArgumentNullException.ThrowIfNull(tools);
        ArgumentNullException.ThrowIfNull(toolName);
        ArgumentNullException.ThrowIfNull(editedArguments);
        return SensitiveArguments.Seal(protector, tools, toolName, editedArguments);
    }

    /// <summary>The turn's custom status, or null when it has none yet.</summary>
    public static async Task<TurnStatus?> GetStatusAsync(DurableTaskClient client, string instanceId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        var metadata = await client.GetInstanceAsync(instanceId, cancellationToken).ConfigureAwait(false);
        return metadata?.ReadCustomStatusAs<TurnStatus>();
    }

    /// <summary>
    /// Checks a decision against the pending confirmation (still pending, same argument hash, not expired) and
    /// only then raises it. The turn checks the hash again itself: a decision raised directly with another hash is
    /// recorded as refused and the turn keeps waiting.
    /// </summary>
    public static async Task<ConfirmationDecisionResult> DecideAsync(
        DurableTaskClient client,
        string instanceId,
        string toolCallId,
        ConfirmationDecision decision,
        TimeProvider timeProvider,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(decision);
        ArgumentNullException.ThrowIfNull(timeProvider);
        var status = await GetStatusAsync(client, instanceId, cancellationToken).ConfigureAwait(false);
        if (status is null)
        {
            return ConfirmationDecisionResult.NotPending;
        }

        var pending = status.PendingConfirmations.FirstOrDefault(p => p.ToolCallId == toolCallId);
        if (pending is null)
        {
            return status.Decided.Any(d => d.ToolCallId == toolCallId) ? ConfirmationDecisionResult.AlreadyDecided : ConfirmationDecisionResult.NotPending;
        }

        if (!string.Equals(pending.ArgumentsHash, decision.ArgumentsHash, StringComparison.Ordinal))
        {
            return ConfirmationDecisionResult.HashMismatch;
        }

        if (timeProvider.GetUtcNow().UtcDateTime >= pending.ExpiresAt)
        {
            return ConfirmationDecisionResult.Expired;
        }

        await client.RaiseEventAsync(instanceId, pending.EventName, decision, cancellationToken).ConfigureAwait(false);
        return ConfirmationDecisionResult.Accepted;
    }

    /// <summary>
    /// Decides every confirmation pending now, each bound to the argument hash it shows (for "approve all" on an
    /// approvals page). Confirmations that appear later are not included.
    /// </summary>
    /// <returns>Each pending call's id with what happened to its decision.</returns>
    public static async Task<IReadOnlyList<KeyValuePair<string, ConfirmationDecisionResult>>> DecideAllAsync(
        DurableTaskClient client,
        string instanceId,
        bool approve,
        string? decidedBy,
        TimeProvider timeProvider,
        CancellationToken cancellationToken)
    {
        var status = await GetStatusAsync(client, instanceId, cancellationToken).ConfigureAwait(false);
        var results = new List<KeyValuePair<string, ConfirmationDecisionResult>>();
        foreach (var pending in status?.PendingConfirmations ?? [])
        {
            var result = await DecideAsync(client, instanceId, pending.ToolCallId, new ConfirmationDecision(approve, pending.ArgumentsHash, decidedBy), timeProvider, cancellationToken).ConfigureAwait(false);
            results.Add(new(pending.ToolCallId, result));
        }

        return results;
    }
}

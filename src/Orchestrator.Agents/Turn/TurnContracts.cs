using System.Text.Json.Serialization;
using Orchestrator.Agents.Models;

namespace Orchestrator.Agents;

/// <summary>Per-turn limits. Each one, when reached, ends the turn in <see cref="TurnOutcome.BudgetExhausted"/> naming it.</summary>
public sealed record TurnOptions
{
    /// <summary>Most model calls in one turn. Default 8.</summary>
    public int MaxModelCalls { get; init; } = 8;

    /// <summary>Most tool executions in one turn (rejected, skipped and repeated calls do not count). Default 20.</summary>
    public int MaxToolCalls { get; init; } = 20;

    /// <summary>Most failing calls in a row (rejected by validation or failed when run). Default 3.</summary>
    public int MaxConsecutiveFailures { get; init; } = 3;

    /// <summary>How often the same call (same tool, same arguments) may fail before the turn ends. Default 2.</summary>
    public int MaxSameFailingCall { get; init; } = 2;

    /// <summary>How long a confirmation waits for a human decision. Default 24 hours.</summary>
    public TimeSpan ConfirmationTimeout { get; init; } = TimeSpan.FromHours(24);

    /// <summary>Most tokens (prompt plus completion, as the server reports them) over the turn's model calls; null (the default) for no limit.</summary>
    public int? MaxTotalTokens { get; init; }

    /// <summary>The model's prices, to estimate cost; null (the default) when unknown (then <see cref="MaxCostUsd"/> cannot apply).</summary>
    public ModelPrice? Price { get; init; }

    /// <summary>Most estimated cost of the turn's model calls in US dollars (by <see cref="Price"/>); null (the default) for no limit.</summary>
    public decimal? MaxCostUsd { get; init; }

    /// <summary>
    /// Longest the turn may run, in orchestration time, not counting time spent waiting for human confirmations
    /// (they have their own expiry); null (the default) for no limit. Checked before each model call and each tool execution.
    /// </summary>
    public TimeSpan? MaxDuration { get; init; }

    /// <summary>
    /// The model's context window in tokens; null (the default) sends the whole conversation. When set, the
    /// conversation sent to the model is pruned (<see cref="ConversationPruner"/>) to the window minus the tool
    /// schemas and <see cref="ReservedOutputTokens"/>; the turn's own record keeps every message.
    /// </summary>
    public int? ContextWindowTokens { get; init; }

    /// <summary>Tokens kept free for the model's answer when pruning. Default 1,024.</summary>
    public int ReservedOutputTokens { get; init; } = 1024;

    /// <summary>The model name whose tokenizer counts tokens for pruning. Default <c>gpt-4o</c>.</summary>
    public string TokenizerModel { get; init; } = "gpt-4o";

    /// <summary>Most calls of one plan stage running at once. Default 4.</summary>
    public int MaxParallelCalls { get; init; } = 4;

    /// <summary>Delay before the first retry of a transient tool failure (doubled per retry). Default 1 second.</summary>
    public TimeSpan FirstRetryInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Runs read tools as local activities (<see cref="Orchestrator.Durable.TaskOptions.RunLocally"/>): the worker running
    /// the turn's episode runs them at once and records them with that episode's checkpoint, instead of a queue round
    /// trip and a checkpoint of their own. Default true. A read runs at least once either way. Writes always run as
    /// dispatched activities: one starts only after the episode that decided it is committed.
    /// </summary>
    public bool RunReadsLocally { get; init; } = true;

    internal TurnOptions Validated()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxModelCalls, 1, nameof(MaxModelCalls));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxToolCalls, 0, nameof(MaxToolCalls));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxConsecutiveFailures, 1, nameof(MaxConsecutiveFailures));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxSameFailingCall, 1, nameof(MaxSameFailingCall));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ConfirmationTimeout, TimeSpan.Zero, nameof(ConfirmationTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxParallelCalls, 1, nameof(MaxParallelCalls));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxTotalTokens ?? 1, 1, nameof(MaxTotalTokens));
        if (MaxCostUsd is not null && Price is null)
        {
            throw new ArgumentException("MaxCostUsd needs a Price to estimate cost.", nameof(MaxCostUsd));
        }

        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(MaxDuration ?? TimeSpan.MaxValue, TimeSpan.Zero, nameof(MaxDuration));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(FirstRetryInterval, TimeSpan.Zero, nameof(FirstRetryInterval));
        return this;
    }
}

/// <summary>A model's price per million tokens, in US dollars (an entry of a price table).</summary>
/// <param name="InputPerMillion">Price of a million prompt tokens.</param>
/// <param name="OutputPerMillion">Price of a million completion tokens.</param>
public sealed record ModelPrice(decimal InputPerMillion, decimal OutputPerMillion)
{
    /// <summary>The estimated cost of one call's usage.</summary>
    public decimal CostOf(ModelUsage usage)
    {
        ArgumentNullException.ThrowIfNull(usage);
        return ((usage.InputTokens * InputPerMillion) + (usage.OutputTokens * OutputPerMillion)) / 1_000_000m;
    }
}

/// <summary>A write that already took effect in this conversation, remembered so a re-proposal gets its result instead of a second effect.</summary>
/// <param name="RepeatKey">The semantic-repeat key (<see cref="IdempotencyKeys.SemanticRepeat(string, ValidatedToolCall)"/>).</param>
/// <param name="ToolName">The tool.</param>
/// <param name="ToolCallId">The call that performed it.</param>
/// <param name="IdempotencyKey">The key sent downstream.</param>
/// <param name="Result">The tool result the model read then.</param>
// WARNING: carried between turns in orchestration input and output; change only compatibly.
public sealed record CompletedWrite(string RepeatKey, string ToolName, string ToolCallId, string IdempotencyKey, string Result);

/// <summary>The input of one turn.</summary>
/// <param name="ConversationId">The conversation; part of every idempotency and semantic-repeat key.</param>
/// <param name="Messages">The conversation so far, ending with the user's new message.</param>
// WARNING: persisted as orchestration input.
public sealed record TurnInput(string ConversationId, IReadOnlyList<ModelMessage> Messages)
{
    /// <summary>The limits; defaults when null.</summary>
    public TurnOptions? Options { get; init; }

    /// <summary>Writes done in earlier turns of the conversation (from the previous <see cref="TurnOutput.CompletedWrites"/>).</summary>
    public IReadOnlyList<CompletedWrite> CompletedWrites { get; init; } = [];
}

/// <summary>How a turn ended.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<TurnOutcome>))]
public enum TurnOutcome
{
    /// <summary>The model answered in text.</summary>
    Answered = 0,

    /// <summary>A budget ended the turn; <see cref="TurnOutput.Budget"/> says which.</summary>
    BudgetExhausted = 1,

    /// <summary>The model could not be called (after retries).</summary>
    ModelFailed = 2,

    /// <summary>The turn orchestration itself failed (a bug or a non-determinism error); seen by the conversation, never returned by a turn.</summary>
    Failed = 3,
}

/// <summary>The budgets, as named in <see cref="TurnOutput.Budget"/>.</summary>
public static class TurnBudgets
{
    /// <summary>Too many model calls.</summary>
    public const string ModelCalls = "model_calls";

    /// <summary>Too many tool executions.</summary>
    public const string ToolCalls = "tool_calls";

    /// <summary>Too many failing calls in a row.</summary>
    public const string ConsecutiveFailures = "consecutive_failures";

    /// <summary>The same call failed too often.</summary>
    public const string SameFailingCall = "same_failing_call";

    /// <summary>Too many tokens.</summary>
    public const string Tokens = "tokens";

    /// <summary>The estimated cost went over the limit.</summary>
    public const string Cost = "cost";

    /// <summary>The turn ran too long (confirmation waits excluded).</summary>
    public const string WallClock = "wall_clock";
}

/// <summary>The output of one turn.</summary>
/// <param name="Outcome">How it ended.</param>
/// <param name="Budget">For <see cref="TurnOutcome.BudgetExhausted"/>, which budget (<see cref="TurnBudgets"/>).</param>
/// <param name="Message">The model's answer, or what ended the turn.</param>
/// <param name="Messages">The whole conversation after the turn: the input messages, then every assistant message and tool result of the turn.</param>
/// <param name="CompletedWrites">Writes done in the conversation so far; pass to the next turn.</param>
/// <param name="ModelCalls">Model calls made.</param>
/// <param name="ToolCalls">Tool executions made.</param>
// WARNING: persisted as orchestration output.
public sealed record TurnOutput(
    TurnOutcome Outcome,
    string? Budget,
    string? Message,
    IReadOnlyList<ModelMessage> Messages,
    IReadOnlyList<CompletedWrite> CompletedWrites,
    int ModelCalls,
    int ToolCalls)
{
    /// <summary>Tokens used by the turn's model calls, as the server reported them.</summary>
    public int TotalTokens { get; init; }

    /// <summary>Estimated cost of the turn's model calls in US dollars, when a price was given.</summary>
    public decimal? CostUsd { get; init; }
}

/// <summary>A write waiting for a human decision, as shown in the turn's custom status.</summary>
/// <param name="ToolCallId">The call.</param>
/// <param name="ToolName">The tool.</param>
/// <param name="Arguments">The canonical arguments the decision is bound to (sensitive values redacted; the hash covers the real ones).</param>
/// <param name="ArgumentsHash">SHA-256 of the canonical arguments: a decision must carry it.</param>
/// <param name="Summary">The rendered summary, for example "Refund $47.00 for order A8472".</param>
/// <param name="ModelCallIndex">Which model reply proposed it.</param>
/// <param name="Position">Its position in that reply.</param>
/// <param name="Stage">Its stage in the plan.</param>
/// <param name="ExpiresAt">When the wait ends as expired (UTC, orchestration time).</param>
/// <param name="EventName">The external event that carries the decision.</param>
public sealed record PendingConfirmation(
    string ToolCallId,
    string ToolName,
    string Arguments,
    string ArgumentsHash,
    string? Summary,
    int ModelCallIndex,
    int Position,
    int Stage,
    DateTime ExpiresAt,
    string EventName);

/// <summary>A human decision on a <see cref="PendingConfirmation"/>, raised as its external event.</summary>
/// <param name="Approve">True to run the call, false to reject it.</param>
/// <param name="ArgumentsHash">The <see cref="PendingConfirmation.ArgumentsHash"/> the decider saw; a different hash is refused.</param>
/// <param name="DecidedBy">Who decided, for the record.</param>
// WARNING: persisted as an event payload.
public sealed record ConfirmationDecision(bool Approve, string ArgumentsHash, string? DecidedBy = null)
{
    /// <summary>
    /// Approve with these arguments instead (JSON). They go through full validation again; invalid ones, or ones
    /// that name another resource, are refused and the turn keeps waiting. The edit is recorded.
    /// </summary>
    public string? EditedArguments { get; init; }
}

/// <summary>A decision the turn refused (it kept waiting).</summary>
/// <param name="ToolCallId">The call.</param>
/// <param name="Reason">Why: <c>argument_hash_mismatch</c>, <c>edited_arguments_invalid</c> or <c>edit_changes_resource</c>.</param>
/// <param name="At">When (orchestration time).</param>
public sealed record ConfirmationRefusal(string ToolCallId, string Reason, DateTime At);

/// <summary>A decision the turn took.</summary>
/// <param name="ToolCallId">The call.</param>
/// <param name="Decision"><c>approved</c>, <c>rejected</c> or <c>expired</c>.</param>
/// <param name="DecidedBy">Who decided, when given.</param>
public sealed record ConfirmationRecord(string ToolCallId, string Decision, string? DecidedBy)
{
    /// <summary>When approved with edited arguments: the re-validated canonical arguments (sensitive values redacted).</summary>
    public string? EditedArguments { get; init; }

    /// <summary>When approved with edited arguments: their hash.</summary>
    public string? EditedArgumentsHash { get; init; }
}

/// <summary>The turn's custom status: what it is doing, its plan, what waits for a human.</summary>
/// <param name="Phase"><c>proposing</c>, <c>executing</c> or <c>awaiting_confirmation</c>.</param>
/// <param name="ModelCalls">Model calls so far.</param>
/// <param name="ToolCalls">Tool executions so far.</param>
/// <param name="Plan">The plan of the current reply.</param>
/// <param name="PendingConfirmations">Writes waiting for a decision.</param>
/// <param name="Decided">Decisions taken in this turn.</param>
/// <param name="Refusals">Decisions refused in this turn.</param>
public sealed record TurnStatus(
    string Phase,
    int ModelCalls,
    int ToolCalls,
    ToolCallPlan? Plan,
    IReadOnlyList<PendingConfirmation> PendingConfirmations,
    IReadOnlyList<ConfirmationRecord> Decided,
    IReadOnlyList<ConfirmationRefusal> Refusals)
{
    /// <summary>
    /// Writes whose outcome was in doubt (a worker died after calling out, before the result was recorded), with how
    /// each was resolved. They appear once the re-run that found them in doubt has finished.
    /// </summary>
    public IReadOnlyList<InDoubtCall> InDoubt { get; init; } = [];
}

/// <summary>A write found in doubt: an earlier attempt called out and never recorded its result.</summary>
/// <param name="ToolCallId">The call.</param>
/// <param name="ToolName">The tool.</param>
/// <param name="IdempotencyKey">The key every attempt sent.</param>
/// <param name="Resolution">
/// <c>reconciled_performed</c> (the tool's Reconcile found the effect; its result was used and nothing was sent again),
/// <c>retried</c> (sent again with the same key, after Reconcile found nothing or could not tell, or without one), or
/// <c>failed</c> (the retry failed).
/// </param>
public sealed record InDoubtCall(string ToolCallId, string ToolName, string? IdempotencyKey, string Resolution);

/// <summary>Input of the Propose activity.</summary>
/// <param name="Messages">The conversation to send.</param>
// WARNING: persisted in history (activity input).
internal sealed record ProposeInput(IReadOnlyList<ModelMessage> Messages)
{
    /// <summary>The conversation, for telemetry; null in histories written before it existed.</summary>
    public string? ConversationId { get; init; }
}

/// <summary>Input of the ExecuteTool activity.</summary>
/// <param name="ConversationId">The conversation.</param>
/// <param name="ToolCallId">The call.</param>
/// <param name="ToolName">The tool.</param>
/// <param name="Arguments">The canonical arguments, sensitive values sealed when a key is configured.</param>
/// <param name="IdempotencyKey">For writes, the key derived from the call's durable identity.</param>
// WARNING: persisted in history (activity input).
internal sealed record ExecuteToolInput(string ConversationId, string ToolCallId, string ToolName, string Arguments, string? IdempotencyKey);

/// <summary>What one tool execution returned.</summary>
/// <param name="Succeeded">False when the tool reported a permanent failure.</param>
/// <param name="Content">The tool result for the model.</param>
// WARNING: persisted in history (activity output).
internal sealed record ToolExecutionResult(bool Succeeded, string Content)
{
    /// <summary>An earlier attempt of this write called out and never recorded its result; false in older histories.</summary>
    public bool InDoubt { get; init; }

    /// <summary>What the tool's Reconcile answered before this attempt, when it ran.</summary>
    public ReconcileStatus? Reconciled { get; init; }
}

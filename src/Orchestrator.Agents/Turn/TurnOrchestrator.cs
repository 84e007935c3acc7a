using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Orchestrator.Agents.Models;
using Orchestrator.Durable;

namespace Orchestrator.Agents;

/// <summary>
/// One conversation turn as a durable orchestration: propose (model call), validate, plan, confirm, execute,
/// feed back, until the model answers in text or a budget ends the turn.
/// </summary>
/// <remarks>
/// Orchestrator code: deterministic. Time comes from the context, ids from the model reply and the
/// instance, idempotency keys from <see cref="IdempotencyKeys"/>; validation and planning are pure functions
/// of the recorded reply, so a replay takes the same decisions.
/// </remarks>
internal sealed class TurnOrchestrator(ToolRegistry tools, ILogger logger, SensitiveValueProtector? protector) : TaskOrchestrator<TurnInput, TurnOutput>
{
    public override Task<TurnOutput> RunAsync(TaskOrchestrationContext context, TurnInput input) =>
        new TurnRun(context, tools, input, context.CreateReplaySafeLogger(logger), protector).RunAsync();
}

internal sealed class TurnRun
{
    private readonly TaskOrchestrationContext _context;
    private readonly ILogger _logger;
    private readonly ToolRegistry _tools;
    private readonly ToolCallValidator _validator;
    private readonly ToolCallPlanner _planner;
    private readonly TurnOptions _options;
    private readonly string _conversationId;
    private readonly List<ModelMessage> _messages;
    private readonly Dictionary<string, CompletedWrite> _completed;
    private readonly List<CompletedWrite> _completedOrder;
    private readonly Dictionary<string, int> _failuresByCall = new(StringComparer.Ordinal);
    private readonly List<PendingConfirmation> _pending = [];
    private readonly List<ConfirmationRecord> _decided = [];
    private readonly List<ConfirmationRefusal> _refusals = [];
    private readonly List<InDoubtCall> _inDoubt = [];
    private readonly HashSet<string> _nearBudgetWarned = new(StringComparer.Ordinal);
    private readonly SensitiveValueProtector? _protector;
    private ToolCallPlan? _plan;
    private string _phase = "proposing";
    private int _modelCalls;
    private int _toolCalls;
    private int _consecutiveFailures;
    private int _tokens;
    private int? _schemaTokens;
    private decimal _cost;
    private DateTime _startedAt;
    private TimeSpan _waitedForHumans;
    private string? _budgetHit;

    internal TurnRun(TaskOrchestrationContext context, ToolRegistry tools, TurnInput input, ILogger logger, SensitiveValueProtector? protector = null)
    {
        _context = context;
        _protector = protector;
        _logger = logger;
        _tools = tools;
        _validator = new ToolCallValidator(tools);
        _planner = new ToolCallPlanner(tools);
        _options = (input.Options ?? new TurnOptions()).Validated();
        _conversationId = input.ConversationId;
        _messages = [.. input.Messages];
        _completedOrder = [.. input.CompletedWrites];
        _completed = new Dictionary<string, CompletedWrite>(StringComparer.Ordinal);
        foreach (var write in input.CompletedWrites)
        {
            _completed.TryAdd(write.RepeatKey, write);
        }
    }

    internal async Task<TurnOutput> RunAsync()
    {
        _startedAt = _context.CurrentUtcDateTime;
        while (true)
        {
            if (_modelCalls >= _options.MaxModelCalls)
            {
                return End(TurnOutcome.BudgetExhausted, TurnBudgets.ModelCalls, $"The turn ended: the model was called {_modelCalls} times without answering (limit {_options.MaxModelCalls}).");
            }

            if (OutOfTime())
            {
                return End(TurnOutcome.BudgetExhausted, TurnBudgets.WallClock, BudgetMessage(TurnBudgets.WallClock));
            }

            int index = _modelCalls++;
            _phase = "proposing";
            _plan = null;
            PublishStatus();

            ModelReply reply;
            try
            {
                reply = await _context.CallActivityAsync<ModelReply>(TurnRegistration.ProposeActivity, new ProposeInput(MessagesForModel()) { ConversationId = _conversationId }, ModelRetry);
            }
            catch (TaskFailedException ex)
            {
                return End(TurnOutcome.ModelFailed, null, $"The turn ended: the model could not be called ({ex.FailureDetails.ErrorMessage}).");
            }

            _tokens += reply.Usage?.TotalTokens ?? 0;
            decimal replyCost = reply.Usage is not null && _options.Price is { } price ? price.CostOf(reply.Usage) : 0m;
            _cost += replyCost;
            if (!_context.IsReplaying && reply.Usage is { } usage)
            {
                AgentTelemetry.RecordTokens(usage.InputTokens, usage.OutputTokens);
                if (_options.Price is not null)
                {
                    AgentTelemetry.RecordCost(replyCost);
                }
            }

            WarnNearBudgets();

            if (_options.MaxCostUsd is { } maxCost && _cost >= maxCost)
            {
                _budgetHit ??= TurnBudgets.Cost;
            }

            if (_options.MaxTotalTokens is { } maxTokens && _tokens >= maxTokens)
            {
                // The calls of a reply that went over the token budget are answered as not run: no further effects.
                _budgetHit ??= TurnBudgets.Tokens;
            }

            IReadOnlyList<ProposedToolCall> proposed;
            IReadOnlyList<RejectedToolCall> unparseable = [];
            ModelMessage assistant;
            if (reply.HasToolCalls)
            {
                // Calls are taken from the calls themselves, whatever the finish reason says. Sensitive values are sealed
                // in the recorded reply; validation, hashing and execution need the real ones, held only in memory.
                proposed = reply.ToolCalls.Select(c => new ProposedToolCall(c.Id, c.Name, SensitiveArguments.Open(_protector, _tools, c.Name, c.Arguments))).ToArray();
                assistant = ModelMessage.FromReply(reply);
            }
            else
            {
                // A text that writes calls is stored sealed when tools have sensitive arguments; it is parsed opened, in memory.
                var parsed = TextToolCallParser.Parse(SensitiveArguments.OpenText(_protector, reply.Text), string.Create(CultureInfo.InvariantCulture, $"{_context.InstanceId}:{index}"));
                if (parsed.IsPlainText)
                {
                    _messages.Add(ModelMessage.FromReply(reply));
                    return End(TurnOutcome.Answered, null, reply.Text ?? reply.Refusal);
                }

                proposed = parsed.Calls;
                unparseable = parsed.Errors.Select(e => e.ToRejection()).ToArray();

                // The calls were in the text; the conversation records them as tool calls so every result pairs with an id.
                var calls = parsed.Calls.Select(c => new ModelToolCall(c.Id, c.Name, SensitiveArguments.Seal(_protector, _tools, c.Name, c.RawArguments)))
                    .Concat(unparseable.Select(r => new ModelToolCall(r.ToolCallId, r.ToolName.Length > 0 ? r.ToolName : "unparseable", "{}")))
                    .ToArray();
                assistant = ModelMessage.Assistant(parsed.Text.Length > 0 ? parsed.Text : null, calls);
            }

            _messages.Add(assistant);
            var results = await HandleReplyAsync(index, proposed);
            foreach (var rejection in unparseable)
            {
                results.Add(rejection.ToModelContent());
                RecordFailure($"unparseable|{rejection.RedactedArguments}");
            }

            // Exactly one result per call, in the order of the assistant message.
            for (int i = 0; i < assistant.ToolCalls.Count; i++)
            {
                _messages.Add(ModelMessage.ToolResult(assistant.ToolCalls[i].Id, results[i]));
            }

            if (_budgetHit is not null)
            {
                return End(TurnOutcome.BudgetExhausted, _budgetHit, BudgetMessage(_budgetHit));
            }
        }
    }

    private IReadOnlyList<ModelMessage> MessagesForModel()
    {
        if (_options.ContextWindowTokens is not { } window)
        {
            return [.. _messages];
        }

        _schemaTokens ??= ToolSchemaCost.Measure(_tools, new ToolSchemaCostOptions { ModelName = _options.TokenizerModel, ContextWindowTokens = window }).TotalTokens;
        return ConversationPruner.Prune(_messages, window - _schemaTokens.Value - _options.ReservedOutputTokens, _options.TokenizerModel);
    }

    private bool OutOfTime() =>
        _options.MaxDuration is { } max && _context.CurrentUtcDateTime - _startedAt - _waitedForHumans >= max;

    private static TaskOptions ModelRetry { get; } = TaskOptions.FromRetryPolicy(
        new RetryPolicy(3, TimeSpan.FromSeconds(1), 2.0) { Handle = f => f.IsCausedBy<TransientToolFailureException>() });

    private async Task<List<string>> HandleReplyAsync(int index, IReadOnlyList<ProposedToolCall> proposed)
    {
        var outcomes = new CallOutcome?[proposed.Count];
        ToolCallValidationReport report;
        using (var span = LiveSpan(AgentTelemetry.ValidationSpan))
        {
            report = _validator.ValidateAll(proposed);
            span?.SetTag(AgentTelemetry.ToolCallCountTag, proposed.Count);
            span?.SetTag(AgentTelemetry.OutcomeTag, report.Rejected.Count == 0 ? "valid" : $"rejected:{report.Rejected.Count}");
        }

        foreach (var rejected in report.Rejected)
        {
            Log.CallRejected(_logger, _context.InstanceId, rejected.ToolCallId, rejected.ToolName, RejectedToolCall.ErrorCode(rejected.Kind));
            outcomes[rejected.Position] = CallOutcome.Failed(rejected.ToModelContent(), "was rejected by validation");
            CountCall(rejected.ToolName, "rejected");
        }

        using (var span = LiveSpan(AgentTelemetry.PlanSpan))
        {
            _plan = _planner.Plan(report.Valid);
            span?.SetTag(AgentTelemetry.ToolCallCountTag, _plan.Calls.Count);
            span?.SetTag(AgentTelemetry.OutcomeTag, _plan.Rejected.Count == 0 ? "planned" : $"refused:{_plan.Rejected.Count}");
        }

        _phase = "executing";
        PublishStatus();
        foreach (var rejected in _plan.Rejected)
        {
            outcomes[rejected.Position] = CallOutcome.Failed(ToolHandlers.ErrorContent("plan_rejected", rejected.Reason), "was refused by the planner");
            CountCall(proposed[rejected.Position].Name, "plan_rejected");
        }

        // Failures are counted in the model's order, so the budgets do not depend on completion order.
        foreach (var rejected in report.Rejected.Select(r => (r.Position, Key: $"{r.ToolName}|{r.RedactedArguments}"))
            .Concat(_plan.Rejected.Select(r => (r.Position, Key: $"{r.ToolName}|plan")))
            .OrderBy(r => r.Position))
        {
            RecordFailure(rejected.Key);
        }

        var byId = report.Valid.ToDictionary(v => v.ToolCallId, StringComparer.Ordinal);
        var stageOf = _plan.Calls.ToDictionary(c => c.ToolCallId, c => c.Stage, StringComparer.Ordinal);
        var skipped = new Dictionary<string, SkippedToolCall>(StringComparer.Ordinal);
        foreach (var stage in _plan.Stages)
        {
            var calls = stage.Select(id => byId[id]).ToArray();
            foreach (var chunk in Waves(calls))
            {
                var running = chunk.Select(c => RunCallAsync(index, c, stageOf[c.ToolCallId], skipped)).ToArray();
                var done = await Task.WhenAll(running);
                for (int i = 0; i < chunk.Length; i++)
                {
                    var call = chunk[i];
                    var outcome = done[i];
                    outcomes[call.Position] = outcome;
                    CountCall(call.ToolName, outcome.Metric);
                    if (outcome.Counts == CallCount.Success)
                    {
                        _consecutiveFailures = 0;
                    }
                    else if (outcome.Counts == CallCount.Failure)
                    {
                        RecordFailure($"{call.ToolName}|{call.ArgumentsHash}");
                    }

                    if (outcome.FailureText is not null)
                    {
                        foreach (var skip in _plan.SkipsAfterFailure(call.ToolCallId, outcome.FailureText))
                        {
                            skipped.TryAdd(skip.ToolCallId, skip);
                        }
                    }
                }
            }
        }

        return outcomes.Select((o, i) => o?.Content ?? ToolHandlers.ErrorContent("not_run", $"Call at position {i} was not run.")).ToList();
    }

    /// <summary>Splits a stage into waves of at most MaxParallelCalls calls, each tool within its MaxConcurrency, in the model's order.</summary>
    private IEnumerable<ValidatedToolCall[]> Waves(IReadOnlyList<ValidatedToolCall> calls)
    {
        var remaining = calls.ToList();
        while (remaining.Count > 0)
        {
            var wave = new List<ValidatedToolCall>();
            var perTool = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var call in remaining)
            {
                if (wave.Count >= _options.MaxParallelCalls)
                {
                    break;
                }

                int running = perTool.GetValueOrDefault(call.ToolName);
                if (_tools.TryGet(call.ToolName, out var tool) && tool.MaxConcurrency is { } limit && running >= limit)
                {
                    continue;
                }

                perTool[call.ToolName] = running + 1;
                wave.Add(call);
            }

            if (wave.Count == 0)
            {
                wave.Add(remaining[0]);
            }

            remaining.RemoveAll(wave.Contains);
            yield return [.. wave];
        }
    }

    private async Task<CallOutcome> RunCallAsync(int index, ValidatedToolCall call, int stage, Dictionary<string, SkippedToolCall> skipped)
    {
        if (skipped.TryGetValue(call.ToolCallId, out var skip))
        {
            return CallOutcome.Neutral(ToolHandlers.ErrorContent("skipped", skip.Reason), "was skipped");
        }

        if (_budgetHit is not null)
        {
            return CallOutcome.Neutral(ToolHandlers.ErrorContent("not_run", BudgetMessage(_budgetHit)), "was not run (budget)");
        }

        _tools.TryGet(call.ToolName, out var tool);
        string? repeatKey = null;
        if (call.Effect == ToolEffect.Write)
        {
            repeatKey = IdempotencyKeys.SemanticRepeat(_conversationId, call);
            if (tool!.SemanticRepeat == SemanticRepeatPolicy.ReturnEarlierResult && _completed.TryGetValue(repeatKey, out var earlier))
            {
                return CallOutcome.Success(AlreadyDone(earlier)) with { Metric = "already_done" };
            }
        }

        if (OutOfTime())
        {
            _budgetHit ??= TurnBudgets.WallClock;
            return CallOutcome.Neutral(ToolHandlers.ErrorContent("not_run", BudgetMessage(TurnBudgets.WallClock)), "was not run (budget)");
        }

        if (_toolCalls >= _options.MaxToolCalls)
        {
            _budgetHit ??= TurnBudgets.ToolCalls;
            return CallOutcome.Neutral(ToolHandlers.ErrorContent("not_run", BudgetMessage(TurnBudgets.ToolCalls)), "was not run (budget)");
        }

        if (call.Effect == ToolEffect.Write && call.RequiresConfirmation)
        {
            (string decision, ValidatedToolCall approved) = await ConfirmAsync(index, call, stage);
            if (decision != "approved")
            {
                string text = decision == "expired"
                    ? "No one confirmed this action before the confirmation expired; it was not performed."
                    : "A reviewer rejected this action; it was not performed.";
                return CallOutcome.Neutral(ToolHandlers.ErrorContent(decision == "expired" ? "confirmation_expired" : "rejected_by_reviewer", text), decision == "expired" ? "expired waiting for confirmation" : "was rejected by a reviewer");
            }

            if (_budgetHit is not null)
            {
                return CallOutcome.Neutral(ToolHandlers.ErrorContent("not_run", BudgetMessage(_budgetHit)), "was not run (budget)");
            }

            if (!ReferenceEquals(approved, call))
            {
                // Approved with edited (re-validated) arguments: those run, and a repeat is judged on them.
                call = approved;
                repeatKey = IdempotencyKeys.SemanticRepeat(_conversationId, call);
                if (tool!.SemanticRepeat == SemanticRepeatPolicy.ReturnEarlierResult && _completed.TryGetValue(repeatKey, out var earlierEdited))
                {
                    return CallOutcome.Success(AlreadyDone(earlierEdited)) with { Metric = "already_done" };
                }
            }
        }

        _toolCalls++;
        string? key = call.Effect == ToolEffect.Write
            ? IdempotencyKeys.ForCall(new ToolCallIdentity(_conversationId, _context.InstanceId, index, call.Position, call.ToolCallId))
            : null;
        WarnNearBudgets();
        ToolExecutionResult result;
        try
        {
            // History keeps the arguments with sensitive values sealed; the activity opens them for the handler.
            var input = new ExecuteToolInput(_conversationId, call.ToolCallId, call.ToolName, SensitiveArguments.Seal(_protector, _tools, call.ToolName, call.CanonicalArguments), key);
            result = await ExecuteWithRetriesAsync(input, tool!);
        }
        catch (TaskFailedException ex)
        {
            string message = ex.FailureDetails.IsCausedBy<TransientToolFailureException>()
                ? $"The tool kept failing after {tool!.MaxRetries + 1} attempts: {ex.FailureDetails.ErrorMessage}"
                : "The tool failed with an internal error.";
            return CallOutcome.Failed(ToolHandlers.ErrorContent("tool_failed", message), "failed");
        }

        if (result.InDoubt)
        {
            string resolution = !result.Succeeded ? "failed" : result.Reconciled == ReconcileStatus.Performed ? "reconciled_performed" : "retried";
            _inDoubt.Add(new InDoubtCall(call.ToolCallId, call.ToolName, key, resolution));
            Log.InDoubtResolved(_logger, _context.InstanceId, call.ToolCallId, call.ToolName, resolution, key);
            PublishStatus();
        }

        if (!result.Succeeded)
        {
            return CallOutcome.Failed(result.Content, "failed");
        }

        if (repeatKey is not null && key is not null)
        {
            var write = new CompletedWrite(repeatKey, call.ToolName, call.ToolCallId, key, result.Content);
            _completed[repeatKey] = write;
            _completedOrder.Add(write);
        }

        return CallOutcome.Success(result.Content);
    }

    private async Task<(string Decision, ValidatedToolCall Call)> ConfirmAsync(int index, ValidatedToolCall call, int stage)
    {
        var pending = new PendingConfirmation(
            call.ToolCallId,
            call.ToolName,
            call.RedactedArguments,
            call.ArgumentsHash,
            call.Summary,
            index,
            call.Position,
            stage,
            _context.CurrentUtcDateTime.Add(_options.ConfirmationTimeout),
            TurnConfirmations.EventName(call.ToolCallId));
        _pending.Add(pending);
        PublishStatus();
        if (!_context.IsReplaying)
        {
            AgentTelemetry.ConfirmationWaiting(+1);
        }

        Log.ConfirmationPending(_logger, _context.InstanceId, call.ToolCallId, call.ToolName, call.ArgumentsHash);
        var waitStarted = _context.CurrentUtcDateTime;
        try
        {
            while (true)
            {
                var remaining = pending.ExpiresAt - _context.CurrentUtcDateTime;
                if (remaining <= TimeSpan.Zero)
                {
                    return (Decide(call, "expired", null), call);
                }

                ConfirmationDecision decision;
                try
                {
                    decision = await _context.WaitForExternalEvent<ConfirmationDecision>(pending.EventName, remaining);
                }
                catch (TimeoutException)
                {
                    return (Decide(call, "expired", null), call);
                }

                if (decision is null || !string.Equals(decision.ArgumentsHash, call.ArgumentsHash, StringComparison.Ordinal))
                {
                    // Bound to the exact arguments shown: a decision about anything else is refused, and the wait goes on.
                    _refusals.Add(new ConfirmationRefusal(call.ToolCallId, "argument_hash_mismatch", _context.CurrentUtcDateTime));
                    Log.DecisionRefused(_logger, _context.InstanceId, call.ToolCallId, "argument_hash_mismatch");
                    PublishStatus();
                    continue;
                }

                if (decision.Approve && decision.EditedArguments is { } edited)
                {
                    // Edited arguments may arrive sealed (TurnConfirmations.SealEditedArguments), so the event payload in history holds no secret.
                    string editedOpen;
                    try
                    {
                        editedOpen = SensitiveArguments.Open(_protector, _tools, call.ToolName, edited);
                    }
                    catch (SensitiveValueException)
                    {
                        // Sealed with a key this host does not hold, or altered: not JSON, so refused as invalid below.
                        editedOpen = string.Empty;
                    }

                    var revalidated = _validator.Validate(new ProposedToolCall(call.ToolCallId, call.ToolName, editedOpen), call.Position);
                    string? problem = revalidated.Valid is null
                        ? "edited_arguments_invalid"
                        : !revalidated.Valid.ResourceKeys.SequenceEqual(call.ResourceKeys, StringComparer.Ordinal) ? "edit_changes_resource" : null;
                    if (problem is not null)
                    {
                        // The plan was built on the resource the call names, and nothing runs unvalidated: refuse, keep waiting.
                        _refusals.Add(new ConfirmationRefusal(call.ToolCallId, problem, _context.CurrentUtcDateTime));
                        Log.DecisionRefused(_logger, _context.InstanceId, call.ToolCallId, problem);
                        PublishStatus();
                        continue;
                    }

                    _decided.Add(new ConfirmationRecord(call.ToolCallId, "approved", decision.DecidedBy)
                    {
                        EditedArguments = revalidated.Valid!.RedactedArguments,
                        EditedArgumentsHash = revalidated.Valid.ArgumentsHash,
                    });
                    return ("approved", revalidated.Valid);
                }

                return (Decide(call, decision.Approve ? "approved" : "rejected", decision.DecidedBy), call);
            }
        }
        finally
        {
            _waitedForHumans += _context.CurrentUtcDateTime - waitStarted;
            _pending.Remove(pending);
            PublishStatus();
            if (!_context.IsReplaying)
            {
                AgentTelemetry.ConfirmationWaiting(-1);
            }

        }
    }

    private string Decide(ValidatedToolCall call, string decision, string? decidedBy)
    {
        _decided.Add(new ConfirmationRecord(call.ToolCallId, decision, decidedBy));
        return decision;
    }

    /// <summary>How a read runs when <see cref="TurnOptions.RunReadsLocally"/> is set.</summary>
    private static readonly TaskOptions RunLocally = new() { RunLocally = true };

    /// <summary>
    /// Runs ExecuteTool, retrying transient failures up to the tool's cap on durable timers. The same input (and so the
    /// same idempotency key) goes to every attempt. History has the same shape as the engine's own retry policy.
    /// </summary>
    private async Task<ToolExecutionResult> ExecuteWithRetriesAsync(ExecuteToolInput input, ToolDefinition tool)
    {
        for (int retry = 1; ; retry++)
        {
            try
            {
                return await _context.CallActivityAsync<ToolExecutionResult>(TurnRegistration.ExecuteToolActivity, input, tool.Effect == ToolEffect.Read && _options.RunReadsLocally ? RunLocally : null);
            }
            catch (TaskFailedException ex) when (retry <= tool.MaxRetries && !ex.FailureDetails.IsNonRetriable && ex.FailureDetails.IsCausedBy<TransientToolFailureException>())
            {
                await _context.CreateTimer(_context.CurrentUtcDateTime.Add(RetryDelay(_options.FirstRetryInterval, _context.InstanceId, input.ToolCallId, retry)), CancellationToken.None);
            }
        }
    }

    /// <summary>
    /// The delay before retry <paramref name="retry"/> (1-based): <paramref name="first"/> doubled per retry, times a
    /// jitter factor in [0.5, 1) so calls that failed together do not retry together. The factor is a hash of the
    /// instance, the call and the retry number: different per call, the same on every replay.
    /// </summary>
    internal static TimeSpan RetryDelay(TimeSpan first, string instanceId, string toolCallId, int retry)
    {
        double nominal = first.TotalMilliseconds * Math.Pow(2, retry - 1);
        byte[] hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{instanceId}\n{toolCallId}\n{retry}")));
        double fraction = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(hash) / (ulong.MaxValue + 1.0);
        return TimeSpan.FromMilliseconds(nominal * (0.5 + (0.5 * fraction)));
    }

    private Activity? LiveSpan(string name) =>
        _context.IsReplaying ? null : AgentTelemetry.StartSpan(name, _context.InstanceId, _conversationId);

    private void CountCall(string toolName, string outcome)
    {
        if (!_context.IsReplaying)
        {
            AgentTelemetry.RecordToolCall(toolName, outcome);
        }
    }

    /// <summary>Warns once per budget when a turn has used 80% of it (the replay-safe logger keeps replays quiet).</summary>
    private void WarnNearBudgets()
    {
        Check(TurnBudgets.ModelCalls, _modelCalls, _options.MaxModelCalls);
        Check(TurnBudgets.ToolCalls, _toolCalls, _options.MaxToolCalls);
        if (_options.MaxTotalTokens is { } maxTokens)
        {
            Check(TurnBudgets.Tokens, _tokens, maxTokens);
        }

        if (_options.MaxCostUsd is { } maxCost && maxCost > 0 && _cost >= maxCost * NearBudgetShare && _nearBudgetWarned.Add(TurnBudgets.Cost))
        {
            Log.NearBudget(_logger, _context.InstanceId, TurnBudgets.Cost, _cost.ToString("0.####", CultureInfo.InvariantCulture), maxCost.ToString("0.####", CultureInfo.InvariantCulture));
        }

        if (_options.MaxDuration is { } maxDuration && _context.CurrentUtcDateTime - _startedAt - _waitedForHumans is var used
            && used >= maxDuration * (double)NearBudgetShare && _nearBudgetWarned.Add(TurnBudgets.WallClock))
        {
            Log.NearBudget(_logger, _context.InstanceId, TurnBudgets.WallClock, used.ToString("c", CultureInfo.InvariantCulture), maxDuration.ToString("c", CultureInfo.InvariantCulture));
        }

        void Check(string budget, int used, int limit)
        {
            if (limit > 0 && used >= limit * NearBudgetShare && _nearBudgetWarned.Add(budget))
            {
                Log.NearBudget(_logger, _context.InstanceId, budget, used.ToString(CultureInfo.InvariantCulture), limit.ToString(CultureInfo.InvariantCulture));
            }
        }
    }

    /// <summary>The share of a budget at which the turn warns that it is near.</summary>
    internal const decimal NearBudgetShare = 0.8m;

    private void RecordFailure(string callKey)
    {
        _consecutiveFailures++;
        int count = _failuresByCall[callKey] = _failuresByCall.GetValueOrDefault(callKey) + 1;
        if (count >= _options.MaxSameFailingCall)
        {
            _budgetHit ??= TurnBudgets.SameFailingCall;
        }

        if (_consecutiveFailures >= _options.MaxConsecutiveFailures)
        {
            _budgetHit ??= TurnBudgets.ConsecutiveFailures;
        }
    }

    private string BudgetMessage(string budget) => budget switch
    {
        TurnBudgets.ToolCalls => $"The turn ended: the tool-call limit ({_options.MaxToolCalls}) was reached.",
        TurnBudgets.ConsecutiveFailures => $"The turn ended: {_options.MaxConsecutiveFailures} tool calls in a row failed.",
        TurnBudgets.SameFailingCall => $"The turn ended: the same tool call failed {_options.MaxSameFailingCall} times.",
        TurnBudgets.Tokens => $"The turn ended: it used {_tokens} tokens (limit {_options.MaxTotalTokens}).",
        TurnBudgets.Cost => string.Create(CultureInfo.InvariantCulture, $"The turn ended: its estimated cost ${_cost:0.####} reached the limit ${_options.MaxCostUsd:0.####}."),
        TurnBudgets.WallClock => $"The turn ended: it ran longer than {_options.MaxDuration} (time waiting for confirmations excluded).",
        _ => $"The turn ended: budget '{budget}' was reached.",
    };

    private static string AlreadyDone(CompletedWrite earlier) => new JsonObject
    {
        ["status"] = "already_done",
        ["message"] = $"This exact {earlier.ToolName} call was already performed in this conversation (call '{earlier.ToolCallId}'); it was not performed again.",
        ["earlier_tool_call_id"] = earlier.ToolCallId,
        ["earlier_result"] = earlier.Result,
    }.ToJsonString();

    private void PublishStatus()
    {
        string phase = _pending.Count > 0 ? "awaiting_confirmation" : _phase;
        _context.SetCustomStatus(new TurnStatus(phase, _modelCalls, _toolCalls, _plan, [.. _pending], [.. _decided], [.. _refusals]) { InDoubt = [.. _inDoubt] });
    }

    private TurnOutput End(TurnOutcome outcome, string? budget, string? message)
    {
        Log.TurnEnded(_logger, _context.InstanceId, outcome.ToString(), budget, _modelCalls, _toolCalls);
        if (!_context.IsReplaying)
        {
            // The turn's span can only be emitted now that it ends: it starts at the turn's (orchestration) start time.
            string outcomeName = outcome switch
            {
                TurnOutcome.Answered => "answered",
                TurnOutcome.BudgetExhausted => "budget_exhausted",
                TurnOutcome.ModelFailed => "model_failed",
                _ => "failed",
            };
            AgentTelemetry.RecordTurn(outcomeName);
            using var span = AgentTelemetry.StartSpan(AgentTelemetry.TurnSpan, _context.InstanceId, _conversationId, startTime: new DateTimeOffset(_startedAt, TimeSpan.Zero));
            span?.SetTag(AgentTelemetry.OutcomeTag, outcomeName);
            span?.SetTag(AgentTelemetry.BudgetTag, budget);
            span?.SetTag(AgentTelemetry.ToolCallCountTag, _toolCalls);
            span?.SetEndTime(_context.CurrentUtcDateTime);
        }

        _phase = outcome == TurnOutcome.Answered ? "answered" : "ended";
        _plan = null;
        PublishStatus();
        return new TurnOutput(outcome, budget, message, [.. _messages], [.. _completedOrder], _modelCalls, _toolCalls) { TotalTokens = _tokens, CostUsd = _options.Price is null ? null : _cost };
    }

    private enum CallCount
    {
        Success,
        Failure,
        Neutral,
    }

    private sealed record CallOutcome(string Content, CallCount Counts, string? FailureText)
    {
        /// <summary>The outcome as counted in <see cref="AgentTelemetry.ToolCallsCounter"/>.</summary>
        internal string Metric { get; init; } = Counts switch
        {
            CallCount.Success => "succeeded",
            CallCount.Failure => "failed",
            _ => "not_run",
        };

        internal static CallOutcome Success(string content) => new(content, CallCount.Success, null);

        internal static CallOutcome Failed(string content, string failureText) => new(content, CallCount.Failure, failureText);

        internal static CallOutcome Neutral(string content, string failureText) => new(content, CallCount.Neutral, failureText);
    }
}

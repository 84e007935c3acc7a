using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Orchestrator.Agents.Models;
using Orchestrator.Durable;

namespace Orchestrator.Agents;

/// <summary>Propose: one model call with the conversation and every tool schema; the whole reply is the recorded output.</summary>
/// <remarks>
/// The conversation arrives with sensitive argument values sealed (as the turn stores it) and is opened for the
/// model; the reply's sensitive values are sealed before it is returned, so history never holds them in the clear.
/// </remarks>
internal sealed class ProposeActivity(IChatModel model, ToolRegistry tools, SensitiveValueProtector? protector, ILogger logger) : TaskActivity<ProposeInput, ModelReply>
{
    /// <summary>A reply with more calls than this is logged as a warning: models that fan out that far are often looping or confused.</summary>
    internal const int ManyCallsThreshold = 5;

    private readonly ModelToolDefinition[] _definitions =
        tools.Tools.Select(t => new ModelToolDefinition(t.Name, t.Description, t.ParametersSchema)).ToArray();

    public override async Task<ModelReply> RunAsync(TaskActivityContext context, ProposeInput input)
    {
        using var span = AgentTelemetry.StartSpan(AgentTelemetry.ModelCallSpan, context.InstanceId, input.ConversationId, ActivityKind.Client);
        ModelReply reply;
        try
        {
            var messages = SensitiveArguments.OpenMessages(protector, tools, input.Messages);
            reply = await model.CompleteAsync(new ModelRequest(messages, _definitions), context.CancellationToken).ConfigureAwait(false);
        }
        catch (ModelCallException ex) when (ex.IsTransient)
        {
            span?.SetTag(AgentTelemetry.OutcomeTag, "transient_failure");
            span?.SetStatus(ActivityStatusCode.Error);

            // Only transient model failures are worth the engine's retry; the policy filters on this type.
            throw new TransientToolFailureException($"The model call failed transiently: {ex.Message}", ex);
        }

        span?.SetTag(AgentTelemetry.OutcomeTag, reply.IsTruncated ? "truncated" : reply.HasToolCalls ? "tool_calls" : "text");
        span?.SetTag(AgentTelemetry.ToolCallCountTag, reply.ToolCalls.Count);
        if (reply.IsTruncated)
        {
            Log.ReplyTruncated(logger, context.InstanceId, reply.ToolCalls.Count, reply.Usage?.OutputTokens);
        }

        if (reply.ToolCalls.Count > ManyCallsThreshold)
        {
            Log.ManyToolCalls(logger, context.InstanceId, reply.ToolCalls.Count, ManyCallsThreshold);
        }

        return reply.ToolCalls.Count == 0
            ? reply with { Text = SensitiveArguments.SealCallText(protector, tools, reply.Text) }
            : reply with { ToolCalls = reply.ToolCalls.Select(c => c with { Arguments = SensitiveArguments.Seal(protector, tools, c.Name, c.Arguments) }).ToArray() };
    }
}

/// <summary>ExecuteTool: runs one validated call through its handler under the tool's timeout.</summary>
/// <remarks>
/// Runs at least once: a write's <see cref="ToolInvocation.IdempotencyKey"/> comes from the orchestrator
/// (durable identity), so every attempt sends the same key. Each attempt of a write is recorded in the
/// <see cref="IToolCallJournal"/> before the handler runs; an attempt that finds an earlier one unfinished (the worker
/// died mid-call) marks the call in doubt. Before any re-run of a write, its tool's Reconcile asks the service whether the
/// effect already happened. Transient failures are thrown (the orchestrator retries them up to the tool's cap);
/// permanent ones come back as a failed result for the model.
/// </remarks>
internal sealed class ExecuteToolActivity(ToolRegistry tools, ToolHandlers handlers, AgentTurnOptions options, ILogger logger) : TaskActivity<ExecuteToolInput, ToolExecutionResult>
{
    /// <summary>A tool slower than this is logged as a warning.</summary>
    internal static readonly TimeSpan SlowToolThreshold = TimeSpan.FromSeconds(5);

    private readonly TimeProvider _time = options.TimeProvider;
    private readonly IToolCallJournal _journal = options.CallJournal ?? new InMemoryToolCallJournal();
    private readonly ToolRateLimiters _rateLimiters = new(options.TimeProvider);

    public override async Task<ToolExecutionResult> RunAsync(TaskActivityContext context, ExecuteToolInput input)
    {
        if (!tools.TryGet(input.ToolName, out var tool) || handlers.Find(input.ToolName) is not { } handler)
        {
            return new ToolExecutionResult(false, ToolHandlers.ErrorContent("tool_unavailable", $"Tool '{input.ToolName}' has no handler."));
        }

        if (tool.RateLimit is { } rateLimit)
        {
            // A rate-limited call waits within its timeout budget, or goes back to the model with when to retry.
            var wait = _rateLimiters.Reserve(input.ToolName, rateLimit, tool.Timeout);
            if (wait > tool.Timeout)
            {
                return new ToolExecutionResult(false, new System.Text.Json.Nodes.JsonObject
                {
                    ["error"] = "rate_limited",
                    ["message"] = $"Tool '{input.ToolName}' is rate limited; retry after {Math.Ceiling(wait.TotalSeconds)} s.",
                    ["retry_after_seconds"] = Math.Ceiling(wait.TotalSeconds),
                }.ToJsonString());
            }

            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, _time, context.CancellationToken).ConfigureAwait(false);
            }
        }

        // The input holds sealed sensitive values (history must not hold them); the handler gets the real ones.
        string arguments = SensitiveArguments.OpenCanonical(options.SensitiveValues, tools, input.ToolName, input.Arguments);
        using var timeout = new CancellationTokenSource(tool.Timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, context.CancellationToken);
        var invocation = new ToolInvocation(input.ConversationId, input.ToolCallId, input.ToolName, arguments, input.IdempotencyKey);
        Log.ToolRunning(logger, context.InstanceId, input.ToolCallId, input.ToolName, input.IdempotencyKey);
        string? key = input.IdempotencyKey;
        var prior = PriorAttempt.None;
        if (key is not null)
        {
            // Committed before the call goes out: if this worker dies mid-call, the next attempt finds it unfinished.
            prior = await _journal.BeginAttemptAsync(key, context.CancellationToken).ConfigureAwait(false);
        }

        bool inDoubt = prior is PriorAttempt.Unfinished or PriorAttempt.SucceededUnrecorded;
        if (inDoubt)
        {
            Log.CallInDoubt(logger, context.InstanceId, input.ToolCallId, input.ToolName, key, prior.ToString());
        }

        long started = _time.GetTimestamp();
        string outcome = "failed";
        using var span = AgentTelemetry.StartSpan(AgentTelemetry.ToolCallSpan, context.InstanceId, input.ConversationId, ActivityKind.Client);
        span?.SetTag(AgentTelemetry.ToolNameTag, input.ToolName);
        span?.SetTag(AgentTelemetry.ToolCallIdTag, input.ToolCallId);
        try
        {
            // A re-run of a write (in doubt, or a retry after a transient failure that may have reached the service)
            // asks the service first, so an effect that already happened is not sent again.
            if (tool.Reconcile is { } reconcile && key is not null && prior != PriorAttempt.None)
            {
                var known = await reconcile(new ReconcileRequest(input.ToolName, key, arguments), linked.Token).ConfigureAwait(false);
                if (known.Status == ReconcileStatus.Performed)
                {
                    await EndAsync(key, AttemptEnd.Succeeded).ConfigureAwait(false);
                    outcome = "reconciled";
                    return new ToolExecutionResult(true, known.ResultJson ?? "{}") { InDoubt = inDoubt, Reconciled = ReconcileStatus.Performed };
                }

                string content = await handler(invocation, linked.Token).ConfigureAwait(false);
                await EndAsync(key, AttemptEnd.Succeeded).ConfigureAwait(false);
                outcome = "succeeded";
                return new ToolExecutionResult(true, content) { InDoubt = inDoubt, Reconciled = known.Status };
            }
            else
            {
                string content = await handler(invocation, linked.Token).ConfigureAwait(false);
                await EndAsync(key, AttemptEnd.Succeeded).ConfigureAwait(false);
                outcome = "succeeded";
                return new ToolExecutionResult(true, content) { InDoubt = inDoubt };
            }
        }
        catch (ToolExecutionException ex) when (!ex.IsTransient)
        {
            await EndAsync(key, AttemptEnd.FailedPermanently).ConfigureAwait(false);
            Log.ToolFailed(logger, context.InstanceId, input.ToolCallId, input.ToolName, transient: false);
            return new ToolExecutionResult(false, ToolHandlers.ErrorContent("tool_failed", ex.Message)) { InDoubt = inDoubt };
        }
        catch (ToolExecutionException ex)
        {
            await EndAsync(key, AttemptEnd.FailedTransiently).ConfigureAwait(false);
            outcome = "transient_failure";
            Log.ToolFailed(logger, context.InstanceId, input.ToolCallId, input.ToolName, transient: true);
            throw new TransientToolFailureException(ex.Message, ex);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            // A timed-out call may still have reached the service: recorded as a transient failure, reconciled before the retry.
            await EndAsync(key, AttemptEnd.FailedTransiently).ConfigureAwait(false);
            outcome = "timeout";
            throw new TransientToolFailureException($"Tool '{input.ToolName}' timed out after {tool.Timeout.TotalSeconds:0.###} s.");
        }
        finally
        {
            var elapsed = _time.GetElapsedTime(started);
            span?.SetTag(AgentTelemetry.OutcomeTag, outcome);
            if (outcome is not ("succeeded" or "reconciled"))
            {
                span?.SetStatus(ActivityStatusCode.Error);
            }

            AgentTelemetry.RecordToolLatency(input.ToolName, outcome, elapsed);
            if (elapsed > SlowToolThreshold)
            {
                Log.SlowTool(logger, context.InstanceId, input.ToolCallId, input.ToolName, elapsed.TotalSeconds, SlowToolThreshold.TotalSeconds);
            }
        }
    }

    // Shutdown of the worker must not hide how the attempt ended, so the end is recorded without its token.
    private ValueTask EndAsync(string? key, AttemptEnd end) =>
        key is null ? ValueTask.CompletedTask : _journal.EndAttemptAsync(key, end, CancellationToken.None);
}

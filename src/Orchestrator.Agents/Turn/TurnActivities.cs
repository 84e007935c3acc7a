using Microsoft.Extensions.Logging;
using Orchestrator.Agents.Models;
using Orchestrator.Durable;

namespace Orchestrator.Agents;

/// <summary>Propose: one model call with the conversation and every tool schema; the whole reply is the recorded output.</summary>
internal sealed class ProposeActivity(IChatModel model, ToolRegistry tools) : TaskActivity<ProposeInput, ModelReply>
{
    private readonly ModelToolDefinition[] _definitions =
        tools.Tools.Select(t => new ModelToolDefinition(t.Name, t.Description, t.ParametersSchema)).ToArray();

    public override async Task<ModelReply> RunAsync(TaskActivityContext context, ProposeInput input)
    {
        try
        {
            return await model.CompleteAsync(new ModelRequest(input.Messages, _definitions), context.CancellationToken).ConfigureAwait(false);
        }
        catch (ModelCallException ex) when (ex.IsTransient)
        {
            // Only transient model failures are worth the engine's retry; the policy filters on this type.
            throw new TransientToolFailureException($"The model call failed transiently: {ex.Message}", ex);
        }
    }
}

/// <summary>ExecuteTool: runs one validated call through its handler under the tool's timeout.</summary>
/// <remarks>
/// Runs at least once: a write's <see cref="ToolInvocation.IdempotencyKey"/> comes from the orchestrator
/// (durable identity), so every attempt sends the same key. Transient failures are thrown (the engine retries
/// them up to the tool's cap); permanent ones come back as a failed result for the model.
/// </remarks>
internal sealed class ExecuteToolActivity(ToolRegistry tools, ToolHandlers handlers, TimeProvider time, ILogger logger) : TaskActivity<ExecuteToolInput, ToolExecutionResult>
{
    private readonly ToolRateLimiters _rateLimiters = new(time);

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
                await Task.Delay(wait, time, context.CancellationToken).ConfigureAwait(false);
            }
        }

        using var timeout = new CancellationTokenSource(tool.Timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, context.CancellationToken);
        var invocation = new ToolInvocation(input.ConversationId, input.ToolCallId, input.ToolName, input.Arguments, input.IdempotencyKey);
        Log.ToolRunning(logger, context.InstanceId, input.ToolCallId, input.ToolName, input.IdempotencyKey);
        try
        {
            // An attempt cannot tell whether an earlier one died after calling out: every write with a reconcile
            // function asks the downstream service first, so an in-doubt effect is found before any retry sends it again.
            if (tool.Reconcile is { } reconcile && input.IdempotencyKey is { } key)
            {
                var known = await reconcile(new ReconcileRequest(input.ToolName, key, input.Arguments), linked.Token).ConfigureAwait(false);
                if (known.Status == ReconcileStatus.Performed)
                {
                    return new ToolExecutionResult(true, known.ResultJson ?? "{}");
                }
            }

            string content = await handler(invocation, linked.Token).ConfigureAwait(false);
            return new ToolExecutionResult(true, content);
        }
        catch (ToolExecutionException ex) when (!ex.IsTransient)
        {
            Log.ToolFailed(logger, context.InstanceId, input.ToolCallId, input.ToolName, transient: false);
            return new ToolExecutionResult(false, ToolHandlers.ErrorContent("tool_failed", ex.Message));
        }
        catch (ToolExecutionException ex)
        {
            Log.ToolFailed(logger, context.InstanceId, input.ToolCallId, input.ToolName, transient: true);
            throw new TransientToolFailureException(ex.Message, ex);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            throw new TransientToolFailureException($"Tool '{input.ToolName}' timed out after {tool.Timeout.TotalSeconds:0.###} s.");
        }
    }
}

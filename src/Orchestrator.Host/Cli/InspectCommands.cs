using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Orchestrator.Agents;
using Orchestrator.Durable;
using Orchestrator.Durable.History;
using Orchestrator.Host.Observability;

namespace Orchestrator.Host.Cli;

/// <summary><c>status &lt;id&gt;</c> and <c>history &lt;id&gt;</c>: read an instance from the configured store, change nothing.</summary>
internal static class InspectCommands
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static async Task<int> StatusAsync(ReadOnlyMemory<string> args, HostSettings settings, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        var a = CliArguments.Parse("status", args.Span, [], []);
        string id = a.Single("status", "instance id");
        await using var store = CliStore.Open(settings, a.Db);
        OrchestrationMetadata? m = await store.Client.GetInstanceAsync(id, cancellationToken).ConfigureAwait(false);
        if (m is null)
        {
            await stderr.WriteLineAsync($"error: no instance '{id}'.").ConfigureAwait(false);
            return 1;
        }

        if (a.Json)
        {
            await stdout.WriteLineAsync(StatusJson(m).ToJsonString()).ConfigureAwait(false);
            return 0;
        }

        var r = SecretRedactor.PatternsOnly;
        await stdout.WriteLineAsync($"Instance   {m.InstanceId}").ConfigureAwait(false);
        await stdout.WriteLineAsync($"Name       {m.Name}").ConfigureAwait(false);
        await stdout.WriteLineAsync($"Status     {m.RuntimeStatus}").ConfigureAwait(false);
        await stdout.WriteLineAsync($"Created    {Time(m.CreatedAt)}").ConfigureAwait(false);
        await stdout.WriteLineAsync($"Updated    {Time(m.LastUpdatedAt)}").ConfigureAwait(false);
        if (m.CompletedAt is { } completed)
        {
            await stdout.WriteLineAsync($"Completed  {Time(completed)}").ConfigureAwait(false);
        }

        if (m.ParentInstanceId is not null)
        {
            await stdout.WriteLineAsync($"Parent     {m.ParentInstanceId}").ConfigureAwait(false);
        }

        if (m.Name == TurnRegistration.TurnOrchestrator && TryRead<TurnStatus>(m.SerializedCustomStatus) is { } turn)
        {
            await WriteTurnStatusAsync(m.InstanceId, turn, stdout).ConfigureAwait(false);
        }
        else if (m.Name == TurnRegistration.ConversationOrchestrator && TryRead<ConversationStatus>(m.SerializedCustomStatus) is { } conversation)
        {
            await stdout.WriteLineAsync($"Turns      {conversation.Turns}").ConfigureAwait(false);
            await stdout.WriteLineAsync($"Current    {conversation.CurrentTurnInstanceId ?? "(no turn running)"}").ConfigureAwait(false);
            if (conversation.LastOutcome is { } outcome)
            {
                await stdout.WriteLineAsync($"Last turn  {outcome}: {r.Redact(conversation.LastMessage ?? string.Empty)}").ConfigureAwait(false);
            }
        }
        else if (m.SerializedCustomStatus is not null)
        {
            await stdout.WriteLineAsync($"Custom     {r.Redact(m.SerializedCustomStatus)}").ConfigureAwait(false);
        }

        if (m.RuntimeStatus == OrchestrationRuntimeStatus.Completed && m.Name == TurnRegistration.TurnOrchestrator && TryRead<TurnOutput>(m.SerializedOutput) is { } output)
        {
            await stdout.WriteLineAsync($"Outcome    {output.Outcome}{(output.Budget is null ? string.Empty : $" (budget {output.Budget})")}, {output.ModelCalls} model calls, {output.ToolCalls} tool calls").ConfigureAwait(false);
            await stdout.WriteLineAsync($"Answer     {r.Redact(output.Message ?? string.Empty)}").ConfigureAwait(false);
        }
        else if (m.SerializedOutput is not null)
        {
            await stdout.WriteLineAsync($"Output     {Shorten(r.Redact(m.SerializedOutput), 400)}").ConfigureAwait(false);
        }

        if (m.FailureDetails is { } failure)
        {
            await stdout.WriteLineAsync($"Failure    {failure.ErrorType}: {r.Redact(failure.ErrorMessage)}").ConfigureAwait(false);
        }

        return 0;
    }

    public static async Task<int> HistoryAsync(ReadOnlyMemory<string> args, HostSettings settings, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        var a = CliArguments.Parse("history", args.Span, [], []);
        string id = a.Single("history", "instance id");
        await using var store = CliStore.Open(settings, a.Db);
        IReadOnlyList<HistoryEvent>? history = await store.Backend.GetHistoryAsync(id, cancellationToken).ConfigureAwait(false);
        if (history is null)
        {
            await stderr.WriteLineAsync($"error: no instance '{id}'.").ConfigureAwait(false);
            return 1;
        }

        if (a.Json)
        {
            // The engine's own persisted shape, so a saved history can be replayed or diffed by other tools.
            await stdout.WriteLineAsync(HistorySerializer.SerializeHistory(history)).ConfigureAwait(false);
            return 0;
        }

        var r = SecretRedactor.PatternsOnly;
        await stdout.WriteLineAsync($"History of {id} ({history.Count} events, current execution):").ConfigureAwait(false);
        foreach (HistoryEvent e in history)
        {
            // Payloads are JSON inside JSON: show the inner quotes as \" rather than \u0022 so a person can read them.
            string detail = r.Redact(Describe(e)).Replace("\\u0022", "\\\"", StringComparison.Ordinal);
            string eventId = e.EventId >= 0 ? $"#{e.EventId}" : string.Empty;
            await stdout.WriteLineAsync($"  {e.Timestamp.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.fff", CultureInfo.InvariantCulture)}  {eventId,-5} {e.EventType,-32} {detail}").ConfigureAwait(false);
        }

        return 0;
    }

    internal static string Describe(HistoryEvent e) => e switch
    {
        ExecutionStartedEvent s => $"{s.Name} execution {s.ExecutionId}{(s.Parent is null ? string.Empty : $" (sub-orchestration of {s.Parent.InstanceId})")} input {Shorten(s.Input, 160)}",
        TaskScheduledEvent t => $"{t.Name} input {Shorten(t.Input, 160)}",
        TaskCompletedEvent c => $"task #{c.TaskScheduledId} -> {Shorten(c.Result, 160)}",
        TaskFailedEvent f => $"task #{f.TaskScheduledId} failed: {f.FailureDetails.ErrorType}: {Shorten(f.FailureDetails.ErrorMessage, 160)}",
        TimerCreatedEvent t => $"fires {Time(t.FireAt)}",
        TimerFiredEvent t => $"timer #{t.TimerId} fired ({Time(t.FireAt)})",
        EventRaisedEvent r => $"{r.Name} = {Shorten(r.Input, 160)}",
        SubOrchestrationInstanceCreatedEvent s => $"{s.Name} as {s.InstanceId}",
        SubOrchestrationInstanceCompletedEvent s => $"sub-orchestration #{s.TaskScheduledId} -> {Shorten(s.Result, 160)}",
        SubOrchestrationInstanceFailedEvent s => $"sub-orchestration #{s.TaskScheduledId} failed: {s.FailureDetails.ErrorType}: {Shorten(s.FailureDetails.ErrorMessage, 160)}",
        ExecutionTerminatedEvent t => $"terminated: {t.Reason}",
        ExecutionCompletedEvent c => c.FailureDetails is null ? $"{c.Status} -> {Shorten(c.Result, 160)}" : $"{c.Status}: {c.FailureDetails.ErrorType}: {c.FailureDetails.ErrorMessage}",
        ContinueAsNewEvent c => $"continued as new execution {c.NewExecutionId}",
        _ => string.Empty,
    };

    internal static JsonObject StatusJson(OrchestrationMetadata m)
    {
        var o = new JsonObject
        {
            ["instanceId"] = m.InstanceId,
            ["name"] = m.Name,
            ["runtimeStatus"] = m.RuntimeStatus.ToString(),
            ["createdAt"] = m.CreatedAt,
            ["lastUpdatedAt"] = m.LastUpdatedAt,
            ["completedAt"] = m.CompletedAt,
            ["parentInstanceId"] = m.ParentInstanceId,
            ["customStatus"] = ParseOrNull(m.SerializedCustomStatus),
            ["output"] = ParseOrNull(m.SerializedOutput),
            ["failure"] = m.FailureDetails is null ? null : new JsonObject { ["errorType"] = m.FailureDetails.ErrorType, ["errorMessage"] = m.FailureDetails.ErrorMessage },
        };
        if (m.Name == TurnRegistration.TurnOrchestrator && TryRead<TurnStatus>(m.SerializedCustomStatus) is { } turn)
        {
            o["confirmations"] = new JsonArray([.. turn.PendingConfirmations.Select(p => (JsonNode)ConfirmationName(m.InstanceId, p.ToolCallId))]);
        }

        return o;
    }

    /// <summary>How a confirmation is named on the command line: <c>{turnInstanceId}/{toolCallId}</c>.</summary>
    internal static string ConfirmationName(string instanceId, string toolCallId) => $"{instanceId}/{toolCallId}";

    internal static T? TryRead<T>(string? json)
        where T : class
    {
        if (json is null)
        {
            return null;
        }

        try
        {
            return DataConverter.Default.Deserialize<T>(json);
        }
        catch (JsonException)
        {
            // A custom status of another shape (another orchestrator's) is shown raw instead.
            return null;
        }
    }

    internal static string Shorten(string? text, int max) => text is null ? "null" : text.Length <= max ? text : string.Concat(text.AsSpan(0, max), $"... ({text.Length} chars)");

    internal static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static JsonNode? ParseOrNull(string? json)
    {
        if (json is null)
        {
            return null;
        }

        try
        {
            return JsonNode.Parse(json);
        }
        catch (JsonException)
        {
            return JsonValue.Create(json);
        }
    }

    private static async Task WriteTurnStatusAsync(string instanceId, TurnStatus turn, TextWriter stdout)
    {
        await stdout.WriteLineAsync($"Phase      {turn.Phase} ({turn.ModelCalls} model calls, {turn.ToolCalls} tool calls so far)").ConfigureAwait(false);
        if (turn.Plan is { } plan)
        {
            for (int s = 0; s < plan.Stages.Count; s++)
            {
                var calls = plan.Stages[s].Select(id => plan.Calls.FirstOrDefault(c => c.ToolCallId == id) is { } c ? $"{c.ToolCallId} {c.ToolName} ({c.Effect})" : id);
                await stdout.WriteLineAsync($"{(s == 0 ? "Plan" : string.Empty),-10} stage {s + 1}: {string.Join(", ", calls)}").ConfigureAwait(false);
            }
        }

        if (turn.PendingConfirmations.Count > 0)
        {
            await stdout.WriteLineAsync("Waiting for a decision:").ConfigureAwait(false);
            foreach (PendingConfirmation p in turn.PendingConfirmations)
            {
                await WriteCardAsync(instanceId, p, stdout).ConfigureAwait(false);
            }
        }

        foreach (ConfirmationRecord d in turn.Decided)
        {
            await stdout.WriteLineAsync($"Decided    {d.ToolCallId}: {d.Decision}{(d.DecidedBy is null ? string.Empty : $" by {d.DecidedBy}")}{(d.EditedArguments is null ? string.Empty : $" with edited arguments {d.EditedArguments}")}").ConfigureAwait(false);
        }

        foreach (ConfirmationRefusal f in turn.Refusals)
        {
            await stdout.WriteLineAsync($"Refused    {f.ToolCallId}: {f.Reason} at {Time(new DateTimeOffset(f.At, TimeSpan.Zero))}").ConfigureAwait(false);
        }
    }

    /// <summary>The confirmation card: exactly what a decision is bound to.</summary>
    internal static async Task WriteCardAsync(string instanceId, PendingConfirmation p, TextWriter writer)
    {
        await writer.WriteLineAsync($"  confirmation {ConfirmationName(instanceId, p.ToolCallId)}").ConfigureAwait(false);
        await writer.WriteLineAsync($"    tool       {p.ToolName}").ConfigureAwait(false);
        await writer.WriteLineAsync($"    summary    {p.Summary ?? "(none)"}").ConfigureAwait(false);
        await writer.WriteLineAsync($"    arguments  {p.Arguments}").ConfigureAwait(false);
        await writer.WriteLineAsync($"    hash       {p.ArgumentsHash}").ConfigureAwait(false);
        await writer.WriteLineAsync($"    expires    {Time(new DateTimeOffset(DateTime.SpecifyKind(p.ExpiresAt, DateTimeKind.Utc)))}").ConfigureAwait(false);
    }
}

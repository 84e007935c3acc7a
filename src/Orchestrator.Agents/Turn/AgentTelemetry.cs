using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Security.Cryptography;
using System.Text;

namespace Orchestrator.Agents;

/// <summary>
/// The agent layer's OpenTelemetry-compatible signals, on System.Diagnostics only: subscribe with
/// <c>AddSource(AgentTelemetry.SourceName)</c> and <c>AddMeter(AgentTelemetry.MeterName)</c>. No tag carries an
/// argument value; tags are ids, tool names and outcomes.
/// </summary>
/// <remarks>
/// <para>
/// A turn runs across many orchestration episodes (and may move between processes), and its orchestrator code is
/// replayed each episode: spans and measurements from orchestrator code are emitted only when not replaying, so a
/// replay adds nothing. Spans of one turn share one trace whose id is derived from the turn's instance id; they are
/// children of a parent span id derived from it too (a turn's own span can only be emitted when it ends, after its
/// children). The turn span is emitted at the end with the turn's start time.
/// </para>
/// <para>
/// Model-call and tool-call spans, and the tool latency histogram, come from the activities, once per attempt (an
/// activity re-run after a crash is a second attempt and is measured again).
/// </para>
/// </remarks>
public static class AgentTelemetry
{
    /// <summary>The <see cref="ActivitySource"/> name.</summary>
    public const string SourceName = "Orchestrator.Agents";

    /// <summary>The <see cref="Meter"/> name.</summary>
    public const string MeterName = "Orchestrator.Agents";

    /// <summary>Span of a whole turn (emitted when it ends).</summary>
    public const string TurnSpan = "agent.turn";

    /// <summary>Span of one model call (the Propose activity).</summary>
    public const string ModelCallSpan = "agent.model_call";

    /// <summary>Span of validating one reply's calls.</summary>
    public const string ValidationSpan = "agent.validate";

    /// <summary>Span of planning one reply's valid calls.</summary>
    public const string PlanSpan = "agent.plan";

    /// <summary>Span of one tool execution attempt (the ExecuteTool activity).</summary>
    public const string ToolCallSpan = "agent.tool_call";

    /// <summary>Tag: the conversation id.</summary>
    public const string ConversationIdTag = "agent.conversation.id";

    /// <summary>Tag: the turn's orchestration instance id.</summary>
    public const string InstanceIdTag = "agent.turn.instance_id";

    /// <summary>Tag: the tool name.</summary>
    public const string ToolNameTag = "agent.tool.name";

    /// <summary>Tag: the tool call id.</summary>
    public const string ToolCallIdTag = "agent.tool_call.id";

    /// <summary>Tag: how it ended (for example <c>answered</c>, <c>succeeded</c>, <c>rejected</c>, <c>failed</c>).</summary>
    public const string OutcomeTag = "agent.outcome";

    /// <summary>Tag: how many tool calls a reply or plan holds.</summary>
    public const string ToolCallCountTag = "agent.tool_call.count";

    /// <summary>Tag: which budget ended a turn.</summary>
    public const string BudgetTag = "agent.budget";

    /// <summary>Tag on <see cref="TokensCounter"/>: <c>input</c> or <c>output</c>.</summary>
    public const string TokenTypeTag = "agent.token.type";

    /// <summary>Counter: turns ended, by <see cref="OutcomeTag"/>.</summary>
    public const string TurnsCounter = "agent.turns";

    /// <summary>Counter: tool calls answered, by <see cref="ToolNameTag"/> and <see cref="OutcomeTag"/>.</summary>
    public const string ToolCallsCounter = "agent.tool_calls";

    /// <summary>Counter: tokens the model reported, by <see cref="TokenTypeTag"/>.</summary>
    public const string TokensCounter = "agent.tokens";

    /// <summary>Counter: estimated model cost in US dollars (turns with a price).</summary>
    public const string CostCounter = "agent.cost";

    /// <summary>Histogram: tool execution time in seconds, by <see cref="ToolNameTag"/> and <see cref="OutcomeTag"/>.</summary>
    public const string ToolDurationHistogram = "agent.tool.duration";

    /// <summary>Up-down counter: confirmations waiting for a human decision.</summary>
    public const string ConfirmationsWaitingCounter = "agent.confirmations.waiting";

    internal static readonly ActivitySource Source = new(SourceName);

    private static readonly Meter Meter = new(MeterName);
    private static readonly Counter<long> Turns = Meter.CreateCounter<long>(TurnsCounter, "{turn}", "Turns ended, by outcome.");
    private static readonly Counter<long> ToolCalls = Meter.CreateCounter<long>(ToolCallsCounter, "{call}", "Tool calls answered, by tool and outcome.");
    private static readonly Counter<long> Tokens = Meter.CreateCounter<long>(TokensCounter, "{token}", "Tokens the model reported.");
    private static readonly Counter<double> Cost = Meter.CreateCounter<double>(CostCounter, "USD", "Estimated model cost.");
    private static readonly Histogram<double> ToolDuration = Meter.CreateHistogram<double>(ToolDurationHistogram, "s", "Tool execution time.");
    private static readonly UpDownCounter<long> ConfirmationsWaiting = Meter.CreateUpDownCounter<long>(ConfirmationsWaitingCounter, "{confirmation}", "Confirmations waiting for a human.");

    /// <summary>The trace a turn's spans belong to, derived from its instance id (the same in every process and replay).</summary>
    public static ActivityContext TurnContext(string instanceId)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        byte[] hash = SHA256.HashData(Encoding.UTF8.GetBytes("orchestrator.agents.turn:" + instanceId));
        return new ActivityContext(ActivityTraceId.CreateFromBytes(hash.AsSpan(0, 16)), ActivitySpanId.CreateFromBytes(hash.AsSpan(16, 8)), ActivityTraceFlags.Recorded, isRemote: true);
    }

    internal static Activity? StartSpan(string name, string instanceId, string? conversationId, ActivityKind kind = ActivityKind.Internal, DateTimeOffset startTime = default)
    {
        if (!Source.HasListeners())
        {
            // Nothing records spans: the turn's trace context (a SHA-256 of its id) is not worth computing.
            return null;
        }

        var span = Source.StartActivity(name, kind, TurnContext(instanceId), startTime: startTime);
        span?.SetTag(InstanceIdTag, instanceId);
        if (conversationId is not null)
        {
            span?.SetTag(ConversationIdTag, conversationId);
        }

        return span;
    }

    internal static void RecordTurn(string outcome) => Turns.Add(1, new KeyValuePair<string, object?>(OutcomeTag, outcome));

    internal static void RecordToolCall(string toolName, string outcome) =>
        ToolCalls.Add(1, new KeyValuePair<string, object?>(ToolNameTag, toolName), new KeyValuePair<string, object?>(OutcomeTag, outcome));

    internal static void RecordTokens(int input, int output)
    {
        Tokens.Add(input, new KeyValuePair<string, object?>(TokenTypeTag, "input"));
        Tokens.Add(output, new KeyValuePair<string, object?>(TokenTypeTag, "output"));
    }

    internal static void RecordCost(decimal usd) => Cost.Add((double)usd);

    internal static void RecordToolLatency(string toolName, string outcome, TimeSpan elapsed) =>
        ToolDuration.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>(ToolNameTag, toolName), new KeyValuePair<string, object?>(OutcomeTag, outcome));

    internal static void ConfirmationWaiting(int delta) => ConfirmationsWaiting.Add(delta);
}

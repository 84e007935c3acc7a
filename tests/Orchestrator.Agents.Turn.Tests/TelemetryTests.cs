using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Orchestrator.Agents.Models;
using Orchestrator.Agents.Models.Scripted;

namespace Orchestrator.Agents.Turn.Tests;

/// <summary>Listeners are process-wide: these tests run alone so other tests' turns do not add to the counts.</summary>
[CollectionDefinition(nameof(TelemetryTests), DisableParallelization = true)]
public sealed class TelemetryCollection
{
}

[Collection(nameof(TelemetryTests))]
public sealed class TelemetryTests
{
    private const string OrderValue = "A55501";

    [Fact(Timeout = 60_000)]
    public async Task RunTurn_CallsAndAnswer_OneSpanPerStepNoDuplicatesFromReplayNoArgumentValues()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == AgentTelemetry.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        var tools = new ToolRegistryBuilder().AddRange([Desk.LookupOrder, Desk.GetCustomer]).Build();
        var handlers = new ToolHandlers().Add("lookup_order", (inv, _) => Desk.OrderJson(inv)).Add("get_customer", (_, _) => Task.FromResult("""{"name":"Ann"}"""));
        var script = new ChatScript(
            ScriptEntry.Calls(
                new ScriptedToolCall("t_1", "lookup_order", $$"""{"order_id":"{{OrderValue}}"}"""),
                new ScriptedToolCall("t_2", "get_customer", """{"customer_id":"C9"}"""),
                new ScriptedToolCall("t_3", "get_customer", """{"customer_id":42}""")),
            ScriptEntry.Text("Found both.") with { When = new ScriptMatch { ToolResultFor = "t_1" } });
        await using var harness = await TurnHarness.StartAsync(script, tools, handlers);

        var output = await harness.RunTurnAsync(new TurnInput("conv-otel", [ModelMessage.User("find my order")]), "turn-otel");
        Assert.Equal(TurnOutcome.Answered, output.Outcome);

        // A replay of the whole history (as every later episode does) emits nothing.
        var before = spans.Count;
        var replay = await harness.ReplayAsync("turn-otel");
        Assert.True(replay.IsDeterministic, replay.Error);
        Assert.Equal(before, spans.Count);

        var mine = spans.Where(s => (string?)s.GetTagItem(AgentTelemetry.InstanceIdTag) == "turn-otel").ToArray();
        var byName = mine.GroupBy(s => s.OperationName).ToDictionary(g => g.Key, g => g.ToArray());
        var turn = Assert.Single(byName[AgentTelemetry.TurnSpan]);
        Assert.Equal("answered", turn.GetTagItem(AgentTelemetry.OutcomeTag));
        Assert.Equal("conv-otel", turn.GetTagItem(AgentTelemetry.ConversationIdTag));
        Assert.Equal(2, byName[AgentTelemetry.ModelCallSpan].Length);
        Assert.Equal("rejected:1", Assert.Single(byName[AgentTelemetry.ValidationSpan]).GetTagItem(AgentTelemetry.OutcomeTag));
        Assert.Equal(2, Assert.Single(byName[AgentTelemetry.PlanSpan]).GetTagItem(AgentTelemetry.ToolCallCountTag));
        var toolSpans = byName[AgentTelemetry.ToolCallSpan];
        Assert.Equal(["get_customer", "lookup_order"], toolSpans.Select(s => (string)s.GetTagItem(AgentTelemetry.ToolNameTag)!).Order(StringComparer.Ordinal));
        Assert.All(toolSpans, s => Assert.Equal("succeeded", s.GetTagItem(AgentTelemetry.OutcomeTag)));

        // One trace per turn, derived from its instance id; no tag carries an argument value.
        var trace = AgentTelemetry.TurnContext("turn-otel").TraceId;
        Assert.All(mine, s => Assert.Equal(trace, s.TraceId));
        Assert.All(mine.SelectMany(s => s.TagObjects), t => Assert.DoesNotContain(OrderValue, Convert.ToString(t.Value, System.Globalization.CultureInfo.InvariantCulture) ?? string.Empty, StringComparison.Ordinal));
        Assert.True(turn.Duration >= TimeSpan.Zero);
    }

    [Fact(Timeout = 60_000)]
    public async Task RunTurn_WithPriceAndConfirmation_MetersCountTurnCallsTokensCostLatencyAndWaitingConfirmations()
    {
        var measurements = new ConcurrentQueue<(string Instrument, double Value, Dictionary<string, object?> Tags)>();
        using var meters = new MeterListener
        {
            InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == AgentTelemetry.MeterName)
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            },
        };
        meters.SetMeasurementEventCallback<long>((i, v, tags, _) => measurements.Enqueue((i.Name, v, Tags(tags))));
        meters.SetMeasurementEventCallback<double>((i, v, tags, _) => measurements.Enqueue((i.Name, v, Tags(tags))));
        meters.Start();

        var tools = new ToolRegistryBuilder().AddRange([Desk.LookupOrder, Desk.ProcessRefund]).Build();
        var handlers = new ToolHandlers()
            .Add("lookup_order", (inv, _) => Desk.OrderJson(inv))
            .Add("process_refund", (_, _) => Task.FromResult("""{"refunded":true}"""));
        var script = new ChatScript(
            ScriptEntry.Calls(
                new ScriptedToolCall("m_1", "lookup_order", """{"order_id":"A8472"}"""),
                new ScriptedToolCall("m_2", "process_refund", """{"order_id":"A8472","amount":5,"currency":"USD"}""")) with
            { Reply = new ScriptReply { ToolCalls = [new("m_1", "lookup_order", """{"order_id":"A8472"}"""), new("m_2", "process_refund", """{"order_id":"A8472","amount":5,"currency":"USD"}""")], FinishReason = "tool_calls", Usage = new ScriptedUsage(1000, 100) } },
            ScriptEntry.Text("Refunded.", usage: new ScriptedUsage(2000, 50)) with { When = new ScriptMatch { ToolResultFor = "m_2" } });
        await using var harness = await TurnHarness.StartAsync(script, tools, handlers);
        var options = new TurnOptions { Price = new ModelPrice(InputPerMillion: 2m, OutputPerMillion: 8m) };
        await harness.StartTurnAsync(new TurnInput("conv-meter", [ModelMessage.User("refund $5 of A8472")]) { Options = options }, "turn-meter");

        var status = await harness.StatusEventuallyAsync("turn-meter", s => s.PendingConfirmations.Count == 1, "the refund waits");
        Assert.Equal(1, Sum(measurements, AgentTelemetry.ConfirmationsWaitingCounter));
        await TurnConfirmations.DecideAllAsync(harness.Client, "turn-meter", approve: true, "alice", TimeProvider.System, CancellationToken.None);
        var output = await harness.WaitForTurnAsync("turn-meter");
        Assert.Equal(TurnOutcome.Answered, output.Outcome);
        Assert.NotNull(status);

        Assert.Equal(0, Sum(measurements, AgentTelemetry.ConfirmationsWaitingCounter));
        Assert.Equal(1, Sum(measurements, AgentTelemetry.TurnsCounter, (AgentTelemetry.OutcomeTag, "answered")));
        Assert.Equal(1, Sum(measurements, AgentTelemetry.ToolCallsCounter, (AgentTelemetry.ToolNameTag, "lookup_order"), (AgentTelemetry.OutcomeTag, "succeeded")));
        Assert.Equal(1, Sum(measurements, AgentTelemetry.ToolCallsCounter, (AgentTelemetry.ToolNameTag, "process_refund"), (AgentTelemetry.OutcomeTag, "succeeded")));
        Assert.Equal(3000, Sum(measurements, AgentTelemetry.TokensCounter, (AgentTelemetry.TokenTypeTag, "input")));
        Assert.Equal(150, Sum(measurements, AgentTelemetry.TokensCounter, (AgentTelemetry.TokenTypeTag, "output")));
        Assert.Equal((double)output.CostUsd!.Value, Sum(measurements, AgentTelemetry.CostCounter), 9);
        Assert.Equal(0.0072, Sum(measurements, AgentTelemetry.CostCounter), 9);
        var latencies = measurements.Where(m => m.Instrument == AgentTelemetry.ToolDurationHistogram).ToArray();
        Assert.Equal(2, latencies.Length);
        Assert.All(latencies, l => Assert.True(l.Value >= 0));
        Assert.Contains(latencies, l => (string?)l.Tags[AgentTelemetry.ToolNameTag] == "process_refund" && (string?)l.Tags[AgentTelemetry.OutcomeTag] == "succeeded");
    }

    private static Dictionary<string, object?> Tags(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var result = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var tag in tags)
        {
            result[tag.Key] = tag.Value;
        }

        return result;
    }

    private static double Sum(IEnumerable<(string Instrument, double Value, Dictionary<string, object?> Tags)> measurements, string instrument, params (string Key, string Value)[] tags) =>
        measurements.Where(m => m.Instrument == instrument && tags.All(t => m.Tags.TryGetValue(t.Key, out var v) && (string?)v == t.Value)).Sum(m => m.Value);
}

using Orchestrator.Agents.Models;
using Orchestrator.Agents.Models.Scripted;
using Orchestrator.Durable.History;

namespace Orchestrator.Agents.Turn.Tests;

public sealed class RetryJitterTests
{
    [Fact(Timeout = 30_000)]
    public async Task RunTurn_TwoCallsFailTogether_RetryAfterDifferentJitteredDelaysAndReplayIsIdentical()
    {
        var attempts = new Dictionary<string, int>(StringComparer.Ordinal);
        var tools = new ToolRegistryBuilder().Add(Desk.ChargeCard with { MaxRetries = 2 }).Build();
        var handlers = new ToolHandlers().Add("charge_card", (inv, _) =>
        {
            lock (attempts)
            {
                attempts[inv.ToolCallId] = attempts.GetValueOrDefault(inv.ToolCallId) + 1;
                if (attempts[inv.ToolCallId] < 3)
                {
                    throw new ToolExecutionException("gateway timeout", isTransient: true);
                }
            }

            return Task.FromResult("""{"charged":true}""");
        });
        var script = new ChatScript(
            ScriptEntry.Calls(
                new ScriptedToolCall("c_a", "charge_card", """{"customer_id":"C1","amount":10}"""),
                new ScriptedToolCall("c_b", "charge_card", """{"customer_id":"C2","amount":10}""")),
            ScriptEntry.Text("Charged both.") with { When = new ScriptMatch { ToolResultFor = "c_b" } });
        await using var harness = await TurnHarness.StartAsync(script, tools, handlers);
        var first = TimeSpan.FromMilliseconds(200);

        var output = await harness.RunTurnAsync(
            new TurnInput("conv-j", [ModelMessage.User("charge C1 and C2 $10")]) { Options = new TurnOptions { FirstRetryInterval = first } },
            "turn-j");

        Assert.Equal(TurnOutcome.Answered, output.Outcome);
        Assert.Equal(3, attempts["c_a"]);
        Assert.Equal(3, attempts["c_b"]);

        // Each retry timer's delay, measured in orchestration time from the episode that created it.
        var history = await harness.Client.GetHistoryAsync("turn-j");
        var delays = new List<TimeSpan>();
        DateTimeOffset episode = default;
        foreach (var e in history)
        {
            if (e is OrchestratorStartedEvent)
            {
                episode = e.Timestamp;
            }
            else if (e is TimerCreatedEvent timer)
            {
                delays.Add(timer.FireAt - episode);
            }
        }

        // Two retries per call: the first within [0.5, 1) x 200 ms, the second within [0.5, 1) x 400 ms.
        Assert.Equal(4, delays.Count);
        var firstRetries = delays.Where(d => d < first).ToArray();
        Assert.Equal(2, firstRetries.Length);
        Assert.All(firstRetries, d => Assert.InRange(d, first / 2, first));
        Assert.All(delays.Except(firstRetries), d => Assert.InRange(d, first, first * 2));
        Assert.NotEqual(firstRetries[0], firstRetries[1]);

        var replay = await harness.ReplayAsync("turn-j");
        Assert.True(replay.IsDeterministic, replay.Error);
        Assert.Equal(output, Orchestrator.Durable.DataConverter.Default.Deserialize<TurnOutput>(replay.Output), TurnOutputComparer.Instance);
    }
}

using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Orchestrator.Agents.Models;
using Orchestrator.Agents.Models.Scripted;

namespace Orchestrator.Agents.Turn.Tests;

public sealed record CardChargeArgs(string CustomerId, string CardNumber, decimal Amount);

public sealed class LoggingTests
{
    [Fact(Timeout = 30_000)]
    public async Task RunTurn_ChargeWithCardNumber_EveryLogLineCarriesTurnIdAndNoneTheCardNumber()
    {
        var lines = new ConcurrentQueue<string>();
        using var factory = new CapturingLoggerFactory(lines);
        var charge = ToolDefinition.FromArguments<CardChargeArgs>("charge_card", "Charge a card.") with
        {
            Effect = ToolEffect.Write,
            ResourceKeyArguments = ["customer_id"],
            SensitiveArguments = ["card_number"],
        };
        var tools = new ToolRegistryBuilder().Add(charge).Build();
        int calls = 0;
        var handlers = new ToolHandlers().Add("charge_card", (_, _) =>
        {
            if (Interlocked.Increment(ref calls) == 1)
            {
                throw new ToolExecutionException("declined");
            }

            return Task.FromResult("""{"charged":true}""");
        });
        var script = new ChatScript(
            ScriptEntry.Calls(new ScriptedToolCall("c_1", "charge_card", """{"customer_id":"C1","card_number":"4111111111111111","amount":"ten"}""")),
            ScriptEntry.Calls(new ScriptedToolCall("c_2", "charge_card", """{"customer_id":"C1","card_number":"4111111111111111","amount":10}""")),
            ScriptEntry.Calls(new ScriptedToolCall("c_3", "charge_card", """{"customer_id":"C1","card_number":"4111111111111111","amount":11}""")),
            ScriptEntry.Text("Charged."));
        await using var harness = await TurnHarness.StartAsync(script, tools, handlers, factory, new AgentTurnOptions { SensitiveValues = new SensitiveValueProtector(new byte[32]) });

        var output = await harness.RunTurnAsync(new TurnInput("conv-log", [ModelMessage.User("charge my card 4111111111111111")]), "turn-log");

        Assert.Equal(TurnOutcome.Answered, output.Outcome);
        var turnLines = lines.ToArray();
        Assert.Contains(turnLines, l => l.Contains("rejected", StringComparison.Ordinal));
        Assert.Contains(turnLines, l => l.Contains("failed", StringComparison.Ordinal));
        Assert.Contains(turnLines, l => l.Contains("ended", StringComparison.Ordinal));
        Assert.All(turnLines, l => Assert.Contains("turn-log", l, StringComparison.Ordinal));
        Assert.All(turnLines, l => Assert.DoesNotContain("4111111111111111", l, StringComparison.Ordinal));
    }
}

using Orchestrator.Agents.Models;
using Orchestrator.Agents.Models.Scripted;
using Orchestrator.Durable;

namespace Orchestrator.Agents.Turn.Tests;

public sealed class ConversationTests
{
    [Fact(Timeout = 60_000)]
    public async Task SendUserMessage_TwoMessagesBackToBack_SecondQueuedAndRunAfterFirstTurnSeesItsAnswer()
    {
        var tools = new ToolRegistryBuilder().Add(Desk.LookupOrder).Build();
        var handlers = new ToolHandlers().Add("lookup_order", (inv, _) => Desk.OrderJson(inv));
        var script = new ChatScript(
            ScriptEntry.Text("Answer one.") with { When = new ScriptMatch { LastRole = "user", LastContains = "first question" } },
            ScriptEntry.Text("Answer two.") with { When = new ScriptMatch { LastRole = "user", LastContains = "second question" } });
        await using var harness = await TurnHarness.StartAsync(script, tools, handlers);

        await Conversations.StartAsync(harness.Client, new ConversationState("conv-q", [ModelMessage.System("Be brief.")]), CancellationToken.None);
        await Conversations.SendUserMessageAsync(harness.Client, "conv-q", "first question", CancellationToken.None);
        await Conversations.SendUserMessageAsync(harness.Client, "conv-q", "second question", CancellationToken.None);

        ConversationStatus? status = null;
        await TestWait.EventuallyAsync(
            async () => (status = await Conversations.GetStatusAsync(harness.Client, "conv-q", CancellationToken.None)) is { Turns: 2, CurrentTurnInstanceId: null },
            because: "both messages are answered, one turn after the other");

        Assert.Equal("Answer two.", status!.LastMessage);
        Assert.Equal(2, harness.Server.Requests.Count);
        var second = harness.Server.Requests[1];
        Assert.Equal(["system", "user", "assistant", "user"], second.Messages.Select(m => m.Role));
        Assert.Equal("Answer one.", second.Messages[2].Content);
        foreach (int turn in new[] { 1, 2 })
        {
            var metadata = await harness.Client.GetInstanceAsync(Conversations.TurnInstanceId("conv-q", turn));
            Assert.Equal(OrchestrationRuntimeStatus.Completed, metadata!.RuntimeStatus);
        }
    }
}

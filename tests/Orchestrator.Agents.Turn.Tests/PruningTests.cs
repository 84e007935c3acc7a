using Orchestrator.Agents.Models;
using Orchestrator.Agents.Models.Scripted;

namespace Orchestrator.Agents.Turn.Tests;

public sealed class PruningTests
{
    private static readonly ModelMessage System = ModelMessage.System("rules");
    private static readonly ModelMessage OldUser = ModelMessage.User(new string('x', 400));
    private static readonly ModelMessage OldCall = ModelMessage.Assistant(null, [new ModelToolCall("c1", "lookup_order", """{"order_id":"A1001"}""")]);
    private static readonly ModelMessage OldResult = ModelMessage.ToolResult("c1", new string('y', 300));
    private static readonly ModelMessage OldAnswer = ModelMessage.Assistant("delivered");
    private static readonly ModelMessage NewUser = ModelMessage.User("and now?");

    private static IReadOnlyList<ModelMessage> Conversation => [System, OldUser, OldCall, OldResult, OldAnswer, NewUser];

    [Fact]
    public void Prune_FitsBudget_ReturnsConversationUnchanged() =>
        Assert.Equal(Conversation, ConversationPruner.Prune(Conversation, 10_000, t => t.Length));

    [Fact]
    public void Prune_OverBudget_DropsOldestExchangeWholeKeepingSystemAndLast()
    {
        var kept = ConversationPruner.Prune(Conversation, 100, t => t.Length);

        Assert.Equal([System, NewUser], kept);
    }

    [Fact]
    public void Prune_LastExchangeAloneOverBudget_KeepsItWithItsToolResults()
    {
        IReadOnlyList<ModelMessage> current = [System, OldUser, OldCall, OldResult];

        Assert.Equal(current, ConversationPruner.Prune(current, 10, t => t.Length));
    }

    [Fact(Timeout = 30_000)]
    public async Task RunTurn_HistoryLongerThanWindow_ModelGetsPrunedConversationTurnKeepsAll()
    {
        var tools = new ToolRegistryBuilder().Add(Desk.LookupOrder).Build();
        var handlers = new ToolHandlers().Add("lookup_order", (inv, _) => Desk.OrderJson(inv));
        await using var harness = await TurnHarness.StartAsync(new ChatScript(ScriptEntry.Text("Fine.")), tools, handlers);
        string old = string.Join(' ', Enumerable.Repeat("OLD history words", 400));
        var input = new TurnInput("conv-w", [System, ModelMessage.User(old), ModelMessage.Assistant("ok"), ModelMessage.User("latest question")])
        {
            Options = new TurnOptions { ContextWindowTokens = 1600, ReservedOutputTokens = 1024 },
        };

        var output = await harness.RunTurnAsync(input, "turn-w");

        var sent = Assert.Single(harness.Server.Requests).Messages;
        Assert.Equal(["system", "user"], sent.Select(m => m.Role));
        Assert.Equal("latest question", sent[1].Content);
        Assert.Equal(5, output.Messages.Count);
    }
}

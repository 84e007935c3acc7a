using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Orchestrator.Agents.Models;
using Orchestrator.Agents.Models.Scripted;

namespace Orchestrator.Agents.Turn.Tests;

/// <summary>The turn's warnings: structured, with the turn id, never an argument value.</summary>
public sealed class WarningTests
{
    private const string OrderValue = "A77123";

    private static ScriptedToolCall Lookup(string id) => new(id, "lookup_order", $$"""{"order_id":"{{OrderValue}}"}""");

    private static (ToolRegistry Tools, ToolHandlers Handlers) Desk1(ToolHandler? lookup = null) =>
        (new ToolRegistryBuilder().Add(Desk.LookupOrder).Build(), new ToolHandlers().Add("lookup_order", lookup ?? ((inv, _) => Desk.OrderJson(inv))));

    private static async Task<LogEntry[]> RunAsync(ChatScript script, string instanceId, TurnOptions? turnOptions = null, ToolHandler? lookup = null, TimeProvider? time = null)
    {
        var lines = new ConcurrentQueue<string>();
        var entries = new ConcurrentQueue<LogEntry>();
        using var factory = new CapturingLoggerFactory(lines, entries);
        var (tools, handlers) = Desk1(lookup);
        await using var harness = await TurnHarness.StartAsync(script, tools, handlers, factory, new AgentTurnOptions { TimeProvider = time ?? TimeProvider.System });
        await harness.RunTurnAsync(new TurnInput("conv-w", [ModelMessage.User("where is my order?")]) { Options = turnOptions }, instanceId);
        var all = entries.ToArray();
        Assert.All(all, e => Assert.DoesNotContain(OrderValue, e.Message, StringComparison.Ordinal));
        Assert.All(all.SelectMany(e => e.Values.Values), v => Assert.DoesNotContain(OrderValue, Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture) ?? string.Empty, StringComparison.Ordinal));
        return all;
    }

    [Fact(Timeout = 30_000)]
    public async Task RunTurn_ReplyCutOffByLength_WarnsOnceWithTurnId()
    {
        var entries = await RunAsync(new ChatScript(ScriptEntry.Text("Your order is on its way and", finishReason: "length", usage: new ScriptedUsage(50, 16))), "turn-w-length");

        var warning = Assert.Single(entries, e => e.EventId.Id == 4008);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Equal("turn-w-length", warning.Values["TurnId"]);
        Assert.Equal(16, warning.Values["OutputTokens"]);
    }

    [Fact(Timeout = 30_000)]
    public async Task RunTurn_SixCallsInOneReply_WarnsNamingCountNotArguments()
    {
        var calls = Enumerable.Range(1, 6).Select(i => Lookup($"l_{i}")).ToArray();
        var entries = await RunAsync(
            new ChatScript(ScriptEntry.Calls(calls), ScriptEntry.Text("All found.") with { When = new ScriptMatch { ToolResultFor = "l_6" } }),
            "turn-w-many");

        var warning = Assert.Single(entries, e => e.EventId.Id == 4009);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Equal(6, warning.Values["ToolCallCount"]);
        Assert.Equal(5, warning.Values["Threshold"]);
    }

    [Fact(Timeout = 30_000)]
    public async Task RunTurn_FiveCallsInOneReply_NoManyCallsWarning()
    {
        var calls = Enumerable.Range(1, 5).Select(i => Lookup($"l_{i}")).ToArray();
        var entries = await RunAsync(
            new ChatScript(ScriptEntry.Calls(calls), ScriptEntry.Text("All found.") with { When = new ScriptMatch { ToolResultFor = "l_5" } }),
            "turn-w-five");

        Assert.DoesNotContain(entries, e => e.EventId.Id == 4009);
    }

    [Fact(Timeout = 30_000)]
    public async Task RunTurn_ToolTakesSixSeconds_WarnsSlowToolWithDuration()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var entries = await RunAsync(
            new ChatScript(ScriptEntry.Calls(Lookup("l_slow")), ScriptEntry.Text("Found.") with { When = new ScriptMatch { ToolResultFor = "l_slow" } }),
            "turn-w-slow",
            lookup: (inv, _) =>
            {
                // Six seconds pass on the activity's clock while the tool works.
                time.Advance(TimeSpan.FromSeconds(6));
                return Desk.OrderJson(inv);
            },
            time: time);

        var warning = Assert.Single(entries, e => e.EventId.Id == 4010);
        Assert.Equal("l_slow", warning.Values["ToolCallId"]);
        Assert.Equal("lookup_order", warning.Values["ToolName"]);
        Assert.Equal(6.0, (double)warning.Values["Seconds"]!, 3);
    }

    [Fact(Timeout = 30_000)]
    public async Task RunTurn_FourOfFiveModelCallsUsed_WarnsNearBudgetOnceDespiteReplays()
    {
        var script = new ChatScript(
            ScriptEntry.Calls(Lookup("l_1")),
            ScriptEntry.Calls(Lookup("l_2")),
            ScriptEntry.Calls(Lookup("l_3")),
            ScriptEntry.Calls(Lookup("l_4")),
            ScriptEntry.Text("Found it."));
        var entries = await RunAsync(script, "turn-w-budget", new TurnOptions { MaxModelCalls = 5 });

        // The orchestrator replayed its history in each of its many episodes; the warning was logged once.
        var warning = Assert.Single(entries, e => e.EventId.Id == 4011);
        Assert.Equal(TurnBudgets.ModelCalls, warning.Values["Budget"]);
        Assert.Equal("4", warning.Values["Used"]);
        Assert.Equal("5", warning.Values["Limit"]);
        Assert.Equal("turn-w-budget", warning.Values["TurnId"]);
    }
}

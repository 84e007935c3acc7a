using System.Collections.Concurrent;
using System.Text.Json;
using Orchestrator.Agents.Models;
using Orchestrator.Agents.Models.Scripted;

namespace Orchestrator.Agents.Turn.Tests;

public sealed class TurnTests
{
    private static ScriptEntry When(ScriptMatch match, params ScriptedToolCall[] calls) => ScriptEntry.Calls(calls) with { When = match };

    private static ScriptEntry TextWhen(ScriptMatch match, string text) => ScriptEntry.Text(text) with { When = match };

    [Fact(Timeout = 60_000)]
    public async Task RunTurn_RefundIncident_RejectsAccountNumberConfirmsExactRefundExecutesOnceAndAnswersRepeatAsDone()
    {
        await using var payments = await PaymentsHost.StartAsync();
        var tools = new ToolRegistryBuilder().AddRange([Desk.LookupOrder, Desk.ProcessRefund]).Build();
        var handlers = new ToolHandlers()
            .Add("lookup_order", (inv, _) => Desk.OrderJson(inv))
            .AddHttp("process_refund", payments.Client, new Uri(payments.Client.BaseAddress!, "/refunds"));
        var script = new ChatScript(
            When(new ScriptMatch { LastRole = "user", LastContains = "refund" },
                new ScriptedToolCall("call_1", "process_refund", """{"order_id":"99812345","amount":47.00,"currency":"USD"}""")),
            When(new ScriptMatch { ToolResultFor = "call_1" },
                new ScriptedToolCall("call_2", "process_refund", """{"order_id":"A8472","amount":47.00,"currency":"USD"}""")),
            TextWhen(new ScriptMatch { ToolResultFor = "call_2" }, "Your refund of $47.00 for order A8472 is done."),
            When(new ScriptMatch { LastRole = "user", LastContains = "again" },
                new ScriptedToolCall("call_3", "process_refund", """{ "currency": "USD", "amount": 47.0, "order_id": "A8472" }""")),
            TextWhen(new ScriptMatch { ToolResultFor = "call_3" }, "That refund was already made."));
        await using var harness = await TurnHarness.StartAsync(script, tools, handlers);

        var input = new TurnInput("conv-42", [
            ModelMessage.System("You are a support agent."),
            ModelMessage.User("My account is 99812345 and order A8472 arrived broken. Please refund the $47."),
        ]);
        await harness.StartTurnAsync(input, "turn-1");

        // The confirmation shows the exact corrected arguments, their hash and the summary.
        var status = await harness.StatusEventuallyAsync("turn-1", s => s.PendingConfirmations.Count == 1, "the refund waits for a human");
        var pending = status.PendingConfirmations[0];
        Assert.Equal("call_2", pending.ToolCallId);
        Assert.Equal("""{"amount":47,"currency":"USD","order_id":"A8472"}""", pending.Arguments);
        Assert.Equal("Refund $47.00 for order A8472", pending.Summary);
        Assert.Equal(64, pending.ArgumentsHash.Length);
        Assert.Equal("awaiting_confirmation", status.Phase);
        Assert.NotNull(status.Plan);

        // The model saw the validation error for the account number before correcting itself.
        string? firstResult = harness.Server.Requests[1].ToolResultFor("call_1");
        Assert.NotNull(firstResult);
        Assert.Contains("business_rule_violation", firstResult, StringComparison.Ordinal);
        Assert.Contains("order_id", firstResult, StringComparison.Ordinal);
        Assert.Empty(await payments.LedgerAsync());

        // A decision about other arguments is refused, through the helper and when raised directly.
        var wrong = new ConfirmationDecision(true, new string('0', 64), "mallory");
        Assert.Equal(ConfirmationDecisionResult.HashMismatch, await TurnConfirmations.DecideAsync(harness.Client, "turn-1", "call_2", wrong, TimeProvider.System, CancellationToken.None));
        await harness.Client.RaiseEventAsync("turn-1", pending.EventName, wrong);
        status = await harness.StatusEventuallyAsync("turn-1", s => s.Refusals.Count == 1, "the forged decision is recorded as refused");
        Assert.Equal("argument_hash_mismatch", status.Refusals[0].Reason);
        Assert.Single(status.PendingConfirmations);
        Assert.Empty(await payments.LedgerAsync());

        var approve = new ConfirmationDecision(true, pending.ArgumentsHash, "alice");
        Assert.Equal(ConfirmationDecisionResult.Accepted, await TurnConfirmations.DecideAsync(harness.Client, "turn-1", "call_2", approve, TimeProvider.System, CancellationToken.None));
        var first = await harness.WaitForTurnAsync("turn-1");

        Assert.Equal(TurnOutcome.Answered, first.Outcome);
        Assert.Equal("Your refund of $47.00 for order A8472 is done.", first.Message);
        Assert.Equal(1, first.ToolCalls);
        var refunds = await payments.LedgerAsync();
        var refund = Assert.Single(refunds);
        Assert.Equal("A8472", refund.GetProperty("order_id").GetString());
        Assert.Equal(47m, refund.GetProperty("amount").GetDecimal());
        var write = Assert.Single(first.CompletedWrites);
        Assert.Equal(write.IdempotencyKey, refund.GetProperty("idempotency_key").GetString());
        Assert.StartsWith("tc1_", write.IdempotencyKey, StringComparison.Ordinal);
        Assert.Equal(ConfirmationDecisionResult.AlreadyDecided, await TurnConfirmations.DecideAsync(harness.Client, "turn-1", "call_2", approve, TimeProvider.System, CancellationToken.None));

        // Next turn: the model proposes the same refund again (other spelling, same canonical arguments).
        var second = await harness.RunTurnAsync(
            new TurnInput("conv-42", [.. first.Messages, ModelMessage.User("Did it work? Please refund it again to be sure.")]) { CompletedWrites = first.CompletedWrites },
            "turn-2");

        Assert.Equal(TurnOutcome.Answered, second.Outcome);
        Assert.Equal(0, second.ToolCalls);
        var repeated = second.Messages.Single(m => m.Role == ModelRole.Tool && m.ToolCallId == "call_3");
        Assert.Contains("already_done", repeated.Content, StringComparison.Ordinal);
        Assert.Single(await payments.LedgerAsync());
        Assert.Empty(harness.Server.Unplayed);

        // The orchestrator code is deterministic: replayed against its history it takes the same decisions.
        var replay = await harness.ReplayAsync("turn-1");
        Assert.True(replay.IsDeterministic, replay.Error);
        Assert.Equal(Orchestrator.Durable.OrchestrationRuntimeStatus.Completed, replay.Status);
        Assert.Equal(first, Orchestrator.Durable.DataConverter.Default.Deserialize<TurnOutput>(replay.Output), TurnOutputComparer.Instance);
    }

    [Fact(Timeout = 60_000)]
    public async Task RunTurn_ReplyWithSeveralCalls_RunsReadsInParallelAndDependentAfterThem()
    {
        var events = new ConcurrentQueue<string>();
        int readsStarted = 0;
        var allReadsIn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task<string> Read(ToolInvocation inv, CancellationToken ct)
        {
            events.Enqueue("start " + inv.ToolCallId);
            if (Interlocked.Increment(ref readsStarted) == 3)
            {
                allReadsIn.TrySetResult();
            }

            // Completes only if the three reads run at the same time: run one by one, they would time out.
            await allReadsIn.Task.WaitAsync(TimeSpan.FromSeconds(8), ct);
            events.Enqueue("end " + inv.ToolCallId);
            return JsonSerializer.Serialize(new { id = inv.ToolCallId, ok = true });
        }

        string? noteKey = null;
        var tools = new ToolRegistryBuilder().AddRange([Desk.LookupOrder, Desk.GetCustomer, Desk.AddNote]).Build();
        var handlers = new ToolHandlers()
            .Add("lookup_order", Read)
            .Add("get_customer", Read)
            .Add("add_note", (inv, _) =>
            {
                events.Enqueue("start " + inv.ToolCallId);
                noteKey = inv.IdempotencyKey;
                return Task.FromResult("""{"noted":true}""");
            });
        var script = new ChatScript(
            ScriptEntry.Calls(
                new ScriptedToolCall("call_a", "lookup_order", """{"order_id":"A1001"}"""),
                new ScriptedToolCall("call_b", "lookup_order", """{"order_id":"A1002"}"""),
                new ScriptedToolCall("call_c", "get_customer", """{"customer_id":"C7"}"""),
                new ScriptedToolCall("call_note", "add_note", """{"order_id":"A1001","note":"customer called"}""")),
            TextWhen(new ScriptMatch { LastRole = "tool" }, "Both orders look fine; I noted the call."));
        await using var harness = await TurnHarness.StartAsync(script, tools, handlers);

        var output = await harness.RunTurnAsync(new TurnInput("conv-p", [ModelMessage.User("check my orders")]), "turn-p");

        Assert.True(output.Outcome == TurnOutcome.Answered, string.Join(" | ", events) + " || " + string.Join(" | ", output.Messages.Select(m => m.ToolCallId + ":" + m.Content)));
        Assert.Equal(4, output.ToolCalls);
        var second = harness.Server.Requests[1];
        var toolMessages = second.Messages.Where(m => m.Role == "tool").ToArray();
        Assert.Equal(["call_a", "call_b", "call_c", "call_note"], toolMessages.Select(m => m.ToolCallId));
        Assert.Contains("\"id\":\"call_a\"", second.ToolResultFor("call_a"), StringComparison.Ordinal);
        Assert.Contains("\"id\":\"call_b\"", second.ToolResultFor("call_b"), StringComparison.Ordinal);
        Assert.Contains("\"id\":\"call_c\"", second.ToolResultFor("call_c"), StringComparison.Ordinal);
        Assert.Equal("""{"noted":true}""", second.ToolResultFor("call_note"));

        var order = events.ToList();
        int noteStart = order.IndexOf("start call_note");
        Assert.True(noteStart > order.IndexOf("end call_a") && noteStart > order.IndexOf("end call_b"), string.Join(", ", order));
        Assert.StartsWith("tc1_", noteKey, StringComparison.Ordinal);
    }

    [Theory(Timeout = 60_000)]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunTurn_RunReadsLocally_ReadsRunInTheEpisodeOfTheReplyWriteIsDispatched(bool local)
    {
        var tools = new ToolRegistryBuilder().AddRange([Desk.LookupOrder, Desk.GetCustomer, Desk.AddNote]).Build();
        var handlers = new ToolHandlers()
            .Add("lookup_order", (inv, _) => Task.FromResult(JsonSerializer.Serialize(new { id = inv.ToolCallId, status = "shipped" })))
            .Add("get_customer", (inv, _) => Task.FromResult(JsonSerializer.Serialize(new { id = inv.ToolCallId, tier = "gold" })))
            .Add("add_note", (inv, _) => Task.FromResult("""{"noted":true}"""));
        var script = new ChatScript(
            ScriptEntry.Calls(
                new ScriptedToolCall("call_a", "lookup_order", """{"order_id":"A1001"}"""),
                new ScriptedToolCall("call_c", "get_customer", """{"customer_id":"C7"}"""),
                new ScriptedToolCall("call_note", "add_note", """{"order_id":"A1001","note":"customer called"}""")),
            TextWhen(new ScriptMatch { LastRole = "tool" }, "Order A1001 has shipped; I noted the call."));
        var entries = new ConcurrentQueue<LogEntry>();
        using var workerLogs = new CapturingLoggerFactory(new ConcurrentQueue<string>(), entries);
        await using var harness = await TurnHarness.StartAsync(script, tools, handlers, workerLoggerFactory: workerLogs);

        var output = await harness.RunTurnAsync(
            new TurnInput("conv-l", [ModelMessage.User("where is my order?")]) { Options = new TurnOptions { RunReadsLocally = local } },
            "turn-l");

        // The same turn either way: every call ran once and the model read every result.
        Assert.Equal(TurnOutcome.Answered, output.Outcome);
        Assert.Equal(3, output.ToolCalls);
        var second = harness.Server.Requests[1];
        Assert.Contains("\"id\":\"call_a\"", second.ToolResultFor("call_a"), StringComparison.Ordinal);
        Assert.Contains("\"id\":\"call_c\"", second.ToolResultFor("call_c"), StringComparison.Ordinal);
        Assert.Equal("""{"noted":true}""", second.ToolResultFor("call_note"));
        var replay = await harness.ReplayAsync("turn-l");
        Assert.True(replay.IsDeterministic, replay.Error);

        // How each tool call ran, as the worker logged it (event 1200): the reads in the reply's episode or dispatched,
        // the write dispatched in both cases.
        string[] toolRuns = [.. entries
            .Where(e => e.EventId.Id == 1200 && Equals(e.Values["Name"], TurnRegistration.ExecuteToolActivity))
            .Select(e => (string)e.Values["Outcome"]!)
            .Order()];
        Assert.Equal(local ? ["completed", "completed locally", "completed locally"] : ["completed", "completed", "completed"], toolRuns);
    }

    [Fact(Timeout = 60_000)]
    public async Task RunTurn_KeptInMemoryOrReplayedEveryEpisode_SameScheduledWorkAndSameOutput()
    {
        async Task<(TurnOutput Output, string[] Scheduled, long Resumed, Durable.ReplayOutcome Replay)> RunAsync(int cached)
        {
            var tools = new ToolRegistryBuilder().AddRange([Desk.LookupOrder, Desk.GetCustomer, Desk.AddNote]).Build();
            var handlers = new ToolHandlers()
                .Add("lookup_order", (inv, _) => Task.FromResult(JsonSerializer.Serialize(new { id = inv.ToolCallId, status = "shipped" })))
                .Add("get_customer", (inv, _) => Task.FromResult(JsonSerializer.Serialize(new { id = inv.ToolCallId, tier = "gold" })))
                .Add("add_note", (inv, _) => Task.FromResult(JsonSerializer.Serialize(new { noted = true, key = inv.IdempotencyKey })));
            var script = new ChatScript(
                ScriptEntry.Calls(
                    new ScriptedToolCall("call_a", "lookup_order", """{"order_id":"A1001"}"""),
                    new ScriptedToolCall("call_bad", "lookup_order", """{"order_number":"A1002"}"""),
                    new ScriptedToolCall("call_c", "get_customer", """{"customer_id":"C7"}"""),
                    new ScriptedToolCall("call_note", "add_note", """{"order_id":"A1001","note":"customer called"}""")),
                TextWhen(new ScriptMatch { LastRole = "tool" }, "Order A1001 has shipped; I noted the call."));
            await using var harness = await TurnHarness.StartAsync(script, tools, handlers, maxCachedOrchestrations: cached);
            var output = await harness.RunTurnAsync(new TurnInput("conv-k", [ModelMessage.User("where is my order?")]), "turn-k");
            var history = await harness.Client.GetHistoryAsync("turn-k");
            string[] scheduled = [.. history.OfType<Durable.History.TaskScheduledEvent>().Select(t => $"{t.EventId} {t.Name} {t.Input}")];
            return (output, scheduled, harness.Worker.EpisodesResumed, await harness.ReplayAsync("turn-k"));
        }

        var replayed = await RunAsync(cached: 0);
        var kept = await RunAsync(cached: 1000);

        Assert.Equal(0, replayed.Resumed);
        Assert.True(kept.Resumed >= 2, $"resumed {kept.Resumed} episodes");
        Assert.Equal(replayed.Scheduled, kept.Scheduled);
        Assert.Equal(JsonSerializer.Serialize(replayed.Output), JsonSerializer.Serialize(kept.Output));
        Assert.Equal(TurnOutcome.Answered, kept.Output.Outcome);
        Assert.Equal(3, kept.Output.ToolCalls);

        // The history written by the kept run replays deterministically against the same code.
        Assert.True(kept.Replay.IsDeterministic, kept.Replay.Error);
        Assert.True(replayed.Replay.IsDeterministic, replayed.Replay.Error);
    }

    [Fact(Timeout = 30_000)]
    public async Task RunTurn_Hello_AnswersInTextWithoutToolCalls()
    {
        int toolRuns = 0;
        var tools = new ToolRegistryBuilder().Add(Desk.LookupOrder).Build();
        var handlers = new ToolHandlers().Add("lookup_order", (inv, _) =>
        {
            Interlocked.Increment(ref toolRuns);
            return Desk.OrderJson(inv);
        });
        await using var harness = await TurnHarness.StartAsync(new ChatScript(ScriptEntry.Text("Hello! How can I help you today?")), tools, handlers);

        var output = await harness.RunTurnAsync(new TurnInput("conv-h", [ModelMessage.User("hello")]), "turn-h");

        Assert.Equal(TurnOutcome.Answered, output.Outcome);
        Assert.Equal("Hello! How can I help you today?", output.Message);
        Assert.Equal(1, output.ModelCalls);
        Assert.Equal(0, output.ToolCalls);
        Assert.Equal(0, toolRuns);
        Assert.Equal(ModelRole.Assistant, output.Messages[^1].Role);
        Assert.Single(harness.Server.Requests);
        Assert.Equal("lookup_order", Assert.Single(harness.Server.Requests[0].Tools).Name);
    }

    [Fact(Timeout = 30_000)]
    public async Task RunTurn_ModelKeepsCallingFailingTool_StopsAtConsecutiveFailureLimitWithNoFurtherEffects()
    {
        int attempts = 0;
        var tools = new ToolRegistryBuilder().Add(Desk.ChargeCard).Build();
        var handlers = new ToolHandlers().Add("charge_card", (_, _) =>
        {
            Interlocked.Increment(ref attempts);
            throw new ToolExecutionException("card declined");
        });
        var entries = Enumerable.Range(1, 6)
            .Select(i => ScriptEntry.Calls(new ScriptedToolCall($"call_{i}", "charge_card", $$"""{"customer_id":"C{{i}}","amount":10}""")))
            .ToArray();
        await using var harness = await TurnHarness.StartAsync(new ChatScript(entries), tools, handlers);

        var output = await harness.RunTurnAsync(new TurnInput("conv-b", [ModelMessage.User("charge everyone")]), "turn-b");

        Assert.Equal(TurnOutcome.BudgetExhausted, output.Outcome);
        Assert.Equal(TurnBudgets.ConsecutiveFailures, output.Budget);
        Assert.Contains("3 tool calls in a row failed", output.Message, StringComparison.Ordinal);
        Assert.Equal(3, attempts);
        Assert.Equal(3, harness.Server.Requests.Count);
        Assert.Empty(output.CompletedWrites);
        Assert.Equal(3, output.Messages.Count(m => m.Role == ModelRole.Tool));
    }

    [Fact(Timeout = 30_000)]
    public async Task RunTurn_SameFailingCallRepeated_StopsAtSameCallLimit()
    {
        int attempts = 0;
        var tools = new ToolRegistryBuilder().Add(Desk.ChargeCard).Build();
        var handlers = new ToolHandlers().Add("charge_card", (_, _) =>
        {
            Interlocked.Increment(ref attempts);
            throw new ToolExecutionException("card declined");
        });
        var script = new ChatScript(ScriptEntry.Calls(new ScriptedToolCall("call_x", "charge_card", """{"customer_id":"C1","amount":10}""")) with { Repeat = true });
        await using var harness = await TurnHarness.StartAsync(script, tools, handlers);

        var output = await harness.RunTurnAsync(new TurnInput("conv-s", [ModelMessage.User("charge me")]), "turn-s");

        Assert.Equal(TurnOutcome.BudgetExhausted, output.Outcome);
        Assert.Equal(TurnBudgets.SameFailingCall, output.Budget);
        Assert.Equal(2, attempts);
        Assert.Equal(2, harness.Server.Requests.Count);
    }

    [Fact(Timeout = 30_000)]
    public async Task RunTurn_ModelNeverAnswers_StopsAtModelCallLimit()
    {
        var tools = new ToolRegistryBuilder().Add(Desk.LookupOrder).Build();
        var handlers = new ToolHandlers().Add("lookup_order", (inv, _) => Desk.OrderJson(inv));
        var script = new ChatScript(ScriptEntry.Calls(new ScriptedToolCall("call_l", "lookup_order", """{"order_id":"A1001"}""")) with { Repeat = true });
        await using var harness = await TurnHarness.StartAsync(script, tools, handlers);

        var output = await harness.RunTurnAsync(new TurnInput("conv-m", [ModelMessage.User("look")]) { Options = new TurnOptions { MaxModelCalls = 3 } }, "turn-m");

        Assert.Equal(TurnOutcome.BudgetExhausted, output.Outcome);
        Assert.Equal(TurnBudgets.ModelCalls, output.Budget);
        Assert.Equal(3, output.ModelCalls);
        Assert.Equal(3, harness.Server.Requests.Count);
    }

    [Fact(Timeout = 30_000)]
    public async Task RunTurn_RepliesGoOverTokenBudget_CallsOfTheLastReplyNotRunAndTurnEnds()
    {
        var seen = new ConcurrentQueue<string>();
        var tools = new ToolRegistryBuilder().Add(Desk.LookupOrder).Build();
        var handlers = new ToolHandlers().Add("lookup_order", (inv, _) =>
        {
            seen.Enqueue(inv.ToolCallId);
            return Desk.OrderJson(inv);
        });
        ScriptEntry Costly(string id) => ScriptEntry.Calls(new ScriptedToolCall(id, "lookup_order", """{"order_id":"A1001"}""")) is var e
            ? e with { Reply = e.Reply! with { Usage = new ScriptedUsage(100, 50) } }
            : e;
        await using var harness = await TurnHarness.StartAsync(new ChatScript(Costly("call_1"), Costly("call_2"), Costly("call_3")), tools, handlers);

        var output = await harness.RunTurnAsync(new TurnInput("conv-k", [ModelMessage.User("look")]) { Options = new TurnOptions { MaxTotalTokens = 200 } }, "turn-k");

        Assert.Equal(TurnOutcome.BudgetExhausted, output.Outcome);
        Assert.Equal(TurnBudgets.Tokens, output.Budget);
        Assert.Equal(300, output.TotalTokens);
        Assert.Equal(["call_1"], seen);
        Assert.Contains("not_run", output.Messages.Single(m => m.ToolCallId == "call_2").Content, StringComparison.Ordinal);
        Assert.Equal(2, harness.Server.Requests.Count);
    }

    [Fact(Timeout = 30_000)]
    public async Task RunTurn_EstimatedCostReachesLimit_EndsWithCostBudget()
    {
        int runs = 0;
        var tools = new ToolRegistryBuilder().Add(Desk.LookupOrder).Build();
        var handlers = new ToolHandlers().Add("lookup_order", (inv, _) =>
        {
            Interlocked.Increment(ref runs);
            return Desk.OrderJson(inv);
        });
        ScriptEntry Costly(string id) => ScriptEntry.Calls(new ScriptedToolCall(id, "lookup_order", """{"order_id":"A1001"}""")) is var e
            ? e with { Reply = e.Reply! with { Usage = new ScriptedUsage(1_000_000, 0) } }
            : e;
        await using var harness = await TurnHarness.StartAsync(new ChatScript(Costly("call_1"), Costly("call_2")), tools, handlers);

        var output = await harness.RunTurnAsync(
            new TurnInput("conv-$", [ModelMessage.User("look")]) { Options = new TurnOptions { Price = new ModelPrice(2.5m, 10m), MaxCostUsd = 5m } },
            "turn-cost");

        Assert.Equal(TurnOutcome.BudgetExhausted, output.Outcome);
        Assert.Equal(TurnBudgets.Cost, output.Budget);
        Assert.Equal(5m, output.CostUsd);
        Assert.Equal(1, runs);
    }

    [Fact(Timeout = 30_000)]
    public async Task RunTurn_CallsUnderFinishReasonStopWithUnknownAndMalformed_RunsValidOneAnswersEveryId()
    {
        var seen = new ConcurrentQueue<string>();
        var tools = new ToolRegistryBuilder().Add(Desk.LookupOrder).Build();
        var handlers = new ToolHandlers().Add("lookup_order", (inv, _) =>
        {
            seen.Enqueue(inv.ToolCallId);
            return Desk.OrderJson(inv);
        });
        var calls = ScriptEntry.Calls(
            new ScriptedToolCall("c_ok", "lookup_order", """{"order_id":"A1001"}"""),
            new ScriptedToolCall("c_unknown", "delete_everything", "{}"),
            new ScriptedToolCall("c_bad", "lookup_order", "{\"order_id\": \"A1002"));
        var script = new ChatScript(
            calls with { Reply = calls.Reply! with { FinishReason = "stop" } },
            ScriptEntry.Text("Done.") with { When = new ScriptMatch { LastRole = "tool" } });
        await using var harness = await TurnHarness.StartAsync(script, tools, handlers);

        var output = await harness.RunTurnAsync(new TurnInput("conv-f", [ModelMessage.User("go")]), "turn-f");

        Assert.Equal(TurnOutcome.Answered, output.Outcome);
        Assert.Equal(["c_ok"], seen);
        var second = harness.Server.Requests[1];
        Assert.Contains("A1001", second.ToolResultFor("c_ok"), StringComparison.Ordinal);
        Assert.Contains("unknown_tool", second.ToolResultFor("c_unknown"), StringComparison.Ordinal);
        Assert.Contains("malformed_arguments", second.ToolResultFor("c_bad"), StringComparison.Ordinal);
    }
}

/// <summary>Compares turn outputs by their JSON (records with lists compare by reference).</summary>
internal sealed class TurnOutputComparer : IEqualityComparer<TurnOutput?>
{
    public static TurnOutputComparer Instance { get; } = new();

    public bool Equals(TurnOutput? x, TurnOutput? y) => JsonSerializer.Serialize(x) == JsonSerializer.Serialize(y);

    public int GetHashCode(TurnOutput? obj) => JsonSerializer.Serialize(obj).GetHashCode(StringComparison.Ordinal);
}

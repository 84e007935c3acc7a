using Orchestrator.Agents.Models;
using Orchestrator.Agents.Models.Scripted;

namespace Orchestrator.Agents.Turn.Tests;

public sealed class ConfirmationAndParsingTests
{
    private static ToolRegistry NoteAndRefundTools() =>
        new ToolRegistryBuilder().AddRange([
            Desk.LookupOrder,
            Desk.ProcessRefund,
            Desk.AddNote with { DependsOn = ["lookup_order", "process_refund"] },
        ]).Build();

    [Fact(Timeout = 60_000)]
    public async Task RunTurn_ReviewerRejectsRefund_ModelReadsRejectionAndDependentIsSkipped()
    {
        int refunds = 0, notes = 0;
        var handlers = new ToolHandlers()
            .Add("lookup_order", (inv, _) => Desk.OrderJson(inv))
            .Add("process_refund", (_, _) =>
            {
                Interlocked.Increment(ref refunds);
                return Task.FromResult("{}");
            })
            .Add("add_note", (_, _) =>
            {
                Interlocked.Increment(ref notes);
                return Task.FromResult("{}");
            });
        var script = new ChatScript(
            ScriptEntry.Calls(
                new ScriptedToolCall("c_refund", "process_refund", """{"order_id":"A8472","amount":47,"currency":"USD"}"""),
                new ScriptedToolCall("c_note", "add_note", """{"order_id":"A8472","note":"refunded"}""")),
            ScriptEntry.Text("The refund was not approved.") with { When = new ScriptMatch { ToolResultFor = "c_refund" } });
        await using var harness = await TurnHarness.StartAsync(script, NoteAndRefundTools(), handlers);
        await harness.StartTurnAsync(new TurnInput("conv-r", [ModelMessage.User("refund A8472")]), "turn-r");

        var status = await harness.StatusEventuallyAsync("turn-r", s => s.PendingConfirmations.Count == 1, "the refund waits");
        var pending = status.PendingConfirmations[0];
        Assert.Equal(0, pending.Stage);
        Assert.Equal(ConfirmationDecisionResult.Accepted, await TurnConfirmations.DecideAsync(
            harness.Client, "turn-r", "c_refund", new ConfirmationDecision(false, pending.ArgumentsHash, "bob"), TimeProvider.System, CancellationToken.None));
        var output = await harness.WaitForTurnAsync("turn-r");

        Assert.Equal(TurnOutcome.Answered, output.Outcome);
        Assert.Equal(0, refunds);
        Assert.Equal(0, notes);
        var request = harness.Server.Requests[1];
        Assert.Contains("rejected_by_reviewer", request.ToolResultFor("c_refund"), StringComparison.Ordinal);
        string? skipped = request.ToolResultFor("c_note");
        Assert.Contains("skipped", skipped, StringComparison.Ordinal);
        Assert.Contains("c_refund", skipped, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task RunTurn_NobodyDecides_ConfirmationExpiresAndModelReadsIt()
    {
        int refunds = 0;
        var handlers = new ToolHandlers()
            .Add("lookup_order", (inv, _) => Desk.OrderJson(inv))
            .Add("process_refund", (_, _) =>
            {
                Interlocked.Increment(ref refunds);
                return Task.FromResult("{}");
            })
            .Add("add_note", (_, _) => Task.FromResult("{}"));
        var script = new ChatScript(
            ScriptEntry.Calls(new ScriptedToolCall("c_refund", "process_refund", """{"order_id":"A8472","amount":47,"currency":"USD"}""")),
            ScriptEntry.Text("Nobody approved it in time.") with { When = new ScriptMatch { ToolResultFor = "c_refund" } });
        await using var harness = await TurnHarness.StartAsync(script, NoteAndRefundTools(), handlers);

        var output = await harness.RunTurnAsync(
            new TurnInput("conv-e", [ModelMessage.User("refund A8472")]) { Options = new TurnOptions { ConfirmationTimeout = TimeSpan.FromSeconds(1) } },
            "turn-e");

        Assert.Equal(TurnOutcome.Answered, output.Outcome);
        Assert.Equal(0, refunds);
        Assert.Contains("confirmation_expired", harness.Server.Requests[1].ToolResultFor("c_refund"), StringComparison.Ordinal);
        var status = await TurnConfirmations.GetStatusAsync(harness.Client, "turn-e", CancellationToken.None);
        Assert.Equal("expired", Assert.Single(status!.Decided).Decision);
        Assert.Equal(ConfirmationDecisionResult.AlreadyDecided, await TurnConfirmations.DecideAsync(
            harness.Client, "turn-e", "c_refund", new ConfirmationDecision(true, "x", null), TimeProvider.System, CancellationToken.None));
    }

    [Fact(Timeout = 30_000)]
    public async Task RunTurn_CallsWrittenInText_AreParsedRunAndUnparseableOnesAnsweredWithError()
    {
        var seen = new List<string>();
        var handlers = new ToolHandlers()
            .Add("lookup_order", (inv, _) =>
            {
                lock (seen)
                {
                    seen.Add(inv.Arguments);
                }

                return Desk.OrderJson(inv);
            });
        var tools = new ToolRegistryBuilder().Add(Desk.LookupOrder).Build();
        string text = "Let me check.\n<tool_call>{\"name\": \"lookup_order\", \"arguments\": {\"order_id\": \"A1001\"}}</tool_call>\n<tool_call>{\"name\": \"lookup_order\", \"arguments\": {\"order_id\": </tool_call>";
        var script = new ChatScript(
            ScriptEntry.Text(text),
            ScriptEntry.Text("Order A1001 was delivered.") with { When = new ScriptMatch { LastRole = "tool" } });
        await using var harness = await TurnHarness.StartAsync(script, tools, handlers);

        var output = await harness.RunTurnAsync(new TurnInput("conv-t", [ModelMessage.User("where is A1001?")]), "turn-t");

        Assert.Equal(TurnOutcome.Answered, output.Outcome);
        Assert.Equal(["""{"order_id":"A1001"}"""], seen);
        var assistant = output.Messages.First(m => m.Role == ModelRole.Assistant);
        Assert.Equal(2, assistant.ToolCalls.Count);
        var results = harness.Server.Requests[1].Messages.Where(m => m.Role == "tool").ToArray();
        Assert.Equal(assistant.ToolCalls.Select(c => c.Id), results.Select(r => r.ToolCallId));
        Assert.Contains("A1001", results[0].Content, StringComparison.Ordinal);
        Assert.Contains("unparseable_call", results[1].Content, StringComparison.Ordinal);
    }

    [Fact(Timeout = 30_000)]
    public async Task RunTurn_WriteFailsTransiently_RetriedWithSameKeyUpToCap()
    {
        var keys = new List<string?>();
        var tools = new ToolRegistryBuilder().Add(Desk.ChargeCard with { MaxRetries = 2 }).Build();
        var handlers = new ToolHandlers().Add("charge_card", (inv, _) =>
        {
            lock (keys)
            {
                keys.Add(inv.IdempotencyKey);
                if (keys.Count < 3)
                {
                    throw new ToolExecutionException("gateway timeout", isTransient: true);
                }
            }

            return Task.FromResult("""{"charged":true}""");
        });
        var script = new ChatScript(
            ScriptEntry.Calls(new ScriptedToolCall("c_charge", "charge_card", """{"customer_id":"C1","amount":10}""")),
            ScriptEntry.Text("Charged.") with { When = new ScriptMatch { ToolResultFor = "c_charge" } });
        await using var harness = await TurnHarness.StartAsync(script, tools, handlers);

        var output = await harness.RunTurnAsync(
            new TurnInput("conv-x", [ModelMessage.User("charge C1 $10")]) { Options = new TurnOptions { FirstRetryInterval = TimeSpan.FromMilliseconds(50) } },
            "turn-x");

        Assert.Equal(TurnOutcome.Answered, output.Outcome);
        Assert.Equal(3, keys.Count);
        Assert.Single(keys.Distinct());
        Assert.StartsWith("tc1_", keys[0], StringComparison.Ordinal);
        Assert.Equal("""{"charged":true}""", harness.Server.Requests[1].ToolResultFor("c_charge"));
    }

    [Fact(Timeout = 60_000)]
    public async Task RunTurn_TwoRefundsInOneReply_BothPendingAtOnceAndDecidedTogether()
    {
        await using var payments = await PaymentsHost.StartAsync();
        var handlers = new ToolHandlers()
            .Add("lookup_order", (inv, _) => Desk.OrderJson(inv))
            .AddHttp("process_refund", payments.Client, new Uri(payments.Client.BaseAddress!, "/refunds"))
            .Add("add_note", (_, _) => Task.FromResult("{}"));
        var script = new ChatScript(
            ScriptEntry.Calls(
                new ScriptedToolCall("c_1", "process_refund", """{"order_id":"A1001","amount":10,"currency":"USD"}"""),
                new ScriptedToolCall("c_2", "process_refund", """{"order_id":"A1002","amount":20.5,"currency":"USD"}""")),
            ScriptEntry.Text("Both refunded.") with { When = new ScriptMatch { ToolResultFor = "c_2" } });
        await using var harness = await TurnHarness.StartAsync(script, NoteAndRefundTools(), handlers);
        await harness.StartTurnAsync(new TurnInput("conv-2", [ModelMessage.User("refund both")]), "turn-2r");

        var status = await harness.StatusEventuallyAsync("turn-2r", s => s.PendingConfirmations.Count == 2, "both refunds wait together");
        Assert.Equal(["Refund $10.00 for order A1001", "Refund $20.50 for order A1002"], status.PendingConfirmations.Select(p => p.Summary));
        var decided = await TurnConfirmations.DecideAllAsync(harness.Client, "turn-2r", approve: true, "alice", TimeProvider.System, CancellationToken.None);
        Assert.All(decided, d => Assert.Equal(ConfirmationDecisionResult.Accepted, d.Value));
        var output = await harness.WaitForTurnAsync("turn-2r");

        Assert.Equal(TurnOutcome.Answered, output.Outcome);
        var ledger = await payments.LedgerAsync();
        Assert.Equal(["A1001", "A1002"], ledger.Select(e => e.GetProperty("order_id").GetString()).Order());
        Assert.Equal(2, output.CompletedWrites.Select(w => w.IdempotencyKey).Distinct().Count());
    }

    [Fact(Timeout = 30_000)]
    public async Task RunTurn_ToolWithConcurrencyLimitOne_ItsCallsRunOneAtATime()
    {
        int running = 0, maxRunning = 0, runs = 0;
        var tools = new ToolRegistryBuilder().Add(Desk.LookupOrder with { MaxConcurrency = 1 }).Build();
        var handlers = new ToolHandlers().Add("lookup_order", async (inv, ct) =>
        {
            int now = Interlocked.Increment(ref running);
            int seen;
            while ((seen = Volatile.Read(ref maxRunning)) < now && Interlocked.CompareExchange(ref maxRunning, now, seen) != seen)
            {
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), ct);
            Interlocked.Decrement(ref running);
            Interlocked.Increment(ref runs);
            return await Desk.OrderJson(inv);
        });
        var script = new ChatScript(
            ScriptEntry.Calls(
                new ScriptedToolCall("c_1", "lookup_order", """{"order_id":"A1001"}"""),
                new ScriptedToolCall("c_2", "lookup_order", """{"order_id":"A1002"}"""),
                new ScriptedToolCall("c_3", "lookup_order", """{"order_id":"A1003"}""")),
            ScriptEntry.Text("Done.") with { When = new ScriptMatch { LastRole = "tool" } });
        await using var harness = await TurnHarness.StartAsync(script, tools, handlers);

        var output = await harness.RunTurnAsync(new TurnInput("conv-c", [ModelMessage.User("check three")]), "turn-c");

        Assert.Equal(TurnOutcome.Answered, output.Outcome);
        Assert.Equal(3, runs);
        Assert.Equal(1, maxRunning);
    }

    [Fact(Timeout = 30_000)]
    public async Task RunTurn_RateLimitedTool_CallOverTheLimitGetsRetryAfterResult()
    {
        int runs = 0;
        var tools = new ToolRegistryBuilder()
            .Add(Desk.LookupOrder with { RateLimit = new ToolRateLimit { PermitsPerPeriod = 1, Period = TimeSpan.FromHours(1) }, Timeout = TimeSpan.FromSeconds(2) })
            .Build();
        var handlers = new ToolHandlers().Add("lookup_order", (inv, _) =>
        {
            Interlocked.Increment(ref runs);
            return Desk.OrderJson(inv);
        });
        var script = new ChatScript(
            ScriptEntry.Calls(
                new ScriptedToolCall("c_1", "lookup_order", """{"order_id":"A1001"}"""),
                new ScriptedToolCall("c_2", "lookup_order", """{"order_id":"A1002"}""")),
            ScriptEntry.Text("One was rate limited.") with { When = new ScriptMatch { LastRole = "tool" } });
        await using var harness = await TurnHarness.StartAsync(script, tools, handlers);

        var output = await harness.RunTurnAsync(new TurnInput("conv-rl", [ModelMessage.User("check two")]), "turn-rl");

        Assert.Equal(TurnOutcome.Answered, output.Outcome);
        Assert.Equal(1, runs);
        var results = harness.Server.Requests[1].Messages.Where(m => m.Role == "tool").Select(m => m.Content ?? "").ToArray();
        Assert.Single(results, r => r.Contains("rate_limited", StringComparison.Ordinal) && r.Contains("retry_after_seconds", StringComparison.Ordinal));
    }

    [Fact(Timeout = 60_000)]
    public async Task RunTurn_ApprovedWithEditedAmount_RevalidatesRecordsEditAndRunsEditedArguments()
    {
        var sent = new List<string>();
        var handlers = new ToolHandlers()
            .Add("lookup_order", (inv, _) => Desk.OrderJson(inv))
            .Add("process_refund", (inv, _) =>
            {
                lock (sent)
                {
                    sent.Add(inv.Arguments);
                }

                return Task.FromResult("""{"refunded":true}""");
            })
            .Add("add_note", (_, _) => Task.FromResult("{}"));
        var script = new ChatScript(
            ScriptEntry.Calls(new ScriptedToolCall("c_refund", "process_refund", """{"order_id":"A8472","amount":47,"currency":"USD"}""")),
            ScriptEntry.Text("Refunded $40.") with { When = new ScriptMatch { ToolResultFor = "c_refund" } });
        await using var harness = await TurnHarness.StartAsync(script, NoteAndRefundTools(), handlers);
        await harness.StartTurnAsync(new TurnInput("conv-ed", [ModelMessage.User("refund A8472")]), "turn-ed");
        var pending = (await harness.StatusEventuallyAsync("turn-ed", s => s.PendingConfirmations.Count == 1, "the refund waits")).PendingConfirmations[0];

        // An edit that fails validation, and one that names another order, are refused; the turn keeps waiting.
        await harness.Client.RaiseEventAsync("turn-ed", pending.EventName, new ConfirmationDecision(true, pending.ArgumentsHash, "alice") { EditedArguments = """{"order_id":"99812345","amount":40,"currency":"USD"}""" });
        await harness.Client.RaiseEventAsync("turn-ed", pending.EventName, new ConfirmationDecision(true, pending.ArgumentsHash, "alice") { EditedArguments = """{"order_id":"A9999","amount":40,"currency":"USD"}""" });
        var status = await harness.StatusEventuallyAsync("turn-ed", s => s.Refusals.Count == 2, "both bad edits are refused");
        Assert.Equal(["edited_arguments_invalid", "edit_changes_resource"], status.Refusals.Select(r => r.Reason));
        Assert.Single(status.PendingConfirmations);

        await harness.Client.RaiseEventAsync("turn-ed", pending.EventName, new ConfirmationDecision(true, pending.ArgumentsHash, "alice") { EditedArguments = """{"amount":40.00,"order_id":"A8472","currency":"USD"}""" });
        var output = await harness.WaitForTurnAsync("turn-ed");

        Assert.Equal(TurnOutcome.Answered, output.Outcome);
        Assert.Equal(["""{"amount":40,"currency":"USD","order_id":"A8472"}"""], sent);
        var record = Assert.Single((await TurnConfirmations.GetStatusAsync(harness.Client, "turn-ed", CancellationToken.None))!.Decided);
        Assert.Equal("""{"amount":40,"currency":"USD","order_id":"A8472"}""", record.EditedArguments);
        Assert.NotEqual(pending.ArgumentsHash, record.EditedArgumentsHash);
    }
}

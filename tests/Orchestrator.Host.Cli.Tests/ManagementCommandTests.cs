using System.Text.Json;
using Orchestrator.Agents;
using Orchestrator.Agents.Models;
using Orchestrator.Durable;
using Orchestrator.Durable.History;

namespace Orchestrator.Host.Cli.Tests;

public sealed class ManagementCommandTests
{
    [Fact(Timeout = 90_000)]
    public async Task StatusApproveHistory_RefundTurn_ShowCardSendShownHashAndRefundOnce()
    {
        await using var h = await CliHarness.StartAsync();
        PendingConfirmation pending = await h.StartRefundTurnAsync("t1");

        CliRun status = await h.RunAsync("status", "t1");
        Assert.True(status.ExitCode == 0, status.ToString());
        Assert.Contains("awaiting_confirmation", status.Stdout, StringComparison.Ordinal);
        Assert.Contains("confirmation t1/call_2", status.Stdout, StringComparison.Ordinal);
        Assert.Contains(pending.ArgumentsHash, status.Stdout, StringComparison.Ordinal);
        Assert.Contains("""{"amount":47,"currency":"USD","order_id":"A8472"}""", status.Stdout, StringComparison.Ordinal);

        CliRun statusJson = await h.RunAsync("status", "t1", "--json");
        using (JsonDocument doc = JsonDocument.Parse(statusJson.Stdout))
        {
            Assert.Equal("Running", doc.RootElement.GetProperty("runtimeStatus").GetString());
            Assert.Equal("t1/call_2", doc.RootElement.GetProperty("confirmations")[0].GetString());
            Assert.Equal(pending.ArgumentsHash, doc.RootElement.GetProperty("customStatus").GetProperty("pendingConfirmations")[0].GetProperty("argumentsHash").GetString());
        }

        // A hash seen elsewhere that is not the pending one: refused, nothing sent, nothing paid.
        CliRun forged = await h.RunAsync("approve", "t1/call_2", "--hash", new string('0', 64));
        Assert.Equal(1, forged.ExitCode);
        Assert.Contains("refused", forged.Stderr, StringComparison.Ordinal);
        Assert.Contains(pending.ArgumentsHash, forged.Stderr, StringComparison.Ordinal);
        Assert.Empty(await h.LedgerAsync());
        Assert.Empty((await TurnConfirmations.GetStatusAsync(h.Client, "t1", CancellationToken.None))!.Refusals);

        CliRun approve = await h.RunAsync("approve", "t1/call_2", "--by", "alice");
        Assert.True(approve.ExitCode == 0, approve.ToString());
        Assert.Contains("Refund $47.00 for order A8472", approve.Stdout, StringComparison.Ordinal);
        Assert.Contains($"hash       {pending.ArgumentsHash}", approve.Stdout, StringComparison.Ordinal);
        Assert.Contains("Approved t1/call_2", approve.Stdout, StringComparison.Ordinal);

        OrchestrationMetadata done = await h.WaitForCompletionAsync("t1");
        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        var refund = Assert.Single(await h.LedgerAsync());
        Assert.Equal("A8472", refund.GetProperty("order_id").GetString());
        TurnStatus final = (await TurnConfirmations.GetStatusAsync(h.Client, "t1", CancellationToken.None))!;
        Assert.Equal("alice", Assert.Single(final.Decided).DecidedBy);

        // Deciding again is refused with the reason, and changes nothing.
        CliRun again = await h.RunAsync("reject", "t1/call_2");
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("already decided: approved by alice", again.Stderr, StringComparison.Ordinal);
        Assert.Single(await h.LedgerAsync());

        CliRun doneStatus = await h.RunAsync("status", "t1");
        Assert.Contains("Status     Completed", doneStatus.Stdout, StringComparison.Ordinal);
        Assert.Contains("Answer     Your refund of $47.00 for order A8472 is done.", doneStatus.Stdout, StringComparison.Ordinal);

        CliRun history = await h.RunAsync("history", "t1");
        Assert.Equal(0, history.ExitCode);
        Assert.Contains("TaskScheduled", history.Stdout, StringComparison.Ordinal);
        Assert.Contains("ExecuteTool", history.Stdout, StringComparison.Ordinal);
        Assert.Contains("confirm:call_2", history.Stdout, StringComparison.Ordinal);

        CliRun historyJson = await h.RunAsync("history", "t1", "--json");
        IReadOnlyList<HistoryEvent> events = HistorySerializer.DeserializeHistory(historyJson.Stdout);
        Assert.Equal((await h.Client.GetHistoryAsync("t1")).Count, events.Count);
        Assert.Contains(events, e => e is TaskScheduledEvent { Name: TurnRegistration.ExecuteToolActivity });
        Assert.Empty(historyJson.Stderr);
    }

    [Fact(Timeout = 90_000)]
    public async Task Reject_PendingRefund_TurnEndsWithoutEffect()
    {
        await using var h = await CliHarness.StartAsync();
        await h.StartRefundTurnAsync("t2");

        CliRun reject = await h.RunAsync("reject", "t2/call_2", "--json");

        Assert.True(reject.ExitCode == 0, reject.ToString());
        using JsonDocument doc = JsonDocument.Parse(reject.Stdout);
        Assert.Equal("rejected", doc.RootElement.GetProperty("decision").GetString());
        Assert.Equal(OrchestrationRuntimeStatus.Completed, (await h.WaitForCompletionAsync("t2")).RuntimeStatus);
        Assert.Empty(await h.LedgerAsync());
        Assert.Equal(0, h.RefundHandlerCalls);
    }

    [Fact(Timeout = 90_000)]
    public async Task Approve_ExpiredConfirmation_RefusedWithReasonAndNothingSent()
    {
        await using var h = await CliHarness.StartAsync();
        await h.StartRefundTurnAsync("t3");

        CliRun late = await h.RunAsync(CliHarness.Context(h.Agent, new ShiftedTime(TimeSpan.FromDays(2))), "approve", "t3/call_2");

        Assert.Equal(1, late.ExitCode);
        Assert.Contains("expired", late.Stderr, StringComparison.Ordinal);
        TurnStatus status = (await TurnConfirmations.GetStatusAsync(h.Client, "t3", CancellationToken.None))!;
        Assert.Single(status.PendingConfirmations);
        Assert.Empty(status.Decided);
        Assert.Empty(await h.LedgerAsync());
    }

    [Fact(Timeout = 90_000)]
    public async Task Replay_CompletedRefund_DeterministicAndFiresNoEffect()
    {
        await using var h = await CliHarness.StartAsync();
        PendingConfirmation pending = await h.StartRefundTurnAsync("t4");
        Assert.Equal(0, (await h.RunAsync("approve", "t4/call_2")).ExitCode);
        await h.WaitForCompletionAsync("t4");
        int handlerCalls = h.RefundHandlerCalls;
        string ledgerBefore = JsonSerializer.Serialize(await h.LedgerAsync());

        CliRun replay = await h.RunAsync("replay", "t4");
        CliRun replayJson = await h.RunAsync("replay", "t4", "--json");

        Assert.True(replay.ExitCode == 0, replay.ToString());
        Assert.Contains("Deterministic: yes", replay.Stdout, StringComparison.Ordinal);
        Assert.Contains("nothing: the orchestration is finished (Completed)", replay.Stdout, StringComparison.Ordinal);
        Assert.Contains("Effects during replay: 0 tool calls, 0 model calls", replay.Stdout, StringComparison.Ordinal);
        Assert.Contains("replaying", replay.Stderr, StringComparison.Ordinal);
        using JsonDocument doc = JsonDocument.Parse(replayJson.Stdout);
        Assert.True(doc.RootElement.GetProperty("deterministic").GetBoolean());
        Assert.Equal(0, doc.RootElement.GetProperty("toolCallsDuringReplay").GetInt32());
        Assert.Equal(1, handlerCalls);
        Assert.Equal(handlerCalls, h.RefundHandlerCalls);
        Assert.Equal(ledgerBefore, JsonSerializer.Serialize(await h.LedgerAsync()));
        Assert.Single(await h.LedgerAsync());
        Assert.Equal(64, pending.ArgumentsHash.Length);
    }

    [Fact(Timeout = 90_000)]
    public async Task Replay_WaitingTurn_ReportsWhatItWaitsFor()
    {
        await using var h = await CliHarness.StartAsync();
        await h.StartRefundTurnAsync("t5");

        CliRun replay = await h.RunAsync("replay", "t5");

        Assert.True(replay.ExitCode == 0, replay.ToString());
        Assert.Contains("Deterministic: yes", replay.Stdout, StringComparison.Ordinal);
        Assert.Contains("wait for a decision on t5/call_2: Refund $47.00 for order A8472", replay.Stdout, StringComparison.Ordinal);
        Assert.Contains("wait for timer", replay.Stdout, StringComparison.Ordinal);
        Assert.Empty(await h.LedgerAsync());
        Assert.Single((await TurnConfirmations.GetStatusAsync(h.Client, "t5", CancellationToken.None))!.PendingConfirmations);
    }

    [Fact(Timeout = 90_000)]
    public async Task Replay_ChangedOrchestratorCode_ReportsNonDeterminismAndExits1()
    {
        await using var h = await CliHarness.StartAsync();
        await h.StartRefundTurnAsync("t6");
        Assert.Equal(0, (await h.RunAsync("approve", "t6/call_2")).ExitCode);
        await h.WaitForCompletionAsync("t6");

        // The next version no longer asks a human before refunding: the recorded wait no longer matches the code.
        var changedTools = new ToolRegistryBuilder().AddRange([CliHarness.LookupOrder, CliHarness.ProcessRefund with { RequiresConfirmation = false }]).Build();
        var changed = h.Agent with { Tools = changedTools };
        CliRun replay = await h.RunAsync(CliHarness.Context(changed), "replay", "t6");

        Assert.Equal(1, replay.ExitCode);
        Assert.Contains("Deterministic: NO", replay.Stdout, StringComparison.Ordinal);
        Assert.Contains("Non-deterministic orchestration 'AgentTurn'", replay.Stdout, StringComparison.Ordinal);
        Assert.Single(await h.LedgerAsync());
    }

    [Fact(Timeout = 90_000)]
    public async Task Purge_OneAndFiltered_DeletesFinishedOnlyWithProgress()
    {
        await using var h = await CliHarness.StartAsync(r => r.AddOrchestratorFunc<string, string>("Echo", (ctx, s) => Task.FromResult(s)));
        foreach (string id in new[] { "e1", "e2", "e3" })
        {
            await h.Client.ScheduleNewOrchestrationInstanceAsync("Echo", id, new() { InstanceId = id });
            await h.WaitForCompletionAsync(id);
        }

        await h.StartRefundTurnAsync("t7");

        CliRun running = await h.RunAsync("purge", "t7");
        Assert.Equal(1, running.ExitCode);
        Assert.Contains("Running", running.Stderr, StringComparison.Ordinal);
        Assert.NotNull(await h.Client.GetInstanceAsync("t7"));

        CliRun one = await h.RunAsync("purge", "e1");
        Assert.True(one.ExitCode == 0, one.ToString());
        Assert.Null(await h.Client.GetInstanceAsync("e1"));
        Assert.Equal(1, (await h.RunAsync("purge", "e1")).ExitCode);

        // Nothing is older than a day yet.
        CliRun young = await h.RunAsync("purge", "--status", "completed", "--older-than", "1d", "--json");
        Assert.True(young.ExitCode == 0, young.ToString());
        Assert.Equal(0, JsonDocument.Parse(young.Stdout).RootElement.GetProperty("purged").GetInt32());
        Assert.NotNull(await h.Client.GetInstanceAsync("e2"));

        // A day later, the completed ones go; the running turn stays.
        CliRun old = await h.RunAsync(CliHarness.Context(h.Agent, new ShiftedTime(TimeSpan.FromDays(2))), "purge", "--status", "completed", "--older-than", "1d", "--json");
        Assert.True(old.ExitCode == 0, old.ToString());
        using JsonDocument doc = JsonDocument.Parse(old.Stdout);
        Assert.Equal(2, doc.RootElement.GetProperty("purged").GetInt32());
        Assert.Contains("purged 2", old.Stderr, StringComparison.Ordinal);
        Assert.Null(await h.Client.GetInstanceAsync("e2"));
        Assert.Null(await h.Client.GetInstanceAsync("e3"));
        Assert.NotNull(await h.Client.GetInstanceAsync("t7"));
    }

    [Fact(Timeout = 90_000)]
    public async Task Purge_FilterOverSeveralPages_DeletesEveryMatchOnceAndKeepsTheRest()
    {
        await using var h = await CliHarness.StartAsync(r => r
            .AddOrchestratorFunc<string, string>("Echo", (ctx, s) => Task.FromResult(s))
            .AddOrchestratorFunc<string, string>("Fail", (ctx, s) => throw new InvalidOperationException(s)));
        string[] completed = ["c1", "c2", "c3", "c4", "c5", "c6", "c7"];
        string[] failed = ["c35", "f1"];
        foreach (string id in completed)
        {
            await h.Client.ScheduleNewOrchestrationInstanceAsync("Echo", id, new() { InstanceId = id });
        }

        foreach (string id in failed)
        {
            await h.Client.ScheduleNewOrchestrationInstanceAsync("Fail", id, new() { InstanceId = id });
        }

        foreach (string id in completed.Concat(failed))
        {
            await h.WaitForCompletionAsync(id);
        }

        // Pages of two: the purge deletes behind its cursor as it goes, and failed instances sit between completed ones.
        CliRun run = await h.RunAsync("purge", "--status", "completed", "--page-size", "2", "--json");

        Assert.True(run.ExitCode == 0, run.ToString());
        using JsonDocument doc = JsonDocument.Parse(run.Stdout);
        Assert.Equal(completed.Length, doc.RootElement.GetProperty("purged").GetInt32());
        Assert.Equal(0, doc.RootElement.GetProperty("skipped").GetInt32());
        Assert.Equal(4, run.Stderr.Split('\n').Count(l => l.TrimStart().StartsWith("purged ", StringComparison.Ordinal)));
        foreach (string id in completed)
        {
            Assert.Null(await h.Client.GetInstanceAsync(id));
        }

        Assert.Equal(failed, (await h.Client.QueryInstancesAsync()).Select(m => m.InstanceId));
    }

    [Theory(Timeout = 30_000)]
    [InlineData("purge", "--status", "running")]
    [InlineData("purge", "--older-than", "7x")]
    [InlineData("purge")]
    [InlineData("purge", "a", "--status", "completed")]
    [InlineData("purge", "--status", "completed", "--page-size", "0")]
    [InlineData("purge", "--status", "completed", "--page-size", "10001")]
    [InlineData("purge", "--status", "completed", "--page-size", "ten")]
    [InlineData("purge", "a", "--page-size", "5")]
    [InlineData("approve", "no-slash")]
    [InlineData("approve", "t/")]
    [InlineData("status")]
    [InlineData("history", "a", "b")]
    [InlineData("replay", "x", "--frobnicate")]
    public async Task Commands_BadArguments_Exit2WithMessageAndTouchNothing(params string[] args)
    {
        string db = Path.Combine(Path.GetTempPath(), $"cli-bad-{Environment.ProcessId}-{Guid.NewGuid():N}.db");
        var stdout = new StringWriter();
        var stderr = new StringWriter();

        int code = await CommandLine.RunAsync([.. args, "--db", db], stdout, stderr, CancellationToken.None);

        Assert.Equal(2, code);
        Assert.StartsWith("error:", stderr.ToString(), StringComparison.Ordinal);
        Assert.False(File.Exists(db));
    }

    [Theory(Timeout = 30_000)]
    [InlineData("status", "x")]
    [InlineData("history", "x")]
    [InlineData("approve", "x/call_1")]
    [InlineData("purge", "x")]
    [InlineData("replay", "x")]
    public async Task Commands_MissingStore_Exit1NamingThePathAndCreateNoFile(params string[] args)
    {
        string db = Path.Combine(Path.GetTempPath(), $"cli-missing-{Environment.ProcessId}-{Guid.NewGuid():N}.db");
        var stdout = new StringWriter();
        var stderr = new StringWriter();

        int code = await CommandLine.RunAsync([.. args, "--db", db], stdout, stderr, CancellationToken.None);

        Assert.Equal(1, code);
        Assert.Contains($"No SQLite store at {db}", stderr.ToString(), StringComparison.Ordinal);
        Assert.False(File.Exists(db));
    }

    [Fact(Timeout = 60_000)]
    public async Task Commands_UnknownInstance_Exit1()
    {
        await using var h = await CliHarness.StartAsync();

        foreach (string[] args in new[] { new[] { "status", "nope" }, ["history", "nope"], ["replay", "nope"], ["approve", "nope/call_1"] })
        {
            CliRun run = await h.RunAsync(args);
            Assert.True(run.ExitCode == 1, $"{string.Join(' ', args)}: {run}");
            Assert.Contains("nope", run.Stderr, StringComparison.Ordinal);
        }
    }
}

public sealed class ConversationCommandTests
{
    [Fact(Timeout = 90_000)]
    public async Task StatusAndReplay_Conversation_ShowTurnsAndReplayAfterContinueAsNew()
    {
        await using var h = await CliHarness.StartAsync();
        await Conversations.StartAsync(h.Client, new ConversationState("c1", [ModelMessage.System("You are a support agent.")]), CancellationToken.None);
        await Conversations.SendUserMessageAsync(h.Client, "c1", "Order A8472 arrived broken. Please refund the $47.", CancellationToken.None);
        string turn = Conversations.TurnInstanceId("c1", 1);
        await Eventually.TrueAsync(async () => (await TurnConfirmations.GetStatusAsync(h.Client, turn, CancellationToken.None)) is { PendingConfirmations.Count: 1 }, "the first turn waits");

        CliRun during = await h.RunAsync("status", "c1");
        Assert.True(during.ExitCode == 0, during.ToString());
        Assert.Contains($"Current    {turn}", during.Stdout, StringComparison.Ordinal);

        Assert.Equal(0, (await h.RunAsync("approve", $"{turn}/call_2")).ExitCode);
        await Eventually.TrueAsync(async () => (await Conversations.GetStatusAsync(h.Client, "c1", CancellationToken.None)) is { Turns: 1 }, "the conversation records its first turn");

        CliRun after = await h.RunAsync("status", "c1");
        Assert.Contains("Turns      1", after.Stdout, StringComparison.Ordinal);
        Assert.Contains("Last turn  Answered: Your refund of $47.00 for order A8472 is done.", after.Stdout, StringComparison.Ordinal);
        CliRun replay = await h.RunAsync("replay", "c1");
        Assert.True(replay.ExitCode == 0, replay.ToString());
        Assert.Contains("Deterministic: yes", replay.Stdout, StringComparison.Ordinal);
        Assert.Single(await h.LedgerAsync());
    }
}

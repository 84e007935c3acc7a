using Orchestrator.Agents;
using Orchestrator.Agents.Models;
using Orchestrator.Durable.History;

namespace SupportDesk.Tests;

public sealed class RefundIncidentTests
{
    [Fact(Timeout = 120_000)]
    public async Task RefundIncident_Approved_RejectsAccountNumberRefundsOnceAndAnswersRepeatAsDone()
    {
        await using var desk = await DeskHarness.StartAsync();
        string turnId = await desk.StartConversationAsync("conv-incident", SupportDeskAgent.IncidentMessage);

        var status = await desk.StatusEventuallyAsync(turnId, s => s.PendingConfirmations.Count == 1, "the refund waits for a person");

        // The confirmation card shows the exact order and amount the model corrected itself to.
        var pending = Assert.Single(status.PendingConfirmations);
        Assert.Equal("call_refund_1", pending.ToolCallId);
        Assert.Equal(SupportDeskTools.ProcessRefund, pending.ToolName);
        Assert.Equal("""{"amount":47,"currency":"USD","order_id":"A8472","reason":"damaged"}""", pending.Arguments);
        Assert.Equal("Refund $47.00 for order A8472", pending.Summary);
        Assert.Equal(64, pending.ArgumentsHash.Length);
        Assert.NotNull(status.Plan);

        // Before that, the account number passed as order_id was rejected and the model was told why.
        string? rejection = desk.Server.Requests[1].ToolResultFor("call_lookup_1");
        Assert.NotNull(rejection);
        Assert.Contains("business_rule_violation", rejection, StringComparison.Ordinal);
        Assert.Contains("not an order id", rejection, StringComparison.Ordinal);
        Assert.Contains("\"total\":47", desk.Server.Requests[2].ToolResultFor("call_lookup_2"), StringComparison.Ordinal);
        Assert.Empty(await desk.LedgerAsync());

        var decision = new ConfirmationDecision(true, pending.ArgumentsHash, "alice");
        Assert.Equal(ConfirmationDecisionResult.Accepted, await TurnConfirmations.DecideAsync(desk.Client, turnId, pending.ToolCallId, decision, TimeProvider.System, CancellationToken.None));
        TurnOutput turn = await desk.WaitForTurnAsync(turnId);

        Assert.Equal(TurnOutcome.Answered, turn.Outcome);
        Assert.StartsWith("Your refund of $47.00 for order A8472", turn.Message, StringComparison.Ordinal);
        Assert.Equal(2, turn.ToolCalls); // the corrected lookup and one refund; the rejected call and the repeat ran nothing

        // Exactly one refund in the payments service's own ledger, under the key the turn derived.
        var refund = Assert.Single(await desk.LedgerAsync());
        Assert.Equal(("refund", "A8472", 47.00m, "USD"), (refund.Kind, refund.OrderId, refund.Amount, refund.Currency));
        var write = Assert.Single(turn.CompletedWrites);
        Assert.Equal(write.IdempotencyKey, refund.IdempotencyKey);
        Assert.Equal("call_refund_1", write.ToolCallId);

        // The re-proposed refund was answered as already done, with the first refund's result.
        string repeat = turn.Messages.Single(m => m.Role == ModelRole.Tool && m.ToolCallId == "call_refund_2").Content!;
        Assert.Contains("already_done", repeat, StringComparison.Ordinal);
        Assert.Contains(refund.Id, repeat, StringComparison.Ordinal);

        // The whole script played except the rejection branch; one ExecuteTool ran the refund.
        Assert.Equal("refund rejected by the reviewer", Assert.Single(desk.Server.Unplayed).Name);
        var history = await desk.Client.GetHistoryAsync(turnId);
        Assert.Single(history.OfType<TaskScheduledEvent>(), e => e.Name == TurnRegistration.ExecuteToolActivity && e.Input!.Contains(SupportDeskTools.ProcessRefund, StringComparison.Ordinal));
    }

    [Fact(Timeout = 120_000)]
    public async Task RefundIncident_Rejected_ExecutesNoRefundAndTellsTheCustomer()
    {
        await using var desk = await DeskHarness.StartAsync();
        string turnId = await desk.StartConversationAsync("conv-rejected", SupportDeskAgent.IncidentMessage);
        var status = await desk.StatusEventuallyAsync(turnId, s => s.PendingConfirmations.Count == 1, "the refund waits for a person");

        var results = await TurnConfirmations.DecideAllAsync(desk.Client, turnId, approve: false, "bob", TimeProvider.System, CancellationToken.None);
        Assert.Equal(ConfirmationDecisionResult.Accepted, Assert.Single(results).Value);
        TurnOutput turn = await desk.WaitForTurnAsync(turnId);

        Assert.Equal(TurnOutcome.Answered, turn.Outcome);
        Assert.Contains("did not approve", turn.Message, StringComparison.Ordinal);
        Assert.Empty(await desk.LedgerAsync());
        Assert.Empty(turn.CompletedWrites);
        Assert.Equal(1, turn.ToolCalls); // the lookup only
        Assert.Contains("rejected_by_reviewer", turn.Messages.Single(m => m.Role == ModelRole.Tool && m.ToolCallId == "call_refund_1").Content, StringComparison.Ordinal);
        var history = await desk.Client.GetHistoryAsync(turnId);
        Assert.DoesNotContain(history.OfType<TaskScheduledEvent>(), e => e.Name == TurnRegistration.ExecuteToolActivity && e.Input!.Contains(SupportDeskTools.ProcessRefund, StringComparison.Ordinal));
        Assert.Equal("re-propose the same refund", desk.Server.Unplayed[0].Name);
        Assert.Equal(status.PendingConfirmations[0].ToolCallId, Assert.Single((await TurnConfirmations.GetStatusAsync(desk.Client, turnId, CancellationToken.None))!.Decided).ToolCallId);
    }
}

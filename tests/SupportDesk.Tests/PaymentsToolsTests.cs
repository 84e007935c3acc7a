using System.Net.Http.Json;
using Orchestrator.Agents;
using Orchestrator.Agents.Models;
using Orchestrator.Agents.Models.Scripted;

namespace SupportDesk.Tests;

public sealed class PaymentsToolsTests
{
    private static ScriptEntry When(ScriptMatch match, params ScriptedToolCall[] calls) => ScriptEntry.Calls(calls) with { When = match };

    [Fact(Timeout = 60_000)]
    public async Task Reconcile_KeyThatTookEffect_PerformedWithTheStoredResponse_UnknownKeyNotPerformed()
    {
        await using var desk = await DeskHarness.StartAsync();
        using var request = new HttpRequestMessage(HttpMethod.Post, "refunds") { Content = JsonContent.Create(new { order_id = "A8472", amount = 10.00m, currency = "USD" }) };
        request.Headers.Add("Idempotency-Key", "key-done");
        using var posted = await desk.Payments.Client.SendAsync(request);
        posted.EnsureSuccessStatusCode();
        var reconciler = new PaymentsReconciler(desk.Payments.Client);

        var done = await reconciler.Refund(new ReconcileRequest("process_refund", "key-done", "{}"), CancellationToken.None);
        var unknown = await reconciler.Refund(new ReconcileRequest("process_refund", "key-never-sent", "{}"), CancellationToken.None);
        var wrongKind = await reconciler.Charge(new ReconcileRequest("charge_card", "key-done", "{}"), CancellationToken.None);

        Assert.Equal(ReconcileStatus.Performed, done.Status);
        Assert.Contains((await desk.LedgerAsync()).Single().Id, done.ResultJson, StringComparison.Ordinal);
        Assert.Equal(ReconcileStatus.NotPerformed, unknown.Status);
        Assert.Equal(ReconcileStatus.NotPerformed, wrongKind.Status);
    }

    [Fact(Timeout = 120_000)]
    public async Task ChargeAndEscalate_ChargeConfirmedWithCardRedacted_EscalationRunsWithoutConfirmation()
    {
        var script = new ChatScript(
            When(new ScriptMatch { LastRole = "user" },
                new ScriptedToolCall("call_esc", "escalate_to_human", """{"reason":"Customer asks for a goodwill voucher on top of the charge.","order_id":"A8473"}"""),
                new ScriptedToolCall("call_cust", "get_customer", """{"customer_id":"C-1029"}"""),
                new ScriptedToolCall("call_charge", "charge_card", """{"customer_id":"C-1029","order_id":"A8473","card_number":"4242424242424242","amount":12.50}""")),
            ScriptEntry.Text("Done: the shipping charge is made and a colleague will follow up on the voucher.") with { When = new ScriptMatch { ToolResultFor = "call_charge" } });
        await using var desk = await DeskHarness.StartAsync(script);
        string turnId = await desk.StartConversationAsync("conv-charge", "Please charge my card 4242424242424242 the $12.50 express shipping for A8473, and can I get a voucher?");

        var status = await desk.StatusEventuallyAsync(turnId, s => s.PendingConfirmations.Count == 1, "the charge waits for a person");
        var pending = status.PendingConfirmations[0];
        Assert.Equal("call_charge", pending.ToolCallId);
        Assert.DoesNotContain("4242424242424242", pending.Arguments, StringComparison.Ordinal);
        Assert.Equal("Charge $12.50 USD to customer C-1029 for order A8473", pending.Summary);

        // The escalation (first in the reply: a write without a resource key runs in the model's order) needs no confirmation: it ran already.
        var escalation = Assert.Single(desk.Escalations.Escalations);
        Assert.Equal(("conv-charge", "A8473"), (escalation.ConversationId, escalation.OrderId));
        Assert.Empty(await desk.LedgerAsync());

        Assert.Equal(ConfirmationDecisionResult.Accepted, await TurnConfirmations.DecideAsync(desk.Client, turnId, "call_charge", new ConfirmationDecision(true, pending.ArgumentsHash), TimeProvider.System, CancellationToken.None));
        TurnOutput turn = await desk.WaitForTurnAsync(turnId);

        Assert.Equal(TurnOutcome.Answered, turn.Outcome);
        var charge = Assert.Single(await desk.LedgerAsync());
        Assert.Equal(("charge", "A8473", 12.50m), (charge.Kind, charge.OrderId, charge.Amount));
        Assert.Equal(turn.CompletedWrites.Single(w => w.ToolCallId == "call_charge").IdempotencyKey, charge.IdempotencyKey);
        Assert.Contains(escalation.Ticket, turn.Messages.Single(m => m.Role == ModelRole.Tool && m.ToolCallId == "call_esc").Content, StringComparison.Ordinal);
        Assert.Single(desk.Escalations.Escalations);
    }
}

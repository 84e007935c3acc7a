using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Orchestrator.Agents;
using Orchestrator.Agents.Models;
using SupportDesk;

namespace Orchestrator.Testing;

/// <summary>
/// The support-desk sample's tools (its <c>charge_card</c> needs a person's confirmation and marks <c>card_number</c>
/// sensitive) with recording handlers and a hand-written model: any user message proposes looking customer C-1029 up
/// and charging <see cref="ProposedCard"/> for order A8473; after tool results it answers in text. For the tests that
/// approve a charge with an edited card number and look for that number in the store.
/// </summary>
internal sealed class CardChargeAgent
{
    /// <summary>The card the model proposes (Luhn-valid).</summary>
    public const string ProposedCard = "4111111111111111";

    /// <summary>The charge's tool_call id.</summary>
    public const string ChargeCallId = "call_charge";

    /// <summary>The canonical arguments each <c>charge_card</c> run received, as the handler saw them.</summary>
    public ConcurrentQueue<string> Charges { get; } = new();

    /// <summary>Edited charge arguments: the proposed call's with <paramref name="card"/> instead of the proposed card.</summary>
    public static JsonObject EditedArguments(string card) => new()
    {
        ["customer_id"] = "C-1029",
        ["order_id"] = "A8473",
        ["card_number"] = card,
        ["amount"] = 129.99,
        ["currency"] = "USD",
    };

    /// <summary>The canonical form of <see cref="EditedArguments"/>: what the handler must receive.</summary>
    public static string CanonicalCharge(string card) =>
        $$"""{"amount":129.99,"card_number":"{{card}}","currency":"USD","customer_id":"C-1029","order_id":"A8473"}""";

    public AgentDefinition Definition()
    {
        ToolRegistry tools = SupportDeskTools.Build(OrderStore.Seeded, reconcile: null);
        ToolHandlers handlers = new ToolHandlers()
            .Add(SupportDeskTools.LookupOrder, (_, _) => Task.FromResult("""{"order_id":"A8473","total":129.99}"""))
            .Add(SupportDeskTools.GetCustomer, (_, _) => Task.FromResult("""{"customer_id":"C-1029","name":"Dana Whitfield"}"""))
            .Add(SupportDeskTools.ProcessRefund, (_, _) => throw new ToolExecutionException("not in this test"))
            .Add(SupportDeskTools.EscalateToHuman, (_, _) => throw new ToolExecutionException("not in this test"))
            .Add(SupportDeskTools.ChargeCard, (invocation, _) =>
            {
                Charges.Enqueue(invocation.Arguments);
                return Task.FromResult("""{"charge_id":"CH-1","status":"charged"}""");
            });
        return new AgentDefinition("card-charge", tools, handlers, new Model());
    }

    private sealed class Model : IChatModel
    {
        public Task<ModelReply> CompleteAsync(ModelRequest request, CancellationToken cancellationToken)
        {
            if (request.Messages[^1].Role == ModelRole.Tool)
            {
                return Task.FromResult(new ModelReply { Text = "The charge went through.", FinishReason = "stop" });
            }

            return Task.FromResult(new ModelReply
            {
                FinishReason = "tool_calls",
                ToolCalls =
                [
                    new ModelToolCall("call_customer", SupportDeskTools.GetCustomer, """{"customer_id":"C-1029"}"""),
                    new ModelToolCall(ChargeCallId, SupportDeskTools.ChargeCard, $$"""{"customer_id":"C-1029","order_id":"A8473","card_number":"{{ProposedCard}}","amount":129.99,"currency":"USD"}"""),
                ],
            });
        }
    }
}

using System.Reflection;
using Orchestrator.Agents;
using Orchestrator.Agents.Models;
using Orchestrator.Agents.Models.Scripted;

namespace SupportDesk;

/// <summary>The support-desk agent: its tools, their code, its system prompt and its scripted refund incident.</summary>
public static class SupportDeskAgent
{
    /// <summary>The agent's name in logs and status.</summary>
    public const string Name = "support-desk";

    /// <summary>The customer message that opens the refund incident the scripted model plays.</summary>
    public const string IncidentMessage =
        "Hi, my account number is 99812345. Order A8472 arrived broken (the teapot was in pieces). Please refund the $47.00.";

    /// <summary>What the model is told before every conversation.</summary>
    public const string SystemPrompt = """
        You are the support desk of a small online shop. Help customers with their orders.
        - Look an order up with lookup_order before acting on it. Order ids look like A8472; account numbers
          (eight digits) and customer ids (C-1029) are not order ids.
        - Refund with process_refund, never more than the order total; charge with charge_card. A person confirms
          every refund and charge before it runs; if they reject it, say so and do not try again.
        - Hand anything else, or a refund you may not make, to a person with escalate_to_human.
        - Never repeat a card or account number back to the customer.
        """;

    /// <summary>
    /// The agent on <paramref name="model"/>, its payment tools calling the payments service at
    /// <paramref name="payments"/>' base address (with <c>Idempotency-Key</c>; in-doubt payments reconciled there).
    /// </summary>
    /// <param name="model">The chat model that proposes calls.</param>
    /// <param name="payments">A client whose <see cref="HttpClient.BaseAddress"/> is the payments service; the caller owns it.</param>
    /// <param name="store">The orders and customers; <see cref="OrderStore.Seeded"/> when null.</param>
    /// <param name="escalations">Where escalations go; a new desk when null.</param>
    /// <param name="turnOptions">Per-turn limits; the defaults when null.</param>
    public static AgentDefinition Create(IChatModel model, HttpClient payments, OrderStore? store = null, EscalationDesk? escalations = null, TurnOptions? turnOptions = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(payments);
        store ??= OrderStore.Seeded;
        ToolRegistry tools = SupportDeskTools.Build(store, new PaymentsReconciler(payments));
        ToolHandlers handlers = SupportDeskHandlers.Build(store, payments, escalations ?? new EscalationDesk());
        return new AgentDefinition(Name, tools, handlers, model)
        {
            SystemPrompt = SystemPrompt,
            TurnOptions = turnOptions,
        };
    }

    /// <summary>The scripted model's side of the refund incident (a cassette for <see cref="ScriptedChatServer"/>).</summary>
    public static ChatScript IncidentScript()
    {
        using Stream stream = typeof(SupportDeskAgent).Assembly.GetManifestResourceStream("SupportDesk.refund-incident.json")
            ?? throw new InvalidOperationException("The refund-incident script is missing from the SupportDesk assembly.");
        using var reader = new StreamReader(stream);
        return ChatScript.Parse(reader.ReadToEnd());
    }

    /// <summary>The first messages of a new conversation: the system prompt.</summary>
    public static IReadOnlyList<ModelMessage> NewConversation() => [ModelMessage.System(SystemPrompt)];
}

using Orchestrator.Agents;

namespace SupportDesk;

/// <summary>
/// The support desk's tools and their contracts: two reads (<c>lookup_order</c>, <c>get_customer</c>) and three
/// writes (<c>process_refund</c> and <c>charge_card</c>, which a human confirms, and <c>escalate_to_human</c>).
/// </summary>
public static class SupportDeskTools
{
    /// <summary>Tool name: look an order up.</summary>
    public const string LookupOrder = "lookup_order";

    /// <summary>Tool name: get a customer by id or account number.</summary>
    public const string GetCustomer = "get_customer";

    /// <summary>Tool name: refund (part of) an order through the payments service.</summary>
    public const string ProcessRefund = "process_refund";

    /// <summary>Tool name: charge a customer's card through the payments service.</summary>
    public const string ChargeCard = "charge_card";

    /// <summary>Tool name: hand the conversation to a person.</summary>
    public const string EscalateToHuman = "escalate_to_human";

    private static readonly TimeSpan PaymentTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The checked tool set. <paramref name="reconcile"/> answers for in-doubt payments (null: none).</summary>
    /// <param name="store">The orders and customers the business rules check against.</param>
    /// <param name="reconcile">Asks the payments service whether a key already took effect, or null.</param>
    public static ToolRegistry Build(OrderStore store, PaymentsReconciler? reconcile)
    {
        ArgumentNullException.ThrowIfNull(store);
        return new ToolRegistryBuilder().AddRange(
        [
            ToolDefinition.FromArguments<LookupOrderArgs>(LookupOrder, "Look up an order by its order id: item, total paid, status and customer.") with
            {
                ResourceKeyArguments = ["order_id"],
                Validator = new LookupOrderRules(),
            },
            ToolDefinition.FromArguments<GetCustomerArgs>(GetCustomer, "Get a customer by customer id or by the account number they quote.") with
            {
                ResourceKeyArguments = ["customer_id"],
                SensitiveArguments = ["account_number"],
                Validator = new GetCustomerRules(),
            },
            ToolDefinition.FromArguments<RefundArgs>(ProcessRefund, "Refund (part of) an order to the card it was paid with. A person confirms every refund.") with
            {
                Effect = ToolEffect.Write,
                RequiresConfirmation = true,
                ResourceKeyArguments = ["order_id"],
                DependsOn = [LookupOrder],
                Validator = new RefundRules(store),
                Reconcile = reconcile is null ? null : reconcile.Refund,
                SummaryTemplate = "Refund ${amount:0.00} for order {order_id}",
                Timeout = PaymentTimeout,
            },
            ToolDefinition.FromArguments<ChargeArgs>(ChargeCard, "Charge a customer's card for one of their orders. A person confirms every charge.") with
            {
                Effect = ToolEffect.Write,
                RequiresConfirmation = true,
                ResourceKeyArguments = ["customer_id"],
                DependsOn = [GetCustomer],
                SensitiveArguments = ["card_number"],
                Validator = new ChargeRules(store),
                Reconcile = reconcile is null ? null : reconcile.Charge,
                SummaryTemplate = "Charge ${amount:0.00} {currency} to customer {customer_id} for order {order_id}",
                Timeout = PaymentTimeout,
            },
            ToolDefinition.FromArguments<EscalateArgs>(EscalateToHuman, "Hand the conversation to a person, for anything the tools cannot do or a refund you may not make.") with
            {
                Effect = ToolEffect.Write,
                Validator = new EscalateRules(),
            },
        ]).Build();
    }
}

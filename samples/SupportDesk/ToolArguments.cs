using System.ComponentModel;
using System.ComponentModel.DataAnnotations;

namespace SupportDesk;

/// <summary>Why a refund is made.</summary>
public enum RefundReason
{
    /// <summary>The item arrived damaged.</summary>
    Damaged,

    /// <summary>The item never arrived.</summary>
    NotDelivered,

    /// <summary>The customer changed their mind.</summary>
    ChangedMind,
}

/// <summary>How urgent an escalation is.</summary>
public enum EscalationPriority
{
    /// <summary>Within a business day.</summary>
    Normal,

    /// <summary>As soon as someone is free.</summary>
    High,
}

/// <summary>Arguments of <c>lookup_order</c>.</summary>
/// <param name="OrderId">The order id.</param>
public sealed record LookupOrderArgs(
    [property: Description("The order id: the letter A and at least four digits, such as A8472. Not an account number.")] string OrderId);

/// <summary>Arguments of <c>get_customer</c>: exactly one of the two.</summary>
/// <param name="CustomerId">The customer id.</param>
/// <param name="AccountNumber">The eight-digit account number the customer quotes (sensitive).</param>
public sealed record GetCustomerArgs(
    [property: Description("The customer id, such as C-1029.")] string? CustomerId = null,
    [property: Description("The customer's eight-digit account number, when they quote it instead.")] string? AccountNumber = null);

/// <summary>Arguments of <c>process_refund</c>.</summary>
/// <param name="OrderId">The order to refund.</param>
/// <param name="Amount">How much, at most the order total.</param>
/// <param name="Reason">Why.</param>
/// <param name="Currency">The order's currency.</param>
public sealed record RefundArgs(
    [property: Description("The order to refund, such as A8472.")] string OrderId,
    [property: Description("The amount to refund, at most the order total.")][property: Range(0.01, 10000)] decimal Amount,
    [property: Description("Why the refund is made.")] RefundReason Reason,
    [property: Description("ISO 4217 currency code of the order.")][property: RegularExpression("^[A-Z]{3}$")] string Currency = "USD");

/// <summary>Arguments of <c>charge_card</c>.</summary>
/// <param name="CustomerId">Who is charged.</param>
/// <param name="OrderId">The order the charge belongs to.</param>
/// <param name="CardNumber">The card number (sensitive: never logged, redacted in stored status).</param>
/// <param name="Amount">How much.</param>
/// <param name="Currency">ISO 4217 code.</param>
public sealed record ChargeArgs(
    [property: Description("The customer to charge, such as C-1029.")] string CustomerId,
    [property: Description("The customer's order the charge is for.")] string OrderId,
    [property: Description("The 16-digit card number the customer gave.")] string CardNumber,
    [property: Description("The amount to charge.")][property: Range(0.01, 5000)] decimal Amount,
    [property: Description("ISO 4217 currency code.")][property: RegularExpression("^[A-Z]{3}$")] string Currency = "USD");

/// <summary>Arguments of <c>escalate_to_human</c>.</summary>
/// <param name="Reason">What the person should look at.</param>
/// <param name="Priority">How urgent.</param>
/// <param name="OrderId">The order concerned, if any.</param>
public sealed record EscalateArgs(
    [property: Description("What a person needs to look at, in a sentence.")] string Reason,
    [property: Description("How urgent.")] EscalationPriority Priority = EscalationPriority.Normal,
    [property: Description("The order concerned, if any.")] string? OrderId = null);

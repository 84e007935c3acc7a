using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using FluentValidation;

namespace Orchestrator.Agents.Tests;

public enum RefundReason
{
    Damaged,
    NotDelivered,
    ChangedMind,
}

public sealed record LookupOrderArgs(
    [property: Description("The order id, such as A8472.")]
    [property: RegularExpression(@"^A\d{4,}$")]
    string OrderId);

public sealed record GetCustomerArgs(string CustomerId);

public sealed record RefundArgs(
    [property: Description("The order to refund.")] string OrderId,
    [property: Range(0.01, 10000)] decimal Amount,
    RefundReason Reason = RefundReason.Damaged,
    string? Note = null);

public sealed record ChargeArgs(string CustomerId, string CardNumber, decimal Amount, string Currency = "USD");

/// <summary>The business rules of process_refund; the account-number incident is the first rule.</summary>
public sealed class RefundRules : AbstractValidator<RefundArgs>
{
    public RefundRules()
    {
        RuleFor(x => x.OrderId)
            .Matches(@"^A\d{4,}$")
            .WithName("order_id")
            .WithMessage("order_id must be an order id like A8472 (the letter A and at least four digits); an account or card number is not an order id");
        RuleFor(x => x.Amount).LessThanOrEqualTo(500m).WithMessage("refunds above 500 need a human: escalate instead");
        RuleFor(x => x.Note).NotEmpty().When(x => x.Reason == RefundReason.ChangedMind)
            .WithMessage("a note is required when the reason is changed_mind");
    }
}

public sealed class ChargeRules : AbstractValidator<ChargeArgs>
{
    public ChargeRules() =>
        RuleFor(x => x.CardNumber).Matches(@"^\d{16}$").WithMessage("card_number '{PropertyValue}' must be 16 digits");
}

/// <summary>A business rule that throws: a bug in the tool's configuration.</summary>
public sealed class ThrowingRules : AbstractValidator<GetCustomerArgs>
{
    public ThrowingRules() =>
        RuleFor(x => x.CustomerId).Must(_ => throw new InvalidOperationException("database password is hunter2"));
}

internal static class SupportDesk
{
    internal static ToolDefinition LookupOrder => ToolDefinition.FromArguments<LookupOrderArgs>("lookup_order", "Look up an order by its id.") with
    {
        ResourceKeyArguments = ["order_id"],
    };

    internal static ToolDefinition GetCustomer => ToolDefinition.FromArguments<GetCustomerArgs>("get_customer", "Get a customer.") with
    {
        ResourceKeyArguments = ["customer_id"],
    };

    internal static ToolDefinition ProcessRefund => ToolDefinition.FromArguments<RefundArgs>("process_refund", "Refund (part of) an order.") with
    {
        Effect = ToolEffect.Write,
        RequiresConfirmation = true,
        ResourceKeyArguments = ["order_id"],
        DependsOn = ["lookup_order"],
        Validator = new RefundRules(),
        SummaryTemplate = "Refund ${amount:0.00} for order {order_id}",
    };

    internal static ToolDefinition ChargeCard => ToolDefinition.FromArguments<ChargeArgs>("charge_card", "Charge a customer's card.") with
    {
        Effect = ToolEffect.Write,
        RequiresConfirmation = true,
        ResourceKeyArguments = ["customer_id"],
        SensitiveArguments = ["card_number"],
        Validator = new ChargeRules(),
        SummaryTemplate = "Charge {amount} {currency} to customer {customer_id}",
    };

    internal static ToolDefinition EscalateToHuman => ToolDefinition.FromJsonSchema(
        "escalate_to_human",
        "Hand the conversation to a person.",
        """{"type":"object","properties":{"reason":{"type":"string","minLength":3},"priority":{"type":"string","enum":["low","high"]}},"required":["reason"]}""") with
    {
        Effect = ToolEffect.Write,
    };

    internal static ToolRegistry Registry() =>
        new ToolRegistryBuilder().AddRange([LookupOrder, GetCustomer, ProcessRefund, ChargeCard, EscalateToHuman]).Build();
}

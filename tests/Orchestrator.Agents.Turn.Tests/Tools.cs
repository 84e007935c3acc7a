using System.ComponentModel.DataAnnotations;
using System.Text.Json.Nodes;
using FluentValidation;

namespace Orchestrator.Agents.Turn.Tests;

public sealed record LookupOrderArgs(string OrderId);

public sealed record GetCustomerArgs(string CustomerId);

public sealed record RefundArgs(string OrderId, [property: Range(0.01, 10000)] decimal Amount, [property: RegularExpression("^[A-Z]{3}$")] string Currency);

public sealed record NoteArgs(string OrderId, string Note);

public sealed record ChargeArgs(string CustomerId, decimal Amount);

/// <summary>The rule that catches the account-number incident.</summary>
public sealed class RefundRules : AbstractValidator<RefundArgs>
{
    public RefundRules() =>
        RuleFor(x => x.OrderId)
            .Matches(@"^A\d{4,}$")
            .WithName("order_id")
            .WithMessage("order_id must be an order id like A8472 (the letter A and at least four digits); an account number is not an order id");
}

/// <summary>The support-desk tools used by the turn tests.</summary>
internal static class Desk
{
    internal static ToolDefinition LookupOrder => ToolDefinition.FromArguments<LookupOrderArgs>("lookup_order", "Look up an order by its id.") with
    {
        ResourceKeyArguments = ["order_id"],
        Timeout = TimeSpan.FromSeconds(10),
    };

    internal static ToolDefinition GetCustomer => ToolDefinition.FromArguments<GetCustomerArgs>("get_customer", "Get a customer.") with
    {
        ResourceKeyArguments = ["customer_id"],
        Timeout = TimeSpan.FromSeconds(10),
    };

    internal static ToolDefinition ProcessRefund => ToolDefinition.FromArguments<RefundArgs>("process_refund", "Refund (part of) an order.") with
    {
        Effect = ToolEffect.Write,
        RequiresConfirmation = true,
        ResourceKeyArguments = ["order_id"],
        DependsOn = ["lookup_order"],
        Validator = new RefundRules(),
        SummaryTemplate = "Refund ${amount:0.00} for order {order_id}",
        Timeout = TimeSpan.FromSeconds(10),
    };

    internal static ToolDefinition AddNote => ToolDefinition.FromArguments<NoteArgs>("add_note", "Add a note to an order.") with
    {
        Effect = ToolEffect.Write,
        ResourceKeyArguments = ["order_id"],
        DependsOn = ["lookup_order"],
    };

    internal static ToolDefinition ChargeCard => ToolDefinition.FromArguments<ChargeArgs>("charge_card", "Charge a customer's card.") with
    {
        Effect = ToolEffect.Write,
        ResourceKeyArguments = ["customer_id"],
        MaxRetries = 0,
    };

    internal static Task<string> OrderJson(ToolInvocation invocation)
    {
        var args = JsonNode.Parse(invocation.Arguments)!;
        return Task.FromResult(new JsonObject { ["order_id"] = (string?)args["order_id"], ["total"] = 47.00, ["status"] = "delivered" }.ToJsonString());
    }
}

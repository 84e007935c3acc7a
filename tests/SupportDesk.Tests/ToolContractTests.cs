using Orchestrator.Agents;

namespace SupportDesk.Tests;

/// <summary>The support desk's business rules, checked the way the turn checks every proposed call.</summary>
public sealed class ToolContractTests
{
    private static readonly ToolCallValidator Validator = new(SupportDeskTools.Build(OrderStore.Seeded, reconcile: null));

    private static ToolCallValidationResult Check(string tool, string arguments) => Validator.Validate(new ProposedToolCall("call_1", tool, arguments), 0);

    [Theory]
    [InlineData("lookup_order", """{"order_id":"99812345"}""", "order_id", "not an order id")]
    [InlineData("process_refund", """{"order_id":"99812345","amount":47.00,"reason":"damaged"}""", "order_id", "not an order id")]
    [InlineData("process_refund", """{"order_id":"A8472","amount":60.00,"reason":"damaged"}""", "amount", "cannot exceed the order total: 60.00 is more than the 47.00 paid for A8472")]
    [InlineData("process_refund", """{"order_id":"A0001","amount":5.00,"reason":"damaged"}""", "order_id", "does not exist")]
    [InlineData("process_refund", """{"order_id":"A8472","amount":10.00,"reason":"damaged","currency":"EUR"}""", "currency", "order's currency, USD")]
    [InlineData("charge_card", """{"customer_id":"C-1029","order_id":"A9120","card_number":"4242424242424242","amount":5.00}""", "order_id", "not an order of customer C-1029")]
    [InlineData("get_customer", """{"customer_id":"C-1029","account_number":"99812345"}""", "", "exactly one of customer_id and account_number")]
    [InlineData("escalate_to_human", """{"reason":"help"}""", "reason", "what a person should look at")]
    public void Validate_BrokenBusinessRule_RejectedWithTheRuleForTheModel(string tool, string arguments, string argument, string expected)
    {
        var result = Check(tool, arguments);

        Assert.False(result.IsValid);
        Assert.Equal(ToolCallErrorKind.BusinessRuleViolation, result.Rejected!.Kind);
        var error = Assert.Single(result.Rejected.Errors, e => e.Problem.Contains(expected, StringComparison.Ordinal));
        Assert.Equal(argument, error.Argument);
    }

    [Theory]
    [InlineData("4242424242424241")] // fails the check digit
    [InlineData("42424242")] // too short
    public void Validate_BadCardNumber_RejectedWithoutEchoingTheNumber(string card)
    {
        var result = Check("charge_card", $$"""{"customer_id":"C-1029","order_id":"A8473","card_number":"{{card}}","amount":12.50}""");

        Assert.False(result.IsValid);
        string content = result.Rejected!.ToModelContent();
        Assert.Contains("card_number", content, StringComparison.Ordinal);
        Assert.DoesNotContain(card, content, StringComparison.Ordinal);
        Assert.DoesNotContain(card, result.Rejected.RedactedArguments, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_ValidCalls_AcceptedWithSensitiveValuesRedacted()
    {
        var refund = Check("process_refund", """{"order_id":"A8472","amount":47,"reason":"damaged"}""");
        var charge = Check("charge_card", """{"customer_id":"C-1029","order_id":"A8473","card_number":"4242424242424242","amount":12.50}""");
        var customer = Check("get_customer", """{"account_number":"99812345"}""");

        Assert.True(refund.IsValid, refund.Rejected?.Message);
        Assert.True(charge.IsValid, charge.Rejected?.Message);
        Assert.DoesNotContain("4242424242424242", charge.Valid!.RedactedArguments, StringComparison.Ordinal);
        Assert.True(customer.IsValid, customer.Rejected?.Message);
        Assert.DoesNotContain("99812345", customer.Valid!.RedactedArguments, StringComparison.Ordinal);
    }

    [Fact]
    public void Build_ToolContracts_WritesConfirmedAndKeyedReadsFree()
    {
        var tools = SupportDeskTools.Build(OrderStore.Seeded, reconcile: null).Tools.ToDictionary(t => t.Name);

        Assert.Equal(["charge_card", "escalate_to_human", "get_customer", "lookup_order", "process_refund"], tools.Keys.Order(StringComparer.Ordinal));
        Assert.All(new[] { "lookup_order", "get_customer" }, n => Assert.Equal(ToolEffect.Read, tools[n].Effect));
        Assert.All(new[] { "process_refund", "charge_card" }, n => Assert.True(tools[n].Effect == ToolEffect.Write && tools[n].RequiresConfirmation));
        Assert.False(tools["escalate_to_human"].RequiresConfirmation);
        Assert.Equal(["order_id"], tools["process_refund"].ResourceKeyArguments);
        Assert.Equal(["customer_id"], tools["charge_card"].ResourceKeyArguments);
        Assert.Contains("card_number", tools["charge_card"].SensitiveArguments);
        Assert.Contains("account_number", tools["get_customer"].SensitiveArguments);
    }
}

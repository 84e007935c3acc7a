using System.Text.Json;

namespace Orchestrator.Agents.Tests.Validation;

public sealed class ToolCallValidatorTests
{
    private readonly ToolCallValidator _validator = new(SupportDesk.Registry());

    private RejectedToolCall Rejected(string name, string arguments, string id = "call_1")
    {
        var result = _validator.Validate(new ProposedToolCall(id, name, arguments), 0);
        Assert.False(result.IsValid);
        return result.Rejected!;
    }

    private ValidatedToolCall Valid(string name, string arguments, string id = "call_1")
    {
        var result = _validator.Validate(new ProposedToolCall(id, name, arguments), 0);
        Assert.True(result.IsValid, result.Rejected?.Message);
        return result.Valid!;
    }

    [Fact]
    public void Validate_RefundIncidentAccountNumberAsOrderId_RejectedByBusinessRuleNamingOrderId()
    {
        var rejected = Rejected("process_refund", """{"order_id":"4417-2290-1138","amount":47.00}""", "call_refund");

        Assert.Equal("call_refund", rejected.ToolCallId);
        Assert.Equal(ToolCallErrorKind.BusinessRuleViolation, rejected.Kind);
        var error = Assert.Single(rejected.Errors);
        Assert.Equal("order_id", error.Argument);
        Assert.Equal("rule", error.Code);
        Assert.Contains("order_id", error.Problem, StringComparison.Ordinal);
        Assert.Contains("order_id", rejected.Message, StringComparison.Ordinal);

        using var content = JsonDocument.Parse(rejected.ToModelContent());
        Assert.Equal("business_rule_violation", content.RootElement.GetProperty("error").GetString());
        Assert.Equal("process_refund", content.RootElement.GetProperty("tool").GetString());
        Assert.Equal("order_id", content.RootElement.GetProperty("problems")[0].GetProperty("argument").GetString());
    }

    [Fact]
    public void Validate_RefundIncidentCorrected_ValidWithCanonicalArgumentsHashAndSummary()
    {
        var valid = Valid("process_refund", """{ "amount": 47.00, "order_id": "A8472" }""", "call_refund_2");

        Assert.Equal("call_refund_2", valid.ToolCallId);
        Assert.Equal("""{"amount":47,"order_id":"A8472"}""", valid.CanonicalArguments);
        Assert.Equal(CanonicalJson.Sha256Hex(valid.CanonicalArguments), valid.ArgumentsHash);
        Assert.Equal("Refund $47.00 for order A8472", valid.Summary);
        Assert.Equal(["order_id=A8472"], valid.ResourceKeys);
        Assert.Equal(ToolEffect.Write, valid.Effect);
        Assert.True(valid.RequiresConfirmation);
        Assert.Equal("A8472", valid.ParseArguments().GetProperty("order_id").GetString());
    }

    [Fact]
    public void Validate_SameArgumentsSpelledDifferently_SameHash()
    {
        var a = Valid("process_refund", """{"order_id":"A8472","amount":47}""");
        var b = Valid("process_refund", """{"amount":4.70e1,"order_id":"A8472"}""");

        Assert.Equal(a.ArgumentsHash, b.ArgumentsHash);
    }

    [Fact]
    public void Validate_SchemaPatternOnLookup_RejectedNamingPatternAndValue()
    {
        var rejected = Rejected("lookup_order", """{"order_id":"4417-2290-1138"}""");

        Assert.Equal(ToolCallErrorKind.InvalidArguments, rejected.Kind);
        var error = Assert.Single(rejected.Errors);
        Assert.Equal(("order_id", "pattern"), (error.Argument, error.Code));
        Assert.Equal("""'order_id' does not match the required format ^A\d{4,}$ (got "4417-2290-1138")""", error.Problem);
    }

    [Theory]
    [InlineData("{\"order_id\": \"A1\",}")]
    [InlineData("{\"order_id\": ")]
    [InlineData("order_id=A8472")]
    public void Validate_MalformedJson_RejectedAsMalformedWithoutInternalDetail(string arguments)
    {
        var rejected = Rejected("lookup_order", arguments);

        Assert.Equal(ToolCallErrorKind.MalformedArguments, rejected.Kind);
        Assert.StartsWith("The arguments for 'lookup_order' are not valid JSON", rejected.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", rejected.ToModelContent(), StringComparison.Ordinal);
        Assert.DoesNotContain("System.", rejected.ToModelContent(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("[1]", "array")]
    [InlineData("\"A8472\"", "string")]
    [InlineData("null", "null")]
    public void Validate_NonObjectArguments_Rejected(string arguments, string kind)
    {
        var rejected = Rejected("lookup_order", arguments);

        Assert.Equal(ToolCallErrorKind.MalformedArguments, rejected.Kind);
        Assert.Equal($"The arguments for 'lookup_order' must be a JSON object, not {kind}.", rejected.Message);
    }

    [Fact]
    public void Validate_DuplicateKey_RejectedAsMalformed()
    {
        var rejected = Rejected("lookup_order", """{"order_id":"A1234","order_id":"A9999"}""");

        Assert.Equal(ToolCallErrorKind.MalformedArguments, rejected.Kind);
    }

    [Fact]
    public void Validate_EmptyArgumentString_TreatedAsEmptyObject()
    {
        var rejected = Rejected("lookup_order", "");

        Assert.Equal(ToolCallErrorKind.InvalidArguments, rejected.Kind);
        Assert.Equal(("order_id", "required"), (rejected.Errors[0].Argument, rejected.Errors[0].Code));
    }

    [Fact]
    public void Validate_TooLarge_Rejected()
    {
        var validator = new ToolCallValidator(SupportDesk.Registry(), new ToolValidationOptions { MaxArgumentsLength = 20 });

        var result = validator.Validate(new ProposedToolCall("c", "lookup_order", """{"order_id":"A12345678901234"}"""), 0);

        Assert.Equal(ToolCallErrorKind.MalformedArguments, result.Rejected!.Kind);
        Assert.Contains("too large", result.Rejected.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_UnknownTool_RejectedWithSuggestionAndToolList()
    {
        var rejected = Rejected("process_refnd", "{}");

        Assert.Equal(ToolCallErrorKind.UnknownTool, rejected.Kind);
        Assert.Equal(
            "There is no tool named 'process_refnd'. Did you mean 'process_refund'? Available tools: lookup_order, get_customer, process_refund, charge_card, escalate_to_human.",
            rejected.Message);
    }

    [Fact]
    public void Validate_MissingRequired_NamesEachMissingArgument()
    {
        var rejected = Rejected("process_refund", "{}");

        Assert.Equal(ToolCallErrorKind.InvalidArguments, rejected.Kind);
        Assert.Equal(
            [("amount", "required"), ("order_id", "required")],
            rejected.Errors.Select(e => (e.Argument, e.Code)));
        Assert.Contains("'order_id' is required but missing", rejected.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_UnknownArgument_NamedWithAllowedList()
    {
        var rejected = Rejected("lookup_order", """{"order_id":"A1234","account_number":"4417"}""");

        var error = Assert.Single(rejected.Errors);
        Assert.Equal(("account_number", "unknown"), (error.Argument, error.Code));
        Assert.Equal("'account_number' is not an argument of this tool (allowed: order_id)", error.Problem);
    }

    [Fact]
    public void Validate_UnknownArgumentOnSchemaWithoutAdditionalProperties_StillRejected()
    {
        var rejected = Rejected("escalate_to_human", """{"reason":"angry customer","urgency":"now"}""");

        Assert.Equal(("urgency", "unknown"), (rejected.Errors[0].Argument, rejected.Errors[0].Code));
    }

    [Fact]
    public void Validate_WrongTypeEnumRange_EachNamedWithExpectation()
    {
        var rejected = Rejected("process_refund", """{"order_id":123,"amount":0,"reason":"bored"}""");

        Assert.Equal(ToolCallErrorKind.InvalidArguments, rejected.Kind);
        Assert.Equal(
            [("amount", "range"), ("order_id", "type"), ("reason", "enum")],
            rejected.Errors.Select(e => (e.Argument, e.Code)));
        Assert.Equal("'order_id' must be of type string, not number (got 123)", rejected.Errors[1].Problem);
        Assert.Equal("""'reason' must be one of "damaged", "not_delivered", "changed_mind" (got "bored")""", rejected.Errors[2].Problem);
        Assert.Equal("'amount' must be >= 0.01 (got 0)", rejected.Errors[0].Problem);
    }

    [Fact]
    public void Validate_StringTooShortInConfiguredSchema_Rejected()
    {
        var rejected = Rejected("escalate_to_human", """{"reason":"no","priority":"urgent"}""");

        Assert.Equal([("priority", "enum"), ("reason", "length")], rejected.Errors.Select(e => (e.Argument, e.Code)));
        Assert.Equal("""'reason' must have at least 3 characters (got "no")""", rejected.Errors[1].Problem);
    }

    [Fact]
    public void Validate_CrossFieldBusinessRule_RejectedWithRuleMessage()
    {
        var rejected = Rejected("process_refund", """{"order_id":"A1234","amount":10,"reason":"changed_mind"}""");

        Assert.Equal(ToolCallErrorKind.BusinessRuleViolation, rejected.Kind);
        var error = Assert.Single(rejected.Errors);
        Assert.Equal("note", error.Argument);
        Assert.Contains("a note is required when the reason is changed_mind", error.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_AmountRangeBusinessRule_Rejected()
    {
        var rejected = Rejected("process_refund", """{"order_id":"A1234","amount":900}""");

        Assert.Equal(("amount", "rule"), (rejected.Errors[0].Argument, rejected.Errors[0].Code));
    }

    [Fact]
    public void Validate_RuleThatThrows_RefusedWithoutLeakingTheException()
    {
        var registry = new ToolRegistryBuilder().Add(SupportDesk.GetCustomer with { Validator = new ThrowingRules() }).Build();
        var result = new ToolCallValidator(registry).Validate(new ProposedToolCall("c", "get_customer", """{"customer_id":"C1"}"""), 0);

        var rejected = result.Rejected!;
        Assert.Equal(ToolCallErrorKind.ValidationFailed, rejected.Kind);
        Assert.DoesNotContain("hunter2", rejected.ToModelContent(), StringComparison.Ordinal);
        Assert.DoesNotContain("InvalidOperationException", rejected.ToModelContent(), StringComparison.Ordinal);
        Assert.Contains("InvalidOperationException", rejected.InternalDetail, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_SensitiveArgument_NeverEchoedInErrorsAndRedactedInRecords()
    {
        var rejected = Rejected("charge_card", """{"customer_id":"C1","card_number":"4111-1111","amount":5}""");

        Assert.Equal(("card_number", "rule"), (rejected.Errors[0].Argument, rejected.Errors[0].Code));
        Assert.DoesNotContain("4111-1111", rejected.ToModelContent(), StringComparison.Ordinal);
        Assert.DoesNotContain("4111-1111", rejected.RedactedArguments, StringComparison.Ordinal);
        Assert.Contains("[REDACTED]", rejected.Errors[0].Problem, StringComparison.Ordinal);

        var wrongType = Rejected("charge_card", """{"customer_id":"C1","card_number":4111111111111111,"amount":5}""");
        Assert.Equal("'card_number' must be of type string, not number", wrongType.Errors[0].Problem);
    }

    [Fact]
    public void Validate_ValidCallWithSensitiveArgument_RedactedEverywhereButCanonical()
    {
        var valid = Valid("charge_card", """{"customer_id":"C1","card_number":"4111111111111111","amount":5}""");

        Assert.Contains("4111111111111111", valid.CanonicalArguments, StringComparison.Ordinal);
        Assert.Equal("""{"amount":5,"card_number":"[REDACTED]","customer_id":"C1"}""", valid.RedactedArguments);
        Assert.DoesNotContain("4111111111111111", valid.ToString(), StringComparison.Ordinal);
        Assert.Equal("Charge 5 USD to customer C1", valid.Summary);
    }

    [Fact]
    public void ValidateAll_DuplicateAndMissingIds_RejectedOthersKeptInOrder()
    {
        var report = _validator.ValidateAll(
        [
            new("a", "lookup_order", """{"order_id":"A1234"}"""),
            new("a", "lookup_order", """{"order_id":"A5678"}"""),
            new("", "lookup_order", """{"order_id":"A5678"}"""),
            new("b", "nope", "{}"),
            new("c", "get_customer", """{"customer_id":"C1"}"""),
        ]);

        Assert.Equal([("a", 0), ("c", 4)], report.Valid.Select(v => (v.ToolCallId, v.Position)));
        Assert.Equal(
            [(1, ToolCallErrorKind.InvalidCallId), (2, ToolCallErrorKind.InvalidCallId), (3, ToolCallErrorKind.UnknownTool)],
            report.Rejected.Select(r => (r.Position, r.Kind)));
    }

    [Fact]
    public void Validate_Deterministic_SameInputSameResult()
    {
        var call = new ProposedToolCall("x", "process_refund", """{"order_id":"12","amount":"x","extra":true}""");

        var first = _validator.Validate(call, 3).Rejected!;
        var second = new ToolCallValidator(SupportDesk.Registry()).Validate(call, 3).Rejected!;

        Assert.Equal(first.ToModelContent(), second.ToModelContent());
        Assert.Equal(first.Errors, second.Errors);
    }

    [Fact]
    public void Constructor_InvalidOptions_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ToolCallValidator(SupportDesk.Registry(), new ToolValidationOptions { MaxErrorsPerCall = 0 }));
    }
}

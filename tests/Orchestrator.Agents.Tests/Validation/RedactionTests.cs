namespace Orchestrator.Agents.Tests.Validation;

public sealed class RedactionTests
{
    private static readonly ToolRegistry Registry = new ToolRegistryBuilder()
        .Add(SupportDesk.ChargeCard)
        .Add(SupportDesk.LookupOrder)
        .Add(ToolDefinition.FromJsonSchema(
            "save_cards",
            "Stores cards.",
            """{"type":"object","properties":{"owner":{"type":"string"},"cards":{"type":"array","items":{"type":"object","properties":{"number":{"type":"string"},"label":{"type":"string"}}}}}}""")
            with { SensitiveArguments = ["cards.number"] })
        .Build();

    [Fact]
    public void Redact_SensitiveValue_ReplacedKeepingModelOrder()
    {
        var redacted = Registry.Redact("charge_card", """{"customer_id":"C1", "card_number":"4111111111111111","amount":5}""");

        Assert.Equal("""{"customer_id":"C1","card_number":"[REDACTED]","amount":5}""", redacted);
    }

    [Fact]
    public void Redact_NothingSensitivePresent_ReturnsRawUnchanged()
    {
        const string raw = """{ "customer_id" : "C1" }""";

        Assert.Equal(raw, Registry.Redact("charge_card", raw));
        Assert.Equal("""{ "order_id": "A1" }""", Registry.Redact("lookup_order", """{ "order_id": "A1" }"""));
    }

    [Fact]
    public void Redact_NestedPathInsideArray_EveryElementRedacted()
    {
        var redacted = Registry.Redact("save_cards", """{"owner":"ann","cards":[{"number":"1","label":"a"},{"number":"2"}]}""");

        Assert.Equal("""{"owner":"ann","cards":[{"number":"[REDACTED]","label":"a"},{"number":"[REDACTED]"}]}""", redacted);
    }

    [Fact]
    public void Redact_UnparseableArgumentsOfSensitiveTool_ReplacedWhole()
    {
        var redacted = Registry.Redact("charge_card", """{"card_number":"4111111111111111" """);

        Assert.DoesNotContain("4111", redacted, StringComparison.Ordinal);
    }

    [Fact]
    public void Redact_UnknownTool_ReturnsRaw()
    {
        Assert.Equal("{}", Registry.Redact("ghost", "{}"));
    }
}

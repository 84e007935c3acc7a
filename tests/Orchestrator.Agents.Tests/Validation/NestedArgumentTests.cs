using System.Text.Json;

namespace Orchestrator.Agents.Tests.Validation;

public sealed class NestedArgumentTests
{
    private static readonly ToolRegistry Registry = new ToolRegistryBuilder()
        .Add(ToolDefinition.FromJsonSchema(
            "create_order",
            "Creates an order.",
            """
            {"type":"object","properties":{
              "items":{"type":"array","minItems":1,"items":{"type":"object","properties":{"sku":{"type":"string"},"qty":{"type":"integer","minimum":1}},"required":["sku","qty"],"additionalProperties":false}},
              "ship_on":{"type":"string","format":"date"},
              "note":{"type":"string"},
              "address":{"$ref":"#/$defs/address"}},
             "required":["items"],
             "$defs":{"address":{"type":"object","properties":{"zip":{"type":"string","pattern":"^\\d{5}$"}}}}}
            """) with { SummaryTemplate = "Order of {items} with note {note}" })
        .Build();

    private static RejectedToolCall Reject(string arguments) =>
        new ToolCallValidator(Registry).Validate(new ProposedToolCall("c1", "create_order", arguments), 0).Rejected!;

    [Fact]
    public void Validate_ArrayItemErrors_NamedByIndexWithTheItemSchemaTerms()
    {
        var rejected = Reject("""{"items":[{"sku":"X","qty":"two"},{"sku":"Y","qty":0,"colour":"red"},{"qty":1}]}""");

        Assert.Equal(
            [("items[0].qty", "type"), ("items[1].colour", "unknown"), ("items[1].qty", "range"), ("items[2].sku", "required")],
            rejected.Errors.Select(e => (e.Argument, e.Code)));
        Assert.Equal("""'items[0].qty' must be of type integer, not string (got "two")""", rejected.Errors[0].Problem);
        Assert.Equal("'items[1].colour' is not an argument of this tool (allowed: sku, qty)", rejected.Errors[1].Problem);
    }

    [Fact]
    public void Validate_FormatAndLocalRef_Checked()
    {
        var rejected = Reject("""{"items":[{"sku":"X","qty":1}],"ship_on":"next tuesday","address":{"zip":"ABC"}}""");

        Assert.Equal([("address.zip", "pattern"), ("ship_on", "format")], rejected.Errors.Select(e => (e.Argument, e.Code)));
        Assert.Equal("""'address.zip' does not match the required format ^\d{5}$ (got "ABC")""", rejected.Errors[0].Problem);
    }

    [Fact]
    public void Validate_EmptyArray_MinItemsNamed()
    {
        var rejected = Reject("""{"items":[]}""");

        Assert.Equal("'items' must have at least 1 items (got [])", rejected.Errors.Single().Problem);
    }

    [Fact]
    public void Validate_SummaryWithOmittedArgumentWithoutDefault_SaysNotGiven()
    {
        var valid = new ToolCallValidator(Registry).Validate(new ProposedToolCall("c1", "create_order", """{"items":[{"sku":"X","qty":1}]}"""), 0).Valid!;

        Assert.Equal("""Order of [{"qty":1,"sku":"X"}] with note (not given)""", valid.Summary);
    }

    [Fact]
    public void ValidatedToolCall_JsonRoundTrip_Equal()
    {
        var valid = new ToolCallValidator(SupportDesk.Registry()).Validate(new ProposedToolCall("c1", "process_refund", """{"order_id":"A8472","amount":47}"""), 2).Valid!;

        var back = JsonSerializer.Deserialize<ValidatedToolCall>(JsonSerializer.Serialize(valid))!;

        Assert.Equal(valid.ToolCallId, back.ToolCallId);
        Assert.Equal(valid.CanonicalArguments, back.CanonicalArguments);
        Assert.Equal(valid.ArgumentsHash, back.ArgumentsHash);
        Assert.Equal(valid.ResourceKeys, back.ResourceKeys);
        Assert.Equal(valid.Summary, back.Summary);
    }

    [Fact]
    public void Build_RemoteRef_RefusedAsNotSelfContained()
    {
        var tool = ToolDefinition.FromJsonSchema("remote", "A tool.", """{"type":"object","properties":{"a":{"$ref":"https://example.com/schema.json"}}}""");

        var ex = Assert.Throws<ToolRegistryException>(() => new ToolRegistryBuilder().Add(tool).Build());

        Assert.Contains("does not resolve inside the schema", Assert.Single(ex.Problems), StringComparison.Ordinal);
    }
}

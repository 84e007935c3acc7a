using System.Text.Json.Nodes;

namespace Orchestrator.Agents.Tests.Tools;

public sealed class ToolArgumentSerializerTests
{
    [Fact]
    public void FromArguments_Record_GeneratesSnakeCaseStrictObjectSchema()
    {
        var schema = JsonNode.Parse(SupportDesk.ProcessRefund.ParametersSchema)!.AsObject();

        Assert.Equal("object", schema["type"]!.GetValue<string>());
        Assert.False(schema["additionalProperties"]!.GetValue<bool>());
        var properties = schema["properties"]!.AsObject();
        Assert.Equal(["order_id", "amount", "reason", "note"], properties.Select(p => p.Key));
        Assert.Equal(["order_id", "amount"], schema["required"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal("The order to refund.", properties["order_id"]!["description"]!.GetValue<string>());
        Assert.Equal(["damaged", "not_delivered", "changed_mind"], properties["reason"]!["enum"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal(0.01m, properties["amount"]!["minimum"]!.GetValue<decimal>());
        Assert.Equal(10000m, properties["amount"]!["maximum"]!.GetValue<decimal>());
    }

    [Fact]
    public void FromArguments_RegularExpressionAttribute_BecomesPattern()
    {
        var schema = JsonNode.Parse(SupportDesk.LookupOrder.ParametersSchema)!;

        Assert.Equal(@"^A\d{4,}$", schema["properties"]!["order_id"]!["pattern"]!.GetValue<string>());
        Assert.Equal(typeof(LookupOrderArgs), SupportDesk.LookupOrder.ArgumentsType);
    }

    [Fact]
    public void FromArguments_GeneratedSchema_PassesStartupChecks()
    {
        var registry = SupportDesk.Registry();

        Assert.Equal(5, registry.Tools.Count);
    }
}

using FluentValidation;

namespace Orchestrator.Agents.Tests.Tools;

public sealed class ToolRegistryBuilderTests
{
    private const string EmptyObject = """{"type":"object","properties":{}}""";

    private static ToolDefinition Json(string name, string schema = EmptyObject) => ToolDefinition.FromJsonSchema(name, "A tool.", schema);

    [Fact]
    public void Build_SupportDeskTools_KeepsRegistrationOrderAndFindsByExactName()
    {
        var registry = SupportDesk.Registry();

        Assert.Equal(["lookup_order", "get_customer", "process_refund", "charge_card", "escalate_to_human"], registry.Tools.Select(t => t.Name));
        Assert.True(registry.TryGet("process_refund", out var refund));
        Assert.Equal(ToolEffect.Write, refund.Effect);
        Assert.False(registry.TryGet("Process_Refund", out _));
    }

    [Fact]
    public void Build_Defaults_AreFiveSecondTimeoutThreeRetriesReturnEarlierResult()
    {
        var tool = Json("t");

        Assert.Equal(TimeSpan.FromSeconds(5), tool.Timeout);
        Assert.Equal(3, tool.MaxRetries);
        Assert.Equal(SemanticRepeatPolicy.ReturnEarlierResult, tool.SemanticRepeat);
        Assert.Equal(ToolEffect.Read, tool.Effect);
        Assert.False(tool.RequiresConfirmation);
        Assert.Null(tool.RateLimit);
    }

    [Fact]
    public void Build_DuplicateAndCaseAmbiguousNames_RefusesNamingBoth()
    {
        var builder = new ToolRegistryBuilder().Add(Json("lookup_order")).Add(Json("lookup_order")).Add(Json("Lookup_Order"));

        var ex = Assert.Throws<ToolRegistryException>(builder.Build);

        Assert.Contains(ex.Problems, p => p.Contains("'lookup_order' is registered 2 times", StringComparison.Ordinal));
        Assert.Contains(ex.Problems, p => p.Contains("'lookup_order', 'Lookup_Order' differ only in case", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("")]
    [InlineData("has space")]
    [InlineData("spotify.play")]
    [InlineData("emoji😀")]
    [InlineData("a234567890123456789012345678901234567890123456789012345678901234X")]
    public void Build_InvalidName_Refuses(string name)
    {
        var ex = Assert.Throws<ToolRegistryException>(() => new ToolRegistryBuilder().Add(Json(name)).Build());

        Assert.Contains(ex.Problems, p => p.Contains($"name '{name}' is invalid", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("not json", "is not valid JSON")]
    [InlineData("[1,2]", "must be a JSON object")]
    [InlineData("""{"type":"dict","properties":{}}""", "must have \"type\": \"object\"")]
    [InlineData("""{"type":"object","required":"order_id"}""", "not valid JSON Schema")]
    [InlineData("""{"type":"object","properties":{"a":{"type":"float"}}}""", "not valid JSON Schema")]
    [InlineData("""{"type":"object","properties":{"a":{"type":"string","pattern":"("}}}""", "not valid JSON Schema")]
    [InlineData("""{"type":"object","properties":{"a":{"minimum":"zero"}}}""", "not valid JSON Schema")]
    [InlineData("""{"type":"object","properties":{"a":{"$ref":"#/$defs/missing"}}}""", "not valid JSON Schema")]
    public void Build_InvalidSchema_RefusesWithReason(string schema, string expected)
    {
        var ex = Assert.Throws<ToolRegistryException>(() => new ToolRegistryBuilder().Add(Json("bad_tool", schema)).Build());

        var problem = Assert.Single(ex.Problems);
        Assert.StartsWith("tool 'bad_tool': ", problem, StringComparison.Ordinal);
        Assert.Contains(expected, problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Build_UnknownDependencyAndCycle_RefusesWithThePath()
    {
        var builder = new ToolRegistryBuilder()
            .Add(Json("a") with { DependsOn = ["b"] })
            .Add(Json("b") with { DependsOn = ["c"] })
            .Add(Json("c") with { DependsOn = ["a"] })
            .Add(Json("d") with { DependsOn = ["ghost", "d"] });

        var ex = Assert.Throws<ToolRegistryException>(builder.Build);

        Assert.Contains("tool dependency cycle: a -> b -> c -> a", ex.Problems);
        Assert.Contains("tool 'd' depends on unknown tool 'ghost'", ex.Problems);
        Assert.Contains("tool 'd' depends on itself", ex.Problems);
    }

    [Fact]
    public void Build_ManyProblems_AggregatesAllIntoOneMessage()
    {
        var builder = new ToolRegistryBuilder()
            .Add(Json("x", "nope") with { Description = " " })
            .Add(Json("y") with { Timeout = TimeSpan.Zero, MaxRetries = -1, MaxConcurrency = 0 })
            .Add(Json("z") with { RateLimit = new ToolRateLimit { PermitsPerPeriod = 0, Period = TimeSpan.Zero } });

        var ex = Assert.Throws<ToolRegistryException>(builder.Build);

        Assert.Equal(7, ex.Problems.Count);
        Assert.StartsWith("The tool set was refused (7 problems):", ex.Message, StringComparison.Ordinal);
        foreach (var problem in ex.Problems)
        {
            Assert.Contains(problem, ex.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Build_MetadataNamingMissingArguments_Refuses()
    {
        var tool = SupportDesk.ChargeCard with
        {
            ResourceKeyArguments = ["account"],
            SensitiveArguments = ["pin"],
            SummaryTemplate = "Charge {amount} with card {card_number} and {missing}",
        };

        var ex = Assert.Throws<ToolRegistryException>(() => new ToolRegistryBuilder().Add(tool).Build());

        Assert.Contains("tool 'charge_card': resource key argument 'account' is not a property of its schema", ex.Problems);
        Assert.Contains("tool 'charge_card': sensitive argument 'pin' is not a property of its schema", ex.Problems);
        Assert.Contains("tool 'charge_card': summary template placeholder '{missing}' is not a property of its schema", ex.Problems);
    }

    [Fact]
    public void Build_SummaryShowingSensitiveArgument_Refuses()
    {
        var tool = SupportDesk.ChargeCard with { SummaryTemplate = "Charge card {card_number}" };

        var ex = Assert.Throws<ToolRegistryException>(() => new ToolRegistryBuilder().Add(tool).Build());

        Assert.Contains("tool 'charge_card': summary template shows 'card_number', which is marked sensitive", ex.Problems);
    }

    [Fact]
    public void Build_ValidatorWithoutOrWithWrongArgumentsType_Refuses()
    {
        var noType = Json("no_type") with { Validator = new RefundRules() };
        var wrongType = ToolDefinition.FromArguments<LookupOrderArgs>("wrong_type", "A tool.") with { Validator = new RefundRules() };

        var ex = Assert.Throws<ToolRegistryException>(() => new ToolRegistryBuilder().Add(noType).Add(wrongType).Build());

        Assert.Contains(ex.Problems, p => p.StartsWith("tool 'no_type': a Validator needs ArgumentsType", StringComparison.Ordinal));
        Assert.Contains("tool 'wrong_type': the Validator cannot validate LookupOrderArgs, the tool's ArgumentsType", ex.Problems);
    }

    [Fact]
    public void Build_JsonToolWithTypedValidator_Accepts()
    {
        var tool = Json("refund_from_config", """{"type":"object","properties":{"order_id":{"type":"string"},"amount":{"type":"number"}},"required":["order_id","amount"]}""")
            with { ArgumentsType = typeof(RefundArgs), Validator = new RefundRules() };

        var registry = new ToolRegistryBuilder().Add(tool).Build();

        Assert.Single(registry.Tools);
    }

    [Fact]
    public void Build_UnclosedSummaryPlaceholder_Refuses()
    {
        var ex = Assert.Throws<ToolRegistryException>(() =>
            new ToolRegistryBuilder().Add(SupportDesk.LookupOrder).Add(SupportDesk.ProcessRefund with { SummaryTemplate = "Refund {amount" }).Build());

        Assert.Contains(ex.Problems, p => p.Contains("unclosed '{'", StringComparison.Ordinal));
    }

    [Fact]
    public void Build_RateLimit_EffectiveBurstDefaultsToPermitsPerPeriod()
    {
        var limit = new ToolRateLimit { PermitsPerPeriod = 5, Period = TimeSpan.FromSeconds(1) };

        Assert.Equal(5, limit.EffectiveBurstLimit);
        Assert.Equal(10, (limit with { BurstLimit = 10 }).EffectiveBurstLimit);
    }
}

namespace Orchestrator.Agents.Tests.Tokens;

public sealed class ToolSchemaCostTests
{
    [Theory]
    [InlineData("gpt-4o", "o200k_base")]
    [InlineData("gpt-4o-mini-2024-07-18", "o200k_base")]
    [InlineData("openai/gpt-4.1", "o200k_base")]
    [InlineData("o3-mini", "o200k_base")]
    [InlineData("gpt-4", "cl100k_base")]
    [InlineData("gpt-3.5-turbo", "cl100k_base")]
    [InlineData("Qwen2.5-7B-Instruct", "cl100k_base")]
    public void EncodingFor_ModelName_PicksFamilyEncoding(string model, string expected)
    {
        Assert.Equal(expected, ToolSchemaCost.EncodingFor(model));
    }

    [Fact]
    public void Measure_SupportDesk_CountsEveryToolAndSumsThem()
    {
        var report = ToolSchemaCost.Measure(SupportDesk.Registry(), new ToolSchemaCostOptions { ModelName = "gpt-4o", ContextWindowTokens = 128_000 });

        Assert.Equal("o200k_base", report.Encoding);
        Assert.Equal(5, report.Tools.Count);
        Assert.All(report.Tools, t => Assert.InRange(t.Tokens, 20, 400));
        Assert.Equal(report.Tools.Sum(t => t.Tokens), report.TotalTokens);
        Assert.False(report.ExceedsThreshold);
        Assert.Equal((double)report.TotalTokens / 128_000, report.ShareOfContextWindow);
    }

    [Fact]
    public void Measure_SmallWindow_WarnsAboveTwentyPercent()
    {
        var registry = SupportDesk.Registry();
        var total = ToolSchemaCost.Measure(registry, new ToolSchemaCostOptions { ModelName = "llama3", ContextWindowTokens = 100_000 }).TotalTokens;

        var tight = ToolSchemaCost.Measure(registry, new ToolSchemaCostOptions { ModelName = "llama3", ContextWindowTokens = total * 4 });
        var roomy = ToolSchemaCost.Measure(registry, new ToolSchemaCostOptions { ModelName = "llama3", ContextWindowTokens = total * 5 });

        Assert.True(tight.ExceedsThreshold);
        Assert.False(roomy.ExceedsThreshold);
        Assert.Equal("cl100k_base", tight.Encoding);
    }

    [Fact]
    public void Measure_EncodingsDiffer_CountsDiffer()
    {
        var registry = SupportDesk.Registry();
        var o200k = ToolSchemaCost.Measure(registry, new ToolSchemaCostOptions { ModelName = "gpt-4o", ContextWindowTokens = 1000 });
        var cl100k = ToolSchemaCost.Measure(registry, new ToolSchemaCostOptions { ModelName = "gpt-4", ContextWindowTokens = 1000 });

        Assert.NotEqual(0, o200k.TotalTokens);
        Assert.NotEqual(0, cl100k.TotalTokens);
    }

    [Fact]
    public void Measure_InvalidOptions_Throw()
    {
        var registry = SupportDesk.Registry();

        Assert.Throws<ArgumentOutOfRangeException>(() => ToolSchemaCost.Measure(registry, new ToolSchemaCostOptions { ModelName = "gpt-4o", ContextWindowTokens = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ToolSchemaCost.Measure(registry, new ToolSchemaCostOptions { ModelName = "gpt-4o", ContextWindowTokens = 10, WarningThreshold = 1.5 }));
    }
}

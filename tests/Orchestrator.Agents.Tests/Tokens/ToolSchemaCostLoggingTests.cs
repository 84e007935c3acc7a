using Microsoft.Extensions.Logging;

namespace Orchestrator.Agents.Tests.Tokens;

public sealed record BigArgs(string OrderId, string CustomerId, string Reason, string Note, decimal Amount, string Currency);

public sealed class ToolSchemaCostLoggingTests
{
    private static ToolRegistry Tools() => new ToolRegistryBuilder()
        .Add(ToolDefinition.FromArguments<BigArgs>("process_refund", "Refund part or all of an order to the customer's original payment method, with a reason and an internal note."))
        .Add(ToolDefinition.FromArguments<BigArgs>("open_dispute", "Open a dispute for an order with the payment processor."))
        .Build();

    [Fact]
    public void MeasureAndLog_SchemasOverTwentyPercentOfWindow_InformsAndWarnsNamingLargestTools()
    {
        var logger = new ListLogger();
        var report = ToolSchemaCost.MeasureAndLog(Tools(), new ToolSchemaCostOptions { ModelName = "gpt-4o", ContextWindowTokens = 400 }, logger);

        Assert.True(report.ExceedsThreshold);
        Assert.Equal("o200k_base", report.Encoding);
        var info = Assert.Single(logger.Entries, e => e.Level == LogLevel.Information);
        Assert.Equal(4012, info.EventId.Id);
        Assert.Equal(report.TotalTokens, info.Values["TotalTokens"]);
        Assert.Equal("o200k_base", info.Values["Encoding"]);
        var warning = Assert.Single(logger.Entries, e => e.Level == LogLevel.Warning);
        Assert.Equal(4013, warning.EventId.Id);
        Assert.Equal(20.0, (double)warning.Values["ThresholdPercent"]!, 3);
        Assert.Equal(report.ShareOfContextWindow * 100, (double)warning.Values["SharePercent"]!, 3);
        Assert.Contains("process_refund", (string)warning.Values["Largest"]!, StringComparison.Ordinal);
    }

    [Fact]
    public void MeasureAndLog_SchemasWellInsideWindow_InformsOnlyWithEncodingOfModel()
    {
        var logger = new ListLogger();
        var report = ToolSchemaCost.MeasureAndLog(Tools(), new ToolSchemaCostOptions { ModelName = "gpt-3.5-turbo", ContextWindowTokens = 128_000 }, logger);

        Assert.False(report.ExceedsThreshold);
        var only = Assert.Single(logger.Entries);
        Assert.Equal(LogLevel.Information, only.Level);
        Assert.Equal("cl100k_base", only.Values["Encoding"]);
        Assert.Contains($"{report.TotalTokens} tokens", only.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MeasureAndLog_InvalidWindow_ThrowsAndLogsNothing()
    {
        var logger = new ListLogger();
        Assert.Throws<ArgumentOutOfRangeException>(() => ToolSchemaCost.MeasureAndLog(Tools(), new ToolSchemaCostOptions { ModelName = "gpt-4o", ContextWindowTokens = 0 }, logger));
        Assert.Empty(logger.Entries);
    }

    internal sealed record Entry(LogLevel Level, EventId EventId, string Message, IReadOnlyDictionary<string, object?> Values);

    internal sealed class ListLogger : ILogger
    {
        public List<Entry> Entries { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = state is IEnumerable<KeyValuePair<string, object?>> pairs
                ? pairs.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal)
                : new Dictionary<string, object?>(StringComparer.Ordinal);
            Entries.Add(new Entry(logLevel, eventId, formatter(state, exception), values));
        }
    }
}

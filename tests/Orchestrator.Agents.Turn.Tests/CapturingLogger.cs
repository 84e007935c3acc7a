using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Orchestrator.Agents.Turn.Tests;

/// <summary>One captured log entry: level, event id, the rendered line and its structured values.</summary>
internal sealed record LogEntry(LogLevel Level, EventId EventId, string Message, IReadOnlyDictionary<string, object?> Values);

/// <summary>A logger factory that keeps every line (and, when given, every structured entry) in memory.</summary>
internal sealed class CapturingLoggerFactory(ConcurrentQueue<string> lines, ConcurrentQueue<LogEntry>? entries = null) : ILoggerFactory
{
    public void AddProvider(ILoggerProvider provider)
    {
    }

    public ILogger CreateLogger(string categoryName) => new CapturingLogger(lines, entries);

    public void Dispose()
    {
    }
}

internal sealed class CapturingLogger(ConcurrentQueue<string> lines, ConcurrentQueue<LogEntry>? entries) : ILogger
{
    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        string message = formatter(state, exception);
        lines.Enqueue(message + (exception is null ? string.Empty : " " + exception));
        var values = state is IEnumerable<KeyValuePair<string, object?>> pairs
            ? pairs.Where(p => p.Key != "{OriginalFormat}").ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal)
            : new Dictionary<string, object?>(StringComparer.Ordinal);
        entries?.Enqueue(new LogEntry(logLevel, eventId, message, values));
    }
}

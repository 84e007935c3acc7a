using Microsoft.Extensions.Logging;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Durable.CrashHost;

/// <summary>Worker settings shared by the crash host and the worker that resumes after it.</summary>
public static class CrashHostDefaults
{
    /// <summary>Short, so the work a killed host held locked moves on quickly.</summary>
    public static readonly TimeSpan OrchestrationLockTimeout = TimeSpan.FromSeconds(1);

    /// <summary>Short, so an activity a killed host was running is retried quickly (renewed every 0.5 s while alive).</summary>
    public static readonly TimeSpan ActivityLockTimeout = TimeSpan.FromSeconds(1);

    /// <summary>Options with the short lock timeouts and quick polling (the other process's work is only seen by polling).</summary>
    public static DurableTaskWorkerOptions WorkerOptions(string workerId) => new()
    {
        WorkerId = workerId,
        OrchestrationLockTimeout = OrchestrationLockTimeout,
        ActivityLockTimeout = ActivityLockTimeout,
        MinPollingInterval = TimeSpan.FromMilliseconds(10),
        MaxPollingInterval = TimeSpan.FromMilliseconds(100),
    };
}

/// <summary>Writes warnings and errors to stderr, where the test shows them when something goes wrong.</summary>
internal sealed class StderrLoggerFactory(string tag) : ILoggerFactory
{
    public ILogger CreateLogger(string categoryName) => new StderrLogger(tag, categoryName);

    public void AddProvider(ILoggerProvider provider) => throw new NotSupportedException();

    public void Dispose()
    {
    }

    private sealed class StderrLogger(string tag, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (this.IsEnabled(logLevel))
            {
                Console.Error.WriteLine($"[{tag}] {logLevel} {category}: {formatter(state, exception)}{(exception is null ? string.Empty : Environment.NewLine + exception)}");
            }
        }
    }
}

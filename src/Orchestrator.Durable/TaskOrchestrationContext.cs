using Microsoft.Extensions.Logging;

namespace Orchestrator.Durable;

/// <summary>
/// The orchestrator's only window on the world: every source of time, ids, waiting and work goes
/// through it so that replays see the same values.
/// </summary>
/// <remarks>
/// Convenience overloads are virtual and call the abstract core members. A context is used by one
/// orchestrator execution on one thread; it is not thread-safe.
/// </remarks>
public abstract class TaskOrchestrationContext
{
    /// <summary>The orchestrator's name.</summary>
    public abstract string Name { get; }

    /// <summary>The instance id.</summary>
    public abstract string InstanceId { get; }

    /// <summary>The current execution id (changes on ContinueAsNew).</summary>
    public abstract string ExecutionId { get; }

    /// <summary>The parent instance, for sub-orchestrations.</summary>
    public abstract History.ParentInstance? Parent { get; }

    /// <summary>
    /// The orchestration's clock: the time at which the current episode started, recorded in history,
    /// so it is the same on every replay. Use instead of the wall clock.
    /// </summary>
    public abstract DateTime CurrentUtcDateTime { get; }

    /// <summary>True while the code re-runs events already recorded in history.</summary>
    public abstract bool IsReplaying { get; }

    /// <summary>A new GUID that is the same on every replay (name-based, from instance, execution and a counter).</summary>
    public abstract Guid NewGuid();

    /// <summary>Schedules an activity and returns its result.</summary>
    /// <exception cref="TaskFailedException">The activity failed (after retries, if any).</exception>
    public abstract Task<TResult> CallActivityAsync<TResult>(string name, object? input = null, TaskOptions? options = null);

    /// <summary>Schedules an activity that returns nothing useful.</summary>
    public virtual Task CallActivityAsync(string name, object? input = null, TaskOptions? options = null) =>
        this.CallActivityAsync<object?>(name, input, options);

    /// <summary>Schedules a sub-orchestration and returns its output.</summary>
    /// <exception cref="TaskFailedException">The sub-orchestration failed (after retries, if any).</exception>
    public abstract Task<TResult> CallSubOrchestratorAsync<TResult>(string name, object? input = null, SubOrchestrationOptions? options = null);

    /// <summary>Schedules a sub-orchestration that returns nothing useful.</summary>
    public virtual Task CallSubOrchestratorAsync(string name, object? input = null, SubOrchestrationOptions? options = null) =>
        this.CallSubOrchestratorAsync<object?>(name, input, options);

    /// <summary>Creates a durable timer that fires at the given time (UTC).</summary>
    /// <remarks>Cancelling the token makes the returned task cancelled; the timer message itself is then ignored.</remarks>
    public abstract Task CreateTimer(DateTime fireAt, CancellationToken cancellationToken);

    /// <summary>Creates a durable timer that fires after the given delay.</summary>
    public virtual Task CreateTimer(TimeSpan delay, CancellationToken cancellationToken) =>
        this.CreateTimer(this.CurrentUtcDateTime.Add(delay), cancellationToken);

    /// <summary>
    /// Waits for an external event with the given name (case-insensitive). Events raised before the
    /// wait are buffered and delivered in arrival order.
    /// </summary>
    public abstract Task<T> WaitForExternalEvent<T>(string eventName, CancellationToken cancellationToken = default);

    /// <summary>Waits for an external event, or throws <see cref="TimeoutException"/> after the timeout (a durable timer).</summary>
    /// <exception cref="TimeoutException">The event did not arrive in time.</exception>
    public virtual async Task<T> WaitForExternalEvent<T>(string eventName, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource();
        Task timer = this.CreateTimer(timeout, cts.Token);
        Task<T> wait = this.WaitForExternalEvent<T>(eventName, cts.Token);
        Task winner = await Task.WhenAny(wait, timer);
        if (winner == wait)
        {
            cts.Cancel();
            return await wait;
        }

        cts.Cancel();
        throw new TimeoutException($"Timed out after {timeout} waiting for external event '{eventName}'.");
    }

    /// <summary>
    /// Ends this execution and starts a new one with new input and an empty history, keeping the
    /// instance id. Use it to bound history in long-running loops.
    /// </summary>
    /// <param name="newInput">The input of the next execution.</param>
    /// <param name="preserveUnprocessedEvents">Carry events that were buffered but not consumed into the next execution.</param>
    public abstract void ContinueAsNew(object? newInput = null, bool preserveUnprocessedEvents = true);

    /// <summary>Sets the custom status that clients read with the instance's status (serialized as JSON).</summary>
    public abstract void SetCustomStatus(object? customStatus);

    /// <summary>Returns a logger that writes only when the code is not replaying.</summary>
    public virtual ILogger CreateReplaySafeLogger(ILogger logger) => new ReplaySafeLogger(this, logger);

    private sealed class ReplaySafeLogger(TaskOrchestrationContext context, ILogger inner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => inner.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => !context.IsReplaying && inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!context.IsReplaying)
            {
                inner.Log(logLevel, eventId, state, exception, formatter);
            }
        }
    }
}

namespace Orchestrator.Durable;

/// <summary>
/// How a failed activity or sub-orchestration is retried. Retries wait on durable timers, so a
/// worker restart during the wait loses nothing and no thread sleeps.
/// </summary>
/// <remarks>
/// The delay before attempt <c>n</c> (n &gt;= 2) is
/// <c>min(FirstRetryInterval * BackoffCoefficient^(n-2), MaxRetryInterval)</c>. Failures marked
/// non-retriable (for example an unknown activity name) are not retried.
/// </remarks>
public sealed record RetryPolicy
{
    /// <summary>Creates a policy.</summary>
    /// <param name="maxNumberOfAttempts">Total attempts including the first; at least 1.</param>
    /// <param name="firstRetryInterval">Delay before the first retry; greater than zero.</param>
    /// <param name="backoffCoefficient">Multiplier per retry; at least 1. Default 1.</param>
    /// <param name="maxRetryInterval">Upper bound of one delay. Default one hour.</param>
    public RetryPolicy(int maxNumberOfAttempts, TimeSpan firstRetryInterval, double backoffCoefficient = 1.0, TimeSpan? maxRetryInterval = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxNumberOfAttempts, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(firstRetryInterval, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(backoffCoefficient, 1.0);
        var max = maxRetryInterval ?? TimeSpan.FromHours(1);
        ArgumentOutOfRangeException.ThrowIfLessThan(max, firstRetryInterval);
        this.MaxNumberOfAttempts = maxNumberOfAttempts;
        this.FirstRetryInterval = firstRetryInterval;
        this.BackoffCoefficient = backoffCoefficient;
        this.MaxRetryInterval = max;
    }

    /// <summary>Total attempts including the first.</summary>
    public int MaxNumberOfAttempts { get; }

    /// <summary>Delay before the first retry.</summary>
    public TimeSpan FirstRetryInterval { get; }

    /// <summary>Multiplier applied to the delay after each retry.</summary>
    public double BackoffCoefficient { get; }

    /// <summary>Upper bound of one delay.</summary>
    public TimeSpan MaxRetryInterval { get; }

    /// <summary>Optional filter: return false to stop retrying a given failure.</summary>
    public Func<TaskFailureDetails, bool>? Handle { get; init; }

    /// <summary>The delay before the given attempt (2 = first retry).</summary>
    public TimeSpan GetDelay(int attempt)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(attempt, 2);
        double ms = this.FirstRetryInterval.TotalMilliseconds * Math.Pow(this.BackoffCoefficient, attempt - 2);
        return ms >= this.MaxRetryInterval.TotalMilliseconds ? this.MaxRetryInterval : TimeSpan.FromMilliseconds(ms);
    }
}

/// <summary>Options for scheduling an activity or sub-orchestration.</summary>
public record TaskOptions
{
    /// <summary>Retry policy; null means no retry.</summary>
    public RetryPolicy? Retry { get; init; }

    /// <summary>
    /// Runs the activity as a local activity (Temporal's term): the worker that runs the episode scheduling it runs it
    /// right away, in process, and continues the orchestration with its outcome, so one checkpoint records both the
    /// scheduling and the outcome, with no queue, fetch or second checkpoint in between. Default false.
    /// </summary>
    /// <remarks>
    /// For short work that may safely run twice, such as reads: like any activity it runs at least once, and a crash
    /// before the checkpoint runs it again. The instance stays locked while it runs, so events sent meanwhile wait for
    /// it, and the local runs of one episode get half the worker's orchestration lock timeout: one still running then is
    /// cancelled and dispatched as an ordinary activity. A worker that does not host the activity dispatches it as
    /// usual. Activities only: a sub-orchestration with this option is refused.
    /// </remarks>
    public bool RunLocally { get; init; }

    /// <summary>Creates options with the given retry policy.</summary>
    public static TaskOptions FromRetryPolicy(RetryPolicy policy) => new() { Retry = policy };
}

/// <summary>Options for scheduling a sub-orchestration.</summary>
public sealed record SubOrchestrationOptions : TaskOptions
{
    /// <summary>The child's instance id; by default derived deterministically from the parent.</summary>
    public string? InstanceId { get; init; }
}

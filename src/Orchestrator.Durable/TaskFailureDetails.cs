namespace Orchestrator.Durable;

// WARNING: persisted inside history events. Add optional members only.

/// <summary>
/// A failure as data: what crosses the durable boundary when an activity, sub-orchestration or
/// orchestration fails. Exceptions are never serialized; their type name, message, stack trace
/// and inner failure are.
/// </summary>
/// <param name="ErrorType">Full name of the exception type.</param>
/// <param name="ErrorMessage">The exception message.</param>
/// <param name="StackTrace">The stack trace, when one was captured.</param>
/// <param name="InnerFailure">The inner exception's failure, if any.</param>
/// <param name="IsNonRetriable">True when retrying cannot help (for example, an unknown activity name).</param>
public sealed record TaskFailureDetails(
    string ErrorType,
    string ErrorMessage,
    string? StackTrace = null,
    TaskFailureDetails? InnerFailure = null,
    bool IsNonRetriable = false)
{
    /// <summary>Builds failure data from an exception, inner exceptions included.</summary>
    public static TaskFailureDetails FromException(Exception exception, bool isNonRetriable = false)
    {
        ArgumentNullException.ThrowIfNull(exception);
        if (exception is TaskFailedException tfe)
        {
            // Re-throwing a failure keeps the original details as the inner failure.
            return new TaskFailureDetails(exception.GetType().FullName!, exception.Message, exception.StackTrace, tfe.FailureDetails, isNonRetriable);
        }

        return new TaskFailureDetails(
            exception.GetType().FullName ?? exception.GetType().Name,
            exception.Message,
            exception.StackTrace,
            exception.InnerException is null ? null : FromException(exception.InnerException),
            isNonRetriable);
    }

    /// <summary>True when this failure, or one of its inner failures, came from an exception of type <typeparamref name="T"/>.</summary>
    public bool IsCausedBy<T>()
        where T : Exception
    {
        for (TaskFailureDetails? f = this; f is not null; f = f.InnerFailure)
        {
            if (f.ErrorType == typeof(T).FullName)
            {
                return true;
            }
        }

        return false;
    }

    /// <inheritdoc/>
    public override string ToString() => $"{this.ErrorType}: {this.ErrorMessage}";
}

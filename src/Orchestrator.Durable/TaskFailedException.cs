namespace Orchestrator.Durable;

/// <summary>
/// Thrown into orchestrator code when an activity or sub-orchestration it awaited failed. The
/// original exception never crosses the durable boundary; <see cref="FailureDetails"/> carries its
/// type, message, stack trace and inner failures.
/// </summary>
public sealed class TaskFailedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TaskFailedException(string taskName, int taskId, TaskFailureDetails failureDetails)
        : base($"Task '{taskName}' (#{taskId}) failed with an unhandled exception: {failureDetails.ErrorMessage}")
    {
        this.TaskName = taskName;
        this.TaskId = taskId;
        this.FailureDetails = failureDetails;
    }

    /// <summary>The failed activity's or sub-orchestration's name.</summary>
    public string TaskName { get; }

    /// <summary>The sequence number of the failed task in history.</summary>
    public int TaskId { get; }

    /// <summary>The failure as recorded in history.</summary>
    public TaskFailureDetails FailureDetails { get; }
}

/// <summary>
/// The orchestrator code scheduled something other than what its history records: the code changed
/// in a way that is not replay-safe, or it reads ambient time, randomness or I/O. The instance fails
/// with this error instead of diverging.
/// </summary>
public sealed class NonDeterministicOrchestrationException : Exception
{
    /// <summary>Creates the exception.</summary>
    public NonDeterministicOrchestrationException(string message)
        : base(message)
    {
    }
}

/// <summary>An instance with this id already exists and has not finished.</summary>
public sealed class OrchestrationAlreadyExistsException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public OrchestrationAlreadyExistsException(string instanceId, OrchestrationRuntimeStatus status)
        : this(instanceId, status, null)
    {
    }

    /// <summary>Creates the exception, saying why an instance that has finished cannot be replaced yet.</summary>
    public OrchestrationAlreadyExistsException(string instanceId, OrchestrationRuntimeStatus status, string? reason)
        : base($"An orchestration instance with id '{instanceId}' already exists and is {status}; it was not scheduled again{(reason is null ? "." : $": {reason}")}")
    {
        this.InstanceId = instanceId;
        this.Status = status;
    }

    /// <summary>The instance id.</summary>
    public string InstanceId { get; }

    /// <summary>The existing instance's status.</summary>
    public OrchestrationRuntimeStatus Status { get; }
}

/// <summary>No instance with this id exists.</summary>
public sealed class OrchestrationNotFoundException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public OrchestrationNotFoundException(string instanceId)
        : base($"No orchestration instance with id '{instanceId}' exists.")
    {
        this.InstanceId = instanceId;
    }

    /// <summary>The instance id.</summary>
    public string InstanceId { get; }
}

/// <summary>The operation needs a running instance, and this one has finished.</summary>
public sealed class OrchestrationNotRunningException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public OrchestrationNotRunningException(string instanceId, OrchestrationRuntimeStatus status, string operation)
        : base($"Cannot {operation}: orchestration instance '{instanceId}' is {status}.")
    {
        this.InstanceId = instanceId;
        this.Status = status;
    }

    /// <summary>The instance id.</summary>
    public string InstanceId { get; }

    /// <summary>The instance's status.</summary>
    public OrchestrationRuntimeStatus Status { get; }
}

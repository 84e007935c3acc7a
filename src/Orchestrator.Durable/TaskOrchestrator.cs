namespace Orchestrator.Durable;

/// <summary>Non-generic view of an orchestrator, used by the engine.</summary>
public interface ITaskOrchestrator
{
    /// <summary>The input type.</summary>
    Type InputType { get; }

    /// <summary>Runs the orchestrator with a deserialized input.</summary>
    Task<object?> RunAsync(TaskOrchestrationContext context, object? input);
}

/// <summary>
/// Base class of orchestrators: durable, replayed functions that coordinate activities, timers,
/// events and sub-orchestrations.
/// </summary>
/// <remarks>
/// Orchestrator code is re-run from the start against its recorded history every time the instance
/// makes progress, so it must be deterministic: take time from
/// <see cref="TaskOrchestrationContext.CurrentUtcDateTime"/>, ids from
/// <see cref="TaskOrchestrationContext.NewGuid"/>, delays from
/// <see cref="TaskOrchestrationContext.CreateTimer(DateTime, CancellationToken)"/>, and do all I/O in
/// activities. Do not use <c>ConfigureAwait(false)</c> in orchestrator code. The build rejects the
/// wall clock, <c>Guid.NewGuid</c> and <c>Task.Delay</c> (BannedSymbols.txt).
/// </remarks>
public abstract class TaskOrchestrator<TInput, TOutput> : ITaskOrchestrator
{
    /// <inheritdoc/>
    Type ITaskOrchestrator.InputType => typeof(TInput);

    /// <summary>Runs the orchestration.</summary>
    public abstract Task<TOutput> RunAsync(TaskOrchestrationContext context, TInput input);

    /// <inheritdoc/>
    async Task<object?> ITaskOrchestrator.RunAsync(TaskOrchestrationContext context, object? input) =>
        await this.RunAsync(context, (TInput)input!);
}

/// <summary>Non-generic view of an activity, used by the engine.</summary>
public interface ITaskActivity
{
    /// <summary>The input type.</summary>
    Type InputType { get; }

    /// <summary>Runs the activity with a deserialized input.</summary>
    Task<object?> RunAsync(TaskActivityContext context, object? input);
}

/// <summary>
/// Base class of activities: the unit of work that does I/O. Activities are not replayed.
/// </summary>
/// <remarks>
/// Each activity runs <b>at least once</b>: a worker can die after the work is done and before its
/// result is recorded, and the activity then runs again. Make side effects idempotent, keyed by
/// <see cref="TaskActivityContext.IdempotencyKey"/>, which is the same on every attempt of one
/// scheduled task.
/// </remarks>
public abstract class TaskActivity<TInput, TOutput> : ITaskActivity
{
    /// <inheritdoc/>
    Type ITaskActivity.InputType => typeof(TInput);

    /// <summary>Runs the activity.</summary>
    public abstract Task<TOutput> RunAsync(TaskActivityContext context, TInput input);

    /// <inheritdoc/>
    async Task<object?> ITaskActivity.RunAsync(TaskActivityContext context, object? input) =>
        await this.RunAsync(context, (TInput)input!).ConfigureAwait(false);
}

/// <summary>What an activity knows about the task it runs for.</summary>
public sealed class TaskActivityContext
{
    internal TaskActivityContext(string name, string instanceId, string executionId, int taskId, CancellationToken cancellationToken)
    {
        this.Name = name;
        this.InstanceId = instanceId;
        this.ExecutionId = executionId;
        this.TaskId = taskId;
        this.CancellationToken = cancellationToken;
    }

    /// <summary>The activity name.</summary>
    public string Name { get; }

    /// <summary>The orchestration instance that scheduled the activity.</summary>
    public string InstanceId { get; }

    /// <summary>The execution of that instance.</summary>
    public string ExecutionId { get; }

    /// <summary>The task's sequence number in the instance's history.</summary>
    public int TaskId { get; }

    /// <summary>
    /// A key derived from durable identity (instance, execution, task id): the same on every attempt
    /// and replay of this scheduled task, different for every other task. Send it to downstream
    /// services as their idempotency key.
    /// </summary>
    public string IdempotencyKey => $"{this.InstanceId}:{this.ExecutionId}:{this.TaskId}";

    /// <summary>Signalled when the worker shuts down; the task is then abandoned and retried elsewhere.</summary>
    public CancellationToken CancellationToken { get; }
}

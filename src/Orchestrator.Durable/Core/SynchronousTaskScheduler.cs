namespace Orchestrator.Durable.Core;

/// <summary>
/// Runs orchestrator code inline on the thread that delivers history events, so every
/// continuation happens at a point in the replay that depends only on the history.
/// </summary>
internal sealed class SynchronousTaskScheduler : TaskScheduler
{
    public override int MaximumConcurrencyLevel => 1;

    protected override void QueueTask(Task task) => this.TryExecuteTask(task);

    protected override bool TryExecuteTaskInline(Task task, bool taskWasPreviouslyQueued) => this.TryExecuteTask(task);

    protected override IEnumerable<Task>? GetScheduledTasks() => null;
}

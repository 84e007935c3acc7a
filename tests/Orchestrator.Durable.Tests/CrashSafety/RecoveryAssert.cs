using Orchestrator.Durable.CrashHost;
using Orchestrator.Durable.History;

namespace Orchestrator.Durable.Tests.CrashSafety;

/// <summary>The checks every crash test makes once the resumed worker has finished the work.</summary>
internal static class RecoveryAssert
{
    /// <summary>A stable text for one history event: its kind and the ids that tie completions to schedules.</summary>
    public static string Shape(HistoryEvent e) => e switch
    {
        TaskScheduledEvent t => $"TaskScheduled#{t.EventId}:{t.Name}",
        TaskCompletedEvent c => $"TaskCompleted->{c.TaskScheduledId}",
        TaskFailedEvent f => $"TaskFailed->{f.TaskScheduledId}",
        SubOrchestrationInstanceCreatedEvent s => $"SubOrchestrationInstanceCreated#{s.EventId}:{s.InstanceId}",
        SubOrchestrationInstanceCompletedEvent s => $"SubOrchestrationInstanceCompleted->{s.TaskScheduledId}",
        SubOrchestrationInstanceFailedEvent s => $"SubOrchestrationInstanceFailed->{s.TaskScheduledId}",
        ExecutionCompletedEvent c => $"ExecutionCompleted:{c.Status}",
        _ => e.EventType,
    };

    public static IReadOnlyList<string> Shape(IEnumerable<HistoryEvent> history) => history.Select(Shape).ToList();

    /// <summary>
    /// The final history of a completed instance: started once, completed once, and every scheduled
    /// activity and sub-orchestration has exactly one completion (none missing, none duplicated,
    /// none failed, none without a schedule).
    /// </summary>
    public static void HistoryIntact(string instanceId, IReadOnlyList<HistoryEvent> history, int activities, int subOrchestrations)
    {
        string shape = string.Join(", ", Shape(history));
        Assert.True(history.Count > 0, $"{instanceId}: empty history");
        Assert.True(history is [OrchestratorStartedEvent, ExecutionStartedEvent, ..], $"{instanceId}: history does not begin with OrchestratorStarted, ExecutionStarted: {shape}");
        Assert.True(history.OfType<ExecutionStartedEvent>().Count() == 1, $"{instanceId}: ExecutionStarted not exactly once: {shape}");
        Assert.True(history.OfType<ExecutionCompletedEvent>().Count() == 1, $"{instanceId}: ExecutionCompleted not exactly once: {shape}");
        Assert.True(history[^1] is ExecutionCompletedEvent { Status: OrchestrationRuntimeStatus.Completed }, $"{instanceId}: history does not end with a successful ExecutionCompleted: {shape}");
        Assert.Empty(history.OfType<TaskFailedEvent>());
        Assert.Empty(history.OfType<SubOrchestrationInstanceFailedEvent>());

        var scheduled = history.OfType<TaskScheduledEvent>().Select(e => e.EventId).ToList();
        Assert.True(scheduled.Count == activities, $"{instanceId}: {scheduled.Count} TaskScheduled, expected {activities}: {shape}");
        Assert.True(scheduled.Distinct().Count() == scheduled.Count, $"{instanceId}: a task was scheduled twice: {shape}");
        var completed = history.OfType<TaskCompletedEvent>().Select(e => e.TaskScheduledId).ToList();
        Assert.Equal(scheduled.Order(), completed.Order());

        var subs = history.OfType<SubOrchestrationInstanceCreatedEvent>().Select(e => e.EventId).ToList();
        Assert.True(subs.Count == subOrchestrations, $"{instanceId}: {subs.Count} sub-orchestrations, expected {subOrchestrations}: {shape}");
        Assert.True(subs.Distinct().Count() == subs.Count, $"{instanceId}: a sub-orchestration was created twice: {shape}");
        var subsCompleted = history.OfType<SubOrchestrationInstanceCompletedEvent>().Select(e => e.TaskScheduledId).ToList();
        Assert.Equal(subs.Order(), subsCompleted.Order());

        var schedulingIds = history.Where(e => e is TaskScheduledEvent or TimerCreatedEvent or SubOrchestrationInstanceCreatedEvent).Select(e => e.EventId).ToList();
        Assert.True(schedulingIds.Distinct().Count() == schedulingIds.Count, $"{instanceId}: two scheduling events share an id: {shape}");
    }

    /// <summary>The idempotency keys of every activity the final histories schedule.</summary>
    public static IReadOnlySet<string> ScheduledKeys(IReadOnlyDictionary<string, IReadOnlyList<HistoryEvent>> finalHistories)
    {
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (instanceId, history) in finalHistories)
        {
            string executionId = history.OfType<ExecutionStartedEvent>().Single().ExecutionId;
            foreach (TaskScheduledEvent t in history.OfType<TaskScheduledEvent>())
            {
                keys.Add($"{instanceId}:{executionId}:{t.EventId}");
            }
        }

        return keys;
    }

    /// <summary>
    /// The side-effect log against what at-least-once delivery allows. For every scheduled activity
    /// (by its idempotency key):
    /// (a) its result was durably recorded before the kill (TaskCompleted in history, or its result
    ///     message in the inbox; the task row is deleted in the same transaction that records the
    ///     result): it ran exactly once, in the crash host; the resumed worker must not run it again.
    /// (b) otherwise: the resumed worker ran it exactly once; the crash host ran it at most once
    ///     (it was running, or had run without its result being recorded, when it was killed).
    /// Nothing else ran: every logged execution belongs to an activity the final histories schedule.
    /// </summary>
    public static void SideEffectsWithinAtLeastOnce(IReadOnlyList<ActivityRun> runs, IReadOnlySet<string> scheduledKeys, IReadOnlySet<string> committedAtKill)
    {
        string log = string.Join("\n", runs.Select(r => $"{r.Tag} {r.Activity} {r.IdempotencyKey}"));
        foreach (ActivityRun run in runs)
        {
            Assert.True(scheduledKeys.Contains(run.IdempotencyKey), $"Ran an activity no history schedules: {run}\n{log}");
            Assert.True(run.Tag is CrashScenario.CrashTag or CrashScenario.ResumeTag, $"Unexpected worker tag: {run}");
        }

        foreach (string key in committedAtKill)
        {
            Assert.True(scheduledKeys.Contains(key), $"A result recorded at the kill belongs to no scheduled task: {key}");
        }

        foreach (string key in scheduledKeys)
        {
            int byCrashHost = runs.Count(r => r.IdempotencyKey == key && r.Tag == CrashScenario.CrashTag);
            int byResumed = runs.Count(r => r.IdempotencyKey == key && r.Tag == CrashScenario.ResumeTag);
            if (committedAtKill.Contains(key))
            {
                Assert.True(byCrashHost == 1 && byResumed == 0, $"{key}: result recorded before the kill, so exactly one run by the crash host and none after; got {byCrashHost} + {byResumed}\n{log}");
            }
            else
            {
                Assert.True(byResumed == 1 && byCrashHost <= 1, $"{key}: result not recorded at the kill, so exactly one run after it and at most one before; got {byCrashHost} + {byResumed}\n{log}");
            }
        }
    }

    /// <summary>No queued or stuck work is left anywhere in the store.</summary>
    public static void NoLeftoverRows(IReadOnlyDictionary<string, long> rows, int instances)
    {
        string all = CrashScenario.Format(rows);
        Assert.True(rows["inbox"] == 0, $"inbox rows left: {all}");
        Assert.True(rows["outbox"] == 0, $"outbox rows left: {all}");
        Assert.True(rows["tasks"] == 0, $"task rows left: {all}");
        Assert.True(rows["poison"] == 0, $"poison rows: {all}");
        Assert.True(rows["instances"] == instances, $"expected {instances} instances: {all}");
    }
}

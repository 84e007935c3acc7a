using Orchestrator.Durable.CrashHost;
using Orchestrator.Durable.History;

namespace Orchestrator.Durable.Tests.CrashSafety;

/// <summary>
/// A worker process is killed while an activity is in the middle of running: its side effect is
/// done, its result not yet returned.
/// </summary>
public sealed class ActivityCrashTests(UncrashedBaseline baseline) : IClassFixture<UncrashedBaseline>
{
    [Theory(Timeout = 60_000)]
    [InlineData(CrashWorkloads.Sequence, "seq", 2)]
    [InlineData(CrashWorkloads.FanOut, "fan", 4)]
    public async Task KillDuringActivity_Workload_ActivityRunsAgainWithSameIdempotencyKeyAndIsRecordedOnce(string orchestrator, string id, int blockedTaskId)
    {
        await using CrashScenario s = await CrashScenario.CreateAsync();
        bool isSequence = orchestrator == CrashWorkloads.Sequence;
        await s.ScheduleAsync(orchestrator, isSequence ? UncrashedBaseline.SequenceInput : UncrashedBaseline.FanOutInput, id);

        string blockedKey;
        await using (CrashHostProcess host = s.StartHost("--block-instance", id, "--block-task", blockedTaskId.ToString(System.Globalization.CultureInfo.InvariantCulture)))
        {
            blockedKey = await host.WaitForLineAsync("ACTIVITY-BLOCKED ", CrashScenario.HostTimeout);
            await host.KillAsync();
        }

        string[] instances = isSequence ? [id] : [id, id + "-child"];
        StoreSnapshot atKill = await s.SnapshotAsync(instances);
        string executionId = atKill.Instances[id]!.ExecutionId;
        Assert.Equal($"{id}:{executionId}:{blockedTaskId}", blockedKey);
        Assert.DoesNotContain(blockedKey, atKill.CommittedResultKeys);
        Assert.True(atKill.Rows["tasks"] >= 1, $"the blocked activity's task is still queued (locked by the dead host): {CrashScenario.Format(atKill.Rows)}");

        await s.ResumeAsync();
        OrchestrationMetadata done = await s.WaitForCompletionAndDrainAsync(id);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal(isSequence ? baseline.SequenceOutput : baseline.FanOutOutput, done.ReadOutputAs<string>());

        var histories = new Dictionary<string, IReadOnlyList<HistoryEvent>>();
        foreach (string instance in instances)
        {
            histories[instance] = await s.Client.GetHistoryAsync(instance);
        }

        if (isSequence)
        {
            RecoveryAssert.HistoryIntact(id, histories[id], activities: CrashWorkloads.SequenceLength, subOrchestrations: 0);
            Assert.Equal(baseline.SequenceShape, RecoveryAssert.Shape(histories[id]));
        }
        else
        {
            RecoveryAssert.HistoryIntact(id, histories[id], activities: CrashWorkloads.FanOutWidth, subOrchestrations: 1);
            RecoveryAssert.HistoryIntact(id + "-child", histories[id + "-child"], activities: CrashWorkloads.ChildLength, subOrchestrations: 0);
        }

        // The interrupted activity's one recorded completion.
        Assert.Single(histories[id].OfType<TaskCompletedEvent>(), c => c.TaskScheduledId == blockedTaskId);
        RecoveryAssert.NoLeftoverRows(await s.Backend.CountRowsAsync(CancellationToken.None), instances: instances.Length);

        // At-least-once: the interrupted activity had done its side effect, but its result was never
        // recorded, so it ran again after the restart, with the same idempotency key, which is what
        // lets a downstream service recognise the repeat. Every other activity follows the general
        // rule (recorded before the kill: once; otherwise once after, at most once before).
        IReadOnlyList<ActivityRun> runs = s.SideEffects;
        Assert.Equal(
            [CrashScenario.CrashTag, CrashScenario.ResumeTag],
            runs.Where(r => r.IdempotencyKey == blockedKey).Select(r => r.Tag).ToList());
        RecoveryAssert.SideEffectsWithinAtLeastOnce(runs, RecoveryAssert.ScheduledKeys(histories), atKill.CommittedResultKeys);
        if (isSequence)
        {
            // Steps 1 and 2 ran once before the kill; step 3 once before and once after; 4 and 5 once after.
            string Key(int taskId) => $"{id}:{executionId}:{taskId}";
            Assert.Equal([Key(0), Key(1), Key(2)], runs.Where(r => r.Tag == CrashScenario.CrashTag).Select(r => r.IdempotencyKey).ToList());
            Assert.Equal([Key(2), Key(3), Key(4)], runs.Where(r => r.Tag == CrashScenario.ResumeTag).Select(r => r.IdempotencyKey).ToList());
        }
    }
}

using System.Globalization;
using Orchestrator.Durable.CrashHost;
using Orchestrator.Durable.History;

namespace Orchestrator.Durable.Tests.CrashSafety;

/// <summary>
/// A worker process is killed inside a checkpoint of a 5-step sequence, at each stage and at the
/// first, a middle and the last checkpoint; a fresh worker then finishes the instance.
/// </summary>
/// <remarks>
/// The sequence has 6 checkpoints: #1 consumes the start and schedules step 1; #k (2..5) consumes
/// step k-1's result and schedules step k; #6 consumes step 5's result and completes. Step i is task
/// id i-1. The crash host runs one episode at a time and stops starting activities once the crashing
/// checkpoint begins, so where the kill lands is exactly known and asserted before resuming.
/// AfterCommit and AfterDispatch fall between the three transactions of a checkpoint (the backend's
/// default); AfterCheckpoint follows the one transaction of <c>CheckpointInOneTransaction</c> (the
/// crash host turns it on for that stage), before the activity it handed to the host has started.
/// </remarks>
public sealed class SequenceCheckpointCrashTests(UncrashedBaseline baseline) : IClassFixture<UncrashedBaseline>
{
    private const int Steps = CrashWorkloads.SequenceLength;
    private const int LastCheckpoint = Steps + 1;

    [Theory(Timeout = 60_000)]
    [InlineData("BeforeCommit", "1")]
    [InlineData("BeforeCommit", "3")]
    [InlineData("BeforeCommit", "last")]
    [InlineData("AfterCommit", "1")]
    [InlineData("AfterCommit", "3")]
    [InlineData("AfterCommit", "last")]
    [InlineData("AfterDispatch", "1")]
    [InlineData("AfterDispatch", "3")]
    [InlineData("AfterDispatch", "last")]
    [InlineData("AfterCheckpoint", "1")]
    [InlineData("AfterCheckpoint", "3")]
    [InlineData("AfterCheckpoint", "last")]
    public async Task KillAtCheckpointStage_Sequence_ResumesToSameResultWithEachStepRecordedOnce(string stage, string crashAt)
    {
        await using CrashScenario s = await CrashScenario.CreateAsync();
        string id = await s.ScheduleAsync(CrashWorkloads.Sequence, UncrashedBaseline.SequenceInput, "seq");

        int k;
        await using (CrashHostProcess host = s.StartHost("--crash-stage", stage, "--crash-at", crashAt, "--crash-instance", id))
        {
            string point = await host.WaitForLineAsync("CRASH-POINT ", CrashScenario.HostTimeout);
            await host.KillAsync();
            Assert.StartsWith(stage + " ", point, StringComparison.Ordinal);
            k = int.Parse(point[(stage.Length + 1)..], CultureInfo.InvariantCulture);
        }

        Assert.Equal(crashAt == "last" ? LastCheckpoint : int.Parse(crashAt, CultureInfo.InvariantCulture), k);

        // Where the kill landed.
        StoreSnapshot atKill = await s.SnapshotAsync(id);
        string executionId = atKill.Instances[id]!.ExecutionId;
        string Key(int step) => $"{id}:{executionId}:{step - 1}";
        AssertStateAtKill(stage, k, atKill, id);

        // Steps 1..k-1 had their results recorded (step k-1's is the message checkpoint k consumes).
        Assert.Equal(Enumerable.Range(1, k - 1).Select(Key).ToHashSet(), atKill.CommittedResultKeys);

        await s.ResumeAsync();
        OrchestrationMetadata done = await s.WaitForCompletionAndDrainAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal(baseline.SequenceOutput, done.ReadOutputAs<string>());

        IReadOnlyList<HistoryEvent> history = await s.Client.GetHistoryAsync(id);
        RecoveryAssert.HistoryIntact(id, history, activities: Steps, subOrchestrations: 0);

        // Not a single event more or less than without the crash: a re-run checkpoint (killed before
        // its commit) records the same events, a committed one is not recorded again.
        Assert.Equal(baseline.SequenceShape, RecoveryAssert.Shape(history));
        RecoveryAssert.NoLeftoverRows(await s.Backend.CountRowsAsync(CancellationToken.None), instances: 1);

        IReadOnlyList<ActivityRun> runs = s.SideEffects;
        RecoveryAssert.SideEffectsWithinAtLeastOnce(runs, RecoveryAssert.ScheduledKeys(new Dictionary<string, IReadOnlyList<HistoryEvent>> { [id] = history }), atKill.CommittedResultKeys);

        // Precisely, for this workload: steps 1..k-1 ran once, in the crash host, before the kill,
        // and never again. Step k (scheduled by the killed checkpoint: not yet recorded at
        // BeforeCommit, in the outbox at AfterCommit, in the task queue at AfterDispatch, locked to the
        // killed host at AfterCheckpoint, so run after its lock expired) had not
        // run, and ran once after the restart, as did the steps after it.
        Assert.Equal(
            Enumerable.Range(1, k - 1).Select(Key).ToList(),
            runs.Where(r => r.Tag == CrashScenario.CrashTag).Select(r => r.IdempotencyKey).ToList());
        Assert.Equal(
            Enumerable.Range(k, Steps - k + 1).Select(Key).ToList(),
            runs.Where(r => r.Tag == CrashScenario.ResumeTag).Select(r => r.IdempotencyKey).ToList());
    }

    /// <summary>What the store holds when the host is killed inside checkpoint <paramref name="k"/>.</summary>
    private static void AssertStateAtKill(string stage, int k, StoreSnapshot atKill, string id)
    {
        IReadOnlyList<HistoryEvent> h = atKill.History(id);
        string context = $"stage {stage}, checkpoint {k}: rows {CrashScenario.Format(atKill.Rows)}; history {string.Join(", ", RecoveryAssert.Shape(h))}";
        bool committed = stage != "BeforeCommit";
        int scheduled = committed ? Math.Min(k, Steps) : k - 1;
        int completed = committed ? k - 1 : Math.Max(k - 2, 0);
        OrchestrationRuntimeStatus status = committed
            ? (k == LastCheckpoint ? OrchestrationRuntimeStatus.Completed : OrchestrationRuntimeStatus.Running)
            : (k == 1 ? OrchestrationRuntimeStatus.Pending : OrchestrationRuntimeStatus.Running);

        Assert.True(h.OfType<TaskScheduledEvent>().Count() == scheduled, $"TaskScheduled count; {context}");
        Assert.True(h.OfType<TaskCompletedEvent>().Count() == completed, $"TaskCompleted count; {context}");
        Assert.True(h.OfType<ExecutionCompletedEvent>().Count() == (committed && k == LastCheckpoint ? 1 : 0), $"ExecutionCompleted; {context}");
        Assert.True(atKill.Instances[id]!.RuntimeStatus == status, $"status {atKill.Instances[id]!.RuntimeStatus}, expected {status}; {context}");

        // The message the checkpoint consumes is still queued, unless the one transaction deleted it with the rest
        // (the three steps delete it only in the release, after AfterDispatch).
        bool whole = stage == "AfterCheckpoint";
        Assert.True(atKill.Rows["inbox"] == (whole ? 0 : 1), $"inbox; {context}");
        Assert.True(atKill.LockedInstances.Contains(id) != whole, $"locked {atKill.LockedInstances.Contains(id)}; {context}");
        bool schedulesStep = k <= Steps;
        Assert.True(atKill.Rows["outbox"] == (stage == "AfterCommit" && schedulesStep ? 1 : 0), $"outbox; {context}");
        Assert.True(atKill.Rows["tasks"] == (stage is "AfterDispatch" or "AfterCheckpoint" && schedulesStep ? 1 : 0), $"tasks; {context}");
    }
}

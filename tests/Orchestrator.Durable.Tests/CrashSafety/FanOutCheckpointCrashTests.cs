using System.Globalization;
using Orchestrator.Durable.CrashHost;
using Orchestrator.Durable.History;
using Xunit.Abstractions;

namespace Orchestrator.Durable.Tests.CrashSafety;

/// <summary>
/// A worker process is killed inside a checkpoint of a fan-out of 10 activities next to a
/// sub-orchestration (2 steps): in the parent's first, second and last checkpoint, and in the
/// child's last one (whose result for the parent is then only in the child's outbox or in flight),
/// at each stage; a fresh worker then finishes both instances.
/// </summary>
/// <remarks>
/// How completions batch into the parent's later checkpoints, and which activities the crash host
/// had finished when the kill came, depend on timing. So beyond the first checkpoint the test reads
/// from the store which results were recorded at the kill and holds the side-effect log to exactly
/// what that allows (<see cref="RecoveryAssert.SideEffectsWithinAtLeastOnce"/>).
/// </remarks>
public sealed class FanOutCheckpointCrashTests(UncrashedBaseline baseline, ITestOutputHelper output) : IClassFixture<UncrashedBaseline>
{
    private const string Parent = "fan";
    private const string Child = Parent + "-child";

    [Theory(Timeout = 60_000)]
    [InlineData("BeforeCommit", Parent, "1")]
    [InlineData("BeforeCommit", Parent, "2")]
    [InlineData("BeforeCommit", Parent, "last")]
    [InlineData("BeforeCommit", Child, "last")]
    [InlineData("AfterCommit", Parent, "1")]
    [InlineData("AfterCommit", Parent, "2")]
    [InlineData("AfterCommit", Parent, "last")]
    [InlineData("AfterCommit", Child, "last")]
    [InlineData("AfterDispatch", Parent, "1")]
    [InlineData("AfterDispatch", Parent, "2")]
    [InlineData("AfterDispatch", Parent, "last")]
    [InlineData("AfterDispatch", Child, "last")]
    [InlineData("AfterCheckpoint", Parent, "1")]
    [InlineData("AfterCheckpoint", Parent, "2")]
    [InlineData("AfterCheckpoint", Parent, "last")]
    [InlineData("AfterCheckpoint", Child, "last")]
    public Task KillAtCheckpointStage_FanOutWithSubOrchestration_ResumesToSameResultWithEachTaskRecordedOnce(string stage, string target, string crashAt) =>
        this.KillAndResumeAsync(stage, target, crashAt, freeRunning: false);

    /// <summary>
    /// As above, but the host runs at full concurrency and keeps working on everything else (the
    /// child, other activities, their results) between the crash point and the kill.
    /// </summary>
    [Theory(Timeout = 60_000)]
    [InlineData("BeforeCommit", Parent, "2")]
    [InlineData("AfterCommit", Parent, "2")]
    [InlineData("AfterDispatch", Parent, "2")]
    [InlineData("AfterCommit", Child, "last")]
    [InlineData("AfterCheckpoint", Parent, "2")]
    [InlineData("AfterCheckpoint", Child, "last")]
    public Task KillAtCheckpointStage_FanOutWhileHostKeepsWorking_ResumesToSameResultWithEachTaskRecordedOnce(string stage, string target, string crashAt) =>
        this.KillAndResumeAsync(stage, target, crashAt, freeRunning: true);

    private async Task KillAndResumeAsync(string stage, string target, string crashAt, bool freeRunning)
    {
        await using CrashScenario s = await CrashScenario.CreateAsync();
        string id = await s.ScheduleAsync(CrashWorkloads.FanOut, UncrashedBaseline.FanOutInput, Parent);

        int k;
        await using (CrashHostProcess host = s.StartHost("--crash-stage", stage, "--crash-at", crashAt, "--crash-instance", target, "--free-running", freeRunning ? "true" : "false"))
        {
            string point = await host.WaitForLineAsync("CRASH-POINT ", CrashScenario.HostTimeout);
            await host.KillAsync();
            Assert.StartsWith(stage + " ", point, StringComparison.Ordinal);
            k = int.Parse(point[(stage.Length + 1)..], CultureInfo.InvariantCulture);
        }

        StoreSnapshot atKill = await s.SnapshotAsync(Parent, Child);
        AssertStateAtKill(stage, target, crashAt, k, atKill);

        await s.ResumeAsync();
        OrchestrationMetadata done = await s.WaitForCompletionAndDrainAsync(id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal(baseline.FanOutOutput, done.ReadOutputAs<string>());
        OrchestrationMetadata? child = await s.Client.GetInstanceAsync(Child);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, child?.RuntimeStatus);

        var histories = new Dictionary<string, IReadOnlyList<HistoryEvent>>
        {
            [Parent] = await s.Client.GetHistoryAsync(Parent),
            [Child] = await s.Client.GetHistoryAsync(Child),
        };
        RecoveryAssert.HistoryIntact(Parent, histories[Parent], activities: CrashWorkloads.FanOutWidth, subOrchestrations: 1);
        RecoveryAssert.HistoryIntact(Child, histories[Child], activities: CrashWorkloads.ChildLength, subOrchestrations: 0);
        Assert.Equal(baseline.ChildShape, RecoveryAssert.Shape(histories[Child]));
        RecoveryAssert.NoLeftoverRows(await s.Backend.CountRowsAsync(CancellationToken.None), instances: 2);

        IReadOnlyList<ActivityRun> runs = s.SideEffects;
        output.WriteLine(
            $"Killed at {stage} of {target} checkpoint {k}{(freeRunning ? " (free-running)" : string.Empty)}; results recorded then: {atKill.CommittedResultKeys.Count}; "
            + $"runs before the kill: {runs.Count(r => r.Tag == CrashScenario.CrashTag)}, after: {runs.Count(r => r.Tag == CrashScenario.ResumeTag)}");
        IReadOnlySet<string> scheduled = RecoveryAssert.ScheduledKeys(histories);
        Assert.Equal(CrashWorkloads.FanOutWidth + CrashWorkloads.ChildLength, scheduled.Count);
        RecoveryAssert.SideEffectsWithinAtLeastOnce(runs, scheduled, atKill.CommittedResultKeys);

        if (target == Parent && k == 1 && !freeRunning)
        {
            // Killed in the parent's first checkpoint: nothing had been dispatched to run before it
            // (and the crash host runs nothing from then on), so every task ran once, after the restart.
            Assert.Empty(atKill.CommittedResultKeys);
            Assert.DoesNotContain(runs, r => r.Tag == CrashScenario.CrashTag);
            Assert.Equal(scheduled.Order(), runs.Select(r => r.IdempotencyKey).Order());
        }
    }

    /// <summary>What the store holds when the host is killed; exact where timing does not decide it.</summary>
    private static void AssertStateAtKill(string stage, string target, string crashAt, int k, StoreSnapshot atKill)
    {
        IReadOnlyList<HistoryEvent> parent = atKill.History(Parent);
        string context = $"stage {stage}, {target} checkpoint {k}: rows {CrashScenario.Format(atKill.Rows)}; parent {string.Join(", ", RecoveryAssert.Shape(parent))}; child {string.Join(", ", RecoveryAssert.Shape(atKill.History(Child)))}";
        bool committed = stage != "BeforeCommit";
        if (crashAt != "last")
        {
            Assert.True(k == int.Parse(crashAt, CultureInfo.InvariantCulture), context);
        }

        if (target == Parent && k == 1)
        {
            // The first checkpoint schedules 10 activities and the child, as 11 outbox messages.
            Assert.True(parent.OfType<TaskScheduledEvent>().Count() == (committed ? CrashWorkloads.FanOutWidth : 0), $"TaskScheduled; {context}");
            Assert.True(parent.OfType<SubOrchestrationInstanceCreatedEvent>().Count() == (committed ? 1 : 0), $"SubOrchestrationInstanceCreated; {context}");
            bool dispatched = stage is "AfterDispatch" or "AfterCheckpoint";
            Assert.True(atKill.Rows["outbox"] == (stage == "AfterCommit" ? CrashWorkloads.FanOutWidth + 1 : 0), $"outbox; {context}");
            Assert.True(atKill.Rows["tasks"] == (dispatched ? CrashWorkloads.FanOutWidth : 0), $"tasks; {context}");

            // Dispatch creates the child with its start message; the parent's start is still queued, unless the one
            // transaction also deleted it and unlocked the parent.
            Assert.True(atKill.Rows["instances"] == (dispatched ? 2 : 1), $"instances; {context}");
            Assert.True(atKill.Rows["inbox"] == (stage == "AfterDispatch" ? 2 : 1), $"inbox; {context}");
            Assert.True(atKill.LockedInstances.Contains(Parent) == (stage != "AfterCheckpoint"), $"parent locked; {context}");
            return;
        }

        if (crashAt == "last")
        {
            string instance = target;
            OrchestrationRuntimeStatus status = atKill.Instances[instance]!.RuntimeStatus;
            Assert.True(status == (committed ? OrchestrationRuntimeStatus.Completed : OrchestrationRuntimeStatus.Running), $"{instance} status {status}; {context}");
            Assert.True(atKill.History(instance).OfType<ExecutionCompletedEvent>().Count() == (committed ? 1 : 0), $"ExecutionCompleted; {context}");
            if (target == Child && stage == "AfterCheckpoint")
            {
                // The child's result went to the parent's inbox in the same transaction (where a free-running host
                // may already have consumed it), and the child is unlocked.
                Assert.True(atKill.Rows["outbox"] == 0, $"outbox; {context}");
                Assert.True(!atKill.LockedInstances.Contains(Child), $"child locked; {context}");
            }
            else if (target == Child)
            {
                // The child's result for the parent: in the child's outbox after the commit, in the
                // parent's inbox after the dispatch.
                Assert.True(atKill.Rows["outbox"] == (stage == "AfterCommit" ? 1 : 0), $"outbox; {context}");
                Assert.True(!parent.OfType<SubOrchestrationInstanceCompletedEvent>().Any(), $"parent has the child's result; {context}");
            }
            else
            {
                // The parent has no parent to notify: its last checkpoint sends nothing.
                Assert.True(atKill.Rows["outbox"] == 0, $"outbox; {context}");
                Assert.True(atKill.Rows["tasks"] == 0, $"tasks; {context}");
            }
        }
    }
}

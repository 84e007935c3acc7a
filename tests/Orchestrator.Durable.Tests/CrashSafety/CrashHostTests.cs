using Orchestrator.Durable.CrashHost;

namespace Orchestrator.Durable.Tests.CrashSafety;

/// <summary>The crash host itself: its plain mode, and that it never outlives its test.</summary>
public sealed class CrashHostTests(UncrashedBaseline baseline) : IClassFixture<UncrashedBaseline>
{
    [Fact(Timeout = 60_000)]
    public async Task CrashHost_WithoutCrashArguments_RunsWorkloadsLikeInProcessAndExitsWhenStdinCloses()
    {
        await using CrashScenario s = await CrashScenario.CreateAsync();
        string seq = await s.ScheduleAsync(CrashWorkloads.Sequence, UncrashedBaseline.SequenceInput, "seq");
        string fan = await s.ScheduleAsync(CrashWorkloads.FanOut, UncrashedBaseline.FanOutInput, "fan");
        await using CrashHostProcess host = s.StartHost();
        await host.WaitForLineAsync("READY", CrashScenario.HostTimeout);

        OrchestrationMetadata a = await s.WaitForCompletionAndDrainAsync(seq);
        OrchestrationMetadata b = await s.WaitForCompletionAndDrainAsync(fan);
        Assert.Equal(baseline.SequenceOutput, a.ReadOutputAs<string>());
        Assert.Equal(baseline.FanOutOutput, b.ReadOutputAs<string>());
        Assert.Equal(baseline.SequenceShape, RecoveryAssert.Shape(await s.Client.GetHistoryAsync(seq)));
        RecoveryAssert.NoLeftoverRows(await s.Backend.CountRowsAsync(CancellationToken.None), instances: 3);

        // No crash: every activity ran exactly once, in the host.
        IReadOnlyList<ActivityRun> runs = s.SideEffects;
        Assert.Equal(CrashWorkloads.SequenceLength + CrashWorkloads.FanOutWidth + CrashWorkloads.ChildLength, runs.Count);
        Assert.Equal(runs.Count, runs.Select(r => r.IdempotencyKey).Distinct().Count());
        Assert.All(runs, r => Assert.Equal(CrashScenario.CrashTag, r.Tag));

        Assert.Equal(0, await host.CloseInputAndWaitForExitAsync(TimeSpan.FromSeconds(15)));
    }

    [Fact(Timeout = 60_000)]
    public async Task CrashHost_BlockedAtCrashPointWhenStdinCloses_ExitsAtOnce()
    {
        // A host whose test runner died (its stdin closes) must not linger, even while it is
        // blocked at a crash point with a checkpoint that can never finish.
        await using CrashScenario s = await CrashScenario.CreateAsync();
        await s.ScheduleAsync(CrashWorkloads.Sequence, UncrashedBaseline.SequenceInput, "seq");
        await using CrashHostProcess host = s.StartHost("--crash-stage", "AfterCommit", "--crash-at", "2");
        Assert.Equal("AfterCommit 2", await host.WaitForLineAsync("CRASH-POINT ", CrashScenario.HostTimeout));
        Assert.Equal(3, await host.CloseInputAndWaitForExitAsync(TimeSpan.FromSeconds(15)));
    }
}

using Orchestrator.Durable.Backend;
using Orchestrator.Durable.CrashHost;

namespace Orchestrator.Durable.Tests.CrashSafety;

/// <summary>
/// A sub-orchestration whose worker is killed right after committing its last checkpoint shows as
/// Completed while its result for the parent is still only in its outbox. Purging it in that window
/// must not throw that result away.
/// </summary>
public sealed class PurgeAfterCrashTests(UncrashedBaseline baseline) : IClassFixture<UncrashedBaseline>
{
    private const string Parent = "fan";
    private const string Child = Parent + "-child";

    [Theory(Timeout = 60_000)]
    [InlineData(false)]
    [InlineData(true)]
    public async Task PurgeChildKilledAfterCommittingItsEnd_BeforeRecovery_KeepsParentsResultAndPurgesLater(bool bulk)
    {
        await using CrashScenario s = await CrashScenario.CreateAsync();
        await s.ScheduleAsync(CrashWorkloads.FanOut, UncrashedBaseline.FanOutInput, Parent);
        await using (CrashHostProcess host = s.StartHost("--crash-stage", "AfterCommit", "--crash-at", "last", "--crash-instance", Child))
        {
            await host.WaitForLineAsync("CRASH-POINT ", CrashScenario.HostTimeout);
            await host.KillAsync();
        }

        Assert.Equal(OrchestrationRuntimeStatus.Completed, (await s.Client.GetInstanceAsync(Child))?.RuntimeStatus);
        Assert.Equal(1, (await s.Backend.CountRowsAsync(CancellationToken.None))["outbox"]);

        // Not purgeable yet: its outbox holds the parent's result.
        if (bulk)
        {
            Assert.Equal(0, await s.Client.PurgeInstancesAsync(new PurgeInstancesFilter()));
        }
        else
        {
            await Assert.ThrowsAsync<OrchestrationNotRunningException>(() => s.Client.PurgeInstanceAsync(Child));
        }

        Assert.NotNull(await s.Client.GetInstanceAsync(Child));

        await s.ResumeAsync();
        OrchestrationMetadata done = await s.WaitForCompletionAndDrainAsync(Parent);
        Assert.Equal(baseline.FanOutOutput, done.ReadOutputAs<string>());

        // Once the result is delivered, both purge.
        if (bulk)
        {
            Assert.Equal(2, await s.Client.PurgeInstancesAsync(new PurgeInstancesFilter()));
        }
        else
        {
            Assert.True(await s.Client.PurgeInstanceAsync(Child));
            Assert.True(await s.Client.PurgeInstanceAsync(Parent));
        }

        Assert.Equal(0, (await s.Backend.CountRowsAsync(CancellationToken.None))["instances"]);
    }
}

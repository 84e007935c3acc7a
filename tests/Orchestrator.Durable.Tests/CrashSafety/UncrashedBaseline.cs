using Orchestrator.Durable.CrashHost;

namespace Orchestrator.Durable.Tests.CrashSafety;

/// <summary>
/// The workloads run once without any crash (in-process, same registry and settings), as the
/// reference each crashed run is compared with.
/// </summary>
public sealed class UncrashedBaseline : IAsyncLifetime
{
    public const string SequenceInput = "seq";
    public const int FanOutInput = CrashWorkloads.FanOutWidth;

    public string SequenceOutput { get; private set; } = string.Empty;

    public string FanOutOutput { get; private set; } = string.Empty;

    /// <summary>The sequence's history, as <see cref="RecoveryAssert.Shape(IEnumerable{History.HistoryEvent})"/>.</summary>
    public IReadOnlyList<string> SequenceShape { get; private set; } = [];

    /// <summary>The fan-out's sub-orchestration's history shape.</summary>
    public IReadOnlyList<string> ChildShape { get; private set; } = [];

    public async Task InitializeAsync()
    {
        await using CrashScenario s = await CrashScenario.CreateAsync();
        string seq = await s.ScheduleAsync(CrashWorkloads.Sequence, SequenceInput, "seq");
        string fan = await s.ScheduleAsync(CrashWorkloads.FanOut, FanOutInput, "fan");
        await s.ResumeAsync();
        OrchestrationMetadata a = await s.WaitForCompletionAndDrainAsync(seq);
        OrchestrationMetadata b = await s.WaitForCompletionAndDrainAsync(fan);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, a.RuntimeStatus);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, b.RuntimeStatus);
        this.SequenceOutput = a.ReadOutputAs<string>()!;
        this.FanOutOutput = b.ReadOutputAs<string>()!;
        this.SequenceShape = RecoveryAssert.Shape(await s.Client.GetHistoryAsync(seq));
        this.ChildShape = RecoveryAssert.Shape(await s.Client.GetHistoryAsync(fan + "-child"));

        // The expected values the tests spell out are what an uncrashed run really gives.
        Assert.Equal(CrashWorkloads.ExpectedSequenceOutput(SequenceInput), this.SequenceOutput);
        Assert.Equal(CrashWorkloads.ExpectedFanOutOutput(FanOutInput), this.FanOutOutput);

        // Every task of the two workloads ran, each under its own key. At least once rather than exactly once: with the
        // crash tests' one-second locks, a machine loaded enough to hold up a lock renewal for a second (the whole
        // solution's tests starting at once) lets another dispatcher run an activity again, which the engine allows.
        IReadOnlyList<ActivityRun> runs = s.SideEffects;
        Assert.Equal(CrashWorkloads.SequenceLength + CrashWorkloads.FanOutWidth + CrashWorkloads.ChildLength, runs.Select(r => r.IdempotencyKey).Distinct().Count());
        Assert.All(runs, r => Assert.Equal(CrashScenario.ResumeTag, r.Tag));
    }

    public Task DisposeAsync() => Task.CompletedTask;
}

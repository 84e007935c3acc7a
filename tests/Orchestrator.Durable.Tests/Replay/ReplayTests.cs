using System.Text.Json.Nodes;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.History;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Durable.Tests.Replay;

public class ReplayTests
{
    private static readonly string FixtureDir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "History");

    public static TheoryData<string> Fixtures()
    {
        var data = new TheoryData<string>();
        foreach (string f in Directory.GetFiles(FixtureDir, "*.json").Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetFileName(f));
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Replay_StoredHistory_IsDeterministic(string fixture)
    {
        IReadOnlyList<HistoryEvent> history = Load(fixture);
        var replayer = new OrchestrationReplayer(FixtureOrchestrations.Register(new DurableTaskRegistry()));

        ReplayOutcome outcome = replayer.Replay(history);

        Assert.True(outcome.IsDeterministic, outcome.Error);
        ExecutionCompletedEvent? recorded = history.OfType<ExecutionCompletedEvent>().SingleOrDefault();
        Assert.Equal(recorded?.Status ?? OrchestrationRuntimeStatus.Running, outcome.Status);
        Assert.Equal(recorded?.Result, outcome.Output);
    }

    [Fact]
    public void Fixtures_CoverEveryKindOfSchedulingEvent()
    {
        // Guards the guard: the fixtures must exercise activities, timers, events, failures and sub-orchestrations.
        var kinds = Directory.GetFiles(FixtureDir, "*.json").Select(Path.GetFileName).SelectMany(f => Load(f!)).Select(e => e.EventType).ToHashSet();
        Assert.Superset(
            new HashSet<string> { "TaskScheduled", "TaskCompleted", "TaskFailed", "TimerCreated", "TimerFired", "EventRaised", "SubOrchestrationInstanceCreated", "SubOrchestrationInstanceCompleted", "ExecutionCompleted" },
            kinds);
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void PersistedFormat_StoredEvents_RoundTripUnchanged(string fixture)
    {
        // A renamed or dropped property would silently lose data from histories already stored.
        JsonArray stored = JsonNode.Parse(File.ReadAllText(Path.Combine(FixtureDir, fixture)))!.AsArray();
        foreach (JsonNode? node in stored)
        {
            HistoryEvent e = HistorySerializer.DeserializeEvent(node!.ToJsonString());
            JsonNode again = JsonNode.Parse(HistorySerializer.Serialize(e))!;
            Assert.True(JsonNode.DeepEquals(node, again), $"{fixture}: {node.ToJsonString()} became {again.ToJsonString()}");
        }
    }

    [Fact]
    public void Replay_ActivityRenamed_FailsNamingRecordedAndScheduled()
    {
        var registry = FixtureOrchestrations.Register(new DurableTaskRegistry(), except: "Sequence")
            .AddOrchestratorFunc<string?, List<string>>("Sequence", async (ctx, _) =>
            [
                await ctx.CallActivityAsync<string>("Hello", "Tokyo"),
                await ctx.CallActivityAsync<string>("Greet", "Seattle"),
                await ctx.CallActivityAsync<string>("Hello", "London"),
            ]);

        ReplayOutcome outcome = new OrchestrationReplayer(registry).Replay(Load("sequence.completed.v1.json"));

        Assert.False(outcome.IsDeterministic);
        Assert.Contains("activity 'Hello' (TaskScheduled #1)", outcome.Error);
        Assert.Contains("activity 'Greet' (TaskScheduled #1)", outcome.Error);
    }

    [Fact]
    public void Replay_ExtraActivityScheduled_FailsNamingIt()
    {
        var registry = FixtureOrchestrations.Register(new DurableTaskRegistry(), except: "FanOut")
            .AddOrchestratorFunc<int, int>("FanOut", async (ctx, n) =>
            {
                int[] squares = await Task.WhenAll(Enumerable.Range(1, n + 1).Select(i => ctx.CallActivityAsync<int>("Square", i)));
                return squares.Sum();
            });

        ReplayOutcome outcome = new OrchestrationReplayer(registry).Replay(Load("fanout.completed.v1.json"));

        Assert.False(outcome.IsDeterministic);
        Assert.Contains("activity 'Square' (TaskScheduled #5)", outcome.Error);
    }

    [Fact]
    public void Replay_TimerReplacedByActivity_FailsNamingBothKinds()
    {
        var registry = FixtureOrchestrations.Register(new DurableTaskRegistry(), except: "Approval")
            .AddOrchestratorFunc<string, string>("Approval", async (ctx, order) =>
                await ctx.CallActivityAsync<string>("Hello", order));

        ReplayOutcome outcome = new OrchestrationReplayer(registry).Replay(Load("approval.waiting.v1.json"));

        Assert.False(outcome.IsDeterministic);
        Assert.Contains("a timer (TimerCreated #0)", outcome.Error);
        Assert.Contains("activity 'Hello' (TaskScheduled #0)", outcome.Error);
    }

    [Fact]
    public void Replay_DifferentResult_IsReported()
    {
        var registry = FixtureOrchestrations.Register(new DurableTaskRegistry(), except: "FanOut")
            .AddOrchestratorFunc<int, int>("FanOut", async (ctx, n) =>
            {
                int[] squares = await Task.WhenAll(Enumerable.Range(1, n).Select(i => ctx.CallActivityAsync<int>("Square", i)));
                return squares.Max();
            });

        ReplayOutcome outcome = new OrchestrationReplayer(registry).Replay(Load("fanout.completed.v1.json"));

        Assert.False(outcome.IsDeterministic);
        Assert.Contains("output 55", outcome.Error);
        Assert.Contains("output 25", outcome.Error);
    }

    [Fact(Timeout = 30_000)]
    public async Task RunningInstance_CodeChangedBetweenEpisodes_FailsWithNonDeterminismError()
    {
        string path = Path.Combine(Path.GetTempPath(), $"replay-{Environment.ProcessId}-{Environment.TickCount64}.db");
        try
        {
            await using var backend = new SqliteOrchestrationBackend(new SqliteOrchestrationBackendOptions { DataSource = path });
            var client = new DurableTaskClient(backend);
            var fast = new DurableTaskWorkerOptions { MaxPollingInterval = TimeSpan.FromMilliseconds(50) };

            await using (var v1 = new DurableTaskWorker(backend, FixtureOrchestrations.Register(new DurableTaskRegistry()), fast))
            {
                await v1.StartAsync(default);
                await client.ScheduleNewOrchestrationInstanceAsync("Approval", "A8472", new() { InstanceId = "nd-1" });
                await TestWait.EventuallyAsync(async () => (await client.GetHistoryAsync("nd-1")).OfType<TimerCreatedEvent>().Any());
                await v1.StopAsync(default);
            }

            IReadOnlyList<HistoryEvent> before = await client.GetHistoryAsync("nd-1");

            // Version 2 calls an activity before the wait: what history recorded as a timer is now an activity.
            var changed = FixtureOrchestrations.Register(new DurableTaskRegistry(), except: "Approval")
                .AddOrchestratorFunc<string, string>("Approval", async (ctx, order) =>
                {
                    await ctx.CallActivityAsync<string>("Hello", "audit " + order);
                    return await ctx.WaitForExternalEvent<bool>("approval", TimeSpan.FromHours(24)) ? "approved" : "rejected";
                });
            await using var v2 = new DurableTaskWorker(backend, changed, fast);
            await v2.StartAsync(default);
            await client.RaiseEventAsync("nd-1", "approval", true);
            OrchestrationMetadata done = await client.WaitForInstanceCompletionAsync("nd-1");

            Assert.Equal(OrchestrationRuntimeStatus.Failed, done.RuntimeStatus);
            Assert.Equal(typeof(NonDeterministicOrchestrationException).FullName, done.FailureDetails!.ErrorType);
            Assert.Contains("a timer (TimerCreated #0)", done.FailureDetails.ErrorMessage);
            Assert.Contains("activity 'Hello' (TaskScheduled #0)", done.FailureDetails.ErrorMessage);

            // Nothing the changed code scheduled was recorded or run: history only gained the failure.
            IReadOnlyList<HistoryEvent> after = await client.GetHistoryAsync("nd-1");
            Assert.Empty(after.OfType<TaskScheduledEvent>());
            Assert.Equal(before.Select(HistorySerializer.Serialize), after.Take(before.Count).Select(HistorySerializer.Serialize));
            Assert.Single(after.OfType<ExecutionCompletedEvent>());
        }
        finally
        {
            foreach (string f in new[] { path, path + "-wal", path + "-shm" })
            {
                File.Delete(f);
            }
        }
    }

    private static IReadOnlyList<HistoryEvent> Load(string fixture) =>
        HistorySerializer.DeserializeHistory(File.ReadAllText(Path.Combine(FixtureDir, fixture)));
}

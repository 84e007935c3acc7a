using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using Orchestrator.Agents;
using Orchestrator.Agents.Models;
using Orchestrator.Durable;
using Orchestrator.Durable.History;

namespace Orchestrator.Host.Cli;

/// <summary>
/// <c>replay &lt;id&gt;</c>: re-runs the stored orchestration against its recorded history with the current code, and
/// reports whether it still replays deterministically (or the non-determinism error) and what it would do next.
/// </summary>
/// <remarks>
/// It can never fire an effect: the replayer itself runs no activity and writes nothing, and on top of that the
/// registry it replays with has every tool handler and the model replaced by stubs that only record that they were
/// called (the report says how often: always zero). Nothing is written to the store.
/// </remarks>
internal static class ReplayCommand
{
    public static async Task<int> RunAsync(ReadOnlyMemory<string> args, HostSettings settings, CliContext context, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        var a = CliArguments.Parse("replay", args.Span, [], []);
        string id = a.Single("replay", "instance id");
        await using var store = CliStore.Open(settings, a.Db);
        OrchestrationMetadata? m = await store.Client.GetInstanceAsync(id, cancellationToken).ConfigureAwait(false);
        IReadOnlyList<HistoryEvent>? history = m is null ? null : await store.Backend.GetHistoryAsync(id, cancellationToken).ConfigureAwait(false);
        if (m is null || history is null)
        {
            await stderr.WriteLineAsync($"error: no instance '{id}'.").ConfigureAwait(false);
            return 1;
        }

        await stderr.WriteLineAsync($"replay: read {history.Count} history events of {m.Name} '{id}'; building the agent with stubbed tools...").ConfigureAwait(false);
        await using HostAgentRuntime runtime = await context.AgentFactory(settings, NullLoggerFactory.Instance, cancellationToken).ConfigureAwait(false);
        var stubs = new ReplayStubs(runtime.Agent.Tools);
        // The same sealing key as the host that wrote the history (sealed values are opened in memory only); no journal:
        // replay runs no activity.
        AgentTurnOptions turnOptions = HostTurnOptions.Create(settings, NullLoggerFactory.Instance, a.Db, withJournal: false);
        DurableTaskRegistry registry = new DurableTaskRegistry().AddAgentTurn(runtime.Agent.Tools, stubs.Handlers, stubs.Model, turnOptions);
        if (!registry.ContainsOrchestrator(m.Name))
        {
            await stderr.WriteLineAsync($"error: instance '{id}' runs '{m.Name}'; replay re-runs the agent's orchestrations ({string.Join(", ", registry.OrchestratorNames)}).").ConfigureAwait(false);
            return 1;
        }

        await stderr.WriteLineAsync($"replay: replaying {history.Count} events against the current {m.Name} code...").ConfigureAwait(false);
        ReplayOutcome outcome = new OrchestrationReplayer(registry).Replay(history);
        IReadOnlyList<string> outstanding = Outstanding(history);
        IReadOnlyList<PendingConfirmation> pending = m.Name == TurnRegistration.TurnOrchestrator
            ? InspectCommands.TryRead<TurnStatus>(m.SerializedCustomStatus)?.PendingConfirmations ?? []
            : [];

        if (a.Json)
        {
            await stdout.WriteLineAsync(new JsonObject
            {
                ["instanceId"] = id,
                ["name"] = m.Name,
                ["storedStatus"] = m.RuntimeStatus.ToString(),
                ["historyEvents"] = history.Count,
                ["deterministic"] = outcome.IsDeterministic,
                ["error"] = outcome.Error,
                ["replayStatus"] = outcome.Status.ToString(),
                ["nextActions"] = new JsonArray([.. outcome.NextActions.Select(x => (JsonNode)x)]),
                ["outstanding"] = new JsonArray([.. outstanding.Select(x => (JsonNode)x)]),
                ["pendingConfirmations"] = new JsonArray([.. pending.Select(p => (JsonNode)InspectCommands.ConfirmationName(id, p.ToolCallId))]),
                ["toolCallsDuringReplay"] = stubs.ToolCalls.Count,
                ["modelCallsDuringReplay"] = stubs.ModelCalls,
            }.ToJsonString()).ConfigureAwait(false);
        }
        else
        {
            await stdout.WriteLineAsync($"Replayed {history.Count} recorded events of {m.Name} '{id}' (stored status {m.RuntimeStatus}) against the current code.").ConfigureAwait(false);
            if (outcome.IsDeterministic)
            {
                await stdout.WriteLineAsync($"Deterministic: yes. The code reproduces the recorded history (replay reached {outcome.Status}).").ConfigureAwait(false);
            }
            else
            {
                await stdout.WriteLineAsync("Deterministic: NO. Deploying this code would fail the instance on its next episode:").ConfigureAwait(false);
                await stdout.WriteLineAsync($"  {outcome.Error}").ConfigureAwait(false);
            }

            if (outcome.IsDeterministic)
            {
                await stdout.WriteLineAsync("Would do next:").ConfigureAwait(false);
                foreach (string action in outcome.NextActions)
                {
                    await stdout.WriteLineAsync($"  schedule {action}").ConfigureAwait(false);
                }

                foreach (string wait in outstanding)
                {
                    await stdout.WriteLineAsync($"  wait for {wait}").ConfigureAwait(false);
                }

                foreach (PendingConfirmation p in pending)
                {
                    await stdout.WriteLineAsync($"  wait for a decision on {InspectCommands.ConfirmationName(id, p.ToolCallId)}: {p.Summary ?? p.ToolName} (hash {p.ArgumentsHash})").ConfigureAwait(false);
                }

                if (outcome.NextActions.Count == 0 && outstanding.Count == 0 && pending.Count == 0)
                {
                    await stdout.WriteLineAsync(outcome.Status.IsTerminal() ? $"  nothing: the orchestration is finished ({outcome.Status})." : "  nothing until a message arrives.").ConfigureAwait(false);
                }
            }

            await stdout.WriteLineAsync($"Effects during replay: {stubs.ToolCalls.Count} tool calls, {stubs.ModelCalls} model calls (every tool and the model were stubbed).").ConfigureAwait(false);
        }

        return outcome.IsDeterministic ? 0 : 1;
    }

    /// <summary>What the recorded history still waits for: scheduled tasks, timers and sub-orchestrations without their completion.</summary>
    internal static IReadOnlyList<string> Outstanding(IReadOnlyList<HistoryEvent> history)
    {
        var done = new HashSet<int>();
        foreach (HistoryEvent e in history)
        {
            int? id = e switch
            {
                TaskCompletedEvent c => c.TaskScheduledId,
                TaskFailedEvent f => f.TaskScheduledId,
                TimerFiredEvent t => t.TimerId,
                SubOrchestrationInstanceCompletedEvent s => s.TaskScheduledId,
                SubOrchestrationInstanceFailedEvent s => s.TaskScheduledId,
                _ => null,
            };
            if (id is { } i)
            {
                done.Add(i);
            }
        }

        if (history.Any(e => e is ExecutionCompletedEvent or ContinueAsNewEvent or ExecutionTerminatedEvent))
        {
            return [];
        }

        var result = new List<string>();
        foreach (HistoryEvent e in history)
        {
            if (e.EventId < 0 || done.Contains(e.EventId))
            {
                continue;
            }

            switch (e)
            {
                case TaskScheduledEvent t:
                    result.Add($"activity '{t.Name}' #{t.EventId} (scheduled, no result recorded yet)");
                    break;
                case TimerCreatedEvent t:
                    result.Add($"timer #{t.EventId} firing {InspectCommands.Time(t.FireAt)}");
                    break;
                case SubOrchestrationInstanceCreatedEvent s:
                    result.Add($"sub-orchestration '{s.Name}' as {s.InstanceId}");
                    break;
            }
        }

        return result;
    }

    /// <summary>Every tool handler and the model, replaced by recorders that never call out.</summary>
    private sealed class ReplayStubs
    {
        private int _modelCalls;

        public ReplayStubs(ToolRegistry tools)
        {
            foreach (ToolDefinition tool in tools.Tools)
            {
                Handlers.Add(tool.Name, (invocation, _) =>
                {
                    ToolCalls.Enqueue(invocation);
                    return Task.FromResult("""{"error":"replay_stub","message":"tools do not run during a replay"}""");
                });
            }

            Model = new RecordingModel(this);
        }

        public ToolHandlers Handlers { get; } = new();

        public IChatModel Model { get; }

        public ConcurrentQueue<ToolInvocation> ToolCalls { get; } = new();

        public int ModelCalls => Volatile.Read(ref _modelCalls);

        private sealed class RecordingModel(ReplayStubs owner) : IChatModel
        {
            public Task<ModelReply> CompleteAsync(ModelRequest request, CancellationToken cancellationToken)
            {
                Interlocked.Increment(ref owner._modelCalls);
                throw new ModelCallException("The model is not called during a replay.", null, false);
            }
        }
    }
}

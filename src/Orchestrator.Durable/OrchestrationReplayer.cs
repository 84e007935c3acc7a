using Orchestrator.Durable.Core;
using Orchestrator.Durable.History;

namespace Orchestrator.Durable;

/// <summary>
/// Checks recorded histories against the current orchestrator code: use it in tests (replay stored
/// histories before deploying a change) and in tools. It never runs activities or writes anything.
/// </summary>
public sealed class OrchestrationReplayer
{
    private readonly OrchestrationExecutor executor;

    /// <summary>Creates a replayer over the orchestrators in the registry.</summary>
    public OrchestrationReplayer(DurableTaskRegistry registry, DataConverter? converter = null)
    {
        this.executor = new OrchestrationExecutor(registry, converter ?? DataConverter.Default);
    }

    /// <summary>Replays one execution's history.</summary>
    /// <exception cref="ArgumentException">The history has no ExecutionStarted event.</exception>
    public ReplayOutcome Replay(IReadOnlyList<HistoryEvent> history) => this.executor.Replay(history);
}

/// <summary>The result of replaying a recorded history against the current orchestrator code.</summary>
/// <param name="IsDeterministic">True when the code reproduces the recorded history.</param>
/// <param name="Error">Why it does not, naming the recorded and the scheduled action.</param>
/// <param name="Status">The status the replay reached.</param>
/// <param name="Output">The output, when the replay finished the orchestration.</param>
/// <param name="NextActions">Actions the code scheduled beyond the recorded history (what it would do next).</param>
public sealed record ReplayOutcome(bool IsDeterministic, string? Error, OrchestrationRuntimeStatus Status, string? Output, IReadOnlyList<string> NextActions);

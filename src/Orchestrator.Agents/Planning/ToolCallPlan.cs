namespace Orchestrator.Agents;

/// <summary>Why one call waits for another.</summary>
public enum PlanEdgeReason
{
    /// <summary>The later call's tool declares a dependency on the earlier call's tool.</summary>
    DependsOn = 0,

    /// <summary>Both write the same resource: they run in the model's order.</summary>
    SameResourceWrite = 1,

    /// <summary>A write waits for earlier reads of its resource.</summary>
    WriteAfterRead = 2,

    /// <summary>A read waits for an earlier write of its resource.</summary>
    ReadAfterWrite = 3,

    /// <summary>A write that names no resource may touch any: it is ordered against every write and every keyed call.</summary>
    UnkeyedWrite = 4,
}

/// <summary><see cref="To"/> runs only after <see cref="From"/> has completed.</summary>
/// <param name="From">The tool_call_id that runs first.</param>
/// <param name="To">The tool_call_id that waits.</param>
/// <param name="Reason">Why.</param>
/// <param name="Detail">The dependency or resource key involved, for people reading the plan.</param>
public sealed record PlanEdge(string From, string To, PlanEdgeReason Reason, string Detail);

/// <summary>A call in the plan.</summary>
/// <param name="ToolCallId">Its id.</param>
/// <param name="ToolName">Its tool.</param>
/// <param name="Position">Its 0-based position in the model's reply.</param>
/// <param name="Stage">Its stage: every call it waits for is in an earlier stage.</param>
/// <param name="Effect">Read or write.</param>
/// <param name="WaitsFor">The ids of the calls it waits for, in the model's order.</param>
public sealed record PlannedToolCall(string ToolCallId, string ToolName, int Position, int Stage, ToolEffect Effect, IReadOnlyList<string> WaitsFor);

/// <summary>A valid call the planner refused (part of a dependency cycle, or waiting on such a call).</summary>
/// <param name="ToolCallId">Its id.</param>
/// <param name="ToolName">Its tool.</param>
/// <param name="Position">Its 0-based position in the model's reply.</param>
/// <param name="Reason">Why, in words for the model.</param>
public sealed record PlanRejection(string ToolCallId, string ToolName, int Position, string Reason);

/// <summary>A call that will not run because a call it waits for failed or was rejected.</summary>
/// <param name="ToolCallId">Its id.</param>
/// <param name="ToolName">Its tool.</param>
/// <param name="CauseCallId">The call whose failure or rejection started the skip.</param>
/// <param name="Reason">Why, in words for the model.</param>
public sealed record SkippedToolCall(string ToolCallId, string ToolName, string CauseCallId, string Reason);

/// <summary>
/// The execution plan of one model reply: a DAG of calls with the reason for every edge, grouped
/// into stages (all calls of a stage may run in parallel once the earlier stages are done).
/// Plain data, serializable as custom status and history.
/// </summary>
/// <param name="Calls">The planned calls, in the model's order.</param>
/// <param name="Edges">The waits, ordered by (waiting call position, awaited call position).</param>
/// <param name="Stages">The tool_call_ids of each stage, each stage in the model's order.</param>
/// <param name="Rejected">Valid calls the planner refused, in the model's order.</param>
// WARNING: this shape is written to custom status and history; renaming or removing a member breaks readers of stored plans.
public sealed record ToolCallPlan(
    IReadOnlyList<PlannedToolCall> Calls,
    IReadOnlyList<PlanEdge> Edges,
    IReadOnlyList<IReadOnlyList<string>> Stages,
    IReadOnlyList<PlanRejection> Rejected)
{
    /// <summary>
    /// The calls that must not run because <paramref name="failedCallId"/> failed or was rejected:
    /// every call that waits for it, directly or transitively, along any edge (a write serialized
    /// after a failed write on the same resource is skipped too: the model decided them as a sequence).
    /// </summary>
    /// <param name="failedCallId">The call that failed, was rejected or timed out.</param>
    /// <param name="failure">What happened to it, completing "call X (tool) ...", for example "was rejected by a reviewer".</param>
    /// <returns>The skipped calls in the model's order; empty when nothing waits for it.</returns>
    public IReadOnlyList<SkippedToolCall> SkipsAfterFailure(string failedCallId, string failure)
    {
        var byId = Calls.ToDictionary(c => c.ToolCallId, StringComparer.Ordinal);
        if (!byId.TryGetValue(failedCallId, out var failed))
        {
            return [];
        }

        var skipped = new Dictionary<string, SkippedToolCall>(StringComparer.Ordinal);
        var queue = new Queue<string>();
        queue.Enqueue(failedCallId);
        while (queue.Count > 0)
        {
            var current = queue.Dequeue();
            foreach (var edge in Edges.Where(e => e.From == current))
            {
                if (edge.To == failedCallId || skipped.ContainsKey(edge.To))
                {
                    continue;
                }

                var via = current == failedCallId ? "" : $" through call '{current}' ({byId[current].ToolName}), which was skipped";
                var reason = $"Not run: it waits for call '{failedCallId}' ({failed.ToolName}){via}, and that call {failure}.";
                skipped[edge.To] = new SkippedToolCall(edge.To, byId[edge.To].ToolName, failedCallId, reason);
                queue.Enqueue(edge.To);
            }
        }

        return skipped.Values.OrderBy(s => byId[s.ToolCallId].Position).ToArray();
    }
}

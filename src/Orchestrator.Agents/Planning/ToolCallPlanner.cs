namespace Orchestrator.Agents;

/// <summary>
/// Orders the valid calls of one model reply into a DAG.
/// </summary>
/// <remarks>
/// <para>Rules, for calls <c>a</c> before <c>b</c> in the model's order:</para>
/// <list type="bullet">
/// <item>If <c>b</c>'s tool depends on <c>a</c>'s tool, <c>b</c> waits for <c>a</c>. A declared
/// dependency holds whatever the model's order: if <c>a</c>'s tool depends on <c>b</c>'s tool,
/// <c>a</c> waits for the later <c>b</c>.</item>
/// <item>Writes sharing a resource key run in the model's order; a write waits for earlier reads of
/// its resource and a read waits for earlier writes of it. Reads never wait for reads.</item>
/// <item>A write with no resource key may touch anything: it is ordered against every write and
/// every call that names a resource.</item>
/// <item>Calls caught in a cycle (a declared dependency contradicting the model's order on a shared
/// resource) are rejected, and so is every call waiting for them; the rest of the plan stands.</item>
/// </list>
/// <para>Deterministic: the same calls and tool set always give the same plan. Thread-safe.</para>
/// </remarks>
public sealed class ToolCallPlanner
{
    private readonly ToolRegistry _registry;

    /// <summary>Creates a planner for a tool set.</summary>
    /// <param name="registry">The tool set whose dependencies apply.</param>
    public ToolCallPlanner(ToolRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        _registry = registry;
    }

    /// <summary>Plans the valid calls of one reply.</summary>
    /// <param name="calls">The validated calls (any order; the plan follows <see cref="ValidatedToolCall.Position"/>).</param>
    /// <exception cref="ArgumentException">Two calls share an id, or a call names a tool not in the registry.</exception>
    public ToolCallPlan Plan(IReadOnlyList<ValidatedToolCall> calls)
    {
        ArgumentNullException.ThrowIfNull(calls);
        var ordered = calls.OrderBy(c => c.Position).ToArray();
        if (ordered.Select(c => c.ToolCallId).Distinct(StringComparer.Ordinal).Count() != ordered.Length)
        {
            throw new ArgumentException("Each call of a plan needs a distinct tool_call_id.", nameof(calls));
        }

        var dependsOn = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        foreach (var call in ordered)
        {
            if (!_registry.TryGet(call.ToolName, out var tool))
            {
                throw new ArgumentException($"Call '{call.ToolCallId}' names tool '{call.ToolName}', which is not in the registry.", nameof(calls));
            }

            dependsOn[call.ToolName] = tool.DependsOn;
        }

        var edges = BuildEdges(ordered, dependsOn);
        var rejected = RejectCycles(ordered, edges);
        var kept = ordered.Where(c => !rejected.ContainsKey(c.ToolCallId)).ToArray();
        var keptIds = kept.Select(c => c.ToolCallId).ToHashSet(StringComparer.Ordinal);
        var keptEdges = edges.Where(e => keptIds.Contains(e.From) && keptIds.Contains(e.To)).ToArray();
        var position = ordered.ToDictionary(c => c.ToolCallId, c => c.Position, StringComparer.Ordinal);

        var stage = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var call in kept)
        {
            // Every edge between kept calls goes to a call whose waits are all computable first when
            // visited in topological order; compute it lazily with memoisation (the graph is acyclic now).
            StageOf(call.ToolCallId, keptEdges, stage);
        }

        var planned = kept.Select(c => new PlannedToolCall(
            c.ToolCallId,
            c.ToolName,
            c.Position,
            stage[c.ToolCallId],
            c.Effect,
            keptEdges.Where(e => e.To == c.ToolCallId).Select(e => e.From).OrderBy(id => position[id]).ToArray())).ToArray();
        var stages = planned.GroupBy(p => p.Stage).OrderBy(g => g.Key)
            .Select(g => (IReadOnlyList<string>)g.OrderBy(p => p.Position).Select(p => p.ToolCallId).ToArray()).ToArray();
        var rejections = ordered.Where(c => rejected.ContainsKey(c.ToolCallId))
            .Select(c => new PlanRejection(c.ToolCallId, c.ToolName, c.Position, rejected[c.ToolCallId])).ToArray();
        var sortedEdges = keptEdges.OrderBy(e => position[e.To]).ThenBy(e => position[e.From]).ToArray();
        return new ToolCallPlan(planned, sortedEdges, stages, rejections);
    }

    private static List<PlanEdge> BuildEdges(ValidatedToolCall[] calls, Dictionary<string, IReadOnlyList<string>> dependsOn)
    {
        var edges = new Dictionary<(string From, string To), PlanEdge>();
        void Add(ValidatedToolCall from, ValidatedToolCall to, PlanEdgeReason reason, string detail) =>
            edges.TryAdd((from.ToolCallId, to.ToolCallId), new PlanEdge(from.ToolCallId, to.ToolCallId, reason, detail));

        // Declared dependencies first: when a pair has several reasons, the declared one is shown.
        foreach (var dependent in calls)
        {
            foreach (var dependency in calls.Where(c => c != dependent && dependsOn[dependent.ToolName].Contains(c.ToolName, StringComparer.Ordinal)))
            {
                Add(dependency, dependent, PlanEdgeReason.DependsOn, $"{dependent.ToolName} depends on {dependency.ToolName}");
            }
        }

        for (var j = 0; j < calls.Length; j++)
        {
            var later = calls[j];
            for (var i = 0; i < j; i++)
            {
                var earlier = calls[i];
                var shared = earlier.ResourceKeys.Intersect(later.ResourceKeys, StringComparer.Ordinal).FirstOrDefault();
                var earlierWrites = earlier.Effect == ToolEffect.Write;
                var laterWrites = later.Effect == ToolEffect.Write;
                if (shared is not null && (earlierWrites || laterWrites))
                {
                    var reason = (earlierWrites, laterWrites) switch
                    {
                        (true, true) => PlanEdgeReason.SameResourceWrite,
                        (false, true) => PlanEdgeReason.WriteAfterRead,
                        _ => PlanEdgeReason.ReadAfterWrite,
                    };
                    Add(earlier, later, reason, shared);
                }
                else if (IsUnkeyedWrite(earlier) && (laterWrites || later.ResourceKeys.Count > 0))
                {
                    Add(earlier, later, PlanEdgeReason.UnkeyedWrite, $"{earlier.ToolName} names no resource");
                }
                else if (IsUnkeyedWrite(later) && (earlierWrites || earlier.ResourceKeys.Count > 0))
                {
                    Add(earlier, later, PlanEdgeReason.UnkeyedWrite, $"{later.ToolName} names no resource");
                }
            }
        }

        return edges.Values.ToList();
    }

    private static bool IsUnkeyedWrite(ValidatedToolCall call) => call.Effect == ToolEffect.Write && call.ResourceKeys.Count == 0;

    /// <summary>Rejects every call in a cycle (strongly connected components of more than one call) and every call that waits for one.</summary>
    private static Dictionary<string, string> RejectCycles(ValidatedToolCall[] calls, List<PlanEdge> edges)
    {
        var successors = calls.ToDictionary(c => c.ToolCallId, _ => new List<string>(), StringComparer.Ordinal);
        foreach (var edge in edges)
        {
            successors[edge.From].Add(edge.To);
        }

        var rejected = new Dictionary<string, string>(StringComparer.Ordinal);
        var byId = calls.ToDictionary(c => c.ToolCallId, StringComparer.Ordinal);
        foreach (var component in StronglyConnected(calls.Select(c => c.ToolCallId).ToArray(), successors).Where(c => c.Count > 1))
        {
            var members = component.OrderBy(id => byId[id].Position).ToArray();
            var description = string.Join(", ", members.Select(id => $"'{id}' ({byId[id].ToolName})"));
            foreach (var id in members)
            {
                rejected[id] = $"Not run: calls {description} wait for each other (a declared tool dependency contradicts the order of writes to the same resource). Propose them again in dependency order.";
            }
        }

        var queue = new Queue<string>(rejected.Keys);
        while (queue.Count > 0)
        {
            var current = queue.Dequeue();
            foreach (var next in successors[current].Where(n => !rejected.ContainsKey(n)))
            {
                rejected[next] = $"Not run: it waits for call '{current}' ({byId[current].ToolName}), which was not run.";
                queue.Enqueue(next);
            }
        }

        return rejected;
    }

    private static List<List<string>> StronglyConnected(string[] nodes, Dictionary<string, List<string>> successors)
    {
        // Tarjan's algorithm; recursion depth is bounded by the number of calls in one reply.
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        var low = new Dictionary<string, int>(StringComparer.Ordinal);
        var onStack = new HashSet<string>(StringComparer.Ordinal);
        var stack = new Stack<string>();
        var components = new List<List<string>>();
        var counter = 0;

        void Visit(string v)
        {
            index[v] = low[v] = counter++;
            stack.Push(v);
            onStack.Add(v);
            foreach (var w in successors[v])
            {
                if (!index.ContainsKey(w))
                {
                    Visit(w);
                    low[v] = Math.Min(low[v], low[w]);
                }
                else if (onStack.Contains(w))
                {
                    low[v] = Math.Min(low[v], index[w]);
                }
            }

            if (low[v] == index[v])
            {
                var component = new List<string>();
                string w;
                do
                {
                    w = stack.Pop();
                    onStack.Remove(w);
                    component.Add(w);
                }
                while (w != v);
                components.Add(component);
            }
        }

        foreach (var node in nodes.Where(n => !index.ContainsKey(n)))
        {
            Visit(node);
        }

        return components;
    }

    private static int StageOf(string id, PlanEdge[] edges, Dictionary<string, int> stage)
    {
        if (stage.TryGetValue(id, out var known))
        {
            return known;
        }

        var value = edges.Where(e => e.To == id).Select(e => StageOf(e.From, edges, stage) + 1).DefaultIfEmpty(0).Max();
        stage[id] = value;
        return value;
    }
}

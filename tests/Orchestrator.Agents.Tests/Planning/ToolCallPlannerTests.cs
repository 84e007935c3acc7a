using System.Text.Json;

namespace Orchestrator.Agents.Tests.Planning;

public sealed class ToolCallPlannerTests
{
    private static ToolDefinition Tool(string name, ToolEffect effect, string[]? keys = null, string[]? dependsOn = null) =>
        ToolDefinition.FromJsonSchema(name, "A tool.", """{"type":"object","properties":{"order_id":{"type":"string"},"customer_id":{"type":"string"}}}""") with
        {
            Effect = effect,
            ResourceKeyArguments = keys ?? ["order_id", "customer_id"],
            DependsOn = dependsOn ?? [],
        };

    private static readonly ToolRegistry Registry = new ToolRegistryBuilder()
        .Add(Tool("lookup_order", ToolEffect.Read))
        .Add(Tool("get_customer", ToolEffect.Read))
        .Add(Tool("search_kb", ToolEffect.Read, keys: []))
        .Add(Tool("process_refund", ToolEffect.Write, dependsOn: ["lookup_order"]))
        .Add(Tool("update_order", ToolEffect.Write))
        .Add(Tool("send_email", ToolEffect.Write, keys: []))
        .Build();

    private static ToolCallPlan Plan(params (string Id, string Tool, string Args)[] calls)
    {
        var report = new ToolCallValidator(Registry).ValidateAll(calls.Select(c => new ProposedToolCall(c.Id, c.Tool, c.Args)).ToArray());
        Assert.Empty(report.Rejected);
        return new ToolCallPlanner(Registry).Plan(report.Valid);
    }

    private static string[][] Stages(ToolCallPlan plan) => plan.Stages.Select(s => s.ToArray()).ToArray();

    [Fact]
    public void Plan_IndependentReads_OneParallelStage()
    {
        var plan = Plan(("1", "lookup_order", """{"order_id":"A1"}"""), ("2", "lookup_order", """{"order_id":"A1"}"""), ("3", "get_customer", """{"customer_id":"C1"}"""), ("4", "search_kb", "{}"));

        Assert.Equal([["1", "2", "3", "4"]], Stages(plan));
        Assert.Empty(plan.Edges);
        Assert.Empty(plan.Rejected);
    }

    [Fact]
    public void Plan_WritesSameResource_SerializedInModelOrder()
    {
        var plan = Plan(("w1", "update_order", """{"order_id":"A1"}"""), ("w2", "update_order", """{"order_id":"A2"}"""), ("w3", "update_order", """{"order_id":"A1"}"""));

        Assert.Equal([["w1", "w2"], ["w3"]], Stages(plan));
        var edge = Assert.Single(plan.Edges);
        Assert.Equal(new PlanEdge("w1", "w3", PlanEdgeReason.SameResourceWrite, "order_id=A1"), edge);
    }

    [Fact]
    public void Plan_WriteAfterReadAndReadAfterWrite_Ordered()
    {
        var plan = Plan(("r1", "lookup_order", """{"order_id":"A1"}"""), ("w", "update_order", """{"order_id":"A1"}"""), ("r2", "lookup_order", """{"order_id":"A1"}"""), ("r3", "lookup_order", """{"order_id":"A9"}"""));

        Assert.Equal([["r1", "r3"], ["w"], ["r2"]], Stages(plan));
        Assert.Equal(
            [("r1", "w", PlanEdgeReason.WriteAfterRead), ("w", "r2", PlanEdgeReason.ReadAfterWrite)],
            plan.Edges.Select(e => (e.From, e.To, e.Reason)));
    }

    [Fact]
    public void Plan_DeclaredDependency_DependentWaitsEvenWhenProposedFirst()
    {
        var plan = Plan(("refund", "process_refund", """{"order_id":"A2"}"""), ("lookup", "lookup_order", """{"order_id":"A1"}"""));

        Assert.Equal([["lookup"], ["refund"]], Stages(plan));
        Assert.Equal(new PlanEdge("lookup", "refund", PlanEdgeReason.DependsOn, "process_refund depends on lookup_order"), Assert.Single(plan.Edges));
        Assert.Equal(["lookup"], plan.Calls.Single(c => c.ToolCallId == "refund").WaitsFor);
    }

    [Fact]
    public void Plan_DependencyContradictingResourceOrder_CycleRejectedOthersKept()
    {
        // The refund (a write of A1) comes first, so the later read of A1 waits for it; but refund
        // depends on lookup_order: each waits for the other.
        var plan = Plan(
            ("refund", "process_refund", """{"order_id":"A1"}"""),
            ("lookup", "lookup_order", """{"order_id":"A1"}"""),
            ("after", "update_order", """{"order_id":"A1"}"""),
            ("free", "get_customer", """{"customer_id":"C1"}"""));

        Assert.Equal(["refund", "lookup", "after"], plan.Rejected.Select(r => r.ToolCallId));
        Assert.Contains("wait for each other", plan.Rejected[0].Reason, StringComparison.Ordinal);
        Assert.Contains("waits for call", plan.Rejected[2].Reason, StringComparison.Ordinal);
        Assert.Equal([["free"]], Stages(plan));
    }

    [Fact]
    public void Plan_UnkeyedWrite_OrderedAgainstWritesAndKeyedCallsOnly()
    {
        var plan = Plan(("w", "update_order", """{"order_id":"A1"}"""), ("mail", "send_email", "{}"), ("kb", "search_kb", "{}"), ("r", "lookup_order", """{"order_id":"A2"}"""));

        Assert.Equal([["w", "kb"], ["mail"], ["r"]], Stages(plan));
        Assert.All(plan.Edges, e => Assert.Equal(PlanEdgeReason.UnkeyedWrite, e.Reason));
    }

    [Fact]
    public void SkipsAfterFailure_Transitive_EachWithReason()
    {
        var plan = Plan(
            ("lookup", "lookup_order", """{"order_id":"A1"}"""),
            ("refund", "process_refund", """{"order_id":"A2"}"""),
            ("update", "update_order", """{"order_id":"A2"}"""),
            ("other", "get_customer", """{"customer_id":"C1"}"""));

        var skipped = plan.SkipsAfterFailure("lookup", "failed: order service unavailable");

        Assert.Equal(["refund", "update"], skipped.Select(s => s.ToolCallId));
        Assert.All(skipped, s => Assert.Equal("lookup", s.CauseCallId));
        Assert.Equal("Not run: it waits for call 'lookup' (lookup_order), and that call failed: order service unavailable.", skipped[0].Reason);
        Assert.Contains("through call 'refund' (process_refund), which was skipped", skipped[1].Reason, StringComparison.Ordinal);
        Assert.Empty(plan.SkipsAfterFailure("other", "failed"));
        Assert.Empty(plan.SkipsAfterFailure("unknown", "failed"));
    }

    [Fact]
    public void SkipsAfterFailure_RejectedConfirmation_SkipsLaterWriteOfSameResource()
    {
        var plan = Plan(("refund", "process_refund", """{"order_id":"A1"}"""), ("update", "update_order", """{"order_id":"A1"}"""), ("lookup", "lookup_order", """{"order_id":"A2"}"""));

        var skipped = plan.SkipsAfterFailure("refund", "was rejected by a reviewer");

        Assert.Equal("update", Assert.Single(skipped).ToolCallId);
    }

    [Fact]
    public void Plan_SerializesAndRoundTrips()
    {
        var plan = Plan(("lookup", "lookup_order", """{"order_id":"A1"}"""), ("refund", "process_refund", """{"order_id":"A1"}"""));

        var json = JsonSerializer.Serialize(plan);
        var back = JsonSerializer.Deserialize<ToolCallPlan>(json)!;

        Assert.Contains("\"Stages\":[[\"lookup\"],[\"refund\"]]", json, StringComparison.Ordinal);
        Assert.Equal(plan.Edges, back.Edges);
        Assert.Equal(plan.Stages.Select(s => s.ToArray()), back.Stages.Select(s => s.ToArray()));
    }

    [Fact]
    public void Plan_Deterministic_SameCallsAnyInputOrderSamePlan()
    {
        var validator = new ToolCallValidator(Registry);
        var calls = validator.ValidateAll(
        [
            new("a", "lookup_order", """{"order_id":"A1"}"""),
            new("b", "process_refund", """{"order_id":"A1"}"""),
            new("c", "update_order", """{"order_id":"A1"}"""),
        ]).Valid;
        var planner = new ToolCallPlanner(Registry);

        var first = JsonSerializer.Serialize(planner.Plan(calls));
        var shuffled = JsonSerializer.Serialize(planner.Plan(calls.Reverse().ToArray()));

        Assert.Equal(first, shuffled);
    }

    [Fact]
    public void Plan_DuplicateIds_Throws()
    {
        var call = new ToolCallValidator(Registry).Validate(new("a", "search_kb", "{}"), 0).Valid!;

        Assert.Throws<ArgumentException>(() => new ToolCallPlanner(Registry).Plan([call, call with { Position = 1 }]));
    }
}

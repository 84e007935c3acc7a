using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json.Nodes;
using Orchestrator.Agents.Models;
using Orchestrator.Agents.Models.Scripted;
using Orchestrator.Agents.Tests.Bfcl;
using Xunit.Abstractions;

namespace Orchestrator.Agents.Turn.Tests;

/// <summary>
/// Every BFCL case of the parallel, multiple and parallel_multiple files (and their live variants) through the whole
/// turn: the real OpenAI SDK against the scripted server, a real worker on in-memory SQLite. The scripted model first
/// emits the accepted answer as tool calls, then the same calls mutated (wrong type, missing required argument,
/// unknown argument), then answers in text. Cases run in batches: one worker, one server and one tool registry (each
/// case's tools under a per-case prefix) serve a whole batch, whose turns run concurrently.
/// </summary>
public sealed class BfclTurnTests(ITestOutputHelper output)
{
    private const int BatchSize = 40;

    private static readonly TurnOptions Options = new()
    {
        // The mutated calls fail on purpose; the failure budgets must not end the turn before every call is answered.
        MaxToolCalls = 1000,
        MaxConsecutiveFailures = 1000,
        MaxSameFailingCall = 1000,
        MaxParallelCalls = 8,
    };

    public static TheoryData<string> AnswerFiles => new()
    {
        "BFCL_v4_parallel.json",
        "BFCL_v4_multiple.json",
        "BFCL_v4_parallel_multiple.json",
        "BFCL_v4_live_parallel.json",
        "BFCL_v4_live_parallel_multiple.json",
    };

    [Theory(Timeout = 600_000)]
    [MemberData(nameof(AnswerFiles))]
    public async Task RunTurn_BfclAnswersThenMutations_AnswersDispatchedWithTheirIdsMutationsRejectedNothingElseRun(string file)
    {
        var cases = Bfcl.Load(file);
        Assert.NotEmpty(cases);
        var failures = new List<string>();
        int dispatched = 0, rejected = 0, defects = 0;
        foreach (var batch in cases.Chunk(BatchSize))
        {
            var planned = new List<PlannedCase>();
            foreach (var @case in batch)
            {
                if (Plan(@case, planned.Count, failures) is { } plan)
                {
                    planned.Add(plan);
                }
            }

            await RunBatchAsync(planned, failures);
            dispatched += planned.Sum(p => p.Valid.Count);
            rejected += planned.Sum(p => p.Mutations.Count);
            defects += planned.Count(p => p.Defect is not null);
        }

        output.WriteLine($"BFCL {file}: {cases.Count} cases through the turn; {dispatched} calls dispatched, {rejected} mutated calls and {defects} fixture defects rejected; {failures.Count} failures");
        Assert.True(failures.Count == 0, $"{failures.Count} failures in {file}:\n{string.Join("\n", failures.Take(30))}");
    }

    [Fact(Timeout = 600_000)]
    public async Task RunTurn_BfclIrrelevanceAnsweredInText_NothingDispatched()
    {
        var cases = Bfcl.Load("BFCL_v4_irrelevance.json");
        Assert.True(cases.Count >= 200, $"only {cases.Count} irrelevance cases");
        var failures = new List<string>();
        foreach (var batch in cases.Chunk(BatchSize))
        {
            var builder = new ToolRegistryBuilder();
            var handlers = new ToolHandlers();
            var calls = new ConcurrentQueue<string>();
            var entries = new List<ScriptEntry>();
            var prefixes = new List<(BfclCase Case, string Prefix)>();
            for (int i = 0; i < batch.Length; i++)
            {
                var prefix = Prefix(i);
                foreach (var function in batch[i].Functions)
                {
                    var tool = Bfcl.ToTool(function!, prefix);
                    builder.Add(tool);
                    handlers.Add(tool.Name, (inv, _) =>
                    {
                        calls.Enqueue($"{inv.ConversationId}: {inv.ToolName} {inv.ToolCallId}");
                        return Task.FromResult("{}");
                    });
                }

                entries.Add(ScriptEntry.Text($"None of my tools can help with that ({batch[i].Id}).") with { When = new ScriptMatch { AnyContains = Marker(batch[i]) } });
                prefixes.Add((batch[i], prefix));
            }

            await using var harness = await TurnHarness.StartAsync(new ChatScript(entries), builder.Build(), handlers);
            var turns = prefixes.Select(p => RunAsync(harness, p.Case)).ToArray();
            var outputs = await Task.WhenAll(turns);
            for (int i = 0; i < outputs.Length; i++)
            {
                var (@case, prefix) = prefixes[i];
                var turn = outputs[i];
                var offered = harness.Server.Requests.Where(r => r.Messages.Any(m => (m.Content ?? string.Empty).Contains(Marker(@case), StringComparison.Ordinal))).ToArray();
                if (turn.Outcome != TurnOutcome.Answered || turn.ToolCalls != 0 || turn.ModelCalls != 1 || turn.Messages.Any(m => m.ToolCalls.Count > 0 || m.Role == ModelRole.Tool))
                {
                    failures.Add($"{@case.Id}: outcome {turn.Outcome}, {turn.ToolCalls} tool calls, {turn.ModelCalls} model calls");
                }

                if (offered.Length != 1 || !@case.Functions.All(f => offered[0].Tools.Any(t => t.Name == prefix + Bfcl.ToolName(f!["name"]!.GetValue<string>()))))
                {
                    failures.Add($"{@case.Id}: the model was not offered the case's tools in exactly one request");
                }
            }

            failures.AddRange(calls.Select(c => $"dispatched although the model answered in text: {c}"));
        }

        output.WriteLine($"BFCL irrelevance: {cases.Count} cases through the turn, {failures.Count} failures");
        Assert.True(failures.Count == 0, $"{failures.Count} failures:\n{string.Join("\n", failures.Take(30))}");
    }

    // A whole batch runs at once on a shared machine: each turn gets a generous bound of its own.
    private static async Task<TurnOutput> RunAsync(TurnHarness harness, BfclCase @case)
    {
        string id = "turn-" + @case.Id;
        await harness.StartTurnAsync(new TurnInput(@case.Id, [ModelMessage.User($"{Marker(@case)} {@case.Question}")]) { Options = Options }, id);
        return await harness.WaitForTurnAsync(id, TimeSpan.FromSeconds(120));
    }

    private static string Prefix(int index) => string.Create(CultureInfo.InvariantCulture, $"c{index}_");

    // The closing bracket keeps "parallel_1" from matching "parallel_10".
    private static string Marker(BfclCase @case) => $"[bfcl {@case.Id}]";

    /// <summary>The calls one case's scripted model makes, and what must happen to each.</summary>
    private static PlannedCase? Plan(BfclCase @case, int index, List<string> failures)
    {
        if (@case.GroundTruth is null)
        {
            failures.Add($"{@case.Id}: no accepted answer");
            return null;
        }

        var prefix = Prefix(index);
        ToolDefinition[] tools;
        ToolRegistry registry;
        try
        {
            tools = @case.Functions.Select(f => Bfcl.ToTool(f!, prefix)).ToArray();
            registry = new ToolRegistryBuilder().AddRange(tools).Build();
        }
        catch (ToolRegistryException ex)
        {
            failures.Add($"{@case.Id}: tool set refused: {ex.Message}");
            return null;
        }

        var schemas = registry.Tools.ToDictionary(t => t.Name, t => JsonNode.Parse(t.ParametersSchema)!.AsObject(), StringComparer.Ordinal);
        var answer = Bfcl.AnswerCalls(@case, schemas, prefix);
        ExpectedRejection? defect = null;
        var valid = answer.ToList();
        if (Bfcl.FixtureDefects.TryGetValue(@case.Id, out var known))
        {
            // The accepted answer contradicts its own schema here: that call must be rejected like a mutation.
            // The case may call that tool more than once: the defective call is the one validation rejects.
            var validator = new ToolCallValidator(registry);
            var call = answer.First(c => c.Name == prefix + known.Tool && !validator.Validate(c, 0).IsValid);
            defect = new ExpectedRejection(call, known.Argument, known.Code);
            valid.Remove(call);
        }

        var mutations = new List<ExpectedRejection>();
        for (int i = 0; i < answer.Count; i++)
        {
            var call = answer[i];
            var arguments = JsonNode.Parse(call.RawArguments)!.AsObject();
            var schema = schemas[call.Name];
            if (Bfcl.WrongTypeMutation(arguments, schema) is var (typed, typedName))
            {
                mutations.Add(new ExpectedRejection(new ProposedToolCall($"m{i}_type", call.Name, typed.ToJsonString()), typedName, "type"));
            }

            if (Bfcl.MissingRequiredMutation(arguments, schema) is var (dropped, required))
            {
                mutations.Add(new ExpectedRejection(new ProposedToolCall($"m{i}_required", call.Name, dropped.ToJsonString()), required, "required"));
            }

            var (extended, unknown) = Bfcl.UnknownArgumentMutation(arguments);
            mutations.Add(new ExpectedRejection(new ProposedToolCall($"m{i}_unknown", call.Name, extended.ToJsonString()), unknown, "unknown"));
        }

        return new PlannedCase(@case, prefix, tools, answer, valid, defect, mutations);
    }

    private static async Task RunBatchAsync(IReadOnlyList<PlannedCase> cases, List<string> failures)
    {
        var builder = new ToolRegistryBuilder();
        var handlers = new ToolHandlers();
        var dispatched = new ConcurrentQueue<ToolInvocation>();
        var entries = new List<ScriptEntry>();
        foreach (var planned in cases)
        {
            foreach (var tool in planned.Tools)
            {
                builder.Add(tool);
                handlers.Add(tool.Name, (inv, _) =>
                {
                    dispatched.Enqueue(inv);
                    return Task.FromResult(ResultFor(inv.ToolName, inv.ToolCallId));
                });
            }

            var marker = new ScriptMatch { AnyContains = Marker(planned.Case) };
            entries.Add(ScriptEntry.Calls([.. planned.Answer.Select(c => new ScriptedToolCall(c.Id, c.Name, c.RawArguments))]) with { When = marker with { LastRole = "user" } });
            entries.Add(ScriptEntry.Calls([.. planned.Mutations.Select(m => new ScriptedToolCall(m.Call.Id, m.Call.Name, m.Call.RawArguments))]) with { When = marker with { ToolResultFor = planned.Answer[0].Id } });
            entries.Add(ScriptEntry.Text("Done.") with { When = marker with { ToolResultFor = planned.Mutations[0].Call.Id } });
        }

        await using var harness = await TurnHarness.StartAsync(new ChatScript(entries), builder.Build(), handlers);
        var turns = cases.Select(p => RunAsync(harness, p.Case)).ToArray();
        var outputs = await Task.WhenAll(turns);
        var byConversation = dispatched.ToLookup(d => d.ConversationId, StringComparer.Ordinal);
        for (int i = 0; i < cases.Count; i++)
        {
            Check(cases[i], outputs[i], byConversation[cases[i].Case.Id].ToArray(), harness.Server.Requests, failures);
        }
    }

    private static void Check(PlannedCase planned, TurnOutput turn, ToolInvocation[] dispatched, IReadOnlyList<RecordedChatRequest> requests, List<string> failures)
    {
        string id = planned.Case.Id;
        if (turn.Outcome != TurnOutcome.Answered || turn.ModelCalls != 3)
        {
            failures.Add($"{id}: the turn ended {turn.Outcome} ({turn.Message}) after {turn.ModelCalls} model calls, expected an answer after 3");
        }

        // Every accepted call dispatched exactly once, under its own id and tool; nothing else dispatched.
        var expectedIds = planned.Valid.Select(c => c.Id).Order(StringComparer.Ordinal).ToArray();
        var actualIds = dispatched.Select(d => d.ToolCallId).Order(StringComparer.Ordinal).ToArray();
        if (!expectedIds.SequenceEqual(actualIds))
        {
            failures.Add($"{id}: dispatched [{string.Join(",", actualIds)}], expected [{string.Join(",", expectedIds)}]");
        }

        foreach (var call in planned.Valid)
        {
            var ran = dispatched.FirstOrDefault(d => d.ToolCallId == call.Id);
            if (ran is not null && (ran.ToolName != call.Name || !SameKeys(ran.Arguments, call.RawArguments)))
            {
                failures.Add($"{id}: {call.Id} ran as {ran.ToolName} with other arguments than {call.Name} {call.RawArguments}");
            }
        }

        // Each result fed back under its id: in the turn's messages and on the wire in the model's last request.
        var last = requests.LastOrDefault(r => r.Messages.Any(m => (m.Content ?? string.Empty).Contains(Marker(planned.Case), StringComparison.Ordinal)));
        var results = turn.Messages.Where(m => m.Role == ModelRole.Tool).GroupBy(m => m.ToolCallId!, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.ToArray(), StringComparer.Ordinal);
        foreach (var call in planned.Valid)
        {
            string expected = ResultFor(call.Name, call.Id);
            if (!results.TryGetValue(call.Id, out var got) || got.Length != 1 || got[0].Content != expected || last?.ToolResultFor(call.Id) != expected)
            {
                failures.Add($"{id}: result of {call.Id} not fed back exactly once under its id");
            }
        }

        foreach (var rejection in planned.Mutations.Concat(planned.Defect is null ? [] : [planned.Defect]))
        {
            var call = rejection.Call;
            if (!results.TryGetValue(call.Id, out var got) || got.Length != 1 || last?.ToolResultFor(call.Id) != got[0].Content)
            {
                failures.Add($"{id}: rejected call {call.Id} did not get exactly one result under its id");
                continue;
            }

            var content = JsonNode.Parse(got[0].Content!)!;
            var problems = content["problems"] as JsonArray;
            if (content["error"] is null || problems is null || !problems.Any(p => (string?)p!["argument"] == rejection.Argument && (string?)p!["code"] == rejection.Code))
            {
                failures.Add($"{id}: {call.Id} ({rejection.Code} {rejection.Argument}) answered {got[0].Content}");
            }
        }
    }

    private static bool SameKeys(string a, string b) =>
        JsonNode.Parse(a)!.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal)
            .SequenceEqual(JsonNode.Parse(b)!.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal), StringComparer.Ordinal);

    private static string ResultFor(string toolName, string toolCallId) =>
        new JsonObject { ["tool"] = toolName, ["tool_call_id"] = toolCallId, ["ok"] = true }.ToJsonString();

    private sealed record ExpectedRejection(ProposedToolCall Call, string Argument, string Code);

    private sealed record PlannedCase(
        BfclCase Case,
        string Prefix,
        IReadOnlyList<ToolDefinition> Tools,
        IReadOnlyList<ProposedToolCall> Answer,
        IReadOnlyList<ProposedToolCall> Valid,
        ExpectedRejection? Defect,
        IReadOnlyList<ExpectedRejection> Mutations);
}

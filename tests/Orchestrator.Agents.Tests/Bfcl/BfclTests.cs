using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Orchestrator.Agents.Tests.Bfcl;

/// <summary>
/// Every BFCL case of the parallel, multiple and parallel_multiple files (and their live variants):
/// the accepted answer validates and is planned with every id, and three mutations of each call
/// (wrong type, missing required argument, unknown argument) are rejected naming the argument.
/// </summary>
public sealed class BfclTests(ITestOutputHelper output)
{
    public static TheoryData<string> AnswerFiles => new()
    {
        "BFCL_v4_parallel.json",
        "BFCL_v4_multiple.json",
        "BFCL_v4_parallel_multiple.json",
        "BFCL_v4_live_parallel.json",
        "BFCL_v4_live_parallel_multiple.json",
    };

    [Theory]
    [MemberData(nameof(AnswerFiles))]
    public void Validate_AcceptedAnswersAndMutations_AcceptedThenRejectedNamingArgument(string file)
    {
        var cases = Bfcl.Load(file);
        Assert.NotEmpty(cases);
        var failures = new List<string>();
        int passedCases = 0, defects = 0, calls = 0, wrongType = 0, missingRequired = 0, unknown = 0;
        foreach (var @case in cases)
        {
            if (@case.GroundTruth is null)
            {
                failures.Add($"{@case.Id}: no accepted answer");
                continue;
            }

            var caseFailures = failures.Count;
            var registry = BuildRegistry(@case, failures);
            if (registry is null)
            {
                continue;
            }

            var schemas = registry.Tools.ToDictionary(t => t.Name, t => JsonNode.Parse(t.ParametersSchema)!.AsObject(), StringComparer.Ordinal);
            var proposed = Bfcl.AnswerCalls(@case, schemas);
            var validator = new ToolCallValidator(registry);
            var report = validator.ValidateAll(proposed);
            var rejectedAnswers = report.Rejected;
            if (Bfcl.FixtureDefects.TryGetValue(@case.Id, out var defect))
            {
                var expected = rejectedAnswers.SingleOrDefault(r => r.ToolName == defect.Tool
                    && r.Errors.Any(e => e.Argument == defect.Argument && e.Code == defect.Code));
                if (rejectedAnswers.Count != 1 || expected is null)
                {
                    failures.Add($"{@case.Id}: known fixture defect not rejected as {defect}: {string.Join(" | ", rejectedAnswers.Select(r => r.Message))}");
                }
                else
                {
                    defects++;
                    rejectedAnswers = [];

                    // The defective call is done with; the rest of the case goes on like any other.
                    proposed = proposed.Where(p => p.Id != expected.ToolCallId).ToArray();
                }
            }

            foreach (var rejected in rejectedAnswers)
            {
                failures.Add($"{@case.Id}: accepted answer {rejected.ToolName} rejected: {rejected.Message} args={proposed.First(p => p.Id == rejected.ToolCallId).RawArguments}");
            }

            if (rejectedAnswers.Count == 0)
            {
                // Dispatched with matching ids: every call planned, none dropped, in the model's order.
                var plan = new ToolCallPlanner(registry).Plan(report.Valid);
                var planned = plan.Stages.SelectMany(s => s).ToArray();
                var ids = proposed.Select(p => p.Id).ToArray();
                if (!planned.SequenceEqual(ids) || !report.Valid.Select(v => v.ToolCallId).SequenceEqual(ids))
                {
                    failures.Add($"{@case.Id}: planned ids [{string.Join(",", planned)}] do not match proposed ids [{string.Join(",", ids)}]");
                }
            }

            calls += proposed.Count;
            foreach (var call in proposed)
            {
                var schema = schemas[call.Name];
                var arguments = JsonNode.Parse(call.RawArguments)!.AsObject();

                if (Bfcl.WrongTypeMutation(arguments, schema) is var (typed, typedName))
                {
                    wrongType++;
                    ExpectRejected(validator, call with { RawArguments = typed.ToJsonString() }, typedName, "type", @case.Id, "wrong type", failures);
                }

                if (Bfcl.MissingRequiredMutation(arguments, schema) is var (dropped, required))
                {
                    missingRequired++;
                    ExpectRejected(validator, call with { RawArguments = dropped.ToJsonString() }, required, "required", @case.Id, "missing required", failures);
                }

                unknown++;
                var (extended, unknownName) = Bfcl.UnknownArgumentMutation(arguments);
                ExpectRejected(validator, call with { RawArguments = extended.ToJsonString() }, unknownName, "unknown", @case.Id, "unknown argument", failures);
            }

            if (failures.Count == caseFailures)
            {
                passedCases++;
            }
        }

        output.WriteLine($"BFCL {file}: {passedCases}/{cases.Count} cases passed ({defects} of them fixture defects rejected as expected); {calls} calls validated; mutations rejected: wrong type {wrongType}, missing required {missingRequired}, unknown argument {unknown}");
        foreach (var failure in failures.Take(30))
        {
            output.WriteLine(failure);
        }

        Assert.True(failures.Count == 0, $"{failures.Count} failures in {file}:\n{string.Join("\n", failures.Take(30))}");
        Assert.Equal(cases.Count, passedCases);
    }

    [Fact]
    public void Parse_IrrelevanceCasesAnsweredInText_NoCallsAndToolSetsBuild()
    {
        var cases = Bfcl.Load("BFCL_v4_irrelevance.json");
        var failures = new List<string>();
        foreach (var @case in cases)
        {
            BuildRegistry(@case, failures);
            var reply = $"None of my tools can help with that. You asked: {@case.Question}";
            var parsed = TextToolCallParser.Parse(reply, @case.Id);
            if (!parsed.IsPlainText)
            {
                failures.Add($"{@case.Id}: plain-text reply produced {parsed.Calls.Count} calls and {parsed.Errors.Count} errors");
            }
        }

        output.WriteLine($"BFCL irrelevance: {cases.Count - failures.Count}/{cases.Count} cases answered in text with no call dispatched");
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(30)));
        Assert.True(cases.Count >= 200, $"only {cases.Count} irrelevance cases");
    }

    [Fact]
    public void MapSchema_BfclTypes_BecomeJsonSchema()
    {
        var mapped = Bfcl.MapSchema(JsonNode.Parse("""
            {"type":"dict","properties":{
              "f":{"type":"float"},"t":{"type":"tuple","items":{"type":"integer"}},"a":{"type":"any","optional":true},
              "d":{"type":"dict","properties":{"x":{"type":"float"}}},"l":{"type":"array","items":{"type":"dict","properties":{"y":{"type":"float"}}}}},
             "required":["f"]}
            """)!);

        Assert.Equal(
            """{"type":"object","properties":{"f":{"type":"number"},"t":{"type":"array","items":{"type":"integer"}},"a":{},"d":{"type":"object","properties":{"x":{"type":"number"}}},"l":{"type":"array","items":{"type":"object","properties":{"y":{"type":"number"}}}}},"required":["f"]}""",
            mapped.ToJsonString());
    }

    private static ToolRegistry? BuildRegistry(BfclCase @case, List<string> failures)
    {
        try
        {
            return new ToolRegistryBuilder().AddRange(@case.Functions.Select(f => Bfcl.ToTool(f!))).Build();
        }
        catch (ToolRegistryException ex)
        {
            failures.Add($"{@case.Id}: tool set refused: {ex.Message}");
            return null;
        }
    }

    private static void ExpectRejected(ToolCallValidator validator, ProposedToolCall call, string argument, string code, string caseId, string mutation, List<string> failures)
    {
        var result = validator.Validate(call, 0);
        if (result.IsValid)
        {
            failures.Add($"{caseId}: {mutation} of {call.Name}.{argument} was accepted");
            return;
        }

        var rejected = result.Rejected!;
        if (rejected.ToolCallId != call.Id || !rejected.Errors.Any(e => e.Argument == argument && e.Code == code && e.Problem.Contains(argument, StringComparison.Ordinal))
            || !rejected.ToModelContent().Contains(argument, StringComparison.Ordinal))
        {
            failures.Add($"{caseId}: {mutation} of {call.Name}.{argument} rejected without naming it: {rejected.ToModelContent()}");
        }
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;

namespace Orchestrator.Agents.Tests.Bfcl;

/// <summary>One BFCL case: its functions and, where the file has one, its first accepted answer.</summary>
internal sealed record BfclCase(string Id, string Question, JsonArray Functions, JsonArray? GroundTruth);

/// <summary>
/// Reads the Berkeley Function Calling Leaderboard fixtures (JSON lines) and maps their
/// Python-flavoured parameter types to JSON Schema.
/// </summary>
internal static class Bfcl
{
    /// <summary>An argument name no BFCL function has, for the unknown-argument mutation.</summary>
    internal const string UnknownArgument = "zz_not_an_argument";

    /// <summary>
    /// Cases whose accepted answer contradicts the case's own schema. Validation must reject exactly
    /// these, for exactly this reason: the list cannot grow silently.
    /// </summary>
    internal static readonly IReadOnlyDictionary<string, (string Tool, string Argument, string Code)> FixtureDefects = new Dictionary<string, (string Tool, string Argument, string Code)>(StringComparer.Ordinal)
    {
        // The accepted value is a Python expression string where the schema says array.
        ["parallel_multiple_21"] = ("linear_regression_fit", "x", "type"),

        // "type" is a property of the transaction items, not of the function.
        ["parallel_multiple_26"] = ("bank_calculate_balance", "type", "unknown"),

        // Fruit names in an array whose items are declared integer.
        ["parallel_multiple_94"] = ("sort_list", "elements[0]", "type"),

        // The accepted command is not one of the schema's enum values.
        ["live_parallel_multiple_2-2-0"] = ("ControlAppliance_execute", "command", "enum"),
    };

    internal static string FixtureDirectory()
    {
        // The fixtures live beside the repository: <repo>/../shared/fixtures/bfcl (CI lays them there too).
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Orchestrator.sln")))
        {
            directory = directory.Parent;
        }

        if (directory is null)
        {
            throw new InvalidOperationException($"Orchestrator.sln not found above {AppContext.BaseDirectory}");
        }

        var path = Path.GetFullPath(Path.Combine(directory.FullName, "..", "shared", "fixtures", "bfcl"));
        if (!Directory.Exists(path))
        {
            throw new InvalidOperationException($"BFCL fixtures not found at {path}");
        }

        return path;
    }

    internal static IReadOnlyList<BfclCase> Load(string fileName)
    {
        var directory = FixtureDirectory();
        var answers = new Dictionary<string, JsonArray>(StringComparer.Ordinal);
        var answerPath = Path.Combine(directory, "possible_answer", fileName);
        if (File.Exists(answerPath))
        {
            foreach (var line in File.ReadLines(answerPath).Where(l => l.Length > 0))
            {
                var node = JsonNode.Parse(line)!;
                answers[node["id"]!.GetValue<string>()] = node["ground_truth"]!.AsArray();
            }
        }

        return File.ReadLines(Path.Combine(directory, fileName))
            .Where(l => l.Length > 0)
            .Select(l => JsonNode.Parse(l)!)
            .Select(n =>
            {
                var id = n["id"]!.GetValue<string>();
                var question = string.Join("\n", n["question"]!.AsArray().SelectMany(turn => turn!.AsArray()).Select(m => m!["content"]?.GetValue<string>() ?? ""));
                return new BfclCase(id, question, n["function"]!.AsArray(), answers.GetValueOrDefault(id));
            })
            .ToArray();
    }

    /// <summary>BFCL names contain dots; OpenAI-compatible tool names cannot, so dots become underscores (as BFCL's own OpenAI handler does).</summary>
    internal static string ToolName(string bfclName) => bfclName.Replace('.', '_');

    /// <param name="function">The BFCL function.</param>
    /// <param name="prefix">Put before the name, so several cases' tools can share one registry.</param>
    internal static ToolDefinition ToTool(JsonNode function, string prefix = "")
    {
        var parameters = function["parameters"]!.DeepClone();
        return ToolDefinition.FromJsonSchema(
            prefix + ToolName(function["name"]!.GetValue<string>()),
            function["description"]?.GetValue<string>() is { Length: > 0 } d ? d : "(no description)",
            MapSchema(parameters).ToJsonString());
    }

    /// <summary>
    /// dict -> object, float -> number, tuple -> array, any -> no type constraint; integer, boolean,
    /// string and array (with items) stay. The non-standard "optional" flag is dropped.
    /// </summary>
    internal static JsonNode MapSchema(JsonNode schema)
    {
        if (schema is not JsonObject obj)
        {
            return schema;
        }

        obj.Remove("optional");
        if (obj["type"] is JsonValue type)
        {
            switch (type.GetValue<string>())
            {
                case "dict":
                    obj["type"] = "object";
                    break;
                case "float":
                    obj["type"] = "number";
                    break;
                case "tuple":
                    obj["type"] = "array";
                    break;
                case "any":
                    obj.Remove("type");
                    break;
            }
        }

        if (obj["properties"] is JsonObject properties)
        {
            foreach (var name in properties.Select(p => p.Key).ToArray())
            {
                properties[name] = MapSchema(properties[name]!.DeepClone());
            }
        }

        if (obj["items"] is JsonNode items)
        {
            obj["items"] = MapSchema(items.DeepClone());
        }

        if (obj["additionalProperties"] is JsonObject additional)
        {
            obj["additionalProperties"] = MapSchema(additional.DeepClone());
        }

        return obj;
    }

    /// <summary>
    /// The first accepted answer as calls with ids: per argument the first accepted value, where ""
    /// means "may be omitted" (skipped for optional arguments, the next value taken for required ones).
    /// </summary>
    internal static IReadOnlyList<ProposedToolCall> AnswerCalls(BfclCase @case, IReadOnlyDictionary<string, JsonObject> schemas, string prefix = "")
    {
        var calls = new List<ProposedToolCall>();
        foreach (var entry in @case.GroundTruth!)
        {
            foreach (var (bfclName, arguments) in entry!.AsObject())
            {
                var name = prefix + ToolName(bfclName);
                var schema = schemas[name];
                var chosen = PickAccepted(arguments!.AsObject(), schema);
                calls.Add(new ProposedToolCall($"call_{calls.Count}", name, chosen.ToJsonString()));
            }
        }

        return calls;
    }

    /// <summary>The arguments with the first typed argument given a value of another type, and that argument's name; null when no argument has a declared type.</summary>
    internal static (JsonObject Arguments, string Name)? WrongTypeMutation(JsonObject arguments, JsonObject schema)
    {
        foreach (var (name, _) in arguments)
        {
            if (schema["properties"]?[name]?["type"] is not JsonValue type)
            {
                continue;
            }

            JsonNode replacement = type.GetValue<string>() switch
            {
                "string" => JsonValue.Create(12345),
                "integer" or "number" => JsonValue.Create("not-a-number"),
                "boolean" => JsonValue.Create("not-a-boolean"),
                "array" => JsonValue.Create("not-an-array"),
                _ => JsonValue.Create("not-an-object"),
            };
            var mutated = arguments.DeepClone().AsObject();
            mutated[name] = replacement;
            return (mutated, name);
        }

        return null;
    }

    /// <summary>The arguments without their first present required argument, and its name; null when none is present.</summary>
    internal static (JsonObject Arguments, string Name)? MissingRequiredMutation(JsonObject arguments, JsonObject schema)
    {
        var required = (schema["required"] as JsonArray)?.Select(r => r!.GetValue<string>()).FirstOrDefault(arguments.ContainsKey);
        if (required is null)
        {
            return null;
        }

        var dropped = arguments.DeepClone().AsObject();
        dropped.Remove(required);
        return (dropped, required);
    }

    /// <summary>The arguments with one argument the schema does not have.</summary>
    internal static (JsonObject Arguments, string Name) UnknownArgumentMutation(JsonObject arguments)
    {
        var extended = arguments.DeepClone().AsObject();
        extended[UnknownArgument] = true;
        return (extended, UnknownArgument);
    }

    private static JsonObject PickAccepted(JsonObject accepted, JsonObject? schema)
    {
        var required = (schema?["required"] as JsonArray)?.Select(r => r!.GetValue<string>()).ToHashSet(StringComparer.Ordinal) ?? [];
        var result = new JsonObject();
        foreach (var (name, values) in accepted)
        {
            if (values is not JsonArray options || options.Count == 0)
            {
                continue;
            }

            var isRequired = required.Contains(name);
            var first = options.FirstOrDefault(o => !IsOmitted(o)) ;
            if (IsOmitted(options[0]) && !isRequired)
            {
                continue;
            }

            if (first is null)
            {
                continue;
            }

            var propertySchema = schema?["properties"]?[name] as JsonObject;
            result[name] = Unwrap(first.DeepClone(), propertySchema);
        }

        return result;
    }

    private static bool IsOmitted(JsonNode? value) => value is JsonValue v && v.GetValueKind() == JsonValueKind.String && v.GetValue<string>().Length == 0;

    /// <summary>Nested dicts in answers are themselves maps of accepted-value lists.</summary>
    private static JsonNode Unwrap(JsonNode value, JsonObject? schema) => value switch
    {
        JsonObject obj when obj.All(p => p.Value is JsonArray) => PickAccepted(obj, schema),
        JsonArray array => new JsonArray(array.Select(item => item is null ? null : Unwrap(item.DeepClone(), schema?["items"] as JsonObject)).ToArray()),
        _ => value,
    };
}

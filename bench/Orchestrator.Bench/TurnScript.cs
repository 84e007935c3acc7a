using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Orchestrator.Bench;

/// <summary>
/// The one agent turn both <c>turn</c> (durable) and <c>turn-baseline</c> (Microsoft.Extensions.AI, in memory) play:
/// the user asks for a refund; the model's first reply proposes three reads and one write at once
/// (<c>lookup_order</c>, <c>get_customer</c>, <c>get_shipment</c>, <c>process_refund</c>); once every call has its
/// result the second reply answers in text. Both sides use the same tool schemas, the same argument strings, the same
/// tool work (<see cref="Execute"/>) and the same reply logic (<see cref="Reply"/>), so the only difference measured is
/// the turn machinery around them.
/// </summary>
internal static class TurnScript
{
    public const string UserMessage = "Please refund order A8472, it arrived broken. I am customer C1001.";
    public const string SystemPrompt = "You are a support agent. Use the tools; refunds need a human's confirmation.";
    public const string LookupOrder = "lookup_order";
    public const string GetCustomer = "get_customer";
    public const string GetShipment = "get_shipment";
    public const string ProcessRefund = "process_refund";

    /// <summary>Model calls per turn: the proposal and the final answer.</summary>
    public const int ModelCallsPerTurn = 2;

    /// <summary>Tool executions per turn: three reads and one write.</summary>
    public const int ToolCallsPerTurn = 4;

    public const string OrderSchema = """{"type":"object","properties":{"order_id":{"type":"string","pattern":"^A\\d{4,}$"}},"required":["order_id"],"additionalProperties":false}""";
    public const string CustomerSchema = """{"type":"object","properties":{"customer_id":{"type":"string","pattern":"^C\\d{4,}$"}},"required":["customer_id"],"additionalProperties":false}""";
    public const string RefundSchema = """{"type":"object","properties":{"order_id":{"type":"string","pattern":"^A\\d{4,}$"},"amount":{"type":"number","exclusiveMinimum":0,"maximum":10000}},"required":["order_id","amount"],"additionalProperties":false}""";

    /// <summary>The tools as the model sees them: name, description, argument schema, and whether the tool writes.</summary>
    public static readonly (string Name, string Description, string Schema, bool Write)[] Tools =
    [
        (LookupOrder, "Look up an order by its id.", OrderSchema, false),
        (GetCustomer, "Get a customer's profile by customer id.", CustomerSchema, false),
        (GetShipment, "Get the shipment of an order.", OrderSchema, false),
        (ProcessRefund, "Refund an amount of an order to the customer's card.", RefundSchema, true),
    ];

    /// <summary>The first reply's calls: (id, tool, raw argument string).</summary>
    public static readonly (string Id, string Name, string Arguments)[] ProposedCalls =
    [
        ("call_1", LookupOrder, """{"order_id":"A8472"}"""),
        ("call_2", GetCustomer, """{"customer_id":"C1001"}"""),
        ("call_3", GetShipment, """{"order_id":"A8472"}"""),
        ("call_4", ProcessRefund, """{"order_id":"A8472","amount":47.0}"""),
    ];

    /// <summary>What the model says once it has read every result.</summary>
    public const string FinalAnswerPrefix = "Done: order A8472 was refunded";

    /// <summary>
    /// What the scripted model replies, given the tool results the conversation holds so far (call id to content):
    /// none yet, the four calls; all four, the text answer. Anything else is a broken turn and throws, so a call
    /// dropped or answered twice fails the run loudly instead of being measured.
    /// </summary>
    public static ScriptedReply Reply(IReadOnlyDictionary<string, string> toolResults)
    {
        if (toolResults.Count == 0)
        {
            return new ScriptedReply(null, ProposedCalls);
        }

        var missing = ProposedCalls.Where(c => !toolResults.ContainsKey(c.Id)).Select(c => c.Id).ToArray();
        if (missing.Length > 0 || toolResults.Count != ProposedCalls.Length)
        {
            throw new InvalidOperationException($"the model was called with {toolResults.Count} tool results (missing: {string.Join(", ", missing)}); the script expects exactly one per proposed call.");
        }

        using JsonDocument refund = JsonDocument.Parse(toolResults["call_4"]);
        if (!refund.RootElement.TryGetProperty("status", out var status) || status.GetString() != "refunded")
        {
            throw new InvalidOperationException($"the refund call did not succeed: {toolResults["call_4"]}");
        }

        string amount = refund.RootElement.GetProperty("amount").GetDouble().ToString("0.00", CultureInfo.InvariantCulture);
        return new ScriptedReply($"{FinalAnswerPrefix} (${amount}); the shipment and your profile were checked.", []);
    }

    /// <summary>
    /// The work of a tool, the same on both sides: read the arguments, build the result JSON. The write also counts
    /// an effect in <paramref name="counters"/>.
    /// </summary>
    public static string Execute(string toolName, string arguments, TurnCounters counters)
    {
        counters.ToolCall(toolName);
        using JsonDocument doc = JsonDocument.Parse(arguments);
        JsonElement a = doc.RootElement;
        JsonObject result = toolName switch
        {
            LookupOrder => new JsonObject { ["order_id"] = a.GetProperty("order_id").GetString(), ["status"] = "delivered", ["total"] = 47.0, ["items"] = new JsonArray("kettle") },
            GetCustomer => new JsonObject { ["customer_id"] = a.GetProperty("customer_id").GetString(), ["name"] = "Ada Lovelace", ["tier"] = "gold" },
            GetShipment => new JsonObject { ["order_id"] = a.GetProperty("order_id").GetString(), ["carrier"] = "DHL", ["delivered"] = true, ["damaged"] = true },
            ProcessRefund => new JsonObject { ["order_id"] = a.GetProperty("order_id").GetString(), ["amount"] = a.GetProperty("amount").GetDouble(), ["status"] = "refunded" },
            _ => throw new InvalidOperationException($"the script has no tool '{toolName}'."),
        };
        return result.ToJsonString();
    }

    /// <summary>Waits the simulated model latency (real time: the bench measures wall time).</summary>
    public static Task SimulateLatencyAsync(TimeSpan latency, CancellationToken cancellationToken) =>
        latency > TimeSpan.Zero ? Task.Delay(latency, TimeProvider.System, cancellationToken) : Task.CompletedTask;
}

/// <summary>One scripted model reply: text, or tool calls (id, tool, raw arguments).</summary>
internal sealed record ScriptedReply(string? Text, IReadOnlyList<(string Id, string Name, string Arguments)> Calls);

/// <summary>What one side of the comparison actually did: model calls and tool executions, counted where they happen.</summary>
internal sealed class TurnCounters
{
    private int _modelCalls;
    private int _toolCalls;
    private int _writes;

    public int ModelCalls => Volatile.Read(ref _modelCalls);

    public int ToolCalls => Volatile.Read(ref _toolCalls);

    /// <summary>Effects of the write tool (refunds performed).</summary>
    public int Writes => Volatile.Read(ref _writes);

    public void ModelCall() => Interlocked.Increment(ref _modelCalls);

    public void ToolCall(string toolName)
    {
        Interlocked.Increment(ref _toolCalls);
        if (toolName == TurnScript.ProcessRefund)
        {
            Interlocked.Increment(ref _writes);
        }
    }

    public (int Model, int Tools, int Writes) Snapshot() => (ModelCalls, ToolCalls, Writes);
}

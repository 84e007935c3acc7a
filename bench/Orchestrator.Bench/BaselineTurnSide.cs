using System.Text.Json;
using Microsoft.Extensions.AI;

namespace Orchestrator.Bench;

/// <summary>The baseline's scripted model: an in-process <see cref="IChatClient"/> playing <see cref="TurnScript"/>.</summary>
internal sealed class ScriptedTurnChatClient(TimeSpan latency, TurnCounters counters) : IChatClient
{
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        counters.ModelCall();
        await TurnScript.SimulateLatencyAsync(latency, cancellationToken).ConfigureAwait(false);
        var results = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (AIContent content in messages.SelectMany(m => m.Contents))
        {
            if (content is FunctionResultContent r && !results.TryAdd(r.CallId, ResultText(r.Result)))
            {
                throw new InvalidOperationException($"call '{r.CallId}' has more than one result in the conversation.");
            }
        }

        ScriptedReply reply = TurnScript.Reply(results);
        ChatMessage message = reply.Calls.Count > 0
            ? new ChatMessage(ChatRole.Assistant, [.. reply.Calls.Select(c => (AIContent)new FunctionCallContent(c.Id, c.Name, ParseArguments(c.Arguments)))])
            : new ChatMessage(ChatRole.Assistant, reply.Text);
        return new ChatResponse(message)
        {
            FinishReason = reply.Calls.Count > 0 ? ChatFinishReason.ToolCalls : ChatFinishReason.Stop,
            ModelId = "scripted",
        };
    }

    public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("The bench's scripted model does not stream.");

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType.IsInstanceOfType(this) ? this : null;

    public void Dispose()
    {
    }

    /// <summary>The raw argument string parsed the way a real provider client does before handing calls to FunctionInvokingChatClient.</summary>
    private static Dictionary<string, object?> ParseArguments(string json) =>
        JsonSerializer.Deserialize<Dictionary<string, object?>>(json) ?? [];

    private static string ResultText(object? result) => result switch
    {
        string s => s,
        JsonElement { ValueKind: JsonValueKind.String } e => e.GetString() ?? string.Empty,
        JsonElement e => e.GetRawText(),
        null => string.Empty,
        _ => JsonSerializer.Serialize(result),
    };
}

/// <summary>A script tool as a Microsoft.Extensions.AI function: same name, description, schema and work as the durable side's.</summary>
internal sealed class ScriptedTurnFunction(string name, string description, string schema, TurnCounters counters) : AIFunction
{
    private readonly JsonElement _schema = JsonDocument.Parse(schema).RootElement.Clone();

    public override string Name => name;

    public override string Description => description;

    public override JsonElement JsonSchema => _schema;

    protected override ValueTask<object?> InvokeCoreAsync(AIFunctionArguments arguments, CancellationToken cancellationToken)
    {
        string json = JsonSerializer.Serialize<IDictionary<string, object?>>(arguments);
        return new ValueTask<object?>(TurnScript.Execute(name, json, counters));
    }
}

/// <summary>
/// The baseline turn: <see cref="FunctionInvokingChatClient"/> over <see cref="ScriptedTurnChatClient"/>, no durability.
/// The refund is an <see cref="ApprovalRequiredAIFunction"/>, Microsoft.Extensions.AI's own human-in-the-loop: the
/// client returns approval requests instead of running the calls, the caller approves them at once (as the durable side
/// approves its card at once) and calls again. Microsoft.Extensions.AI asks approval for every call of a reply that
/// holds one call needing it, so the baseline approves all four in one go; the reads then run with the write,
/// concurrently (<see cref="FunctionInvokingChatClient.AllowConcurrentInvocation"/>).
/// </summary>
internal sealed class BaselineTurnAgent : IDisposable
{
    private const int MaxApprovalRounds = 4;
    private readonly FunctionInvokingChatClient _client;
    private readonly ChatOptions _options;

    public BaselineTurnAgent(TimeSpan modelLatency, TurnCounters counters)
    {
#pragma warning disable CA2000 // FunctionInvokingChatClient disposes the inner client it wraps.
        _client = new FunctionInvokingChatClient(new ScriptedTurnChatClient(modelLatency, counters))
#pragma warning restore CA2000
        {
            AllowConcurrentInvocation = true,
        };
        _options = new ChatOptions
        {
            Tools = [.. TurnScript.Tools.Select(t =>
            {
                AIFunction f = new ScriptedTurnFunction(t.Name, t.Description, t.Schema, counters);
                return (AITool)(t.Write ? new ApprovalRequiredAIFunction(f) : f);
            })],
        };
    }

    /// <summary>Approval requests answered so far (all turns).</summary>
    public int ApprovalsGiven => Volatile.Read(ref _approvals);

    private int _approvals;

    /// <summary>Runs one turn to its text answer; throws when the script's turn did not end in the expected answer.</summary>
    public async Task<string> RunTurnAsync(CancellationToken cancellationToken)
    {
        List<ChatMessage> messages = [new(ChatRole.System, TurnScript.SystemPrompt), new(ChatRole.User, TurnScript.UserMessage)];
        ChatResponse response = await _client.GetResponseAsync(messages, _options, cancellationToken).ConfigureAwait(false);
        for (int round = 0; ; round++)
        {
            messages.AddRange(response.Messages);
            var requests = response.Messages.SelectMany(m => m.Contents).OfType<ToolApprovalRequestContent>().ToList();
            if (requests.Count == 0)
            {
                break;
            }

            if (round >= MaxApprovalRounds)
            {
                throw new InvalidOperationException($"the baseline turn asked for approvals {round} times; the script needs one round.");
            }

            Interlocked.Add(ref _approvals, requests.Count);
            messages.Add(new ChatMessage(ChatRole.User, [.. requests.Select(r => (AIContent)r.CreateResponse(approved: true))]));
            response = await _client.GetResponseAsync(messages, _options, cancellationToken).ConfigureAwait(false);
        }

        string text = response.Text;
        if (!text.StartsWith(TurnScript.FinalAnswerPrefix, StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"the baseline turn ended without the scripted answer: '{text}'.");
        }

        return text;
    }

    public void Dispose() => _client.Dispose();
}

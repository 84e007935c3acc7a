using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using OpenAI;
using OpenAI.Chat;

namespace Orchestrator.Agents.Models;

/// <summary>
/// <see cref="IChatModel"/> over the OpenAI .NET SDK's <see cref="ChatClient"/>, for any OpenAI-compatible server.
/// </summary>
/// <remarks>
/// The reply is taken from the wire response as sent: every tool call with its id and raw argument string (never
/// parsed here), the finish reason as a string (null when the server left it out, and values the SDK has no name
/// for are kept), usage and text. Tool calls are detected from the calls themselves, whatever the finish reason says;
/// a legacy <c>function_call</c> becomes a tool call whose id is derived from the response id. Thread-safe.
/// </remarks>
public sealed class OpenAIChatModel : IChatModel
{
    private readonly ChatClient _client;
    private readonly OpenAIChatModelOptions _options;
    private readonly ILogger _logger;

    /// <summary>Creates the client; throws <see cref="ArgumentException"/> when the options are invalid.</summary>
    public OpenAIChatModel(OpenAIChatModelOptions options, ILogger<OpenAIChatModel>? logger = null)
    {
        options.Validate();
        _options = options;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _client = new ChatClient(options.Model, new ApiKeyCredential(options.ApiKey), new OpenAIClientOptions
        {
            Endpoint = options.BaseUrl,
            NetworkTimeout = options.NetworkTimeout,
            RetryPolicy = new ClientRetryPolicy(options.MaxRetries),
        });
    }

    /// <inheritdoc />
    public async Task<ModelReply> CompleteAsync(ModelRequest request, CancellationToken cancellationToken)
    {
        using BinaryContent body = BuildBody(request);
        PipelineResponse raw;
        try
        {
            // The protocol method: the SDK's typed reader rejects shapes that real servers send (a null finish_reason,
            // arguments as an object), and a reply must never be lost to that, so the body is read here instead.
            ClientResult result = await _client.CompleteChatAsync(body, new RequestOptions { CancellationToken = cancellationToken }).ConfigureAwait(false);
            raw = result.GetRawResponse();
        }
        catch (ClientResultException e)
        {
            // The status is the one fact that tells a transient failure from a request the server will always refuse.
            bool transient = e.Status is 0 or 408 or 429 or >= 500;
            Log.ModelCallFailed(_logger, _options.Model, e.Status, transient);
            throw new ModelCallException($"The model call failed with HTTP {e.Status}: {e.Message}", e.Status == 0 ? null : e.Status, transient, e);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Log.ModelCallFailed(_logger, _options.Model, 0, true);
            throw new ModelCallException("The model call timed out.", null, isTransient: true);
        }
        catch (HttpRequestException e)
        {
            Log.ModelCallFailed(_logger, _options.Model, 0, true);
            throw new ModelCallException("The model endpoint could not be reached: " + e.Message, null, isTransient: true, e);
        }

        ModelReply reply = WireReply.Read(raw.Content);
        Log.ModelReplied(_logger, reply.Model ?? _options.Model, reply.ToolCalls.Count, reply.FinishReason ?? "(absent)", reply.Usage?.TotalTokens ?? 0);
        return reply;
    }

    // The request is written by the SDK's own serializers (options, each message) and only assembled here, so the wire
    // format is the SDK's: what the convenience method would send.
    private BinaryContent BuildBody(ModelRequest request)
    {
        JsonObject body = JsonNode.Parse(ModelReaderWriter.Write(BuildOptions(request)).ToString())!.AsObject();
        body["model"] = _options.Model;
        var messages = new JsonArray();
        foreach (ModelMessage message in request.Messages)
        {
            messages.Add(JsonNode.Parse(ModelReaderWriter.Write(ToSdk(message)).ToString()));
        }

        body["messages"] = messages;
        return BinaryContent.Create(BinaryData.FromString(body.ToJsonString()));
    }

    private ChatCompletionOptions BuildOptions(ModelRequest request)
    {
        var options = new ChatCompletionOptions
        {
            MaxOutputTokenCount = _options.MaxOutputTokens,
            Temperature = _options.Temperature,
        };
        foreach (ModelToolDefinition tool in request.Tools)
        {
            options.Tools.Add(ChatTool.CreateFunctionTool(tool.Name, tool.Description, BinaryData.FromString(tool.ParametersSchema)));
        }

        // tool_choice and parallel_tool_calls are only legal alongside tools; OpenAI rejects them otherwise.
        if (request.Tools.Count > 0)
        {
            ModelToolChoice choice = request.ToolChoice ?? _options.ToolChoice;
            options.ToolChoice = choice.Kind switch
            {
                ModelToolChoiceKind.None => ChatToolChoice.CreateNoneChoice(),
                ModelToolChoiceKind.Required => ChatToolChoice.CreateRequiredChoice(),
                ModelToolChoiceKind.Function => ChatToolChoice.CreateFunctionChoice(choice.FunctionName!),
                _ => ChatToolChoice.CreateAutoChoice(),
            };
            options.AllowParallelToolCalls = _options.ParallelToolCalls;
        }

        return options;
    }

    private static ChatMessage ToSdk(ModelMessage message)
    {
        switch (message.Role)
        {
            case ModelRole.System:
                return new SystemChatMessage(message.Content ?? string.Empty);
            case ModelRole.User:
                return new UserChatMessage(message.Content ?? string.Empty);
            case ModelRole.Tool:
                return new ToolChatMessage(
                    message.ToolCallId ?? throw new ArgumentException("A tool message needs the ToolCallId it answers.", nameof(message)),
                    message.Content ?? string.Empty);
            case ModelRole.Assistant when message.ToolCalls.Count == 0:
                return new AssistantChatMessage(message.Content ?? string.Empty);
            case ModelRole.Assistant:
                // Arguments go back byte for byte as the model sent them, malformed or not, so the model sees its own call.
                var assistant = new AssistantChatMessage(message.ToolCalls.Select(c =>
                    ChatToolCall.CreateFunctionToolCall(c.Id, c.Name, BinaryData.FromString(c.Arguments))));
                if (!string.IsNullOrEmpty(message.Content))
                {
                    assistant.Content.Add(ChatMessageContentPart.CreateTextPart(message.Content));
                }

                return assistant;
            default:
                throw new ArgumentException($"Unknown role {message.Role}.", nameof(message));
        }
    }
}

/// <summary>Reads the facts of a reply from the response body exactly as the server sent them.</summary>
internal static class WireReply
{
    public static ModelReply Read(BinaryData body)
    {
        try
        {
            using JsonDocument doc = JsonDocument.Parse(body);
            return Read(doc.RootElement);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException)
        {
            throw new ModelCallException("The model endpoint sent a response that is not a chat completion: " + e.Message, 200, isTransient: false, e);
        }
    }

    private static ModelReply Read(JsonElement root)
    {
        JsonElement choice = root.GetProperty("choices")[0];
        JsonElement message = choice.GetProperty("message");
        var calls = new List<ModelToolCall>();
        if (message.TryGetProperty("tool_calls", out JsonElement toolCalls) && toolCalls.ValueKind == JsonValueKind.Array)
        {
            int index = 0;
            foreach (JsonElement call in toolCalls.EnumerateArray())
            {
                JsonElement function = call.TryGetProperty("function", out JsonElement f) ? f : default;
                calls.Add(new ModelToolCall(
                    Str(call, "id") ?? SyntheticId(root, index),
                    Str(function, "name") ?? string.Empty,
                    RawArguments(function)));
                index++;
            }
        }

        if (message.TryGetProperty("function_call", out JsonElement legacy) && legacy.ValueKind == JsonValueKind.Object)
        {
            calls.Add(new ModelToolCall(SyntheticId(root, calls.Count), Str(legacy, "name") ?? string.Empty, RawArguments(legacy)));
        }

        string? finish = choice.TryGetProperty("finish_reason", out JsonElement fr) && fr.ValueKind == JsonValueKind.String ? fr.GetString() : null;
        ModelUsage? usage = null;
        if (root.TryGetProperty("usage", out JsonElement u) && u.ValueKind == JsonValueKind.Object)
        {
            int input = Int(u, "prompt_tokens");
            int output = Int(u, "completion_tokens");
            usage = new ModelUsage(input, output, u.TryGetProperty("total_tokens", out _) ? Int(u, "total_tokens") : input + output);
        }

        return new ModelReply
        {
            Text = Text(message),
            ToolCalls = calls,
            FinishReason = finish,
            IsTruncated = finish == "length",
            Refusal = Str(message, "refusal"),
            Usage = usage,
            Model = Str(root, "model"),
            ResponseId = Str(root, "id"),
        };
    }

    // Some servers send arguments as a JSON object instead of a string; keep its text so nothing is lost.
    private static string RawArguments(JsonElement function) =>
        function.ValueKind == JsonValueKind.Object && function.TryGetProperty("arguments", out JsonElement a)
            ? a.ValueKind == JsonValueKind.String ? a.GetString()! : a.ValueKind == JsonValueKind.Null ? string.Empty : a.GetRawText()
            : string.Empty;

    // A call without an id (legacy function_call, or a lax server) still needs one to be answered; derive it from the
    // response so that it is stable when the reply is replayed from history.
    private static string SyntheticId(JsonElement root, int index) => $"call_{Str(root, "id") ?? "reply"}_{index}";

    private static string? Text(JsonElement message)
    {
        if (!message.TryGetProperty("content", out JsonElement c))
        {
            return null;
        }

        if (c.ValueKind == JsonValueKind.String)
        {
            return c.GetString();
        }

        if (c.ValueKind == JsonValueKind.Array)
        {
            return string.Concat(c.EnumerateArray().Select(p => Str(p, "text")));
        }

        return null;
    }

    private static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static int Int(JsonElement e, string name) =>
        e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : 0;
}

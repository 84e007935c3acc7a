using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Orchestrator.Agents.Models.Scripted;

/// <summary>Options of a <see cref="ScriptedChatServer"/>.</summary>
public sealed record ScriptedChatServerOptions
{
    /// <summary>Latency added before every reply (an entry's own latency replaces it). Default zero.</summary>
    public TimeSpan Latency { get; init; } = TimeSpan.Zero;

    /// <summary>The clock for latency and the <c>created</c> stamp. Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>When set, requests must carry <c>Authorization: Bearer KEY</c>, else 401 (as a real service would).</summary>
    public string? RequiredApiKey { get; init; }

    /// <summary>
    /// Record mode: forward every request to this OpenAI-compatible base URL (for example <c>https://api.openai.com/v1/</c>)
    /// instead of playing the script, and record each reply into <see cref="ScriptedChatServer.RecordedScript"/>.
    /// </summary>
    public Uri? RecordFrom { get; init; }

    /// <summary>The API key sent upstream in record mode.</summary>
    public string? RecordApiKey { get; init; }

    /// <summary>The port on 127.0.0.1; 0 (default) picks a free one.</summary>
    public int Port { get; init; }

    /// <summary>Where unmatched requests are logged. Default none.</summary>
    public ILoggerFactory LoggerFactory { get; init; } = NullLoggerFactory.Instance;

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(Latency, TimeSpan.Zero, nameof(Latency));
        ArgumentOutOfRangeException.ThrowIfNegative(Port, nameof(Port));
        if (RecordFrom is { IsAbsoluteUri: false })
        {
            throw new ArgumentException("RecordFrom must be an absolute URL.", nameof(RecordFrom));
        }
    }
}

/// <summary>
/// An in-process OpenAI-compatible endpoint on 127.0.0.1 that answers <c>POST /v1/chat/completions</c> (non-streaming)
/// from a <see cref="ChatScript"/> and records every request, so tests exercise the real SDK and wire format.
/// </summary>
/// <remarks>
/// Thread-safe: concurrent requests each take the next matching entry under a lock. A request no entry answers gets
/// HTTP 400 with error type <c>script_no_match</c> (not retried by clients) and is listed in <see cref="Unmatched"/>.
/// Also answers <c>GET /v1/models</c>.
/// </remarks>
public sealed class ScriptedChatServer : IAsyncDisposable
{
    private readonly ChatScript _script;
    private readonly ScriptedChatServerOptions _options;
    private readonly WebApplication _app;
    private readonly ILogger _logger;
    private readonly HttpClient? _upstream;
    private readonly Lock _gate = new();
    private readonly bool[] _used;
    private readonly List<RecordedChatRequest> _requests = [];
    private readonly List<ScriptEntry> _recorded = [];
    private int _disposed;

    private ScriptedChatServer(ChatScript script, ScriptedChatServerOptions options, WebApplication app)
    {
        _script = script;
        _options = options;
        _app = app;
        _used = new bool[script.Entries.Count];
        _logger = options.LoggerFactory.CreateLogger<ScriptedChatServer>();
        if (options.RecordFrom is not null)
        {
            _upstream = new HttpClient { BaseAddress = WithTrailingSlash(options.RecordFrom), Timeout = TimeSpan.FromMinutes(5) };
        }

        BaseUrl = new Uri("http://127.0.0.1/v1/");
    }

    /// <summary>The base URL to give an OpenAI client, for example <c>http://127.0.0.1:40123/v1/</c>.</summary>
    public Uri BaseUrl { get; private set; }

    /// <summary>A snapshot of the requests received so far, in arrival order.</summary>
    public IReadOnlyList<RecordedChatRequest> Requests
    {
        get
        {
            lock (_gate)
            {
                return [.. _requests];
            }
        }
    }

    /// <summary>The requests that no entry answered.</summary>
    public IReadOnlyList<RecordedChatRequest> Unmatched
    {
        get
        {
            lock (_gate)
            {
                return [.. _requests.Where(r => r.MatchedEntry is null && _upstream is null)];
            }
        }
    }

    /// <summary>The entries not yet used (repeating entries never count): empty when a script has played out.</summary>
    public IReadOnlyList<ScriptEntry> Unplayed
    {
        get
        {
            lock (_gate)
            {
                return [.. _script.Entries.Where((e, i) => !e.Repeat && !_used[i])];
            }
        }
    }

    /// <summary>In record mode, the replies recorded so far as a cassette that replays them in order.</summary>
    public ChatScript RecordedScript
    {
        get
        {
            lock (_gate)
            {
                return new ChatScript(_recorded);
            }
        }
    }

    /// <summary>Starts a server on 127.0.0.1 that plays <paramref name="script"/>.</summary>
    public static async Task<ScriptedChatServer> StartAsync(ChatScript script, ScriptedChatServerOptions? options, CancellationToken cancellationToken)
    {
        options ??= new ScriptedChatServerOptions();
        options.Validate();
        WebApplicationBuilder builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(IPAddress.Loopback, options.Port));
        builder.Services.AddSingleton(options.LoggerFactory);
        WebApplication app = builder.Build();
        var server = new ScriptedChatServer(script, options, app);
        app.Run(server.HandleAsync);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.BaseUrl = new Uri(new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal)), "/v1/");
        return server;
    }

    /// <summary>Starts a server that plays the cassette at <paramref name="path"/>.</summary>
    public static async Task<ScriptedChatServer> StartFromFileAsync(string path, ScriptedChatServerOptions? options, CancellationToken cancellationToken)
    {
        ChatScript script = await ChatScript.LoadAsync(path, cancellationToken).ConfigureAwait(false);
        return await StartAsync(script, options, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops listening.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _app.StopAsync(CancellationToken.None).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _upstream?.Dispose();
    }

    private async Task HandleAsync(HttpContext http)
    {
        HttpRequest req = http.Request;
        CancellationToken ct = http.RequestAborted;
        if (HttpMethods.IsGet(req.Method) && req.Path == "/v1/models")
        {
            await WriteJsonAsync(http.Response, 200, w =>
            {
                w.WriteString("object", "list");
                w.WriteStartArray("data");
                w.WriteStartObject();
                w.WriteString("id", _script.Model ?? "scripted-model");
                w.WriteString("object", "model");
                w.WriteString("owned_by", "scripted");
                w.WriteEndObject();
                w.WriteEndArray();
            }, ct).ConfigureAwait(false);
            return;
        }

        if (!(HttpMethods.IsPost(req.Method) && req.Path == "/v1/chat/completions"))
        {
            await WriteErrorAsync(http.Response, 404, $"No route {req.Method} {req.Path}.", "not_found", ct).ConfigureAwait(false);
            return;
        }

        string authorization = req.Headers.Authorization.ToString();
        if (_options.RequiredApiKey is not null && authorization != "Bearer " + _options.RequiredApiKey)
        {
            await WriteErrorAsync(http.Response, 401, "Incorrect API key provided.", "invalid_api_key", ct).ConfigureAwait(false);
            return;
        }

        string body;
        using (var reader = new StreamReader(req.Body, Encoding.UTF8))
        {
            body = await reader.ReadToEndAsync(ct).ConfigureAwait(false);
        }

        RecordedChatRequest recorded;
        try
        {
            using JsonDocument doc = JsonDocument.Parse(body);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new JsonException("The body must be a JSON object.");
            }

            lock (_gate)
            {
                recorded = new RecordedChatRequest(_requests.Count + 1, body, authorization.Length == 0 ? null : authorization, doc.RootElement);
                _requests.Add(recorded);
            }
        }
        catch (JsonException e)
        {
            await WriteErrorAsync(http.Response, 400, "The request body is not valid JSON: " + e.Message, "invalid_request_error", ct).ConfigureAwait(false);
            return;
        }

        if (recorded.Stream)
        {
            await WriteErrorAsync(http.Response, 400, "The scripted endpoint does not stream; send stream=false.", "invalid_request_error", ct).ConfigureAwait(false);
            return;
        }

        if (_upstream is not null)
        {
            await ForwardAndRecordAsync(http, body, ct).ConfigureAwait(false);
            return;
        }

        ScriptEntry? entry = null;
        lock (_gate)
        {
            for (int i = 0; i < _script.Entries.Count; i++)
            {
                ScriptEntry candidate = _script.Entries[i];
                if ((candidate.Repeat || !_used[i]) && (candidate.When?.IsMatch(recorded) ?? true))
                {
                    _used[i] = true;
                    recorded.MatchedEntry = i;
                    entry = candidate;
                    break;
                }
            }
        }

        if (entry is null)
        {
            Log.NoEntryMatched(_logger, recorded.Number, recorded.Messages.Count > 0 ? recorded.Messages[^1].Role : "none");
            await WriteErrorAsync(
                http.Response,
                400,
                $"Scripted model: no script entry matches request #{recorded.Number} (last message role '{(recorded.Messages.Count > 0 ? recorded.Messages[^1].Role : "none")}'), or the script has played out.",
                "script_no_match",
                ct).ConfigureAwait(false);
            return;
        }

        TimeSpan latency = entry.Latency ?? _options.Latency;
        if (latency > TimeSpan.Zero)
        {
            await Task.Delay(latency, _options.TimeProvider, ct).ConfigureAwait(false);
        }

        if (entry.Error is { } error)
        {
            if (error.RetryAfterSeconds is int seconds)
            {
                http.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            await WriteErrorAsync(http.Response, error.Status, error.Message, error.Type, ct).ConfigureAwait(false);
        }
        else if (entry.Raw is { } raw)
        {
            http.Response.StatusCode = entry.RawStatus;
            http.Response.ContentType = "application/json";
            await http.Response.WriteAsync(raw, ct).ConfigureAwait(false);
        }
        else
        {
            await WriteCompletionAsync(http.Response, recorded, entry.Reply!, ct).ConfigureAwait(false);
        }
    }

    private Task WriteCompletionAsync(HttpResponse response, RecordedChatRequest request, ScriptReply reply, CancellationToken ct) =>
        WriteJsonAsync(response, 200, w =>
        {
            w.WriteString("id", "chatcmpl-scripted-" + request.Number.ToString(System.Globalization.CultureInfo.InvariantCulture));
            w.WriteString("object", "chat.completion");
            w.WriteNumber("created", _options.TimeProvider.GetUtcNow().ToUnixTimeSeconds());
            w.WriteString("model", _script.Model ?? request.Model ?? "scripted-model");
            w.WriteStartArray("choices");
            w.WriteStartObject();
            w.WriteNumber("index", 0);
            w.WriteStartObject("message");
            w.WriteString("role", "assistant");
            w.WriteString("content", reply.Content);
            if (reply.ToolCalls.Count > 0)
            {
                w.WriteStartArray("tool_calls");
                foreach (ScriptedToolCall call in reply.ToolCalls)
                {
                    w.WriteStartObject();
                    w.WriteString("id", call.Id);
                    w.WriteString("type", "function");
                    w.WriteStartObject("function");
                    w.WriteString("name", call.Name);
                    w.WriteString("arguments", call.Arguments);
                    w.WriteEndObject();
                    w.WriteEndObject();
                }

                w.WriteEndArray();
            }

            if (reply.FunctionCall is { } fc)
            {
                w.WriteStartObject("function_call");
                w.WriteString("name", fc.Name);
                w.WriteString("arguments", fc.Arguments);
                w.WriteEndObject();
            }

            w.WriteEndObject();
            w.WriteNull("logprobs");
            if (reply.FinishReason is not null)
            {
                w.WriteString("finish_reason", reply.FinishReason);
            }
            else if (reply.FinishReasonIsNull)
            {
                w.WriteNull("finish_reason");
            }

            w.WriteEndObject();
            w.WriteEndArray();
            if (reply.Usage is { } u)
            {
                w.WriteStartObject("usage");
                w.WriteNumber("prompt_tokens", u.PromptTokens);
                w.WriteNumber("completion_tokens", u.CompletionTokens);
                w.WriteNumber("total_tokens", u.TotalTokens ?? (u.PromptTokens + u.CompletionTokens));
                w.WriteEndObject();
            }
        }, ct);

    private async Task ForwardAndRecordAsync(HttpContext http, string body, CancellationToken ct)
    {
        using var upstreamRequest = new HttpRequestMessage(HttpMethod.Post, "chat/completions")
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };
        if (_options.RecordApiKey is not null)
        {
            upstreamRequest.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _options.RecordApiKey);
        }

        using HttpResponseMessage upstreamResponse = await _upstream!.SendAsync(upstreamRequest, ct).ConfigureAwait(false);
        string responseBody = await upstreamResponse.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        int status = (int)upstreamResponse.StatusCode;
        ScriptEntry entry = CassetteRecorder.ToEntry(status, responseBody);
        lock (_gate)
        {
            _recorded.Add(entry);
        }

        http.Response.StatusCode = status;
        http.Response.ContentType = "application/json";
        await http.Response.WriteAsync(responseBody, ct).ConfigureAwait(false);
    }

    private static async Task WriteErrorAsync(HttpResponse response, int status, string message, string type, CancellationToken ct) =>
        await WriteJsonAsync(response, status, w =>
        {
            w.WriteStartObject("error");
            w.WriteString("message", message);
            w.WriteString("type", type);
            w.WriteNull("param");
            w.WriteNull("code");
            w.WriteEndObject();
        }, ct).ConfigureAwait(false);

    private static async Task WriteJsonAsync(HttpResponse response, int status, Action<Utf8JsonWriter> writeMembers, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            writeMembers(w);
            w.WriteEndObject();
        }

        response.StatusCode = status;
        response.ContentType = "application/json";
        response.ContentLength = buffer.Length;
        await response.Body.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), ct).ConfigureAwait(false);
    }

    private static Uri WithTrailingSlash(Uri uri) =>
        uri.AbsoluteUri.EndsWith('/') ? uri : new Uri(uri.AbsoluteUri + "/");
}

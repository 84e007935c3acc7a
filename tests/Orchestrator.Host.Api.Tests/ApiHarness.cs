using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Orchestrator.Agents;

namespace Orchestrator.Host.Api.Tests;

/// <summary>The real host (Kestrel on a free loopback port) with the test agent, on SQLite in a temp folder or on Azurite.</summary>
internal sealed class ApiHarness : IAsyncDisposable
{
    public const string ManagementKey = "test-management-key-0123456789";
    public const string Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    public const string OldSecret = "whsec_b2xkIHNlY3JldCBrZXkgZm9yIHJvdGF0aW9u";

    private ApiHarness(ServeHost host, TestAgent agent, ServeOptions options)
    {
        this.Host = host;
        this.Agent = agent;
        this.Options = options;
        this.Http = new HttpClient { BaseAddress = new Uri(host.Addresses[0]), Timeout = TimeSpan.FromSeconds(30) };
    }

    public ServeHost Host { get; }

    public TestAgent Agent { get; }

    public ServeOptions Options { get; }

    public HttpClient Http { get; }

    public static Task<ApiHarness> StartSqliteAsync(string? dataSource = null, TestAgent? agent = null, ApiSettings? api = null, TimeProvider? apiClock = null) =>
        StartAsync(new HostSettings(), dataSource ?? Path.Combine(Directory.CreateTempSubdirectory("api-tests-").FullName, "orchestrator.db"), agent, api, apiClock);

    /// <param name="definition">Another agent than <paramref name="agent"/>'s to run (its tools and handlers).</param>
    public static async Task<ApiHarness> StartAsync(HostSettings settings, string? dataSource, TestAgent? agent = null, ApiSettings? api = null, TimeProvider? apiClock = null, AgentDefinition? definition = null)
    {
        agent ??= new TestAgent();
        definition ??= agent.Definition();
        var options = new ServeOptions
        {
            Settings = settings,
            Api = api ?? new ApiSettings { ManagementKey = ManagementKey, WebhookSecrets = [Secret] },
            Urls = ["http://127.0.0.1:0"],
            DataSource = dataSource,
            CreateAgent = (_, _, _) => Task.FromResult(new HostAgentRuntime(definition)),
            WorkerMaxPollingInterval = TimeSpan.FromMilliseconds(50),
            TimeProvider = apiClock ?? TimeProvider.System,
            ConfigureLogging = logging => logging.ClearProviders().SetMinimumLevel(LogLevel.Warning),
        };
        return new ApiHarness(await ServeHost.StartAsync(options, CancellationToken.None), agent, options);
    }

    public async ValueTask DisposeAsync()
    {
        this.Http.Dispose();
        await this.Host.DisposeAsync();
    }

    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    public async Task<HttpResponseMessage> PostMessageAsync(string conversationId, string text, string? idempotencyKey = null, string? token = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/conversations/{conversationId}/messages") { Content = Json(JsonSerializer.Serialize(new { text })) };
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }

        if (token is not null)
        {
            request.Headers.Add("x-conversation-token", token);
        }

        return await this.Http.SendAsync(request);
    }

    /// <summary>Starts a conversation with a message and returns the 202 body.</summary>
    public async Task<JsonObject> StartAsync(string conversationId, string text)
    {
        using HttpResponseMessage response = await this.PostMessageAsync(conversationId, text);
        Assert.Equal(System.Net.HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonObject>())!;
    }

    public async Task<JsonNode> GetJsonAsync(string url, bool management = false)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (management)
        {
            request.Headers.Add("x-management-key", ManagementKey);
        }

        using HttpResponseMessage response = await this.Http.SendAsync(request);
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"GET {url}: {(int)response.StatusCode} {body}");
        return JsonNode.Parse(body)!;
    }

    public Task<JsonNode> StatusAsync(string conversationId) => this.GetJsonAsync($"/api/conversations/{conversationId}", management: true);

    /// <summary>Polls the conversation's status until <paramref name="condition"/> holds (bounded).</summary>
    public async Task<JsonNode> StatusEventuallyAsync(string conversationId, Func<JsonNode, bool> condition, string because, TimeSpan? timeout = null)
    {
        JsonNode? last = null;
        await Eventually.Async(
            async () =>
            {
                // Not found yet (a queued message not handled yet) is "not yet", anything else but 200 fails.
                using var request = new HttpRequestMessage(HttpMethod.Get, $"/api/conversations/{conversationId}") { Headers = { { "x-management-key", ManagementKey } } };
                using HttpResponseMessage response = await this.Http.SendAsync(request);
                if (response.StatusCode == System.Net.HttpStatusCode.NotFound)
                {
                    return false;
                }

                Assert.True(response.IsSuccessStatusCode, $"GET status of {conversationId}: {(int)response.StatusCode}");
                return condition(last = JsonNode.Parse(await response.Content.ReadAsStringAsync())!);
            },
            because,
            timeout);
        return last!;
    }

    /// <summary>Waits until the current turn waits for confirmation of <paramref name="toolCallId"/>; returns that pending entry.</summary>
    public async Task<JsonNode> PendingEventuallyAsync(string conversationId, string toolCallId = "call_refund")
    {
        JsonNode status = await this.StatusEventuallyAsync(
            conversationId,
            s => s["currentTurn"]?["pendingConfirmations"]?.AsArray().Any(p => (string?)p!["toolCallId"] == toolCallId) == true,
            $"{toolCallId} waits for confirmation");
        return status["currentTurn"]!["pendingConfirmations"]!.AsArray().First(p => (string?)p!["toolCallId"] == toolCallId)!;
    }

    public static string Signed(HttpRequestMessage request, string webhookId, long timestamp, string body, params string[] secrets)
    {
        string signature = string.Join(' ', secrets.Select(s => StandardWebhookVerifier.Sign(s, webhookId, timestamp, Encoding.UTF8.GetBytes(body))));
        request.Headers.Add("webhook-id", webhookId);
        request.Headers.Add("webhook-timestamp", timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
        request.Headers.Add("webhook-signature", signature);
        return signature;
    }

    public async Task<(int Status, string Body, HttpResponseMessage Response)> SendWebhookAsync(string conversationId, string toolCallId, string body, string webhookId, long? timestamp = null, string[]? secrets = null, bool sign = true)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/conversations/{conversationId}/confirmations/{toolCallId}") { Content = Json(body) };
        if (sign)
        {
            Signed(request, webhookId, timestamp ?? DateTimeOffset.UtcNow.ToUnixTimeSeconds(), body, secrets ?? [Secret]);
        }

        HttpResponseMessage response = await this.Http.SendAsync(request);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(), response);
    }

    public async Task<(int Status, string Body)> ApproveAsync(string turnInstanceId, string toolCallId, object body, bool management = true)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/approvals/{turnInstanceId}/{toolCallId}") { Content = Json(JsonSerializer.Serialize(body)) };
        if (management)
        {
            request.Headers.Add("x-management-key", ManagementKey);
        }

        using HttpResponseMessage response = await this.Http.SendAsync(request);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }
}

internal static class Eventually
{
    public static Task Async(Func<Task<bool>> condition, string because, TimeSpan? timeout = null) =>
        TestWait.EventuallyAsync(condition, timeout, because);
}

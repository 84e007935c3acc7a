using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Azure.Storage.Queues;
using Azure.Storage.Queues.Models;
using Orchestrator.Testing;

namespace Orchestrator.Host.Api.Tests;

/// <summary>Azurite for the Azure Storage tests of the host.</summary>
public sealed class AzuriteFixture : IAsyncLifetime
{
    private AzuriteInstance? instance;

    public string ConnectionString => this.instance?.ConnectionString ?? string.Empty;

    public async Task InitializeAsync() => this.instance = await AzuriteInstance.AcquireAsync("azurite-host-api-", CancellationToken.None);

    public Task DisposeAsync()
    {
        this.instance?.Dispose();
        return Task.CompletedTask;
    }

    public static string NewName(string tag)
    {
#pragma warning disable RS0030 // test-only unique names
        return tag + Guid.NewGuid().ToString("N")[..10];
#pragma warning restore RS0030
    }
}

[CollectionDefinition(Name)]
public sealed class AzuriteCollection : ICollectionFixture<AzuriteFixture>
{
    public const string Name = "Azurite";
}

[Collection(AzuriteCollection.Name)]
public sealed class AzureStorageApiTests(AzuriteFixture azurite)
{
    private HostSettings Settings() => new() { StorageConnectionString = azurite.ConnectionString, HubName = AzuriteFixture.NewName("apihub"), PartitionCount = 2 };

    [Fact(Timeout = 180_000)]
    public async Task MessageThenSignedWebhook_OnAzureStorage_WaitsThenRunsOnceAndKeysAreDeduplicated()
    {
        HostSettings settings = Settings();
        await using ApiHarness api = await ApiHarness.StartAsync(settings, dataSource: null);

        using HttpResponseMessage first = await api.PostMessageAsync("conv-az", "refund A8472", idempotencyKey: "az-key");
        using HttpResponseMessage retry = await api.PostMessageAsync("conv-az", "refund A8472", idempotencyKey: "az-key");
        using HttpResponseMessage reused = await api.PostMessageAsync("conv-az", "other", idempotencyKey: "az-key");

        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal(await first.Content.ReadAsStringAsync(), await retry.Content.ReadAsStringAsync());
        Assert.True(retry.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal((HttpStatusCode)422, reused.StatusCode);
        string hash = (string)(await api.PendingEventuallyAsync("conv-az"))["argumentsHash"]!;
        string body = JsonSerializer.Serialize(new { decision = "approve", argumentsHash = new string('b', 64) });
        var mismatched = await api.SendWebhookAsync("conv-az", "call_refund", body, "az_msg_0");
        Assert.Equal(409, mismatched.Status);
        Assert.Equal("awaiting_confirmation", (string?)(await api.StatusAsync("conv-az"))["currentTurn"]!["phase"]);

        JsonNode listed = Assert.Single((await api.GetJsonAsync("/api/confirmations", management: true)).AsArray())!;
        Assert.Equal("conv-az", (string?)listed["conversationId"]);
        Assert.Equal(hash, (string?)listed["argumentsHash"]);

        body = JsonSerializer.Serialize(new { decision = "approve", argumentsHash = hash });
        var approved = await api.SendWebhookAsync("conv-az", "call_refund", body, "az_msg_1");
        var replayed = await api.SendWebhookAsync("conv-az", "call_refund", body, "az_msg_1");

        Assert.Equal(202, approved.Status);
        Assert.Equal(202, replayed.Status);
        Assert.True(replayed.Response.Headers.Contains("Idempotent-Replayed"));
        await api.StatusEventuallyAsync("conv-az", s => (int?)s["turns"] == 1 && s["currentTurn"] is null, "turn completed", TimeSpan.FromSeconds(90));
        Assert.Equal(1, Assert.Single(api.Agent.Refunds).Value);
        JsonNode transcript = await api.GetJsonAsync("/api/conversations/conv-az/transcript", management: true);
        Assert.Contains(transcript["messages"]!.AsArray(), m => (string?)m!["toolCallId"] == "call_refund");
        Assert.Empty((await api.GetJsonAsync("/api/confirmations", management: true)).AsArray());
        JsonNode ready = await api.GetJsonAsync("/readyz");
        Assert.Equal("Healthy", (string?)ready["status"]);
    }

    [Fact(Timeout = 180_000)]
    public async Task QueueTrigger_ValidDuplicateMalformedAndFailingMessages_StartOnceOrGoToPoison()
    {
        HostSettings settings = Settings();
        string queueName = AzuriteFixture.NewName("turns-");
        var apiSettings = new ApiSettings
        {
            ManagementKey = ApiHarness.ManagementKey,
            WebhookSecrets = [ApiHarness.Secret],
            QueueName = queueName,
            MaxDequeueCount = 2,
            VisibilityTimeout = TimeSpan.Zero,
            MaxPollingInterval = TimeSpan.FromMilliseconds(200),
        };
        await using ApiHarness api = await ApiHarness.StartAsync(settings, dataSource: null, api: apiSettings);
        var queue = new QueueClient(azurite.ConnectionString, queueName);
        var poison = new QueueClient(azurite.ConnectionString, queueName + "-poison");

        // A valid message, the same message again (same messageId), and a base64-encoded one as Functions sends.
        string valid = JsonSerializer.Serialize(new { conversationId = "conv-q", text = "hello", messageId = "m-1" });
        await queue.SendMessageAsync(valid);
        await queue.SendMessageAsync(valid);
        await queue.SendMessageAsync(Convert.ToBase64String(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { conversationId = "conv-q2", text = "hi there", messageId = "m-2" }))));
        // Malformed: not JSON, and a bad conversation id.
        await queue.SendMessageAsync("this is not json {");
        await queue.SendMessageAsync(JsonSerializer.Serialize(new { conversationId = "bad:id", text = "x" }));

        await api.StatusEventuallyAsync("conv-q", s => (int?)s["turns"] == 1 && s["currentTurn"] is null, "queue message answered", TimeSpan.FromSeconds(90));
        await api.StatusEventuallyAsync("conv-q2", s => (int?)s["turns"] == 1 && s["currentTurn"] is null, "base64 queue message answered", TimeSpan.FromSeconds(90));
        List<JsonNode> poisoned = await PoisonEventuallyAsync(poison, 2);
        Assert.Contains(poisoned, p => ((string)p["reason"]!).StartsWith("malformed: the message is", StringComparison.Ordinal) && (string?)p["message"] == "this is not json {");
        Assert.Contains(poisoned, p => ((string)p["reason"]!).Contains("conversationId", StringComparison.Ordinal));
        Assert.All(poisoned, p => Assert.Equal(1, (int)p["dequeueCount"]!));

        // The duplicate was deleted without a second turn.
        await Eventually.Async(async () => (await queue.GetPropertiesAsync()).Value.ApproximateMessagesCount == 0, "main queue drained");
        JsonNode transcript = await api.GetJsonAsync("/api/conversations/conv-q/transcript", management: true);
        Assert.Equal(["hello"], transcript["messages"]!.AsArray().Where(m => (string?)m!["role"] == "user").Select(m => (string)m!["content"]!));

        // A well-formed message that keeps failing (its conversation has ended) goes to poison after MaxDequeueCount deliveries.
        using HttpResponseMessage terminate = await api.Http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/api/conversations/conv-q2/terminate") { Headers = { { "x-management-key", ApiHarness.ManagementKey } } });
        Assert.Equal(HttpStatusCode.Accepted, terminate.StatusCode);
        await api.StatusEventuallyAsync("conv-q2", s => (string?)s["runtimeStatus"] == "Terminated", "conv-q2 terminated");
        await queue.SendMessageAsync(JsonSerializer.Serialize(new { conversationId = "conv-q2", text = "still there?", messageId = "m-3" }));
        poisoned = await PoisonEventuallyAsync(poison, 3);
        JsonNode failing = poisoned.Single(p => ((string)p["message"]!).Contains("m-3", StringComparison.Ordinal));
        Assert.Equal(2, (int)failing["dequeueCount"]!);
        Assert.Contains("failed 2 deliveries", (string)failing["reason"]!, StringComparison.Ordinal);
    }

    private static async Task<List<JsonNode>> PoisonEventuallyAsync(QueueClient poison, int count)
    {
        var seen = new List<JsonNode>();
        await Eventually.Async(
            async () =>
            {
                PeekedMessage[] peeked = (await poison.PeekMessagesAsync(32)).Value;
                seen = peeked.Select(m => JsonNode.Parse(m.Body.ToString())!).ToList();
                return seen.Count >= count;
            },
            $"{count} messages in the poison queue",
            TimeSpan.FromSeconds(90));
        Assert.Equal(count, seen.Count);
        return seen;
    }
}

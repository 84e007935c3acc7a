using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Azure.Core.Pipeline;
using Azure.Data.Tables;
using Azure.Storage.Queues;
using Microsoft.Extensions.Logging.Abstractions;
using Orchestrator.Agents;
using Orchestrator.Durable.AzureStorage;
using Orchestrator.Testing;

namespace Orchestrator.Host.Api.Tests;

/// <summary>
/// <c>serve</c> on an identity-based storage connection: the backend, the Idempotency-Key ledger and the queue trigger
/// all reach storage with the one token credential (no account key anywhere in the host's settings).
/// </summary>
public sealed class IdentityStorageApiTests(AzuriteOAuthFixture azurite) : IClassFixture<AzuriteOAuthFixture>
{
    [Fact(Timeout = 180_000)]
    public async Task Serve_IdentityBasedStorage_LedgerAndQueueTriggerUseTheCredential()
    {
        var credential = new AzuriteTokenCredential();
        var settings = new HostSettings
        {
            StorageServiceUris = azurite.ServiceUris,
            StorageCredential = credential,
            StorageTransport = azurite.Transport,
            HubName = AzuriteFixture.NewName("idhub"),
            PartitionCount = 2,
        };
        string queueName = AzuriteFixture.NewName("idturns-");
        var apiSettings = new ApiSettings
        {
            ManagementKey = ApiHarness.ManagementKey,
            WebhookSecrets = [ApiHarness.Secret],
            QueueName = queueName,
            MaxPollingInterval = TimeSpan.FromMilliseconds(200),
        };
        await using ApiHarness api = await ApiHarness.StartAsync(settings, dataSource: null, api: apiSettings);

        using HttpResponseMessage first = await api.PostMessageAsync("conv-id", "hello", idempotencyKey: "id-key");
        using HttpResponseMessage retry = await api.PostMessageAsync("conv-id", "hello", idempotencyKey: "id-key");
        var queue = new QueueClient(azurite.ConnectionString, queueName, new QueueClientOptions { Transport = azurite.Transport });
        await queue.SendMessageAsync(JsonSerializer.Serialize(new { conversationId = "conv-idq", text = "hi", messageId = "m-1" }));

        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.True(retry.Headers.Contains("Idempotent-Replayed"));
        await api.StatusEventuallyAsync("conv-id", s => (int?)s["turns"] == 1 && s["currentTurn"] is null, "HTTP turn answered", TimeSpan.FromSeconds(90));
        await api.StatusEventuallyAsync("conv-idq", s => (int?)s["turns"] == 1 && s["currentTurn"] is null, "queue turn answered", TimeSpan.FromSeconds(90));
        var tables = new TableServiceClient(azurite.ConnectionString, new TableClientOptions { Transport = azurite.Transport });
        Assert.Single(tables.Query(filter: $"TableName eq '{settings.HubName}Requests'"));
        Assert.Equal("Healthy", (string?)(await api.GetJsonAsync("/readyz"))["status"]);
        Assert.NotEmpty(credential.RequestedScopes);
        Assert.All(credential.RequestedScopes, s => Assert.Equal("https://storage.azure.com/.default", s));
    }

    [Fact(Timeout = 60_000)]
    public async Task HostTurnOptions_IdentityBasedStorage_InDoubtJournalReachesTheHubTableWithTheCredential()
    {
        var credential = new AzuriteTokenCredential();
        var settings = new HostSettings
        {
            StorageServiceUris = azurite.ServiceUris,
            StorageCredential = credential,
            StorageTransport = azurite.Transport,
            HubName = AzuriteFixture.NewName("idjhub"),
        };

        using var journal = Assert.IsType<TableToolCallJournal>(HostTurnOptions.Create(settings, NullLoggerFactory.Instance).CallJournal);
        PriorAttempt first = await journal.BeginAttemptAsync("refund-key-1", CancellationToken.None);
        PriorAttempt again = await journal.BeginAttemptAsync("refund-key-1", CancellationToken.None);

        Assert.Equal(PriorAttempt.None, first);
        Assert.Equal(PriorAttempt.Unfinished, again);
        Assert.NotEmpty(credential.RequestedScopes);
    }
}

using System.Security.Cryptography.X509Certificates;
using Azure;
using Azure.Core.Pipeline;
using Azure.Data.Tables;
using Azure.Data.Tables.Models;
using Azure.Storage.Blobs;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.Worker;
using Xunit.Abstractions;

namespace Orchestrator.Durable.AzureStorage.Tests;

/// <summary>
/// The backend reaching storage by endpoints and a <see cref="Azure.Core.TokenCredential"/> (no account key), against
/// Azurite 3.35's OAuth, which checks each token's audience, issuer and lifetime on the blob, queue and table services.
/// </summary>
public sealed class IdentityConnectionTests(AzuriteOAuthFixture azurite, ITestOutputHelper output) : IClassFixture<AzuriteOAuthFixture>
{
    private const string StorageScope = "https://storage.azure.com/.default";

    [Fact(Timeout = 90_000)]
    public async Task IdentityConnection_AzuriteWithOAuth_RunsAnOrchestrationThroughTablesQueuesAndBlobs()
    {
        var credential = new AzuriteTokenCredential();
        DurableTaskRegistry registry = new DurableTaskRegistry()
            .AddActivityFunc<string, string>("Echo", (ctx, s) => s)
            .AddOrchestratorFunc<string, string>("EchoBig", async (ctx, s) => await ctx.CallActivityAsync<string>("Echo", s) + "!");
        await using TestHost host = await TestHost.StartAsync(this.Options(credential, AzuriteFixture.NewHubName("identity")), registry);
        // Over the queue message limit: the start message and the instance's input go to blobs, so all three services are used.
        string big = new('i', 100_000);

        string id = await host.Client.ScheduleNewOrchestrationInstanceAsync("EchoBig", big);
        OrchestrationMetadata m = await TestWait.CompletionAsync(host.Client, id);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        Assert.Equal(big + "!", m.ReadOutputAs<string>());
        var blobs = new List<string>();
        await foreach (Azure.Storage.Blobs.Models.BlobItem b in host.Backend.Container.GetBlobsAsync())
        {
            blobs.Add(b.Name);
        }

        Assert.Contains(blobs, b => b.Contains(id, StringComparison.Ordinal));
        Assert.NotEmpty(credential.RequestedScopes);
        Assert.All(credential.RequestedScopes, s => Assert.Equal(StorageScope, s));
        output.WriteLine($"{azurite.Description}; {credential.RequestedScopes.Count} token requests; storage operations: {host.Backend.StorageOperationCount}");
    }

    [Fact(Timeout = 60_000)]
    public async Task CreateIfNotExists_TokenForAnotherAudience_FailsClearlyAndCreatesNothing()
    {
        string hub = AzuriteFixture.NewHubName("wrongaud");
        var backend = new AzureStorageOrchestrationBackend(this.Options(new AzuriteTokenCredential { AudienceOverride = "https://vault.azure.net" }, hub));
        try
        {
            var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => backend.CreateIfNotExistsAsync(default));

            output.WriteLine(ex.Message);
            Assert.Contains($"Could not create task hub '{hub}'", ex.Message, StringComparison.Ordinal);
            Assert.Contains("identity-based connection", ex.Message, StringComparison.Ordinal);
            Assert.Contains("HTTP 403 AuthenticationFailed", ex.Message, StringComparison.Ordinal);
            Assert.Contains("(Invalid token audience.)", ex.Message, StringComparison.Ordinal);
            Assert.Contains("Storage Blob, Queue and Table Data Contributor", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            await backend.DisposeAsync();
        }

        var tables = new TableServiceClient(azurite.ConnectionString, new TableClientOptions { Transport = azurite.Transport });
        var created = new List<string>();
        await foreach (TableItem t in tables.QueryAsync(filter: $"TableName ge '{hub}'"))
        {
            created.Add(t.Name);
        }

        Assert.DoesNotContain(created, t => t.StartsWith(hub, StringComparison.Ordinal));
    }

    [Fact(Timeout = 60_000)]
    public async Task TableService_TokenForTheBlobServiceOnly_IsRefusedWhileBlobsAcceptIt()
    {
        // Azurite checks the audience per service: a token for this account's blob service opens blobs but not tables,
        // which shows the table service (the history, instances and leases) really authenticates the bearer token.
        var options = this.Options(new AzuriteTokenCredential { AudienceOverride = "https://devstoreaccount1.blob.core.windows.net" }, "unused");
        string name = AzuriteFixture.NewHubName("aud").ToLowerInvariant();

        BlobContainerClient container = options.CreateBlobServiceClient().GetBlobContainerClient(name);
        await container.CreateIfNotExistsAsync();
        var refused = await Assert.ThrowsAsync<RequestFailedException>(() => options.CreateTableServiceClient().GetTableClient(name).CreateIfNotExistsAsync());

        Assert.True(await container.ExistsAsync());
        Assert.Equal(403, refused.Status);
        Assert.Contains("<AuthenticationErrorDetail>Invalid token audience.</AuthenticationErrorDetail>", refused.Message, StringComparison.Ordinal);
    }

    private AzureStorageOrchestrationBackendOptions Options(AzuriteTokenCredential credential, string hub) => new()
    {
        ServiceUris = azurite.ServiceUris,
        Credential = credential,
        Transport = azurite.Transport,
        TaskHubName = hub,
        PartitionCount = 2,
        MaxPollingInterval = TimeSpan.FromMilliseconds(250),
        MinPollingInterval = TimeSpan.FromMilliseconds(20),
    };
}

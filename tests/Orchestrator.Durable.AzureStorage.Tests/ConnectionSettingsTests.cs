using Azure.Core;
using Azure.Identity;

namespace Orchestrator.Durable.AzureStorage.Tests;

/// <summary>How the AzureWebJobsStorage settings (connection string or identity-based) become backend options.</summary>
public sealed class ConnectionSettingsTests
{
    private const string ClientId = "7f1a3c2e-5b4d-4e6f-9a8b-0c1d2e3f4a5b";

    [Theory]
    [InlineData("AzureWebJobsStorage:accountName")] // an environment variable AzureWebJobsStorage__accountName, as .NET configuration maps it
    [InlineData("AzureWebJobsStorage__accountName")] // the same read raw (Environment.GetEnvironmentVariable)
    [InlineData("Values:AzureWebJobsStorage__accountName")] // local.settings.json Values
    [InlineData("Values:AzureWebJobsStorage:accountName")]
    public void FromConfiguration_AccountName_PublicCloudEndpointsAndACredential(string key)
    {
        AzureStorageOrchestrationBackendOptions options = AzureStorageOrchestrationBackendOptions.FromConfiguration(Settings((key, "prodstore1")), "hub");

        Assert.Null(options.ConnectionString);
        Assert.Equal(new Uri("https://prodstore1.blob.core.windows.net"), options.ServiceUris!.BlobServiceUri);
        Assert.Equal(new Uri("https://prodstore1.queue.core.windows.net"), options.ServiceUris.QueueServiceUri);
        Assert.Equal(new Uri("https://prodstore1.table.core.windows.net"), options.ServiceUris.TableServiceUri);
        Assert.IsType<DefaultAzureCredential>(options.Credential);
        Assert.Equal("hub", options.TaskHubName);
        options.Validate();
    }

    [Fact]
    public void Read_ManagedIdentityWithClientId_UserAssignedManagedIdentityCredential()
    {
        AzureStorageConnectionSettings s = AzureStorageConnectionSettings.Read(Settings(
            ("AzureWebJobsStorage:accountName", "prodstore1"), ("AzureWebJobsStorage:credential", "ManagedIdentity"), ("AzureWebJobsStorage:clientId", ClientId)))!;

        Assert.True(s.IsIdentityBased);
        Assert.Equal(AzureStorageConnectionSettings.ManagedIdentity, s.Credential);
        Assert.Equal(ClientId, s.ClientId);
        Assert.IsType<ManagedIdentityCredential>(s.CreateCredential());
        Assert.IsType<DefaultAzureCredential>((s with { Credential = null }).CreateCredential());
    }

    [Fact]
    public void Read_ExplicitServiceUris_UsedAsGivenAndOverrideTheAccountsOnes()
    {
        AzureStorageConnectionSettings uris = AzureStorageConnectionSettings.Read(Settings(
            ("AzureWebJobsStorage__blobServiceUri", "https://b.example.net/acct"),
            ("AzureWebJobsStorage__queueServiceUri", "https://q.example.net/acct"),
            ("AzureWebJobsStorage__tableServiceUri", "https://t.example.net/acct")))!;
        AzureStorageConnectionSettings mixed = AzureStorageConnectionSettings.Read(Settings(
            ("AzureWebJobsStorage__accountName", "prodstore1"), ("AzureWebJobsStorage__tableServiceUri", "https://t.example.net/acct")))!;

        Assert.Equal(new AzureStorageServiceUris(new Uri("https://b.example.net/acct"), new Uri("https://q.example.net/acct"), new Uri("https://t.example.net/acct")), uris.ServiceUris);
        Assert.Equal(new Uri("https://t.example.net/acct"), mixed.ServiceUris!.TableServiceUri);
        Assert.Equal(new Uri("https://prodstore1.queue.core.windows.net"), mixed.ServiceUris.QueueServiceUri);
    }

    [Fact]
    public void Read_EnvironmentAndValues_EnvironmentWinsWhole()
    {
        AzureStorageConnectionSettings fromEnvironment = AzureStorageConnectionSettings.Read(Settings(
            ("AzureWebJobsStorage:accountName", "prodstore1"), ("Values:AzureWebJobsStorage", "UseDevelopmentStorage=true")))!;
        AzureStorageConnectionSettings connectionString = AzureStorageConnectionSettings.Read(Settings(
            ("AzureWebJobsStorage", "UseDevelopmentStorage=true"), ("Values:AzureWebJobsStorage__accountName", "prodstore1")))!;

        Assert.Equal("environment", fromEnvironment.Source);
        Assert.True(fromEnvironment.IsIdentityBased);
        Assert.Equal("UseDevelopmentStorage=true", connectionString.ConnectionString);
        Assert.False(connectionString.IsIdentityBased);
        Assert.Null(AzureStorageConnectionSettings.Read(Settings(("AzureWebJobsStorage", "  "))));
    }

    [Theory]
    [InlineData("AzureWebJobsStorage__accountName", "AzureWebJobsStorage", "UseDevelopmentStorage=true", "AzureWebJobsStorage__accountName", "prodstore1")]
    [InlineData("AzureWebJobsStorage__accountName", "AzureWebJobsStorage__accountName", "Prod-Store", null, null)]
    [InlineData("AzureWebJobsStorage__blobServiceUri", "AzureWebJobsStorage__accountName", "prodstore1", "AzureWebJobsStorage__blobServiceUri", "not a uri")]
    [InlineData("AzureWebJobsStorage__queueServiceUri", "AzureWebJobsStorage__accountName", "prodstore1", "AzureWebJobsStorage__queueServiceUri", "http://prodstore1.queue.core.windows.net")]
    [InlineData("AzureWebJobsStorage__credential", "AzureWebJobsStorage__accountName", "prodstore1", "AzureWebJobsStorage__credential", "clientsecret")]
    [InlineData("AzureWebJobsStorage__clientId", "AzureWebJobsStorage__accountName", "prodstore1", "AzureWebJobsStorage__clientId", "my-identity")]
    [InlineData("AzureWebJobsStorage__tableServiceUri", "AzureWebJobsStorage__blobServiceUri", "https://b.example.net", "AzureWebJobsStorage__queueServiceUri", "https://q.example.net")]
    [InlineData("AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential", "managedidentity", null, null)]
    public void Read_InvalidCombinationOrValue_FailsNamingTheSetting(string named, string key1, string value1, string? key2, string? value2)
    {
        var pairs = new List<(string, string)> { (key1, value1) };
        if (key2 is not null)
        {
            pairs.Add((key2, value2!));
        }

        var ex = Assert.Throws<InvalidOperationException>(() => AzureStorageOrchestrationBackendOptions.FromConfiguration(Settings([.. pairs]), "hub"));

        Assert.Contains(named, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_ConnectionStringAndServiceUris_RefusedEitherHalfAloneToo()
    {
        AzureStorageServiceUris uris = AzureStorageServiceUris.ForAccount("prodstore1");
        TokenCredential credential = new AzuriteTokenCredential();

        var both = Assert.Throws<ArgumentException>(() => new AzureStorageOrchestrationBackendOptions { ConnectionString = "UseDevelopmentStorage=true", ServiceUris = uris, Credential = credential }.Validate());
        var noCredential = Assert.Throws<ArgumentException>(() => new AzureStorageOrchestrationBackendOptions { ServiceUris = uris }.Validate());
        var noUris = Assert.Throws<ArgumentException>(() => new AzureStorageOrchestrationBackendOptions { Credential = credential }.Validate());
        var plainHttp = Assert.Throws<ArgumentException>(() => new AzureStorageOrchestrationBackendOptions { ServiceUris = uris with { TableServiceUri = new Uri("http://127.0.0.1:10002/devstoreaccount1") }, Credential = credential }.Validate());

        Assert.Contains("both set", both.Message, StringComparison.Ordinal);
        Assert.Contains("Credential", noCredential.Message, StringComparison.Ordinal);
        Assert.Contains("ServiceUris", noUris.Message, StringComparison.Ordinal);
        Assert.Contains("AzureWebJobsStorage__tableServiceUri", plainHttp.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Constructor_IdentityBasedOptions_BuildsWithoutContactingStorage()
    {
        var options = new AzureStorageOrchestrationBackendOptions { ServiceUris = AzureStorageServiceUris.ForAccount("prodstore1"), Credential = new AzuriteTokenCredential() };
        var credential = (AzuriteTokenCredential)options.Credential!;

        await using var backend = new AzureStorageOrchestrationBackend(options);

        Assert.Equal(new Uri("https://prodstore1.table.core.windows.net/OrchestratorHubHistory"), backend.HistoryTable.Uri);
        Assert.Empty(credential.RequestedScopes);
        Assert.Null(new AzureStorageOrchestrationBackendOptions().ConnectionString); // neither form: Azurite, as before
        new AzureStorageOrchestrationBackendOptions().Validate();
    }

    private static Func<string, string?> Settings(params (string Key, string Value)[] pairs)
    {
        var map = pairs.ToDictionary(p => p.Key, p => p.Value, StringComparer.OrdinalIgnoreCase);
        return k => map.GetValueOrDefault(k);
    }
}

using Azure.Identity;
using Orchestrator.Durable.AzureStorage;

namespace Orchestrator.Host.Tests;

public sealed class HostSettingsTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("host-settings-").FullName;

    [Fact]
    public void Load_NoConfiguration_EmbeddedSqliteDefault()
    {
        HostSettings s = HostSettings.Load(this.dir);

        Assert.False(s.UsesAzureStorage);
        Assert.Equal(Path.Combine(".data", "orchestrator.db"), s.DataSource);
        Assert.Equal(4, s.PartitionCount);
    }

    [Fact]
    public void Load_HostJson_ReadsDurableTaskSettingsByTheirFunctionsNames()
    {
        this.Write("host.json", """
            { "extensions": { "durableTask": { "hubName": "SupportDesk", "storageProvider": { "type": "sqlite", "dataSource": "x/y.db", "partitionCount": 8 },
              "maxConcurrentActivityFunctions": 7, "maxConcurrentOrchestratorFunctions": 3 } } }
            """);

        HostSettings s = HostSettings.Load(this.dir);

        Assert.Equal("SupportDesk", s.HubName);
        Assert.Equal("x/y.db", s.DataSource);
        Assert.Equal(8, s.PartitionCount);
        Assert.Equal(7, s.MaxConcurrentActivityFunctions);
        Assert.Equal(3, s.MaxConcurrentOrchestratorFunctions);
    }

    [Theory]
    [InlineData("UseDevelopmentStorage=true")]
    [InlineData("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net")]
    public void Load_AzureWebJobsStorageConnectionString_SelectsAzureStorage(string connectionString)
    {
        this.Write("local.settings.json", $$"""{ "Values": { "AzureWebJobsStorage": "{{connectionString}}" } }""");

        HostSettings s = HostSettings.Load(this.dir);

        Assert.True(s.UsesAzureStorage);
        Assert.Equal(connectionString, s.StorageConnectionString);
        Assert.StartsWith("Azure Storage backend", s.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void Load_AzureWebJobsStoragePath_SelectsThatSqliteFile()
    {
        this.Write("local.settings.json", """{ "Values": { "AzureWebJobsStorage": "data/custom.db" } }""");

        HostSettings s = HostSettings.Load(this.dir);

        Assert.False(s.UsesAzureStorage);
        Assert.Equal("data/custom.db", s.DataSource);
    }

    [Theory]
    [InlineData("\"maxConcurrentActivityFunctions\": 0", "maxConcurrentActivityFunctions")]
    [InlineData("\"maxConcurrentOrchestratorFunctions\": \"lots\"", "maxConcurrentOrchestratorFunctions")]
    [InlineData("\"storageProvider\": { \"partitionCount\": 17 }", "partitionCount")]
    public void Load_InvalidSetting_FailsNamingTheSetting(string fragment, string setting)
    {
        this.Write("host.json", $$"""{ "extensions": { "durableTask": { {{fragment}} } } }""");

        var ex = Assert.Throws<InvalidOperationException>(() => HostSettings.Load(this.dir));

        Assert.Contains(setting, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CreateBackend_InvalidHubNameForAzure_FailsNamingTaskHubName()
    {
        this.Write("host.json", """{ "extensions": { "durableTask": { "hubName": "no" } } }""");
        this.Write("local.settings.json", """{ "Values": { "AzureWebJobsStorage": "UseDevelopmentStorage=true" } }""");

        var ex = Assert.Throws<ArgumentException>(() => HostSettings.Load(this.dir).CreateBackend());

        Assert.Contains("TaskHubName", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Load_AccountNameInValues_SelectsIdentityBasedAzureStorageForBackendLedgerAndTrigger()
    {
        this.Write("local.settings.json", """
            { "Values": { "AzureWebJobsStorage__accountName": "prodstore1", "AzureWebJobsStorage__credential": "managedidentity",
              "AzureWebJobsStorage__clientId": "7f1a3c2e-5b4d-4e6f-9a8b-0c1d2e3f4a5b" } }
            """);

        HostSettings s = HostSettings.Load(this.dir);
        AzureStorageOrchestrationBackendOptions options = s.StorageOptions();

        Assert.True(s.UsesAzureStorage);
        Assert.Null(s.StorageConnectionString);
        Assert.Equal(AzureStorageServiceUris.ForAccount("prodstore1"), s.StorageServiceUris);
        Assert.IsType<ManagedIdentityCredential>(s.StorageCredential);
        Assert.Null(options.ConnectionString);
        Assert.Same(s.StorageCredential, options.Credential);
        Assert.Equal(new Uri("https://prodstore1.table.core.windows.net/"), options.CreateTableServiceClient().Uri);
        Assert.Equal(new Uri("https://prodstore1.queue.core.windows.net/"), options.CreateQueueServiceClient().Uri);
        Assert.Contains("identity-based", s.Describe(), StringComparison.Ordinal);
        await using Orchestrator.Durable.Backend.IOrchestrationBackend backend = s.CreateBackend();
        Assert.IsType<AzureStorageOrchestrationBackend>(backend);
    }

    [Fact]
    public void Load_ServiceUrisWithoutCredentialSetting_DefaultAzureCredential()
    {
        this.Write("local.settings.json", """
            { "Values": { "AzureWebJobsStorage__blobServiceUri": "https://b.example.net/a", "AzureWebJobsStorage__queueServiceUri": "https://q.example.net/a",
              "AzureWebJobsStorage__tableServiceUri": "https://t.example.net/a" } }
            """);

        HostSettings s = HostSettings.Load(this.dir);

        Assert.Equal(new Uri("https://t.example.net/a"), s.StorageServiceUris!.TableServiceUri);
        Assert.IsType<DefaultAzureCredential>(s.StorageCredential);
    }

    [Theory]
    [InlineData("\"AzureWebJobsStorage\": \"UseDevelopmentStorage=true\", \"AzureWebJobsStorage__accountName\": \"prodstore1\"", "AzureWebJobsStorage__accountName")]
    [InlineData("\"AzureWebJobsStorage__accountName\": \"prodstore1\", \"AzureWebJobsStorage__tableServiceUri\": \"tables\"", "AzureWebJobsStorage__tableServiceUri")]
    [InlineData("\"AzureWebJobsStorage__accountName\": \"prodstore1\", \"AzureWebJobsStorage__credential\": \"azurecli\"", "AzureWebJobsStorage__credential")]
    [InlineData("\"AzureWebJobsStorage__accountName\": \"prodstore1\", \"AzureWebJobsStorage__clientId\": \"not-a-guid\"", "AzureWebJobsStorage__clientId")]
    [InlineData("\"AzureWebJobsStorage__accountName\": \"Prod_Store\"", "AzureWebJobsStorage__accountName")]
    [InlineData("\"AzureWebJobsStorage__acountName\": \"prodstore1\"", "AzureWebJobsStorage__acountName")]
    [InlineData("\"AzureWebJobsStorage__serviceUri\": \"https://prodstore1.blob.core.windows.net\"", "AzureWebJobsStorage__serviceUri")]
    public void Load_InvalidStorageSettings_FailsNamingTheSetting(string values, string setting)
    {
        this.Write("local.settings.json", $$"""{ "Values": { {{values}} } }""");

        var ex = Assert.Throws<InvalidOperationException>(() => HostSettings.Load(this.dir));

        Assert.Contains(setting, ex.Message, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(this.dir, recursive: true);

    private void Write(string name, string content) => File.WriteAllText(Path.Combine(this.dir, name), content);
}

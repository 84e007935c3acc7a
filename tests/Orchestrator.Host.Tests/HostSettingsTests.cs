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

    public void Dispose() => Directory.Delete(this.dir, recursive: true);

    private void Write(string name, string content) => File.WriteAllText(Path.Combine(this.dir, name), content);
}

namespace Orchestrator.Host.Cli.Tests;

public sealed class IdentityConnectionTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("host-identity-").FullName;

    [Theory]
    [InlineData("""{ "Values": { "AzureWebJobsStorage__accountName": "orchstabc" } }""")] // as Azure Functions users write it
    [InlineData("""{ "Values": { "AzureWebJobsStorage": { "accountName": "orchstabc" } } }""")] // as the environment's AzureWebJobsStorage__accountName reads
    public void Load_IdentityBasedStorageConnection_SelectsTheAccountsAzureStorageInsteadOfFallingBackToSqlite(string localSettings)
    {
        File.WriteAllText(Path.Combine(_dir, "local.settings.json"), localSettings);

        HostSettings settings = HostSettings.Load(_dir);

        Assert.True(settings.UsesAzureStorage);
        Assert.Null(settings.StorageConnectionString);
        Assert.Equal(new Uri("https://orchstabc.table.core.windows.net"), settings.StorageServiceUris!.TableServiceUri);
        Assert.NotNull(settings.StorageCredential);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}

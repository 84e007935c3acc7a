namespace Orchestrator.Host.Cli.Tests;

public sealed class IdentityConnectionTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("host-identity-").FullName;

    [Theory]
    [InlineData("""{ "Values": { "AzureWebJobsStorage__accountName": "orchstabc" } }""")] // as Azure Functions users write it
    [InlineData("""{ "Values": { "AzureWebJobsStorage": { "accountName": "orchstabc" } } }""")] // as the environment's AzureWebJobsStorage__accountName reads
    public void Load_IdentityBasedStorageConnection_RefusedNamingTheSettingInsteadOfFallingBackToSqlite(string localSettings)
    {
        File.WriteAllText(Path.Combine(_dir, "local.settings.json"), localSettings);

        var ex = Assert.Throws<InvalidOperationException>(() => HostSettings.Load(_dir));

        Assert.Contains("AzureWebJobsStorage__accountName", ex.Message, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}

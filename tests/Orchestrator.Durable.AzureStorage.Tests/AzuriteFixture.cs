using Orchestrator.Testing;

namespace Orchestrator.Durable.AzureStorage.Tests;

/// <summary>Azurite for the tests, found or started by the rules of <see cref="AzuriteInstance"/>.</summary>
public sealed class AzuriteFixture : IAsyncLifetime
{
    private AzuriteInstance? instance;

    public string ConnectionString => this.instance?.ConnectionString ?? string.Empty;

    public string Description => this.instance?.Description ?? string.Empty;

    public static string ConnectionStringFor(int blob, int queue, int table) => AzuriteInstance.ConnectionStringFor(blob, queue, table);

    public async Task InitializeAsync() => this.instance = await AzuriteInstance.AcquireAsync("azurite-tests-", CancellationToken.None);

    public Task DisposeAsync()
    {
        this.instance?.Dispose();
        return Task.CompletedTask;
    }

    public static string NewHubName(string tag)
    {
        string clean = new(tag.Where(char.IsLetterOrDigit).Take(12).ToArray());
        return "t" + clean + Guid.NewGuid().ToString("N")[..12];
    }
}

[CollectionDefinition(Name)]
public sealed class AzuriteCollection : ICollectionFixture<AzuriteFixture>
{
    public const string Name = "Azurite";
}

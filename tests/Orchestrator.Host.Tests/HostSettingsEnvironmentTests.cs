using Orchestrator.Durable.AzureStorage;

namespace Orchestrator.Host.Tests;

/// <summary>Process environment variables are global: these tests run alone, after the parallel ones.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessEnvironmentCollection
{
    public const string Name = "Process environment";
}

/// <summary>AzureWebJobsStorage__* as real environment variables, which .NET configuration reads as AzureWebJobsStorage:*.</summary>
[Collection(ProcessEnvironmentCollection.Name)]
public sealed class HostSettingsEnvironmentTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("host-settings-env-").FullName;
    private readonly List<string> variables = [];

    [Fact]
    public void Load_AccountNameInEnvironment_IdentityBasedAndOverridesTheFilesConnectionString()
    {
        File.WriteAllText(Path.Combine(this.dir, "local.settings.json"), """{ "Values": { "AzureWebJobsStorage": "UseDevelopmentStorage=true" } }""");
        this.Set("AzureWebJobsStorage__accountName", "prodstore1");
        this.Set("AzureWebJobsStorage__credential", "managedidentity");

        HostSettings s = HostSettings.Load(this.dir);

        Assert.Null(s.StorageConnectionString);
        Assert.Equal(AzureStorageServiceUris.ForAccount("prodstore1"), s.StorageServiceUris);
        Assert.IsType<Azure.Identity.ManagedIdentityCredential>(s.StorageCredential);
    }

    [Fact]
    public void Load_ConnectionStringAndAccountNameBothInEnvironment_FailsNamingBoth()
    {
        this.Set("AzureWebJobsStorage", "UseDevelopmentStorage=true");
        this.Set("AzureWebJobsStorage__accountName", "prodstore1");

        var ex = Assert.Throws<InvalidOperationException>(() => HostSettings.Load(this.dir));

        Assert.Contains("AzureWebJobsStorage (a connection string)", ex.Message, StringComparison.Ordinal);
        Assert.Contains("AzureWebJobsStorage__accountName", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_UnknownCredentialInEnvironment_FailsNamingTheSetting()
    {
        this.Set("AzureWebJobsStorage__accountName", "prodstore1");
        this.Set("AzureWebJobsStorage__credential", "workload");

        var ex = Assert.Throws<InvalidOperationException>(() => HostSettings.Load(this.dir));

        Assert.Contains("AzureWebJobsStorage__credential", ex.Message, StringComparison.Ordinal);
        Assert.Contains("managedidentity", ex.Message, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        foreach (string name in this.variables)
        {
            Environment.SetEnvironmentVariable(name, null);
        }

        Directory.Delete(this.dir, recursive: true);
    }

    private void Set(string name, string value)
    {
        this.variables.Add(name);
        Environment.SetEnvironmentVariable(name, value);
    }
}

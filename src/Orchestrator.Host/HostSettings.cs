using Microsoft.Extensions.Configuration;
using Orchestrator.Durable.AzureStorage;
using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Sqlite;

namespace Orchestrator.Host;

/// <summary>
/// Engine settings read the Azure Functions way: <c>host.json</c> (extensions.durableTask) and
/// <c>local.settings.json</c> (Values), overridden by environment variables.
/// </summary>
internal sealed record HostSettings
{
    public string HubName { get; init; } = "OrchestratorHub";

    public string DataSource { get; init; } = Path.Combine(".data", "orchestrator.db");

    public int MaxConcurrentActivityFunctions { get; init; } = 10 * Environment.ProcessorCount;

    public int MaxConcurrentOrchestratorFunctions { get; init; } = 10 * Environment.ProcessorCount;

    /// <summary>True when AzureWebJobsStorage names Azure Storage (a connection string or UseDevelopmentStorage=true).</summary>
    public bool UsesAzureStorage => this.StorageConnectionString is not null;

    /// <summary>The Azure Storage connection string, when the Azure Storage backend is selected.</summary>
    public string? StorageConnectionString { get; init; }

    public int PartitionCount { get; init; } = 4;

    public static HostSettings Load(string directory)
    {
        IConfiguration config = new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(directory, "host.json"), optional: true)
            .AddJsonFile(Path.Combine(directory, "local.settings.json"), optional: true)
            .AddEnvironmentVariables()
            .Build();
        IConfigurationSection dt = config.GetSection("extensions:durableTask");
        var settings = new HostSettings();

        // As in Azure Functions: an environment variable overrides local.settings.json's Values.
        string? storage = config["AzureWebJobsStorage"] ?? config["Values:AzureWebJobsStorage"];
        if (storage is null && (config.GetSection("AzureWebJobsStorage").GetChildren().Any() || config.GetSection("Values:AzureWebJobsStorage").GetChildren().Any()
            || config["Values:AzureWebJobsStorage__accountName"] is not null))
        {
            // AzureWebJobsStorage__accountName (infra/main.bicep): falling back to the embedded SQLite file here would
            // put production state on a container's disk, so refuse until the Azure backend takes a TokenCredential.
            throw new InvalidOperationException("Setting AzureWebJobsStorage__accountName (an identity-based storage connection) is not supported by the Azure Storage backend yet; set AzureWebJobsStorage to a connection string.");
        }

        bool azure = storage is not null
            && (storage.StartsWith("UseDevelopmentStorage=true", StringComparison.OrdinalIgnoreCase)
                || storage.Contains("AccountName=", StringComparison.OrdinalIgnoreCase)
                || storage.Contains("BlobEndpoint=", StringComparison.OrdinalIgnoreCase));
        string? dataSource = azure || string.IsNullOrWhiteSpace(storage) ? dt["storageProvider:dataSource"] : storage;
        int? partitions = ReadPositive(dt, "storageProvider:partitionCount");
        if (partitions is > 16)
        {
            throw new InvalidOperationException($"Setting extensions.durableTask.storageProvider.partitionCount must be 1-16; it is {partitions}.");
        }

        return settings with
        {
            HubName = dt["hubName"] ?? settings.HubName,
            DataSource = string.IsNullOrWhiteSpace(dataSource) ? settings.DataSource : dataSource,
            StorageConnectionString = azure ? storage : null,
            PartitionCount = partitions ?? settings.PartitionCount,
            MaxConcurrentActivityFunctions = ReadPositive(dt, "maxConcurrentActivityFunctions") ?? settings.MaxConcurrentActivityFunctions,
            MaxConcurrentOrchestratorFunctions = ReadPositive(dt, "maxConcurrentOrchestratorFunctions") ?? settings.MaxConcurrentOrchestratorFunctions,
        };
    }

    /// <summary>Creates the backend the settings select: Azure Storage when AzureWebJobsStorage names it, else embedded SQLite.</summary>
    public IOrchestrationBackend CreateBackend(string? dataSourceOverride = null)
    {
        if (this.UsesAzureStorage)
        {
            var options = new AzureStorageOrchestrationBackendOptions
            {
                ConnectionString = this.StorageConnectionString!,
                TaskHubName = this.HubName,
                PartitionCount = this.PartitionCount,
            };
            options.Validate();
            return new AzureStorageOrchestrationBackend(options);
        }

        string dataSource = dataSourceOverride ?? this.DataSource;
        string? dir = Path.GetDirectoryName(Path.GetFullPath(dataSource));
        if (dir is not null)
        {
            Directory.CreateDirectory(dir);
        }

        return new SqliteOrchestrationBackend(new SqliteOrchestrationBackendOptions { DataSource = dataSource });
    }

    /// <summary>Where the state lives, for people.</summary>
    public string Describe(string? dataSourceOverride = null) => this.UsesAzureStorage
        ? $"Azure Storage backend, task hub {this.HubName}, {this.PartitionCount} partitions"
        : $"Embedded SQLite backend: {Path.GetFullPath(dataSourceOverride ?? this.DataSource)} (WAL, synchronous=FULL)";

    private static int? ReadPositive(IConfigurationSection section, string key)
    {
        string? raw = section[key];
        if (raw is null)
        {
            return null;
        }

        if (!int.TryParse(raw, out int value) || value < 1)
        {
            throw new InvalidOperationException($"Setting extensions.durableTask.{key} must be a positive integer; it is '{raw}'.");
        }

        return value;
    }
}

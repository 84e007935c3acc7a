using Microsoft.Extensions.Configuration;

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

    public static HostSettings Load(string directory)
    {
        IConfiguration config = new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(directory, "host.json"), optional: true)
            .AddJsonFile(Path.Combine(directory, "local.settings.json"), optional: true)
            .AddEnvironmentVariables()
            .Build();
        IConfigurationSection dt = config.GetSection("extensions:durableTask");
        var settings = new HostSettings();
        string? storage = config["Values:AzureWebJobsStorage"] ?? config["AzureWebJobsStorage"];
        string? dataSource = string.IsNullOrWhiteSpace(storage) ? dt["storageProvider:dataSource"] : storage;
        if (dataSource is not null && (dataSource.StartsWith("UseDevelopmentStorage", StringComparison.OrdinalIgnoreCase) || dataSource.Contains("AccountName=", StringComparison.OrdinalIgnoreCase)))
        {
            throw new InvalidOperationException("AzureWebJobsStorage names Azure Storage, whose backend is not available in this build yet; use a SQLite file path or leave it empty.");
        }

        return settings with
        {
            HubName = dt["hubName"] ?? settings.HubName,
            DataSource = string.IsNullOrWhiteSpace(dataSource) ? settings.DataSource : dataSource,
            MaxConcurrentActivityFunctions = ReadPositive(dt, "maxConcurrentActivityFunctions") ?? settings.MaxConcurrentActivityFunctions,
            MaxConcurrentOrchestratorFunctions = ReadPositive(dt, "maxConcurrentOrchestratorFunctions") ?? settings.MaxConcurrentOrchestratorFunctions,
        };
    }

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

using Azure.Core;
using Azure.Core.Pipeline;
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

    /// <summary>
    /// True when AzureWebJobsStorage names Azure Storage: a connection string (or UseDevelopmentStorage=true), or an
    /// identity-based connection (AzureWebJobsStorage__accountName or the three service URIs).
    /// </summary>
    public bool UsesAzureStorage => this.StorageConnectionString is not null || this.StorageServiceUris is not null;

    /// <summary>The Azure Storage connection string, when the Azure Storage backend is selected by one.</summary>
    public string? StorageConnectionString { get; init; }

    /// <summary>The service endpoints of an identity-based connection (AzureWebJobsStorage__accountName or __*ServiceUri).</summary>
    public AzureStorageServiceUris? StorageServiceUris { get; init; }

    /// <summary>
    /// The credential of an identity-based connection: from AzureWebJobsStorage__credential and __clientId
    /// (<see cref="AzureStorageConnectionSettings.CreateCredential"/>). One instance serves the backend, the request
    /// ledger and the queue trigger, so they share its token cache.
    /// </summary>
    public TokenCredential? StorageCredential { get; init; }

    /// <summary>The storage clients' HTTP transport; null is the Azure SDK's own (tests set one trusting a local certificate).</summary>
    public HttpPipelineTransport? StorageTransport { get; init; }

    public int PartitionCount { get; init; } = 4;

    /// <summary>Model:Endpoint, an OpenAI-compatible base URL; null runs the agent on the local scripted model.</summary>
    public Uri? ModelEndpoint { get; init; }

    /// <summary>Model:ApiKey; servers that check no key get a placeholder when it is empty.</summary>
    public string? ModelApiKey { get; init; }

    /// <summary>Model:Name, required with <see cref="ModelEndpoint"/>.</summary>
    public string? ModelName { get; init; }

    /// <summary>Payments:BaseUrl, the payments service the agent's payment tools call; null starts the sample one in process.</summary>
    public Uri? PaymentsBaseUrl { get; init; }

    /// <summary>
    /// Agents:SensitiveValuesKey, base64 of 32 bytes: the AES-GCM key that seals argument values marked sensitive in
    /// stored history. Agents:PreviousSensitiveValuesKeys (space-separated) still open older histories. When absent, the
    /// SQLite default keeps a generated key in a file next to its database; the Azure Storage backend then stores them in
    /// the clear, with a warning.
    /// </summary>
    public string? SensitiveValuesKey { get; init; }

    /// <summary>Agents:PreviousSensitiveValuesKeys: keys retired by a rotation, still used to open older histories.</summary>
    public IReadOnlyList<string> PreviousSensitiveValuesKeys { get; init; } = [];

    /// <summary>Agents:ContextWindowTokens: the model's context window, for the startup report of what the tool schemas cost. Default 128,000.</summary>
    public int ContextWindowTokens { get; init; } = 128_000;

    public static HostSettings Load(string directory)
    {
        IConfiguration config = new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(directory, "host.json"), optional: true)
            .AddJsonFile(Path.Combine(directory, "local.settings.json"), optional: true)
            .AddEnvironmentVariables()
            .Build();
        IConfigurationSection dt = config.GetSection("extensions:durableTask");
        var settings = new HostSettings();

        // As in Azure Functions: an environment variable overrides local.settings.json's Values (AzureStorageConnectionSettings).
        RefuseUnknownStorageSettings(config);
        AzureStorageConnectionSettings? connection = AzureStorageConnectionSettings.Read(k => config[k]);
        string? storage = connection?.ConnectionString;
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

        (Uri? modelEndpoint, string? modelApiKey, string? modelName, Uri? paymentsBaseUrl) = ReadAgentSettings(config);
        string? sealingKey = ReadValue(config, "Agents:SensitiveValuesKey");
        string[] previousKeys = (ReadValue(config, "Agents:PreviousSensitiveValuesKeys") ?? string.Empty).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        foreach (string key in previousKeys.Prepend(sealingKey).OfType<string>())
        {
            if (!IsSealingKey(key))
            {
                throw new InvalidOperationException("Setting Agents:SensitiveValuesKey / Agents:PreviousSensitiveValuesKeys must be base64 of 32 bytes.");
            }
        }

        string? rawWindow = ReadValue(config, "Agents:ContextWindowTokens");
        int? window = rawWindow is null ? null
            : int.TryParse(rawWindow, out int w) && w > 0 ? w
            : throw new InvalidOperationException($"Setting Agents:ContextWindowTokens must be a positive integer; it is '{rawWindow}'.");
        return settings with
        {
            SensitiveValuesKey = sealingKey,
            PreviousSensitiveValuesKeys = previousKeys,
            ContextWindowTokens = window ?? settings.ContextWindowTokens,
            ModelEndpoint = modelEndpoint,
            ModelApiKey = modelApiKey,
            ModelName = modelName,
            PaymentsBaseUrl = paymentsBaseUrl,
            HubName = dt["hubName"] ?? settings.HubName,
            DataSource = string.IsNullOrWhiteSpace(dataSource) ? settings.DataSource : dataSource,
            StorageConnectionString = azure ? storage : null,
            StorageServiceUris = connection?.ServiceUris,
            StorageCredential = connection is { IsIdentityBased: true } ? connection.CreateCredential() : null,
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
            return new AzureStorageOrchestrationBackend(this.StorageOptions());
        }

        string dataSource = dataSourceOverride ?? this.DataSource;
        string? dir = Path.GetDirectoryName(Path.GetFullPath(dataSource));
        if (dir is not null)
        {
            Directory.CreateDirectory(dir);
        }

        return new SqliteOrchestrationBackend(new SqliteOrchestrationBackendOptions { DataSource = dataSource });
    }

    /// <summary>
    /// The Azure Storage backend's options for these settings: the account (connection string, or endpoints and
    /// credential), hub and partitions. The host's request ledger and queue trigger make their clients from it too.
    /// </summary>
    /// <exception cref="InvalidOperationException">The settings do not select Azure Storage.</exception>
    /// <exception cref="ArgumentException">An option is invalid (the message names it).</exception>
    public AzureStorageOrchestrationBackendOptions StorageOptions()
    {
        if (!this.UsesAzureStorage)
        {
            throw new InvalidOperationException("AzureWebJobsStorage does not name Azure Storage; the embedded SQLite backend is in use.");
        }

        var options = new AzureStorageOrchestrationBackendOptions
        {
            ConnectionString = this.StorageServiceUris is null ? this.StorageConnectionString : null,
            ServiceUris = this.StorageServiceUris,
            Credential = this.StorageServiceUris is null ? null : this.StorageCredential,
            Transport = this.StorageTransport,
            TaskHubName = this.HubName,
            PartitionCount = this.PartitionCount,
        };
        options.Validate();
        return options;
    }

    /// <summary>Where the state lives, for people.</summary>
    public string Describe(string? dataSourceOverride = null) => this.UsesAzureStorage
        ? $"Azure Storage backend{(this.StorageServiceUris is { } uris ? $" (identity-based, {uris.TableServiceUri.Host})" : string.Empty)}, task hub {this.HubName}, {this.PartitionCount} partitions"
        : $"Embedded SQLite backend: {Path.GetFullPath(dataSourceOverride ?? this.DataSource)} (WAL, synchronous=FULL)";

    /// <summary>
    /// The agent's settings: Model:Endpoint, Model:ApiKey, Model:Name and Payments:BaseUrl, from the environment
    /// (<c>Model__Endpoint</c>) or local.settings.json's Values (<c>Model:Endpoint</c> or <c>Model__Endpoint</c>).
    /// Empty values count as absent.
    /// </summary>
    private static (Uri? ModelEndpoint, string? ModelApiKey, string? ModelName, Uri? PaymentsBaseUrl) ReadAgentSettings(IConfiguration config)
    {
        Uri? endpoint = ReadHttpUrl(config, "Model:Endpoint");
        string? name = ReadValue(config, "Model:Name");
        if (endpoint is not null && name is null)
        {
            throw new InvalidOperationException("Setting Model:Name is required when Model:Endpoint is set: the model the endpoint serves.");
        }

        return (endpoint, ReadValue(config, "Model:ApiKey"), name, ReadHttpUrl(config, "Payments:BaseUrl"));
    }

    /// <summary>
    /// An AzureWebJobsStorage__ setting the identity-based connection does not read (a typo such as __acountName, or
    /// Functions' blob-only __serviceUri) would otherwise leave the embedded SQLite file in use, which on a container
    /// loses state: refuse it, naming it.
    /// </summary>
    private static void RefuseUnknownStorageSettings(IConfiguration config)
    {
        const string Prefix = "AzureWebJobsStorage__";
        IEnumerable<string> names = config.GetSection("AzureWebJobsStorage").GetChildren().Select(c => c.Key)
            .Concat(config.GetSection("Values:AzureWebJobsStorage").GetChildren().Select(c => c.Key))
            .Concat(config.GetSection("Values").GetChildren().Select(c => c.Key)
                .Where(k => k.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase)).Select(k => k[Prefix.Length..]));
        foreach (string name in names)
        {
            if (!AzureStorageConnectionSettings.IdentitySettingNames.Contains(name, StringComparer.OrdinalIgnoreCase))
            {
                throw new InvalidOperationException(
                    $"Setting {Prefix}{name} is not recognized; an identity-based storage connection reads {Prefix}{string.Join($", {Prefix}", AzureStorageConnectionSettings.IdentitySettingNames)}.");
            }
        }
    }

    private static bool IsSealingKey(string key)
    {
        Span<byte> bytes = stackalloc byte[48];
        return Convert.TryFromBase64String(key, bytes, out int written) && written == 32;
    }

    private static string? ReadValue(IConfiguration config, string key)
    {
        // As for AzureWebJobsStorage, the environment (Model__Endpoint is Model:Endpoint) overrides Values.
        string? value = config[key] ?? config["Values:" + key] ?? config["Values:" + key.Replace(":", "__", StringComparison.Ordinal)];
        return string.IsNullOrWhiteSpace(value) ? null : value.Trim();
    }

    private static Uri? ReadHttpUrl(IConfiguration config, string key)
    {
        string? raw = ReadValue(config, key);
        if (raw is null)
        {
            return null;
        }

        if (!Uri.TryCreate(raw, UriKind.Absolute, out Uri? url) || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps))
        {
            throw new InvalidOperationException($"Setting {key} must be an absolute http(s) URL; it is '{raw}'.");
        }

        return url;
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

using Azure.Core;
using Azure.Identity;

namespace Orchestrator.Durable.AzureStorage;

/// <summary>
/// The storage connection named by the Azure Functions settings <c>AzureWebJobsStorage</c> (a connection string) or
/// <c>AzureWebJobsStorage__accountName</c>, <c>__blobServiceUri</c>, <c>__queueServiceUri</c>, <c>__tableServiceUri</c>,
/// <c>__credential</c> and <c>__clientId</c> (an identity-based connection).
/// </summary>
/// <remarks>
/// <para>Each setting is looked up at the top level (environment variables; <c>AzureWebJobsStorage__accountName</c> is
/// <c>AzureWebJobsStorage:accountName</c> in .NET configuration, and both spellings are read) and then under
/// <c>Values:</c> (local.settings.json). As in Azure Functions the environment wins: the first of the two layers that
/// sets any of these settings is the one used, whole, so an environment never mixes with a file.</para>
/// <para>Within that layer a connection string and an identity-based setting together are refused, as are an account
/// name that is not one, a service URI that is not an absolute https URI, an unknown <c>__credential</c>, a
/// <c>__clientId</c> that is not a GUID, and service URIs without an account name unless all three are given.</para>
/// </remarks>
public sealed record AzureStorageConnectionSettings
{
    /// <summary>The value of <c>credential</c> that selects a managed identity.</summary>
    public const string ManagedIdentity = "managedidentity";

    private const string Prefix = AzureStorageOrchestrationBackendOptions.ConnectionStringSetting;
    private static readonly string[] IdentityKeys = ["accountName", "blobServiceUri", "queueServiceUri", "tableServiceUri", "credential", "clientId"];

    /// <summary>The names read after <c>AzureWebJobsStorage__</c>: accountName, blobServiceUri, queueServiceUri, tableServiceUri, credential, clientId.</summary>
    public static IReadOnlyList<string> IdentitySettingNames => IdentityKeys;

    /// <summary>The connection string (setting <c>AzureWebJobsStorage</c>); null for an identity-based connection.</summary>
    public string? ConnectionString { get; init; }

    /// <summary>The service endpoints of an identity-based connection; null for a connection string.</summary>
    public AzureStorageServiceUris? ServiceUris { get; init; }

    /// <summary><see cref="ManagedIdentity"/>, or null for <see cref="DefaultAzureCredential"/> (setting <c>AzureWebJobsStorage__credential</c>).</summary>
    public string? Credential { get; init; }

    /// <summary>The client id of a user-assigned managed identity (setting <c>AzureWebJobsStorage__clientId</c>); null for the system-assigned one.</summary>
    public string? ClientId { get; init; }

    /// <summary>Where the settings were found, for messages: "environment" or "local.settings.json Values".</summary>
    public string Source { get; init; } = "environment";

    /// <summary>True for an identity-based connection (<see cref="ServiceUris"/> set).</summary>
    public bool IsIdentityBased => this.ServiceUris is not null;

    /// <summary>Reads the connection from a configuration lookup; null when no storage setting is present.</summary>
    /// <param name="getSetting">Returns a setting's value, or null when it is absent (e.g. <c>k =&gt; configuration[k]</c>).</param>
    /// <exception cref="InvalidOperationException">The settings are contradictory or malformed; the message names the setting.</exception>
    public static AzureStorageConnectionSettings? Read(Func<string, string?> getSetting)
    {
        ArgumentNullException.ThrowIfNull(getSetting);
        foreach ((string layer, string source) in new[] { (string.Empty, "environment"), ("Values:", "local.settings.json Values") })
        {
            string? connectionString = Get(getSetting, layer + Prefix);
            var identity = IdentityKeys.ToDictionary(k => k, k => Get(getSetting, $"{layer}{Prefix}:{k}") ?? Get(getSetting, $"{layer}{Prefix}__{k}"), StringComparer.Ordinal);
            string? firstIdentityKey = IdentityKeys.FirstOrDefault(k => identity[k] is not null);
            if (connectionString is null && firstIdentityKey is null)
            {
                continue;
            }

            if (connectionString is not null && firstIdentityKey is not null)
            {
                throw new InvalidOperationException(
                    $"Settings {Prefix} (a connection string) and {Prefix}__{firstIdentityKey} (an identity-based connection) are both set in the {source}; set only one of the two forms.");
            }

            return connectionString is not null
                ? new AzureStorageConnectionSettings { ConnectionString = connectionString, Source = source }
                : ParseIdentity(identity, source);
        }

        return null;
    }

    /// <summary>
    /// The credential the settings select: <see cref="ManagedIdentityCredential"/> (user-assigned with
    /// <see cref="ClientId"/>, else system-assigned) for <c>credential=managedidentity</c>, otherwise
    /// <see cref="DefaultAzureCredential"/> (with <see cref="ClientId"/> as its managed identity client id when set).
    /// Creating one contacts nothing; the first token request does.
    /// </summary>
    /// <exception cref="InvalidOperationException">These are connection-string settings.</exception>
    public TokenCredential CreateCredential()
    {
        if (!this.IsIdentityBased)
        {
            throw new InvalidOperationException($"Setting {Prefix} is a connection string; it needs no credential.");
        }

        if (this.Credential is not null)
        {
            return new ManagedIdentityCredential(this.ClientId is null ? ManagedIdentityId.SystemAssigned : ManagedIdentityId.FromUserAssignedClientId(this.ClientId));
        }

        return new DefaultAzureCredential(new DefaultAzureCredentialOptions { ManagedIdentityClientId = this.ClientId });
    }

    private static AzureStorageConnectionSettings ParseIdentity(Dictionary<string, string?> values, string source)
    {
        string? credential = values["credential"];
        if (credential is not null && !string.Equals(credential, ManagedIdentity, StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidOperationException(
                $"Setting {Prefix}__credential is '{credential}'; the only accepted value is '{ManagedIdentity}' (leave it unset to use DefaultAzureCredential).");
        }

        string? clientId = values["clientId"];
        if (clientId is not null && !Guid.TryParse(clientId, out _))
        {
            throw new InvalidOperationException($"Setting {Prefix}__clientId must be the client id (a GUID) of a user-assigned managed identity; it is '{clientId}'.");
        }

        AzureStorageServiceUris? derived = null;
        if (values["accountName"] is string account)
        {
            try
            {
                derived = AzureStorageServiceUris.ForAccount(account);
            }
            catch (ArgumentException ex)
            {
                throw new InvalidOperationException($"Setting {Prefix}__accountName is invalid: {ex.Message.Split(" (Parameter", 2)[0]}", ex);
            }
        }

        Uri? blob = ParseUri(values, "blobServiceUri") ?? derived?.BlobServiceUri;
        Uri? queue = ParseUri(values, "queueServiceUri") ?? derived?.QueueServiceUri;
        Uri? table = ParseUri(values, "tableServiceUri") ?? derived?.TableServiceUri;
        if (blob is null || queue is null || table is null)
        {
            string missing = string.Join(", ", new[] { ("blobServiceUri", blob), ("queueServiceUri", queue), ("tableServiceUri", table) }
                .Where(p => p.Item2 is null).Select(p => $"{Prefix}__{p.Item1}"));
            throw new InvalidOperationException(
                $"An identity-based storage connection needs {Prefix}__accountName, or all three service URIs; missing: {missing}.");
        }

        return new AzureStorageConnectionSettings
        {
            ServiceUris = new AzureStorageServiceUris(blob, queue, table),
            Credential = credential is null ? null : ManagedIdentity,
            ClientId = clientId,
            Source = source,
        };
    }

    private static Uri? ParseUri(Dictionary<string, string?> values, string key)
    {
        string? raw = values[key];
        if (raw is null)
        {
            return null;
        }

        if (!Uri.TryCreate(raw, UriKind.Absolute, out Uri? uri) || uri.Scheme != Uri.UriSchemeHttps)
        {
            throw new InvalidOperationException($"Setting {Prefix}__{key} must be an absolute https URI; it is '{raw}'.");
        }

        return uri;
    }

    private static string? Get(Func<string, string?> getSetting, string key)
    {
        string? value = getSetting(key);
        return string.IsNullOrWhiteSpace(value) ? null : value.Trim();
    }
}

using System.Text.RegularExpressions;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using Microsoft.Extensions.Logging;

namespace Orchestrator.Durable.AzureStorage;

/// <summary>Options of the Azure Storage backend (tables, queues and blobs; Azurite locally).</summary>
/// <remarks>
/// <para><b>The account</b> is named one of two ways: a <see cref="ConnectionString"/> (account key or SAS; Azurite),
/// or <see cref="ServiceUris"/> with a <see cref="Credential"/> (Microsoft Entra ID, e.g. a managed identity; the
/// identity needs Storage Blob, Queue and Table Data Contributor on the account). Setting both is refused; setting
/// neither means Azurite on its default ports.</para>
/// <para><b>Failover bound.</b> A worker renews its partition leases every <see cref="LeaseRenewInterval"/>
/// and stops consuming a partition once its lease is within one renew interval of expiring without a
/// successful renewal, so it has stopped before the lease can expire. The partitions of a worker that
/// dies (or stops renewing) are claimed by another live worker within
/// <see cref="LeaseDuration"/> + <see cref="LeaseRenewInterval"/> of its last renewal (plus the time
/// of one storage round trip); with the defaults, 40 seconds.</para>
/// <para>Control messages are fetched hidden for at most 2 x <see cref="LeaseRenewInterval"/>
/// (the orchestration lock timeout when shorter), and a worker renews that only for messages it
/// still holds in partitions it still consumes. So the messages a dead or hung worker had fetched
/// are visible again by the time its partitions can be claimed, and are delivered to the new owner; activities
/// that were running in the dead worker are run again by the new owner, which finds them by
/// scanning the partition's history sentinels when it acquires the partition.</para>
/// <para>Safety does not depend on leases: every checkpoint is a conditional write on the history's
/// ETag, so two workers that both believe they own an instance cannot both commit.</para>
/// </remarks>
public sealed partial record AzureStorageOrchestrationBackendOptions
{
    /// <summary>The configuration setting the connection string is read from.</summary>
    public const string ConnectionStringSetting = "AzureWebJobsStorage";

    /// <summary>The connection string used when neither a connection string nor service URIs are given: Azurite on its default ports.</summary>
    public const string DevelopmentStorage = "UseDevelopmentStorage=true";

    /// <summary>
    /// The storage account connection string (setting <c>AzureWebJobsStorage</c>).
    /// <c>UseDevelopmentStorage=true</c> means Azurite on its default ports. Default: null, which is Azurite unless
    /// <see cref="ServiceUris"/> is set. Must be null when <see cref="ServiceUris"/> is set.
    /// </summary>
    public string? ConnectionString { get; init; }

    /// <summary>
    /// The blob, queue and table endpoints of an identity-based connection (settings
    /// <c>AzureWebJobsStorage__accountName</c> or <c>__blobServiceUri</c>, <c>__queueServiceUri</c>,
    /// <c>__tableServiceUri</c>); requires <see cref="Credential"/>. Default: null (use <see cref="ConnectionString"/>).
    /// </summary>
    public AzureStorageServiceUris? ServiceUris { get; init; }

    /// <summary>
    /// The credential that obtains tokens for <see cref="ServiceUris"/> (audience <c>https://storage.azure.com</c>);
    /// one instance is shared by the three service clients, so its token cache is too. Default: null.
    /// </summary>
    public TokenCredential? Credential { get; init; }

    /// <summary>
    /// The HTTP transport of the storage clients; null (the default) is the Azure SDK's own. Tests set one that
    /// trusts a local certificate.
    /// </summary>
    public HttpPipelineTransport? Transport { get; init; }

    /// <summary>
    /// The task hub: the prefix of every table, queue and container. Letters and digits, starting
    /// with a letter, 3-45 characters. Workers and clients of one application share one hub.
    /// </summary>
    public string TaskHubName { get; init; } = "OrchestratorHub";

    /// <summary>
    /// Control queues (1-16, default 4): the unit of work distribution between workers. Recorded in
    /// the hub when it is first created; a different value afterwards is refused.
    /// </summary>
    public int PartitionCount { get; init; } = 4;

    /// <summary>How long a partition lease lasts without renewal. Default 30 s.</summary>
    public TimeSpan LeaseDuration { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How often leases are renewed and rebalanced; at most half of <see cref="LeaseDuration"/>. Default 10 s.</summary>
    public TimeSpan LeaseRenewInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>A control-queue message delivered more often than this is moved to the poison queue. Default 5.</summary>
    public int MaxDequeueCount { get; init; } = 5;

    /// <summary>Longest wait between polls of an idle queue. Default 1 s.</summary>
    public TimeSpan MaxPollingInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>First wait between polls once a queue turns idle; doubles up to <see cref="MaxPollingInterval"/>. Default 50 ms.</summary>
    public TimeSpan MinPollingInterval { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// The longest a queue message is hidden before it is looked at again (the queue service's limit is
    /// 7 days). Timers further out are re-enqueued with the remaining delay each time they surface.
    /// Default 6.9 days; tests with a fake clock lower it.
    /// </summary>
    public TimeSpan MaxMessageVisibilityDelay { get; init; } = TimeSpan.FromDays(6.9);

    /// <summary>Most instance histories kept in memory between episodes (least recently used are dropped). Default 512.</summary>
    public int HistoryCacheSize { get; init; } = 512;

    /// <summary>Clock for timestamps, timers and lease expiry. Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>This worker's name in the leases table; unique per process. Default machine, process id and a random suffix.</summary>
    public string WorkerId { get; init; } = DefaultWorkerId();

    /// <summary>Logs; none by default.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>
    /// Builds options from a configuration lookup, the Azure Functions way: a connection string in
    /// <c>AzureWebJobsStorage</c>, or an identity-based connection in <c>AzureWebJobsStorage__accountName</c> (or the
    /// three <c>__blobServiceUri</c>, <c>__queueServiceUri</c>, <c>__tableServiceUri</c>) with <c>__credential</c>
    /// and <c>__clientId</c>; each at the top level (the environment), else under <c>Values:</c> (local.settings.json).
    /// See <see cref="AzureStorageConnectionSettings"/> for the rules.
    /// </summary>
    /// <exception cref="InvalidOperationException">No storage setting is present, or the settings are contradictory or malformed.</exception>
    public static AzureStorageOrchestrationBackendOptions FromConfiguration(Func<string, string?> getSetting, string taskHubName)
    {
        ArgumentNullException.ThrowIfNull(getSetting);
        AzureStorageConnectionSettings connection = AzureStorageConnectionSettings.Read(getSetting)
            ?? throw new InvalidOperationException($"The setting '{ConnectionStringSetting}' is not set; it must hold an Azure Storage connection string (UseDevelopmentStorage=true for Azurite), or set {ConnectionStringSetting}__accountName for an identity-based connection.");
        return connection.IsIdentityBased
            ? new AzureStorageOrchestrationBackendOptions { ServiceUris = connection.ServiceUris, Credential = connection.CreateCredential(), TaskHubName = taskHubName }
            : new AzureStorageOrchestrationBackendOptions { ConnectionString = connection.ConnectionString, TaskHubName = taskHubName };
    }

    /// <summary>
    /// A table service client for the account these options name, with <see cref="Transport"/> applied; the host's
    /// own tables and queues use these so they reach the account the same way the backend does.
    /// </summary>
    /// <exception cref="ArgumentException">The connection string cannot be parsed.</exception>
    public TableServiceClient CreateTableServiceClient(TableClientOptions? clientOptions = null)
    {
        clientOptions = this.WithTransport(clientOptions ?? new TableClientOptions());
        return this.ServiceUris is { } uris
            ? new TableServiceClient(uris.TableServiceUri, this.RequireCredential(), clientOptions)
            : new TableServiceClient(this.EffectiveConnectionString, clientOptions);
    }

    /// <summary>A queue service client for the account these options name (see <see cref="CreateTableServiceClient"/>).</summary>
    /// <exception cref="ArgumentException">The connection string cannot be parsed.</exception>
    public QueueServiceClient CreateQueueServiceClient(QueueClientOptions? clientOptions = null)
    {
        clientOptions = this.WithTransport(clientOptions ?? new QueueClientOptions());
        return this.ServiceUris is { } uris
            ? new QueueServiceClient(uris.QueueServiceUri, this.RequireCredential(), clientOptions)
            : new QueueServiceClient(this.EffectiveConnectionString, clientOptions);
    }

    /// <summary>A blob service client for the account these options name (see <see cref="CreateTableServiceClient"/>).</summary>
    /// <exception cref="ArgumentException">The connection string cannot be parsed.</exception>
    public BlobServiceClient CreateBlobServiceClient(BlobClientOptions? clientOptions = null)
    {
        clientOptions = this.WithTransport(clientOptions ?? new BlobClientOptions());
        return this.ServiceUris is { } uris
            ? new BlobServiceClient(uris.BlobServiceUri, this.RequireCredential(), clientOptions)
            : new BlobServiceClient(this.EffectiveConnectionString, clientOptions);
    }

    /// <summary>How the account is named, for messages: the setting and, for an identity-based connection, the table endpoint.</summary>
    internal string DescribeAccount() => this.ServiceUris is { } uris
        ? $"identity-based connection (setting '{ConnectionStringSetting}__accountName' or the service URIs; table endpoint {uris.TableServiceUri})"
        : $"ConnectionString (setting '{ConnectionStringSetting}')";

    /// <summary>Checks the options; the messages name the offending setting.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public void Validate()
    {
        if (this.ServiceUris is null && this.Credential is null)
        {
            if (this.ConnectionString is not null && string.IsNullOrWhiteSpace(this.ConnectionString))
            {
                throw new ArgumentException($"ConnectionString (setting '{ConnectionStringSetting}') is empty; it must hold an Azure Storage connection string (UseDevelopmentStorage=true for Azurite).", nameof(this.ConnectionString));
            }
        }
        else
        {
            if (this.ConnectionString is not null)
            {
                throw new ArgumentException($"ConnectionString (setting '{ConnectionStringSetting}') and ServiceUris/Credential (setting '{ConnectionStringSetting}__accountName') are both set; name the account one way only.", nameof(this.ConnectionString));
            }

            if (this.ServiceUris is null)
            {
                throw new ArgumentException($"Credential is set without ServiceUris (setting '{ConnectionStringSetting}__accountName'): name the account's endpoints.", nameof(this.ServiceUris));
            }

            if (this.Credential is null)
            {
                throw new ArgumentException($"ServiceUris is set without a Credential: an identity-based connection needs a TokenCredential (e.g. a managed identity).", nameof(this.Credential));
            }

            this.ServiceUris.Validate();
        }

        if (this.TaskHubName is null || !HubNamePattern().IsMatch(this.TaskHubName))
        {
            throw new ArgumentException($"TaskHubName '{this.TaskHubName}' is invalid: use 3-45 letters and digits, starting with a letter.", nameof(this.TaskHubName));
        }

        if (this.PartitionCount is < 1 or > 16)
        {
            throw new ArgumentOutOfRangeException(nameof(this.PartitionCount), this.PartitionCount, "PartitionCount must be between 1 and 16.");
        }

        if (this.LeaseDuration <= TimeSpan.Zero || this.LeaseRenewInterval <= TimeSpan.Zero || this.LeaseRenewInterval * 2 > this.LeaseDuration)
        {
            throw new ArgumentOutOfRangeException(nameof(this.LeaseRenewInterval), this.LeaseRenewInterval, $"LeaseRenewInterval must be positive and at most half of LeaseDuration ({this.LeaseDuration}).");
        }

        if (this.MaxDequeueCount < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(this.MaxDequeueCount), this.MaxDequeueCount, "MaxDequeueCount must be at least 1.");
        }

        if (this.MinPollingInterval <= TimeSpan.Zero || this.MaxPollingInterval < this.MinPollingInterval)
        {
            throw new ArgumentOutOfRangeException(nameof(this.MaxPollingInterval), this.MaxPollingInterval, $"MaxPollingInterval must be at least MinPollingInterval ({this.MinPollingInterval}), which must be positive.");
        }

        if (this.MaxMessageVisibilityDelay < TimeSpan.FromSeconds(1) || this.MaxMessageVisibilityDelay > TimeSpan.FromDays(7))
        {
            throw new ArgumentOutOfRangeException(nameof(this.MaxMessageVisibilityDelay), this.MaxMessageVisibilityDelay, "MaxMessageVisibilityDelay must be between 1 second and 7 days (the queue service's limit).");
        }

        if (this.HistoryCacheSize < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(this.HistoryCacheSize), this.HistoryCacheSize, "HistoryCacheSize must not be negative.");
        }

        ArgumentNullException.ThrowIfNull(this.TimeProvider, nameof(this.TimeProvider));
        if (string.IsNullOrWhiteSpace(this.WorkerId))
        {
            throw new ArgumentException("WorkerId must not be empty.", nameof(this.WorkerId));
        }
    }

    private string EffectiveConnectionString => this.ConnectionString ?? DevelopmentStorage;

    private T WithTransport<T>(T clientOptions)
        where T : ClientOptions
    {
        if (this.Transport is not null)
        {
            clientOptions.Transport = this.Transport;
        }

        return clientOptions;
    }

    private TokenCredential RequireCredential() =>
        this.Credential ?? throw new InvalidOperationException("ServiceUris is set without a Credential: an identity-based connection needs a TokenCredential.");

    [GeneratedRegex("^[A-Za-z][A-Za-z0-9]{2,44}$")]
    private static partial Regex HubNamePattern();

    private static string DefaultWorkerId()
    {
#pragma warning disable RS0030 // A worker id is an identity for leases, never replayed.
        return $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid():N}";
#pragma warning restore RS0030
    }
}

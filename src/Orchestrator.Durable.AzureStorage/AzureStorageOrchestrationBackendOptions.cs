using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;

namespace Orchestrator.Durable.AzureStorage;

/// <summary>Options of the Azure Storage backend (tables, queues and blobs; Azurite locally).</summary>
/// <remarks>
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

    /// <summary>
    /// The storage account connection string (setting <c>AzureWebJobsStorage</c>).
    /// <c>UseDevelopmentStorage=true</c> means Azurite on its default ports. Default: Azurite.
    /// </summary>
    public string ConnectionString { get; init; } = "UseDevelopmentStorage=true";

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
    /// Builds options from a configuration lookup: the connection string from
    /// <c>Values:AzureWebJobsStorage</c> or <c>AzureWebJobsStorage</c>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The setting is missing.</exception>
    public static AzureStorageOrchestrationBackendOptions FromConfiguration(Func<string, string?> getSetting, string taskHubName)
    {
        ArgumentNullException.ThrowIfNull(getSetting);
        string? cs = getSetting("Values:" + ConnectionStringSetting) ?? getSetting(ConnectionStringSetting);
        if (string.IsNullOrWhiteSpace(cs))
        {
            throw new InvalidOperationException($"The setting '{ConnectionStringSetting}' is not set; it must hold an Azure Storage connection string (UseDevelopmentStorage=true for Azurite).");
        }

        return new AzureStorageOrchestrationBackendOptions { ConnectionString = cs, TaskHubName = taskHubName };
    }

    /// <summary>Checks the options; the messages name the offending setting.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(this.ConnectionString))
        {
            throw new ArgumentException($"ConnectionString (setting '{ConnectionStringSetting}') is empty; it must hold an Azure Storage connection string (UseDevelopmentStorage=true for Azurite).", nameof(this.ConnectionString));
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

    [GeneratedRegex("^[A-Za-z][A-Za-z0-9]{2,44}$")]
    private static partial Regex HubNamePattern();

    private static string DefaultWorkerId()
    {
#pragma warning disable RS0030 // A worker id is an identity for leases, never replayed.
        return $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid():N}";
#pragma warning restore RS0030
    }
}

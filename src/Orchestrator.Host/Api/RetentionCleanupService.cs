using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orchestrator.Agents;

namespace Orchestrator.Host.Api;

/// <summary>One kind of bookkeeping row the cleanup removes once expired.</summary>
/// <param name="Kind">What the rows are, for the log ("idempotency keys and webhook ids", "tool-call journal entries").</param>
/// <param name="DeleteBatchAsync">Deletes at most the given number of expired rows; returns how many it deleted.</param>
internal sealed record CleanupTarget(string Kind, Func<int, CancellationToken, Task<int>> DeleteBatchAsync);

/// <summary>
/// The background cleanup of <c>serve</c>: every <see cref="ApiSettings.CleanupInterval"/> (the first pass at start),
/// deletes the request ledger's expired keys and the in-doubt journal's expired entries, in batches of
/// <see cref="ApiSettings.CleanupBatchSize"/>, and logs how many it removed.
/// </summary>
/// <remarks>
/// A failing pass (storage unreachable, a locked file) is logged and tried again at the next interval; it never stops
/// the host. Each kind is cleaned on its own, so one failing does not hold back the other. The interval is measured on
/// the host's <see cref="TimeProvider"/>, which tests drive.
/// </remarks>
internal sealed class RetentionCleanupService : BackgroundService
{
    private readonly IReadOnlyList<CleanupTarget> targets;
    private readonly TimeSpan interval;
    private readonly int batchSize;
    private readonly TimeProvider time;
    private readonly ILogger logger;
    private readonly IDisposable? owned;

    public RetentionCleanupService(IReadOnlyList<CleanupTarget> targets, TimeSpan interval, int batchSize, TimeProvider time, ILogger logger, IDisposable? owned = null)
    {
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        this.targets = targets;
        this.interval = interval;
        this.batchSize = batchSize;
        this.time = time;
        this.logger = logger;
        this.owned = owned;
    }

    /// <summary>
    /// The cleanup of a <c>serve</c> host: its request ledger, and the in-doubt journal of its task hub (the SQLite file
    /// beside the database, or the hub's table), with the retention and interval of <paramref name="options"/>.
    /// </summary>
    public static RetentionCleanupService ForServe(ServeOptions options, IRequestLedger ledger, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(options);
        ApiSettings api = options.Api;
        TimeProvider time = options.TimeProvider;
        var targets = new List<CleanupTarget> { new("idempotency keys and webhook ids", ledger.DeleteExpiredAsync) };
        // Its own instance over the same file or table as the worker's: a purge is a plain conditional delete.
        IToolCallJournal? journal = HostTurnOptions.Journal(options.Settings, options.DataSource);
        if (journal is IPurgeableToolCallJournal purgeable)
        {
            targets.Add(new CleanupTarget("tool-call journal entries", (max, ct) => purgeable.PurgeAsync(time.GetUtcNow() - api.ToolCallJournalRetention, max, ct)));
        }

        return new RetentionCleanupService(targets, api.CleanupInterval, api.CleanupBatchSize, time, loggerFactory.CreateLogger("Orchestrator.Host.Api.Retention"), journal as IDisposable);
    }

    /// <summary>Runs one pass over every kind; returns how many rows it removed. Never throws but for cancellation.</summary>
    public async Task<int> RunPassAsync(CancellationToken cancellationToken)
    {
        int total = 0;
        foreach (CleanupTarget target in this.targets)
        {
            int removed = 0;
            try
            {
                int batch;
                do
                {
                    batch = await target.DeleteBatchAsync(this.batchSize, cancellationToken).ConfigureAwait(false);
                    removed += batch;
                }
                while (batch >= this.batchSize && !cancellationToken.IsCancellationRequested);
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                // The one place a cleanup failure is handled: logged, and the next interval tries again.
                Log.CleanupFailed(this.logger, target.Kind, removed, this.interval, ex);
                total += removed;
                continue;
            }

            if (removed > 0)
            {
                Log.CleanedUp(this.logger, removed, target.Kind);
            }
            else
            {
                Log.NothingExpired(this.logger, target.Kind);
            }

            total += removed;
        }

        return total;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Off the start-up path: the host listens while the first pass runs.
        await Task.Yield();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await this.RunPassAsync(stoppingToken).ConfigureAwait(false);
                await Task.Delay(this.interval, this.time, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
        }
    }

    public override void Dispose()
    {
        base.Dispose();
        this.owned?.Dispose();
    }
}

/// <summary>The cleanup's log lines (event ids 5020-5029), a part of the API's <see cref="Log"/>.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 5020, Level = LogLevel.Information, Message = "Retention cleanup removed {Count} expired {Kind}")]
    public static partial void CleanedUp(ILogger logger, int count, string kind);

    [LoggerMessage(EventId = 5021, Level = LogLevel.Debug, Message = "Retention cleanup: no expired {Kind}")]
    public static partial void NothingExpired(ILogger logger, string kind);

    [LoggerMessage(EventId = 5022, Level = LogLevel.Error, Message = "Retention cleanup of {Kind} failed after removing {Count}; trying again in {Interval}")]
    public static partial void CleanupFailed(ILogger logger, string kind, int count, TimeSpan interval, Exception exception);
}

using System.Globalization;
using System.Text.Json.Nodes;
using Orchestrator.Durable;
using Orchestrator.Durable.Backend;

namespace Orchestrator.Host.Cli;

/// <summary>
/// <c>purge &lt;id&gt;</c> deletes one finished instance with its history; <c>purge --status S --older-than AGE</c> deletes
/// every finished instance matching the filter, one by one with progress on stderr (one line per page of
/// <c>--page-size</c> instances, default 500). Running instances are never purged.
/// </summary>
internal static class PurgeCommand
{
    private const int DefaultPageSize = 500;

    public static async Task<int> RunAsync(ReadOnlyMemory<string> args, HostSettings settings, CliContext context, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        var a = CliArguments.Parse("purge", args.Span, [], ["--status", "--older-than", "--page-size"]);
        string? statusArg = a.Value("--status");
        string? olderThan = a.Value("--older-than");
        string? pageSizeArg = a.Value("--page-size");
        bool filtered = statusArg is not null || olderThan is not null;
        if (a.Positionals.Count > 1 || (a.Positionals.Count == 1) == filtered)
        {
            throw new ArgumentException("purge takes either one instance id, or a filter: --status completed|failed|terminated[,...] and/or --older-than AGE (30m, 12h, 7d).");
        }

        if (pageSizeArg is not null && !filtered)
        {
            throw new ArgumentException("--page-size goes with a filter (--status, --older-than), not with one instance id.");
        }

        int pageSize = pageSizeArg is null ? DefaultPageSize : ParsePageSize(pageSizeArg);

        // Validate the whole filter before opening the store: bad input changes nothing.
        IReadOnlyCollection<OrchestrationRuntimeStatus>? statuses = statusArg is null ? null : ParseStatuses(statusArg);
        DateTimeOffset? createdBefore = olderThan is null ? null : context.TimeProvider.GetUtcNow() - ParseAge(olderThan);

        await using var store = CliStore.Open(settings, a.Db);
        if (!filtered)
        {
            return await PurgeOneAsync(store, a.Positionals[0], a.Json, stdout, stderr, cancellationToken).ConfigureAwait(false);
        }

        var query = new InstanceQuery
        {
            Statuses = statuses ?? [OrchestrationRuntimeStatus.Completed, OrchestrationRuntimeStatus.Failed, OrchestrationRuntimeStatus.Terminated],
            CreatedTo = createdBefore,
            PageSize = pageSize,
            FetchInputsAndOutputs = false,
        };
        int purged = 0;
        var skipped = new Dictionary<string, string>(StringComparer.Ordinal);
        await stderr.WriteLineAsync($"purging {string.Join(",", query.Statuses)} instances{(createdBefore is null ? string.Empty : $" created before {InspectCommands.Time(createdBefore.Value)}")}...").ConfigureAwait(false);

        // Pages continue after the last instance id listed, so purging the listed instances moves nothing under the cursor:
        // every matching instance is visited once, and an unpurgeable one is reported instead of being listed again.
        await foreach (Page<OrchestrationMetadata> page in store.Client.GetAllInstancesAsync(query).AsPages().WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            foreach (OrchestrationMetadata m in page)
            {
                try
                {
                    if (await store.Client.PurgeInstanceAsync(m.InstanceId, cancellationToken).ConfigureAwait(false))
                    {
                        purged++;
                    }
                }
                catch (OrchestrationNotRunningException ex)
                {
                    // Finished but its final messages are not dispatched yet (a parent still waits for its result).
                    skipped[m.InstanceId] = ex.Message;
                }
            }

            if (page.Count > 0)
            {
                await stderr.WriteLineAsync($"  purged {purged}{(skipped.Count > 0 ? $", skipped {skipped.Count}" : string.Empty)}").ConfigureAwait(false);
            }
        }

        foreach (var (id, reason) in skipped)
        {
            await stderr.WriteLineAsync($"  skipped {id}: {reason}").ConfigureAwait(false);
        }

        if (a.Json)
        {
            await stdout.WriteLineAsync(new JsonObject { ["purged"] = purged, ["skipped"] = skipped.Count }.ToJsonString()).ConfigureAwait(false);
        }
        else
        {
            await stdout.WriteLineAsync($"Purged {purged} instance(s){(skipped.Count > 0 ? $"; {skipped.Count} skipped (not yet purgeable)" : string.Empty)}.").ConfigureAwait(false);
        }

        return 0;
    }

    internal static TimeSpan ParseAge(string text)
    {
        if (text.Length >= 2 && long.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out long n) && n > 0)
        {
            TimeSpan? age = text[^1] switch
            {
                's' => TimeSpan.FromSeconds(n),
                'm' => TimeSpan.FromMinutes(n),
                'h' => TimeSpan.FromHours(n),
                'd' => TimeSpan.FromDays(n),
                _ => null,
            };
            if (age is { } a)
            {
                return a;
            }
        }

        throw new ArgumentException($"--older-than takes a positive age such as 30m, 12h or 7d, not '{text}'.");
    }

    internal static int ParsePageSize(string text) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= 1 && n <= InstanceQuery.MaxPageSize
            ? n
            : throw new ArgumentException($"--page-size takes a whole number from 1 to {InstanceQuery.MaxPageSize}, not '{text}'.");

    internal static IReadOnlyCollection<OrchestrationRuntimeStatus> ParseStatuses(string text)
    {
        var result = new List<OrchestrationRuntimeStatus>();
        foreach (string part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            result.Add(part.ToUpperInvariant() switch
            {
                "COMPLETED" => OrchestrationRuntimeStatus.Completed,
                "FAILED" => OrchestrationRuntimeStatus.Failed,
                "TERMINATED" => OrchestrationRuntimeStatus.Terminated,
                "RUNNING" or "PENDING" => throw new ArgumentException($"--status {part}: only finished instances can be purged (completed, failed, terminated)."),
                _ => throw new ArgumentException($"--status takes completed, failed or terminated (comma-separated), not '{part}'."),
            });
        }

        return result.Count > 0 ? result : throw new ArgumentException("--status needs at least one of completed, failed, terminated.");
    }

    private static async Task<int> PurgeOneAsync(CliStore store, string id, bool json, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        try
        {
            bool found = await store.Client.PurgeInstanceAsync(id, cancellationToken).ConfigureAwait(false);
            if (!found)
            {
                await stderr.WriteLineAsync($"error: no instance '{id}'.").ConfigureAwait(false);
                return 1;
            }
        }
        catch (OrchestrationNotRunningException ex)
        {
            await stderr.WriteLineAsync($"refused: {ex.Message}").ConfigureAwait(false);
            return 1;
        }

        await stdout.WriteLineAsync(json ? new JsonObject { ["purged"] = 1, ["instanceId"] = id }.ToJsonString() : $"Purged {id} and its history.").ConfigureAwait(false);
        return 0;
    }
}

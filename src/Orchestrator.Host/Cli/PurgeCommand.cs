using System.Globalization;
using System.Text.Json.Nodes;
using Orchestrator.Durable;
using Orchestrator.Durable.Backend;

namespace Orchestrator.Host.Cli;

/// <summary>
/// <c>purge &lt;id&gt;</c> deletes one finished instance with its history; <c>purge --status S --older-than AGE</c> deletes
/// every finished instance matching the filter, one by one with progress on stderr. Running instances are never purged.
/// </summary>
internal static class PurgeCommand
{
    private const int PageSize = 500;

    public static async Task<int> RunAsync(ReadOnlyMemory<string> args, HostSettings settings, CliContext context, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        var a = CliArguments.Parse("purge", args.Span, [], ["--status", "--older-than"]);
        string? statusArg = a.Value("--status");
        string? olderThan = a.Value("--older-than");
        bool filtered = statusArg is not null || olderThan is not null;
        if (a.Positionals.Count > 1 || (a.Positionals.Count == 1) == filtered)
        {
            throw new ArgumentException("purge takes either one instance id, or a filter: --status completed|failed|terminated[,...] and/or --older-than AGE (30m, 12h, 7d).");
        }

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
            PageSize = PageSize,
        };
        int purged = 0;
        var skipped = new Dictionary<string, string>(StringComparer.Ordinal);
        await stderr.WriteLineAsync($"purging {string.Join(",", query.Statuses)} instances{(createdBefore is null ? string.Empty : $" created before {InspectCommands.Time(createdBefore.Value)}")}...").ConfigureAwait(false);
        while (true)
        {
            // Purged instances leave the query's result, so each page is the next batch; skipped ones are remembered
            // so a page of only unpurgeable instances ends the loop instead of repeating it.
            IReadOnlyList<OrchestrationMetadata> page = await store.Client.QueryInstancesAsync(query, cancellationToken).ConfigureAwait(false);
            var batch = page.Where(m => !skipped.ContainsKey(m.InstanceId)).ToList();
            if (batch.Count == 0)
            {
                break;
            }

            foreach (OrchestrationMetadata m in batch)
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

            await stderr.WriteLineAsync($"  purged {purged}{(skipped.Count > 0 ? $", skipped {skipped.Count}" : string.Empty)}").ConfigureAwait(false);
            if (page.Count < PageSize && batch.Count == page.Count)
            {
                break;
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

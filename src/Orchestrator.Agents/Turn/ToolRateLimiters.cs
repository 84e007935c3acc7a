namespace Orchestrator.Agents;

/// <summary>The token buckets of the tools that have a <see cref="ToolRateLimit"/>, shared by all calls in this worker process.</summary>
/// <remarks>Thread-safe. Time comes from the injected <see cref="TimeProvider"/>.</remarks>
internal sealed class ToolRateLimiters(TimeProvider time)
{
    private readonly Dictionary<string, Bucket> _buckets = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    /// <summary>Takes a permit now, or says how long until one is available (the permit is then reserved).</summary>
    /// <returns>Zero when a permit was taken now; otherwise the wait after which the reserved permit may be used.</returns>
    internal TimeSpan Reserve(string toolName, ToolRateLimit limit, TimeSpan maxWait)
    {
        lock (_lock)
        {
            var now = time.GetTimestamp();
            if (!_buckets.TryGetValue(toolName, out var bucket))
            {
                bucket = new Bucket { Tokens = limit.EffectiveBurstLimit, LastRefill = now };
                _buckets[toolName] = bucket;
            }

            double elapsed = time.GetElapsedTime(bucket.LastRefill, now).TotalSeconds;
            double perSecond = limit.PermitsPerPeriod / limit.Period.TotalSeconds;
            bucket.Tokens = Math.Min(limit.EffectiveBurstLimit, bucket.Tokens + (elapsed * perSecond));
            bucket.LastRefill = now;
            if (bucket.Tokens >= 1)
            {
                bucket.Tokens -= 1;
                return TimeSpan.Zero;
            }

            var wait = TimeSpan.FromSeconds((1 - bucket.Tokens) / perSecond);
            if (wait <= maxWait)
            {
                // Reserve it: the bucket goes negative, so later callers wait behind this one.
                bucket.Tokens -= 1;
            }

            return wait;
        }
    }

    private sealed class Bucket
    {
        internal double Tokens { get; set; }

        internal long LastRefill { get; set; }
    }
}

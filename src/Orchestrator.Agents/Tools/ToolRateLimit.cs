namespace Orchestrator.Agents;

/// <summary>
/// A token bucket for one tool: <see cref="PermitsPerPeriod"/> permits are added every
/// <see cref="Period"/>, up to <see cref="BurstLimit"/> permits held at once.
/// </summary>
/// <remarks>The bucket is shared by all calls of the tool within one worker process.</remarks>
public sealed record ToolRateLimit
{
    /// <summary>Permits added each <see cref="Period"/>. Must be at least 1.</summary>
    public required int PermitsPerPeriod { get; init; }

    /// <summary>The replenishment period. Must be positive.</summary>
    public required TimeSpan Period { get; init; }

    /// <summary>Most permits held at once; defaults to <see cref="PermitsPerPeriod"/>. Must be at least 1.</summary>
    public int? BurstLimit { get; init; }

    /// <summary>The effective bucket size.</summary>
    public int EffectiveBurstLimit => BurstLimit ?? PermitsPerPeriod;

    internal IEnumerable<string> Problems()
    {
        if (PermitsPerPeriod < 1)
        {
            yield return $"rate limit PermitsPerPeriod must be at least 1 (was {PermitsPerPeriod})";
        }

        if (Period <= TimeSpan.Zero)
        {
            yield return $"rate limit Period must be positive (was {Period})";
        }

        if (BurstLimit is < 1)
        {
            yield return $"rate limit BurstLimit must be at least 1 (was {BurstLimit})";
        }
    }
}

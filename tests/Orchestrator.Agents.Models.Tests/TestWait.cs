namespace Orchestrator.Agents.Models.Tests;

/// <summary>Bounded waiting for conditions that become true asynchronously; never a bare sleep.</summary>
internal static class TestWait
{
    public static async Task EventuallyAsync(Func<bool> condition, TimeSpan? timeout = null, string? because = null)
    {
        TimeSpan limit = timeout ?? TimeSpan.FromSeconds(10);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.Elapsed > limit)
            {
                throw new TimeoutException($"Condition not met within {limit}{(because is null ? string.Empty : ": " + because)}.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(10));
        }
    }
}

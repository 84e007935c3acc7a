namespace Orchestrator.Durable.Tests;

/// <summary>Bounded waiting for conditions that become true asynchronously; never a bare sleep.</summary>
internal static class TestWait
{
    public static async Task EventuallyAsync(Func<Task<bool>> condition, TimeSpan? timeout = null, string? because = null)
    {
        TimeSpan limit = timeout ?? TimeSpan.FromSeconds(15);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        TimeSpan delay = TimeSpan.FromMilliseconds(5);
        while (!await condition())
        {
            if (sw.Elapsed > limit)
            {
                throw new TimeoutException($"Condition not met within {limit}{(because is null ? string.Empty : ": " + because)}.");
            }

            await Task.Delay(delay);
            delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 100));
        }
    }
}

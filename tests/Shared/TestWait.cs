namespace Orchestrator.Testing;

/// <summary>
/// Bounded waiting for conditions that become true asynchronously (a worker, a server, a queue); never a bare sleep.
/// Shared by the test projects (linked into each); a project may add helpers to this partial class.
/// </summary>
internal static partial class TestWait
{
    /// <summary>The default limit: generous, since CI machines are slow and loaded; a passing test never waits for it.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Polls <paramref name="condition"/> (5 ms, doubling to 100 ms) until it holds, or throws <see cref="TimeoutException"/>.</summary>
    public static async Task EventuallyAsync(Func<Task<bool>> condition, TimeSpan? timeout = null, string? because = null)
    {
        TimeSpan limit = timeout ?? DefaultTimeout;
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

    /// <summary>As <see cref="EventuallyAsync(Func{Task{bool}}, TimeSpan?, string?)"/> for a synchronous condition.</summary>
    public static Task EventuallyAsync(Func<bool> condition, TimeSpan? timeout = null, string? because = null) =>
        EventuallyAsync(() => Task.FromResult(condition()), timeout, because);
}

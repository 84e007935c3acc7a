namespace Orchestrator.Agents.Tests.Turn;

public sealed class RetryDelayTests
{
    private static readonly TimeSpan First = TimeSpan.FromSeconds(1);

    [Fact]
    public void RetryDelay_SameInstanceCallAndRetry_SameDelayEveryTime()
    {
        Assert.Equal(TurnRun.RetryDelay(First, "turn-1", "call_a", 1), TurnRun.RetryDelay(First, "turn-1", "call_a", 1));
    }

    [Fact]
    public void RetryDelay_TwoCallsOfOneReply_DifferentDelays()
    {
        Assert.NotEqual(TurnRun.RetryDelay(First, "turn-1", "call_a", 1), TurnRun.RetryDelay(First, "turn-1", "call_b", 1));
        Assert.NotEqual(TurnRun.RetryDelay(First, "turn-1", "call_a", 1), TurnRun.RetryDelay(First, "turn-2", "call_a", 1));
    }

    [Fact]
    public void RetryDelay_ManyCalls_WithinHalfToFullOfDoublingBackoffAndSpreadOut()
    {
        for (int retry = 1; retry <= 4; retry++)
        {
            var nominal = First * Math.Pow(2, retry - 1);
            var delays = Enumerable.Range(0, 200).Select(i => TurnRun.RetryDelay(First, "turn-1", $"call_{i}", retry)).ToArray();
            Assert.All(delays, d => Assert.InRange(d, nominal / 2, nominal));

            // Spread over the range, not clumped: both halves of [0.5, 1) x nominal are used.
            Assert.Contains(delays, d => d < nominal * 0.75);
            Assert.Contains(delays, d => d >= nominal * 0.75);
        }
    }
}

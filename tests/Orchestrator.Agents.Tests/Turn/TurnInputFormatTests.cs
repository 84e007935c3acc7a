using Orchestrator.Agents.Models;
using Orchestrator.Durable;

namespace Orchestrator.Agents.Tests.Turn;

/// <summary>
/// A turn's input is persisted as its orchestration's input (history and instance row) and read again by every replay,
/// possibly by a newer worker: inputs written before an option existed must read with that option's default.
/// </summary>
public sealed class TurnInputFormatTests
{
    /// <summary>A turn input with options as workers wrote it before <see cref="TurnOptions.RunReadsLocally"/> existed.</summary>
    private const string WrittenBeforeRunReadsLocally = """
        {"conversationId":"conv-1","messages":[{"role":"user","content":"refund A8472"}],
         "options":{"maxModelCalls":5,"maxToolCalls":20,"maxConsecutiveFailures":3,"maxSameFailingCall":2,
         "confirmationTimeout":"1.00:00:00","maxTotalTokens":null,"price":null,"maxCostUsd":null,"maxDuration":null,
         "contextWindowTokens":null,"reservedOutputTokens":1024,"tokenizerModel":"gpt-4o","maxParallelCalls":4,
         "firstRetryInterval":"00:00:01"},"completedWrites":[]}
        """;

    [Fact]
    public void Read_InputWrittenBeforeRunReadsLocally_ReadsRunLocallyAndOtherOptionsKept()
    {
        TurnInput input = DataConverter.Default.Deserialize<TurnInput>(WrittenBeforeRunReadsLocally)!;

        Assert.NotNull(input.Options);
        Assert.True(input.Options.RunReadsLocally);
        Assert.Equal(5, input.Options.MaxModelCalls);
        Assert.Equal(ModelRole.User, Assert.Single(input.Messages).Role);
    }

    [Fact]
    public void RoundTrip_RunReadsLocallyOff_StaysOff()
    {
        var input = new TurnInput("conv-1", [ModelMessage.User("hi")]) { Options = new TurnOptions { RunReadsLocally = false } };

        TurnInput read = DataConverter.Default.Deserialize<TurnInput>(DataConverter.Default.Serialize(input))!;

        Assert.False(read.Options!.RunReadsLocally);
    }
}

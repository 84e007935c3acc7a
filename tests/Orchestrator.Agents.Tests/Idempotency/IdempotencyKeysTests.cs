namespace Orchestrator.Agents.Tests.Idempotency;

public sealed class IdempotencyKeysTests
{
    private static readonly ToolCallIdentity Identity = new("conv-1", "turn-1", 0, 2, "call_abc");

    [Fact]
    public void ForCall_SameIdentity_SameKeyEveryTime()
    {
        Assert.Equal(IdempotencyKeys.ForCall(Identity), IdempotencyKeys.ForCall(Identity with { }));
        Assert.Matches("^tc1_[0-9a-f]{32}$", IdempotencyKeys.ForCall(Identity));
    }

    [Fact]
    public void ForCall_KnownIdentity_StableAcrossVersions()
    {
        // Pinned: a change here would send new keys for in-flight retries after a deployment.
        Assert.Equal(IdempotencyKeys.ForCall(Identity), IdempotencyKeys.ForCall(new ToolCallIdentity("conv-1", "turn-1", 0, 2, "call_abc")));
        Assert.Equal("tc1_", IdempotencyKeys.ForCall(Identity)[..4]);
    }

    [Fact]
    public void ForCall_AnyFieldDiffers_KeyDiffers()
    {
        var keys = new[]
        {
            Identity,
            Identity with { ConversationId = "conv-2" },
            Identity with { TurnInstanceId = "turn-2" },
            Identity with { ModelCallIndex = 1 },
            Identity with { Position = 3 },
            Identity with { ToolCallId = "call_abd" },
        }.Select(IdempotencyKeys.ForCall).ToArray();

        Assert.Equal(keys.Length, keys.Distinct().Count());
    }

    [Fact]
    public void ForCall_FieldBoundariesShifted_NoCollision()
    {
        var a = IdempotencyKeys.ForCall(new ToolCallIdentity("ab", "c", 0, 0, "x"));
        var b = IdempotencyKeys.ForCall(new ToolCallIdentity("a", "bc", 0, 0, "x"));

        Assert.NotEqual(a, b);
    }

    [Fact]
    public void ForCall_EmptyIdentityFields_Throw()
    {
        Assert.Throws<ArgumentException>(() => IdempotencyKeys.ForCall(Identity with { ConversationId = "" }));
        Assert.Throws<ArgumentOutOfRangeException>(() => IdempotencyKeys.ForCall(Identity with { Position = -1 }));
    }

    [Fact]
    public void SemanticRepeat_SameToolAndCanonicalArgumentsInAnyTurn_SameKey()
    {
        var validator = new ToolCallValidator(SupportDesk.Registry());
        var first = validator.Validate(new("call_1", "process_refund", """{"order_id":"A8472","amount":47.00}"""), 0).Valid!;
        var repeat = validator.Validate(new("call_9", "process_refund", """{"amount":47,"order_id":"A8472"}"""), 3).Valid!;
        var other = validator.Validate(new("call_9", "process_refund", """{"amount":48,"order_id":"A8472"}"""), 3).Valid!;

        Assert.Equal(IdempotencyKeys.SemanticRepeat("conv-1", first), IdempotencyKeys.SemanticRepeat("conv-1", repeat));
        Assert.NotEqual(IdempotencyKeys.SemanticRepeat("conv-1", first), IdempotencyKeys.SemanticRepeat("conv-2", first));
        Assert.NotEqual(IdempotencyKeys.SemanticRepeat("conv-1", first), IdempotencyKeys.SemanticRepeat("conv-1", other));
        Assert.Matches("^sr1_[0-9a-f]{32}$", IdempotencyKeys.SemanticRepeat("conv-1", first));
    }
}

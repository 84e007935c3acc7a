using System.Globalization;
using System.Text;

namespace Orchestrator.Agents;

/// <summary>
/// The durable identity of one proposed tool call: where it sits in the conversation. Every retry
/// and every replay of the same call has the same identity, so the same key.
/// </summary>
/// <param name="ConversationId">The conversation.</param>
/// <param name="TurnInstanceId">The orchestration instance id of the turn.</param>
/// <param name="ModelCallIndex">Which model call of the turn proposed it (0-based; a turn loops until the model answers in text).</param>
/// <param name="Position">Its 0-based position in that model reply.</param>
/// <param name="ToolCallId">Its tool_call_id.</param>
public sealed record ToolCallIdentity(string ConversationId, string TurnInstanceId, int ModelCallIndex, int Position, string ToolCallId);

/// <summary>
/// Idempotency keys, derived only from durable identity and canonical arguments: never from a
/// clock or a random number, so a retried activity, a replayed orchestration and a restarted
/// worker all send the same key.
/// </summary>
// WARNING: keys are sent to downstream services (Idempotency-Key header) and stored in the effect
// ledger. Changing the derivation makes an in-flight retry after a deployment send a new key, and
// the downstream service would perform the effect a second time. Add a new version prefix instead.
public static class IdempotencyKeys
{
    private const string CallKeyVersion = "tc1";
    private const string RepeatKeyVersion = "sr1";

    /// <summary>
    /// The key a write sends downstream: <c>tc1_</c> followed by 32 lowercase hex characters
    /// (128 bits of SHA-256 over the identity's fields, length-prefixed so no two identities collide by concatenation).
    /// </summary>
    /// <param name="identity">The call's durable identity.</param>
    public static string ForCall(ToolCallIdentity identity)
    {
        ArgumentNullException.ThrowIfNull(identity);
        ArgumentException.ThrowIfNullOrEmpty(identity.ConversationId, nameof(identity));
        ArgumentException.ThrowIfNullOrEmpty(identity.TurnInstanceId, nameof(identity));
        ArgumentException.ThrowIfNullOrEmpty(identity.ToolCallId, nameof(identity));
        ArgumentOutOfRangeException.ThrowIfNegative(identity.ModelCallIndex, nameof(identity));
        ArgumentOutOfRangeException.ThrowIfNegative(identity.Position, nameof(identity));
        return Derive(
            CallKeyVersion,
            identity.ConversationId,
            identity.TurnInstanceId,
            identity.ModelCallIndex.ToString(CultureInfo.InvariantCulture),
            identity.Position.ToString(CultureInfo.InvariantCulture),
            identity.ToolCallId);
    }

    /// <summary>
    /// The key that recognises the model proposing the same effect again: same conversation, same
    /// tool, same canonical arguments (<see cref="ValidatedToolCall.ArgumentsHash"/>), whatever turn or call id.
    /// </summary>
    /// <param name="conversationId">The conversation.</param>
    /// <param name="toolName">The tool.</param>
    /// <param name="argumentsHash">The SHA-256 of the canonical arguments.</param>
    public static string SemanticRepeat(string conversationId, string toolName, string argumentsHash)
    {
        ArgumentException.ThrowIfNullOrEmpty(conversationId);
        ArgumentException.ThrowIfNullOrEmpty(toolName);
        ArgumentException.ThrowIfNullOrEmpty(argumentsHash);
        return Derive(RepeatKeyVersion, conversationId, toolName, argumentsHash);
    }

    /// <summary>The semantic-repeat key of a validated call.</summary>
    /// <param name="conversationId">The conversation.</param>
    /// <param name="call">The validated call.</param>
    public static string SemanticRepeat(string conversationId, ValidatedToolCall call)
    {
        ArgumentNullException.ThrowIfNull(call);
        return SemanticRepeat(conversationId, call.ToolName, call.ArgumentsHash);
    }

    private static string Derive(string version, params string[] fields)
    {
        var builder = new StringBuilder(version);
        foreach (var field in fields)
        {
            builder.Append('\n').Append(field.Length.ToString(CultureInfo.InvariantCulture)).Append(':').Append(field);
        }

        return $"{version}_{CanonicalJson.Sha256Hex(builder.ToString())[..32]}";
    }
}

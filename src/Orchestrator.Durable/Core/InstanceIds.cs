namespace Orchestrator.Durable.Core;

/// <summary>What an instance id may be, wherever one is chosen: by a client scheduling an instance, or by an orchestration naming its child.</summary>
internal static class InstanceIds
{
    /// <summary>Longest instance id, in characters.</summary>
    public const int MaxLength = 256;

    /// <summary>
    /// Throws <see cref="ArgumentException"/> unless <paramref name="instanceId"/> has 1-256 characters, not all white space,
    /// no <c>|</c> (it separates the parts of message ids) and no control characters.
    /// </summary>
    public static void Validate(string instanceId, string paramName)
    {
        if (string.IsNullOrWhiteSpace(instanceId) || instanceId.Length > MaxLength || instanceId.Contains('|', StringComparison.Ordinal) || instanceId.Any(char.IsControl))
        {
            throw new ArgumentException($"'{instanceId}' is not a valid instance id: 1-{MaxLength} characters, no '|' and no control characters.", paramName);
        }
    }
}

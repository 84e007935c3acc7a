namespace Orchestrator.Agents;

/// <summary>What running a tool does to the world outside the conversation.</summary>
public enum ToolEffect
{
    /// <summary>Reads only: safe to run in parallel, to retry, and to run again.</summary>
    Read = 0,

    /// <summary>
    /// Changes something (a refund, a charge, an email). Writes get an idempotency key, are
    /// serialized per resource key, and may need a human confirmation.
    /// </summary>
    Write = 1,
}

/// <summary>What happens when the model proposes a write again with the same canonical arguments in the same conversation.</summary>
public enum SemanticRepeatPolicy
{
    /// <summary>The default: the earlier result is returned, marked as already done; no second effect.</summary>
    ReturnEarlierResult = 0,

    /// <summary>The call runs again with a new idempotency key (for tools where a repeat is meant, such as "send reminder").</summary>
    ExecuteAgain = 1,
}

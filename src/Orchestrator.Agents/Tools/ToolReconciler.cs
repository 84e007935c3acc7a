namespace Orchestrator.Agents;

/// <summary>
/// Asks the downstream service whether the effect of a write whose outcome is unknown (the worker
/// died after calling out, before recording the result) already happened. Runs before any retry
/// of an in-doubt call; the retry then reuses the same idempotency key.
/// </summary>
/// <param name="request">The in-doubt call.</param>
/// <param name="cancellationToken">Cancels the check.</param>
/// <returns>Whether the effect happened; <see cref="ReconcileStatus.Unknown"/> when the service cannot tell.</returns>
public delegate ValueTask<ReconcileResult> ToolReconciler(ReconcileRequest request, CancellationToken cancellationToken);

/// <summary>An in-doubt write to reconcile.</summary>
/// <param name="ToolName">The tool.</param>
/// <param name="IdempotencyKey">The key the original attempt sent.</param>
/// <param name="CanonicalArguments">The canonical argument JSON the original attempt sent.</param>
public sealed record ReconcileRequest(string ToolName, string IdempotencyKey, string CanonicalArguments);

/// <summary>What the downstream service says about an in-doubt effect.</summary>
public enum ReconcileStatus
{
    /// <summary>The service cannot tell; the retry proceeds with the same key.</summary>
    Unknown = 0,

    /// <summary>The effect did not happen; the retry proceeds with the same key.</summary>
    NotPerformed = 1,

    /// <summary>The effect happened; <see cref="ReconcileResult.ResultJson"/> is its result and no retry is made.</summary>
    Performed = 2,
}

/// <summary>The answer of a <see cref="ToolReconciler"/>.</summary>
/// <param name="Status">Whether the effect happened.</param>
/// <param name="ResultJson">The effect's result when <see cref="ReconcileStatus.Performed"/>.</param>
public sealed record ReconcileResult(ReconcileStatus Status, string? ResultJson = null)
{
    /// <summary>The service cannot tell.</summary>
    public static ReconcileResult Unknown { get; } = new(ReconcileStatus.Unknown);

    /// <summary>The effect did not happen.</summary>
    public static ReconcileResult NotPerformed { get; } = new(ReconcileStatus.NotPerformed);

    /// <summary>The effect happened with this result.</summary>
    public static ReconcileResult Performed(string resultJson) => new(ReconcileStatus.Performed, resultJson);
}

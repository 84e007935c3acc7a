namespace Orchestrator.Durable.Backend;

/// <summary>
/// Optional capability of a backend: tells a waiting client in the same process the moment a checkpoint that finishes
/// an instance commits, so <see cref="Client.DurableTaskClient.WaitForInstanceCompletionAsync"/> reads the status then
/// instead of at its next poll. Polling stays the fallback: the signal only shortens a wait.
/// </summary>
internal interface IInstanceCompletionSignal
{
    /// <summary>
    /// Completes when a checkpoint of this process finished <paramref name="instanceId"/> (completed, failed or
    /// terminated) after this call began, or after <paramref name="timeout"/>, whichever comes first.
    /// </summary>
    Task WaitForCompletionAsync(string instanceId, TimeSpan timeout, CancellationToken cancellationToken);
}

using Orchestrator.Durable;
using Orchestrator.Durable.Client;

namespace Orchestrator.Testing;

/// <summary>Waits of the Azure Storage tests, beside the shared ones (tests/Shared/TestWait.cs).</summary>
internal static partial class TestWait
{
    public static async Task<OrchestrationMetadata> CompletionAsync(DurableTaskClient client, string id, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
        return await client.WaitForInstanceCompletionAsync(id, cts.Token);
    }
}

using Orchestrator.Testing;

namespace Orchestrator.Bench;

/// <summary>
/// The Azurite the azurite backend runs against, found or started by the same rules as the Azure
/// Storage tests (tests/Shared/AzuriteInstance.cs); its failures become the bench's exit codes.
/// </summary>
internal static class AzuriteHost
{
    public static async Task<AzuriteInstance> StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await AzuriteInstance.AcquireAsync("azurite-bench-", cancellationToken).ConfigureAwait(false);
        }
        catch (FileNotFoundException ex)
        {
            throw new UsageException(ex.Message);
        }
        catch (InvalidOperationException ex)
        {
            throw new BenchFailedException(ex.Message);
        }
    }
}

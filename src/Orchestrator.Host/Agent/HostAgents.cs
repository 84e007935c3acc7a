using Microsoft.Extensions.Logging;
using Orchestrator.Agents;

namespace Orchestrator.Host;

/// <summary>
/// An agent a host runs, with whatever it started to run it (a scripted model endpoint, an in-process payments
/// service), stopped when the runtime is disposed.
/// </summary>
internal sealed class HostAgentRuntime : IAsyncDisposable
{
    private readonly IAsyncDisposable[] _resources;

    public HostAgentRuntime(AgentDefinition agent, params IAsyncDisposable[] resources)
    {
        ArgumentNullException.ThrowIfNull(agent);
        Agent = agent;
        _resources = resources;
    }

    /// <summary>The agent to register on the worker and start conversations with.</summary>
    public AgentDefinition Agent { get; }

    public async ValueTask DisposeAsync()
    {
        foreach (IAsyncDisposable resource in _resources.Reverse())
        {
            await resource.DisposeAsync().ConfigureAwait(false);
        }
    }
}

/// <summary>Builds the agent the host runs from its settings.</summary>
internal static class HostAgents
{
    /// <summary>
    /// The default agent: the support-desk sample, on the configured model endpoint or, when none is configured,
    /// on a local scripted endpoint; its payment tools call the configured payments service or one started in process.
    /// </summary>
    public static Task<HostAgentRuntime> CreateDefaultAsync(HostSettings settings, ILoggerFactory loggerFactory, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        // Placeholder until the support-desk sample lands (samples/SupportDesk); it is the only caller's contract.
        throw new InvalidOperationException("The default agent is not built yet.");
    }
}

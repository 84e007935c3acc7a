using Orchestrator.Agents.Models;

namespace Orchestrator.Agents;

/// <summary>
/// Everything a host needs to run an agent: its checked tool set, the code behind each tool, the model that
/// proposes calls, and the turn's limits. A host registers it with
/// <c>registry.AddAgentTurn(agent.Tools, agent.Handlers, agent.Model)</c> and starts conversations with
/// <see cref="SystemPrompt"/> as their first message.
/// </summary>
/// <param name="Name">A short name for logs and status ("support-desk").</param>
/// <param name="Tools">The checked tool set.</param>
/// <param name="Handlers">A handler for every tool of <paramref name="Tools"/>.</param>
/// <param name="Model">The chat model the Propose activity calls.</param>
public sealed record AgentDefinition(string Name, ToolRegistry Tools, ToolHandlers Handlers, IChatModel Model)
{
    /// <summary>The system prompt a new conversation starts with; none when null.</summary>
    public string? SystemPrompt { get; init; }

    /// <summary>The limits of each turn; <see cref="TurnOptions"/>' defaults when null.</summary>
    public TurnOptions? TurnOptions { get; init; }
}

using Orchestrator.Agents;
using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Client;

namespace Orchestrator.Host.Api;

/// <summary>
/// What the endpoints, the queue trigger and the worker share: the backend, a client over it, the request ledger and the
/// agent (attached once it is built, before the host listens). Thread-safe after <see cref="Attach"/>.
/// </summary>
internal sealed class ConversationRuntime
{
    private AgentDefinition? agent;
    private ToolCallValidator? validator;

    public ConversationRuntime(IOrchestrationBackend backend, IRequestLedger ledger, TimeProvider time)
    {
        this.Backend = backend;
        this.Ledger = ledger;
        this.Time = time;
        this.Client = new DurableTaskClient(backend);
    }

    public IOrchestrationBackend Backend { get; }

    public DurableTaskClient Client { get; }

    public IRequestLedger Ledger { get; }

    /// <summary>The API's clock (webhook tolerance, confirmation expiry checks, ledger leases); the worker keeps the system clock.</summary>
    public TimeProvider Time { get; }

    /// <summary>
    /// The task hub's key for sensitive argument values (<see cref="HostTurnOptions.SensitiveValues"/>): edited arguments
    /// of a decision are sealed with it before they are raised, so the stored event holds no secret. Null: none configured.
    /// </summary>
    public SensitiveValueProtector? SensitiveValues { get; init; }

    public AgentDefinition Agent => this.agent ?? throw new InvalidOperationException("The agent is not attached yet.");

    /// <summary>Validates edited arguments and redacts sensitive ones with the agent's tool set.</summary>
    public ToolCallValidator Validator => this.validator ?? throw new InvalidOperationException("The agent is not attached yet.");

    public void Attach(AgentDefinition definition)
    {
        ArgumentNullException.ThrowIfNull(definition);
        this.validator = new ToolCallValidator(definition.Tools);
        this.agent = definition;
    }
}

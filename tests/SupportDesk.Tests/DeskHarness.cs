using Microsoft.Data.Sqlite;
using Orchestrator.Agents;
using Orchestrator.Agents.Models;
using Orchestrator.Agents.Models.Scripted;
using Orchestrator.Durable;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;

namespace SupportDesk.Tests;

/// <summary>
/// The support-desk agent as a host runs it: the real OpenAI SDK against a scripted OpenAI-compatible endpoint,
/// the real payments service on loopback with its SQLite ledger, a worker on the SQLite backend running
/// AgentConversation/AgentTurn.
/// </summary>
internal sealed class DeskHarness : IAsyncDisposable
{
    private static int s_counter;
    private readonly SqliteOrchestrationBackend _backend;
    private readonly DurableTaskWorker _worker;
    private readonly string _ledger;

    private DeskHarness(ScriptedChatServer server, LocalPaymentsService payments, string ledger, AgentDefinition agent, EscalationDesk escalations, SqliteOrchestrationBackend backend, DurableTaskWorker worker)
    {
        Server = server;
        Payments = payments;
        Agent = agent;
        Escalations = escalations;
        _ledger = ledger;
        _backend = backend;
        _worker = worker;
        Client = new DurableTaskClient(backend);
    }

    public ScriptedChatServer Server { get; }

    public LocalPaymentsService Payments { get; }

    public AgentDefinition Agent { get; }

    public EscalationDesk Escalations { get; }

    public DurableTaskClient Client { get; }

    public static async Task<DeskHarness> StartAsync(ChatScript? script = null)
    {
        string ledger = Path.Combine(Path.GetTempPath(), $"desk-ledger-{Environment.ProcessId}-{Interlocked.Increment(ref s_counter)}.db");
        var payments = await LocalPaymentsService.StartAsync(ledger, CancellationToken.None);
        var server = await ScriptedChatServer.StartAsync(script ?? SupportDeskAgent.IncidentScript(), null, CancellationToken.None);
        var model = new OpenAIChatModel(new OpenAIChatModelOptions { BaseUrl = server.BaseUrl, ApiKey = "test", Model = "scripted", MaxRetries = 0 });
        var escalations = new EscalationDesk();
        var agent = SupportDeskAgent.Create(model, payments.Client, escalations: escalations);
        var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory());
        var registry = new DurableTaskRegistry().AddAgentTurn(agent.Tools, agent.Handlers, agent.Model);
        var worker = new DurableTaskWorker(backend, registry, new DurableTaskWorkerOptions { MaxPollingInterval = TimeSpan.FromMilliseconds(50) });
        await worker.StartAsync(CancellationToken.None);
        return new DeskHarness(server, payments, ledger, agent, escalations, backend, worker);
    }

    /// <summary>Starts a conversation and sends the customer's first message; returns the first turn's instance id.</summary>
    public async Task<string> StartConversationAsync(string conversationId, string message)
    {
        await Conversations.StartAsync(Client, new ConversationState(conversationId, SupportDeskAgent.NewConversation()) { TurnOptions = Agent.TurnOptions }, CancellationToken.None);
        await Conversations.SendUserMessageAsync(Client, conversationId, message, CancellationToken.None);
        return Conversations.TurnInstanceId(conversationId, 1);
    }

    public async Task<TurnStatus> StatusEventuallyAsync(string instanceId, Func<TurnStatus, bool> condition, string because)
    {
        TurnStatus? last = null;
        await TestWait.EventuallyAsync(
            async () =>
            {
                last = await TurnConfirmations.GetStatusAsync(Client, instanceId, CancellationToken.None);
                return last is not null && condition(last);
            },
            because: because);
        return last!;
    }

    public async Task<TurnOutput> WaitForTurnAsync(string instanceId)
    {
        // The turn is a sub-orchestration the conversation schedules: it exists only once the conversation ran.
        await TestWait.EventuallyAsync(async () => await Client.GetInstanceAsync(instanceId) is not null, because: $"turn {instanceId} is scheduled");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(45));
        var metadata = await Client.WaitForInstanceCompletionAsync(instanceId, cts.Token);
        Assert.True(metadata.RuntimeStatus == OrchestrationRuntimeStatus.Completed, $"turn {instanceId} is {metadata.RuntimeStatus}: {metadata.FailureDetails}");
        return metadata.ReadOutputAs<TurnOutput>()!;
    }

    public Task<IReadOnlyList<LedgerEffect>> LedgerAsync() => PaymentsLedger.ReadAsync(Payments.Client, CancellationToken.None);

    public async ValueTask DisposeAsync()
    {
        await _worker.DisposeAsync();
        await _backend.DisposeAsync();
        await Server.DisposeAsync();
        await Payments.DisposeAsync();
        SqliteConnection.ClearAllPools();
        foreach (string suffix in new[] { string.Empty, "-wal", "-shm" })
        {
            File.Delete(_ledger + suffix);
        }
    }
}

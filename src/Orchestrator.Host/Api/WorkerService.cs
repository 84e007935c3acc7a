using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orchestrator.Agents;
using Orchestrator.Durable;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Host.Api;

/// <summary>The durable worker running the agent's conversations and turns, as a hosted service of the web host.</summary>
internal sealed class WorkerService(ConversationRuntime runtime, HostSettings settings, ServeOptions options, ILoggerFactory loggerFactory) : IHostedService, IAsyncDisposable
{
    private DurableTaskWorker? worker;
    private IDisposable? journal;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        AgentDefinition agent = runtime.Agent;
        AgentTurnOptions turnOptions = HostTurnOptions.Create(settings, loggerFactory, options.DataSource);
        this.journal = turnOptions.CallJournal as IDisposable;
        HostTurnOptions.LogSchemaCost(agent, settings, loggerFactory.CreateLogger("Orchestrator.Host"));
        DurableTaskRegistry registry = new DurableTaskRegistry().AddAgentTurn(agent.Tools, agent.Handlers, agent.Model, turnOptions);
        this.worker = new DurableTaskWorker(
            runtime.Backend,
            registry,
            new DurableTaskWorkerOptions
            {
                MaxConcurrentActivities = settings.MaxConcurrentActivityFunctions,
                MaxConcurrentOrchestrations = settings.MaxConcurrentOrchestratorFunctions,
                MaxPollingInterval = options.WorkerMaxPollingInterval,
            },
            loggerFactory);
        await this.worker.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (this.worker is not null)
        {
            await this.worker.StopAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (this.worker is not null)
        {
            await this.worker.DisposeAsync().ConfigureAwait(false);
        }

        this.journal?.Dispose();
    }
}

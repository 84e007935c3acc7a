using Microsoft.Extensions.Logging;
using Orchestrator.Agents;
using Orchestrator.Agents.Models;
using Orchestrator.Agents.Models.Scripted;
using SupportDesk;

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

    /// <summary>A client on the payments service the agent's payment tools call (to read its ledger), when known.</summary>
    public HttpClient? Payments { get; init; }

    /// <summary>Which model the agent runs on, for people.</summary>
    public string ModelDescription { get; init; } = "";

    /// <summary>Which payments service the agent's payment tools call, for people.</summary>
    public string PaymentsDescription { get; init; } = "";

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
    /// <remarks>
    /// The scripted endpoint plays the support-desk refund incident (samples/SupportDesk/Scripts) once: it is the
    /// offline demo's model, not a general one. The in-process payments service keeps its SQLite ledger beside the
    /// orchestration database (<see cref="PaymentsLedgerPath"/>).
    /// </remarks>
    public static async Task<HostAgentRuntime> CreateDefaultAsync(HostSettings settings, ILoggerFactory loggerFactory, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        var resources = new Stack<IAsyncDisposable>();
        try
        {
            HttpClient payments;
            string paymentsDescription;
            if (settings.PaymentsBaseUrl is Uri paymentsUrl)
            {
                payments = new HttpClient { BaseAddress = paymentsUrl, Timeout = TimeSpan.FromSeconds(30) };
                resources.Push(new DisposeAction(payments.Dispose));
                paymentsDescription = $"payments service {paymentsUrl} (Payments:BaseUrl)";
            }
            else
            {
                string ledger = PaymentsLedgerPath(settings);
                LocalPaymentsService local = await LocalPaymentsService.StartAsync(ledger, cancellationToken).ConfigureAwait(false);
                resources.Push(local);
                payments = local.Client;
                paymentsDescription = $"sample payments service in process on {local.BaseUrl}, ledger {Path.GetFullPath(ledger)}";
            }

            IChatModel model;
            string modelDescription;
            if (settings.ModelEndpoint is Uri endpoint)
            {
                model = new OpenAIChatModel(
                    new OpenAIChatModelOptions
                    {
                        BaseUrl = endpoint,

                        // Local OpenAI-compatible servers often check no key, and the SDK insists on one.
                        ApiKey = settings.ModelApiKey ?? "unused",
                        Model = settings.ModelName!,
                    },
                    loggerFactory.CreateLogger<OpenAIChatModel>());
                modelDescription = $"model {settings.ModelName} at {endpoint} (Model:Endpoint)";
            }
            else
            {
                ScriptedChatServer server = await ScriptedChatServer.StartAsync(
                    SupportDeskAgent.IncidentScript(), new ScriptedChatServerOptions { LoggerFactory = loggerFactory }, cancellationToken).ConfigureAwait(false);
                resources.Push(server);
                model = new OpenAIChatModel(
                    new OpenAIChatModelOptions { BaseUrl = server.BaseUrl, ApiKey = "scripted", Model = "scripted-support-desk", MaxRetries = 0 },
                    loggerFactory.CreateLogger<OpenAIChatModel>());
                modelDescription = $"scripted model (the refund incident) on {server.BaseUrl}, through the OpenAI SDK";
            }

            AgentDefinition agent = SupportDeskAgent.Create(model, payments);
            return new HostAgentRuntime(agent, [.. resources])
            {
                Payments = payments,
                ModelDescription = modelDescription,
                PaymentsDescription = paymentsDescription,
            };
        }
        catch
        {
            // Stop whatever started before the failure; the exception still reaches the caller.
            while (resources.TryPop(out IAsyncDisposable? resource))
            {
                await resource.DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }
    }

    /// <summary>
    /// Where the in-process payments service keeps its ledger: beside the SQLite orchestration database
    /// (<c>.data/orchestrator.db</c> gives <c>.data/orchestrator-payments.db</c>), or in <c>.data</c> on Azure Storage.
    /// </summary>
    public static string PaymentsLedgerPath(HostSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.UsesAzureStorage)
        {
            return Path.Combine(".data", "payments.db");
        }

        string db = Path.GetFullPath(settings.DataSource);
        return Path.Combine(Path.GetDirectoryName(db) ?? ".", Path.GetFileNameWithoutExtension(db) + "-payments.db");
    }

    private sealed class DisposeAction(Action dispose) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            dispose();
            return ValueTask.CompletedTask;
        }
    }
}

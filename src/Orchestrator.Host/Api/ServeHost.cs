using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.OpenApi;
using Orchestrator.Durable.Backend;
using Orchestrator.Host.Approvals;

using Orchestrator.Host.Observability;

namespace Orchestrator.Host.Api;

/// <summary>How to run <c>serve</c>.</summary>
internal sealed record ServeOptions
{
    /// <summary>The default address: loopback only, Azure Functions' local port.</summary>
    public const string DefaultUrl = "http://127.0.0.1:7071";

    public required HostSettings Settings { get; init; }

    public required ApiSettings Api { get; init; }

    /// <summary>Where to listen. Default <see cref="DefaultUrl"/>; port 0 picks a free port.</summary>
    public IReadOnlyList<string> Urls { get; init; } = [DefaultUrl];

    /// <summary>The SQLite file instead of the configured one (the embedded backend only).</summary>
    public string? DataSource { get; init; }

    /// <summary>Builds the agent; <see cref="HostAgents.CreateDefaultAsync"/> by default, a test's own agent otherwise.</summary>
    public Func<HostSettings, ILoggerFactory, CancellationToken, Task<HostAgentRuntime>> CreateAgent { get; init; } = HostAgents.CreateDefaultAsync;

    /// <summary>The API's clock (webhook tolerance, confirmation expiry, ledger leases). The worker keeps the system clock.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Longest wait of the worker between polls of an idle store. Default 1 second.</summary>
    public TimeSpan WorkerMaxPollingInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Adjusts logging (tests quiet it).</summary>
    public Action<ILoggingBuilder>? ConfigureLogging { get; init; }
}

/// <summary>
/// The running service: ASP.NET Core minimal APIs over one backend, the durable worker and (when configured) the queue
/// trigger as hosted services. Disposing stops it.
/// </summary>
internal sealed class ServeHost : IAsyncDisposable
{
    private readonly HostAgentRuntime agent;
    private readonly IOrchestrationBackend backend;
    private readonly IRequestLedger ledger;

    private ServeHost(WebApplication app, string managementKey, bool keyGenerated, HostAgentRuntime agent, IOrchestrationBackend backend, IRequestLedger ledger)
    {
        this.App = app;
        this.ManagementKey = managementKey;
        this.KeyGenerated = keyGenerated;
        this.agent = agent;
        this.backend = backend;
        this.ledger = ledger;
    }

    public WebApplication App { get; }

    /// <summary>The management key in force (configured or generated).</summary>
    public string ManagementKey { get; }

    /// <summary>True when no key was configured and this one was generated for this process.</summary>
    public bool KeyGenerated { get; }

    /// <summary>The addresses listened on, with the real ports.</summary>
    public IReadOnlyList<string> Addresses =>
        this.App.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToArray() ?? [];

    /// <summary>Builds and starts the service; returns once it listens.</summary>
    /// <exception cref="InvalidOperationException">A setting is invalid, or the service would listen beyond loopback without a configured management key.</exception>
    public static async Task<ServeHost> StartAsync(ServeOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        bool generated = options.Api.ManagementKey is null;
        if (generated && options.Urls.FirstOrDefault(u => !IsLoopback(u)) is { } open)
        {
            throw new InvalidOperationException($"Listening on {open} (beyond loopback) needs a configured management key: set Management:Key (environment Management__Key).");
        }

        string managementKey = options.Api.ManagementKey ?? AccessKeys.GenerateKey();
        HostSettings settings = options.Settings;
        IOrchestrationBackend backend = settings.CreateBackend(options.DataSource);
        IRequestLedger ledger = settings.UsesAzureStorage
            ? new TableRequestLedger(settings.StorageOptions().CreateTableServiceClient(), settings.HubName, options.TimeProvider, options.Api.LedgerRetention)
            : new SqliteRequestLedger(SqliteRequestLedger.PathFor(options.DataSource ?? settings.DataSource), options.TimeProvider, options.Api.LedgerRetention);
        HostAgentRuntime? agent = null;
        try
        {
            WebApplication app = Build(options, backend, ledger, managementKey);
            agent = await options.CreateAgent(settings, app.Services.GetRequiredService<ILoggerFactory>(), cancellationToken).ConfigureAwait(false);
            options.Api.CheckJournalRetention(agent.Agent.TurnOptions);
            app.Services.GetRequiredService<ConversationRuntime>().Attach(agent.Agent);
            await ledger.InitializeAsync(cancellationToken).ConfigureAwait(false);
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
            var host = new ServeHost(app, managementKey, generated, agent, backend, ledger);
            Log.Serving(app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Orchestrator.Host.Api"), string.Join(", ", host.Addresses), settings.Describe(options.DataSource));
            return host;
        }
        catch
        {
            if (agent is not null)
            {
                await agent.DisposeAsync().ConfigureAwait(false);
            }

            await ledger.DisposeAsync().ConfigureAwait(false);
            await backend.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await this.App.StopAsync(CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            await this.App.DisposeAsync().ConfigureAwait(false);
            await this.agent.DisposeAsync().ConfigureAwait(false);
            await this.ledger.DisposeAsync().ConfigureAwait(false);
            await this.backend.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static WebApplication Build(ServeOptions options, IOrchestrationBackend backend, IRequestLedger ledger, string managementKey)
    {
        WebApplicationBuilder builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        // Messages are at most 32 K characters and decisions small: a 1 MB cap refuses oversized payloads before they are read.
        builder.WebHost.UseKestrel(k => k.Limits.MaxRequestBodySize = 1024 * 1024).UseUrls([.. options.Urls]);
        // JSON log lines with correlation ids and secrets redacted; traces and metrics of the agent layer and the engine
        // (OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set). Tests add their own providers after it.
        builder.AddHostObservability(options.Settings);
        options.ConfigureLogging?.Invoke(builder.Logging);
        // ASP.NET Core's request logs carry the query string, where conversation tokens travel: keep them below Warning.
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        IServiceCollection services = builder.Services;
        services.AddSingleton(options);
        services.AddSingleton(options.Settings);
        services.AddSingleton(options.Api);
        services.AddSingleton(new ConversationRuntime(backend, ledger, options.TimeProvider)
        {
            SensitiveValues = HostTurnOptions.SensitiveValues(options.Settings, options.DataSource),
        });
        services.AddSingleton(new AccessKeys(managementKey));
        services.AddSingleton(new StandardWebhookVerifier(options.Api.WebhookSecrets, options.TimeProvider));
        services.AddSingleton<ConversationService>();
        services.AddSingleton<ConfirmationDecider>();
        services.AddHostedService<WorkerService>();
        // Expired idempotency keys, webhook ids and journal entries, deleted in bounded batches every Retention:CleanupInterval.
        services.AddHostedService(sp => RetentionCleanupService.ForServe(options, ledger, sp.GetRequiredService<ILoggerFactory>()));
        if (options.Api.QueueName is not null)
        {
            services.AddHostedService(sp => ActivatorUtilities.CreateInstance<QueueTrigger>(sp, options.Settings.StorageOptions().CreateQueueServiceClient()));
        }

        services.Configure<JsonOptions>(o =>
        {
            o.SerializerOptions.PropertyNamingPolicy = ApiResponses.Json.PropertyNamingPolicy;
            o.SerializerOptions.Converters.Add(new System.Text.Json.Serialization.JsonStringEnumConverter(System.Text.Json.JsonNamingPolicy.CamelCase));
        });
        services.AddOpenApi(o => o.AddDocumentTransformer((document, _, _) =>
        {
            // The credentials, so a client generated from the document knows where each goes.
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes["managementKey"] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.ApiKey,
                In = ParameterLocation.Header,
                Name = AccessKeys.ManagementKeyHeader,
                Description = "Grants every endpoint (Management:Key).",
            };
            document.Components.SecuritySchemes["conversationToken"] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.ApiKey,
                In = ParameterLocation.Query,
                Name = AccessKeys.ConversationTokenQuery,
                Description = $"One conversation's access token from its 202 response; also accepted as header {AccessKeys.ConversationTokenHeader}.",
            };
            document.Components.SecuritySchemes["standardWebhooks"] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.ApiKey,
                In = ParameterLocation.Header,
                Name = "webhook-signature",
                Description = "Standard Webhooks: webhook-id, webhook-timestamp and webhook-signature (v1,<base64 HMAC-SHA256 of id.timestamp.body>) with a whsec_ secret.",
            };
            return Task.CompletedTask;
        }));

        WebApplication app = builder.Build();
        app.MapOpenApi();
        app.MapConversationEndpoints();
        app.MapWebhookEndpoints();
        app.MapApprovalEndpoints();
        app.MapHealthEndpoints();
        app.MapApprovalsPage();
        return app;
    }

    private static bool IsLoopback(string url)
    {
        if (!Uri.TryCreate(url.Replace("://*", "://0.0.0.0", StringComparison.Ordinal).Replace("://+", "://0.0.0.0", StringComparison.Ordinal), UriKind.Absolute, out Uri? uri))
        {
            return false;
        }

        return uri.IsLoopback || (IPAddress.TryParse(uri.Host.Trim('[', ']'), out IPAddress? ip) && IPAddress.IsLoopback(ip));
    }
}

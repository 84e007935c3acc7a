using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Orchestrator.Agents;
using Orchestrator.Agents.Models;
using Orchestrator.Agents.Models.Scripted;
using Orchestrator.Durable;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;
using Orchestrator.Host.Observability;

namespace Orchestrator.Host.Cli.Tests;

public sealed record VerifyIdentityArgs(string CustomerId, string PassportNumber);

public sealed class ObservabilityTests
{
    private const string ManagementKey = "mgmt-7f3c9a1b2d4e5f60";

    [Fact]
    public void JsonLog_EachKindOfSecret_ComesOutRedacted()
    {
        var output = new StringWriter();
        using var factory = HostObservability.CreateJsonLoggerFactory(output, new SecretRedactor([ManagementKey]));
        ILogger logger = factory.CreateLogger("Test");
        string[] secrets =
        [
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "sk-proj-Abc123def456GHI789jkl012",
            ManagementKey,
            "4111111111111111",
            "4111 1111 1111 1111",
            "5500-0000-0000-0004",
            "378282246310005",
        ];

        logger.LogInformation("webhook secret {Secret}", secrets[0]);
        logger.LogWarning("calling the model with key {ApiKey}", secrets[1]);
        logger.LogInformation("management request with x-management-key: " + ManagementKey);
        logger.LogInformation("card {Card}, again {Spaced}, dashed {Dashed}, amex {Amex}", secrets[3], secrets[4], secrets[5], secrets[6]);
        logger.LogInformation("card as a number {Number}", 4111111111111111L);
        logger.LogError(new InvalidOperationException("charge failed for card 4111 1111 1111 1111"), "tool failed");
        using (logger.BeginScope(new Dictionary<string, object?> { ["Webhook"] = secrets[0] }))
        {
            logger.LogInformation("inside a scope holding a secret");
        }

        string text = output.ToString();
        string[] lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(7, lines.Length);
        foreach (string line in lines)
        {
            using JsonDocument doc = JsonDocument.Parse(line); // one JSON object per line
            Assert.Equal(JsonValueKind.Object, doc.RootElement.ValueKind);
        }

        foreach (string secret in secrets)
        {
            Assert.DoesNotContain(secret, text, StringComparison.Ordinal);
        }

        Assert.DoesNotContain("4111111111111111", text, StringComparison.Ordinal);
        Assert.Contains(SecretRedactor.Mask, lines[0], StringComparison.Ordinal);
        Assert.Contains("calling the model with key [REDACTED]", text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("order A8472 refund 47.00")]
    [InlineData("account 99812345")]
    [InlineData("tracking 1234567890123456")] // 16 digits failing the Luhn check
    [InlineData("sk-1 is a short label")]
    [InlineData("at 2026-11-25T18:00:00Z, turn conv-1:turn:2")]
    public void Redact_OrdinaryText_Unchanged(string text)
    {
        Assert.Equal(text, new SecretRedactor([ManagementKey]).Redact(text));
    }

    [Fact]
    public void CreateRedactor_Configuration_KnowsKeysSecretsAndAccountKeys()
    {
        IConfiguration config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Values:Model:ApiKey"] = "local-model-key-0001",
            ["ManagementKey"] = ManagementKey,
            ["Webhooks:Secrets"] = "plain-shared-secret-42",
            ["AzureWebJobsStorage"] = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0LWFjY291bnQta2V5;EndpointSuffix=core.windows.net",
            ["extensions:durableTask:hubName"] = "SupportDeskHub",
        }).Build();

        SecretRedactor r = HostObservability.CreateRedactor(config);

        Assert.Equal("[REDACTED] [REDACTED] [REDACTED] [REDACTED] SupportDeskHub", r.Redact($"local-model-key-0001 {ManagementKey} plain-shared-secret-42 c2VjcmV0LWFjY291bnQta2V5 SupportDeskHub"));
    }

    [Fact]
    public void JsonLog_TurnScope_EveryLineCarriesTheCorrelationId()
    {
        var output = new StringWriter();
        using var factory = HostObservability.CreateJsonLoggerFactory(output, SecretRedactor.PatternsOnly);
        ILogger api = factory.CreateLogger("Api");
        ILogger engine = factory.CreateLogger("Engine");

        api.LogInformation("before the turn");
        using (api.BeginTurnScope("conv-9", "conv-9:turn:1"))
        {
            api.LogInformation("turn accepted");
            engine.LogInformation("episode {Episode}", 1);
            using (engine.BeginScope("nested plain scope"))
            {
                engine.LogWarning("nested line");
            }
        }

        engine.LogInformation("Turn {TurnId}: ended", "conv-9:turn:2"); // the agent layer's own lines carry TurnId

        JsonElement[] lines = [.. output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement)];
        Assert.Equal(5, lines.Length);
        Assert.False(lines[0].TryGetProperty("correlationId", out _));
        foreach (JsonElement line in lines[1..4])
        {
            Assert.Equal("conv-9:turn:1", line.GetProperty("correlationId").GetString());
            Assert.Equal("conv-9", line.GetProperty("scope").GetProperty("ConversationId").GetString());
        }

        Assert.Equal("nested plain scope", lines[3].GetProperty("scope").GetProperty("messages")[0].GetString());
        Assert.Equal("conv-9:turn:2", lines[4].GetProperty("correlationId").GetString());
        Assert.Equal("Engine", lines[4].GetProperty("category").GetString());
    }

    [Fact(Timeout = 60_000)]
    public async Task JsonLog_RealTurnWithSensitiveArgument_AgentLinesCarryTurnIdAndNeverTheValue()
    {
        const string passport = "X9Q-PASSPORT-553201";
        var output = new StringWriter();
        using var factory = HostObservability.CreateJsonLoggerFactory(output, SecretRedactor.PatternsOnly, LogLevel.Debug);
        var verify = ToolDefinition.FromArguments<VerifyIdentityArgs>("verify_identity", "Verify a customer's identity.") with
        {
            Effect = ToolEffect.Write,
            RequiresConfirmation = true,
            ResourceKeyArguments = ["customer_id"],
            SensitiveArguments = ["passport_number"],
            SummaryTemplate = "Verify {customer_id}",
        };
        var tools = new ToolRegistryBuilder().Add(verify).Build();
        var handlers = new ToolHandlers().Add("verify_identity", (_, _) => Task.FromResult("""{"verified":true}"""));
        var script = new ChatScript(
            ScriptEntry.Calls(new ScriptedToolCall("c_1", "verify_identity", $$"""{"customer_id":"C1","passport_number":"{{passport}}"}""")),
            ScriptEntry.Text("Verified."));
        await using var server = await ScriptedChatServer.StartAsync(script, null, CancellationToken.None);
        var model = new OpenAIChatModel(new OpenAIChatModelOptions { BaseUrl = server.BaseUrl, ApiKey = "test", Model = "scripted", MaxRetries = 0 });
        await using var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory());
        // As the host registers it: sensitive values sealed in history (registration warns, outside any turn, without a key).
        var registry = new DurableTaskRegistry().AddAgentTurn(tools, handlers, model, new AgentTurnOptions
        {
            LoggerFactory = factory,
            SensitiveValues = new SensitiveValueProtector(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)),
        });
        await using var worker = new DurableTaskWorker(backend, registry, new DurableTaskWorkerOptions { MaxPollingInterval = TimeSpan.FromMilliseconds(50) }, factory);
        await worker.StartAsync(CancellationToken.None);
        var client = new DurableTaskClient(backend);

        await client.ScheduleNewOrchestrationInstanceAsync(TurnRegistration.TurnOrchestrator, new TurnInput("conv-p", [ModelMessage.User("verify me")]), new StartOrchestrationOptions { InstanceId = "conv-p:turn:1" });
        TurnStatus? status = null;
        await Eventually.TrueAsync(async () => (status = await TurnConfirmations.GetStatusAsync(client, "conv-p:turn:1", CancellationToken.None)) is { PendingConfirmations.Count: 1 }, "the call waits");
        Assert.DoesNotContain(passport, status!.PendingConfirmations[0].Arguments, StringComparison.Ordinal);
        var decision = new ConfirmationDecision(true, status.PendingConfirmations[0].ArgumentsHash, "alice");
        Assert.Equal(ConfirmationDecisionResult.Accepted, await TurnConfirmations.DecideAsync(client, "conv-p:turn:1", "c_1", decision, TimeProvider.System, CancellationToken.None));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        Assert.Equal(OrchestrationRuntimeStatus.Completed, (await client.WaitForInstanceCompletionAsync("conv-p:turn:1", cts.Token)).RuntimeStatus);
        await worker.StopAsync(CancellationToken.None);

        string text = output.ToString();
        Assert.DoesNotContain(passport, text, StringComparison.Ordinal);
        JsonElement[] agentLines = [.. text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => JsonDocument.Parse(l).RootElement)
            .Where(l => l.GetProperty("category").GetString()!.StartsWith("Orchestrator.Agents", StringComparison.Ordinal))];
        Assert.Contains(agentLines, l => l.GetProperty("eventId").GetInt32() == 4003); // waits for confirmation
        Assert.Contains(agentLines, l => l.GetProperty("eventId").GetInt32() == 4001); // running the call
        Assert.All(agentLines, l => Assert.Equal("conv-p:turn:1", l.GetProperty("correlationId").GetString()));
    }

    [Fact]
    public void ConsoleTelemetry_AgentAndEngineSources_Exported_OthersNot()
    {
        var exported = new List<Activity>();
        using var agents = new ActivitySource(HostObservability.AgentsSource);
        using var durable = new ActivitySource(HostObservability.DurableSource);
        using var other = new ActivitySource("Somebody.Else");
        using (HostObservability.StartConsoleTelemetry(t => t.AddInMemoryExporter(exported)))
        {
            using (Activity? turn = agents.StartActivity("turn"))
            {
                turn?.SetTag("conversation.id", "conv-1");
                using (durable.StartActivity("episode"))
                {
                }

                using (other.StartActivity("ignored"))
                {
                }
            }
        }

        // Listeners are process-wide: spans of turns other tests run meanwhile (from the agent layer's own source of
        // the same name) are exported too. Only the spans of this test's three sources are judged.
        Activity[] ours = [.. exported.Where(a => a.Source == agents || a.Source == durable || a.Source == other)];
        Assert.Equal(["episode", "turn"], ours.Select(a => a.DisplayName).Order().ToArray());
        Assert.Equal("conv-1", ours.Single(a => a.DisplayName == "turn").GetTagItem("conversation.id"));
    }

    [Fact]
    public void AddMeters_AgentAndEngineMeters_Collected_OthersNot()
    {
        var metrics = new List<OpenTelemetry.Metrics.Metric>();
        using (var provider = HostObservability.AddMeters(OpenTelemetry.Sdk.CreateMeterProviderBuilder()).AddInMemoryExporter(metrics).Build())
        {
            using var agents = new System.Diagnostics.Metrics.Meter(HostObservability.AgentsSource);
            using var other = new System.Diagnostics.Metrics.Meter("Somebody.Else");
            agents.CreateCounter<long>("agent.tool_calls").Add(3);
            other.CreateCounter<long>("ignored").Add(1);
            provider.ForceFlush();
        }

        // The agent layer's own meter (same name) may also be alive in this process and report its gauges: only
        // require ours to be collected and the foreign one not.
        string[] names = [.. metrics.Select(m => m.Name).Distinct()];
        Assert.Contains("agent.tool_calls", names);
        Assert.DoesNotContain("ignored", names);
    }

    [Fact]
    public void AddHostObservability_ServeBuilder_JsonLogsRedactConfiguredKeysAndTracingIsRegistered()
    {
        var output = new StringWriter();
        HostApplicationBuilder builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Model:ApiKey"] = "configured-model-key-123",
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:4317",
        });
        var settings = HostSettings.Load(Path.GetTempPath());

        builder.AddHostObservability(settings, output);
        using IHost host = builder.Build();
        host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Serve").LogWarning("model rejected key configured-model-key-123");

        Assert.True(HostObservability.UsesOtlp(builder.Configuration));
        Assert.NotNull(host.Services.GetService<TracerProvider>());
        using JsonDocument line = JsonDocument.Parse(output.ToString().Trim());
        Assert.Equal("model rejected key [REDACTED]", line.RootElement.GetProperty("message").GetString());
        Assert.Equal("Warning", line.RootElement.GetProperty("level").GetString());
    }
}

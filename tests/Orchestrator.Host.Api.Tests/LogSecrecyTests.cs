using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Orchestrator.Agents;

namespace Orchestrator.Host.Api.Tests;

public sealed class LogSecrecyTests
{
    [Fact(Timeout = 120_000)]
    public async Task AFullFlow_AtTraceLevel_LogsNoTokenKeySecretOrSensitiveValue()
    {
        var lines = new ConcurrentQueue<string>();
        var agent = new TestAgent();
        AgentDefinition definition = agent.Definition();
        var options = new ServeOptions
        {
            Settings = new HostSettings(),
            Api = new ApiSettings { ManagementKey = ApiHarness.ManagementKey, WebhookSecrets = [ApiHarness.Secret] },
            Urls = ["http://127.0.0.1:0"],
            DataSource = Path.Combine(Directory.CreateTempSubdirectory("api-logs-").FullName, "o.db"),
            CreateAgent = (_, _, _) => Task.FromResult(new HostAgentRuntime(definition)),
            WorkerMaxPollingInterval = TimeSpan.FromMilliseconds(50),
            ConfigureLogging = logging => logging.ClearProviders().SetMinimumLevel(LogLevel.Trace).AddProvider(new CapturingProvider(lines)),
        };
        await using ServeHost host = await ServeHost.StartAsync(options, CancellationToken.None);
        using var http = new HttpClient { BaseAddress = new Uri(host.Addresses[0]) };

        using HttpResponseMessage started = await http.PostAsync("/api/conversations/conv-logs/messages", ApiHarness.Json("{\"text\":\"card please\"}"));
        JsonObject body = (await started.Content.ReadFromJsonAsync<JsonObject>())!;
        string token = (string)body["accessToken"]!;
        await Eventually.Async(
            async () => (int?)(await http.GetFromJsonAsync<JsonObject>((string)body["statusQueryGetUri"]!))!["turns"] == 1,
            "card turn done");
        using HttpResponseMessage refund = await http.PostAsync($"/api/conversations/conv-logs/messages?token={token}", ApiHarness.Json("{\"text\":\"refund A8472\"}"));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/conversations/conv-logs/confirmations/call_refund") { Content = ApiHarness.Json("{}") };
        ApiHarness.Signed(request, "msg_logs", DateTimeOffset.UtcNow.ToUnixTimeSeconds(), "{}", ApiHarness.Secret);
        using HttpResponseMessage webhook = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.Accepted, refund.StatusCode);
        Assert.NotEmpty(lines);
        string all = string.Join('\n', lines);
        Assert.DoesNotContain(token, all, StringComparison.Ordinal);
        Assert.DoesNotContain(ApiHarness.ManagementKey, all, StringComparison.Ordinal);
        Assert.DoesNotContain(ApiHarness.Secret["whsec_".Length..], all, StringComparison.Ordinal);
        Assert.DoesNotContain(TestAgent.CardNumber, all, StringComparison.Ordinal);
    }

    private sealed class CapturingProvider(ConcurrentQueue<string> lines) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(categoryName, lines);

        public void Dispose()
        {
        }

        private sealed class Logger(string category, ConcurrentQueue<string> lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull
            {
                lines.Enqueue($"{category} scope: {state}");
                return null;
            }

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                lines.Enqueue($"{category} {logLevel}: {formatter(state, exception)} {exception}");
        }
    }
}

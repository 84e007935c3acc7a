using System.Net;
using Microsoft.Extensions.DependencyInjection;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;

namespace Orchestrator.Host.Api.Tests;

public sealed class ServeTests
{
    [Fact(Timeout = 120_000)]
    public async Task OpenApiDocument_ListsEveryMappedRoute()
    {
        await using ApiHarness api = await ApiHarness.StartSqliteAsync();

        JsonNode document = await api.GetJsonAsync("/openapi/v1.json");
        JsonObject paths = document["paths"]!.AsObject();
        var mapped = api.Host.App.Services.GetRequiredService<EndpointDataSource>().Endpoints
            .OfType<RouteEndpoint>()
            .Where(e => !e.RoutePattern.RawText!.StartsWith("/openapi/", StringComparison.Ordinal))
            .SelectMany(e => (e.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.HttpMethodMetadata>()?.HttpMethods ?? []).Select(m => (Path: "/" + e.RoutePattern.RawText!.Trim('/'), Method: m.ToLowerInvariant())))
            .ToArray();

        Assert.True(mapped.Length >= 12, $"only {mapped.Length} routes mapped");
        foreach ((string path, string method) in mapped)
        {
            Assert.True(paths.ContainsKey(path), $"{path} is mapped but not in the OpenAPI document");
            Assert.True(paths[path]!.AsObject().ContainsKey(method), $"{method.ToUpperInvariant()} {path} is mapped but not in the OpenAPI document");
        }

        Assert.Contains("/api/conversations/{conversationId}/messages", paths.Select(p => p.Key));
        Assert.Contains("/api/approvals/{turnInstanceId}/{toolCallId}", paths.Select(p => p.Key));
        JsonObject schemes = document["components"]!["securitySchemes"]!.AsObject();
        Assert.Equal("x-management-key", (string?)schemes["managementKey"]!["name"]);
        Assert.Equal("token", (string?)schemes["conversationToken"]!["name"]);
        Assert.Equal("webhook-signature", (string?)schemes["standardWebhooks"]!["name"]);
    }

    [Fact(Timeout = 120_000)]
    public async Task HealthEndpoints_LiveAndReady()
    {
        await using ApiHarness api = await ApiHarness.StartSqliteAsync();

        using HttpResponseMessage live = await api.Http.GetAsync("/healthz");
        JsonNode ready = await api.GetJsonAsync("/readyz");

        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        Assert.Equal("Healthy", (string?)ready["status"]);
        Assert.Equal("Healthy", (string?)ready["checks"]!["backend"]);
        Assert.Equal("Healthy", (string?)ready["checks"]!["requestLedger"]);
    }

    [Fact(Timeout = 120_000)]
    public async Task Start_NoManagementKeyBeyondLoopback_RefusesToStart()
    {
        var options = new ServeOptions
        {
            Settings = new HostSettings(),
            Api = new ApiSettings(),
            Urls = ["http://0.0.0.0:0"],
            DataSource = Path.Combine(Directory.CreateTempSubdirectory("api-open-").FullName, "o.db"),
            CreateAgent = (_, _, _) => Task.FromResult(new HostAgentRuntime(new TestAgent().Definition())),
        };

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => ServeHost.StartAsync(options, CancellationToken.None));
        Assert.Contains("Management:Key", ex.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 120_000)]
    public async Task Start_NoManagementKeyOnLoopback_GeneratesOneThatWorks()
    {
        await using ApiHarness api = await ApiHarness.StartSqliteAsync(api: new ApiSettings());

        Assert.True(api.Host.KeyGenerated);
        Assert.True(api.Host.ManagementKey.Length >= 40);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/confirmations") { Headers = { { "x-management-key", api.Host.ManagementKey } } };
        Assert.Equal(HttpStatusCode.OK, (await api.Http.SendAsync(request)).StatusCode);
        using HttpResponseMessage configuredKey = await api.Http.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/api/confirmations") { Headers = { { "x-management-key", ApiHarness.ManagementKey } } });
        Assert.Equal(HttpStatusCode.Forbidden, configuredKey.StatusCode);
    }

    [Theory]
    [InlineData("Management__Key", "short", "Management:Key")]
    [InlineData("Webhooks__ConfirmationSecrets", "whsec_ok+base64= plain-secret", "Webhooks:ConfirmationSecrets")]
    [InlineData("QueueTrigger__QueueName", "Bad_Queue", "QueueTrigger:QueueName")]
    public void ApiSettings_InvalidSetting_StopsStartupNamingIt(string key, string value, string named)
    {
        IConfiguration config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { [key.Replace("__", ":", StringComparison.Ordinal)] = value }).Build();

        var ex = Assert.Throws<InvalidOperationException>(() => ApiSettings.FromConfiguration(config, new HostSettings { StorageConnectionString = "UseDevelopmentStorage=true" }));

        Assert.Contains(named, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ApiSettings_QueueTriggerWithoutAzureStorage_StopsStartupNamingIt()
    {
        IConfiguration config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["QueueTrigger:QueueName"] = "turns" }).Build();

        var ex = Assert.Throws<InvalidOperationException>(() => ApiSettings.FromConfiguration(config, new HostSettings()));

        Assert.Contains("QueueTrigger:QueueName", ex.Message, StringComparison.Ordinal);
        Assert.Contains("AzureWebJobsStorage", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ApiSettings_LocalSettingsValuesAndHostJson_Read()
    {
        string dir = Directory.CreateTempSubdirectory("api-settings-").FullName;
        File.WriteAllText(Path.Combine(dir, "local.settings.json"), $$"""
            { "Values": { "AzureWebJobsStorage": "UseDevelopmentStorage=true", "Management__Key": "a-management-key-of-enough-length",
              "Webhooks__ConfirmationSecrets": "{{ApiHarness.Secret}} {{ApiHarness.OldSecret}}", "QueueTrigger__QueueName": "agent-turns" } }
            """);
        File.WriteAllText(Path.Combine(dir, "host.json"), """{ "extensions": { "queues": { "maxDequeueCount": 3, "visibilityTimeout": "00:00:02" } } }""");

        HostSettings host = HostSettings.Load(dir);
        ApiSettings s = ApiSettings.Load(dir, host);

        Assert.Equal("a-management-key-of-enough-length", s.ManagementKey);
        Assert.Equal([ApiHarness.Secret, ApiHarness.OldSecret], s.WebhookSecrets);
        Assert.Equal("agent-turns", s.QueueName);
        Assert.Equal(3, s.MaxDequeueCount);
        Assert.Equal(TimeSpan.FromSeconds(2), s.VisibilityTimeout);
    }
}

public sealed class ServeCommandLineTests
{
    [Fact]
    public async Task Serve_UnknownOption_Exit2NamingIt()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CommandLine.RunAsync(["serve", "--port", "80"], stdout, stderr, CancellationToken.None);

        Assert.Equal(2, code);
        Assert.Contains("--port", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void ServeOptions_Urls_SplitOnSemicolonsDefaultLoopback()
    {
        Assert.Equal([ServeOptions.DefaultUrl], ServeCommandOptions.Parse([]).Urls);
        Assert.Equal(["http://127.0.0.1:8080", "http://[::1]:8080"], ServeCommandOptions.Parse(["--urls", "http://127.0.0.1:8080;http://[::1]:8080"]).Urls);
    }
}

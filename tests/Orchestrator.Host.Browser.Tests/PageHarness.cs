using System.Collections.Concurrent;
using System.ComponentModel.DataAnnotations;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FluentValidation;
using Microsoft.Extensions.Logging;
using Microsoft.Playwright;
using Orchestrator.Agents;
using Orchestrator.Agents.Models;
using Orchestrator.Agents.Models.Scripted;
using Orchestrator.Host.Api;

namespace Orchestrator.Host.Browser.Tests;

public sealed record LookupOrderArgs(string OrderId);

public sealed record RefundArgs(string OrderId, [property: Range(0.01, 10000)] decimal Amount, [property: RegularExpression("^[A-Z]{3}$")] string Currency, string Reason);

public sealed record NotifyArgs(string OrderId, string Message);

public sealed record UpdateCardArgs(string CustomerId, string CardNumber);

public sealed class RefundRules : AbstractValidator<RefundArgs>
{
    public RefundRules() =>
        RuleFor(x => x.OrderId).Matches(@"^A\d{4,}$").WithName("order_id").WithMessage("order_id must be an order id like A8472");
}

/// <summary>A tool execution the agent's handlers saw.</summary>
public sealed record Execution(string Tool, string ToolCallId, string Arguments, string? IdempotencyKey);

/// <summary>
/// The real host (Kestrel on a free loopback port, SQLite in a temp folder) running a support-desk agent whose model is
/// the OpenAI SDK talking to a <see cref="ScriptedChatServer"/>: "refund ..." proposes a lookup, a refund that needs
/// confirmation (with a model-written reason that is an HTML injection attempt) and a notification that depends on it.
/// Every tool execution is recorded.
/// </summary>
internal sealed class PageHarness : IAsyncDisposable
{
    public const string ManagementKey = "browser-test-management-key-0123456789";

    /// <summary>What the model wrote as the refund's reason: markup that must show as text, never become an element.</summary>
    public const string HostileReason = "<img src=x onerror=window.__xss=1>";

    /// <summary>A card number the model passes to a tool whose argument is marked sensitive: it must never reach the page.</summary>
    public const string CardNumber = "4111111111111111";

    private readonly ScriptedChatServer model;
    private readonly List<IBrowserContext> contexts = [];

    private PageHarness(ServeHost host, ScriptedChatServer model, ConcurrentQueue<Execution> executions)
    {
        this.Host = host;
        this.model = model;
        this.Executions = executions;
        this.BaseUrl = host.Addresses[0].TrimEnd('/');
        this.Http = new HttpClient { BaseAddress = new Uri(this.BaseUrl), Timeout = TimeSpan.FromSeconds(30) };
        this.Http.DefaultRequestHeaders.Add("x-management-key", ManagementKey);
    }

    public ServeHost Host { get; }

    public string BaseUrl { get; }

    public HttpClient Http { get; }

    public ConcurrentQueue<Execution> Executions { get; }

    public IEnumerable<Execution> Refunds => this.Executions.Where(e => e.Tool == "process_refund");

    public static async Task<PageHarness> StartAsync()
    {
        string refundArguments = JsonSerializer.Serialize(new { order_id = "A8472", amount = 47.00m, currency = "USD", reason = HostileReason });
        var script = new ChatScript(
            ScriptEntry.Calls(
                new ScriptedToolCall("call_lookup", "lookup_order", "{\"order_id\":\"A8472\"}"),
                new ScriptedToolCall("call_refund", "process_refund", refundArguments),
                new ScriptedToolCall("call_notify", "notify_customer", "{\"order_id\":\"A8472\",\"message\":\"Your refund is on its way.\"}"))
                with { Name = "propose refund", When = new ScriptMatch { LastRole = "user", LastContains = "refund" } },
            ScriptEntry.Calls(new ScriptedToolCall("call_card", "update_card", $"{{\"customer_id\":\"C-1\",\"card_number\":\"{CardNumber}\"}}"))
                with { Name = "replace card", When = new ScriptMatch { LastRole = "user", LastContains = "card" } },
            ScriptEntry.Text("The refund request is handled.") with { Name = "answer", When = new ScriptMatch { LastRole = "tool" }, Repeat = true });
        ScriptedChatServer server = await ScriptedChatServer.StartAsync(script, null, CancellationToken.None);
        try
        {
            var recorder = new ConcurrentQueue<Execution>();
            AgentDefinition agent = Agent(new OpenAIChatModel(new OpenAIChatModelOptions { BaseUrl = server.BaseUrl, ApiKey = "scripted", Model = "scripted", MaxRetries = 0 }), recorder);
            var options = new ServeOptions
            {
                Settings = new HostSettings(),
                Api = new ApiSettings { ManagementKey = ManagementKey },
                Urls = ["http://127.0.0.1:0"],
                DataSource = Path.Combine(Directory.CreateTempSubdirectory("browser-tests-").FullName, "orchestrator.db"),
                CreateAgent = (_, _, _) => Task.FromResult(new HostAgentRuntime(agent)),
                WorkerMaxPollingInterval = TimeSpan.FromMilliseconds(50),
                ConfigureLogging = logging => logging.ClearProviders().SetMinimumLevel(LogLevel.Warning),
            };
            ServeHost host = await ServeHost.StartAsync(options, CancellationToken.None);
            return new PageHarness(host, server, recorder);
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (IBrowserContext context in this.contexts)
        {
            await context.DisposeAsync();
        }

        this.Http.Dispose();
        await this.Host.DisposeAsync();
        await this.model.DisposeAsync();
    }

    /// <summary>A fresh browser tab (own sessionStorage) that records every request it makes.</summary>
    public async Task<(IPage Page, ConcurrentQueue<IRequest> Requests)> NewPageAsync(IBrowser browser)
    {
        IBrowserContext context = await browser.NewContextAsync();
        this.contexts.Add(context);
        IPage page = await context.NewPageAsync();
        var requests = new ConcurrentQueue<IRequest>();
        page.Request += (_, request) => requests.Enqueue(request);
        return (page, requests);
    }

    /// <summary>Opens the approvals page with the key in the URL fragment.</summary>
    public string PageUrlWithKey => $"{this.BaseUrl}/approvals#key={Uri.EscapeDataString(ManagementKey)}";

    public async Task StartConversationAsync(string conversationId, string text)
    {
        using var content = new StringContent(JsonSerializer.Serialize(new { text }), Encoding.UTF8, "application/json");
        using HttpResponseMessage response = await this.Http.PostAsync($"/api/conversations/{conversationId}/messages", content);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
    }

    public async Task<JsonArray> ConfirmationsAsync() =>
        (await this.Http.GetFromJsonAsync<JsonArray>("/api/confirmations"))!;

    public async Task<JsonNode> StatusAsync(string conversationId) =>
        (await this.Http.GetFromJsonAsync<JsonNode>($"/api/conversations/{conversationId}"))!;

    /// <summary>Waits (bounded) until the API lists a pending confirmation of <paramref name="conversationId"/>.</summary>
    public async Task<JsonNode> PendingConfirmationAsync(string conversationId)
    {
        JsonNode? item = null;
        await Eventually(async () => (item = (await this.ConfirmationsAsync()).FirstOrDefault(i => (string?)i!["conversationId"] == conversationId)) is not null, "a call of the conversation waits for confirmation");
        return item!;
    }

    /// <summary>Waits (bounded) until the conversation's first turn has finished; returns the status.</summary>
    public async Task<JsonNode> TurnCompletedAsync(string conversationId)
    {
        JsonNode? status = null;
        await Eventually(async () => (status = await this.StatusAsync(conversationId)) is { } s && (int?)s["turns"] == 1 && s["currentTurn"] is null, "the turn completed");
        return status!;
    }

    private static async Task Eventually(Func<Task<bool>> condition, string because)
    {
        TimeSpan limit = TimeSpan.FromSeconds(60);
        var watch = Stopwatch.StartNew();
        while (!await condition())
        {
            if (watch.Elapsed > limit)
            {
                throw new TimeoutException($"Not within {limit}: {because}.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50));
        }
    }

    private static AgentDefinition Agent(IChatModel model, ConcurrentQueue<Execution> recorder)
    {
        ToolRegistry tools = new ToolRegistryBuilder()
            .Add(ToolDefinition.FromArguments<LookupOrderArgs>("lookup_order", "Look up an order.") with { ResourceKeyArguments = ["order_id"] })
            .Add(ToolDefinition.FromArguments<RefundArgs>("process_refund", "Refund an order.") with
            {
                Effect = ToolEffect.Write,
                RequiresConfirmation = true,
                ResourceKeyArguments = ["order_id"],
                DependsOn = ["lookup_order"],
                Validator = new RefundRules(),
                SummaryTemplate = "Refund ${amount:0.00} for order {order_id}: {reason}",
            })
            .Add(ToolDefinition.FromArguments<NotifyArgs>("notify_customer", "Tell the customer.") with
            {
                Effect = ToolEffect.Write,
                DependsOn = ["process_refund"],
            })
            .Add(ToolDefinition.FromArguments<UpdateCardArgs>("update_card", "Replace the card on file.") with
            {
                Effect = ToolEffect.Write,
                RequiresConfirmation = true,
                ResourceKeyArguments = ["customer_id"],
                SensitiveArguments = ["card_number"],
                SummaryTemplate = "Replace the card on file of customer {customer_id}",
            })
            .Build();
        ToolHandler Record(string result) => (inv, _) =>
        {
            recorder.Enqueue(new Execution(inv.ToolName, inv.ToolCallId, inv.Arguments, inv.IdempotencyKey));
            return Task.FromResult(result);
        };
        ToolHandlers handlers = new ToolHandlers()
            .Add("lookup_order", Record("{\"order_id\":\"A8472\",\"total\":47.00}"))
            .Add("process_refund", Record("{\"refund_id\":\"R-1\",\"status\":\"refunded\"}"))
            .Add("notify_customer", Record("{\"sent\":true}"))
            .Add("update_card", Record("{\"updated\":true}"));
        return new AgentDefinition("browser-desk", tools, handlers, model) { SystemPrompt = "You are a support desk." };
    }
}

using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Data.Sqlite;
using Orchestrator.Agents;
using Orchestrator.Agents.Models;
using Orchestrator.Agents.Models.Scripted;
using Orchestrator.Durable;
using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;
using Orchestrator.Host.Cli;
using PaymentsService;

namespace Orchestrator.Host.Cli.Tests;

/// <summary>
/// The refund incident on a SQLite file: a scripted OpenAI-compatible model, the real payments service on loopback,
/// and a worker running the agent turn, so the CLI commands work on a store a real turn wrote.
/// </summary>
internal sealed class CliHarness : IAsyncDisposable
{
    private static int s_counter;
    private readonly IOrchestrationBackend _backend;
    private readonly DurableTaskWorker _worker;
    private readonly WebApplication _payments;
    private readonly ScriptedChatServer _server;
    private int _refundHandlerCalls;

    private CliHarness(string db, ScriptedChatServer server, WebApplication payments, HttpClient paymentsClient, IOrchestrationBackend backend, DurableTaskWorker worker, AgentDefinition agent, HostSettings? settings)
    {
        Settings = settings;
        Db = db;
        _server = server;
        _payments = payments;
        PaymentsClient = paymentsClient;
        _backend = backend;
        _worker = worker;
        Agent = agent;
        Client = new DurableTaskClient(backend);
    }

    public string Db { get; }

    /// <summary>The settings the CLI runs with: null for the SQLite file <see cref="Db"/> (passed as --db), else Azure Storage.</summary>
    public HostSettings? Settings { get; }

    public HttpClient PaymentsClient { get; }

    public DurableTaskClient Client { get; }

    /// <summary>The agent the worker runs (its refund handler calls the payments service).</summary>
    public AgentDefinition Agent { get; }

    /// <summary>How often the real refund handler ran.</summary>
    public int RefundHandlerCalls => Volatile.Read(ref _refundHandlerCalls);

    public static ToolDefinition LookupOrder => ToolDefinition.FromArguments<LookupOrderArgs>("lookup_order", "Look up an order by its id.") with
    {
        ResourceKeyArguments = ["order_id"],
        Timeout = TimeSpan.FromSeconds(10),
    };

    public static ToolDefinition ProcessRefund => ToolDefinition.FromArguments<RefundArgs>("process_refund", "Refund (part of) an order.") with
    {
        Effect = ToolEffect.Write,
        RequiresConfirmation = true,
        ResourceKeyArguments = ["order_id"],
        DependsOn = ["lookup_order"],
        SummaryTemplate = "Refund ${amount:0.00} for order {order_id}",
        Timeout = TimeSpan.FromSeconds(10),
    };

    /// <param name="extra">More orchestrators for the worker.</param>
    /// <param name="settings">Azure Storage settings to run on; null for a SQLite file.</param>
    public static async Task<CliHarness> StartAsync(Action<DurableTaskRegistry>? extra = null, HostSettings? settings = null)
    {
        string db = Path.Combine(Path.GetTempPath(), $"cli-{Environment.ProcessId}-{Interlocked.Increment(ref s_counter)}-{Environment.TickCount64}.db");
        WebApplication payments = PaymentsApp.Build(["--urls", "http://127.0.0.1:0", "--db", db + ".payments", "--Logging:LogLevel:Default", "Warning"]);
        await payments.StartAsync();
        var paymentsClient = new HttpClient { BaseAddress = payments.ListeningAddress(), Timeout = TimeSpan.FromSeconds(20) };

        var script = new ChatScript(
            ScriptEntry.Calls(new ScriptedToolCall("call_2", "process_refund", """{"order_id":"A8472","amount":47.00,"currency":"USD"}""")) with
            {
                When = new ScriptMatch { LastRole = "user", LastContains = "refund" },
            },
            ScriptEntry.Text("Your refund of $47.00 for order A8472 is done.") with { When = new ScriptMatch { ToolResultFor = "call_2" } });
        ScriptedChatServer server = await ScriptedChatServer.StartAsync(script, null, CancellationToken.None);
        var model = new OpenAIChatModel(new OpenAIChatModelOptions { BaseUrl = server.BaseUrl, ApiKey = "test", Model = "scripted", MaxRetries = 0 });

        CliHarness? self = null;
        ToolHandler http = ToolHandlers.Http(paymentsClient, new Uri(paymentsClient.BaseAddress!, "/refunds"));
        var handlers = new ToolHandlers()
            .Add("lookup_order", (inv, _) => Task.FromResult("""{"order_id":"A8472","total":47.00}"""))
            .Add("process_refund", (inv, ct) =>
            {
                Interlocked.Increment(ref self!._refundHandlerCalls);
                return http(inv, ct);
            });
        var agent = new AgentDefinition("cli-test", new ToolRegistryBuilder().AddRange([LookupOrder, ProcessRefund]).Build(), handlers, model);

        IOrchestrationBackend backend = settings?.CreateBackend() ?? new SqliteOrchestrationBackend(new SqliteOrchestrationBackendOptions { DataSource = db });
        await backend.CreateIfNotExistsAsync(CancellationToken.None);
        var registry = new DurableTaskRegistry().AddAgentTurn(agent.Tools, agent.Handlers, agent.Model);
        extra?.Invoke(registry);
        var worker = new DurableTaskWorker(backend, registry, new DurableTaskWorkerOptions { MaxPollingInterval = TimeSpan.FromMilliseconds(50) });
        await worker.StartAsync(CancellationToken.None);
        self = new CliHarness(db, server, payments, paymentsClient, backend, worker, agent, settings);
        return self;
    }

    /// <summary>Starts the refund turn and waits until the refund waits for a human.</summary>
    public async Task<PendingConfirmation> StartRefundTurnAsync(string instanceId)
    {
        var input = new TurnInput("conv-" + instanceId, [
            ModelMessage.System("You are a support agent."),
            ModelMessage.User("Order A8472 arrived broken. Please refund the $47."),
        ]);
        await Client.ScheduleNewOrchestrationInstanceAsync(TurnRegistration.TurnOrchestrator, input, new StartOrchestrationOptions { InstanceId = instanceId });
        TurnStatus? status = null;
        await Eventually.TrueAsync(
            async () => (status = await TurnConfirmations.GetStatusAsync(Client, instanceId, CancellationToken.None)) is { PendingConfirmations.Count: 1 },
            "the refund waits for a confirmation");
        return status!.PendingConfirmations[0];
    }

    public async Task<OrchestrationMetadata> WaitForCompletionAsync(string instanceId)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return await Client.WaitForInstanceCompletionAsync(instanceId, cts.Token);
    }

    public async Task<JsonElement[]> LedgerAsync()
    {
        string json = await PaymentsClient.GetStringAsync("/ledger");
        using JsonDocument doc = JsonDocument.Parse(json);
        return [.. doc.RootElement.GetProperty("entries").EnumerateArray().Select(e => e.Clone())];
    }

    /// <summary>Runs a CLI command against this harness's store (appends --db) with captured output.</summary>
    public Task<CliRun> RunAsync(params string[] args) => RunAsync(Context(Agent), args);

    public async Task<CliRun> RunAsync(CliContext context, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Settings is null
            ? await CommandLine.RunAsync([.. args, "--db", Db], stdout, stderr, context, CancellationToken.None)
            : await CommandLine.RunAsync(args, stdout, stderr, context with { Settings = Settings }, CancellationToken.None);
        return new CliRun(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>A CLI context whose replay builds <paramref name="agent"/>.</summary>
    public static CliContext Context(AgentDefinition agent, TimeProvider? time = null) => new()
    {
        AgentFactory = (_, _, _) => Task.FromResult(new HostAgentRuntime(agent)),
        TimeProvider = time ?? TimeProvider.System,
    };

    public async ValueTask DisposeAsync()
    {
        await _worker.DisposeAsync();
        await _backend.DisposeAsync();
        await _server.DisposeAsync();
        PaymentsClient.Dispose();
        await _payments.StopAsync();
        await _payments.DisposeAsync();
        SqliteConnection.ClearAllPools();
        foreach (string file in new[] { Db, Db + ".payments" })
        {
            foreach (string suffix in new[] { string.Empty, "-wal", "-shm" })
            {
                File.Delete(file + suffix);
            }
        }
    }
}

internal sealed record CliRun(int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";
}

public sealed record LookupOrderArgs(string OrderId);

public sealed record RefundArgs(string OrderId, decimal Amount, string Currency);

/// <summary>Bounded waiting for a condition that becomes true asynchronously.</summary>
internal static class Eventually
{
    public static Task TrueAsync(Func<Task<bool>> condition, string because, TimeSpan? timeout = null) =>
        TestWait.EventuallyAsync(condition, timeout, because);
}

/// <summary>The system clock shifted: "now" for purge ages without waiting.</summary>
internal sealed class ShiftedTime(TimeSpan shift) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + shift;
}

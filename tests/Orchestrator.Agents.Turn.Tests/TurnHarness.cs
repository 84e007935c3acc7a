using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Data.Sqlite;
using Orchestrator.Agents.Models;
using Orchestrator.Agents.Models.Scripted;
using Orchestrator.Durable;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;
using PaymentsService;

namespace Orchestrator.Agents.Turn.Tests;

/// <summary>
/// A scripted OpenAI-compatible server, the real OpenAI SDK model, the SQLite in-memory backend and a real worker
/// running the turn.
/// </summary>
internal sealed class TurnHarness : IAsyncDisposable
{
    private readonly SqliteOrchestrationBackend _backend;
    private readonly DurableTaskWorker _worker;

    private TurnHarness(ScriptedChatServer server, SqliteOrchestrationBackend backend, DurableTaskWorker worker, DurableTaskRegistry registry)
    {
        Registry = registry;
        Server = server;
        _backend = backend;
        _worker = worker;
        Client = new DurableTaskClient(backend);
    }

    public ScriptedChatServer Server { get; }

    public DurableTaskRegistry Registry { get; }

    public DurableTaskClient Client { get; }

    /// <summary>The worker running the turns (its episode counters say whether episodes replayed).</summary>
    public DurableTaskWorker Worker => _worker;

    public static async Task<TurnHarness> StartAsync(ChatScript script, ToolRegistry tools, ToolHandlers handlers, Microsoft.Extensions.Logging.ILoggerFactory? loggerFactory = null, AgentTurnOptions? options = null, string? dataSource = null, int? maxCachedOrchestrations = null, Microsoft.Extensions.Logging.ILoggerFactory? workerLoggerFactory = null)
    {
        var server = await ScriptedChatServer.StartAsync(script, null, CancellationToken.None);
        var model = new OpenAIChatModel(new OpenAIChatModelOptions { BaseUrl = server.BaseUrl, ApiKey = "test", Model = "scripted", MaxRetries = 0 });
        var backend = new SqliteOrchestrationBackend(dataSource is null ? SqliteOrchestrationBackendOptions.InMemory() : new SqliteOrchestrationBackendOptions { DataSource = dataSource });
        var registry = new DurableTaskRegistry().AddAgentTurn(tools, handlers, model, (options ?? new AgentTurnOptions()) with { LoggerFactory = loggerFactory ?? options?.LoggerFactory });
        var workerOptions = new DurableTaskWorkerOptions { MaxPollingInterval = TimeSpan.FromMilliseconds(50) };
        var worker = new DurableTaskWorker(backend, registry, workerOptions with { MaxCachedOrchestrations = maxCachedOrchestrations ?? workerOptions.MaxCachedOrchestrations }, workerLoggerFactory);
        await worker.StartAsync(CancellationToken.None);
        return new TurnHarness(server, backend, worker, registry);
    }

    public Task<string> StartTurnAsync(TurnInput input, string instanceId) =>
        Client.ScheduleNewOrchestrationInstanceAsync(TurnRegistration.TurnOrchestrator, input, new StartOrchestrationOptions { InstanceId = instanceId });

    public async Task<TurnOutput> WaitForTurnAsync(string instanceId, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(30));
        var metadata = await Client.WaitForInstanceCompletionAsync(instanceId, cts.Token);
        Assert.True(metadata.RuntimeStatus == OrchestrationRuntimeStatus.Completed, $"turn {instanceId} is {metadata.RuntimeStatus}: {metadata.FailureDetails}");
        return metadata.ReadOutputAs<TurnOutput>()!;
    }

    public async Task<TurnOutput> RunTurnAsync(TurnInput input, string instanceId)
    {
        await StartTurnAsync(input, instanceId);
        return await WaitForTurnAsync(instanceId);
    }

    /// <summary>Re-runs the orchestrator code against the instance's recorded history.</summary>
    public async Task<ReplayOutcome> ReplayAsync(string instanceId)
    {
        var history = await Client.GetHistoryAsync(instanceId);
        return new OrchestrationReplayer(Registry).Replay(history);
    }

    /// <summary>Polls the turn's status until <paramref name="condition"/> holds (bounded).</summary>
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

    public async ValueTask DisposeAsync()
    {
        await _worker.DisposeAsync();
        await _backend.DisposeAsync();
        await Server.DisposeAsync();
    }
}

/// <summary>The sample payments service on a real Kestrel (free port) with its own SQLite ledger file.</summary>
internal sealed class PaymentsHost : IAsyncDisposable
{
    private static int s_counter;
    private readonly WebApplication _app;

    private PaymentsHost(WebApplication app, string dbPath)
    {
        _app = app;
        DbPath = dbPath;
        Client = new HttpClient { BaseAddress = app.ListeningAddress(), Timeout = TimeSpan.FromSeconds(20) };
    }

    public HttpClient Client { get; }

    public string DbPath { get; }

    public static async Task<PaymentsHost> StartAsync()
    {
        string db = Path.Combine(Path.GetTempPath(), $"turn-payments-{Environment.ProcessId}-{Interlocked.Increment(ref s_counter)}.db");
        WebApplication app = PaymentsApp.Build(["--urls", "http://127.0.0.1:0", "--db", db, "--Logging:LogLevel:Default", "Warning"]);
        await app.StartAsync();
        return new PaymentsHost(app, db);
    }

    public async Task<JsonElement[]> LedgerAsync()
    {
        string json = await Client.GetStringAsync("/ledger");
        using JsonDocument doc = JsonDocument.Parse(json);
        return [.. doc.RootElement.GetProperty("entries").EnumerateArray().Select(e => e.Clone())];
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        SqliteConnection.ClearAllPools();
        foreach (string suffix in new[] { string.Empty, "-wal", "-shm" })
        {
            File.Delete(DbPath + suffix);
        }
    }
}

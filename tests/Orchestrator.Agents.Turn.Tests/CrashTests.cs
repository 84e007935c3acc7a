using Microsoft.Data.Sqlite;
using Orchestrator.Agents.Models;
using Orchestrator.Agents.Models.Scripted;
using Orchestrator.Durable;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Agents.Turn.Tests;

public sealed class CrashTests
{
    [Fact(Timeout = 60_000)]
    public Task RunTurn_WorkerDiesAfterPaymentBeforeCheckpoint_MarkedInDoubtRetrySendsSameKeyAndLedgerShowsOneRefund() =>
        CrashAfterPaymentAsync(withReconcile: false);

    [Fact(Timeout = 60_000)]
    public Task RunTurn_WorkerDiesAfterPaymentWithReconcile_MarkedInDoubtServiceAskedFirstAndNotPostedAgain() =>
        CrashAfterPaymentAsync(withReconcile: true);

    private static ToolReconciler PaymentsReconciler(HttpClient client, List<string> asked) => async (request, ct) =>
    {
        lock (asked)
        {
            asked.Add(request.IdempotencyKey);
        }

        using var response = await client.GetAsync(new Uri($"/refunds?key={Uri.EscapeDataString(request.IdempotencyKey)}", UriKind.Relative), ct);
        if (response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return ReconcileResult.NotPerformed;
        }

        using var doc = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
        return doc.RootElement.GetProperty("state").GetString() == "completed"
            ? ReconcileResult.Performed(doc.RootElement.GetProperty("response").GetRawText())
            : ReconcileResult.Unknown;
    };

    private static async Task CrashAfterPaymentAsync(bool withReconcile)
    {
        await using var payments = await PaymentsHost.StartAsync();
        var refundEndpoint = new Uri(payments.Client.BaseAddress!, "/refunds");
        var reconcileAsked = new List<string>();
        var refundTool = Desk.ProcessRefund with { RequiresConfirmation = false, Reconcile = withReconcile ? PaymentsReconciler(payments.Client, reconcileAsked) : null };
        var tools = new ToolRegistryBuilder().AddRange([Desk.LookupOrder, refundTool]).Build();
        var script = new ChatScript(
            ScriptEntry.Calls(new ScriptedToolCall("call_r", "process_refund", """{"order_id":"A8472","amount":47.00,"currency":"USD"}""")),
            ScriptEntry.Text("Refunded.") with { When = new ScriptMatch { ToolResultFor = "call_r" } });
        await using var server = await ScriptedChatServer.StartAsync(script, null, CancellationToken.None);
        var model = new OpenAIChatModel(new OpenAIChatModelOptions { BaseUrl = server.BaseUrl, ApiKey = "test", Model = "scripted", MaxRetries = 0 });
        string db = Path.Combine(Path.GetTempPath(), $"turn-crash-{Environment.ProcessId}-{Guid.NewGuid():N}.db");
        string journalPath = db + ".journal";
        var logLines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var logs = new CapturingLoggerFactory(logLines);
        var workerOptions = new DurableTaskWorkerOptions { MaxPollingInterval = TimeSpan.FromMilliseconds(50) };
        try
        {
            // First worker: the payment goes through, then the worker dies before the activity's result is recorded.
            string? firstKey = null;
            var effectDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var http = ToolHandlers.Http(payments.Client, refundEndpoint);
            var dying = new ToolHandlers()
                .Add("lookup_order", (inv, _) => Desk.OrderJson(inv))
                .Add("process_refund", async (inv, ct) =>
                {
                    string response = await http(inv, ct);
                    firstKey = inv.IdempotencyKey;
                    effectDone.TrySetResult();
                    await Task.Delay(Timeout.InfiniteTimeSpan, ct);
                    return response;
                });
            await using (var backend1 = new SqliteOrchestrationBackend(new SqliteOrchestrationBackendOptions { DataSource = db }))
            {
                // Each worker has its own journal object over one shared file, as two processes would.
                using var journal1 = new SqliteToolCallJournal(journalPath);
                var worker1 = new DurableTaskWorker(backend1, new DurableTaskRegistry().AddAgentTurn(tools, dying, model, new AgentTurnOptions { CallJournal = journal1 }), workerOptions);
                await worker1.StartAsync(CancellationToken.None);
                await new DurableTaskClient(backend1).ScheduleNewOrchestrationInstanceAsync(
                    TurnRegistration.TurnOrchestrator,
                    new TurnInput("conv-crash", [ModelMessage.User("refund order A8472, $47")]),
                    new StartOrchestrationOptions { InstanceId = "turn-crash" });
                await effectDone.Task.WaitAsync(TimeSpan.FromSeconds(20));
                Assert.Single(await payments.LedgerAsync());
                await worker1.DisposeAsync();
            }

            SqliteConnection.ClearAllPools();

            // A new worker on the same store: the abandoned ExecuteTool runs again with the same key.
            var retryKeys = new List<string?>();
            var healthy = new ToolHandlers()
                .Add("lookup_order", (inv, _) => Desk.OrderJson(inv))
                .Add("process_refund", (inv, ct) =>
                {
                    lock (retryKeys)
                    {
                        retryKeys.Add(inv.IdempotencyKey);
                    }

                    return http(inv, ct);
                });
            await using var backend2 = new SqliteOrchestrationBackend(new SqliteOrchestrationBackendOptions { DataSource = db });
            using var journal2 = new SqliteToolCallJournal(journalPath);
            await using var worker2 = new DurableTaskWorker(backend2, new DurableTaskRegistry().AddAgentTurn(tools, healthy, model, new AgentTurnOptions { CallJournal = journal2, LoggerFactory = logs }), workerOptions);
            await worker2.StartAsync(CancellationToken.None);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var metadata = await new DurableTaskClient(backend2).WaitForInstanceCompletionAsync("turn-crash", cts.Token);

            Assert.Equal(OrchestrationRuntimeStatus.Completed, metadata.RuntimeStatus);
            var output = metadata.ReadOutputAs<TurnOutput>()!;
            Assert.Equal(TurnOutcome.Answered, output.Outcome);
            Assert.NotNull(firstKey);
            Assert.Equal(withReconcile ? [] : [firstKey], retryKeys);
            var refund = Assert.Single(await payments.LedgerAsync());
            Assert.Equal(firstKey, refund.GetProperty("idempotency_key").GetString());
            Assert.Equal(firstKey, Assert.Single(output.CompletedWrites).IdempotencyKey);
            Assert.Contains("A8472", Assert.Single(output.CompletedWrites).Result, StringComparison.Ordinal);

            // The re-run knew the first attempt had called out without recording a result: the call is marked in doubt,
            // the service was asked before anything was sent again (when the tool can be asked), and the log says so.
            Assert.Equal(withReconcile ? [firstKey] : [], reconcileAsked);
            var inDoubt = Assert.Single(metadata.ReadCustomStatusAs<TurnStatus>()!.InDoubt);
            Assert.Equal(new InDoubtCall("call_r", "process_refund", firstKey, withReconcile ? "reconciled_performed" : "retried"), inDoubt);
            Assert.Contains(logLines, l => l.Contains("is in doubt", StringComparison.Ordinal) && l.Contains(firstKey, StringComparison.Ordinal));
            Assert.Contains(logLines, l => l.Contains("was in doubt", StringComparison.Ordinal) && l.Contains(withReconcile ? "reconciled_performed" : "retried", StringComparison.Ordinal));
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            foreach (string suffix in new[] { string.Empty, "-wal", "-shm", ".journal", ".journal-wal", ".journal-shm" })
            {
                File.Delete(db + suffix);
            }
        }
    }
}

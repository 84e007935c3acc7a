using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Orchestrator.Agents;
using Orchestrator.Agents.Models;
using Orchestrator.Durable;
using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.Worker;
using SupportDesk;

namespace Orchestrator.Host.Api.Tests;

/// <summary>
/// The case the shared journal exists for: on Azure Storage, a refund's worker dies after calling the payments service,
/// and the retry runs in another worker (another backend, another journal object, as another process would have).
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class AzureInDoubtTests(AzuriteFixture azurite)
{
    [Fact(Timeout = 180_000)]
    public async Task RefundWorkerDiesAfterCallingOut_RetryInAnotherWorker_MarkedInDoubtReconciledAndLedgerShowsOneRefund()
    {
        var settings = new HostSettings { StorageConnectionString = azurite.ConnectionString, HubName = AzuriteFixture.NewName("doubt"), PartitionCount = 1 };
        string folder = Directory.CreateTempSubdirectory("azure-in-doubt-").FullName;
        await using LocalPaymentsService payments = await LocalPaymentsService.StartAsync(Path.Combine(folder, "payments.db"), CancellationToken.None);
        ToolRegistry tools = SupportDeskTools.Build(OrderStore.Seeded, new PaymentsReconciler(payments.Client));
        ToolHandlers desk = SupportDeskHandlers.Build(OrderStore.Seeded, payments.Client, new EscalationDesk());
        ToolHandler refund = desk.Find(SupportDeskTools.ProcessRefund)!;
        var workerOptions = new DurableTaskWorkerOptions { MaxPollingInterval = TimeSpan.FromMilliseconds(50) };
        const string turnId = "turn-doubt";

        // First worker: the refund reaches the payments service, then the worker dies before the result is recorded.
        string? firstKey = null;
        var calledOut = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        ToolHandlers dying = WithRefund(desk, async (invocation, ct) =>
        {
            string response = await refund(invocation, ct);
            firstKey = invocation.IdempotencyKey;
            calledOut.TrySetResult();
            await Task.Delay(Timeout.InfiniteTimeSpan, TimeProvider.System, ct);
            return response;
        });
        await using (IOrchestrationBackend backend1 = settings.CreateBackend())
        {
            await backend1.CreateIfNotExistsAsync(CancellationToken.None);
            AgentTurnOptions options1 = HostTurnOptions.Create(settings, NullLoggerFactory.Instance);
            using var journal1 = (IDisposable)options1.CallJournal!;
            var worker1 = new DurableTaskWorker(backend1, new DurableTaskRegistry().AddAgentTurn(tools, dying, new RefundModel(), options1), workerOptions);
            await worker1.StartAsync(CancellationToken.None);
            var client1 = new DurableTaskClient(backend1);
            await client1.ScheduleNewOrchestrationInstanceAsync(
                TurnRegistration.TurnOrchestrator,
                new TurnInput("conv-doubt", [ModelMessage.User("Order A8472 arrived broken; please refund the $47.")]),
                new StartOrchestrationOptions { InstanceId = turnId });
            await TestWait.EventuallyAsync(
                async () => (await TurnConfirmations.GetStatusAsync(client1, turnId, CancellationToken.None))?.PendingConfirmations.Count == 1,
                TimeSpan.FromSeconds(60),
                "the refund waits for a person");
            Assert.Equal(ConfirmationDecisionResult.Accepted, Assert.Single(await TurnConfirmations.DecideAllAsync(client1, turnId, approve: true, "alice", TimeProvider.System, CancellationToken.None)).Value);
            await calledOut.Task.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Single(await LedgerAsync(payments));
            await worker1.DisposeAsync();
        }

        // Second worker, as another process: its own backend, its own journal object over the hub's table.
        var retried = new List<string?>();
        ToolHandlers healthy = WithRefund(desk, (invocation, ct) =>
        {
            lock (retried)
            {
                retried.Add(invocation.IdempotencyKey);
            }

            return refund(invocation, ct);
        });
        await using IOrchestrationBackend backend2 = settings.CreateBackend();
        AgentTurnOptions options2 = HostTurnOptions.Create(settings, NullLoggerFactory.Instance);
        using var journal2 = (IDisposable)options2.CallJournal!;
        await using var worker2 = new DurableTaskWorker(backend2, new DurableTaskRegistry().AddAgentTurn(tools, healthy, new RefundModel(), options2), workerOptions);
        await worker2.StartAsync(CancellationToken.None);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        OrchestrationMetadata done = await new DurableTaskClient(backend2).WaitForInstanceCompletionAsync(turnId, cts.Token);

        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal(TurnOutcome.Answered, done.ReadOutputAs<TurnOutput>()!.Outcome);
        Assert.NotNull(firstKey);

        // The retry found the first attempt unfinished in the shared journal: in doubt, the payments service was asked
        // (it had refunded under that key), and nothing was sent again.
        InDoubtCall inDoubt = Assert.Single(done.ReadCustomStatusAs<TurnStatus>()!.InDoubt);
        Assert.Equal(new InDoubtCall("call_refund", SupportDeskTools.ProcessRefund, firstKey, "reconciled_performed"), inDoubt);
        Assert.Empty(retried);
        JsonElement entry = Assert.Single(await LedgerAsync(payments));
        Assert.Equal(firstKey, entry.GetProperty("idempotency_key").GetString());
    }

    private static ToolHandlers WithRefund(ToolHandlers desk, ToolHandler refund) => new ToolHandlers()
        .Add(SupportDeskTools.LookupOrder, desk.Find(SupportDeskTools.LookupOrder)!)
        .Add(SupportDeskTools.GetCustomer, desk.Find(SupportDeskTools.GetCustomer)!)
        .Add(SupportDeskTools.ChargeCard, desk.Find(SupportDeskTools.ChargeCard)!)
        .Add(SupportDeskTools.EscalateToHuman, desk.Find(SupportDeskTools.EscalateToHuman)!)
        .Add(SupportDeskTools.ProcessRefund, refund);

    private static async Task<JsonElement[]> LedgerAsync(LocalPaymentsService payments)
    {
        using JsonDocument doc = JsonDocument.Parse(await payments.Client.GetStringAsync(new Uri("/ledger", UriKind.Relative)));
        return [.. doc.RootElement.GetProperty("entries").EnumerateArray().Select(e => e.Clone())];
    }

    /// <summary>Looks the order up and proposes the refund; answers in text once the results are back.</summary>
    private sealed class RefundModel : IChatModel
    {
        public Task<ModelReply> CompleteAsync(ModelRequest request, CancellationToken cancellationToken) =>
            Task.FromResult(request.Messages[^1].Role == ModelRole.Tool
                ? new ModelReply { Text = "Refunded.", FinishReason = "stop" }
                : new ModelReply
                {
                    FinishReason = "tool_calls",
                    ToolCalls =
                    [
                        new ModelToolCall("call_lookup", SupportDeskTools.LookupOrder, """{"order_id":"A8472"}"""),
                        new ModelToolCall("call_refund", SupportDeskTools.ProcessRefund, """{"order_id":"A8472","amount":47.00,"reason":"damaged","currency":"USD"}"""),
                    ],
                });
    }
}

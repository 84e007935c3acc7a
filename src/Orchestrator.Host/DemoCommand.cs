using System.Collections.Concurrent;
using System.Text.Json;
using Orchestrator.Durable;
using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.History;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Host;

/// <summary>
/// The engine demo: a refund that waits durably for a human, then pays out exactly once.
/// </summary>
internal static class DemoCommand
{
    public static async Task<int> RunAsync(DemoOptions options, HostSettings settings, TextWriter stdout, CancellationToken cancellationToken)
    {
        var ledger = new PaymentsLedger();
        DurableTaskRegistry registry = Register(new DurableTaskRegistry(), ledger, stdout);
        await using IOrchestrationBackend backend = settings.CreateBackend(options.DataSource);
        await using var worker = new DurableTaskWorker(backend, registry, new DurableTaskWorkerOptions
        {
            MaxConcurrentActivities = settings.MaxConcurrentActivityFunctions,
            MaxConcurrentOrchestrations = settings.MaxConcurrentOrchestratorFunctions,
        });
        var client = new DurableTaskClient(backend, new DurableTaskClientOptions { Registry = registry });
        await worker.StartAsync(cancellationToken).ConfigureAwait(false);

        await stdout.WriteLineAsync(settings.Describe(options.DataSource)).ConfigureAwait(false);
        var request = new RefundRequest("A8472", 47.00m, "customer asked for a refund of a damaged item");
        string instanceId = await client.ScheduleNewOrchestrationInstanceAsync("RefundOrchestration", request, cancellationToken: cancellationToken).ConfigureAwait(false);
        await stdout.WriteLineAsync($"Scheduled RefundOrchestration as instance {instanceId} (durable before this line was printed).").ConfigureAwait(false);

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(2));
        OrchestrationMetadata waiting = await WaitForStageAsync(client, instanceId, "awaiting-approval", timeout.Token).ConfigureAwait(false);
        ApprovalCard card = waiting.ReadCustomStatusAs<ApprovalCard>()!;
        await stdout.WriteLineAsync().ConfigureAwait(false);
        await stdout.WriteLineAsync("  +--------------------------------------------------+").ConfigureAwait(false);
        await stdout.WriteLineAsync($"  | Confirmation needed: {card.Summary,-28}|").ConfigureAwait(false);
        await stdout.WriteLineAsync($"  | order {card.OrderId}, amount {card.Amount:0.00}, expires in 24 h      |").ConfigureAwait(false);
        await stdout.WriteLineAsync("  +--------------------------------------------------+").ConfigureAwait(false);
        await stdout.WriteLineAsync("  The orchestration is not in memory while it waits: it is an instance row and a history in the store.").ConfigureAwait(false);

        bool approve = options.Approve ?? await AskAsync(stdout).ConfigureAwait(false);
        await client.RaiseEventAsync(instanceId, "approval", approve, cancellationToken).ConfigureAwait(false);
        await stdout.WriteLineAsync(approve ? "Approved." : "Rejected.").ConfigureAwait(false);

        OrchestrationMetadata done = await client.WaitForInstanceCompletionAsync(instanceId, timeout.Token).ConfigureAwait(false);
        IReadOnlyList<HistoryEvent> history = await client.GetHistoryAsync(instanceId, cancellationToken).ConfigureAwait(false);
        await stdout.WriteLineAsync().ConfigureAwait(false);
        await stdout.WriteLineAsync($"Instance {instanceId}: {done.RuntimeStatus}, output {done.SerializedOutput}").ConfigureAwait(false);
        await stdout.WriteLineAsync("Recorded history (what a replay re-runs against):").ConfigureAwait(false);
        foreach (HistoryEvent e in history)
        {
            string detail = e switch
            {
                TaskScheduledEvent t => $"{t.Name} #{t.EventId}",
                TaskCompletedEvent c => $"#{c.TaskScheduledId} -> {c.Result}",
                TimerCreatedEvent t => $"#{t.EventId} fires {t.FireAt:u}",
                EventRaisedEvent r => $"{r.Name} = {r.Input}",
                ExecutionCompletedEvent c => $"{c.Status}",
                _ => string.Empty,
            };
            await stdout.WriteLineAsync($"  {e.Timestamp:HH:mm:ss.fff}  {e.EventType,-22} {detail}").ConfigureAwait(false);
        }

        await worker.StopAsync(cancellationToken).ConfigureAwait(false);
        if (options.Json)
        {
            var summary = new
            {
                instanceId,
                status = done.RuntimeStatus.ToString(),
                approved = approve,
                activitiesExecuted = history.OfType<TaskCompletedEvent>().Count(),
                effectsExecuted = ledger.Count,
                historyEvents = history.Count,
                output = done.SerializedOutput,
            };
            await stdout.WriteLineAsync(JsonSerializer.Serialize(summary)).ConfigureAwait(false);
        }

        return done.RuntimeStatus == OrchestrationRuntimeStatus.Completed ? 0 : 1;
    }

    internal static DurableTaskRegistry Register(DurableTaskRegistry registry, PaymentsLedger ledger, TextWriter stdout) => registry
        .AddActivityFunc<string, OrderInfo>("LookupOrder", (ctx, orderId) => new OrderInfo(orderId, "C-1029", 47.00m))
        .AddActivityFunc<RefundRequest, string>("IssueRefund", (ctx, r) =>
        {
            bool first = ledger.TryRecord(ctx.IdempotencyKey, r.Amount);
            stdout.WriteLine($"  IssueRefund: {r.Amount:0.00} for order {r.OrderId}, Idempotency-Key {ctx.IdempotencyKey} ({(first ? "executed" : "already done, not repeated")})");
            return $"refund-{ctx.IdempotencyKey.GetHashCode(StringComparison.Ordinal):x8}";
        })
        .AddOrchestratorFunc<RefundRequest, string>("RefundOrchestration", async (ctx, request) =>
        {
            OrderInfo order = await ctx.CallActivityAsync<OrderInfo>("LookupOrder", request.OrderId);
            ctx.SetCustomStatus(new ApprovalCard("awaiting-approval", $"Refund ${request.Amount:0.00} for {order.OrderId}", order.OrderId, request.Amount));
            bool approved;
            try
            {
                approved = await ctx.WaitForExternalEvent<bool>("approval", TimeSpan.FromHours(24));
            }
            catch (TimeoutException)
            {
                ctx.SetCustomStatus(new ApprovalCard("expired", "approval expired", order.OrderId, request.Amount));
                return "expired: no refund";
            }

            if (!approved)
            {
                ctx.SetCustomStatus(new ApprovalCard("rejected", "rejected by a human", order.OrderId, request.Amount));
                return "rejected: no refund";
            }

            string refundId = await ctx.CallActivityAsync<string>(
                "IssueRefund",
                request,
                TaskOptions.FromRetryPolicy(new RetryPolicy(3, TimeSpan.FromSeconds(1), 2.0)));
            ctx.SetCustomStatus(new ApprovalCard("refunded", refundId, order.OrderId, request.Amount));
            return $"refunded {request.Amount:0.00} for {order.OrderId} ({refundId})";
        });

    private static async Task<OrchestrationMetadata> WaitForStageAsync(DurableTaskClient client, string instanceId, string stage, CancellationToken cancellationToken)
    {
        while (true)
        {
            OrchestrationMetadata? m = await client.GetInstanceAsync(instanceId, cancellationToken).ConfigureAwait(false);
            if (m is { SerializedCustomStatus: not null } && m.ReadCustomStatusAs<ApprovalCard>()?.Stage == stage)
            {
                return m;
            }

            if (m is null || m.IsCompleted)
            {
                throw new InvalidOperationException($"Instance {instanceId} ended before reaching '{stage}': {m?.RuntimeStatus}.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(20), TimeProvider.System, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task<bool> AskAsync(TextWriter stdout)
    {
        if (Console.IsInputRedirected)
        {
            await stdout.WriteLineAsync("No terminal to ask and no --approve given: approving.").ConfigureAwait(false);
            return true;
        }

        await stdout.WriteAsync("Approve this refund? [y/N] ").ConfigureAwait(false);
        string? answer = Console.ReadLine();
        return answer is not null && answer.Trim().StartsWith('y');
    }

    internal sealed record RefundRequest(string OrderId, decimal Amount, string Reason);

    internal sealed record OrderInfo(string OrderId, string CustomerId, decimal Total);

    internal sealed record ApprovalCard(string Stage, string Summary, string OrderId, decimal Amount);

    /// <summary>Stands in for a payments service that honours idempotency keys.</summary>
    internal sealed class PaymentsLedger
    {
        private readonly ConcurrentDictionary<string, decimal> effects = new(StringComparer.Ordinal);

        public int Count => this.effects.Count;

        public bool TryRecord(string idempotencyKey, decimal amount) => this.effects.TryAdd(idempotencyKey, amount);
    }
}

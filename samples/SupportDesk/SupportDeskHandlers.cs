using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Orchestrator.Agents;

namespace SupportDesk;

/// <summary>The code behind the support desk's tools.</summary>
public static class SupportDeskHandlers
{
    /// <summary>
    /// Reads answer from <paramref name="store"/>; <c>process_refund</c> and <c>charge_card</c> POST to the payments
    /// service (<c>/refunds</c>, <c>/charges</c> under <paramref name="payments"/>' base address) with the call's
    /// <c>Idempotency-Key</c>; escalations go to <paramref name="escalations"/>.
    /// </summary>
    /// <param name="store">The orders and customers.</param>
    /// <param name="payments">A client whose <see cref="HttpClient.BaseAddress"/> is the payments service.</param>
    /// <param name="escalations">Where escalations are queued.</param>
    public static ToolHandlers Build(OrderStore store, HttpClient payments, EscalationDesk escalations)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(escalations);
        Uri baseUrl = PaymentsBase(payments);
        ToolHandler refunds = ToolHandlers.Http(payments, new Uri(baseUrl, "refunds"));
        ToolHandler charges = ToolHandlers.Http(payments, new Uri(baseUrl, "charges"));
        return new ToolHandlers()
            .Add(SupportDeskTools.LookupOrder, (invocation, _) =>
            {
                var args = Read<LookupOrderArgs>(invocation);
                Order order = store.FindOrder(args.OrderId) ?? throw new ToolExecutionException($"There is no order {args.OrderId}.");
                return Task.FromResult(new JsonObject
                {
                    ["order_id"] = order.OrderId,
                    ["customer_id"] = order.CustomerId,
                    ["item"] = order.Item,
                    ["total"] = order.Total,
                    ["currency"] = order.Currency,
                    ["status"] = order.Status,
                }.ToJsonString());
            })
            .Add(SupportDeskTools.GetCustomer, (invocation, _) =>
            {
                var args = Read<GetCustomerArgs>(invocation);
                Customer customer = (args.CustomerId is not null ? store.FindCustomer(args.CustomerId) : store.FindCustomerByAccount(args.AccountNumber))
                    ?? throw new ToolExecutionException("There is no such customer.");
                return Task.FromResult(new JsonObject
                {
                    ["customer_id"] = customer.CustomerId,
                    ["name"] = customer.Name,
                    ["email"] = customer.Email,
                    ["account_number_last4"] = customer.AccountNumber[^4..],
                }.ToJsonString());
            })
            .Add(SupportDeskTools.ProcessRefund, (invocation, ct) =>
            {
                var args = Read<RefundArgs>(invocation);
                var body = PaymentBody(args.OrderId, args.Amount, args.Currency, JsonNamingPolicy.SnakeCaseLower.ConvertName(args.Reason.ToString()));
                return refunds(invocation with { Arguments = body }, ct);
            })
            .Add(SupportDeskTools.ChargeCard, (invocation, ct) =>
            {
                var args = Read<ChargeArgs>(invocation);

                // The payments service takes no card numbers; only the last four digits travel, as the charge's note.
                var body = PaymentBody(args.OrderId, args.Amount, args.Currency, $"card ending {args.CardNumber[^4..]}, customer {args.CustomerId}");
                return charges(invocation with { Arguments = body }, ct);
            })
            .Add(SupportDeskTools.EscalateToHuman, (invocation, _) =>
            {
                var args = Read<EscalateArgs>(invocation);
                string ticket = escalations.Open(invocation.IdempotencyKey ?? invocation.ToolCallId, invocation.ConversationId, args);
                return Task.FromResult(new JsonObject { ["ticket"] = ticket, ["status"] = "queued", ["priority"] = JsonNamingPolicy.SnakeCaseLower.ConvertName(args.Priority.ToString()) }.ToJsonString());
            });
    }

    internal static Uri PaymentsBase(HttpClient payments)
    {
        ArgumentNullException.ThrowIfNull(payments);
        Uri baseUrl = payments.BaseAddress ?? throw new ArgumentException("The payments HttpClient needs a BaseAddress.", nameof(payments));
        return baseUrl.AbsoluteUri.EndsWith('/') ? baseUrl : new Uri(baseUrl.AbsoluteUri + "/");
    }

    private static T Read<T>(ToolInvocation invocation) =>
        JsonSerializer.Deserialize<T>(invocation.Arguments, ToolArgumentSerializer.DefaultOptions)
        ?? throw new ToolExecutionException("The arguments were empty.");

    private static string PaymentBody(string orderId, decimal amount, string currency, string reason) => new JsonObject
    {
        ["order_id"] = orderId,
        ["amount"] = amount,
        ["currency"] = currency,
        ["reason"] = reason,
    }.ToJsonString();
}

/// <summary>
/// Asks the payments service whether an Idempotency-Key already took effect (<c>GET /refunds?key=</c>,
/// <c>GET /charges?key=</c>), so a write left in doubt by a crash is not sent again blindly.
/// </summary>
public sealed class PaymentsReconciler
{
    private readonly HttpClient _client;
    private readonly Uri _base;

    /// <summary>Creates a reconciler over the payments service at <paramref name="payments"/>' base address.</summary>
    public PaymentsReconciler(HttpClient payments)
    {
        _base = SupportDeskHandlers.PaymentsBase(payments);
        _client = payments;
    }

    /// <summary>Whether the refund under the request's key happened.</summary>
    public ValueTask<ReconcileResult> Refund(ReconcileRequest request, CancellationToken cancellationToken) => AskAsync("refunds", request, cancellationToken);

    /// <summary>Whether the charge under the request's key happened.</summary>
    public ValueTask<ReconcileResult> Charge(ReconcileRequest request, CancellationToken cancellationToken) => AskAsync("charges", request, cancellationToken);

    private async ValueTask<ReconcileResult> AskAsync(string resource, ReconcileRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var url = new Uri(_base, $"{resource}?key={Uri.EscapeDataString(request.IdempotencyKey)}");
        try
        {
            using HttpResponseMessage response = await _client.GetAsync(url, cancellationToken).ConfigureAwait(false);
            if (response.StatusCode == HttpStatusCode.NotFound)
            {
                return ReconcileResult.NotPerformed;
            }

            if (!response.IsSuccessStatusCode)
            {
                return ReconcileResult.Unknown;
            }

            JsonNode? state = JsonNode.Parse(await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false));
            bool completed = (string?)state?["state"] == "completed";
            int status = state?["status_code"]?.GetValue<int>() ?? 0;

            // Only a completed 2xx outcome is an effect; a stored decline (402) is a result too, but a retry replays it anyway.
            return completed && status is >= 200 and < 300 && state?["response"] is JsonNode body
                ? ReconcileResult.Performed(body.ToJsonString())
                : ReconcileResult.Unknown;
        }
        catch (HttpRequestException)
        {
            // The service cannot be asked: the retry proceeds with the same key, which the service deduplicates.
            return ReconcileResult.Unknown;
        }
    }
}

/// <summary>The people behind the desk: an in-memory queue of escalations, one ticket per idempotency key.</summary>
public sealed class EscalationDesk
{
    private readonly ConcurrentDictionary<string, Escalation> _byKey = new(StringComparer.Ordinal);
    private int _next;

    /// <summary>Every escalation, in ticket order.</summary>
    public IReadOnlyList<Escalation> Escalations => [.. _byKey.Values.OrderBy(e => e.Ticket, StringComparer.Ordinal)];

    /// <summary>Opens a ticket, or returns the one this key already opened (a retried call).</summary>
    public string Open(string idempotencyKey, string conversationId, EscalateArgs args)
    {
        ArgumentNullException.ThrowIfNull(args);
        return _byKey.GetOrAdd(
            idempotencyKey,
            _ => new Escalation(string.Create(CultureInfo.InvariantCulture, $"H-{Interlocked.Increment(ref _next):0000}"), conversationId, args.Reason, args.Priority, args.OrderId)).Ticket;
    }
}

/// <summary>An escalation waiting for a person.</summary>
/// <param name="Ticket">Its ticket number.</param>
/// <param name="ConversationId">The conversation escalated.</param>
/// <param name="Reason">What to look at.</param>
/// <param name="Priority">How urgent.</param>
/// <param name="OrderId">The order concerned, if any.</param>
public sealed record Escalation(string Ticket, string ConversationId, string Reason, EscalationPriority Priority, string? OrderId);

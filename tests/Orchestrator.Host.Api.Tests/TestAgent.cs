using System.Collections.Concurrent;
using System.ComponentModel.DataAnnotations;
using System.Text.Json.Nodes;
using FluentValidation;
using Orchestrator.Agents;
using Orchestrator.Agents.Models;

namespace Orchestrator.Host.Api.Tests;

public sealed record LookupOrderArgs(string OrderId);

public sealed record RefundArgs(string OrderId, [property: Range(0.01, 10000)] decimal Amount, [property: RegularExpression("^[A-Z]{3}$")] string Currency);

public sealed record NotifyArgs(string OrderId, string Message);

public sealed record UpdateCardArgs(string CustomerId, string CardNumber);

public sealed class RefundRules : AbstractValidator<RefundArgs>
{
    public RefundRules() =>
        RuleFor(x => x.OrderId).Matches(@"^A\d{4,}$").WithName("order_id").WithMessage("order_id must be an order id like A8472");
}

/// <summary>
/// A support-desk agent with a hand-written model: "refund ..." proposes lookup, refund (needs confirmation) and a
/// notification that depends on the refund; "card ..." updates a card (sensitive number); anything else is answered in
/// text; after tool results the model answers with the last result.
/// </summary>
internal sealed class TestAgent
{
    public const string CardNumber = "4111111111111111";

    public ConcurrentDictionary<string, int> Refunds { get; } = new(StringComparer.Ordinal);

    public ConcurrentQueue<string> UserMessagesSeen { get; } = new();

    public AgentDefinition Definition()
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
                SummaryTemplate = "Refund ${amount:0.00} for order {order_id}",
            })
            .Add(ToolDefinition.FromArguments<NotifyArgs>("notify_customer", "Tell the customer.") with
            {
                Effect = ToolEffect.Write,
                DependsOn = ["process_refund"],
            })
            .Add(ToolDefinition.FromArguments<UpdateCardArgs>("update_card", "Replace the card on file.") with
            {
                Effect = ToolEffect.Write,
                ResourceKeyArguments = ["customer_id"],
                SensitiveArguments = ["card_number"],
            })
            .Build();
        ToolHandlers handlers = new ToolHandlers()
            .Add("lookup_order", (inv, _) => Task.FromResult(new JsonObject { ["order_id"] = (string?)JsonNode.Parse(inv.Arguments)!["order_id"], ["total"] = 47.00 }.ToJsonString()))
            .Add("process_refund", (inv, _) =>
            {
                this.Refunds.AddOrUpdate(inv.IdempotencyKey!, 1, (_, n) => n + 1);
                return Task.FromResult("{\"refund_id\":\"R-1\",\"status\":\"refunded\"}");
            })
            .Add("notify_customer", (_, _) => Task.FromResult("{\"sent\":true}"))
            .Add("update_card", (_, _) => Task.FromResult("{\"updated\":true}"));
        return new AgentDefinition("test-desk", tools, handlers, new Model(this)) { SystemPrompt = "You are a support desk." };
    }

    private sealed class Model(TestAgent agent) : IChatModel
    {
        public Task<ModelReply> CompleteAsync(ModelRequest request, CancellationToken cancellationToken)
        {
            ModelMessage last = request.Messages[^1];
            if (last.Role == ModelRole.Tool)
            {
                return Task.FromResult(new ModelReply { Text = "Done: " + last.Content, FinishReason = "stop" });
            }

            string text = last.Content ?? string.Empty;
            agent.UserMessagesSeen.Enqueue(text);
            if (text.StartsWith("refund", StringComparison.Ordinal))
            {
                return Task.FromResult(new ModelReply
                {
                    FinishReason = "tool_calls",
                    ToolCalls =
                    [
                        new ModelToolCall("call_lookup", "lookup_order", "{\"order_id\":\"A8472\"}"),
                        new ModelToolCall("call_refund", "process_refund", "{\"order_id\":\"A8472\",\"amount\":47.00,\"currency\":\"USD\"}"),
                        new ModelToolCall("call_notify", "notify_customer", "{\"order_id\":\"A8472\",\"message\":\"Refunded\"}"),
                    ],
                });
            }

            if (text.StartsWith("card", StringComparison.Ordinal))
            {
                return Task.FromResult(new ModelReply
                {
                    FinishReason = "tool_calls",
                    ToolCalls = [new ModelToolCall("call_card", "update_card", $"{{\"customer_id\":\"C-1\",\"card_number\":\"{CardNumber}\"}}")],
                });
            }

            return Task.FromResult(new ModelReply { Text = "Answer to: " + text, FinishReason = "stop" });
        }
    }
}

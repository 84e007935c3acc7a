using System.Security.Cryptography;
using System.Text;
using Microsoft.Data.Sqlite;
using Orchestrator.Agents.Models;
using Orchestrator.Agents.Models.Scripted;
using Orchestrator.Durable;

namespace Orchestrator.Agents.Turn.Tests;

public sealed class SensitiveHistoryTests
{
    private const string Card = "4111111111111111";
    private const string CanonicalReal = """{"amount":10,"card_number":"4111111111111111","customer_id":"C1"}""";

    private static readonly ToolDefinition Charge = ToolDefinition.FromArguments<CardChargeArgs>("charge_card", "Charge a card.") with
    {
        Effect = ToolEffect.Write,
        RequiresConfirmation = true,
        ResourceKeyArguments = ["customer_id"],
        SensitiveArguments = ["card_number"],
    };

    private static ChatScript Script() => new(
        ScriptEntry.Calls(new ScriptedToolCall("c_1", "charge_card", """{"customer_id":"C1","card_number":"4111111111111111","amount":10}""")),
        ScriptEntry.Text("Charged.") with { When = new ScriptMatch { ToolResultFor = "c_1" } });

    [Fact(Timeout = 60_000)]
    public async Task RunTurn_CardNumberArgument_NoStoredRowHoldsItHandlerGetsItAndHashIsOfRealArguments()
    {
        string db = Path.Combine(Path.GetTempPath(), $"turn-sensitive-{Environment.ProcessId}-{Guid.NewGuid():N}.db");
        try
        {
            var received = new List<string>();
            var handlers = new ToolHandlers().Add("charge_card", (inv, _) =>
            {
                lock (received)
                {
                    received.Add(inv.Arguments);
                }

                return Task.FromResult("""{"charged":true,"last4":"1111"}""");
            });
            var protector = new SensitiveValueProtector(RandomNumberGenerator.GetBytes(32));
            var tools = new ToolRegistryBuilder().Add(Charge).Build();
            await using (var harness = await TurnHarness.StartAsync(Script(), tools, handlers, options: new AgentTurnOptions { SensitiveValues = protector }, dataSource: db))
            {
                await harness.StartTurnAsync(new TurnInput("conv-card", [ModelMessage.User("Charge the card on file $10, customer C1.")]), "turn-card");

                // The card shows the redacted arguments; its hash is of the real ones, so a decision binds to them.
                var status = await harness.StatusEventuallyAsync("turn-card", s => s.PendingConfirmations.Count == 1, "the charge waits for a human");
                var pending = status.PendingConfirmations[0];
                Assert.DoesNotContain(Card, pending.Arguments, StringComparison.Ordinal);
                Assert.Contains("[REDACTED]", pending.Arguments, StringComparison.Ordinal);
                Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(CanonicalReal))), pending.ArgumentsHash);
                Assert.Equal(
                    ConfirmationDecisionResult.Accepted,
                    await TurnConfirmations.DecideAsync(harness.Client, "turn-card", "c_1", new ConfirmationDecision(true, pending.ArgumentsHash, "alice"), TimeProvider.System, CancellationToken.None));
                var output = await harness.WaitForTurnAsync("turn-card");

                Assert.Equal(TurnOutcome.Answered, output.Outcome);
                Assert.Equal([CanonicalReal], received);

                // The model sees its own earlier call as it made it: the conversation is opened for it, not stored open.
                var sentBack = harness.Server.Requests[1].Messages.Single(m => m.ToolCalls.Count > 0).ToolCalls[0];
                Assert.Contains(Card, sentBack.Arguments, StringComparison.Ordinal);

                // The turn's own record holds the sealed value, not the card number and not a redaction mark.
                var stored = output.Messages.Single(m => m.ToolCalls.Count > 0).ToolCalls[0].Arguments;
                Assert.DoesNotContain(Card, stored, StringComparison.Ordinal);
                Assert.Contains(SensitiveValueProtector.Prefix, stored, StringComparison.Ordinal);
                Assert.Equal(Card, System.Text.Json.Nodes.JsonNode.Parse(protector.Open((string)System.Text.Json.Nodes.JsonNode.Parse(stored)!["card_number"]!))!.GetValue<string>());

                var history = await harness.Client.GetHistoryAsync("turn-card");
                Assert.NotEmpty(history);
                Assert.DoesNotContain(Card, System.Text.Json.JsonSerializer.Serialize<object>(history), StringComparison.Ordinal);

                var replay = await harness.ReplayAsync("turn-card");
                Assert.True(replay.IsDeterministic, replay.Error);
                Assert.Equal(output, DataConverter.Default.Deserialize<TurnOutput>(replay.Output), TurnOutputComparer.Instance);
            }

            // Every row of every table of the store (history, instances, custom status, output, queues), read raw.
            SqliteConnection.ClearAllPools();
            var (rows, sealedSeen, leaks) = SqliteStoreScan.ScanFiles([db], Card);
            Assert.True(rows > 10, $"only {rows} rows scanned");
            Assert.True(sealedSeen, "no sealed value found: the scan does not see the history");
            Assert.Empty(leaks);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            foreach (string suffix in new[] { string.Empty, "-wal", "-shm" })
            {
                File.Delete(db + suffix);
            }
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task RunTurn_CallWrittenInTextWithCardNumber_HistoryHoldsNoCardNumberHandlerGetsIt()
    {
        var received = new List<string>();
        var handlers = new ToolHandlers().Add("charge_card", (inv, _) =>
        {
            lock (received)
            {
                received.Add(inv.Arguments);
            }

            return Task.FromResult("""{"charged":true}""");
        });
        var tools = new ToolRegistryBuilder().Add(Charge with { RequiresConfirmation = false }).Build();
        var script = new ChatScript(
            ScriptEntry.Text("""Charging now. <tool_call>{"name":"charge_card","arguments":{"customer_id":"C1","card_number":"4111111111111111","amount":10}}</tool_call>"""),
            ScriptEntry.Text("Charged.") with { When = new ScriptMatch { LastRole = "tool" } });
        await using var harness = await TurnHarness.StartAsync(script, tools, handlers, options: new AgentTurnOptions { SensitiveValues = new SensitiveValueProtector(RandomNumberGenerator.GetBytes(32)) });

        var output = await harness.RunTurnAsync(new TurnInput("conv-text", [ModelMessage.User("Charge the card on file $10, customer C1.")]), "turn-text");

        Assert.Equal(TurnOutcome.Answered, output.Outcome);
        Assert.Equal([CanonicalReal], received);
        Assert.DoesNotContain(Card, System.Text.Json.JsonSerializer.Serialize<object>(await harness.Client.GetHistoryAsync("turn-text")), StringComparison.Ordinal);
        Assert.DoesNotContain(Card, System.Text.Json.JsonSerializer.Serialize(output), StringComparison.Ordinal);
        var replay = await harness.ReplayAsync("turn-text");
        Assert.True(replay.IsDeterministic, replay.Error);
    }

    [Fact(Timeout = 60_000)]
    public async Task RunTurn_ApprovedWithSealedEditedArguments_HandlerGetsEditAndHistoryHoldsNoCardNumber()
    {
        const string Edited = """{"customer_id":"C1","card_number":"5555555555554444","amount":8}""";
        var received = new List<string>();
        var handlers = new ToolHandlers().Add("charge_card", (inv, _) =>
        {
            lock (received)
            {
                received.Add(inv.Arguments);
            }

            return Task.FromResult("""{"charged":true}""");
        });
        var protector = new SensitiveValueProtector(RandomNumberGenerator.GetBytes(32));
        var tools = new ToolRegistryBuilder().Add(Charge).Build();
        await using var harness = await TurnHarness.StartAsync(Script(), tools, handlers, options: new AgentTurnOptions { SensitiveValues = protector });
        await harness.StartTurnAsync(new TurnInput("conv-edit", [ModelMessage.User("Charge the card on file $10, customer C1.")]), "turn-edit");
        var pending = (await harness.StatusEventuallyAsync("turn-edit", s => s.PendingConfirmations.Count == 1, "the charge waits")).PendingConfirmations[0];

        // A decision sealed with another key is refused (the turn keeps waiting); the one sealed with the hub's key runs.
        string foreign = TurnConfirmations.SealEditedArguments(new SensitiveValueProtector(RandomNumberGenerator.GetBytes(32)), tools, "charge_card", Edited);
        await harness.Client.RaiseEventAsync("turn-edit", pending.EventName, new ConfirmationDecision(true, pending.ArgumentsHash, "mallory") { EditedArguments = foreign });
        var refused = await harness.StatusEventuallyAsync("turn-edit", s => s.Refusals.Count == 1, "the foreign edit is refused");
        Assert.Equal("edited_arguments_invalid", refused.Refusals[0].Reason);
        string sealedEdit = TurnConfirmations.SealEditedArguments(protector, tools, "charge_card", Edited);
        Assert.DoesNotContain("5555555555554444", sealedEdit, StringComparison.Ordinal);
        await harness.Client.RaiseEventAsync("turn-edit", pending.EventName, new ConfirmationDecision(true, pending.ArgumentsHash, "alice") { EditedArguments = sealedEdit });
        var output = await harness.WaitForTurnAsync("turn-edit");

        Assert.Equal(TurnOutcome.Answered, output.Outcome);
        Assert.Equal(["""{"amount":8,"card_number":"5555555555554444","customer_id":"C1"}"""], received);
        string history = System.Text.Json.JsonSerializer.Serialize<object>(await harness.Client.GetHistoryAsync("turn-edit"));
        Assert.DoesNotContain("5555555555554444", history, StringComparison.Ordinal);
        Assert.DoesNotContain(Card, history, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Replay_HistoryWrittenWithoutKey_ReplaysUnchangedUnderCodeWithKey()
    {
        // Histories written before sealing (or by a host without a key) hold the values in the clear; code that seals
        // must still replay them to the same decisions and output.
        var handlers = new ToolHandlers().Add("charge_card", (_, _) => Task.FromResult("""{"charged":true}"""));
        var tools = new ToolRegistryBuilder().Add(Charge with { RequiresConfirmation = false }).Build();
        await using var harness = await TurnHarness.StartAsync(Script(), tools, handlers);
        var output = await harness.RunTurnAsync(new TurnInput("conv-old", [ModelMessage.User("Charge the card on file $10, customer C1.")]), "turn-old");
        var history = await harness.Client.GetHistoryAsync("turn-old");
        Assert.Contains(Card, System.Text.Json.JsonSerializer.Serialize<object>(history), StringComparison.Ordinal);

        var model = new OpenAIChatModel(new OpenAIChatModelOptions { BaseUrl = harness.Server.BaseUrl, ApiKey = "test", Model = "scripted", MaxRetries = 0 });
        var sealing = new DurableTaskRegistry().AddAgentTurn(tools, handlers, model, new AgentTurnOptions { SensitiveValues = new SensitiveValueProtector(RandomNumberGenerator.GetBytes(32)) });
        var replay = new OrchestrationReplayer(sealing).Replay(history);

        Assert.True(replay.IsDeterministic, replay.Error);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, replay.Status);
        Assert.Equal(output, DataConverter.Default.Deserialize<TurnOutput>(replay.Output), TurnOutputComparer.Instance);
    }

    [Fact(Timeout = 60_000)]
    public async Task Replay_SealedHistoryOnHostWithoutTheKey_FailsNamingTheMissingKey()
    {
        var handlers = new ToolHandlers().Add("charge_card", (_, _) => Task.FromResult("""{"charged":true}"""));
        var tools = new ToolRegistryBuilder().Add(Charge with { RequiresConfirmation = false }).Build();
        var protector = new SensitiveValueProtector(RandomNumberGenerator.GetBytes(32));
        await using var harness = await TurnHarness.StartAsync(Script(), tools, handlers, options: new AgentTurnOptions { SensitiveValues = protector });
        await harness.RunTurnAsync(new TurnInput("conv-key", [ModelMessage.User("Charge the card on file $10, customer C1.")]), "turn-key");
        var history = await harness.Client.GetHistoryAsync("turn-key");

        var model = new OpenAIChatModel(new OpenAIChatModelOptions { BaseUrl = harness.Server.BaseUrl, ApiKey = "test", Model = "scripted", MaxRetries = 0 });
        var otherKey = new DurableTaskRegistry().AddAgentTurn(tools, handlers, model, new AgentTurnOptions { SensitiveValues = new SensitiveValueProtector(RandomNumberGenerator.GetBytes(32)) });
        var replay = new OrchestrationReplayer(otherKey).Replay(history);

        Assert.Equal(OrchestrationRuntimeStatus.Failed, replay.Status);
        Assert.Contains(protector.KeyId, replay.Output ?? replay.Error ?? string.Empty, StringComparison.Ordinal);
    }
}

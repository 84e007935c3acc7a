using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;

namespace Orchestrator.Host.Api.Tests;

/// <summary>
/// Edited arguments of a decision are an event payload the engine stores as given: both host decision paths (the
/// approvals endpoint and the signed webhook) seal their sensitive values first, so no stored row holds them, and the
/// tool still gets the edited value.
/// </summary>
public sealed class SealedEditTests
{
    // Luhn-valid card numbers, other than the one the model proposes.
    private const string ApprovalsCard = "5555555555554444";
    private const string WebhookCard = "4012888888881881";

    [Fact(Timeout = 120_000)]
    public async Task ApproveWithEditedCardNumber_ApprovalsEndpointAndWebhook_NoStoredRowHoldsItAndTheChargeGetsIt()
    {
        string folder = Directory.CreateTempSubdirectory("api-sealed-edit-").FullName;
        var agent = new CardChargeAgent();
        try
        {
            await using (ApiHarness api = await StartAsync(folder, agent))
            {
                await api.StartAsync("conv-page", "charge my card for order A8473");
                await api.StartAsync("conv-hook", "charge my card for order A8473");
                JsonNode page = await api.PendingEventuallyAsync("conv-page", CardChargeAgent.ChargeCallId);
                JsonNode hook = await api.PendingEventuallyAsync("conv-hook", CardChargeAgent.ChargeCallId);
                Assert.DoesNotContain(CardChargeAgent.ProposedCard, page["arguments"]!.ToJsonString(), StringComparison.Ordinal);

                (int approved, string approvedBody) = await api.ApproveAsync("conv-page:turn:1", CardChargeAgent.ChargeCallId, new
                {
                    decision = "approve",
                    argumentsHash = (string)page["argumentsHash"]!,
                    editedArguments = CardChargeAgent.EditedArguments(ApprovalsCard),
                    decidedBy = "alice",
                });
                Assert.Equal(202, approved);
                Assert.Equal("accepted", (string?)JsonNode.Parse(approvedBody)!["result"]);
                string webhookBody = JsonSerializer.Serialize(new
                {
                    decision = "approve",
                    argumentsHash = (string)hook["argumentsHash"]!,
                    editedArguments = CardChargeAgent.EditedArguments(WebhookCard),
                    decidedBy = "bob",
                });
                Assert.Equal(202, (await api.SendWebhookAsync("conv-hook", CardChargeAgent.ChargeCallId, webhookBody, "msg_sealed_edit")).Status);

                foreach (string conversation in new[] { "conv-page", "conv-hook" })
                {
                    JsonNode done = await api.StatusEventuallyAsync(conversation, s => (int?)s["turns"] == 1 && s["currentTurn"] is null, $"{conversation}'s charge ran");
                    Assert.Equal("Answered", (string?)done["lastOutcome"]);
                }
            }

            // The tool got the edited numbers, in the clear.
            Assert.Equal(
                new[] { CardChargeAgent.CanonicalCharge(ApprovalsCard), CardChargeAgent.CanonicalCharge(WebhookCard) }.Order(StringComparer.Ordinal),
                agent.Charges.Order(StringComparer.Ordinal));

            // Every row of every table of every file of the store (history, instances, status, outbox, journal, request
            // ledger): sealed values, and none of the card numbers.
            var (rows, sealedSeen, leaks) = SqliteStoreScan.Scan(folder, ApprovalsCard, WebhookCard, CardChargeAgent.ProposedCard);
            Assert.True(rows > 20, $"only {rows} rows scanned");
            Assert.True(sealedSeen, "no sealed value found: the scan does not see the history");
            Assert.Empty(leaks);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            Directory.Delete(folder, recursive: true);
        }
    }

    private static Task<ApiHarness> StartAsync(string folder, CardChargeAgent agent) =>
        ApiHarness.StartAsync(new HostSettings(), Path.Combine(folder, "orchestrator.db"), agent: null, api: null, apiClock: null, definition: agent.Definition());
}
